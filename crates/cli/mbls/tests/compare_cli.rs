//! `mbls compare` through the real binary, on a small image-folder dataset the test writes:
//! two methods trained for one epoch, the report's files and rows, a rerun that skips the
//! finished runs, the dry run, a method set with a broken entry (the other runs go on, the
//! table names the failure, the exit code is non-zero) and bad arguments.

use std::path::Path;
use std::process::Output;

mod common;

/// `root/{train,test}/class{c}/NN.png`: 10 classes of 32x32 PNG images, 6 training and 2
/// test images per class.
fn dataset(root: &Path) {
    common::class_images(root, 6, 2);
}

/// The overrides every run shares: a small, fast configuration.
fn shared(data: &Path) -> Vec<String> {
    vec![
        "data=folder".into(),
        format!("data.data_root={}", data.display()),
        "data.batch_size=16".into(),
        "data.num_workers=1".into(),
        "model=resnet18_cifar".into(),
        "log_period=100".into(),
    ]
}

fn compare(args: &[String]) -> Output {
    common::run("compare", args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn compare_trains_reports_skips_and_survives_a_broken_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data);
    let out = tmp.path().join("cmp");

    // The dry run plans two new runs and trains nothing.
    let mut a = vec![
        "--only".to_string(),
        "ce,mbls".into(),
        "--epochs".into(),
        "1".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    a.extend(shared(&data));
    let mut dry = a.clone();
    dry.push("--dry-run".into());
    let o = compare(&dry);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("ce seed 1: new"), "{s}");
    assert!(s.contains("mbls seed 1: new"), "{s}");
    assert!(
        s.contains("loss=logit_margin loss.margin=10.0 loss.alpha=0.1"),
        "{s}"
    );
    assert!(s.contains("train.max_epoch=1"), "{s}");
    assert!(!out.join("ce").exists(), "a dry run trains nothing");

    // Two runs, one epoch each.
    let o = compare(&a);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("== [1/2] ce seed 1: new run"), "{err}");
    assert!(err.contains("== mbls seed 1: finished"), "{err}");
    for f in [
        "results.md",
        "results.csv",
        "runs.csv",
        "reliability.svg",
        "reliability.png",
        "ece_vs_acc.svg",
        "ece_vs_acc.png",
        "ce/seed1/summary.json",
        "mbls/seed1/summary.json",
        "mbls/seed1/compare.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| CE |"), "{md}");
    assert!(md.contains("| MbLS (m 10, alpha 0.1) |"), "{md}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "header + one row per method: {csv}");
    assert!(rows[0].starts_with("method,"), "{csv}");
    // The table's accuracy is the run's own test accuracy (one seed: the mean is the value).
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ce/seed1/summary.json")).unwrap())
            .unwrap();
    let header: Vec<&str> = rows[0].split(',').collect();
    let ce: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(ce[0], "ce", "{csv}");
    let acc_col = header
        .iter()
        .position(|h| *h == "acc_mean")
        .expect("acc_mean");
    let acc: f64 = ce[acc_col].parse().unwrap();
    let want = summary["test"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "acc")
        .and_then(|p| p[1].as_f64())
        .expect("test acc in summary.json");
    assert!((acc - want).abs() < 1e-9, "{acc} vs {want}");
    let svg = std::fs::read_to_string(out.join("reliability.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{svg:.80}"
    );
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 3, "{runs}");
    assert!(runs.contains("finished"), "{runs}");

    // A rerun trains nothing: both runs are finished, their files untouched.
    let t0 = std::fs::metadata(out.join("ce/seed1/summary.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = compare(&a);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("new run"), "{err}");
    let t1 = std::fs::metadata(out.join("ce/seed1/summary.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(t0, t1);
    let o = compare(&dry);
    let s = text(&o.stdout);
    assert!(s.contains("ce seed 1: finished"), "{s}");

    // A set with an entry that does not compose, and an unknown method of --only: the other
    // run (already finished) stands, the table names the failures, exit code 1.
    let set = tmp.path().join("set.yaml");
    std::fs::write(
        &set,
        "methods:\n  - name: ce\n    label: CE\n    overrides: [loss=ce]\n  \
         - name: broken\n    label: Broken\n    overrides: [loss=no_such_loss]\n",
    )
    .unwrap();
    let mut b = vec![
        "--set".to_string(),
        set.display().to_string(),
        "--only".into(),
        "ce,broken,cee".into(),
        "--epochs".into(),
        "1".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    b.extend(shared(&data));
    let o = compare(&b);
    let err = text(&o.stderr);
    let s = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{err}\n{s}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(s.contains("Failed runs"), "{s}");
    assert!(s.contains("no_such_loss"), "{s}");
    assert!(s.contains("unknown method `cee`"), "{s}");
    assert!(s.contains("closest: ce"), "{s}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| CE |"),
        "the finished run stays in the table: {md}"
    );
    assert!(md.contains("no_such_loss"), "{md}");
}

#[test]
fn compare_refuses_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.yaml");
    common::fails(
        "compare",
        &["--set", missing.to_str().unwrap(), "--dry-run"],
        "missing.yaml",
    );
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "methods:\n  - name: a\n    overides: [loss=ce]\n").unwrap();
    common::fails(
        "compare",
        &["--set", bad.to_str().unwrap(), "--dry-run"],
        "overides",
    );
    common::fails(
        "compare",
        &["--dry-run", "no_such_group=x"],
        "no_such_group",
    );
    common::fails("compare", &["--dry-run", "seed=3"], "seed");
    common::fails(
        "compare",
        &["--dry-run", "--epochs", "2", "train.max_epoch=3"],
        "train.max_epoch",
    );
}

#[test]
fn an_interrupted_comparison_resumes_where_it_stopped() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data);
    let out = tmp.path().join("cmp");
    let mut a = vec![
        "compare".to_string(),
        "--only".into(),
        "ce".into(),
        "--epochs".into(),
        "4".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    a.extend(shared(&data));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mbls"))
        .args(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM to the runner once the first epoch's checkpoint is written: the runner passes
    // it on, the training checkpoints and stops, the runner exits 130.
    let last = out.join("ce/seed1/last.json");
    let t0 = Instant::now();
    while !last.is_file() {
        assert!(t0.elapsed() < Duration::from_secs(600), "no checkpoint");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    if o.status.code() == Some(0) {
        // The whole run finished before the signal arrived (a very fast machine): nothing
        // to resume, and the test says so rather than passing on nothing.
        panic!("the run finished before SIGTERM reached it: {err}");
    }
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted (rerun the same command to resume)"),
        "{err}"
    );
    assert!(!out.join("ce/seed1/summary.json").exists());
    let o = compare(&a[1..]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("ce seed 1: resuming after epoch"), "{err}");
    assert!(out.join("ce/seed1/summary.json").is_file());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ce/seed1/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["epochs"], 4, "{s}");
}
