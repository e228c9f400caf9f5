//! Times every calibrator's fit and apply on the logits that `bench/calibrators.py --save DIR`
//! wrote (`val_logits.npy`, `val_labels.npy`, `test_logits.npy`, `test_labels.npy`), so
//! that mbls and the Python libraries are measured on the same inputs in the same sitting
//! (`bench/compare_calibrators.sh`). Prints one JSON line per method: the median fit and
//! apply seconds, the test NLL and ECE after calibration, and the fitted parameters' head.
//!
//! Usage: `bench_calibrators DIR [REPEATS] [METHOD,...]`

use mbls_metrics::calibrate::{FitOptions, Method, Params, fit};
use mbls_metrics::{ClassificationOptions, evaluate};
use mbls_npy::NpyArray;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn read(dir: &std::path::Path, name: &str) -> NpyArray {
    NpyArray::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: bench_calibrators DIR [REPEATS] [METHOD,...]"),
    );
    let repeats: usize = args.next().map_or(3, |s| s.parse().expect("REPEATS"));
    let methods: Vec<Method> = match args.next() {
        Some(list) => list.split(',').map(|m| Method::parse(m).unwrap()).collect(),
        None => Method::ALL.to_vec(),
    };
    let vl = read(&dir, "val_logits.npy");
    let k = vl.shape[1];
    let vl = vl.into_f32().unwrap();
    let vy = read(&dir, "val_labels.npy").to_i64().unwrap();
    let tl = read(&dir, "test_logits.npy").into_f32().unwrap();
    let ty = read(&dir, "test_labels.npy").to_i64().unwrap();
    let threads = rayon::current_num_threads();
    for m in methods {
        if m.binary_only() != (k == 2) && m.binary_only() {
            continue;
        }
        let mut fit_t = Vec::new();
        let mut apply_t = Vec::new();
        let mut last = None;
        for _ in 0..repeats {
            let t = Instant::now();
            let cal = fit(m, &vl, &vy, k, &FitOptions::default()).unwrap();
            fit_t.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let out = cal.apply(&tl).unwrap();
            apply_t.push(t.elapsed().as_secs_f64());
            last = Some((cal, out));
        }
        let (cal, out) = last.unwrap();
        let opts = ClassificationOptions {
            kind: out.kind,
            keep_confidences: false,
            ..Default::default()
        };
        let after = evaluate(&out.scores, &ty, k, opts).unwrap();
        let head: Vec<f64> = match &cal.params {
            Params::Temperature { temperature } | Params::TemperatureNll { temperature } => {
                vec![*temperature]
            }
            Params::Vector { weights, .. } => weights.iter().take(5).copied().collect(),
            Params::Matrix { weights, .. } | Params::Dirichlet { weights, .. } => {
                weights[0].iter().take(5).copied().collect()
            }
            Params::Histogram { values, .. } => values[0].iter().take(5).copied().collect(),
            Params::Isotonic { y, .. } => y[0].iter().take(5).copied().collect(),
            Params::Platt { a, b } => vec![*a, *b],
            Params::Beta { a, b, c } => vec![*a, *b, *c],
        };
        println!(
            "{}",
            serde_json::json!({
                "impl": "mbls",
                "method": m.name(),
                "threads": threads,
                "n_val": vy.len(),
                "n_test": ty.len(),
                "classes": k,
                "fit_s": median(fit_t),
                "apply_s": median(apply_t),
                "iterations": cal.fit.iterations,
                "val_nll_before": cal.fit.nll_before,
                "val_nll_after": cal.fit.nll_after,
                "test_nll": after.nll,
                "test_ece": after.ece,
                "params_head": head,
            })
        );
    }
}
