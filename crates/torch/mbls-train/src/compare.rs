//! `mbls compare`: one training per method of a method set (by default the paper's seven) and
//! per seed, every other override shared, then one results table (markdown and CSV) and two
//! figures.
//!
//! - [`MethodSet::load`] reads a set: a built-in one (`paper`, `compare/paper.yaml` of
//!   mbls-config) or a user's YAML file of the same form;
//! - [`plan`] composes every run's configuration (so that an entry that does not compose is
//!   reported before anything runs), scales the scheduler's epoch counts with `--epochs`, and
//!   finds what each run folder holds: a finished run of the same configuration is skipped, an
//!   interrupted one is resumed;
//! - [`execute`] runs the planned trainings one after the other, each as its own `mbls train`
//!   process (a run that fails, even by a crash of libtorch, does not stop the others);
//! - [`collect`] reads every run folder's `summary.json`, and [`write_report`] writes the
//!   tables (`results.md`, `results.csv`, `runs.csv`) and the figures (`reliability.svg/png`:
//!   the test reliability diagrams side by side; `ece_vs_acc.svg/png`).

use crate::TrainError;
use crate::runlog::write_text_atomic;
use crate::spec::RunSpec;
use mbls_config::{Config, UserConfigs};
use serde::Deserialize;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One method of a set: a name (its run folder), a label (its table row) and the overrides
/// that make it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// Folder name and key (`ce`, `mbls`): letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Row label of the table; the name when absent.
    #[serde(default)]
    pub label: Option<String>,
    /// Overrides, as on the command line of `mbls train`.
    pub overrides: Vec<String>,
}

impl Method {
    /// The table's row label.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    methods: Vec<Method>,
}

/// A list of methods to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodSet {
    /// Where the set comes from (`paper`, or the file).
    pub source: String,
    /// The methods, in table order.
    pub methods: Vec<Method>,
}

/// Keys that a method or the shared overrides may not set: the runner sets them per run.
fn reserved(o: &str) -> Option<&'static str> {
    let key = o.trim_start_matches('+').split('=').next().unwrap_or("");
    match key {
        "seed" => Some("the seed is set per run by --seeds"),
        "train.resume" => Some("the runner resumes interrupted runs itself"),
        k if k == "hydra.run.dir" || k.starts_with("hydra.") => {
            Some("each run's folder is <--out>/<method>/seed<S>")
        }
        _ => None,
    }
}

impl MethodSet {
    /// The built-in set `name` (see [`Config::compare_sets`]) or, when no built-in set has
    /// that name, the YAML file at that path.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] for an unknown name that is no file, an unreadable or malformed
    /// file (unknown keys named), an empty set, a name used twice or not usable as a folder
    /// name, or an override that sets a key the runner sets (`seed`, `hydra.run.dir`,
    /// `train.resume`).
    pub fn load(set: &str) -> Result<MethodSet, TrainError> {
        let (source, text) = match Config::compare_sets().iter().find(|(n, _)| *n == set) {
            Some((n, t)) => (n.to_string(), t.to_string()),
            None => {
                let p = Path::new(set);
                if !p.exists() {
                    let names: Vec<&str> = Config::compare_sets().iter().map(|(n, _)| *n).collect();
                    return Err(TrainError::Config(format!(
                        "--set {set}: no built-in method set of that name ({}) and no such file",
                        names.join(", ")
                    )));
                }
                let t = std::fs::read_to_string(p).map_err(|e| crate::io_err(p, e))?;
                (p.display().to_string(), t)
            }
        };
        Self::parse(&source, &text)
    }

    /// Parses a set's YAML text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<MethodSet, TrainError> {
        let err = |m: String| TrainError::Config(format!("{source}: {m}"));
        let value = mbls_config::Value::parse_yaml(text).map_err(|e| err(e.to_string()))?;
        let json = serde_json::to_value(&value).map_err(|e| err(e.to_string()))?;
        let file: SetFile = serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            err(format!("{path}: {}", e.into_inner()))
        })?;
        if file.methods.is_empty() {
            return Err(err("the set has no methods".into()));
        }
        for (i, m) in file.methods.iter().enumerate() {
            let ok = !m.name.is_empty()
                && !m.name.starts_with('.')
                && m.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(err(format!(
                    "methods[{i}]: name `{}` must be letters, digits, `_`, `-` or `.` (it names \
                     the run folder)",
                    m.name
                )));
            }
            if file.methods[..i].iter().any(|o| o.name == m.name) {
                return Err(err(format!("method `{}` is listed twice", m.name)));
            }
            for o in &m.overrides {
                if let Some(why) = reserved(o) {
                    return Err(err(format!("method `{}`: `{o}`: {why}", m.name)));
                }
            }
        }
        Ok(MethodSet {
            source: source.to_string(),
            methods: file.methods,
        })
    }
}

