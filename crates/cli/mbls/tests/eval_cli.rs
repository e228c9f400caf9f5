//! Integration tests: run the real `mbls` binary on the shipped example, on generated data,
//! on the reference's parity cases (skipped with a message when absent) and on bad input.

use mbls_npy::{NpyArray, NpyData, write_npz};
use mbls_testkit::shared;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn mbls(args: &[&str]) -> Output {
    common::run("eval", args)
}

fn json(args: &[&str]) -> serde_json::Value {
    common::json("eval", args)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Deterministic pseudo-random logits and labels.
fn synth(n: usize, c: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f32 / (1u64 << 31) as f32
    };
    let mut logits = Vec::with_capacity(n * c);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let y = (next() * c as f32) as usize % c;
        for k in 0..c {
            logits.push(next() * 4.0 + if k == y { 1.5 } else { 0.0 });
        }
        labels.push(y as i64);
    }
    (logits, labels)
}

fn write(dir: &Path, name: &str, shape: &[usize], data: NpyData) -> String {
    let p = dir.join(name);
    NpyArray::new(shape.to_vec(), data)
        .unwrap()
        .write(&p)
        .unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn shipped_example_with_temperature_and_plots() {
    let ex = repo().join("examples/digits");
    let test = ex.join("test.npz");
    let val = ex.join("val.npz");
    let out = tempfile::tempdir().unwrap();
    let v = json(&[
        test.to_str().unwrap(),
        "--temperature",
        "grid",
        "--val",
        val.to_str().unwrap(),
        "--plot",
        out.path().to_str().unwrap(),
        "--bootstrap",
        "200",
    ]);
    let m = &v["metrics"];
    assert_eq!(m["samples"], 797);
    assert_eq!(m["classes"], 10);
    let acc = m["acc"].as_f64().unwrap();
    assert!((0.9..1.0).contains(&acc), "{acc}");
    let t = v["temperature"]["temperature"].as_f64().unwrap();
    assert!(t > 1.0, "an overfitted network needs T > 1, got {t}");
    assert!(
        v["temperature"]["val_ece_after"].as_f64() <= v["temperature"]["val_ece_before"].as_f64()
    );
    let b = &v["bootstrap"]["ece"];
    assert!(b["lower"].as_f64() <= b["upper"].as_f64());
    for f in [
        "test_reliability.svg",
        "test_reliability.png",
        "test_histogram.png",
        "test_bins.csv",
        "test_ts_reliability.png",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.path().join("test_bins.csv")).unwrap();
    assert_eq!(csv.lines().count(), 16, "header + 15 bins");
    // the text table prints too
    let o = mbls(&[test.to_str().unwrap()]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("ece") && s.contains("aece") && s.contains("cece"),
        "{s}"
    );
}

#[test]
fn npy_pair_matches_library_and_probs_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = synth(3000, 12, 5);
    let lp = write(
        dir.path(),
        "logits.npy",
        &[3000, 12],
        NpyData::F32(l.clone()),
    );
    let yp = write(
        dir.path(),
        "labels.npy",
        &[3000],
        NpyData::I32(y.iter().map(|&v| v as i32).collect()),
    );
    let v = json(&[&lp, &yp]);
    let want = mbls_metrics::evaluate(&l, &y, 12, Default::default()).unwrap();
    assert!((v["metrics"]["ece"].as_f64().unwrap() - want.ece).abs() < 1e-12);
    assert!((v["metrics"]["nll"].as_f64().unwrap() - want.nll).abs() < 1e-12);
    // probabilities from float64 softmax
    let mut p = Vec::new();
    for row in l.chunks(12) {
        let m = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let e: Vec<f64> = row.iter().map(|&x| (x as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        p.extend(e.iter().map(|v| v / s));
    }
    let pp = write(dir.path(), "probs.npy", &[3000, 12], NpyData::F64(p));
    let vp = json(&[&pp, &yp, "--probs"]);
    assert!((vp["metrics"]["ece"].as_f64().unwrap() - want.ece).abs() < 1e-4);
    assert!(vp["metrics"]["logits"].is_null());
    // ignore index on classification inputs drops rows
    let mut y2 = y.clone();
    y2[0] = -1;
    y2[1] = -1;
    let yp2 = write(dir.path(), "labels2.npy", &[3000], NpyData::I64(y2));
    let vi = json(&[&lp, &yp2, "--ignore-index", "-1"]);
    assert_eq!(vi["metrics"]["samples"], 2998);
    assert_eq!(vi["ignored"], 2);
}

#[test]
fn parity_cases_through_the_cli() {
    let Some(dir) = shared("parity/metrics/c100_n5000_overconfident") else {
        return;
    };
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let l = dir.join("logits.npy");
    let y = dir.join("labels.npy");
    let (l, y) = (l.to_str().unwrap(), y.to_str().unwrap());
    // fit on the same logits: the grid temperature and the ECE after it are reference values
    let v = json(&[l, y, "--temperature", "grid", "--val", l, y]);
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    for k in ["ece", "aece", "cece", "nll", "acc", "acc_5", "macc"] {
        let got = v["metrics"][k].as_f64().unwrap();
        assert!(
            rel(got, e[k].as_f64().unwrap()) < 1e-5,
            "{k}: {got} vs {}",
            e[k]
        );
    }
    assert_eq!(
        v["temperature"]["temperature"].as_f64().unwrap(),
        e["temperature_grid_ece"].as_f64().unwrap()
    );
    let after = v["temperature"]["after"]["ece"].as_f64().unwrap();
    assert!(rel(after, e["ece_after_temperature"].as_f64().unwrap()) < 1e-5);
}

#[test]
fn segmentation_parity_through_the_cli() {
    let Some(root) = shared("parity/segment") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (case, batch) in [("c4_small", 3), ("voc_like_c21", 2)] {
        let dir = root.join(case);
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        // concatenate the batch files into one array; --seg-batch restores the batches
        let (mut logits, mut labels, mut shape) = (Vec::new(), Vec::new(), Vec::new());
        for b in 0..e["num_batches"].as_u64().unwrap() {
            let l = NpyArray::read(dir.join(format!("logits_{b}.npy"))).unwrap();
            let y = NpyArray::read(dir.join(format!("labels_{b}.npy"))).unwrap();
            if shape.is_empty() {
                shape = l.shape.clone();
                shape[0] = 0;
            }
            shape[0] += l.shape[0];
            logits.extend(l.to_f32().unwrap());
            labels.extend(y.to_i64().unwrap());
        }
        let n = shape[0];
        let lp = write(
            tmp.path(),
            &format!("{case}_l.npy"),
            &shape,
            NpyData::F32(logits),
        );
        let yp = write(
            tmp.path(),
            &format!("{case}_y.npy"),
            &[n, shape[2], shape[3]],
            NpyData::I64(labels),
        );
        let v = json(&[&lp, &yp, "--seg-batch", &batch.to_string()]);
        let m = &v["metrics"];
        assert_eq!(v["kind"], "segmentation");
        for (k, got) in [
            ("miou", &m["miou"]),
            ("mdsc", &m["mdsc"]),
            ("macc", &m["macc"]),
            ("pixel_nll", &m["calibration_reference"]["nll"]),
            ("pixel_ece", &m["calibration_reference"]["ece"]),
            ("pixel_aece", &m["calibration_reference"]["aece"]),
            ("pixel_cece", &m["calibration_reference"]["cece"]),
        ] {
            let (g, w) = (got.as_f64().unwrap(), e[k].as_f64().unwrap());
            assert!((g - w).abs() <= 1e-5 * w.abs(), "{case} {k}: {g} vs {w}");
        }
        assert!(m["calibration_global"]["ece"].as_f64().is_some());
    }
}

fn fails_with(args: &[&str], needle: &str) {
    common::fails("eval", args, needle);
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (l, y) = synth(10, 3, 1);
    let lp = write(d, "l.npy", &[10, 3], NpyData::F32(l.clone()));
    let yp = write(d, "y.npy", &[10], NpyData::I64(y.clone()));
    fails_with(
        &[d.join("missing.npy").to_str().unwrap(), &yp],
        "missing.npy",
    );
    // mismatched N
    let y9 = write(d, "y9.npy", &[9], NpyData::I64(y[..9].to_vec()));
    fails_with(&[&lp, &y9], "mismatched N");
    // C < 2
    let l1 = write(d, "l1.npy", &[10, 1], NpyData::F32(vec![0.0; 10]));
    fails_with(&[&l1, &yp], "at least 2 classes");
    // NaN and inf
    let mut ln = l.clone();
    ln[7] = f32::NAN;
    let lnan = write(d, "lnan.npy", &[10, 3], NpyData::F32(ln));
    fails_with(
        &[&lnan, &yp],
        "non-finite value (NaN) in logits at sample 2, class 1",
    );
    let mut li = l.clone();
    li[0] = f32::INFINITY;
    let linf = write(d, "linf.npy", &[10, 3], NpyData::F32(li));
    fails_with(&[&linf, &yp], "non-finite");
    // label out of range
    let mut yb = y.clone();
    yb[4] = 3;
    let ybad = write(d, "ybad.npy", &[10], NpyData::I64(yb));
    fails_with(&[&lp, &ybad], "label 3 at sample 4 is outside 0..3");
    // unsupported dtypes
    let lint = write(d, "lint.npy", &[10, 3], NpyData::I32(vec![0; 30]));
    fails_with(&[&lint, &yp], "float32 or float64");
    let yf = write(d, "yf.npy", &[10], NpyData::F32(vec![0.0; 10]));
    fails_with(&[&lp, &yf], "labels must be integers");
    let mut raw = std::fs::read(&lp).unwrap();
    let pos = raw.windows(3).position(|w| w == b"<f4").unwrap();
    raw[pos + 1] = b'c';
    raw[pos + 2] = b'8';
    std::fs::write(d.join("complex.npy"), &raw).unwrap();
    fails_with(
        &[d.join("complex.npy").to_str().unwrap(), &yp],
        "unsupported dtype",
    );
    // truncated and garbage files
    let full = std::fs::read(&lp).unwrap();
    std::fs::write(d.join("trunc.npy"), &full[..full.len() - 5]).unwrap();
    fails_with(&[d.join("trunc.npy").to_str().unwrap(), &yp], "truncated");
    std::fs::write(d.join("junk.npy"), b"hello").unwrap();
    fails_with(&[d.join("junk.npy").to_str().unwrap(), &yp], "not a .npy");
    std::fs::write(d.join("junk.npz"), b"PK\x03\x04 nope").unwrap();
    fails_with(&[d.join("junk.npz").to_str().unwrap()], "junk.npz");
    // npz without the expected key
    let z = d.join("nolabels.npz");
    let arr = NpyArray::new(vec![10, 3], NpyData::F32(l)).unwrap();
    write_npz(&z, &[("logits", &arr)]).unwrap();
    fails_with(&[z.to_str().unwrap()], "key 'labels' not found");
    // probabilities that are not
    fails_with(&[&lp, &yp, "--probs"], "not a probability distribution");
    // option errors
    fails_with(&[&lp, &yp, "--bins", "0"], "--bins");
    fails_with(&[&lp, &yp, "--temperature", "grid"], "--val");
    fails_with(&[&lp, &yp, "--bootstrap", "1"], "at least 2 replicates");
    // a single .npy is not enough
    fails_with(&[&lp], "two paths");
}

#[test]
fn dense_generated_data_with_ignore_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c, h, w) = (3, 5, 6, 7);
    let (l, _) = synth(b * h * w, c, 9);
    // synth gives rows (pixel-major); transpose to B x C x H x W
    let mut dense = vec![0f32; b * c * h * w];
    for img in 0..b {
        for p in 0..h * w {
            for k in 0..c {
                dense[img * c * h * w + k * h * w + p] = l[(img * h * w + p) * c + k];
            }
        }
    }
    let labels: Vec<i64> = (0..b * h * w)
        .map(|i| if i % 10 == 0 { 255 } else { (i % c) as i64 })
        .collect();
    let lp = write(dir.path(), "dl.npy", &[b, c, h, w], NpyData::F32(dense));
    let yp = write(
        dir.path(),
        "dy.npy",
        &[b, h, w],
        NpyData::U8(labels.iter().map(|&v| v as u8).collect()),
    );
    let v = json(&[&lp, &yp, "--seg-batch", "2"]);
    assert_eq!(v["kind"], "segmentation");
    assert_eq!(v["metrics"]["images"], 3);
    let pixels = v["metrics"]["calibration_reference"]["pixels"]
        .as_u64()
        .unwrap();
    let expect = labels.iter().filter(|&&y| y != 255 && y != 0).count() as u64;
    assert_eq!(pixels, expect);
    let vb = json(&[&lp, &yp, "--include-background"]);
    let with_bg = labels.iter().filter(|&&y| y != 255).count() as u64;
    assert_eq!(
        vb["metrics"]["calibration_reference"]["pixels"]
            .as_u64()
            .unwrap(),
        with_bg
    );
    // a label that is neither a class nor the ignore index
    let mut bad = labels.clone();
    bad[5] = 7;
    let ybad = write(
        dir.path(),
        "dybad.npy",
        &[b, h, w],
        NpyData::U8(bad.iter().map(|&v| v as u8).collect()),
    );
    fails_with(&[&lp, &ybad], "label 7");
}

