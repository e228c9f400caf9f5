//! `mbls train` and `mbls test` through the real binary, on a small image-folder dataset the
//! tests write (10 classes of 32x32 PNG images): the run folder's files, `mbls test` of the
//! trained run, exact resume after a normal stop and after SIGKILL at arbitrary moments, the
//! TensorBoard files read back by the `tensorboard` package, and bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// `root/{train,test}/class{c}/NN.png`: 8 training and 2 test images per class, each class a
/// colour with noise, so that a network learns something in a few steps.
fn dataset(root: &Path) {
    common::class_images(root, 8, 2);
}

fn base_args(data: &Path, run: &Path, epochs: u32) -> Vec<String> {
    vec![
        "data=folder".into(),
        format!("data.data_root={}", data.display()),
        "data.batch_size=16".into(),
        "data.num_workers=2".into(),
        "model=resnet18_cifar".into(),
        "loss=logit_margin".into(),
        "optim.lr=0.05".into(),
        "scheduler.milestones=[2]".into(),
        format!("train.max_epoch={epochs}"),
        "log_period=1".into(),
        format!("hydra.run.dir={}", run.display()),
    ]
}

fn train(args: &[String]) -> String {
    common::ok("train", args)
}

fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The records of a run without what depends on the clock.
fn metrics(run: &Path) -> (Vec<Value>, Vec<Value>) {
    let strip = |mut v: Value| {
        let m = v.as_object_mut().unwrap();
        for k in ["wall_time", "data_time", "batch_time", "time"] {
            m.remove(k);
        }
        v
    };
    (
        read_jsonl(&run.join("iterations.jsonl"))
            .into_iter()
            .map(strip)
            .collect(),
        read_jsonl(&run.join("epochs.jsonl"))
            .into_iter()
            .map(strip)
            .collect(),
    )
}

fn summary(run: &Path) -> Value {
    let mut s: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    s.as_object_mut().unwrap().remove("train_seconds");
    s.as_object_mut().unwrap().remove("run_dir");
    s
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data);
    let root = tmp.path().to_path_buf();
    Fixture {
        _tmp: tmp,
        data,
        root,
    }
}

#[test]
fn trains_tests_and_writes_the_run_folder() {
    let f = fixture();
    let run = f.root.join("run");
    let out = train(&base_args(&f.data, &run, 2));
    assert!(out.contains("Train Epoch[1]"), "{out}");
    assert!(out.contains("TestPT"), "{out}");
    for file in [
        "config.yaml",
        "command.txt",
        "train.log",
        "iterations.jsonl",
        "epochs.jsonl",
        "iterations_train.csv",
        "epochs_train.csv",
        "epochs_val.csv",
        "epochs_test.csv",
        "epochs_testpt.csv",
        "summary.json",
        "best.json",
        "last.json",
        "test_reliability.svg",
        "test_reliability.png",
        "testpt_reliability.svg",
        "test_bins.csv",
    ] {
        assert!(
            run.join(file).is_file(),
            "{file} missing in {}",
            run.display()
        );
    }
    // The log holds everything printed.
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("Val Epoch[1]") && log.contains("resolved configuration"));
    let (iters, epochs) = metrics(&run);
    // 72 training images (80 minus the 10% validation split), batch 16, drop_last: 4 a epoch
    assert_eq!(iters.len(), 8);
    assert_eq!(iters[7]["iter"], 7);
    let phases: Vec<&str> = epochs
        .iter()
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["Train", "Val", "Train", "Val", "Test", "TestPT"]);
    for key in [
        "loss",
        "loss_ce",
        "loss_margin_l1",
        "alpha",
        "lr",
        "acc",
        "acc_5",
        "macc",
    ] {
        assert!(
            epochs[0].get(key).is_some(),
            "Train has no {key}: {}",
            epochs[0]
        );
    }
    for key in [
        "nll",
        "ece",
        "aece",
        "cece",
        "mean_diffs",
        "max_diffs",
        "margin",
    ] {
        assert!(
            epochs[1].get(key).is_some(),
            "Val has no {key}: {}",
            epochs[1]
        );
    }
    let s = summary(&run);
    let t = s["temperature"]["temperature"].as_f64().unwrap();
    assert!((0.09..=10.1).contains(&t), "{s}");
    let test_acc = s["test"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m[0] == "acc")
        .unwrap()[1]
        .as_f64()
        .unwrap();

    // mbls test of the trained run: the best checkpoint, its logits as .npz for mbls eval.
    let mut args = base_args(&f.data, &run, 2);
    args.push("test.post_temperature=true".into());
    args.push("test.save_logits=true".into());
    let out = common::ok("test", &args);
    assert!(out.contains("TestPT"), "{out}");
    let npz = run.join("best_logits.npz");
    assert!(npz.is_file() && run.join("best_logits_pt.npz").is_file());
    let e = common::json("eval", &[npz.to_str().unwrap()]);
    let acc = e["metrics"]["acc"]
        .as_f64()
        .or_else(|| e["acc"].as_f64())
        .unwrap_or_else(|| panic!("no acc in {e}"));
    assert_eq!(acc, test_acc, "mbls eval of the saved logits");
    assert!(run.join("best_test_summary.json").is_file());
    assert!(run.join("best_test_reliability.svg").is_file());
}