/// What `mbls compare` was asked for, besides the method set.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// The folder holding every run (`<out>/<method>/seed<S>/`) and the report.
    pub out: PathBuf,
    /// Seeds (`seed=S` per run); empty: the configuration's own seed.
    pub seeds: Vec<i64>,
    /// Methods of the set to run (by name); empty: all.
    pub only: Vec<String>,
    /// `train.max_epoch` for every run, the scheduler's epoch counts scaled with it.
    pub epochs: Option<u64>,
    /// Scale the scheduler's epoch counts (milestones, step size, warm-up, patience) by
    /// `epochs / train.max_epoch` (unless an override sets them).
    pub scale_schedule: bool,
    /// Overrides shared by every run (data, model, a subset size, ...).
    pub overrides: Vec<String>,
}

/// What a run folder holds, as found by [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// A finished run of the same configuration (`summary.json`): skipped.
    Finished,
    /// An interrupted run (a `last` checkpoint after `epoch` epochs): resumed.
    Resume {
        /// Epochs done.
        epoch: u64,
    },
    /// Nothing yet: a new run.
    New,
    /// The run cannot be made: the reason.
    Invalid(String),
}

impl RunState {
    /// A short word for tables: `finished`, `resume`, `new`, `invalid`.
    pub fn word(&self) -> &'static str {
        match self {
            RunState::Finished => "finished",
            RunState::Resume { .. } => "resume",
            RunState::New => "new",
            RunState::Invalid(_) => "invalid",
        }
    }
}

/// One planned training.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Method name.
    pub method: String,
    /// Method label.
    pub label: String,
    /// The seed.
    pub seed: i64,
    /// Its run folder.
    pub run_dir: PathBuf,
    /// Every override of its `mbls train` command, in order (shared, method, seed, epochs).
    pub overrides: Vec<String>,
    /// What its folder holds.
    pub state: RunState,
}

impl PlannedRun {
    /// The arguments of its `mbls train` command (after the program name).
    pub fn train_args(&self) -> Vec<String> {
        let mut a = vec!["train".to_string()];
        a.extend(self.overrides.iter().cloned());
        a.push(format!("hydra.run.dir={}", self.run_dir.display()));
        a.push("train.resume=true".into());
        a
    }
}

/// The scheduler keys counted in epochs, per scheduler, and the least value each may take.
const EPOCH_KEYS: &[(&str, &str, i64)] = &[
    ("multi_step", "milestones", 1),
    ("step", "step_size", 1),
    ("cosine", "warmup_epochs", 0),
    ("plateau", "patience", 1),
];

/// `v * num / den`, rounded half away from zero, at least `min`.
fn scale(v: i64, num: u64, den: u64, min: i64) -> i64 {
    ((v as f64 * num as f64 / den as f64).round() as i64).max(min)
}

/// The overrides that set `train.max_epoch=epochs` and scale the scheduler's epoch counts
/// of `cfg` (composed without them) by `epochs / train.max_epoch`, except the keys that
/// `given` (the run's other overrides) already sets.
pub fn epoch_overrides(
    cfg: &Config,
    epochs: u64,
    scale_schedule: bool,
    given: &[String],
) -> Result<Vec<String>, TrainError> {
    let cfg_err = |e: mbls_config::ConfigError| TrainError::Config(e.to_string());
    let mut out = vec![format!("train.max_epoch={epochs}")];
    if !scale_schedule {
        return Ok(out);
    }
    let base = cfg.get_i64("train.max_epoch").map_err(cfg_err)?;
    if base <= 0 {
        return Ok(out);
    }
    let base = base as u64;
    let sched = cfg.choice("scheduler").unwrap_or("");
    let sets = |key: &str| {
        given.iter().any(|o| {
            let k = o.trim_start_matches('+').split('=').next().unwrap_or("");
            k == key || k.starts_with(&format!("{key}."))
        })
    };
    for (name, key, min) in EPOCH_KEYS {
        if *name != sched {
            continue;
        }
        let full = format!("scheduler.{key}");
        if sets(&full) || !cfg.contains(&full) {
            continue;
        }
        if *key == "milestones" {
            let ms = cfg.get_i64_list(&full).map_err(cfg_err)?;
            let scaled: Vec<String> = ms
                .iter()
                .map(|m| scale(*m, epochs, base, *min).to_string())
                .collect();
            out.push(format!("{full}=[{}]", scaled.join(", ")));
        } else {
            let v = cfg.get_i64(&full).map_err(cfg_err)?;
            out.push(format!("{full}={}", scale(v, epochs, base, *min)));
        }
    }
    Ok(out)
}

