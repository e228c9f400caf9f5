//! `mbls model` as a user runs it: state dict and parameter count of configured models.

use std::path::PathBuf;
use std::process::Command;

fn mbls(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mbls"))
        .arg("model")
        .args(args)
        .output()
        .unwrap()
}

fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

#[test]
fn state_dict_matches_the_reference_manifest() {
    let root = std::env::var_os("MBLS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared"));
    for (model, classes) in [
        ("resnet18_cifar", "10"),
        ("resnet50_tiny", "200"),
        ("global_pooling", "20"),
    ] {
        let f = root.join("parity/models").join(model).join("expected.json");
        if !f.is_file() {
            skip(&format!("{} is absent", f.display()));
            continue;
        }
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let out = mbls(&[
            &format!("model={model}"),
            &format!("model.num_classes={classes}"),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
        let out = mbls(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let ok = mbls(&["model=resnet34"]);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("layer4.2.bn2.running_var"));
}
