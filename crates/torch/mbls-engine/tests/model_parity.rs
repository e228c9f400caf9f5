//! Parity with the original implementation's networks (`../shared/parity/models`): the
//! `state_dict` names, shapes and order, and the eval- and train-mode logits to 1e-4 after
//! every entry is filled by the formula of `parity/README.md`. Skips, printing why, when the
//! folder is absent.

use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use mbls_npy::NpyArray;
use std::path::{Path, PathBuf};

fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn parity_dir() -> Option<PathBuf> {
    mbls_testkit::shared("parity/models")
}

fn read_f32(p: &Path) -> Tensor {
    let a = NpyArray::read(p).unwrap();
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&a.to_f32().unwrap()).view(shape.as_slice())
}

/// `sin(a * j + b)` over the flat index j of `shape`, in float64.
fn sin_ramp(shape: &[i64], a: f64, b: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    (Tensor::arange(n, (Kind::Double, Device::Cpu)) * a + b)
        .sin()
        .view(shape)
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
    let manifest: Vec<(String, Vec<i64>)> = e["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let shape = v[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            (v[0].as_str().unwrap().to_owned(), shape)
        })
        .collect();
    let num_classes = manifest.last().unwrap().1[0];
    let has_dropout = name == "resnet101";
    let opts = ModelOptions {
        has_dropout,
        ..ModelOptions::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let model = build_model(&name, num_classes, &vs.root(), opts).unwrap();

    // Names in state_dict order, then the VarStore's contents as a set with shapes.
    let want_names: Vec<&str> = manifest.iter().map(|(n, _)| n.as_str()).collect();
    let got_names: Vec<&str> = model
        .state_dict_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(got_names, want_names, "{name}: state_dict order");
    let vars = vs.variables();
    assert_eq!(vars.len(), manifest.len(), "{name}: variable count");
    let mut num_parameters = 0;
    for (n, shape) in &manifest {
        let v = vars
            .get(n)
            .unwrap_or_else(|| panic!("{name}: no variable {n}"));
        assert_eq!(&v.size(), shape, "{name}: shape of {n}");
        if n.ends_with("num_batches_tracked") {
            assert_eq!(v.kind(), Kind::Int64, "{name}: {n}");
        } else if v.requires_grad() {
            num_parameters += v.numel();
        }
    }
    assert_eq!(
        num_parameters as i64,
        e["num_parameters"].as_i64().unwrap(),
        "{name}: trainable parameter count"
    );

    // Fill every entry by the formula (p = position in the manifest).
    mbls_engine::tch::no_grad(|| {
        for (p, (n, shape)) in manifest.iter().enumerate() {
            if n.ends_with("num_batches_tracked") {
                continue;
            }
            let s = sin_ramp(shape, 0.37, 1.3 * p as f64);
            let value = if n.ends_with("running_var") {
                s.abs() * 0.5 + 1.0
            } else {
                s * 0.05
            };
            let mut v = vars[n].shallow_clone();
            v.copy_(&value.to_kind(Kind::Float));
        }
    });

    let input_shape: Vec<i64> = e["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect();
    let x = sin_ramp(&input_shape, 0.011, 0.0).to_kind(Kind::Float);
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