/// `--ece-compat all --extra` through the binary on the inputs of the metrics crate's
/// parity file: the numbers are those the libraries themselves reported.
#[test]
fn other_libraries_conventions_through_the_cli() {
    let path = repo().join("crates/plain/mbls-metrics/tests/data/compat_parity.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let c = &d["cases"]["multiclass"];
    let rows = c["probs"].as_array().unwrap();
    let k = rows[0].as_array().unwrap().len();
    let probs: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let labels: Vec<i64> = c["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("probs.npz");
    let p = NpyArray::new(vec![labels.len(), k], NpyData::F32(probs)).unwrap();
    let y = NpyArray::new(vec![labels.len()], NpyData::I64(labels)).unwrap();
    write_npz(&z, &[("logits", &p), ("labels", &y)]).unwrap();
    let z = z.to_str().unwrap();
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    let close = |what: &str, a: f64, b: f64| assert!((a - b).abs() <= 1e-6, "{what}: {a} vs {b}");

    for bins in ["10", "15"] {
        let v = json(&[z, "--probs", "--ece-compat", "all", "--bins", bins]);
        let e = v["ece_compat"].as_array().unwrap();
        assert_eq!(e.len(), 3);
        let tm = &c["torchmetrics"];
        close(
            "torchmetrics l1",
            f(&e[0]["ece"]),
            f(&tm[format!("l1_{bins}")]),
        );
        close(
            "torchmetrics l2",
            f(&e[0]["l2"]),
            f(&tm[format!("l2_{bins}")]),
        );
        close(
            "torchmetrics max",
            f(&e[0]["mce"]),
            f(&tm[format!("max_{bins}")]),
        );
        let nc = &c["netcal"]["f32"];
        close("netcal ece", f(&e[1]["ece"]), f(&nc[format!("ece_{bins}")]));
        close("netcal ace", f(&e[1]["ace"]), f(&nc[format!("ace_{bins}")]));
        close("netcal mce", f(&e[1]["mce"]), f(&nc[format!("mce_{bins}")]));
        close(
            "netcal em",
            f(&e[1]["ece_equal_mass"]),
            f(&nc[format!("ece_equal_mass_{bins}")]),
        );
        let sk = &c["sklearn"];
        close(
            "sklearn uniform",
            f(&e[2]["ece"]),
            f(&sk[format!("uniform_{bins}")]["ece"]),
        );
        close(
            "sklearn quantile",
            f(&e[2]["ece_equal_mass"]),
            f(&sk[format!("quantile_{bins}")]["ece"]),
        );
        assert_eq!(
            e[0]["bins"].as_array().unwrap().len(),
            bins.parse::<usize>().unwrap() + 1
        );
    }
    // library defaults without --bins: 15, 10, 5
    let v = json(&[z, "--probs", "--ece-compat", "netcal,sklearn,torchmetrics"]);
    let e = v["ece_compat"].as_array().unwrap();
    let nb: Vec<u64> = e.iter().map(|x| x["num_bins"].as_u64().unwrap()).collect();
    assert_eq!(nb, [10, 5, 15]);
    close(
        "sklearn default",
        f(&e[1]["ece"]),
        f(&c["sklearn"]["uniform_5"]["ece"]),
    );

    let v = json(&[z, "--probs", "--extra"]);
    let x = &v["extra"];
    close(
        "smece",
        f(&x["top_label"]["smece"]),
        f(&c["relplot"]["smece"]),
    );
    close("ks", f(&x["top_label"]["ks"]), f(&c["ks"]["tie_ends"]));
    let uc = &c["uncertainty_calibration"];
    close(
        "l2 top",
        f(&x["top_label"]["l2_debiased"]),
        f(&uc["top_label"]["p2_debiased"]),
    );
    close(
        "l2 marginal",
        f(&x["classwise"]["l2_debiased"]),
        f(&uc["marginal"]["p2_debiased"]),
    );
    // the default report is unchanged by the new options
    let plain = json(&[z, "--probs"]);
    assert!(plain.get("ece_compat").is_none() && plain.get("extra").is_none());
    assert_eq!(plain["metrics"], v["metrics"]);

    fails_with(
        &[z, "--probs", "--ece-compat", "torchmetric"],
        "did you mean \"torchmetrics\"",
    );
    fails_with(&[z, "--probs", "--ece-compat", ","], "--ece-compat");
}

#[test]
fn ood_detection_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // In-distribution: one class clearly ahead; OOD: flat logits. Perfectly separable by
    // both scores, so every area is 1 and no OOD sample passes at 95% TPR.
    let (n_in, n_out, k) = (300, 200, 5);
    let mut zin = Vec::new();
    let mut yin = Vec::new();
    for i in 0..n_in {
        for j in 0..k {
            zin.push(if j == i % k {
                6.0 + (i % 7) as f32 * 0.1
            } else {
                0.0
            });
        }
        yin.push((i % k) as i64);
    }
    let zout: Vec<f32> = (0..n_out * k)
        .map(|i| ((i * 37) % 11) as f32 * 0.05)
        .collect();
    let inp = d.join("in.npz");
    let zi = NpyArray::new(vec![n_in, k], NpyData::F32(zin)).unwrap();
    let yi = NpyArray::new(vec![n_in], NpyData::I64(yin)).unwrap();
    write_npz(&inp, &[("logits", &zi), ("labels", &yi)]).unwrap();
    let inp = inp.to_str().unwrap();
    let outp = write(d, "out.npy", &[n_out, k], NpyData::F32(zout.clone()));
    let v = json(&[inp, "--ood", &outp]);
    let o = &v["ood"];
    assert_eq!(o["samples_in"], n_in);
    assert_eq!(o["samples_out"], n_out);
    for score in ["max_confidence", "entropy"] {
        let s = &o[score];
        for key in ["auroc", "aupr_in", "aupr_out"] {
            assert_eq!(s[key].as_f64().unwrap(), 1.0, "{score} {key}: {s}");
        }
        assert_eq!(s["fpr_at_95_tpr"].as_f64().unwrap(), 0.0, "{score}: {s}");
    }
    // The same set against itself: nothing to separate, AUROC one half, every OOD sample
    // passes at 95% TPR.
    let outz = d.join("out.npz");
    let zo = NpyArray::new(vec![n_in, k], NpyData::F32(zi.clone().into_f32().unwrap())).unwrap();
    write_npz(&outz, &[("logits", &zo)]).unwrap();
    let v = json(&[inp, "--ood", outz.to_str().unwrap()]);
    let s = &v["ood"]["max_confidence"];
    assert!((s["auroc"].as_f64().unwrap() - 0.5).abs() < 1e-12, "{s}");
    assert!(s["fpr_at_95_tpr"].as_f64().unwrap() >= 0.95, "{s}");
    // Printed table.
    let text = common::ok("eval", &[inp, "--ood", &outp]);
    assert!(
        text.contains("OOD detection: 300 in-distribution vs 200 samples"),
        "{text}"
    );
    assert!(text.contains("fpr@95tpr"), "{text}");

    // Bad input: another class count, a missing file, labels-only member, dense inputs.
    let other = write(d, "o3.npy", &[4, 3], NpyData::F32(vec![0.0; 12]));
    fails_with(&[inp, "--ood", &other], "the OOD logits have 3 classes");
    let missing = d.join("nope.npy");
    fails_with(&[inp, "--ood", missing.to_str().unwrap()], "nope.npy");
    let ints = write(d, "ints.npy", &[4, 5], NpyData::I64(vec![0; 20]));
    fails_with(&[inp, "--ood", &ints], "float32 or float64");
    let dense = write(d, "dense.npy", &[2, 5, 3, 3], NpyData::F32(vec![0.0; 90]));
    let dlab = write(d, "dlab.npy", &[2, 3, 3], NpyData::I64(vec![0; 18]));
    fails_with(&[&dense, &dlab, "--ood", &outp], "not dense ones");
}

/// `mbls` runs `eval` itself, without `mbls-torch` (and so without libtorch), and names
/// `mbls-torch` when a subcommand needs it and it is not beside the binary.
#[test]
fn eval_runs_without_mbls_torch_and_its_absence_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let front = tmp.path().join("mbls");
    std::fs::copy(env!("CARGO_BIN_EXE_mbls"), &front).unwrap();
    let digits = repo().join("examples/digits/test.npz");
    let out = Command::new(&front)
        .args(["eval", digits.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json(&[digits.to_str().unwrap()]));
    let out = Command::new(&front)
        .args(["train", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mbls-torch") && err.contains("is missing"),
        "{err}"
    );
}

/// `mbls eval X | head -1`: a reader that goes away ends the process quietly (SIGPIPE's
/// default action, as for `cat`), never a "Broken pipe" panic; so for `mbls-torch` too.
#[cfg(unix)]
#[test]
fn a_closed_output_pipe_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let digits = repo().join("examples/digits/test.npz");
    let digits = digits.to_str().unwrap();
    for args in [
        vec!["eval", digits],
        vec!["eval", digits, "--json"],
        vec!["model", "model=resnet18_cifar"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // the reader is gone before the first write
        let out = Command::new(env!("CARGO_BIN_EXE_mbls"))
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}
