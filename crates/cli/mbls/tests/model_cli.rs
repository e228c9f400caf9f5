//! `mbls model` as a user runs it: state dict and parameter count of configured models.

use mbls_testkit::shared;
use std::path::PathBuf;
use std::process::Command;

mod common;

fn mbls(args: &[&str]) -> std::process::Output {
    common::run("model", args)
}

#[test]
fn state_dict_matches_the_reference_manifest() {
    for (model, classes) in [
        ("resnet18_cifar", "10"),
        ("resnet50_tiny", "200"),
        ("global_pooling", "20"),
    ] {
        let Some(f) = shared(&format!("parity/models/{model}/expected.json")) else {
            continue;
        };
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let v = common::json(
            "model",
            &[
                &format!("model={model}"),
                &format!("model.num_classes={classes}"),
            ],
        );
        assert_eq!(v["num_parameters"], e["num_parameters"], "{model}");
        let ours: Vec<(String, serde_json::Value)> = v["state_dict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["name"].as_str().unwrap().to_string(), x["shape"].clone()))
            .collect();
        let want: Vec<(String, serde_json::Value)> = e["state_dict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x[0].as_str().unwrap().to_string(), x[1].clone()))
            .collect();
        assert_eq!(ours, want, "{model}");
    }
}

#[test]
fn unknown_models_and_keys_exit_2() {
    for (args, needle) in [
        (vec!["model=nope"], "unknown option `nope`"),
        (
            vec!["model=resnet50_cifar", "model.num_clases=3"],
            "model.num_clases",
        ),
        (
            vec!["model=resnet50_cifar", "model.num_classes=0"],
            "num_classes",
        ),
        (vec!["loss=ce"], "model overrides only"),
    ] {
        common::fails("model", &args, needle);
    }
    let ok = mbls(&["model=resnet34"]);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("layer4.2.bn2.running_var"));
}

fn pth_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../torch/mbls-engine/tests/fixtures/pth")
        .join(name)
}

#[test]
fn load_reports_a_reference_checkpoint_by_name() {
    for file in ["reference_partial.pth", "reference_partial_legacy.pth"] {
        let f = pth_fixture(file);
        let v = common::json(
            "model",
            &["model=resnet18_cifar", "--load", f.to_str().unwrap()],
        );
        assert_eq!(v["load"]["loaded"].as_array().unwrap().len(), 8, "{file}");
        let missing = v["load"]["missing"].as_array().unwrap();
        assert!(missing.iter().any(|m| m == "layer4.1.conv2.weight"));
        assert!(v["layers"].as_array().unwrap().len() > 40);
        // --strict refuses it, naming what is missing, with exit code 2.
        let out = mbls(&[
            "model=resnet18_cifar",
            "--load",
            f.to_str().unwrap(),
            "--strict",
        ]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("missing") && err.contains("layer1.0.conv1.weight"),
            "{err}"
        );
        // Another class count: fc has another shape, reported with both shapes.
        let out = mbls(&[
            "model=resnet18_cifar",
            "model.num_classes=7",
            "--load",
            f.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("fc.weight (model [7, 512], file [10, 512])"),
            "{text}"
        );
    }
    // Not a checkpoint, and no such file: clear errors, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"\x80\x02garbage").unwrap();
    for f in [junk, dir.path().join("absent.pth")] {
        let name = f.file_name().unwrap().to_str().unwrap();
        common::fails(
            "model",
            &["model=resnet18_cifar", "--load", f.to_str().unwrap()],
            name,
        );
    }
}

#[test]
fn pretrained_imagenet_weights_load_from_a_path_or_torch_cache() {
    use mbls_engine::checkpoint::save_weights;
    use mbls_engine::models::{ModelOptions, build_model};
    use mbls_engine::tch::{Device, nn::VarStore};
    // torchvision-named resnet18 ImageNet weights (1000 classes), in PyTorch's cache layout.
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub/checkpoints");
    std::fs::create_dir_all(&cache).unwrap();
    let file = cache.join("resnet18-5c106cde.pth");
    let vs = VarStore::new(Device::Cpu);
    let m = build_model("resnet18", 1000, &vs.root(), ModelOptions::default()).unwrap();
    save_weights(&vs, m.state_dict_names(), &file).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["model=deeplabv3", "model.encoder_name=resnet18", "--json"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_mbls"))
            .arg("model")
            .args(&args)
            .env("TORCH_HOME", home.path())
            .output()
            .unwrap()
    };
    for out in [
        run(&["--pretrained", file.to_str().unwrap()]),
        run(&["--pretrained"]),
    ] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["load"]["file"], file.to_str().unwrap());
        let loaded = v["load"]["loaded"].as_array().unwrap();
        assert_eq!(loaded.len(), m.state_dict_names().len() - 2); // all but fc
        assert!(
            loaded
                .iter()
                .all(|n| n.as_str().unwrap().starts_with("encoder."))
        );
        let missing = v["load"]["missing"].as_array().unwrap();
        assert!(
            missing
                .iter()
                .all(|n| !n.as_str().unwrap().starts_with("encoder."))
        );
    }
    // A model without ImageNet weights is refused with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_mbls"))
        .args([
            "model",
            "model=resnet18_cifar",
            "--pretrained",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ImageNet-pretrained weights"));
}
