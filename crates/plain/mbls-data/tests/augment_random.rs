//! Random augmentations: draws come only from the rng, are uniform over the torchvision ranges,
//! and move a mask exactly like its image; bad input is an error, not a panic.

use mbls_data::{
    CenterCrop, Compose, Identity, Normalize, RandomCrop, RandomHorizontalFlip, Resize, hflip,
    uniform_below, uniform_f32,
};
use mbls_data::{DataError, Image, Mask, Sample, Target, Transform};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use std::collections::HashMap;

/// An image whose pixel (r, c) encodes its position, with a mask encoding the same position.
fn coded(h: usize, w: usize) -> Sample {
    let mut data = Vec::with_capacity(h * w * 3);
    let mut mask = Vec::with_capacity(h * w);
    for r in 0..h {
        for c in 0..w {
            data.extend([(r + 1) as u8, (c + 1) as u8, 200]);
            mask.push(((r * w + c) % 250 + 1) as u8);
        }
    }
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
            data: mask,
        }),
    }
}

/// The (top, left) of the padded image that produced a crop of `coded(h, w)`.
fn crop_origin(s: &Sample, pad: usize) -> (usize, usize) {
    let size = s.image.width;
    for r in 0..size {
        for c in 0..size {
            let px = &s.image.data[(r * size + c) * 3..(r * size + c) * 3 + 3];
            if px[2] == 200 {
                return (px[0] as usize - 1 + pad - r, px[1] as usize - 1 + pad - c);
            }
        }
    }
    panic!("no source pixel in the crop");
}

#[test]
fn random_crop_is_uniform_and_mask_consistent() {
    let t = RandomCrop {
        size: 32,
        padding: 4,
    };
    let mut counts: HashMap<(usize, usize), usize> = HashMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 81 * 100;
    for _ in 0..n {
        let s = t.apply(coded(32, 32), &mut rng).unwrap();
        assert_eq!((s.image.height, s.image.width), (32, 32));
        let (top, left) = crop_origin(&s, 4);
        assert!(top <= 8 && left <= 8);
        *counts.entry((top, left)).or_default() += 1;
        // The mask moved exactly like the image: same crop_at result.
        let again = t.crop_at(coded(32, 32), top, left).unwrap();
        assert_eq!(again, s);
    }
    assert_eq!(counts.len(), 81, "every offset 0..=8 × 0..=8 occurs");
    for (&k, &c) in &counts {
        assert!(
            (55..=150).contains(&c),
            "offset {k:?} drawn {c} times of {n}"
        );
    }
}

#[test]
fn padding_is_zero_for_image_and_mask() {
    let t = RandomCrop {
        size: 4,
        padding: 2,
    };
    let s = t.crop_at(coded(3, 3), 0, 0).unwrap();
    // Rows 0-1 and columns 0-1 are padding.
    for r in 0..4 {
        for c in 0..4 {
            let px = &s.image.data[(r * 4 + c) * 3..(r * 4 + c) * 3 + 3];
            let Target::Mask(m) = &s.target else { panic!() };
            if r < 2 || c < 2 {
                assert_eq!(px, &[0, 0, 0]);
                assert_eq!(m.data[r * 4 + c], 0);
            } else {
                assert_eq!(px, &[(r - 1) as u8, (c - 1) as u8, 200]);
                assert_ne!(m.data[r * 4 + c], 0);
            }
        }
    }
}

#[test]
fn same_rng_same_result_and_flip_rate() {
    let t = Compose::new(vec![
        Box::new(RandomCrop {
            size: 8,
            padding: 4,
        }),
        Box::new(RandomHorizontalFlip { p: 0.5 }),
    ]);
    let a = t
        .apply(coded(8, 8), &mut ChaCha8Rng::seed_from_u64(9))
        .unwrap();
    let b = t
        .apply(coded(8, 8), &mut ChaCha8Rng::seed_from_u64(9))
        .unwrap();
    assert_eq!(a, b);
    let flip = RandomHorizontalFlip::default();
    assert_eq!(flip.p, 0.5);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let flipped_ref = hflip(coded(5, 7)).unwrap();
    let mut flips = 0;
    for _ in 0..4000 {
        let s = flip.apply(coded(5, 7), &mut rng).unwrap();
        if s == flipped_ref {
            flips += 1;
        } else {
            assert_eq!(s, coded(5, 7));
        }
    }
    assert!((1850..=2150).contains(&flips), "{flips} flips of 4000");
    // p = 0 never flips, p = 1 always.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..100 {
        assert_eq!(
            RandomHorizontalFlip { p: 0.0 }
                .apply(coded(2, 3), &mut rng)
                .unwrap(),
            coded(2, 3)
        );
        assert_eq!(
            RandomHorizontalFlip { p: 1.0 }
                .apply(coded(2, 3), &mut rng)
                .unwrap(),
            hflip(coded(2, 3)).unwrap()
        );
    }
}

