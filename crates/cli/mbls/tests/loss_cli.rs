//! `mbls loss` run as a user would: every reference loss case through the CLI, with the
//! training config's override syntax, terms and `--grad-out` compared with the reference.

use mbls_npy::NpyArray;
use mbls_testkit::shared;
use std::path::PathBuf;

mod common;

fn mbls(args: &[String]) -> std::process::Output {
    common::run("loss", args)
}

#[test]
fn reference_cases_through_the_cli() {
    let Some(dir) = shared("parity/losses") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for case in cases {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
                .unwrap();
        let mut args = vec![
            case.join("logits.npy").display().to_string(),
            case.join("targets.npy").display().to_string(),
            format!("loss={}", e["loss"].as_str().unwrap()),
        ];
        for (k, v) in e["params"].as_object().unwrap() {
            let v = match v {
                serde_json::Value::Bool(b) => {
                    if *b {
                        "true".into()
                    } else {
                        "false".into()
                    }
                }
                other => other.to_string(),
            };
            args.push(format!("loss.{k}={v}"));
        }
        let grad = tmp.path().join("g.npy");
        args.extend([
            "--json".into(),
            "--grad-out".into(),
            grad.display().to_string(),
        ]);
        let out = mbls(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for (name, want) in e["terms"].as_object().unwrap() {
            let (got, want) = (v["terms"][name].as_f64().unwrap(), want.as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1e-6),
                "{}: {name} {got} vs {want}",
                case.display()
            );
        }
        let g = NpyArray::read(&grad).unwrap().to_f32().unwrap();
        let w = NpyArray::read(case.join("grad.npy"))
            .unwrap()
            .to_f32()
            .unwrap();
        let err = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err <= 1e-5, "{}: gradient error {err}", case.display());
    }
}

#[test]
fn bad_loss_configs_and_inputs_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l.npy");
    let t = tmp.path().join("t.npy");
    NpyArray::from_slice(&[2, 3], &[0.1f32, 0.2, 0.3, 1.0, -1.0, 0.5])
        .unwrap()
        .write(&l)
        .unwrap();
    NpyArray::from_slice(&[2], &[0i64, 2])
        .unwrap()
        .write(&t)
        .unwrap();
    let (l, t) = (l.display().to_string(), t.display().to_string());
    let ok = mbls(&[l.clone(), t.clone(), "loss=logit_margin".into()]);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("loss_margin_l1"));
    for (extra, needle) in [
        (vec!["loss=nope"], "unknown option `nope`"),
        (vec!["loss=logit_margin", "loss.margin=-1"], "margin"),
        (vec!["loss=ls", "loss.alpha=2"], "[0, 1]"),
        (vec!["loss=focal", "loss.gamma=-1"], "gamma"),
        (vec!["loss.marg=3"], "loss.marg"),
        (vec!["optim.lr=3"], "loss overrides only"),
    ] {
        let mut a = vec![l.clone(), t.clone()];
        a.extend(extra.iter().map(|s| s.to_string()));
        common::fails("loss", &a, needle);
    }
    let bad_t = tmp.path().join("bad.npy");
    NpyArray::from_slice(&[2], &[0i64, 3])
        .unwrap()
        .write(&bad_t)
        .unwrap();
    common::fails(
        "loss",
        &[l.clone(), bad_t.display().to_string()],
        "target 3 is outside 0..3",
    );
}