#[test]
fn a_resumed_run_ends_exactly_as_the_uninterrupted_one() {
    let f = fixture();
    let whole = f.root.join("whole");
    train(&base_args(&f.data, &whole, 3));
    // The same run stopped after one epoch (train.max_epoch may change on resume) ...
    let part = f.root.join("part");
    train(&base_args(&f.data, &part, 1));
    let mut args = base_args(&f.data, &part, 3);
    args.push("train.resume=true".into());
    let out = train(&args);
    assert!(out.contains("resumed from"), "{out}");
    assert_eq!(metrics(&part), metrics(&whole));
    assert_eq!(summary(&part), summary(&whole));
}

/// When to kill a `mbls train` run: once `iterations.jsonl` of `run` contains `needle` (at
/// most 120 s), or after a delay in milliseconds.
enum KillAt<'a> {
    Record(&'a str),
    After(u64),
}

/// Runs `mbls train args`, kills it with SIGKILL at `at` if it is still running, and says
/// whether it was killed.
fn train_and_kill(args: &[String], run: &Path, at: KillAt<'_>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mbls"))
        .arg("train")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    match at {
        KillAt::Record(needle) => loop {
            let text = std::fs::read_to_string(run.join("iterations.jsonl")).unwrap_or_default();
            if text.contains(needle) || t.elapsed() > Duration::from_secs(120) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        },
        KillAt::After(ms) => std::thread::sleep(Duration::from_millis(ms)),
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    let _ = child.wait();
    killed
}

#[test]
fn a_run_killed_at_any_moment_resumes_exactly() {
    let f = fixture();
    let whole = f.root.join("whole");
    train(&base_args(&f.data, &whole, 3));
    let want = (metrics(&whole), summary(&whole));
    let run = f.root.join("killed");
    // Kill the first run mid-epoch (after an iteration record of epoch 1), then kill resumed
    // runs after growing delays (some land in checkpoint writes or in Test), then let one
    // resumed run finish.
    let mut a = base_args(&f.data, &run, 3);
    a.push("train.resume=true".into());
    let mut kills = 0;
    for at in [
        KillAt::Record("\"epoch\":1"),
        KillAt::After(300),
        KillAt::After(900),
        KillAt::After(1500),
    ] {
        kills += usize::from(train_and_kill(&a, &run, at));
    }
    let out = common::run("train", &a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kills >= 1, "no run was killed");
    eprintln!("killed {kills} times");
    assert_eq!((metrics(&run), summary(&run)), want);
}

#[test]
fn tensorboard_files_are_read_by_tensorboard() {
    let python = std::env::var("MBLS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_tb = Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tb {
        eprintln!(
            "SKIPPED: {python} has no `tensorboard` package (set MBLS_TEST_PYTHON; \
             scripts/test.sh installs it)"
        );
        return;
    }
    let f = fixture();
    let run = f.root.join("run");
    train(&base_args(&f.data, &run, 2));
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../torch/mbls-train/tests/read_tensorboard.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(run.join("tensorboard"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tags: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (iters, epochs) = metrics(&run);
    let steps = |tag: &str| -> Vec<(i64, f64)> {
        tags[tag]
            .as_array()
            .unwrap_or_else(|| panic!("no tag {tag} in {tags}"))
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect()
    };
    let loss = steps("Train/Iter/loss");
    assert_eq!(loss.len(), iters.len());
    for ((step, v), r) in loss.iter().zip(&iters) {
        assert_eq!(*step, r["iter"].as_i64().unwrap());
        assert_eq!(*v as f32, r["loss"].as_f64().unwrap() as f32);
    }
    for tag in [
        "Train/lr",
        "Train/alpha",
        "Val/ece",
        "Val/acc",
        "Test/ece",
        "TestPT/ece",
    ] {
        assert!(!steps(tag).is_empty(), "{tag}");
    }
    let val_ece: Vec<f32> = epochs
        .iter()
        .filter(|e| e["phase"] == "Val")
        .map(|e| e["ece"].as_f64().unwrap() as f32)
        .collect();
    let tb: Vec<f32> = steps("Val/ece").iter().map(|(_, v)| *v as f32).collect();
    assert_eq!(tb, val_ece);
}

#[test]
fn bad_input_is_refused_and_names_the_problem() {
    let f = fixture();
    let run = f.root.join("run");
    let mut a = base_args(&f.data, &run, 1);
    a[1] = format!("data.data_root={}", f.root.join("nope").display());
    common::fails("train", &a, "nope");
    assert!(!run.join("last.json").exists());

    let mut a = base_args(&f.data, &run, 1);
    a.push("model.num_classes=7".into());
    common::fails("train", &a, "model.num_classes=7 but the dataset");

    let mut a = base_args(&f.data, &run, 1);
    a.push("+train.colour=1".into());
    common::fails("train", &a, "train.colour");

    for (device, needle) in [
        ("device=gpu", "expected cpu, cuda or cuda:N"),
        ("device=cuda:x", "expected cpu, cuda or cuda:N"),
        ("device=cuda:7", "no such CUDA device"),
    ] {
        let mut a = base_args(&f.data, &run, 1);
        a.push(device.into());
        common::fails("train", &a, needle);
    }
    common::fails("train", &["loss=nonsense"], "nonsense");
    common::fails("train", &["model=resnet110"], "does not exist");
    common::fails("train", &["data=voc"], "task=segment");

    // A finished run is not overwritten, and a resume with another loss is refused.
    train(&base_args(&f.data, &run, 1));
    let before = std::fs::read_to_string(run.join("epochs.jsonl")).unwrap();
    common::fails("train", &base_args(&f.data, &run, 1), "train.resume=true");
    let mut a = base_args(&f.data, &run, 2);
    a.push("train.resume=true".into());
    a.push("loss.margin=5".into());
    common::fails("train", &a, "loss.margin");
    assert_eq!(
        std::fs::read_to_string(run.join("epochs.jsonl")).unwrap(),
        before
    );

    // mbls test without a run folder, or of a checkpoint that is not there.
    common::fails("test", &["data=folder"], "hydra.run.dir");
    let mut a = base_args(&f.data, &run, 1);
    a.push("test.checkpoint=missing.pth".into());
    common::fails("test", &a, "missing.pth");
}

#[test]
fn help_and_cfg() {
    let out = common::ok("train", &["--help"]);
    for needle in [
        "logit_margin",
        "resnet18_cifar",
        "train.max_epoch=200",
        "hydra.run.dir",
    ] {
        assert!(out.contains(needle), "{needle} not in help: {out}");
    }
    let out = common::ok("train", &["loss=logit_margin", "loss.margin=5", "--cfg"]);
    assert!(out.contains("margin: 5"), "{out}");
}

#[test]
fn ctrl_c_stops_after_the_iteration_with_exit_130_and_resume_finishes() {
    let f = fixture();
    let run = f.root.join("run");
    let mut args = base_args(&f.data, &run, 3);
    // outputs kept for a mid-epoch save, but no periodic one within an epoch of 4 iterations
    args.push("train.checkpoint_every=100".into());
    let child = Command::new(env!("CARGO_BIN_EXE_mbls"))
        .arg("train")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(run.join("iterations.jsonl")).unwrap_or_default();
        if text.contains("\"epoch\":1") || t.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted at epoch"), "{err}");
    // Ctrl-C saved `last` where it stopped (mid-epoch, or after the training phase).
    let state = last_state(&run);
    assert!(state["epoch"].as_u64().unwrap() >= 1, "{state}");
    assert!(
        state["extra"]["partial"]["iteration"].as_u64().unwrap() >= 1,
        "{state}"
    );
    let mut a = args.clone();
    a.push("train.resume=true".into());
    let out = train(&a);
    assert!(
        out.contains("resumed from") && out.contains(", iteration"),
        "{out}"
    );
    let whole = f.root.join("whole");
    train(&base_args(&f.data, &whole, 3));
    assert_eq!(
        (metrics(&run), summary(&run)),
        (metrics(&whole), summary(&whole))
    );
}

/// The training state of a run folder's `last` checkpoint.
fn last_state(run: &Path) -> Value {
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last.json")).unwrap()).unwrap();
    p["state"].clone()
}

#[test]
fn mid_epoch_checkpoints_resume_exactly() {
    let f = fixture();
    let whole = f.root.join("whole");
    train(&base_args(&f.data, &whole, 3));
    let want = (metrics(&whole), summary(&whole));
    // train.checkpoint_every=1: `last` after every iteration; a SIGKILL loses at most one.
    let run = f.root.join("killed");
    let mut a = base_args(&f.data, &run, 3);
    a.push("train.checkpoint_every=1".into());
    a.push("train.resume=true".into());
    let mut mid_epoch_resumes = 0;
    // the first kill after the second iteration record of epoch 1 (iteration 5 of 12)
    for at in [
        KillAt::Record("\"iter\":5"),
        KillAt::After(400),
        KillAt::After(1000),
    ] {
        if let Ok(text) = std::fs::read_to_string(run.join("last.json")) {
            mid_epoch_resumes += usize::from(text.contains("\"partial\""));
        }
        train_and_kill(&a, &run, at);
    }
    eprintln!("last after the kills: {}", last_state(&run));
    let out = train(&a);
    assert!(out.contains("resumed from"), "{out}");
    assert!(
        mid_epoch_resumes >= 1,
        "no kill left a mid-epoch checkpoint"
    );
    assert_eq!((metrics(&run), summary(&run)), want);
    // The mid-epoch state files are gone once the epochs are complete.
    let left: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_reference_commands_run_with_only_the_program_name_changed() {
    let f = fixture();
    let root = f.root.join("tiny-imagenet-200");
    let root = root.to_str().unwrap();
    // README of the reference: MbLS, CE and LS on Tiny-ImageNet, as written.
    for loss in [
        "loss=logit_margin loss.margin=10.0 loss.alpha=0.1",
        "loss=ce",
        "loss=ls",
    ] {
        let cmd = format!(
            "log_period=100 data=tiny_imagenet data.data_root={root} model=resnet50_tiny \
             model.num_classes=200 {loss} optim=sgd optim.lr=0.1 optim.momentum=0.9 \
             scheduler=multi_step"
        );
        let mut args: Vec<String> = cmd.split_whitespace().map(String::from).collect();
        args.push("scheduler.milestones=[40, 60]".into());
        args.push("train.max_epoch=100".into());
        let mut cfg = args.clone();
        cfg.push("--cfg".into());
        let yaml = common::ok("train", &cfg);
        assert!(
            yaml.contains("num_classes: 200") && yaml.contains("- 40"),
            "{yaml}"
        );
        // The configuration composes into a run; only the absent data stops it.
        let run = f.root.join("run");
        args.push(format!("hydra.run.dir={}", run.display()));
        common::fails("train", &args, "tiny-imagenet-200");
        assert!(!run.join("last.json").exists());
    }
    // docs/TEST.md of the reference: the tester.
    let run = f.root.join("ckpt");
    std::fs::create_dir_all(&run).unwrap();
    common::fails(
        "test",
        &[
            "data=tiny_imagenet".to_string(),
            format!("data.data_root={root}"),
            "model=resnet50_tiny".into(),
            "model.num_classes=200".into(),
            format!("hydra.run.dir={}", run.display()),
            "test.checkpoint=resnet50_tiny-logit_margin-best.pth".into(),
        ],
        "tiny-imagenet-200",
    );
}

#[test]
fn config_dir_adds_and_replaces_group_options() {
    let f = fixture();
    let dir = f.root.join("conf");
    std::fs::create_dir_all(dir.join("loss")).unwrap();
    std::fs::write(
        dir.join("loss/mbls_m5.yaml"),
        "name: logit_margin\nmargin: 5.0\nalpha: 0.2\nignore_index: -100\nschedule: \"\"\n\
         mu: 0.0\nmax_alpha: 100.0\nstep_size: 100\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let out = common::ok("train", &["--config-dir", d, "--help"]);
    assert!(out.contains("mbls_m5"), "{out}");
    let out = common::ok("train", &["--config-dir", d, "loss=mbls_m5", "--cfg"]);
    assert!(
        out.contains("margin: 5") && out.contains("alpha: 0.2"),
        "{out}"
    );
    // it trains with it
    let run = f.root.join("run");
    let mut a = base_args(&f.data, &run, 1);
    a.retain(|x| !x.starts_with("loss="));
    a.extend(["--config-dir".into(), d.into(), "loss=mbls_m5".into()]);
    train(&a);
    let cfg = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(cfg.contains("margin: 5"), "{cfg}");
    // without the folder the option is unknown; a bad folder is named
    common::fails("train", &["loss=mbls_m5", "--cfg"], "mbls_m5");
    std::fs::create_dir_all(dir.join("losses")).unwrap();
    common::fails(
        "train",
        &["--config-dir", d, "--cfg"],
        "did you mean `loss`",
    );
}

#[test]
fn pretrained_weights_absent_offline_are_named() {
    let f = fixture();
    let run = f.root.join("run");
    let empty = f.root.join("torch-home");
    std::fs::create_dir_all(&empty).unwrap();
    let mut a = base_args(&f.data, &run, 1);
    a.retain(|x| !x.starts_with("model="));
    a.extend(["model=resnet34".into(), "model.pretrained=true".into()]);
    let out = Command::new(env!("CARGO_BIN_EXE_mbls"))
        .arg("train")
        .args(&a)
        .env("MBLS_OFFLINE", "1")
        .env("TORCH_HOME", &empty)
        .env("HOME", &empty)
        .env_remove("XDG_CACHE_HOME")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("resnet34-") && err.contains(".pth") && err.contains("model.pretrained=false"),
        "{err}"
    );
    assert!(!run.join("last.json").exists());
}

#[test]
fn a_corrupt_image_mid_run_and_a_checkpoint_of_another_model_are_named() {
    let f = fixture();
    let run = f.root.join("run");
    train(&base_args(&f.data, &run, 1));
    let before = (
        std::fs::read_to_string(run.join("epochs.jsonl")).unwrap(),
        std::fs::read(run.join("last.json")).unwrap(),
    );
    // An image of the training split goes bad between two runs: the resumed run meets it
    // in its epoch and stops, naming it; what the run folder held is intact.
    let bad = f.data.join("train/class3/05.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let mut a = base_args(&f.data, &run, 2);
    a.push("train.resume=true".into());
    common::fails("train", &a, "05.png");
    assert_eq!(
        std::fs::read(run.join("last.json")).unwrap(),
        before.1,
        "last is untouched"
    );
    // the records before the resume point (epoch 0's Train and Val) are kept as they were
    let after = std::fs::read_to_string(run.join("epochs.jsonl")).unwrap();
    let head = |t: &str| t.lines().take(2).map(String::from).collect::<Vec<_>>();
    assert_eq!(head(&after), head(&before.0));
    assert!(run.join("summary.json").is_file());
    // mbls test of the run with another model: its checkpoint does not fit.
    let mut a = base_args(&f.data, &run, 1);
    a.retain(|x| !x.starts_with("model="));
    a.push("model=resnet34_cifar".into());
    let err = common::fails("test", &a, "best");
    assert!(err.contains(run.to_str().unwrap()), "{err}");
}

/// `root/{train,test}/noise{c}/NN.png`: 3 classes of 32x32 images of seeded noise, unlike
/// anything of [`dataset`]: the out-of-distribution set of `task=ood`.
fn noise_images(root: &Path, per_class: usize) {
    use image::{ImageBuffer, Rgb, RgbImage};
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for split in ["train", "test"] {
        for c in 0..3usize {
            let d = root.join(split).join(format!("noise{c}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..per_class {
                let im: RgbImage = ImageBuffer::from_fn(32, 32, |_, _| {
                    let mut px = [0u8; 3];
                    for p in &mut px {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        *p = (state >> 56) as u8;
                    }
                    Rgb(px)
                });
                im.save(d.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
}

fn summary_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn test_with_a_post_hoc_calibrator_and_ood_detection() {
    // Half of the 160 training images for validation, so that the calibrator sees every class.
    let tmp = tempfile::tempdir().unwrap();
    let f = Fixture {
        data: tmp.path().join("data"),
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
    };
    common::class_images(&f.data, 16, 2);
    let base_args = |data: &Path, run: &Path, epochs: u32| {
        let mut a = base_args(data, run, epochs);
        a.push("data.val_split=0.5".into());
        a
    };
    let run = f.root.join("run");
    train(&base_args(&f.data, &run, 1));
    let ood = f.root.join("ood");
    noise_images(&ood, 5);

    // calibrate.method: matrix scaling fitted on the validation split for TestPT, saved as a
    // calibrator file that mbls eval applies to the saved test logits.
    let mut a = base_args(&f.data, &run, 1);
    a.extend([
        "test.post_temperature=true".to_string(),
        "test.save_logits=true".to_string(),
        "calibrate.method=matrix".to_string(),
    ]);
    let out = common::ok("test", &a);
    assert!(out.contains("post-hoc calibrator matrix"), "{out}");
    let s = summary_file(&run.join("best_test_summary.json"));
    assert_eq!(s["calibrator"]["method"], "matrix", "{s}");
    assert!(s["temperature"].is_null(), "{s}");
    let cal = PathBuf::from(s["calibrator"]["file"].as_str().unwrap());
    assert!(cal.is_file(), "{}", cal.display());
    let e = common::json(
        "eval",
        &[
            run.join("best_logits.npz").to_str().unwrap(),
            "--calibrator",
            cal.to_str().unwrap(),
        ],
    );
    let pt = common::json("eval", &[run.join("best_logits_pt.npz").to_str().unwrap()]);
    let ece = |v: &Value| {
        v["metrics"]["ece"]
            .as_f64()
            .or_else(|| v["ece"].as_f64())
            .unwrap_or_else(|| panic!("no ece in {v}"))
    };
    // The file's calibrator on the raw logits is TestPT (its log-probabilities saved).
    let rows = e["rows"].as_array().unwrap();
    assert_eq!(rows.last().unwrap()["method"], "matrix", "{e}");
    let after = ece(rows.last().unwrap());
    assert!((after - ece(&pt)).abs() < 1e-5, "{e}\n{pt}");

    // task=ood: the noise images' test split against the test split, before and after the
    // post-hoc temperature.
    let mut a = base_args(&f.data, &run, 1);
    a.extend([
        "task=ood".to_string(),
        "ood.name=folder".to_string(),
        format!("ood.data_root={}", ood.display()),
        "test.post_temperature=true".to_string(),
        "test.save_logits=true".to_string(),
    ]);
    let out = common::ok("test", &a);
    assert!(out.contains("OOD detection against"), "{out}");
    let s = summary_file(&run.join("best_test_summary.json"));
    for phase in ["test", "test_pt"] {
        let r = &s["ood"][phase];
        assert_eq!(r["samples_in"], 20, "{s}");
        assert_eq!(r["samples_out"], 15, "{s}");
        for score in ["entropy", "max_confidence"] {
            for k in ["auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr"] {
                let v = r[score][k].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "{phase} {score} {k} = {v}");
            }
        }
    }
    // The records of the run folder carry them (phases OOD and OODPT).
    let (_, epochs) = metrics(&run);
    let rec = epochs.iter().rev().find(|e| e["phase"] == "OOD").unwrap();
    assert_eq!(
        rec["auc_ent"].as_f64().unwrap(),
        s["ood"]["test"]["entropy"]["auroc"].as_f64().unwrap()
    );
    assert!(epochs.iter().any(|e| e["phase"] == "OODPT"));
    // mbls eval --ood on the saved logits gives the same numbers.
    let e = common::json(
        "eval",
        &[
            run.join("best_logits.npz").to_str().unwrap(),
            "--ood",
            run.join("best_ood_logits.npz").to_str().unwrap(),
        ],
    );
    for score in ["entropy", "max_confidence"] {
        for k in ["auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr"] {
            assert_eq!(
                e["ood"][score][k], s["ood"]["test"][score][k],
                "{score} {k}"
            );
        }
    }

    // What task=ood needs, and where it does not belong.
    let mut a = base_args(&f.data, &run, 1);
    a.push("task=ood".into());
    common::fails("test", &a, "ood.name=NAME");
    let mut a = base_args(&f.data, &run, 1);
    a.push("ood.name=folder".into());
    a.push(format!("ood.data_root={}", ood.display()));
    common::fails("test", &a, "task=cv");
    let mut a = base_args(&f.data, &run, 1);
    a.extend([
        "task=ood".to_string(),
        "ood.name=folder".to_string(),
        format!("ood.data_root={}", f.root.join("absent").display()),
    ]);
    common::fails("test", &a, "absent");
    let mut a = base_args(&f.data, &f.root.join("run2"), 1);
    a.push("task=ood".into());
    common::fails("train", &a, "a task of `mbls test`");
    a.push("ood.name=folder".into());
    a.push(format!("ood.data_root={}", ood.display()));
    common::fails("train", &a, "test task");
    assert!(!f.root.join("run2").exists());
}

/// MNIST-style (grey) images train: given to the models as three identical channels.
#[test]
fn grey_mnist_images_train_as_three_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    common::idx_split(&data, "train", 60, true);
    common::idx_split(&data, "t10k", 20, false);
    let run = tmp.path().join("run");
    let out = train(&[
        "data=mnist".into(),
        format!("data.data_root={}", data.display()),
        "data.batch_size=16".into(),
        "data.num_workers=1".into(),
        "model=resnet18_cifar".into(),
        "model.num_classes=10".into(),
        "train.max_epoch=1".into(),
        format!("hydra.run.dir={}", run.display()),
    ]);
    assert!(
        out.contains("grey images: given to the model as 3 identical channels"),
        "{out}"
    );
    let s = summary(&run);
    assert_eq!(s["test"]["samples"], 20, "{s}");
    assert!(s["test_pt"].is_object(), "{s}");
}
