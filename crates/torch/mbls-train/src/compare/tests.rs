use super::*;

fn paper() -> MethodSet {
    MethodSet::load("paper").unwrap()
}

fn opts(out: &Path) -> CompareOptions {
    CompareOptions {
        out: out.to_path_buf(),
        scale_schedule: true,
        ..CompareOptions::default()
    }
}

#[test]
fn the_paper_set_is_the_papers_seven_methods_with_their_hyper_parameters() {
    let set = paper();
    let names: Vec<&str> = set.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["ce", "ls", "fl", "flsd", "ecp", "mbls_m0", "mbls"]);
    let d = tempfile::tempdir().unwrap();
    let runs = plan(&set, &opts(d.path()), &UserConfigs::none()).unwrap();
    assert_eq!(runs.len(), 7);
    for r in &runs {
        assert_eq!(r.state, RunState::New, "{}: {:?}", r.method, r.state);
    }
    // Spec 9.5: LS 0.05, FL 3, FLSD-53 (adaptive focal, gamma 3 above pt 0.2), ECP 0.1,
    // MbLS m=10 / m=0 with alpha 0.1.
    let cfg = |name: &str| {
        let r = runs.iter().find(|r| r.method == name).unwrap();
        Config::compose_args(&r.overrides).unwrap()
    };
    assert_eq!(cfg("ce").group("loss"), "ce");
    assert_eq!(cfg("ls").get_f64("loss.alpha").unwrap(), 0.05);
    assert_eq!(cfg("fl").group("loss"), "focal");
    assert_eq!(cfg("fl").get_f64("loss.gamma").unwrap(), 3.0);
    assert_eq!(cfg("flsd").group("loss"), "focal_adaptive");
    assert_eq!(cfg("flsd").get_f64("loss.gamma").unwrap(), 3.0);
    assert_eq!(cfg("ecp").group("loss"), "penalty_ent");
    assert_eq!(cfg("ecp").get_f64("loss.alpha").unwrap(), 0.1);
    for (name, margin) in [("mbls", 10.0), ("mbls_m0", 0.0)] {
        let c = cfg(name);
        assert_eq!(c.group("loss"), "logit_margin");
        assert_eq!(c.get_f64("loss.margin").unwrap(), margin);
        assert_eq!(c.get_f64("loss.alpha").unwrap(), 0.1);
    }
    assert_eq!(runs[0].run_dir, d.path().join("ce").join("seed1"));
}

#[test]
fn bad_sets_are_refused_with_the_reason() {
    let cases = [
        ("methods: []", "no methods"),
        (
            "methods:\n  - name: a\n    overrides: []\n    colour: red",
            "colour",
        ),
        (
            "methods:\n  - name: a\n    overrides: []\n  - name: a\n    overrides: []",
            "twice",
        ),
        (
            "methods:\n  - name: ../x\n    overrides: []",
            "must be letters",
        ),
        ("methods:\n  - name: a\n    overrides: [seed=3]", "--seeds"),
        (
            "methods:\n  - name: a\n    overrides: [hydra.run.dir=/tmp]",
            "--out",
        ),
        ("method: []", "method"),
        ("methods: [", "s.yaml"),
    ];
    for (text, want) in cases {
        let e = MethodSet::parse("s.yaml", text).unwrap_err().to_string();
        assert!(e.contains(want) && e.starts_with("s.yaml"), "{text:?}: {e}");
    }
    let e = MethodSet::load("no-such-set").unwrap_err().to_string();
    assert!(e.contains("paper") && e.contains("no such file"), "{e}");
}

