//! The random albumentations-style transforms and the reference's pipelines: sizes, image/mask
//! alignment, probabilities, determinism from the rng argument, and errors.

use mbls_data::seg_augment::*;
use mbls_data::{Image, Mask, Sample, Target, Transform};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// An image whose pixel (y, x) is (y, x, 7) and a mask holding x (mod 21) — crops and flips must
/// move both together.
fn coded(h: usize, w: usize) -> Sample {
    let data = (0..h * w)
        .flat_map(|i| [(i / w) as u8, (i % w) as u8, 7])
        .collect();
    Sample {
        image: Image {
            height: h,
            width: w,
            channels: 3,
            data,
        },
        target: Target::Mask(Mask {
            height: h,
            width: w,
            data: (0..h * w).map(|i| ((i % w) % 21) as u8).collect(),
        }),
    }
}

fn mask(s: &Sample) -> &Mask {
    match &s.target {
        Target::Mask(m) => m,
        Target::Class(_) => panic!("no mask"),
    }
}

fn aligned(s: &Sample) -> bool {
    let m = mask(s);
    s.image
        .data
        .chunks(3)
        .zip(&m.data)
        .all(|(p, &l)| (p[1] as usize % 21) as u8 == l)
}

#[test]
fn random_crop_windows_are_aligned_and_seeded() {
    let s = coded(40, 60);
    let crop = RandomCrop {
        height: 20,
        width: 30,
    };
    let mut tops = std::collections::HashSet::new();
    for seed in 0..20 {
        let out = crop
            .apply(s.clone(), &mut ChaCha8Rng::seed_from_u64(seed))
            .unwrap();
        assert_eq!(
            (out.image.height, out.image.width, mask(&out).height),
            (20, 30, 20)
        );
        assert!(aligned(&out));
        let (top, left) = (out.image.data[0] as usize, out.image.data[1] as usize);
        assert!(top <= 20 && left <= 30);
        tops.insert(top);
        let again = crop
            .apply(s.clone(), &mut ChaCha8Rng::seed_from_u64(seed))
            .unwrap();
        assert_eq!(out, again);
    }
    assert!(tops.len() > 5);
    // every offset, the last included, is reachable: a 1-pixel margin gives tops 0 and 1
    let small = RandomCrop {
        height: 39,
        width: 60,
    };
    let seen: std::collections::HashSet<u8> = (0..64)
        .map(|seed| {
            small
                .apply(s.clone(), &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap()
                .image
                .data[0]
        })
        .collect();
    assert_eq!(seen.len(), 2);
    let full = RandomCrop {
        height: 40,
        width: 60,
    }
    .apply(s.clone(), &mut ChaCha8Rng::seed_from_u64(0))
    .unwrap();
    assert_eq!(full, s);
    let too_big = RandomCrop {
        height: 41,
        width: 10,
    };
    assert!(too_big.apply(s, &mut ChaCha8Rng::seed_from_u64(0)).is_err());
}

#[test]
fn center_crop_and_flip() {
    let s = coded(9, 12);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let c = CenterCrop {
        height: 4,
        width: 5,
    }
    .apply(s.clone(), &mut rng)
    .unwrap();
    // top = (9 - 4) / 2 = 2, left = (12 - 5) / 2 = 3
    assert_eq!(&c.image.data[..2], &[2, 3]);
    assert!(aligned(&c));
    let f = HorizontalFlip { p: 1.0 }
        .apply(s.clone(), &mut rng)
        .unwrap();
    assert_eq!(&f.image.data[..2], &[0, 11]);
    assert!(aligned(&f));
    assert_eq!(
        HorizontalFlip { p: 0.0 }
            .apply(s.clone(), &mut rng)
            .unwrap(),
        s
    );
    assert_eq!(hflip_sample(f).unwrap(), s);
    let flips = (0..400)
        .filter(|_| {
            HorizontalFlip { p: 0.5 }
                .apply(s.clone(), &mut rng)
                .unwrap()
                != s
        })
        .count();
    assert!((150..250).contains(&flips), "{flips}");
}

#[test]
fn pad_offsets_and_sizes() {
    assert_eq!(pad_if_needed_offsets(24, 40, 29, 45), (2, 3, 2, 3));
    assert_eq!(pad_if_needed_offsets(600, 40, 512, 512), (0, 0, 236, 236));
    assert_eq!(longest_max_size_dims(375, 500, 640), (480, 640));
    assert_eq!(longest_max_size_dims(500, 333, 480), (480, 320)); // 319.68 -> 320
    assert_eq!(longest_max_size_dims(5, 8, 4), (2, 4)); // 2.5 -> 2 (half to even)
    assert_eq!(longest_max_size_dims(7, 8, 4), (4, 4)); // 3.5 -> 4
    assert_eq!(longest_max_size_dims(480, 100, 480), (480, 100));
}

#[test]
fn colour_transforms_respect_p_and_keep_the_mask() {
    let s = coded(6, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let never = RandomBrightnessContrast {
        p: 0.0,
        ..Default::default()
    };
    assert_eq!(never.apply(s.clone(), &mut rng).unwrap(), s);
    let always = RandomBrightnessContrast {
        p: 1.0,
        ..Default::default()
    };
    let out = always.apply(s.clone(), &mut rng).unwrap();
    assert_ne!(out.image, s.image);
    assert_eq!(out.target, s.target);
    let hsv = HueSaturationValue {
        p: 1.0,
        ..Default::default()
    };
    let out = hsv.apply(s.clone(), &mut rng).unwrap();
    assert_eq!(out.target, s.target);
    assert_eq!(
        HueSaturationValue {
            p: 0.0,
            ..Default::default()
        }
        .apply(s.clone(), &mut rng)
        .unwrap(),
        s
    );
    // the LUT: identity for alpha 1, beta 0; clipping and truncation otherwise
    let lut = brightness_contrast_lut(1.0, 0.0, true, 0.0);
    assert!(lut.iter().enumerate().all(|(i, &v)| v as usize == i));
    let lut = brightness_contrast_lut(1.3, 0.3, true, 0.0);
    assert_eq!((lut[0], lut[1], lut[200]), (76, 77, 255)); // 76.5 -> 76, 77.8 -> 77
    let lut = brightness_contrast_lut(0.7, -0.3, true, 0.0);
    assert_eq!((lut[100], lut[255]), (0, 102)); // 178.5 - 76.5 = 102
    let lut = brightness_contrast_lut(1.0, 0.5, false, 100.0);
    assert_eq!(lut[10], 60);
    // grayscale images are refused by the HSV shift
    let gray = Image {
        height: 1,
        width: 1,
        channels: 1,
        data: vec![3],
    };
    assert!(shift_hsv(&gray, 1.0, 0.0, 0.0).is_err());
}

#[test]
fn opencv_colour_conversion_examples() {
    assert_eq!(rgb_to_hsv(255, 0, 0), (0, 255, 255));
    assert_eq!(rgb_to_hsv(0, 255, 0), (60, 255, 255));
    assert_eq!(rgb_to_hsv(0, 0, 255), (120, 255, 255));
    assert_eq!(rgb_to_hsv(10, 10, 10), (0, 0, 10));
    assert_eq!(hsv_to_rgb(60, 255, 255), (0, 255, 0));
    assert_eq!(hsv_to_rgb(0, 0, 77), (77, 77, 77));
}

#[test]
fn voc_pipelines() {
    let s = coded(37, 50);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let out = voc_train().apply(s.clone(), &mut rng).unwrap();
    assert_eq!((out.image.height, out.image.width), (512, 512));
    let m = mask(&out);
    assert_eq!((m.height, m.width), (512, 512));
    // 37x50 -> 474x640 -> padded to 512 rows with 19 + 19 ignore rows, then a 512 crop
    assert!(m.data.iter().all(|&v| v < 21 || v == 255));
    assert!(m.data.contains(&255));
    let eval = voc_eval().apply(s.clone(), &mut rng).unwrap();
    assert_eq!((eval.image.height, eval.image.width), (480, 480));
    let m = mask(&eval);
    // 37x50 -> 355x480, padded top (480 - 355) / 2 = 62 rows, bottom 63 rows with 255
    assert!(m.data[..62 * 480].iter().all(|&v| v == 255));
    assert!(m.data[62 * 480..63 * 480].iter().all(|&v| v != 255));
    assert!(m.data[(480 - 63) * 480..].iter().all(|&v| v == 255));
    assert!(eval.image.data[..62 * 480 * 3].iter().all(|&v| v == 0));
    // evaluation is deterministic
    assert_eq!(
        voc_eval()
            .apply(s.clone(), &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap(),
        eval
    );
}

#[test]
fn cub_pipelines() {
    let s = Sample {
        target: Target::Class(4),
        ..coded(300, 400)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let train = cub_train().apply(s.clone(), &mut rng).unwrap();
    assert_eq!((train.image.height, train.image.width), (224, 224));
    assert_eq!(train.target, Target::Class(4));
    let eval = cub_eval().apply(s.clone(), &mut rng).unwrap();
    let resized = resize_linear(&s.image.data, 300, 400, 3, 256, 256).unwrap();
    let manual: Vec<u8> = (16..240)
        .flat_map(|y| resized[(y * 256 + 16) * 3..(y * 256 + 240) * 3].to_vec())
        .collect();
    assert_eq!(eval.image.data, manual);
}

#[test]
fn bad_samples_are_errors() {
    let mut s = coded(4, 4);
    if let Target::Mask(m) = &mut s.target {
        m.width = 3;
        m.data.truncate(12);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(voc_eval().apply(s.clone(), &mut rng).is_err());
    assert!(HorizontalFlip { p: 1.0 }.apply(s, &mut rng).is_err());
    let mut s = coded(4, 4);
    s.image.data.pop();
    assert!(
        Resize {
            height: 2,
            width: 2
        }
        .apply(s, &mut rng)
        .is_err()
    );
    assert!(resize_linear(&[1, 2, 3], 2, 2, 1, 1, 1).is_err());
    assert!(resize_nearest(&[1, 2, 3], 2, 2, 1, 1, 1).is_err());
    assert!(
        Resize {
            height: 0,
            width: 2
        }
        .apply(coded(2, 2), &mut rng)
        .is_err()
    );
    assert!(
        LongestMaxSize { max_size: 2 }
            .apply(coded(1, 100), &mut rng)
            .is_err()
    );
}
