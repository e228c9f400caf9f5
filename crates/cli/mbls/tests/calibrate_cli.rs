//! Integration tests of `mbls calibrate fit/apply` and `mbls eval --calibrator/--compare`:
//! the real binary on the shipped digits logits and on generated binary logits, and the
//! bad inputs of issue 15 (exit code 2, a message naming the problem).

use mbls_npy::{NpyArray, NpyData, write_npz};
use std::path::{Path, PathBuf};

mod common;

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples/digits")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic binary logits: class 1 with probability sigmoid(3 z - 0.5) for a score z,
/// written as over-confident logits [0, 6 z].
fn binary_npz(path: &Path, n: usize, seed: u64) {
    let mut st = seed;
    let mut u = move || {
        st = st
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((st >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut logits = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let z = 2.0 * u() - 1.0;
        let p1 = 1.0 / (1.0 + (-(3.0 * z - 0.5)).exp());
        labels.push(i64::from(u() < p1));
        logits.push(0.0f32);
        logits.push((6.0 * z) as f32);
    }
    let l = NpyArray::new(vec![n, 2], NpyData::F32(logits)).unwrap();
    let y = NpyArray::new(vec![n], NpyData::I64(labels)).unwrap();
    write_npz(path, &[("logits", &l), ("labels", &y)]).unwrap();
}

fn fit(method: &str, val: &Path, out: &Path) -> serde_json::Value {
    common::ok(
        "calibrate",
        &["fit", "--method", method, "--val", s(val), "-o", s(out)],
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

#[test]
fn every_method_fits_saves_reloads_and_applies() {
    let d = digits();
    let (val, test) = (d.join("val.npz"), d.join("test.npz"));
    let tmp = tempfile::tempdir().unwrap();
    for method in [
        "ts",
        "ts-nll",
        "vector",
        "matrix",
        "dirichlet",
        "hist",
        "isotonic",
    ] {
        let cal_path = tmp.path().join(format!("{method}.json"));
        let cal = fit(method, &val, &cal_path);
        assert_eq!(cal["format"], "mbls-calibrator", "{method}");
        assert_eq!(cal["classes"], 10, "{method}");
        assert_eq!(cal["method"], method);
        let before = cal["fit"]["nll_before"].as_f64().unwrap();
        let after = cal["fit"]["nll_after"].as_f64().unwrap();
        assert!(before.is_finite() && after.is_finite(), "{method}: {cal}");
        if matches!(method, "ts-nll" | "vector" | "matrix" | "dirichlet") {
            // these minimise the validation NLL from the identity map (λ = 1e-3 is small)
            assert!(after < before, "{method}: val NLL {before} -> {after}");
        }

        // eval --calibrator: two rows, the uncalibrated one equal to a plain eval
        let v = common::json("eval", &[s(&test), "--calibrator", s(&cal_path)]);
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["method"], "none");
        assert_eq!(rows[1]["method"], method);
        let plain = common::json("eval", &[s(&test)]);
        assert_eq!(rows[0]["metrics"]["ece"], plain["metrics"]["ece"]);
        assert_eq!(rows[1]["val_nll_after"].as_f64().unwrap(), after);

        // apply writes scores that a plain eval of the file reproduces
        let out = tmp.path().join(format!("{method}.npz"));
        common::ok(
            "calibrate",
            &[
                "apply",
                "--calibrator",
                s(&cal_path),
                s(&test),
                "-o",
                s(&out),
            ],
        );
        let probs = matches!(method, "hist" | "isotonic");
        let mut args = vec![s(&out)];
        if probs {
            args.extend(["--probs", "--logits-key", "probs"]);
        }
        let re = common::json("eval", &args);
        let m = &rows[1]["metrics"];
        for key in ["acc", "nll", "ece", "aece", "cece", "brier"] {
            let (a, b) = (
                m[key].as_f64().unwrap(),
                re["metrics"][key].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + a.abs()),
                "{method} {key}: {a} vs {b}"
            );
        }
        assert_eq!(re["metrics"]["samples"], 797);
    }
}

#[test]
fn temperature_is_the_same_through_calibrate_and_eval_temperature() {
    let d = digits();
    let (val, test) = (d.join("val.npz"), d.join("test.npz"));
    let tmp = tempfile::tempdir().unwrap();
    let cal = fit("ts", &val, &tmp.path().join("ts.json"));
    let v = common::json(
        "eval",
        &[s(&test), "--val", s(&val), "--temperature", "grid"],
    );
    assert_eq!(
        cal["params"]["temperature"].as_f64().unwrap(),
        v["temperature"]["temperature"].as_f64().unwrap()
    );
}

#[test]
fn compare_prints_one_table_with_intervals() {
    let d = digits();
    let (val, test) = (d.join("val.npz"), d.join("test.npz"));
    let methods = "ts,vector,matrix,dirichlet,hist,isotonic";
    let text = common::ok(
        "eval",
        &[
            s(&test),
            "--val",
            s(&val),
            "--compare",
            methods,
            "--bootstrap",
            "20",
        ],
    );
    let header = text
        .lines()
        .find(|l| l.starts_with("method"))
        .unwrap_or_else(|| panic!("no table header in {text}"));
    for col in ["acc", "nll", "ece", "aece", "cece", "brier", "val nll"] {
        assert!(header.contains(col), "{col} missing: {header}");
    }
    for m in ["none"].into_iter().chain(methods.split(',')) {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(m))
            .unwrap_or_else(|| panic!("no row {m} in {text}"));
        assert_eq!(
            row.matches('[').count(),
            4,
            "intervals for acc nll ece aece: {row}"
        );
    }
    let v = common::json(
        "eval",
        &[
            s(&test),
            "--val",
            s(&val),
            "--compare",
            methods,
            "--bootstrap",
            "20",
        ],
    );
    assert_eq!(v["kind"], "calibration");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for r in rows {
        let b = &r["bootstrap"];
        for key in ["acc", "nll", "ece", "aece"] {
            let (lo, est, hi) = (
                b[key]["lower"].as_f64().unwrap(),
                b[key]["estimate"].as_f64().unwrap(),
                b[key]["upper"].as_f64().unwrap(),
            );
            assert!(lo <= hi && est.is_finite(), "{}: {key} {b}", r["method"]);
        }
    }
    // temperature scaling keeps every argmax
    assert_eq!(rows[0]["metrics"]["acc"], rows[1]["metrics"]["acc"]);
}

#[test]
fn binary_methods_on_generated_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let (val, test) = (tmp.path().join("val.npz"), tmp.path().join("test.npz"));
    binary_npz(&val, 3000, 1);
    binary_npz(&test, 3000, 2);
    let platt = fit("platt", &val, &tmp.path().join("platt.json"));
    // the logits are 2x too confident and shifted: a ≈ 0.5, b ≈ -0.5
    let a = platt["params"]["a"].as_f64().unwrap();
    let b = platt["params"]["b"].as_f64().unwrap();
    assert!(
        (a - 0.5).abs() < 0.1 && (b + 0.5).abs() < 0.2,
        "a {a} b {b}"
    );
    let beta = fit("beta", &val, &tmp.path().join("beta.json"));
    assert!(
        beta["fit"]["nll_after"].as_f64().unwrap() < beta["fit"]["nll_before"].as_f64().unwrap()
    );
    let v = common::json(
        "eval",
        &[s(&test), "--val", s(&val), "--compare", "platt,beta,ts-nll"],
    );
    let rows = v["rows"].as_array().unwrap();
    let nll = |i: usize| rows[i]["metrics"]["nll"].as_f64().unwrap();
    assert!(nll(1) < nll(0) && nll(2) < nll(0), "{v}");
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let d = digits();
    let (val, test) = (d.join("val.npz"), d.join("test.npz"));
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // a calibrator of another class count
    binary_npz(&t.join("bin.npz"), 200, 3);
    fit("vector", &t.join("bin.npz"), &t.join("bin.json"));
    let bin = t.join("bin.json");
    common::fails(
        "eval",
        &[s(&test), "--calibrator", s(&bin)],
        "fitted on 2 classes",
    );
    common::fails(
        "calibrate",
        &[
            "apply",
            "--calibrator",
            s(&bin),
            s(&test),
            "-o",
            s(&t.join("o.npz")),
        ],
        "fitted on 2 classes",
    );
    assert!(!t.join("o.npz").exists());

    // corrupt, truncated, foreign and hand-edited calibrator files
    let bad = t.join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    common::fails("eval", &[s(&test), "--calibrator", s(&bad)], "bad.json");
    let text = std::fs::read_to_string(&bin).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    common::fails("eval", &[s(&test), "--calibrator", s(&bad)], "bad.json");
    std::fs::write(&bad, r#"{"format": "something-else", "version": 1}"#).unwrap();
    common::fails("eval", &[s(&test), "--calibrator", s(&bad)], "bad.json");
    std::fs::write(&bad, text.replacen("\"classes\": 2", "\"classes\": 10", 1)).unwrap();
    common::fails("eval", &[s(&test), "--calibrator", s(&bad)], "bad.json");
    common::fails(
        "eval",
        &[s(&test), "--calibrator", s(&t.join("absent.json"))],
        "absent.json",
    );

    // a validation set with a class missing
    let l = NpyArray::new(vec![4, 3], NpyData::F32(vec![1.0; 12])).unwrap();
    let y = NpyArray::new(vec![4], NpyData::I64(vec![0, 1, 0, 1])).unwrap();
    let missing = t.join("missing.npz");
    write_npz(&missing, &[("logits", &l), ("labels", &y)]).unwrap();
    common::fails(
        "calibrate",
        &[
            "fit",
            "--method",
            "vector",
            "--val",
            s(&missing),
            "-o",
            s(&t.join("m.json")),
        ],
        "class 2",
    );
    assert!(!t.join("m.json").exists());

    // a method that does not apply, and one that does not exist
    common::fails(
        "calibrate",
        &[
            "fit",
            "--method",
            "beta",
            "--val",
            s(&val),
            "-o",
            s(&t.join("b.json")),
        ],
        "beta",
    );
    common::fails(
        "eval",
        &[s(&test), "--val", s(&val), "--compare", "ts,platt"],
        "platt",
    );
    let err = common::fails(
        "calibrate",
        &[
            "fit",
            "--method",
            "matrx",
            "--val",
            s(&val),
            "-o",
            s(&t.join("x.json")),
        ],
        "matrx",
    );
    assert!(err.contains("matrix"), "closest name suggested: {err}");
    // labels out of range, NaN logits
    let y = NpyArray::new(vec![4], NpyData::I64(vec![0, 1, 2, 3])).unwrap();
    write_npz(t.join("range.npz"), &[("logits", &l), ("labels", &y)]).unwrap();
    common::fails(
        "calibrate",
        &[
            "fit",
            "--method",
            "ts",
            "--val",
            s(&t.join("range.npz")),
            "-o",
            s(&t.join("r.json")),
        ],
        "range.npz",
    );
    let l = NpyArray::new(
        vec![3, 3],
        NpyData::F32(vec![1.0, f32::NAN, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 1.0]),
    )
    .unwrap();
    let y = NpyArray::new(vec![3], NpyData::I64(vec![0, 1, 2])).unwrap();
    write_npz(t.join("nan.npz"), &[("logits", &l), ("labels", &y)]).unwrap();
    common::fails(
        "calibrate",
        &[
            "fit",
            "--method",
            "vector",
            "--val",
            s(&t.join("nan.npz")),
            "-o",
            s(&t.join("n.json")),
        ],
        "nan.npz",
    );
}