/// Dotted keys whose values differ between a run folder's `config.yaml` and the planned
/// configuration, leaving out the keys that never change results (`train.resume`,
/// `train.checkpoint_every`).
fn config_differences(dir: &Path, planned: &Config) -> Result<Vec<String>, String> {
    let p = dir.join("config.yaml");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let saved =
        mbls_config::Value::parse_yaml(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    let a = serde_json::to_value(&saved).unwrap_or(Json::Null);
    let b = serde_json::to_value(planned.value()).unwrap_or(Json::Null);
    let mut diff = Vec::new();
    crate::trainer::differing_keys(&a, &b, "", &mut diff);
    diff.retain(|k| k != "train.resume" && k != "train.checkpoint_every");
    Ok(diff)
}

/// What run folder `dir` holds, for a run of configuration `cfg`: finished (same
/// configuration, `summary.json` written), to be resumed (a `last` checkpoint of the same
/// configuration, perhaps with fewer epochs than now asked for, which the trainer extends),
/// new, or another configuration's run (invalid: never overwritten).
fn state_of(dir: &Path, cfg: &Config) -> RunState {
    let finished = dir.join("summary.json").is_file();
    let checkpoint = read_epoch(dir);
    if !finished && checkpoint.is_none() && !dir.join("config.yaml").is_file() {
        return RunState::New;
    }
    match config_differences(dir, cfg) {
        Err(e) if finished || checkpoint.is_some() => {
            RunState::Invalid(format!("{} holds a run, but {e}", dir.display()))
        }
        Err(_) => RunState::New,
        Ok(diff) if diff.iter().any(|k| k != "train.max_epoch") => RunState::Invalid(format!(
            "{} holds a run of another configuration (differing keys: {}): remove the folder \
             or choose another --out",
            dir.display(),
            diff.join(", ")
        )),
        Ok(diff) if finished && diff.is_empty() => RunState::Finished,
        Ok(_) => match checkpoint {
            Some(epoch) => RunState::Resume { epoch },
            None => RunState::New,
        },
    }
}

/// Epochs done by the `last` checkpoint of `dir` (its pointer file), if there is one.
fn read_epoch(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("last.json")).ok()?;
    let v: Json = serde_json::from_str(&text).ok()?;
    v.pointer("/state/epoch").and_then(Json::as_u64)
}

/// Plans every run: methods of `set` (those of `opts.only`, in set order; an unknown name
/// becomes an invalid run naming the closest one) times seeds.
///
/// # Errors
///
/// [`TrainError::Config`] when the shared overrides do not compose (nothing can run) or set a
/// key the runner sets; a method whose configuration does not compose is an
/// [`RunState::Invalid`] run, not an error.
pub fn plan(
    set: &MethodSet,
    opts: &CompareOptions,
    user: &UserConfigs,
) -> Result<Vec<PlannedRun>, TrainError> {
    for o in &opts.overrides {
        if let Some(why) = reserved(o) {
            return Err(TrainError::Config(format!("`{o}`: {why}")));
        }
        let key = o.trim_start_matches('+').split('=').next().unwrap_or("");
        if opts.epochs.is_some() && key == "train.max_epoch" {
            return Err(TrainError::Config(format!(
                "`{o}` and --epochs both set train.max_epoch: give one"
            )));
        }
    }
    let shared = Config::compose_with(&opts.overrides, user)
        .map_err(|e| TrainError::Config(format!("the shared overrides: {e}")))?;
    let seeds = if opts.seeds.is_empty() {
        vec![
            shared
                .get_i64("seed")
                .map_err(|e| TrainError::Config(e.to_string()))?,
        ]
    } else {
        opts.seeds.clone()
    };
    let mut methods: Vec<Result<&Method, String>> = Vec::new();
    if opts.only.is_empty() {
        methods.extend(set.methods.iter().map(Ok));
    } else {
        for name in &opts.only {
            match set.methods.iter().find(|m| &m.name == name) {
                Some(m) => methods.push(Ok(m)),
                None => {
                    let names: Vec<&str> = set.methods.iter().map(|m| m.name.as_str()).collect();
                    let close = names
                        .iter()
                        .map(|n| (strsim::jaro_winkler(n, name), *n))
                        .filter(|(s, _)| *s > 0.7)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, n)| format!(" (closest: {n})"))
                        .unwrap_or_default();
                    methods.push(Err(format!(
                        "unknown method `{name}` in the set {}{close}; it has {}",
                        set.source,
                        names.join(", ")
                    )));
                }
            }
        }
    }
    let mut runs = Vec::new();
    for m in methods {
        for &seed in &seeds {
            let run = match m {
                Ok(m) => plan_one(m, seed, opts, user),
                Err(ref e) => {
                    let name = e.split('`').nth(1).unwrap_or("unknown").to_string();
                    PlannedRun {
                        method: name.clone(),
                        label: name.clone(),
                        seed,
                        run_dir: opts.out.join(&name).join(format!("seed{seed}")),
                        overrides: Vec::new(),
                        state: RunState::Invalid(e.clone()),
                    }
                }
            };
            runs.push(run);
        }
    }
    Ok(runs)
}

