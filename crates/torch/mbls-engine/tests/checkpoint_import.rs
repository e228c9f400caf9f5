//! Import of PyTorch-written checkpoints (tests/fixtures/pth, made by its make_fixture.py with
//! torch 2.11) into our models, pretrained-weight loading, and downloads from a local server.

use mbls_engine::checkpoint::{
    CheckpointError, LoadOptions, load_weights, read_weights, save_weights,
};
use mbls_engine::models::{ModelOptions, build_model};
use mbls_engine::pretrained;
use mbls_engine::tch::nn::VarStore;
use mbls_engine::tch::{Device, Kind, Tensor};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

fn formula(shape: &[i64], p: usize, var: bool) -> Tensor {
    let n: i64 = shape.iter().product();
    let s = (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.37 + 1.3 * p as f64).sin();
    let v = if var { s.abs() * 0.5 + 1.0 } else { s * 0.05 };
    v.to_kind(Kind::Float).view(shape)
}

fn check_reference_partial(file: &str) {
    let vs = VarStore::new(Device::Cpu);
    let m = build_model("resnet18_cifar", 10, &vs.root(), ModelOptions::default()).unwrap();
    let r = load_weights(&vs, &fixture(file), &LoadOptions::default()).unwrap();
    let mut loaded = r.loaded.clone();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "bn1.bias",
            "bn1.num_batches_tracked",
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.weight",
            "conv1.weight",
            "fc.bias",
            "fc.weight"
        ],
        "{file}"
    );
    assert!(r.unexpected.is_empty() && r.mismatched.is_empty(), "{r}");
    assert_eq!(
        r.missing.len() + r.defaulted.len(),
        m.state_dict_names().len() - 8
    );
    assert!(r.missing.contains(&"layer1.0.conv1.weight".to_string()));
    let vars = vs.variables();
    let names = m.state_dict_names();
    for n in [
        "conv1.weight",
        "bn1.weight",
        "bn1.running_mean",
        "bn1.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        let p = names.iter().position(|x| x == n).unwrap();
        let want = formula(&vars[n].size(), p, n.ends_with("running_var"));
        // The file's values are the formula rounded to float32 (bn1.running_mean was stored as
        // float64); libtorch's float64 sin may differ from NumPy's by an ulp on some CPUs,
        // which can move the float32 rounding by one step: allow one float32 ulp.
        let want = want.to_kind(Kind::Double);
        let got = vars[n].to_kind(Kind::Double);
        let excess = ((&got - &want).abs() - want.abs() * f64::from(f32::EPSILON) - 1e-30)
            .max()
            .double_value(&[]);
        assert!(
            excess <= 0.0,
            "{file}: {n} differs by more than one float32 ulp"
        );
    }
    assert_eq!(vars["bn1.num_batches_tracked"].int64_value(&[]), 7);
    // Strict: refused, naming what is missing, and nothing changes.
    let vs2 = VarStore::new(Device::Cpu);
    let _m2 = build_model("resnet18_cifar", 10, &vs2.root(), ModelOptions::default()).unwrap();
    let before = vs2.variables()["conv1.weight"].copy();
    let strict = LoadOptions {
        strict: true,
        ..LoadOptions::default()
    };
    let e = load_weights(&vs2, &fixture(file), &strict).unwrap_err();
    assert!(e.to_string().contains("layer1.0.conv1.weight"), "{e}");
    assert!(before.equal(&vs2.variables()["conv1.weight"]));
}

#[test]
fn reference_checkpoint_zip_format_loads_by_name() {
    check_reference_partial("reference_partial.pth");
}

#[test]
fn reference_checkpoint_legacy_format_loads_by_name() {
    check_reference_partial("reference_partial_legacy.pth");
}