#[test]
fn epochs_scale_the_schedule_unless_an_override_sets_it() {
    let base = Config::compose(&[]).unwrap(); // 200 epochs, milestones [150, 250]
    assert_eq!(
        epoch_overrides(&base, 2, true, &[]).unwrap(),
        ["train.max_epoch=2", "scheduler.milestones=[2, 3]"]
    );
    assert_eq!(
        epoch_overrides(&base, 20, true, &[]).unwrap(),
        ["train.max_epoch=20", "scheduler.milestones=[15, 25]"]
    );
    assert_eq!(
        epoch_overrides(&base, 20, false, &[]).unwrap(),
        ["train.max_epoch=20"]
    );
    let given = vec!["scheduler.milestones=[5]".to_string()];
    assert_eq!(
        epoch_overrides(&base, 20, true, &given).unwrap(),
        ["train.max_epoch=20"]
    );
    let step = Config::compose(&["scheduler=step"]).unwrap(); // step_size 50
    assert_eq!(
        epoch_overrides(&step, 20, true, &[]).unwrap(),
        ["train.max_epoch=20", "scheduler.step_size=5"]
    );
    // Never below one epoch.
    assert_eq!(
        epoch_overrides(&step, 1, true, &[]).unwrap(),
        ["train.max_epoch=1", "scheduler.step_size=1"]
    );
    let cosine = Config::compose(&["scheduler=cosine"]).unwrap(); // warm-up 5
    assert_eq!(
        epoch_overrides(&cosine, 40, true, &[]).unwrap(),
        ["train.max_epoch=40", "scheduler.warmup_epochs=1"]
    );
    // The planned runs carry them.
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.epochs = Some(2);
    o.seeds = vec![1, 2];
    o.only = vec!["mbls".into()];
    let runs = plan(&paper(), &o, &UserConfigs::none()).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1].overrides,
        [
            "loss=logit_margin",
            "loss.margin=10.0",
            "loss.alpha=0.1",
            "seed=2",
            "train.max_epoch=2",
            "scheduler.milestones=[2, 3]"
        ]
    );
    assert_eq!(runs[1].run_dir, d.path().join("mbls").join("seed2"));
    let args = runs[1].train_args();
    assert_eq!(args[0], "train");
    assert!(args.contains(&format!("hydra.run.dir={}", runs[1].run_dir.display())));
    assert_eq!(args.last().unwrap(), "train.resume=true");
}

#[test]
fn entries_that_do_not_compose_are_invalid_runs_and_the_others_go_on() {
    let d = tempfile::tempdir().unwrap();
    let set = MethodSet::parse(
        "s.yaml",
        "methods:\n  - name: good\n    overrides: [loss=ls]\n  - name: typo\n    overrides: [loss=lss]\n  - name: badkey\n    overrides: [loss.margn=3]\n",
    )
    .unwrap();
    let mut o = opts(d.path());
    o.only = vec!["good".into(), "typo".into(), "badkey".into(), "god".into()];
    let runs = plan(&set, &o, &UserConfigs::none()).unwrap();
    assert_eq!(runs[0].state, RunState::New);
    let invalid = |i: usize| match &runs[i].state {
        RunState::Invalid(e) => e.clone(),
        s => panic!("run {i}: {s:?}"),
    };
    assert!(invalid(1).contains("lss"), "{}", invalid(1));
    assert!(invalid(2).contains("margn"), "{}", invalid(2));
    assert!(invalid(3).contains("unknown method `god`") && invalid(3).contains("closest: good"));
    assert_eq!(runs[3].method, "god");
    // Shared overrides that cannot compose, or that set what the runner sets, stop everything.
    for (shared, want) in [
        (vec!["model=resnet9000"], "resnet9000"),
        (vec!["seed=4"], "--seeds"),
        (vec!["hydra.run.dir=x"], "--out"),
        (vec!["train.resume=true"], "resumes"),
    ] {
        let mut o = opts(d.path());
        o.overrides = shared.iter().map(|s| s.to_string()).collect();
        let e = plan(&set, &o, &UserConfigs::none())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{shared:?}: {e}");
    }
    let mut o = opts(d.path());
    o.overrides = vec!["train.max_epoch=3".into()];
    o.epochs = Some(2);
    let e = plan(&set, &o, &UserConfigs::none())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--epochs"), "{e}");
}

/// A `summary.json` as the trainer writes it (the parts the runner reads).
fn summary(acc: f64, ece: f64, ts: Option<(f64, f64)>) -> String {
    let phase = |name: &str, ece: f64, nll: f64| {
        serde_json::json!({
            "phase": name, "samples": 100, "loss": [["loss", nll]],
            "metrics": [["acc", acc], ["acc_5", 1.0], ["macc", acc], ["nll", nll],
                        ["ece", ece], ["aece", ece * 1.1], ["cece", ece / 10.0]]
        })
    };
    let mut v = serde_json::json!({
        "run_dir": "x", "checkpoint": "best", "epochs": 2, "best_epoch": 1,
        "best_val_score": acc, "test": phase("Test", ece, 0.5), "test_pt": null,
        "temperature": null, "train_seconds": 61.0
    });
    if let Some((t, ece_ts)) = ts {
        v["test_pt"] = phase("TestPT", ece_ts, 0.4);
        v["temperature"] = serde_json::json!({"temperature": t});
    }
    serde_json::to_string_pretty(&v).unwrap()
}

fn write_run(dir: &Path, cfg: &Config, summary_text: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.yaml"), cfg.to_yaml()).unwrap();
    if let Some(s) = summary_text {
        std::fs::write(dir.join("summary.json"), s).unwrap();
    }
}

