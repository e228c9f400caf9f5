//! Forward + backward time of the calibration losses against plain CE, on 2 threads, for
//! the shapes of the benchmark table (`bench/compare_losses.sh` runs it beside PyTorch).
//! Prints one JSON line per (loss, shape): median seconds over the repeats and the ratio to CE.
//!
//! Usage: `bench_losses [REPEATS] [THREADS]`

use mbls_engine::losses::{LossSpec, build_loss};
use mbls_engine::tch::{self, Device, Kind, Tensor};
use serde_json::{Map, json};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let repeats: usize = args.next().map_or(20, |s| s.parse().expect("REPEATS"));
    let threads: i32 = args.next().map_or(2, |s| s.parse().expect("THREADS"));
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let shapes: &[(&str, Vec<i64>)] = &[
        ("128x10", vec![128, 10]),
        ("64x200", vec![64, 200]),
        ("8x21x512x512", vec![8, 21, 512, 512]),
    ];
    let losses = ["ce", "logit_margin", "focal", "focal_adaptive", "mmce"];
    for (label, shape) in shapes {
        let dense = shape.len() > 2;
        let logits = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 3.0;
        let c = shape[1];
        let mut tshape = vec![shape[0]];
        tshape.extend_from_slice(&shape[2..]);
        let targets = Tensor::randint(c, tshape.as_slice(), (Kind::Int64, Device::Cpu));
        let reps = if dense { (repeats / 4).max(3) } else { repeats };
        let mut ce_time = None;
        for name in losses {
            if dense && name == "mmce" {
                continue; // O(N^2) in the number of pixels, as in the reference
            }
            let loss = build_loss(&LossSpec::from_params(name, &Map::new()).unwrap()).unwrap();
            let mut times = Vec::with_capacity(reps);
            for i in 0..reps + 2 {
                let x = logits.detach().set_requires_grad(true);
                let t = Instant::now();
                let terms = loss.forward(&x, &targets).unwrap();
                terms.total().backward();
                let _ = x.grad().sum(Kind::Float).double_value(&[]);
                if i >= 2 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            let m = median(times);
            if name == "ce" {
                ce_time = Some(m);
            }
            println!(
                "{}",
                json!({"impl": "mbls", "loss": name, "shape": label, "threads": threads,
                       "median_s": m, "vs_ce": m / ce_time.unwrap()})
            );
        }
    }
}
