//! Benchmarks of the full metric sets (run: `cargo bench -p mbls-metrics`).
//!
//! - classification: ECE, adaptive ECE, classwise ECE, NLL, top-1/top-5, Brier (and the rest
//!   of `ClassificationMetrics`) on 1,000,000 x 100 float32 logits;
//! - segmentation: IoU/Dice/accuracy plus reference and global pixel calibration on
//!   8 x 21 x 512 x 512 logits.
//!
//! The PyTorch side of the comparison is `bench/torch_metrics.py`.

use criterion::{Criterion, criterion_group, criterion_main};
use mbls_metrics::{ClassificationOptions, SegmentationAccumulator, SegmentationOptions, evaluate};
use std::hint::black_box;

/// Logits with a planted signal, labels with ~60% top-1 accuracy; deterministic.
pub fn synth(n: usize, c: usize) -> (Vec<f32>, Vec<i64>) {
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut logits = vec![0f32; n * c];
    let mut labels = vec![0i64; n];
    for i in 0..n {
        let y = (next() * c as f32) as usize % c;
        labels[i] = y as i64;
        for k in 0..c {
            logits[i * c + k] = next() * 6.0 - 3.0 + if k == y { 2.5 } else { 0.0 };
        }
    }
    (logits, labels)
}

fn classification(cr: &mut Criterion) {
    let (n, c) = (1_000_000, 100);
    let (logits, labels) = synth(n, c);
    let mut g = cr.benchmark_group("classification");
    g.sample_size(10);
    g.bench_function("full_set_1M_x_100", |b| {
        b.iter(|| {
            evaluate(
                black_box(&logits),
                black_box(&labels),
                c,
                ClassificationOptions::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

fn segmentation(cr: &mut Criterion) {
    let (b, c, h, w) = (8, 21, 512, 512);
    let (rows, pix_labels) = synth(b * h * w, c);
    // rows are pixel-major; lay them out as B x C x H x W
    let hw = h * w;
    let mut logits = vec![0f32; b * c * hw];
    for img in 0..b {
        for p in 0..hw {
            for k in 0..c {
                logits[img * c * hw + k * hw + p] = rows[(img * hw + p) * c + k];
            }
        }
    }
    // 10% ignore pixels (255)
    let labels: Vec<i64> = pix_labels
        .iter()
        .enumerate()
        .map(|(i, &y)| if i % 10 == 3 { 255 } else { y })
        .collect();
    drop(rows);
    let mut g = cr.benchmark_group("segmentation");
    g.sample_size(10);
    g.bench_function("full_set_8x21x512x512", |bch| {
        bch.iter(|| {
            let mut acc = SegmentationAccumulator::new(c, SegmentationOptions::default()).unwrap();
            acc.update_batch(black_box(&logits), [b, c, h, w], black_box(&labels))
                .unwrap();
            acc.finish().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, classification, segmentation);
criterion_main!(benches);