#[test]
fn run_folders_are_recognised_finished_resumable_or_foreign() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.only = vec!["ce".into(), "ls".into(), "fl".into(), "ecp".into()];
    o.epochs = Some(2);
    let planned = plan(&paper(), &o, &UserConfigs::none()).unwrap();
    let cfg_of = |i: usize| Config::compose_args(&planned[i].overrides).unwrap();
    // ce: finished with the same configuration (train.resume may differ).
    let mut ce = planned[0].overrides.clone();
    ce.push("train.resume=false".into());
    write_run(
        &planned[0].run_dir,
        &Config::compose_args(&ce).unwrap(),
        Some(&summary(0.8, 0.05, None)),
    );
    // ls: interrupted after epoch 1.
    write_run(&planned[1].run_dir, &cfg_of(1), None);
    std::fs::write(
        planned[1].run_dir.join("last.json"),
        r#"{"state": {"epoch": 1}}"#,
    )
    .unwrap();
    // fl: finished with another learning rate.
    let mut fl = planned[2].overrides.clone();
    fl.push("optim.lr=0.05".into());
    write_run(
        &planned[2].run_dir,
        &Config::compose_args(&fl).unwrap(),
        Some(&summary(0.8, 0.05, None)),
    );
    // ecp: finished with fewer epochs, its checkpoint kept: extended.
    let mut ecp = planned[3].overrides.clone();
    ecp.push("train.max_epoch=1".into());
    write_run(
        &planned[3].run_dir,
        &Config::compose_args(&ecp).unwrap(),
        Some(&summary(0.8, 0.05, None)),
    );
    std::fs::write(
        planned[3].run_dir.join("last.json"),
        r#"{"state": {"epoch": 1}}"#,
    )
    .unwrap();

    let runs = plan(&paper(), &o, &UserConfigs::none()).unwrap();
    assert_eq!(runs[0].state, RunState::Finished);
    assert_eq!(runs[1].state, RunState::Resume { epoch: 1 });
    match &runs[2].state {
        RunState::Invalid(e) => assert!(e.contains("optim.lr"), "{e}"),
        s => panic!("{s:?}"),
    }
    assert_eq!(runs[3].state, RunState::Resume { epoch: 1 });
    let listing = describe(&runs, "mbls");
    assert!(
        listing.contains("ce seed 1: finished: skipped"),
        "{listing}"
    );
    assert!(
        listing.contains("ls seed 1: interrupted after epoch 1: resumed"),
        "{listing}"
    );
    assert!(listing.contains("fl seed 1: INVALID"), "{listing}");
    assert!(
        listing.contains("'scheduler.milestones=[2, 3]'"),
        "{listing}"
    );

    // The report of what is there: ce finished, the others not.
    let results = collect(&runs, None);
    assert_eq!(results[0].status, "finished");
    assert_eq!(results[1].status, "not run");
    assert_eq!(results[2].status, "failed");
    let md = markdown(&results);
    assert!(md.contains("| CE | 1/1 | 80.00 | 5.00 |"), "{md}");
    assert!(
        md.contains("Failed runs:") && md.contains("- fl seed 1:"),
        "{md}"
    );
}

