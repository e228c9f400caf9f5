//! Forward + backward time of the calibration losses against plain CE, on 2 threads, for
//! the shapes of the benchmark table (`bench/compare_losses.sh` runs it beside PyTorch).
//! Prints one JSON line per (loss, shape): median seconds over the repeats and the ratio to CE.
//!
//! Usage: `bench_losses [REPEATS] [THREADS]`

use mbls_engine::losses::{LossSpec, build_loss};
use mbls_engine::tch::{self, Device, Kind, Tensor};
use serde_json::json;
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
    let losses: Vec<String> = std::env::var("MBLS_BENCH_LOSSES")
        .map(|s| s.split(",").map(String::from).collect())
        .unwrap_or_else(|_| {
            [
                "ce",
                "logit_margin",
                "focal",
                "focal_adaptive",
                "mmce",
                "mmce_weighted",
                "ls",
                "penalty_ent",
                "penalty_l1",
                "brier",
            ]
            .map(String::from)
            .to_vec()
        });
    let only = std::env::var("MBLS_BENCH_SHAPES").ok();
    for (label, shape) in shapes {
        if let Some(o) = &only
            && !o.split(',').any(|s| s == *label)
        {
            continue;
        }
        let dense = shape.len() > 2;
        let logits = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 3.0;
        let c = shape[1];
        let mut tshape = vec![shape[0]];
        tshape.extend_from_slice(&shape[2..]);
        let targets = Tensor::randint(c, tshape.as_slice(), (Kind::Int64, Device::Cpu));
        let reps = if dense { (repeats / 4).max(3) } else { repeats };
        let names: Vec<&str> = losses
            .iter()
            .map(|s| s.as_str())
            .filter(|n| !(dense && n.starts_with("mmce")))
            .collect();
        // MMCE is O(N^2) in the number of pixels (as in the reference): not run on dense input
        let built: Vec<_> = names
            .iter()
            .map(|n| {
                build_loss(
                    &LossSpec::from_params(
                        n,
                        &mbls_testkit::loss_params(n, &serde_json::json!({})),
                    )
                    .unwrap(),
                )
                .unwrap()
            })
            .collect();
        // Each loss is timed in interleaved pairs with CE (alternating which runs first), so
        // that drift on a shared machine and one loss's cache or allocator effects on the
        // next affect both sides of a ratio alike.
        let ce = build_loss(
            &LossSpec::from_params(
                "ce",
                &mbls_testkit::loss_params("ce", &serde_json::json!({})),
            )
            .unwrap(),
        )
        .unwrap();
        let time_one = |loss: &dyn mbls_engine::losses::Loss| {
            let x = logits.detach().set_requires_grad(true);
            let t = Instant::now();
            let terms = loss.forward(&x, &targets).unwrap();
            terms.total().backward();
            let _ = x.grad().sum(Kind::Float).double_value(&[]);
            t.elapsed().as_secs_f64()
        };
        for (name, loss) in names.iter().zip(&built) {
            let (mut tc, mut tl) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
            for i in 0..reps + 2 {
                let (a, b) = if i % 2 == 0 {
                    let a = time_one(ce.as_ref());
                    (a, time_one(loss.as_ref()))
                } else {
                    let b = time_one(loss.as_ref());
                    (time_one(ce.as_ref()), b)
                };
                if i >= 2 {
                    tc.push(a);
                    tl.push(b);
                }
            }
            let (mc, ml) = (median(tc), median(tl));
            println!(
                "{}",
                json!({"impl": "mbls", "loss": name, "shape": label, "threads": threads,
                       "median_s": ml, "ce_median_s": mc, "vs_ce": ml / mc})
            );
        }
    }
}
