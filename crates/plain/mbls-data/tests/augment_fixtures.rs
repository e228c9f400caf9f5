//! Compares the augmentations with torchvision 0.26 / Pillow outputs written by
//! `tests/fixtures/augment/make_fixtures.py` (Resize, CenterCrop, crop with fixed draws, flips,
//! ToTensor → Normalize).

use mbls_data::{CenterCrop, Normalize, RandomCrop, Resize, hflip};
use mbls_data::{Image, Mask, Sample, Target, Transform};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use std::collections::HashMap;

struct Case {
    kind: String,
    params: Vec<String>,
    shape: [usize; 3],
    values: Vec<String>,
}

fn load() -> Vec<Case> {
    let text = include_str!("fixtures/augment/augment_fixtures.txt");
    let mut cases = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, tail) = line.split_once(" : ").expect("separator");
        let mut head = head.split_whitespace().map(str::to_string);
        let kind = head.next().unwrap();
        let params: Vec<String> = head.collect();
        let mut tail = tail.split_whitespace();
        let mut dim = || tail.next().unwrap().parse::<usize>().unwrap();
        let shape = [dim(), dim(), dim()];
        let values: Vec<String> = tail.map(str::to_string).collect();
        assert_eq!(
            values.len(),
            shape.iter().product::<usize>(),
            "{kind} {params:?}"
        );
        cases.push(Case {
            kind,
            params,
            shape,
            values,
        });
    }
    cases
}

fn bytes(c: &Case) -> Vec<u8> {
    c.values.iter().map(|v| v.parse().unwrap()).collect()
}

fn image(c: &Case) -> Image {
    Image {
        height: c.shape[0],
        width: c.shape[1],
        channels: c.shape[2],
        data: bytes(c),
    }
}

fn inputs(cases: &[Case]) -> (HashMap<String, Image>, HashMap<String, Mask>) {
    let mut images = HashMap::new();
    let mut masks = HashMap::new();
    for c in cases {
        match c.kind.as_str() {
            "input" => {
                images.insert(c.params[0].clone(), image(c));
            }
            "mask" => {
                masks.insert(
                    c.params[0].clone(),
                    Mask {
                        height: c.shape[0],
                        width: c.shape[1],
                        data: bytes(c),
                    },
                );
            }
            _ => {}
        }
    }
    (images, masks)
}

fn sample(im: &Image) -> Sample {
    Sample {
        image: im.clone(),
        target: Target::Class(3),
    }
}

fn mask_sample(m: &Mask) -> Sample {
    Sample {
        image: Image {
            height: m.height,
            width: m.width,
            channels: 3,
            data: vec![0; m.height * m.width * 3],
        },
        target: Target::Mask(m.clone()),
    }
}

fn num(s: &str) -> usize {
    s.parse().unwrap()
}

/// Largest absolute difference between two byte images of equal shape.
fn max_diff(a: &Image, b: &Image) -> u8 {
    assert_eq!(
        (a.height, a.width, a.channels),
        (b.height, b.width, b.channels)
    );
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn resize_matches_pillow_exactly() {
    let cases = load();
    let (images, _) = inputs(&cases);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut n = 0;
    for c in &cases {
        let t = match c.kind.as_str() {
            "resize_short" => Resize::shorter(num(&c.params[1])),
            "resize_exact" => Resize::exact(num(&c.params[1]), num(&c.params[2])),
            _ => continue,
        };
        let out = t.apply(sample(&images[&c.params[0]]), &mut rng).unwrap();
        let want = image(c);
        assert_eq!(
            max_diff(&out.image, &want),
            0,
            "{} {:?}: differs from Pillow",
            c.kind,
            c.params
        );
        n += 1;
    }
    assert_eq!(n, 48);
}

#[test]
fn mask_resize_is_pillow_nearest() {
    let cases = load();
    let (_, masks) = inputs(&cases);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut n = 0;
    for c in cases.iter().filter(|c| c.kind == "mask_resize_exact") {
        let t = Resize::exact(num(&c.params[1]), num(&c.params[2]));
        let out = t
            .apply(mask_sample(&masks[&c.params[0]]), &mut rng)
            .unwrap();
        let Target::Mask(m) = out.target else {
            panic!("mask lost")
        };
        assert_eq!((m.height, m.width), (c.shape[0], c.shape[1]));
        assert_eq!(m.data, bytes(c), "{:?}", c.params);
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn center_crop_matches_torchvision() {
    let cases = load();
    let (images, _) = inputs(&cases);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut n = 0;
    for c in cases.iter().filter(|c| c.kind == "center_crop") {
        let t = CenterCrop {
            height: num(&c.params[1]),
            width: num(&c.params[2]),
        };
        let out = t.apply(sample(&images[&c.params[0]]), &mut rng).unwrap();
        assert_eq!(out.image, image(c), "{:?}", c.params);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn crop_and_flip_match_torchvision() {
    let cases = load();
    let (images, masks) = inputs(&cases);
    let mut n = 0;
    for c in &cases {
        match c.kind.as_str() {
            "crop" => {
                let p: Vec<usize> = c.params[1..].iter().map(|s| num(s)).collect();
                let t = RandomCrop {
                    size: p[0],
                    padding: p[1],
                };
                let out = t
                    .crop_at(sample(&images[&c.params[0]]), p[2], p[3])
                    .unwrap();
                assert_eq!(out.image, image(c), "{:?}", c.params);
            }
            "hflip" => {
                let out = hflip(sample(&images[&c.params[0]])).unwrap();
                assert_eq!(out.image, image(c), "{:?}", c.params);
            }
            "mask_hflip" => {
                let out = hflip(mask_sample(&masks[&c.params[0]])).unwrap();
                let Target::Mask(m) = out.target else {
                    panic!("mask lost")
                };
                assert_eq!(m.data, bytes(c));
            }
            _ => continue,
        }
        n += 1;
    }
    assert_eq!(n, 12);
}

#[test]
fn normalize_is_bit_identical_to_totensor_normalize() {
    let cases = load();
    let (images, _) = inputs(&cases);
    let mut n = 0;
    for c in cases.iter().filter(|c| c.kind == "normalize") {
        let norm = match c.params[1].as_str() {
            "cifar10" => Normalize::CIFAR10,
            "imagenet" => Normalize::IMAGENET,
            other => panic!("unknown constants {other}"),
        };
        let im = &images[&c.params[0]];
        let got = norm.to_chw(im).unwrap();
        let want: Vec<u32> = c
            .values
            .iter()
            .map(|v| u32::from_str_radix(v, 16).unwrap())
            .collect();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                *w,
                "{:?} element {i}: {g} vs {}",
                c.params,
                f32::from_bits(*w)
            );
        }
        // The per-value formula agrees with the table path.
        let ch = im.height * im.width;
        for (i, px) in im.data.chunks_exact(3).enumerate() {
            for k in 0..3 {
                assert_eq!(norm.value(k, px[k]).to_bits(), got[k * ch + i].to_bits());
            }
        }
        n += 1;
    }
    assert_eq!(n, 4);
}