fn plan_one(m: &Method, seed: i64, opts: &CompareOptions, user: &UserConfigs) -> PlannedRun {
    let run_dir = opts.out.join(&m.name).join(format!("seed{seed}"));
    let mut overrides: Vec<String> = opts.overrides.clone();
    overrides.extend(m.overrides.iter().cloned());
    overrides.push(format!("seed={seed}"));
    let mut run = PlannedRun {
        method: m.name.clone(),
        label: m.label().to_string(),
        seed,
        run_dir,
        overrides: Vec::new(),
        state: RunState::New,
    };
    let composed = (|| -> Result<Config, TrainError> {
        let cfg = Config::compose_with(&overrides, user)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let cfg = match opts.epochs {
            Some(n) => {
                let extra = epoch_overrides(&cfg, n, opts.scale_schedule, &overrides)?;
                overrides.extend(extra);
                Config::compose_with(&overrides, user)
                    .map_err(|e| TrainError::Config(e.to_string()))?
            }
            None => cfg,
        };
        RunSpec::from_config(&cfg)?;
        Ok(cfg)
    })();
    run.overrides = overrides;
    run.state = match composed {
        Ok(cfg) => state_of(&run.run_dir, &cfg),
        Err(e) => RunState::Invalid(format!("the configuration does not compose: {e}")),
    };
    run
}

/// How a run ended in this invocation (or before it).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It has a `summary.json`; `ran` is false when it was already finished.
    Finished {
        /// Trained in this invocation.
        ran: bool,
    },
    /// It failed; the reason (its last `error:` line, or how it ended).
    Failed(String),
    /// It was interrupted (Ctrl-C or SIGTERM); its checkpoint is kept for a rerun.
    Interrupted,
    /// It was not run (an earlier run was interrupted).
    NotRun,
}

/// The file of a run folder where the runner adds up the run's wall time across
/// invocations.
const WALL_FILE: &str = "compare.json";

fn add_wall_time(dir: &Path, seconds: f64) {
    let mut total = read_wall_time(dir).unwrap_or(0.0);
    total += seconds;
    let text = format!("{{\n  \"wall_seconds\": {total:.3}\n}}\n");
    let _ = write_text_atomic(&dir.join(WALL_FILE), &text);
}

fn read_wall_time(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(WALL_FILE)).ok()?;
    let v: Json = serde_json::from_str(&text).ok()?;
    v.get("wall_seconds").and_then(Json::as_f64)
}

