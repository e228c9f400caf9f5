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

/// `splitmix64` of `models_f64/README`: one step of the SplitMix64 generator (wrapping).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `unif64(p, j)`: a uniform float64 in [0, 1) hashed from entry `p` and element `j`.
pub fn unif64(p: u64, j: u64) -> f64 {
    (splitmix64((p << 32) | j) >> 11) as f64 / (1u64 << 53) as f64
}

/// `2 * unif64(0xFFFF, k) - 1` over the flat index k of `shape`, as a float64 tensor: the
/// input of the `models_f64` fixtures.
pub fn hashed_input(shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f64> = (0..n as u64)
        .map(|k| 2.0 * unif64(0xFFFF, k) - 1.0)
        .collect();
    Tensor::from_slice(&v).view(shape)
}

/// Fills every entry by the well-conditioned hashed fill of `models_f64/README` (entry p of
/// the manifest, flat element j, u = unif64(p, j)): running variances 0.5 + u, running means
/// 0.2 (u - 0.5), tensors of 2 or more dims (2u - 1) sqrt(3 / fan_in), other weights
/// 1 + 0.2 (u - 0.5), everything else 0.2 (u - 0.5); `num_batches_tracked` is left alone.
/// Values are written in the variables' own kind (float64 after `VarStore::double`).
pub fn fill_hash(vs: &VarStore, manifest: &[(String, Vec<i64>)]) {
    let vars = vs.variables();
    mbls_engine::tch::no_grad(|| {
        for (p, (n, shape)) in manifest.iter().enumerate() {
            if n.ends_with("num_batches_tracked") {
                continue;
            }
            let numel: i64 = shape.iter().product();
            let fan_in = if shape.len() >= 2 {
                (numel / shape[0]) as f64
            } else {
                1.0
            };
            let f = |u: f64| -> f64 {
                if n.ends_with("running_var") {
                    0.5 + u
                } else if n.ends_with("running_mean") {
                    0.2 * (u - 0.5)
                } else if shape.len() >= 2 {
                    (2.0 * u - 1.0) * (3.0 / fan_in).sqrt()
                } else if n.ends_with("weight") {
                    1.0 + 0.2 * (u - 0.5)
                } else {
                    0.2 * (u - 0.5)
                }
            };
            let v: Vec<f64> = (0..numel as u64).map(|j| f(unif64(p as u64, j))).collect();
            let var = &vars[n];
            let value = Tensor::from_slice(&v)
                .view(shape.as_slice())
                .to_kind(var.kind());
            var.shallow_clone().copy_(&value);
        }
    });
}

/// A float `.npy` file as a float64 tensor of its shape.
pub fn read_f64(p: &Path) -> Tensor {
    let a = NpyArray::read(p).unwrap();
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    let v = match a.data {
        mbls_npy::NpyData::F64(v) => v,
        d => panic!("{}: float64 expected, found {:?}", p.display(), d.dtype()),
    };
    Tensor::from_slice(&v).view(shape.as_slice())
}