#[test]
fn the_table_gives_mean_and_sample_sd_over_seeds() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.only = vec!["ce".into(), "mbls".into()];
    o.seeds = vec![1, 2, 3];
    let planned = plan(&paper(), &o, &UserConfigs::none()).unwrap();
    // ce: acc 0.80, 0.82, 0.84 (mean 82, sd 2); ece 0.05 each. mbls: 2 of 3 finished.
    let vals = [
        (0.80, 0.05, Some((1.5, 0.01))),
        (0.82, 0.05, Some((1.6, 0.02))),
        (0.84, 0.05, Some((1.7, 0.03))),
        (0.90, 0.01, Some((1.0, 0.01))),
        (0.92, 0.03, Some((1.0, 0.01))),
    ];
    for (r, (acc, ece, ts)) in planned.iter().zip(vals) {
        let cfg = Config::compose_args(&r.overrides).unwrap();
        write_run(&r.run_dir, &cfg, Some(&summary(acc, ece, ts)));
        // Bins for the figure: one bin per run.
        let rel = mbls_plot::Reliability {
            bins: vec![mbls_plot::Bin {
                lower: 0.0,
                upper: 1.0,
                count: 100,
                mean_confidence: Some(acc + ece),
                accuracy: Some(acc),
            }],
            total: 100,
            mean_accuracy: acc,
            mean_confidence: acc + ece,
            ece,
            title: String::new(),
        };
        std::fs::write(r.run_dir.join("test_bins.csv"), mbls_plot::bins_csv(&rel)).unwrap();
    }
    let runs = plan(&paper(), &o, &UserConfigs::none()).unwrap();
    let outcomes: Vec<Outcome> = runs
        .iter()
        .enumerate()
        .map(|(i, _)| match i {
            5 => Outcome::Failed("the loss term `loss` is NaN".into()),
            _ => Outcome::Finished { ran: false },
        })
        .collect();
    let results = collect(&runs, Some(&outcomes));
    let md = markdown(&results);
    assert!(
        md.contains("| CE | 3/3 | 82.00 ± 2.00 | 5.00 ± 0.00 |"),
        "{md}"
    );
    // T: 1.5, 1.6, 1.7 -> 1.600 ± 0.100; ECE TS 1, 2, 3 % -> 2.00 ± 1.00.
    assert!(
        md.contains("2.00 ± 1.00") && md.contains("1.600 ± 0.100"),
        "{md}"
    );
    assert!(
        md.contains("| MbLS (m 10, alpha 0.1) | 2/3 | 91.00 ± 1.41 | 2.00 ± 1.41 |"),
        "{md}"
    );
    assert!(
        md.contains("- mbls seed 3: the loss term `loss` is NaN"),
        "{md}"
    );
    assert!(
        md.contains("| 0:01:01 |"),
        "the train time of the summary: {md}"
    );

    let csv = results_csv(&results);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("method,label,finished,planned,acc_mean,acc_sd,ece_mean"));
    let ce: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(&ce[..4], ["ce", "CE", "3", "3"]);
    assert!((ce[4].parse::<f64>().unwrap() - 0.82).abs() < 1e-12);
    assert!((ce[5].parse::<f64>().unwrap() - 0.02).abs() < 1e-12);
    let runs_csv = runs_csv(&results);
    assert_eq!(runs_csv.lines().count(), 7);
    assert!(runs_csv.lines().nth(6).unwrap().contains("failed"));

    let files = write_report(d.path(), &results).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "results.md",
            "results.csv",
            "runs.csv",
            "reliability.svg",
            "reliability.png",
            "ece_vs_acc.svg",
            "ece_vs_acc.png"
        ]
    );
    let grid = std::fs::read_to_string(d.path().join("reliability.svg")).unwrap();
    assert!(grid.contains("CE (seed 1)") && grid.contains("MbLS (m 10, alpha 0.1) (seed 1)"));
    let sc = std::fs::read_to_string(d.path().join("ece_vs_acc.svg")).unwrap();
    assert!(sc.contains(">CE</text>") && sc.contains("after temperature scaling"));
}

#[test]
fn bins_are_read_back_as_the_diagram_they_were_written_from() {
    let d = tempfile::tempdir().unwrap();
    let rel = mbls_plot::Reliability {
        bins: vec![
            mbls_plot::Bin {
                lower: 0.0,
                upper: 0.5,
                count: 30,
                mean_confidence: Some(0.4),
                accuracy: Some(0.3),
            },
            mbls_plot::Bin {
                lower: 0.5,
                upper: 1.0,
                count: 70,
                mean_confidence: Some(0.9),
                accuracy: Some(0.8),
            },
            mbls_plot::Bin {
                lower: 1.0,
                upper: 1.0,
                count: 0,
                mean_confidence: None,
                accuracy: None,
            },
        ],
        total: 100,
        mean_accuracy: 0.65,
        mean_confidence: 0.75,
        ece: 0.1,
        title: "t".into(),
    };
    std::fs::write(d.path().join("test_bins.csv"), mbls_plot::bins_csv(&rel)).unwrap();
    let back = reliability_of(d.path(), "t").unwrap();
    assert_eq!(back.bins, rel.bins);
    assert_eq!(back.total, 100);
    for (a, b) in [
        (back.mean_accuracy, 0.65),
        (back.mean_confidence, 0.75),
        (back.ece, 0.1),
    ] {
        assert!((a - b).abs() < 1e-12, "{a} {b}");
    }
    std::fs::write(d.path().join("test_bins.csv"), "bin,lower\n0,x\n").unwrap();
    assert!(
        reliability_of(d.path(), "t")
            .unwrap_err()
            .contains("line 2")
    );
}

#[test]
fn mean_and_sd() {
    assert_eq!(mean_sd(&[]), None);
    assert_eq!(mean_sd(&[2.0]), Some((2.0, None)));
    let (m, sd) = mean_sd(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(m, 2.5);
    assert!((sd.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
}