/// Runs the planned runs that are not finished or invalid, in order, each as
/// `exe train ...` (the `mbls` binary), its standard output passed through and its standard
/// error passed through and scanned for the reason of a failure. `say` gets the runner's own
/// lines. Stops at the first interrupted run (Ctrl-C reaches the training process, which
/// checkpoints; SIGTERM to the runner is passed on to it).
pub fn execute(
    runs: &[PlannedRun],
    exe: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<Outcome>, TrainError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let todo = runs
        .iter()
        .filter(|r| matches!(r.state, RunState::New | RunState::Resume { .. }))
        .count();
    let mut k = 0;
    let mut outcomes = Vec::with_capacity(runs.len());
    let mut interrupted = false;
    for r in runs {
        let outcome = match &r.state {
            RunState::Finished => Outcome::Finished { ran: false },
            RunState::Invalid(e) => Outcome::Failed(e.clone()),
            _ if interrupted => Outcome::NotRun,
            state => {
                k += 1;
                let what = match state {
                    RunState::Resume { epoch } => format!("resuming after epoch {epoch}"),
                    _ => "new run".to_string(),
                };
                say(&format!(
                    "== [{k}/{todo}] {} seed {}: {what} in {}",
                    r.method,
                    r.seed,
                    r.run_dir.display()
                ));
                let o = run_child(r, exe, &stop)?;
                if o == Outcome::Interrupted {
                    interrupted = true;
                }
                say(&format!(
                    "== {} seed {}: {}",
                    r.method,
                    r.seed,
                    match &o {
                        Outcome::Finished { .. } => "finished".to_string(),
                        Outcome::Failed(e) => format!("FAILED: {e}"),
                        Outcome::Interrupted =>
                            "interrupted (rerun the same command to resume)".to_string(),
                        Outcome::NotRun => "not run".to_string(),
                    }
                ));
                o
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn run_child(r: &PlannedRun, exe: &Path, stop: &AtomicBool) -> Result<Outcome, TrainError> {
    if stop.load(Ordering::SeqCst) {
        return Ok(Outcome::Interrupted);
    }
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(r.train_args())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| crate::io_err(exe, e))?;
    let stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut last_error: Option<String> = None;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if let Some(e) = line.strip_prefix("error: ") {
                last_error = Some(e.to_string());
            }
        }
        last_error
    });
    let mut signalled = false;
    let status = loop {
        match child.try_wait().map_err(|e| crate::io_err(exe, e))? {
            Some(s) => break s,
            None => {
                if stop.load(Ordering::SeqCst) && !signalled {
                    // Ctrl-C on a terminal reaches the child too; SIGTERM to the runner alone
                    // does not: pass it on, so that the child checkpoints and stops.
                    // SAFETY: kill(2) on the child's pid, which has not been reaped yet.
                    unsafe {
                        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
                    }
                    signalled = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let last_error = reader.join().unwrap_or(None);
    add_wall_time(&r.run_dir, started.elapsed().as_secs_f64());
    use std::os::unix::process::ExitStatusExt;
    Ok(match status.code() {
        Some(0) if r.run_dir.join("summary.json").is_file() => Outcome::Finished { ran: true },
        Some(0) => Outcome::Failed("the training ended without writing summary.json".into()),
        Some(130) => Outcome::Interrupted,
        Some(c) => Outcome::Failed(last_error.unwrap_or_else(|| format!("exit code {c}"))),
        None => match status.signal() {
            Some(s) if stop.load(Ordering::SeqCst) => {
                let _ = s;
                Outcome::Interrupted
            }
            Some(s) => Outcome::Failed(format!("killed by signal {s}")),
            None => Outcome::Failed("ended without an exit code".into()),
        },
    })
}

/// The test metrics of a finished run, raw fractions (accuracy and calibration errors) and
/// nats (NLL).
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// Test accuracy.
    pub acc: f64,
    /// Test ECE, AECE, CECE, NLL before temperature scaling.
    pub ece: f64,
    /// Adaptive ECE.
    pub aece: f64,
    /// Class-wise ECE.
    pub cece: f64,
    /// NLL.
    pub nll: f64,
    /// The same after temperature scaling (TestPT), when the run has it.
    pub ece_ts: Option<f64>,
    /// AECE after temperature scaling.
    pub aece_ts: Option<f64>,
    /// CECE after temperature scaling.
    pub cece_ts: Option<f64>,
    /// NLL after temperature scaling.
    pub nll_ts: Option<f64>,
    /// The temperature (the reference's grid search).
    pub temperature: Option<f64>,
    /// Epochs trained.
    pub epochs: Option<u64>,
    /// Training wall time from the summary (training and validation), seconds.
    pub train_seconds: Option<f64>,
}

/// One row of `runs.csv`.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Method name.
    pub method: String,
    /// Method label.
    pub label: String,
    /// Seed.
    pub seed: i64,
    /// The run folder.
    pub run_dir: PathBuf,
    /// `finished`, `failed`, `interrupted` or `not run`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The metrics of a finished run.
    pub metrics: Option<RunMetrics>,
    /// Wall time of the `mbls train` processes of this run, added up over invocations.
    pub wall_seconds: Option<f64>,
}

fn phase_metric(phase: &Json, name: &str) -> Option<f64> {
    phase.get("metrics")?.as_array()?.iter().find_map(|pair| {
        let p = pair.as_array()?;
        (p.first()?.as_str()? == name).then(|| p.get(1)?.as_f64())?
    })
}

/// Reads a run folder's `summary.json`.
pub fn read_summary(dir: &Path) -> Result<RunMetrics, String> {
    let p = dir.join("summary.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: Json = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    let test = v
        .get("test")
        .ok_or_else(|| format!("{}: no test results", p.display()))?;
    let need = |name: &str| {
        phase_metric(test, name).ok_or_else(|| format!("{}: no test {name}", p.display()))
    };
    let pt = v.get("test_pt").filter(|x| !x.is_null());
    let ts = |name: &str| pt.and_then(|x| phase_metric(x, name));
    Ok(RunMetrics {
        acc: need("acc")?,
        ece: need("ece")?,
        aece: need("aece")?,
        cece: need("cece")?,
        nll: need("nll")?,
        ece_ts: ts("ece"),
        aece_ts: ts("aece"),
        cece_ts: ts("cece"),
        nll_ts: ts("nll"),
        temperature: v.pointer("/temperature/temperature").and_then(Json::as_f64),
        epochs: v.get("epochs").and_then(Json::as_u64),
        train_seconds: v.get("train_seconds").and_then(Json::as_f64),
    })
}

/// The results of every planned run, after `outcomes` (one per run, from [`execute`]; for a
/// dry run or a report of what exists, pass `None`).
pub fn collect(runs: &[PlannedRun], outcomes: Option<&[Outcome]>) -> Vec<RunResult> {
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            let outcome = outcomes
                .and_then(|o| o.get(i))
                .cloned()
                .unwrap_or(match &r.state {
                    RunState::Finished => Outcome::Finished { ran: false },
                    RunState::Invalid(e) => Outcome::Failed(e.clone()),
                    _ => Outcome::NotRun,
                });
            let (status, error, metrics) = match outcome {
                Outcome::Finished { .. } => match read_summary(&r.run_dir) {
                    Ok(m) => ("finished", None, Some(m)),
                    Err(e) => ("failed", Some(e), None),
                },
                Outcome::Failed(e) => ("failed", Some(e), None),
                Outcome::Interrupted => ("interrupted", None, None),
                Outcome::NotRun => ("not run", None, None),
            };
            RunResult {
                method: r.method.clone(),
                label: r.label.clone(),
                seed: r.seed,
                run_dir: r.run_dir.clone(),
                status: status.to_string(),
                error,
                metrics,
                wall_seconds: read_wall_time(&r.run_dir),
            }
        })
        .collect()
}

/// Mean and sample standard deviation (`None` for fewer than two values).
pub fn mean_sd(v: &[f64]) -> Option<(f64, Option<f64>)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.len() > 1)
        .then(|| (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, sd))
}

