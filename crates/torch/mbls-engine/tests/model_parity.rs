//! Parity with the original implementation's networks, after every `state_dict` entry is
//! filled by a formula (`../shared/parity/README.md`):
//!
//! - `parity/models` (float32, periodic fill, batch 2): the `state_dict` names, shapes and
//!   order, eval-mode logits of every model to 1e-4, and train-mode logits only where that
//!   fixture is well-conditioned (`resnet18_*`, `global_pooling`). For the deeper models its
//!   near-degenerate BatchNorm channels amplify rounding about a million-fold, so their
//!   train-mode outputs differ between CPUs and thread counts in PyTorch itself.
//! - `parity/models_f64` (float64, hashed fill that keeps BatchNorm well-conditioned,
//!   batch 8): eval- and train-mode logits of every model to 1e-8 (eval only for `resnet101`,
//!   whose train mode has dropout). These hold on any CPU and thread count.
//!
//! Each test skips, printing why, when its folder is absent.

use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use std::path::{Path, PathBuf};

mod common;
use common::{
    check_state_dict, fill_by_formula, fill_hash, hashed_input, ints, manifest, read_f32, read_f64,
    sin_ramp,
};

/// Tolerance of the float32 fixture (eval everywhere, train where well-conditioned).
const TOL_F32: f64 = 1e-4;
/// Tolerance of the float64 fixture.
const TOL_F64: f64 = 1e-8;

fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// Whether the float32 fixture's train-mode logits of `name` are well-conditioned.
fn f32_train_is_stable(name: &str) -> bool {
    name.starts_with("resnet18_") || name == "global_pooling"
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Builds the model of a case on the CPU, checking its state dict against `manifest_of`.
fn build(name: &str, manifest_of: &serde_json::Value) -> (VarStore, mbls_engine::models::Model) {
    let manifest = manifest(manifest_of);
    let num_classes = manifest.last().unwrap().1[0];
    let opts = ModelOptions {
        has_dropout: name == "resnet101",
        ..ModelOptions::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let model = build_model(name, num_classes, &vs.root(), opts).unwrap();
    let num_parameters = manifest_of["num_parameters"].as_i64().unwrap();
    check_state_dict(name, &model, &vs, &manifest, num_parameters);
    (vs, model)
}

#[test]
fn every_model_matches_names_shapes_and_float32_logits() {
    let Some(dir) = mbls_testkit::shared("parity/models") else {
        return;
    };
    let mut failures = Vec::new();
    for case in cases(&dir) {
        let t = std::time::Instant::now();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let e = json(&case.join("expected.json"));
        let (vs, model) = build(&name, &e);
        fill_by_formula(&vs, &manifest(&e));
        let x = sin_ramp(&ints(&e["input_shape"]), 0.011, 0.0).to_kind(Kind::Float);
        let eval = mbls_engine::tch::no_grad(|| model.forward_t(&x, false));
        let err_eval = max_abs(&eval, &read_f32(&case.join("logits_eval.npy")));
        let err_train = f32_train_is_stable(&name).then(|| {
            let train = mbls_engine::tch::no_grad(|| model.forward_t(&x, true));
            max_abs(&train, &read_f32(&case.join("logits_train.npy")))
        });
        note(&format!(
            "f32 {name:<18} eval max|err| {err_eval:.2e}  train max|err| {}  ({:.1} s)",
            err_train.map_or(
                "not compared (ill-conditioned: see models_f64)".to_owned(),
                |e| { format!("{e:.2e}") }
            ),
            t.elapsed().as_secs_f64()
        ));
        if err_eval > TOL_F32 || err_train.is_some_and(|e| e > TOL_F32) {
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "float32 logits differ for {failures:?}"
    );
}

#[test]
fn every_model_matches_float64_logits_in_eval_and_train_mode() {
    let Some(dir) = mbls_testkit::shared("parity/models_f64") else {
        return;
    };
    let Some(manifests) = mbls_testkit::shared("parity/models") else {
        return;
    };
    let mut failures = Vec::new();
    for case in cases(&dir) {
        let t = std::time::Instant::now();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let e = json(&case.join("expected.json"));
        assert_eq!(e["dtype"], "float64", "{name}");
        // The float64 cases carry no state dict of their own: it is the float32 case's.
        let m = json(&manifests.join(&name).join("expected.json"));
        let (mut vs, model) = build(&name, &m);
        vs.double();
        fill_hash(&vs, &manifest(&m));
        let x = hashed_input(&ints(&e["input_shape"]));
        let eval = mbls_engine::tch::no_grad(|| model.forward_t(&x, false));
        assert_eq!(eval.kind(), Kind::Double, "{name}: computed in float64");
        let err_eval = max_abs(&eval, &read_f64(&case.join("logits_eval.npy")));
        let err_train = (name != "resnet101").then(|| {
            let train = mbls_engine::tch::no_grad(|| model.forward_t(&x, true));
            max_abs(&train, &read_f64(&case.join("logits_train.npy")))
        });
        note(&format!(
            "f64 {name:<18} eval max|err| {err_eval:.2e}  train max|err| {}  ({:.1} s)",
            err_train.map_or("skipped (dropout)".to_owned(), |e| format!("{e:.2e}")),
            t.elapsed().as_secs_f64()
        ));
        if err_eval > TOL_F64 || err_train.is_some_and(|e| e > TOL_F64) {
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "float64 logits differ for {failures:?}"
    );
}
