//! DeepLabV3 parity with segmentation_models_pytorch 0.6.0 (the reference's `model=deeplabv3`):
//! state-dict names (the reference's smp 0.2-era spelling), shapes, parameter count, and the
//! float64 eval- and train-mode outputs after filling every entry by the well-conditioned
//! hashed fill of `parity/README.md` (`models_f64`), on a hashed 4x3x40x40 input. The fixture
//! is committed (tests/fixtures/deeplab, made by its make_fixture.py).

use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use std::path::Path;

mod common;
use common::{check_state_dict, fill_hash, hashed_input, ints, manifest, read_f64};

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
    assert_eq!(e["dtype"], "float64", "fixture dtype");
    assert_eq!(e["fill"], "fill_hash", "fixture fill");
    let manifest = manifest(&e);
    let opts = ModelOptions {
        aspp_dropout: 0.0,
        ..ModelOptions::default()
    };
    let mut vs = VarStore::new(Device::Cpu);
    let model = build_model("deeplabv3", 21, &vs.root(), opts).unwrap();
    vs.double();
    let num_parameters = e["num_parameters"].as_i64().unwrap();
    check_state_dict("deeplabv3", &model, &vs, &manifest, num_parameters);
    fill_hash(&vs, &manifest);
    let x = hashed_input(&ints(&e["input_shape"]));
    let sub = |t: Tensor| t.slice(2, 0, None, 3).slice(3, 0, None, 3);
    for (train, file) in [
        (false, "logits_eval_sub3.npy"),
        (true, "logits_train_sub3.npy"),
    ] {
        let out = mbls_engine::tch::no_grad(|| model.forward_t(&x, train));
        assert_eq!(out.size(), ints(&e["output_shape"]), "output shape");
        assert_eq!(
            out.kind(),
            Kind::Double,
            "train={train}: computed in float64"
        );
        let want = read_f64(&fixture().join(file));
        let err = (sub(out) - &want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        eprintln!("deeplabv3 train={train}: max abs error {err:.2e} (outputs up to {scale:.3})");
        assert!(err <= 1e-8, "train={train}: max abs error {err}");
    }
}