/// A column of the results table: its header, how a run gives its value, the scale of the
/// printed value (100 for percentages) and its decimals.
struct Column {
    header: &'static str,
    csv: &'static str,
    get: fn(&RunMetrics) -> Option<f64>,
    scale: f64,
    decimals: usize,
}

const COLUMNS: &[Column] = &[
    Column {
        header: "acc (%)",
        csv: "acc",
        get: |m| Some(m.acc),
        scale: 100.0,
        decimals: 2,
    },
    Column {
        header: "ECE (%)",
        csv: "ece",
        get: |m| Some(m.ece),
        scale: 100.0,
        decimals: 2,
    },
    Column {
        header: "AECE (%)",
        csv: "aece",
        get: |m| Some(m.aece),
        scale: 100.0,
        decimals: 2,
    },
    Column {
        header: "CECE (%)",
        csv: "cece",
        get: |m| Some(m.cece),
        scale: 100.0,
        decimals: 3,
    },
    Column {
        header: "NLL",
        csv: "nll",
        get: |m| Some(m.nll),
        scale: 1.0,
        decimals: 4,
    },
    Column {
        header: "ECE TS (%)",
        csv: "ece_ts",
        get: |m| m.ece_ts,
        scale: 100.0,
        decimals: 2,
    },
    Column {
        header: "AECE TS (%)",
        csv: "aece_ts",
        get: |m| m.aece_ts,
        scale: 100.0,
        decimals: 2,
    },
    Column {
        header: "CECE TS (%)",
        csv: "cece_ts",
        get: |m| m.cece_ts,
        scale: 100.0,
        decimals: 3,
    },
    Column {
        header: "NLL TS",
        csv: "nll_ts",
        get: |m| m.nll_ts,
        scale: 1.0,
        decimals: 4,
    },
    Column {
        header: "T",
        csv: "temperature",
        get: |m| m.temperature,
        scale: 1.0,
        decimals: 3,
    },
];

/// One row of the method table: the method and its finished runs' metrics.
struct MethodRow<'a> {
    method: &'a str,
    label: &'a str,
    runs: Vec<&'a RunMetrics>,
    planned: usize,
}

fn method_rows(results: &[RunResult]) -> Vec<MethodRow<'_>> {
    let mut rows: Vec<MethodRow> = Vec::new();
    for r in results {
        let i = match rows.iter().position(|row| row.method == r.method) {
            Some(i) => i,
            None => {
                rows.push(MethodRow {
                    method: &r.method,
                    label: &r.label,
                    runs: Vec::new(),
                    planned: 0,
                });
                rows.len() - 1
            }
        };
        rows[i].planned += 1;
        if let Some(m) = &r.metrics {
            rows[i].runs.push(m);
        }
    }
    rows
}

fn fmt_cell(c: &Column, runs: &[&RunMetrics]) -> String {
    let vals: Vec<f64> = runs.iter().filter_map(|m| (c.get)(m)).collect();
    if vals.len() < runs.len() {
        return "-".into();
    }
    match mean_sd(&vals) {
        None => "-".into(),
        Some((m, None)) => format!("{:.*}", c.decimals, m * c.scale),
        Some((m, Some(sd))) => format!(
            "{:.*} ± {:.*}",
            c.decimals,
            m * c.scale,
            c.decimals,
            sd * c.scale
        ),
    }
}

