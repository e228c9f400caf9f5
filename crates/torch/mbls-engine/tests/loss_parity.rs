//! Parity with the original implementation's losses (`../shared/parity/losses`): every term
//! to 1e-5 relative and the gradient with respect to the logits to 1e-5 absolute. Skips,
//! printing why, when the folder is absent.

use mbls_engine::losses::{LossSpec, build_loss};
use mbls_engine::tch::Kind;
use std::path::PathBuf;

mod common;
use common::{read_f32, read_i64};

fn parity_dir() -> Option<PathBuf> {
    mbls_testkit::shared("parity/losses")
}

#[test]
fn every_loss_case_matches_values_and_gradients() {
    let Some(dir) = parity_dir() else { return };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let verbose = std::env::var_os("MBLS_PARITY_VERBOSE").is_some();
    let (mut worst_rel, mut worst_grad) = (0f64, 0f64);
    for case in cases {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
                .unwrap();
        let name = e["loss"].as_str().unwrap();
        let spec =
            LossSpec::from_params(name, &mbls_testkit::loss_params(name, &e["params"])).unwrap();
        let loss = build_loss(&spec).unwrap();
        let logits = read_f32(&case.join("logits.npy")).set_requires_grad(true);
        let targets = read_i64(&case.join("targets.npy"));
        let terms = loss.forward(&logits, &targets).unwrap();
        let want_terms = e["terms"].as_object().unwrap();
        assert_eq!(
            terms.names().len(),
            want_terms.len(),
            "{}: terms {:?} vs {:?}",
            case.display(),
            terms.names(),
            want_terms.keys().collect::<Vec<_>>()
        );
        for (n, v) in terms.values().unwrap() {
            let want = want_terms[n]
                .as_f64()
                .unwrap_or_else(|| panic!("{}: no term {n}", case.display()));
            let rel = (v - want).abs() / want.abs().max(1e-6);
            worst_rel = worst_rel.max(rel);
            if verbose {
                eprintln!(
                    "{:<30} {n:<16} rel.err {rel:.2e}",
                    case.file_name().unwrap().to_string_lossy()
                );
            }
            assert!(
                rel <= 1e-5,
                "{}: {n} = {v}, expected {want}",
                case.display()
            );
        }
        terms.total().backward();
        let grad = logits.grad();
        let want = read_f32(&case.join("grad.npy"));
        assert_eq!(grad.size(), want.size());
        let err = (grad - want)
            .abs()
            .max()
            .to_kind(Kind::Double)
            .double_value(&[]);
        worst_grad = worst_grad.max(err);
        if verbose {
            eprintln!(
                "{:<30} grad max.abs.err {err:.2e}",
                case.file_name().unwrap().to_string_lossy()
            );
        }
        assert!(err <= 1e-5, "{}: gradient differs by {err}", case.display());
    }
    eprintln!(
        "loss parity: worst term rel.err {worst_rel:.2e}, worst gradient abs.err {worst_grad:.2e}"
    );
}
