//! Compares the seg_augment kernels with OpenCV 4.10 output stored in tests/fixtures/seg_augment
//! (written by make_fixtures.py there, OpenCV 4.10.0 on x86-64 with AVX2/AVX-512). Every
//! comparison is exact: resizing (bilinear and nearest), padding, the brightness/contrast table,
//! RGB→HSV, HSV→RGB rows and the HSV shift.

use mbls_data::seg_augment::*;
use mbls_data::{Image, Mask, Sample, Target, Transform};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use std::collections::HashMap;
use std::path::PathBuf;

struct Fixture {
    h: usize,
    w: usize,
    c: usize,
    data: Vec<u8>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seg_augment")
}

fn load() -> HashMap<String, Fixture> {
    let manifest = std::fs::read_to_string(dir().join("manifest.txt")).unwrap();
    let mut out = HashMap::new();
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (h, w, c) = (
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        let data = std::fs::read(dir().join(format!("{}.bin", f[0]))).unwrap();
        assert_eq!(data.len(), h * w * c, "{}", f[0]);
        out.insert(f[0].to_string(), Fixture { h, w, c, data });
    }
    out
}

fn image(f: &Fixture) -> Image {
    Image {
        height: f.h,
        width: f.w,
        channels: f.c,
        data: f.data.clone(),
    }
}

fn mask(f: &Fixture) -> Mask {
    assert_eq!(f.c, 1);
    Mask {
        height: f.h,
        width: f.w,
        data: f.data.clone(),
    }
}

/// (number of differing values, largest difference)
fn diff(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0, 0), |(n, m), (&x, &y)| {
        let d = x.abs_diff(y);
        (n + usize::from(d != 0), m.max(d))
    })
}

#[test]
fn linear_resize_matches_opencv_exactly() {
    let fx = load();
    let src = &fx["src"];
    for name in ["lms52", "lms30", "r17x23", "r40x61", "r13x19", "r24x57"] {
        let want = &fx[&format!("linear_{name}")];
        let got = resize_linear(&src.data, src.h, src.w, 3, want.h, want.w).unwrap();
        let (n, m) = diff(&got, &want.data);
        assert_eq!((n, m), (0, 0), "linear {name}: {n} values differ (max {m})");
    }
    let even = &fx["src_even"];
    let want = &fx["linear_even_half"];
    let got = resize_linear(&even.data, even.h, even.w, 3, want.h, want.w).unwrap();
    assert_eq!(
        diff(&got, &want.data),
        (0, 0),
        "exact halving (INTER_AREA path)"
    );
}

#[test]
fn nearest_resize_matches_opencv_exactly() {
    let fx = load();
    let m = &fx["mask"];
    for name in ["lms52", "lms30", "r17x23", "r40x61", "r13x19", "r24x57"] {
        let want = &fx[&format!("nearest_{name}")];
        let got = resize_nearest(&m.data, m.h, m.w, 1, want.h, want.w).unwrap();
        assert_eq!(got, want.data, "nearest {name}");
    }
}

#[test]
fn longest_max_size_transform_matches_opencv() {
    let fx = load();
    let sample = Sample {
        image: image(&fx["src"]),
        target: Target::Mask(mask(&fx["mask"])),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (max, name) in [(52, "lms52"), (30, "lms30")] {
        let out = LongestMaxSize { max_size: max }
            .apply(sample.clone(), &mut rng)
            .unwrap();
        let want = &fx[&format!("linear_{name}")];
        assert_eq!((out.image.height, out.image.width), (want.h, want.w));
        assert_eq!(out.image.data, want.data, "{name} image");
        let Target::Mask(m) = out.target else {
            panic!()
        };
        assert_eq!(m.data, fx[&format!("nearest_{name}")].data, "{name} mask");
    }
    // Scale exactly 1: unchanged.
    let out = LongestMaxSize { max_size: 40 }
        .apply(sample.clone(), &mut rng)
        .unwrap();
    assert_eq!(out, sample);
}

#[test]
fn pad_if_needed_matches_opencv_border() {
    let fx = load();
    let sample = Sample {
        image: image(&fx["src"]),
        target: Target::Mask(mask(&fx["mask"])),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (mh, mw, name) in [(32, 48, "pad32x48"), (29, 45, "pad29x45")] {
        let out = PadIfNeeded {
            min_height: mh,
            min_width: mw,
            value: 0,
            mask_value: 255,
        }
        .apply(sample.clone(), &mut rng)
        .unwrap();
        assert_eq!(out.image.data, fx[name].data, "{name}");
        let Target::Mask(m) = out.target else {
            panic!()
        };
        assert_eq!(m.data, fx[&format!("{name}_mask")].data, "{name} mask");
    }
}

#[test]
fn brightness_contrast_matches_lut() {
    let fx = load();
    let src = image(&fx["src"]);
    let params = [
        (1.2, 0.1),
        (0.75, -0.2),
        (1.0, 0.25),
        (1.2913, -0.0537),
        (0.7, 0.3),
    ];
    for (k, (a, b)) in params.into_iter().enumerate() {
        let got = brightness_contrast(&src, a, b, true);
        assert_eq!(got.data, fx[&format!("bc{k}")].data, "alpha {a} beta {b}");
    }
}

#[test]
fn rgb_to_hsv_matches_opencv_exactly() {
    let fx = load();
    let src = &fx["src"];
    let want = &fx["rgb2hsv"];
    let mut got = Vec::new();
    for p in src.data.chunks(3) {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        got.extend_from_slice(&[h, s, v]);
    }
    assert_eq!(diff(&got, &want.data), (0, 0));
}

#[test]
fn hsv_to_rgb_rows_match_opencv_exactly() {
    let fx = load();
    for (input, want) in [("hsv_in", "hsv2rgb"), ("hsv_in24", "hsv2rgb24")] {
        let (input, want) = (&fx[input], &fx[want]);
        let got: Vec<u8> = input
            .data
            .chunks(input.w * 3)
            .flat_map(hsv_to_rgb_row)
            .collect();
        let (n, m) = diff(&got, &want.data);
        assert_eq!(
            (n, m),
            (0, 0),
            "{} columns: {n} values differ (max {m})",
            input.w
        );
    }
    // The per-pixel kernels differ only in the final rounding.
    for (h, s, v) in [(0, 0, 0), (179, 255, 255), (30, 128, 77), (90, 1, 254)] {
        let (a, b) = (hsv_to_rgb(h, s, v), hsv_to_rgb_truncated(h, s, v));
        assert!(a.0.abs_diff(b.0) <= 1 && a.1.abs_diff(b.1) <= 1 && a.2.abs_diff(b.2) <= 1);
    }
}

#[test]
fn shift_hsv_matches_opencv_exactly() {
    let fx = load();
    let src = image(&fx["src"]);
    let params = [
        (13.7, -22.4, 9.1),
        (-18.2, 27.9, -15.5),
        (5.0, 0.0, 0.0),
        (-19.99, 0.0, 19.5),
    ];
    for (k, (h, s, v)) in params.into_iter().enumerate() {
        let got = shift_hsv(&src, h, s, v).unwrap();
        let (n, m) = diff(&got.data, &fx[&format!("hsv_shift{k}")].data);
        assert_eq!((n, m), (0, 0), "params {k}: {n} values differ (max {m})");
    }
    assert_eq!(shift_hsv(&src, 0.0, 0.0, 0.0).unwrap(), src);
}