#[test]
fn hflip_moves_mask_with_image() {
    let s = hflip(coded(4, 5)).unwrap();
    let Target::Mask(m) = &s.target else { panic!() };
    let orig = coded(4, 5);
    let Target::Mask(om) = &orig.target else {
        panic!()
    };
    for r in 0..4 {
        for c in 0..5 {
            assert_eq!(m.data[r * 5 + c], om.data[r * 5 + 4 - c]);
            assert_eq!(s.image.data[(r * 5 + c) * 3 + 1], (5 - c) as u8);
        }
    }
}

#[test]
fn uniform_helpers() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    assert_eq!(uniform_below(&mut rng, 0), 0);
    assert_eq!(uniform_below(&mut rng, 1), 0);
    let mut hist = [0usize; 7];
    for _ in 0..70_000 {
        hist[uniform_below(&mut rng, 7)] += 1;
    }
    assert!(
        hist.iter().all(|&c| (9_500..=10_500).contains(&c)),
        "{hist:?}"
    );
    let big = 1usize << 40;
    for _ in 0..100 {
        assert!(uniform_below(&mut rng, big) < big);
    }
    for _ in 0..1000 {
        let x = uniform_f32(&mut rng);
        assert!((0.0..1.0).contains(&x));
    }
}

#[test]
fn resize_sizes_follow_torchvision() {
    let r = Resize::shorter(32);
    assert_eq!(r.output_size(64, 48), (42, 32)); // int(32 * 64 / 48) = 42
    assert_eq!(r.output_size(48, 64), (32, 42));
    assert_eq!(r.output_size(10, 10), (32, 32));
    assert_eq!(Resize::exact(5, 7).output_size(100, 3), (5, 7));
    // Resize moves a mask with nearest sampling and keeps class targets.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let s = Resize::exact(6, 10).apply(coded(3, 5), &mut rng).unwrap();
    let Target::Mask(m) = &s.target else { panic!() };
    assert_eq!((m.height, m.width, m.data.len()), (6, 10, 60));
    assert_eq!(
        (s.image.height, s.image.width, s.image.data.len()),
        (6, 10, 180)
    );
}

#[test]
fn center_crop_offsets_round_half_to_even() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // (H - h) / 2 = 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → 4 (Python's round).
    for (h, crop, top) in [(5, 4, 0), (7, 4, 2), (9, 4, 2), (11, 4, 4), (8, 4, 2)] {
        let s = CenterCrop {
            height: crop,
            width: 1,
        }
        .apply(coded(h, 1), &mut rng)
        .unwrap();
        assert_eq!(s.image.data[0] as usize - 1, top, "H {h} crop {crop}");
    }
}

#[test]
fn bad_input_is_an_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let too_big = RandomCrop {
        size: 20,
        padding: 2,
    }
    .apply(coded(8, 8), &mut rng);
    assert!(matches!(too_big, Err(DataError::Invalid(_))));
    assert!(
        RandomCrop {
            size: 4,
            padding: 0
        }
        .crop_at(coded(8, 8), 5, 0)
        .is_err()
    );
    assert!(
        RandomCrop {
            size: 0,
            padding: 0
        }
        .apply(coded(8, 8), &mut rng)
        .is_err()
    );
    let mut broken = coded(4, 4);
    broken.image.data.pop();
    assert!(
        RandomHorizontalFlip { p: 1.0 }
            .apply(broken.clone(), &mut rng)
            .is_err()
    );
    assert!(Resize::exact(2, 2).apply(broken.clone(), &mut rng).is_err());
    assert!(CenterCrop::square(2).apply(broken, &mut rng).is_err());
    let mut bad_mask = coded(4, 4);
    if let Target::Mask(m) = &mut bad_mask.target {
        m.width = 3;
    }
    assert!(hflip(bad_mask.clone()).is_err());
    assert!(
        RandomCrop {
            size: 4,
            padding: 1
        }
        .apply(bad_mask, &mut rng)
        .is_err()
    );
    assert!(Resize::exact(0, 3).apply(coded(4, 4), &mut rng).is_err());
    assert!(Resize::shorter(2).apply(coded(0, 4), &mut rng).is_err());
    assert!(CenterCrop::square(0).apply(coded(4, 4), &mut rng).is_err());
    let gray = Image {
        height: 2,
        width: 2,
        channels: 1,
        data: vec![0; 4],
    };
    assert!(Normalize::CIFAR10.to_chw(&gray).is_err());
    let rgb = Image {
        height: 2,
        width: 2,
        channels: 3,
        data: vec![0; 12],
    };
    assert!(Normalize::CIFAR10.write_chw(&rgb, &mut [0.0; 11]).is_err());
    assert_eq!(Identity.apply(coded(2, 2), &mut rng).unwrap(), coded(2, 2));
}
