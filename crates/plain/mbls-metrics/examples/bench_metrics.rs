//! Times the metric sets on the inputs that `bench/torch_metrics.py --save DIR` wrote, so that
//! Rust and PyTorch are measured on the same data in the same sitting (`bench/compare.sh`).
//! Prints one JSON line per set with the median seconds and the metric values.
//!
//! Usage: `bench_metrics DIR [REPEATS] [classification|segmentation|all]`

use mbls_metrics::{ClassificationOptions, SegmentationAccumulator, SegmentationOptions, evaluate};
use mbls_npy::NpyArray;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: bench_metrics DIR [REPEATS] [WHICH]"),
    );
    let repeats: usize = args.next().map_or(3, |s| s.parse().expect("REPEATS"));
    let which = args.next().unwrap_or_else(|| "all".into());
    let threads = rayon::current_num_threads();
    if which == "all" || which == "classification" {
        let l = NpyArray::read(dir.join("cls_logits.npy")).unwrap();
        let y = NpyArray::read(dir.join("cls_labels.npy"))
            .unwrap()
            .to_i64()
            .unwrap();
        let (n, c) = (l.shape[0], l.shape[1]);
        let l = l.into_f32().unwrap();
        let mut times = Vec::new();
        let mut m = None;
        for _ in 0..repeats {
            let t = Instant::now();
            m = Some(evaluate(&l, &y, c, ClassificationOptions::default()).unwrap());
            times.push(t.elapsed().as_secs_f64());
        }
        let m = m.unwrap();
        println!(
            "{}",
            serde_json::json!({"set": format!("classification {n}x{c}"), "impl": "mbls", "threads": threads,
                "median_s": median(times.clone()), "runs": times,
                "values": {"ece": m.ece, "aece": m.aece, "cece": m.cece, "nll": m.nll, "acc": m.acc,
                           "acc_5": m.acc_5, "brier": m.brier}})
        );
    }
    if which == "all" || which == "segmentation" {
        let l = NpyArray::read(dir.join("seg_logits.npy")).unwrap();
        let y = NpyArray::read(dir.join("seg_labels.npy"))
            .unwrap()
            .to_i64()
            .unwrap();
        let dims = [l.shape[0], l.shape[1], l.shape[2], l.shape[3]];
        let l = l.into_f32().unwrap();
        let mut times = Vec::new();
        let mut m = None;
        for _ in 0..repeats {
            let t = Instant::now();
            let mut acc =
                SegmentationAccumulator::new(dims[1], SegmentationOptions::default()).unwrap();
            acc.update_batch(&l, dims, &y).unwrap();
            m = Some(acc.finish().unwrap());
            times.push(t.elapsed().as_secs_f64());
        }
        let m = m.unwrap();
        let r = m.calibration_reference.unwrap();
        println!(
            "{}",
            serde_json::json!({"set": "segmentation 8x21x512x512", "impl": "mbls", "threads": threads,
                "median_s": median(times.clone()), "runs": times,
                "values": {"miou": m.miou, "nll": r.nll, "ece": r.ece, "aece": r.aece, "cece": r.cece}})
        );
    }
}
