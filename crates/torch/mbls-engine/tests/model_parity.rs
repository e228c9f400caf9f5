//! Parity with the original implementation's networks (`../shared/parity/models`): the
//! `state_dict` names, shapes and order, and the eval- and train-mode logits to 1e-4 after
//! every entry is filled by the formula of `parity/README.md`. Skips, printing why, when the
//! folder is absent.

use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use std::path::{Path, PathBuf};

mod common;
use common::{check_state_dict, fill_by_formula, ints, manifest, read_f32, sin_ramp};

fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn parity_dir() -> Option<PathBuf> {
    mbls_testkit::shared("parity/models")
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn run_case(case: &Path) -> (String, f64, Option<f64>) {
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
            .unwrap();
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let manifest = manifest(&e);
    let num_classes = manifest.last().unwrap().1[0];
    let has_dropout = name == "resnet101";
    let opts = ModelOptions {
        has_dropout,
        ..ModelOptions::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let model = build_model(&name, num_classes, &vs.root(), opts).unwrap();
    let num_parameters = e["num_parameters"].as_i64().unwrap();
    check_state_dict(&name, &model, &vs, &manifest, num_parameters);
    fill_by_formula(&vs, &manifest);

    let x = sin_ramp(&ints(&e["input_shape"]), 0.011, 0.0).to_kind(Kind::Float);
    let eval = mbls_engine::tch::no_grad(|| model.forward_t(&x, false));
    let err_eval = max_abs(&eval, &read_f32(&case.join("logits_eval.npy")));
    let err_train = (!has_dropout).then(|| {
        let train = mbls_engine::tch::no_grad(|| model.forward_t(&x, true));
        max_abs(&train, &read_f32(&case.join("logits_train.npy")))
    });
    (name, err_eval, err_train)
}

#[test]
fn every_model_case_matches_names_shapes_and_logits() {
    let Some(dir) = parity_dir() else { return };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let t = std::time::Instant::now();
        let (name, err_eval, err_train) = run_case(&case);
        note(&format!(
            "{name:<18} eval max|err| {err_eval:.2e}  train max|err| {}  ({:.1} s)",
            err_train.map_or("skipped (dropout)".to_owned(), |e| format!("{e:.2e}")),
            t.elapsed().as_secs_f64()
        ));
        if err_eval > 1e-4 || err_train.is_some_and(|e| e > 1e-4) {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "logits differ for {failures:?}");
}
