//! DeepLabV3 parity with segmentation_models_pytorch 0.6.0 (the reference's `model=deeplabv3`):
//! state-dict names (the reference's smp 0.2-era spelling), shapes, parameter count, and the
//! eval- and train-mode outputs after filling every entry by the parity formula. The fixture
//! is committed (tests/fixtures/deeplab, made by its make_fixture.py).

use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use std::path::Path;

mod common;
use common::{check_state_dict, fill_by_formula, ints, manifest, read_f32, sin_ramp};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/deeplab"
    ))
}

#[test]
fn deeplabv3_matches_smp() {
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
            .unwrap();
    let manifest = manifest(&e);
    let opts = ModelOptions {
        aspp_dropout: 0.0,
        ..ModelOptions::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let model = build_model("deeplabv3", 21, &vs.root(), opts).unwrap();
    let num_parameters = e["num_parameters"].as_i64().unwrap();
    check_state_dict("deeplabv3", &model, &vs, &manifest, num_parameters);
    fill_by_formula(&vs, &manifest);
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