#[test]
fn truncated_and_foreign_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("reference_partial.pth")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _m = build_model("resnet18_cifar", 10, &vs.root(), ModelOptions::default()).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() - 30] {
        let p = dir.path().join(format!("cut{cut}.pth"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_weights(&vs, &p, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, CheckpointError::Format { .. }), "{e}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    }
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, b"these are not weights").unwrap();
    assert!(load_weights(&vs, &p, &LoadOptions::default()).is_err());
    let missing = dir.path().join("nope.pth");
    assert!(matches!(
        read_weights(&missing),
        Err(CheckpointError::NotFound { .. })
    ));
}

#[test]
fn imagenet_weights_load_into_resnet_and_deeplab_encoder() {
    // torchvision-style resnet18 weights (ImageNet model, 1000 classes), written by us.
    let dir = tempfile::tempdir().unwrap();
    let src = VarStore::new(Device::Cpu);
    let m = build_model("resnet18", 1000, &src.root(), ModelOptions::default()).unwrap();
    let file = dir.path().join("resnet18-5c106cde.pth");
    save_weights(&src, m.state_dict_names(), &file).unwrap();
    let src_vars = src.variables();

    let vs = VarStore::new(Device::Cpu);
    let _r = build_model("resnet18", 10, &vs.root(), ModelOptions::default()).unwrap();
    let fc_before = vs.variables()["fc.weight"].copy();
    let mut report = pretrained::load_imagenet_resnet(&vs, "resnet18", &file).unwrap();
    report.skipped.sort();
    assert_eq!(report.skipped, ["fc.bias", "fc.weight"]);
    assert!(vs.variables()["layer4.1.conv2.weight"].equal(&src_vars["layer4.1.conv2.weight"]));
    assert!(vs.variables()["fc.weight"].equal(&fc_before));

    let opts = ModelOptions {
        encoder_depth: 18,
        ..ModelOptions::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let _d = build_model("deeplabv3", 21, &vs.root(), opts).unwrap();
    let report = pretrained::load_imagenet_resnet(&vs, "deeplabv3", &file).unwrap();
    assert!(
        report
            .missing
            .iter()
            .all(|n| n.starts_with("decoder.") || n.starts_with("segmentation_head."))
    );
    assert!(
        vs.variables()["encoder.layer3.0.conv2.weight"].equal(&src_vars["layer3.0.conv2.weight"])
    );
    // Weights of another depth are refused with the names that differ.
    let vs = VarStore::new(Device::Cpu);
    let _r = build_model("resnet34", 10, &vs.root(), ModelOptions::default()).unwrap();
    let e = pretrained::load_imagenet_resnet(&vs, "resnet34", &file).unwrap_err();
    assert!(e.to_string().contains("layer1.2.conv1.weight"), "{e}");
    assert!(
        pretrained::locate(
            "resnet18-5c106cde.pth",
            Some(&dir.path().join("x.pth")),
            "http://127.0.0.1:9",
            false
        )
        .is_err()
    );
}

/// Serves `body` once per connection for `connections` connections; returns the base URL.
fn serve(body: Vec<u8>, connections: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let mut s = stream.unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn downloads_are_checked_against_the_hash_in_the_name() {
    use std::fmt::Write as _;
    let body = b"pretend weights".to_vec();
    // SHA-256 of the body, computed independently of the code under test.
    let digest = {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&body)?;
                c.wait_with_output()
            });
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)[..64].to_string(),
            Err(_) => {
                mbls_testkit::skip("sha256sum not available");
                return;
            }
        }
    };
    let mut good = String::new();
    write!(good, "tiny-{}.pth", &digest[..8]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = serve(body.clone(), 2);
    let dest = dir.path().join("cache").join(&good);
    pretrained::download(&format!("{url}/{good}"), &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let bad = dir.path().join("tiny-00000000.pth");
    let e = pretrained::download(&format!("{url}/x"), &bad).unwrap_err();
    assert!(e.to_string().contains("SHA-256"), "{e}");
    assert!(!bad.exists());
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".part"))
    );
    // Nothing listens on port 9 (discard) here: a clear error, no file.
    let e =
        pretrained::download("http://127.0.0.1:9/w.pth", &dir.path().join("w.pth")).unwrap_err();
    assert!(e.to_string().contains("cannot download"), "{e}");
}
