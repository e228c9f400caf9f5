//! Renders example figures for an overconfident 15-bin model.
//!
//! `cargo run -p mbls-plot --example reliability_example [DIR]` (default `/tmp/plot-example`).

use mbls_plot::{Bin, Reliability};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/plot-example".to_owned());
    // (count, mean confidence, accuracy) per equal-width bin over [0, 1]: most samples
    // at high confidence, accuracy falling behind confidence there (overconfidence).
    let data: [(u64, f64, f64); 15] = [
        (0, 0.0, 0.0),
        (0, 0.0, 0.0),
        (4, 0.178, 0.25),
        (21, 0.241, 0.238),
        (48, 0.305, 0.271),
        (83, 0.371, 0.325),
        (131, 0.438, 0.382),
        (172, 0.503, 0.43),
        (224, 0.569, 0.478),
        (287, 0.636, 0.533),
        (350, 0.702, 0.589),
        (452, 0.769, 0.646),
        (611, 0.836, 0.712),
        (957, 0.903, 0.781),
        (6660, 0.985, 0.902),
    ];
    let total: u64 = data.iter().map(|d| d.0).sum();
    let bins: Vec<Bin> = data
        .iter()
        .enumerate()
        .map(|(i, &(count, conf, acc))| Bin {
            lower: i as f64 / 15.0,
            upper: (i + 1) as f64 / 15.0,
            count,
            mean_confidence: (count > 0).then_some(conf),
            accuracy: (count > 0).then_some(acc),
        })
        .collect();
    let weighted = |f: fn(&(u64, f64, f64)) -> f64| {
        data.iter().map(|d| d.0 as f64 * f(d)).sum::<f64>() / total as f64
    };
    let r = Reliability {
        total,
        mean_accuracy: weighted(|d| d.2),
        mean_confidence: weighted(|d| d.1),
        ece: weighted(|d| (d.1 - d.2).abs()),
        title: "ResNet-110 on CIFAR-100 (uncalibrated)".to_owned(),
        bins,
    };
    for path in mbls_plot::write_all(&r, dir.as_ref(), "example")? {
        println!("{}", path.display());
    }
    Ok(())
}