fn fmt_duration(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The markdown report: the method table (mean ± sd over the finished seeds), the runs
/// table (status, epochs, wall time, folder) and the failures with their reasons.
pub fn markdown(results: &[RunResult]) -> String {
    let mut s = String::new();
    s.push_str("| method | runs |");
    for c in COLUMNS {
        s.push_str(&format!(" {} |", c.header));
    }
    s.push_str("\n|---|---|");
    for _ in COLUMNS {
        s.push_str("---|");
    }
    s.push('\n');
    for row in method_rows(results) {
        s.push_str(&format!(
            "| {} | {}/{} |",
            row.label,
            row.runs.len(),
            row.planned
        ));
        for c in COLUMNS {
            s.push_str(&format!(" {} |", fmt_cell(c, &row.runs)));
        }
        s.push('\n');
    }
    s.push_str(
        "\nacc, ECE, AECE, CECE (15 bins) and NLL on the test split with the best validation \
         checkpoint; TS: after temperature scaling with T from the reference's grid search on \
         the validation split; mean ± sample standard deviation over the finished seeds.\n\n",
    );
    s.push_str("| method | seed | status | epochs | train time | wall time | run folder |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for r in results {
        let m = r.metrics.as_ref();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | `{}` |\n",
            r.label,
            r.seed,
            r.status,
            m.and_then(|m| m.epochs)
                .map_or("-".into(), |e| e.to_string()),
            m.and_then(|m| m.train_seconds)
                .map_or("-".into(), fmt_duration),
            r.wall_seconds.map_or("-".into(), fmt_duration),
            r.run_dir.display()
        ));
    }
    let failed: Vec<&RunResult> = results.iter().filter(|r| r.error.is_some()).collect();
    if !failed.is_empty() {
        s.push_str("\nFailed runs:\n\n");
        for r in failed {
            s.push_str(&format!(
                "- {} seed {}: {}\n",
                r.method,
                r.seed,
                r.error.as_deref().unwrap_or("")
            ));
        }
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `results.csv`: one row per method, `<metric>_mean` and `<metric>_sd` per column, raw
/// fractions.
pub fn results_csv(results: &[RunResult]) -> String {
    let mut s = String::from("method,label,finished,planned");
    for c in COLUMNS {
        s.push_str(&format!(",{0}_mean,{0}_sd", c.csv));
    }
    s.push('\n');
    for row in method_rows(results) {
        s.push_str(&format!(
            "{},{},{},{}",
            csv_field(row.method),
            csv_field(row.label),
            row.runs.len(),
            row.planned
        ));
        for c in COLUMNS {
            let vals: Vec<f64> = row.runs.iter().filter_map(|m| (c.get)(m)).collect();
            match mean_sd(&vals).filter(|_| vals.len() == row.runs.len()) {
                Some((m, sd)) => s.push_str(&format!(",{m},{}", opt(sd))),
                None => s.push_str(",,"),
            }
        }
        s.push('\n');
    }
    s
}

/// `runs.csv`: one row per run.
pub fn runs_csv(results: &[RunResult]) -> String {
    let mut s = String::from("method,seed,status,epochs,train_seconds,wall_seconds");
    for c in COLUMNS {
        s.push_str(&format!(",{}", c.csv));
    }
    s.push_str(",run_dir,error\n");
    for r in results {
        let m = r.metrics.as_ref();
        s.push_str(&format!(
            "{},{},{},{},{},{}",
            csv_field(&r.method),
            r.seed,
            r.status,
            m.and_then(|m| m.epochs)
                .map_or(String::new(), |e| e.to_string()),
            opt(m.and_then(|m| m.train_seconds)),
            opt(r.wall_seconds)
        ));
        for c in COLUMNS {
            s.push_str(&format!(",{}", opt(m.and_then(|m| (c.get)(m)))));
        }
        s.push_str(&format!(
            ",{},{}\n",
            csv_field(&r.run_dir.display().to_string()),
            csv_field(r.error.as_deref().unwrap_or(""))
        ));
    }
    s
}

/// The test reliability diagram of a run folder, from its `test_bins.csv`.
pub fn reliability_of(dir: &Path, title: &str) -> Result<mbls_plot::Reliability, String> {
    let p = dir.join("test_bins.csv");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut bins = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || format!("{}: line {}: not a bin row", p.display(), i + 1);
        if f.len() < 6 {
            return Err(bad());
        }
        let num = |s: &str| -> Result<Option<f64>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse::<f64>().map(Some).map_err(|_| bad())
            }
        };
        bins.push(mbls_plot::Bin {
            lower: num(f[1])?.ok_or_else(bad)?,
            upper: num(f[2])?.ok_or_else(bad)?,
            count: f[3].parse().map_err(|_| bad())?,
            mean_confidence: num(f[4])?,
            accuracy: num(f[5])?,
        });
    }
    let total: u64 = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return Err(format!("{}: no samples", p.display()));
    }
    let (mut acc, mut conf, mut ece) = (0.0, 0.0, 0.0);
    for b in &bins {
        if let (Some(c), Some(a)) = (b.mean_confidence, b.accuracy) {
            let w = b.count as f64 / total as f64;
            acc += w * a;
            conf += w * c;
            ece += w * (c - a).abs();
        }
    }
    Ok(mbls_plot::Reliability {
        bins,
        total,
        mean_accuracy: acc,
        mean_confidence: conf,
        ece,
        title: title.to_string(),
    })
}

