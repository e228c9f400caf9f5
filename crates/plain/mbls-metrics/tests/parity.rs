//! Parity with the original implementation's own outputs (`../shared/parity`).
//! Each test skips, printing why, when the parity folder is absent.

use mbls_metrics::{
    ClassificationOptions, SegmentationAccumulator, SegmentationOptions, evaluate,
    grid_search_temperature, scale_logits,
};
use mbls_npy::NpyArray;
use std::path::{Path, PathBuf};

fn parity_dir(sub: &str) -> Option<PathBuf> {
    mbls_testkit::shared(&format!("parity/{sub}"))
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn expected(case: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap()).unwrap()
}

fn close(name: &str, case: &Path, got: f64, want: f64, rel: f64) {
    let tol = rel * want.abs().max(1e-3);
    if std::env::var_os("MBLS_PARITY_VERBOSE").is_some() {
        let r = (got - want).abs() / want.abs().max(1e-3);
        eprintln!(
            "{:<28} {name:<22} rel.err {r:.2e}",
            case.file_name().unwrap().to_string_lossy()
        );
    }
    assert!(
        (got - want).abs() <= tol,
        "{}: {name} = {got}, expected {want} (diff {:e})",
        case.display(),
        (got - want).abs()
    );
}

fn load(case: &Path, logits: &str, labels: &str) -> (Vec<f32>, Vec<usize>, Vec<i64>) {
    let l = NpyArray::read(case.join(logits)).unwrap();
    let y = NpyArray::read(case.join(labels)).unwrap();
    (l.to_f32().unwrap(), l.shape.clone(), y.to_i64().unwrap())
}

#[test]
fn metrics_match_reference() {
    let Some(dir) = parity_dir("metrics") else {
        return;
    };
    let all = cases(&dir);
    assert!(!all.is_empty());
    for case in all {
        let e = expected(&case);
        let (logits, shape, labels) = load(&case, "logits.npy", "labels.npy");
        let c = shape[1];
        let m = evaluate(&logits, &labels, c, ClassificationOptions::default()).unwrap();
        let f = |k: &str| e[k].as_f64().unwrap();
        close("ece", &case, m.ece, f("ece"), 1e-5);
        close("aece", &case, m.aece.unwrap(), f("aece"), 1e-5);
        close("cece", &case, m.cece, f("cece"), 1e-5);
        close("nll", &case, m.nll, f("nll"), 1e-5);
        close("acc", &case, m.acc, f("acc"), 1e-9);
        close("macc", &case, m.macc, f("macc"), 1e-9);
        if let Some(a5) = e.get("acc_5") {
            close("acc_5", &case, m.acc_5.unwrap(), a5.as_f64().unwrap(), 1e-9);
        } else {
            assert!(c <= 5);
        }
        let ls = m.logits.unwrap();
        close("mean_diffs", &case, ls.mean_diffs, f("mean_diffs"), 1e-5);
        close("max_diffs", &case, ls.max_diffs, f("max_diffs"), 1e-5);
        close("margin", &case, ls.margin, f("margin"), 1e-5);
        assert_eq!(m.num_bins as f64, f("num_bins"));

        let g = grid_search_temperature(&logits, &labels, c, 15).unwrap();
        close(
            "temperature_grid_ece",
            &case,
            g.temperature_ece,
            f("temperature_grid_ece"),
            1e-9,
        );
        close(
            "temperature_grid_nll",
            &case,
            g.temperature_nll,
            f("temperature_grid_nll"),
            1e-9,
        );
        let scaled = scale_logits(&logits, g.temperature_ece);
        let after = evaluate(&scaled, &labels, c, ClassificationOptions::default()).unwrap();
        close(
            "ece_after_temperature",
            &case,
            after.ece,
            f("ece_after_temperature"),
            1e-5,
        );
        eprintln!("ok {}", case.display());
    }
}

#[test]
fn segmentation_matches_reference() {
    let Some(dir) = parity_dir("segment") else {
        return;
    };
    let all = cases(&dir);
    assert!(!all.is_empty());
    for case in all {
        let e = expected(&case);
        let f = |k: &str| e[k].as_f64().unwrap();
        let classes = f("num_classes") as usize;
        let opts = SegmentationOptions {
            num_bins: f("num_bins") as usize,
            ignore_index: Some(f("ignore_index") as i64),
            ..Default::default()
        };
        let mut acc = SegmentationAccumulator::new(classes, opts).unwrap();
        for b in 0..f("num_batches") as usize {
            let (logits, shape, labels) = load(
                &case,
                &format!("logits_{b}.npy"),
                &format!("labels_{b}.npy"),
            );
            acc.update_batch(&logits, [shape[0], shape[1], shape[2], shape[3]], &labels)
                .unwrap();
        }
        let m = acc.finish().unwrap();
        close("miou", &case, m.miou, f("miou"), 1e-9);
        close("mdsc", &case, m.mdsc, f("mdsc"), 1e-9);
        close("macc", &case, m.macc, f("macc"), 1e-9);
        let r = m.calibration_reference.unwrap();
        close("pixel_nll", &case, r.nll, f("pixel_nll"), 1e-5);
        close("pixel_ece", &case, r.ece, f("pixel_ece"), 1e-5);
        close("pixel_aece", &case, r.aece, f("pixel_aece"), 1e-5);
        close("pixel_cece", &case, r.cece, f("pixel_cece"), 1e-5);
        eprintln!("ok {}", case.display());
    }
}
