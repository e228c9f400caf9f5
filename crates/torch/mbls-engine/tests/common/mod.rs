//! Helpers shared by the engine's parity tests: `.npy` files as tensors, the parity formula
//! of `parity/README.md`, and the state-dict checks of a built model against a manifest.
// each test binary uses a part of this module
#![allow(dead_code)]

use mbls_engine::models::Model;
use mbls_engine::tch::nn::VarStore;
use mbls_engine::tch::{Device, Kind, Tensor};
use mbls_npy::NpyArray;
use std::path::Path;

/// A float `.npy` file as a float32 tensor of its shape.
pub fn read_f32(p: &Path) -> Tensor {
    let a = NpyArray::read(p).unwrap();
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&a.to_f32().unwrap()).view(shape.as_slice())
}

/// An integer `.npy` file as an int64 tensor of its shape.
pub fn read_i64(p: &Path) -> Tensor {
    let a = NpyArray::read(p).unwrap();
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&a.to_i64().unwrap()).view(shape.as_slice())
}

/// `sin(a * j + b)` over the flat index j of `shape`, in float64.
pub fn sin_ramp(shape: &[i64], a: f64, b: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    (Tensor::arange(n, (Kind::Double, Device::Cpu)) * a + b)
        .sin()
        .view(shape)
}

/// A JSON array of integers.
pub fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect()
}

/// The `state_dict` manifest of an `expected.json`: `[name, shape]` pairs in order.
pub fn manifest(e: &serde_json::Value) -> Vec<(String, Vec<i64>)> {
    e["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[0].as_str().unwrap().to_owned(), ints(&v[1])))
        .collect()
}

/// Checks the model's `state_dict` order, the VarStore's names and shapes (int64
/// `num_batches_tracked`) and the trainable parameter count against the manifest.
pub fn check_state_dict(
    what: &str,
    model: &Model,
    vs: &VarStore,
    manifest: &[(String, Vec<i64>)],
    num_parameters: i64,
) {
    let want: Vec<&str> = manifest.iter().map(|(n, _)| n.as_str()).collect();
    let got: Vec<&str> = model
        .state_dict_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(got, want, "{what}: state_dict order");
    let vars = vs.variables();
    assert_eq!(vars.len(), manifest.len(), "{what}: variable count");
    let mut count = 0;
    for (n, shape) in manifest {
        let v = vars
            .get(n)
            .unwrap_or_else(|| panic!("{what}: no variable {n}"));
        assert_eq!(&v.size(), shape, "{what}: shape of {n}");
        if n.ends_with("num_batches_tracked") {
            assert_eq!(v.kind(), Kind::Int64, "{what}: {n}");
        } else if v.requires_grad() {
            count += v.numel();
        }
    }
    assert_eq!(
        count as i64, num_parameters,
        "{what}: trainable parameter count"
    );
}

/// Fills every entry by the parity formula (p = position in the manifest): running
/// variances `|sin(0.37 j + 1.3 p)| * 0.5 + 1`, everything else `sin(0.37 j + 1.3 p) * 0.05`;
/// `num_batches_tracked` is left alone.
pub fn fill_by_formula(vs: &VarStore, manifest: &[(String, Vec<i64>)]) {
    let vars = vs.variables();
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
            vars[n].shallow_clone().copy_(&value.to_kind(Kind::Float));
        }
    });
}
