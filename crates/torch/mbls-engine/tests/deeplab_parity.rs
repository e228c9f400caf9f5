//! DeepLabV3 parity with segmentation_models_pytorch 0.6.0 (the reference's `model=deeplabv3`):
//! state-dict names (the reference's smp 0.2-era spelling), shapes, parameter count, and the
//! eval- and train-mode outputs after filling every entry by the parity formula. The fixture
//! is committed (tests/fixtures/deeplab, made by its make_fixture.py).

use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use mbls_npy::NpyArray;
use std::path::Path;

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/deeplab"
    ))
}

fn read_f32(p: &Path) -> Tensor {
    let a = NpyArray::read(p).unwrap();
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&a.to_f32().unwrap()).view(shape.as_slice())
}

fn sin_ramp(shape: &[i64], a: f64, b: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    (Tensor::arange(n, (Kind::Double, Device::Cpu)) * a + b)
        .sin()
        .view(shape)
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect()
}

#[test]
fn deeplabv3_matches_smp() {
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
            .unwrap();
    let manifest: Vec<(String, Vec<i64>)> = e["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[0].as_str().unwrap().to_owned(), ints(&v[1])))
        .collect();
    let opts = ModelOptions {
        aspp_dropout: 0.0,
        ..ModelOptions::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let model = build_model("deeplabv3", 21, &vs.root(), opts).unwrap();
    let want: Vec<&str> = manifest.iter().map(|(n, _)| n.as_str()).collect();
    let got: Vec<&str> = model
        .state_dict_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(got, want, "state_dict order");
    let vars = vs.variables();
    assert_eq!(vars.len(), manifest.len());
    let mut num_parameters = 0;
    for (n, shape) in &manifest {
        assert_eq!(&vars[n].size(), shape, "shape of {n}");
        if vars[n].requires_grad() {
            num_parameters += vars[n].numel();
        }
    }
    assert_eq!(num_parameters as i64, e["num_parameters"].as_i64().unwrap());

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
    let x = sin_ramp(&ints(&e["input_shape"]), 0.011, 0.0).to_kind(Kind::Float);
    let sub = |t: Tensor| t.slice(2, 0, None, 3).slice(3, 0, None, 3);
    for (train, file) in [
        (false, "logits_eval_sub3.npy"),
        (true, "logits_train_sub3.npy"),
    ] {
        let out = mbls_engine::tch::no_grad(|| model.forward_t(&x, train));
        assert_eq!(out.size(), ints(&e["output_shape"]), "output shape");
        let want = read_f32(&fixture().join(file));
        let err = (sub(out) - &want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        eprintln!("deeplabv3 train={train}: max abs error {err:.2e} (outputs up to {scale:.3})");
        assert!(err <= 1e-4, "train={train}: max abs error {err}");
    }
}