/// Writes `results.md`, `results.csv`, `runs.csv` and, when at least one run finished, the
/// figures into `out`; returns the files written.
pub fn write_report(out: &Path, results: &[RunResult]) -> Result<Vec<PathBuf>, TrainError> {
    std::fs::create_dir_all(out).map_err(|e| crate::io_err(out, e))?;
    let mut written = Vec::new();
    for (name, text) in [
        ("results.md", markdown(results)),
        ("results.csv", results_csv(results)),
        ("runs.csv", runs_csv(results)),
    ] {
        let p = out.join(name);
        write_text_atomic(&p, &text)?;
        written.push(p);
    }
    let plot_err = |e: mbls_plot::PlotError| TrainError::Config(format!("{}: {e}", out.display()));
    // Reliability diagrams: the first finished seed of each method.
    let mut panels = Vec::new();
    for row in method_rows(results) {
        if let Some(r) = results
            .iter()
            .find(|r| r.method == row.method && r.metrics.is_some())
        {
            let title = format!("{} (seed {})", row.label, r.seed);
            match reliability_of(&r.run_dir, &title) {
                Ok(p) => panels.push(p),
                Err(e) => eprintln!("warning: no reliability panel for {}: {e}", row.method),
            }
        }
    }
    if !panels.is_empty() {
        let svg = mbls_plot::reliability_grid_svg(
            &panels,
            4,
            "Test reliability (before temperature scaling)",
        )
        .map_err(plot_err)?;
        written.extend(mbls_plot::write_svg_png(&svg, 1.0, out, "reliability").map_err(plot_err)?);
    }
    // ECE against accuracy, mean ± sd per method, before and after temperature scaling.
    let mut before = Vec::new();
    let mut after = Vec::new();
    for row in method_rows(results) {
        if row.runs.is_empty() {
            continue;
        }
        let pct = |v: Vec<f64>| mean_sd(&v).map(|(m, sd)| (100.0 * m, 100.0 * sd.unwrap_or(0.0)));
        let (Some((a, a_sd)), Some((e, e_sd))) = (
            pct(row.runs.iter().map(|m| m.acc).collect()),
            pct(row.runs.iter().map(|m| m.ece).collect()),
        ) else {
            continue;
        };
        before.push(mbls_plot::Point {
            label: row.label.to_string(),
            x: a,
            y: e,
            x_err: a_sd,
            y_err: e_sd,
        });
        let ts: Vec<f64> = row.runs.iter().filter_map(|m| m.ece_ts).collect();
        if ts.len() == row.runs.len() {
            if let Some((t, t_sd)) = pct(ts) {
                after.push(mbls_plot::Point {
                    label: row.label.to_string(),
                    x: a,
                    y: t,
                    x_err: a_sd,
                    y_err: t_sd,
                });
            }
        }
    }
    if !before.is_empty() {
        let mut series = vec![mbls_plot::Series {
            name: "before temperature scaling".into(),
            points: before,
            filled: true,
        }];
        if !after.is_empty() {
            series.push(mbls_plot::Series {
                name: "after temperature scaling".into(),
                points: after,
                filled: false,
            });
        }
        let sc = mbls_plot::Scatter {
            title: "Test ECE against accuracy".into(),
            x_title: "accuracy (%)".into(),
            y_title: "ECE (%)".into(),
            series,
            join_labels: true,
        };
        let svg = mbls_plot::scatter_svg(&sc).map_err(plot_err)?;
        written.extend(mbls_plot::write_svg_png(&svg, 2.0, out, "ece_vs_acc").map_err(plot_err)?);
    }
    Ok(written)
}

/// The dry run's listing: one line per planned run with its state and its command.
pub fn describe(runs: &[PlannedRun], program: &str) -> String {
    let mut s = String::new();
    for r in runs {
        let state = match &r.state {
            RunState::Finished => "finished: skipped".to_string(),
            RunState::Resume { epoch } => format!("interrupted after epoch {epoch}: resumed"),
            RunState::New => "new".to_string(),
            RunState::Invalid(e) => format!("INVALID: {e}"),
        };
        s.push_str(&format!("{} seed {}: {state}\n", r.method, r.seed));
        if !matches!(r.state, RunState::Invalid(_)) {
            let args: Vec<String> = r.train_args().iter().map(|a| shell_quote(a)).collect();
            s.push_str(&format!("  {program} {}\n", args.join(" ")));
        }
    }
    s
}

/// `a` quoted for a POSIX shell when it needs it.
fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:+,@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests;
