//! The loop: the reference's `Trainer.train()` / `test()` (spec 6.1) and `Tester` (6.4).

use crate::TrainError;
use crate::meter::Meter;
use crate::report::{self, CalibratorResult, OodResult, PhaseResult, Summary, TemperatureResult};
use crate::runlog::{Record, RunFolder, now, timestamp_utc};
use crate::spec::{OptimSpec, RunSpec, TaskKind};
use crate::task::{self, Batch, BatchSource, Phase, Task};
use mbls_engine::checkpoint::{CheckpointDir, LoadOptions, TrainState, load_weights};
use mbls_engine::losses::{Loss, build_loss};
use mbls_engine::models::{Model, build_model, channels_last, vars_to_channels_last};
use mbls_engine::optim::{
    Adam, AdamW, LrScheduler, Optimizer, Scheduler, Sgd, trainable_variables,
};
use mbls_engine::pretrained;
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{self, Device, Tensor};
use mbls_metrics::calibrate::{self, FitOptions, Method};
use mbls_metrics::{
    ClassificationOptions, ScoreKind, fit_temperature_nll, grid_search_temperature, scale_logits,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where a run goes and how it was started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run folder (`hydra.run.dir=DIR` or `--run-dir DIR`); by default
    /// `outputs/<data>/<model>-<loss>-<optim>/<UTC timestamp>` (training only).
    pub run_dir: Option<PathBuf>,
    /// The command line, recorded in the run folder.
    pub command_line: Vec<String>,
}

/// Keys that may differ when a run is resumed.
const RESUMABLE_CHANGES: &[&str] = &["train.max_epoch", "train.resume", "train.checkpoint_every"];

fn device_of(name: &str) -> Result<Device, TrainError> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = match name.strip_prefix("cuda:") {
        Some(n) => n.parse::<usize>().map_err(|_| {
            TrainError::Config(format!(
                "device={name}: expected cpu, cuda or cuda:N with N a device number"
            ))
        })?,
        None if name == "cuda" => 0,
        None => {
            return Err(TrainError::Config(format!(
                "device={name}: expected cpu, cuda or cuda:N"
            )));
        }
    };
    let count = tch::Cuda::device_count();
    if !tch::Cuda::is_available() || index as i64 >= count {
        return Err(TrainError::Config(format!(
            "device={name}: no such CUDA device here ({count} available); use device=cpu"
        )));
    }
    Ok(Device::Cuda(index))
}

/// The model, its variables and what the loop needs to feed it.
struct Net {
    vs: VarStore,
    model: Model,
    device: Device,
    channels_last: bool,
}

impl Net {
    fn build(spec: &RunSpec, folder: Option<&mut RunFolder>) -> Result<Net, TrainError> {
        let device = device_of(&spec.device)?;
        tch::manual_seed(i64::from(spec.seed));
        let vs = VarStore::new(device);
        let m = &spec.model;
        let model = build_model(&m.name, m.num_classes, &vs.root(), m.options)?;
        if m.pretrained {
            let depth = if m.name == "deeplabv3" {
                Some(m.options.encoder_depth)
            } else {
                m.name.strip_prefix("resnet").and_then(|d| d.parse().ok())
            };
            let file = depth
                .and_then(pretrained::torchvision_resnet_file)
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "model={}: no ImageNet weights exist for it; set model.pretrained=false",
                        m.name
                    ))
                })?;
            // MBLS_OFFLINE=1: never download (the cache folders only).
            let online = std::env::var("MBLS_OFFLINE").map_or(true, |v| v.is_empty() || v == "0");
            let path = pretrained::locate(file, None, pretrained::TORCHVISION_BASE_URL, online)
                .map_err(|e| {
                    TrainError::Config(format!(
                        "model.pretrained=true: {e}; or train from scratch with \
                         model.pretrained=false"
                    ))
                })?;
            let report = pretrained::load_imagenet_resnet(&vs, &m.name, &path)?;
            if let Some(f) = folder {
                f.say(&format!(
                    "loaded ImageNet weights {}: {} entries ({} left as initialised)",
                    path.display(),
                    report.loaded.len(),
                    report.missing.len() + report.skipped.len()
                ));
            }
        }
        let conv = m.name != "global_pooling";
        let channels_last = spec.train.channels_last && conv;
        if channels_last {
            vars_to_channels_last(&vs);
        }
        Ok(Net {
            vs,
            model,
            device,
            channels_last,
        })
    }

    fn input(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let x = x.f_to_device(self.device)?;
        Ok(if self.channels_last {
            channels_last(&x)
        } else {
            x
        })
    }

    fn names(&self) -> &[String] {
        self.model.state_dict_names()
    }
}

fn build_optimizer(spec: &RunSpec, vs: &VarStore) -> Result<Box<dyn Optimizer>, TrainError> {
    let params = trainable_variables(vs);
    Ok(match &spec.optim {
        OptimSpec::Sgd(c) => Box::new(Sgd::new(params, c.clone())?),
        OptimSpec::Adam(c) => Box::new(Adam::new(params, c.clone())?),
        OptimSpec::AdamW(c) => Box::new(AdamW::new(params, c.clone())?),
    })
}

/// The seed of libtorch's generator for iteration `it` of `epoch` (dropout): a function of
/// the run's seed and the position only, so that a resumed run draws the same masks.
fn iteration_seed(seed: u32, epoch: u64, it: usize) -> i64 {
    let mut z = (u64::from(seed) << 40) ^ (epoch << 20) ^ it as u64;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Sums of the loss terms over a phase.
struct LossMeter {
    names: Vec<&'static str>,
    sums: Vec<f64>,
    weight: f64,
}

impl LossMeter {
    fn new(names: &[&'static str]) -> Self {
        LossMeter {
            names: names.to_vec(),
            sums: vec![0.0; names.len()],
            weight: 0.0,
        }
    }
    fn add(&mut self, values: &[(&'static str, f64)], w: f64) {
        for (s, (_, v)) in self.sums.iter_mut().zip(values) {
            *s += v * w;
        }
        self.weight += w;
    }
    /// Continues the sums of a mid-epoch checkpoint.
    fn restore(&mut self, sums: &[f64], weight: f64) -> Result<(), TrainError> {
        if sums.len() != self.sums.len() {
            return Err(TrainError::Config(format!(
                "the mid-epoch checkpoint holds {} loss terms, the loss has {}",
                sums.len(),
                self.sums.len()
            )));
        }
        self.sums = sums.to_vec();
        self.weight = weight;
        Ok(())
    }
    fn means(&self) -> Vec<(String, f64)> {
        let w = self.weight.max(f64::MIN_POSITIVE);
        self.names
            .iter()
            .zip(&self.sums)
            .map(|(n, s)| (n.to_string(), s / w))
            .collect()
    }
}

/// Where a mid-epoch checkpoint (`train.checkpoint_every`, or Ctrl-C) left the training
/// epoch `TrainState::epoch`: stored as `extra.partial` of `last`, beside a `.npz` file with
/// the outputs and targets of the batches done, which are replayed into the epoch's meter on
/// resume (in their batch sizes, so that its sums are those of the uninterrupted epoch).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Partial {
    /// The next iteration of the epoch (the loader starts there).
    iteration: usize,
    /// Samples trained on in the epoch so far.
    seen: usize,
    /// The loss meter's weighted sums and weight.
    loss_sums: Vec<f64>,
    loss_weight: f64,
    /// The `.npz` of the epoch's outputs so far (in the run folder).
    file: String,
    /// Seconds spent in the epoch's training phase so far.
    #[serde(default)]
    train_time: f64,
}

/// The file prefix of mid-epoch meter states.
const PARTIAL_PREFIX: &str = "last.partial.";

/// The state of a training epoch in progress.
struct EpochState {
    meter: Box<dyn Meter>,
    losses: LossMeter,
    seen: usize,
    /// Batch sizes so far (to replay the meter in the same batches).
    sizes: Vec<usize>,
    /// Seconds of the training phase before this process took the epoch up.
    time0: f64,
}

impl EpochState {
    fn new(task: &dyn Task, loss: &dyn Loss) -> Result<Self, TrainError> {
        Ok(EpochState {
            meter: task.meter(Phase::Train)?,
            losses: LossMeter::new(loss.term_names()),
            seen: 0,
            sizes: Vec::new(),
            time0: 0.0,
        })
    }

    /// Writes the epoch's outputs so far to `dir/file` (atomically) and returns the
    /// [`Partial`] that names it.
    fn save(
        &self,
        dir: &Path,
        epoch: u64,
        iteration: usize,
        train_time: f64,
    ) -> Result<Partial, TrainError> {
        let (logits, labels) = self.meter.kept().ok_or_else(|| {
            TrainError::Config(
                "the training meter keeps no outputs to resume from mid-epoch (train.checkpoint_every=0)"
                    .into(),
            )
        })?;
        let file = format!("{PARTIAL_PREFIX}e{epoch}.i{iteration}.npz");
        let n = labels.len();
        let classes = logits.len().checked_div(n).unwrap_or(0);
        let bad = |e: mbls_npy::NpyError| TrainError::Config(format!("{file}: {e}"));
        let l = mbls_npy::NpyArray::from_slice(&[n, classes], logits).map_err(bad)?;
        let y = mbls_npy::NpyArray::from_slice(&[n], labels).map_err(bad)?;
        let sizes: Vec<i64> = self.sizes.iter().map(|&s| s as i64).collect();
        let z = mbls_npy::NpyArray::from_slice(&[sizes.len()], &sizes).map_err(bad)?;
        mbls_npy::write_npz(
            dir.join(&file),
            &[("logits", &l), ("labels", &y), ("sizes", &z)],
        )
        .map_err(bad)?;
        Ok(Partial {
            iteration,
            seen: self.seen,
            loss_sums: self.losses.sums.clone(),
            loss_weight: self.losses.weight,
            file,
            train_time,
        })
    }

    /// The state a mid-epoch checkpoint saved: its outputs replayed into a new meter.
    fn restore(
        task: &dyn Task,
        loss: &dyn Loss,
        dir: &Path,
        p: &Partial,
    ) -> Result<Self, TrainError> {
        let mut st = EpochState::new(task, loss)?;
        let path = dir.join(&p.file);
        let bad = |m: String| TrainError::Config(format!("{}: {m}", path.display()));
        if p.file.contains(['/', '\\']) || !p.file.starts_with(PARTIAL_PREFIX) {
            return Err(bad("not a mid-epoch state file name".into()));
        }
        let mut arrays = mbls_npy::read_npz(&path).map_err(|e| bad(e.to_string()))?;
        let mut take = |k: &str| {
            arrays
                .remove(k)
                .ok_or_else(|| bad(format!("no `{k}` array")))
        };
        let (l, y, z) = (take("logits")?, take("labels")?, take("sizes")?);
        let logits = l
            .to_f32()
            .ok_or_else(|| bad("logits are not float32".into()))?;
        let labels = y
            .to_i64()
            .ok_or_else(|| bad("labels are not integers".into()))?;
        let sizes = z
            .to_i64()
            .ok_or_else(|| bad("sizes are not integers".into()))?;
        let n = labels.len();
        let total: i64 = if sizes.iter().all(|&s| s > 0 && s as usize <= n) {
            sizes.iter().sum()
        } else {
            -1
        };
        if l.shape.len() != 2
            || l.shape[0] != n
            || sizes.iter().any(|&s| s <= 0)
            || total != n as i64
            || n != p.seen
            || sizes.len() != p.iteration
        {
            return Err(bad(format!(
                "inconsistent mid-epoch state (logits {:?}, {n} labels, {} batches summing \
                 to {total}; the checkpoint says {} samples in {} iterations)",
                l.shape,
                sizes.len(),
                p.seen,
                p.iteration
            )));
        }
        let c = l.shape[1];
        let mut at = 0usize;
        for &s in &sizes {
            let s = s as usize;
            let lt = Tensor::from_slice(&logits[at * c..(at + s) * c]).view([s as i64, c as i64]);
            let yt = Tensor::from_slice(&labels[at..at + s]);
            st.meter.update(&lt, &yt)?;
            st.sizes.push(s);
            at += s;
        }
        st.seen = p.seen;
        st.time0 = p.train_time;
        st.losses.restore(&p.loss_sums, p.loss_weight)?;
        Ok(st)
    }
}

/// Deletes the mid-epoch state files of `dir` except `keep`. Best effort.
fn remove_partials(dir: &Path, keep: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let temp = name.starts_with(&format!(".{PARTIAL_PREFIX}")) && name.ends_with(".tmp");
        if temp
            || (name.starts_with(PARTIAL_PREFIX)
                && name.ends_with(".npz")
                && Some(name.as_str()) != keep)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What every checkpoint of a run stores besides its progress (the configuration, for the
/// resume check, computed once).
struct RunIdentity {
    config: Value,
    seed: u32,
    iterations_per_epoch: u64,
}

impl RunIdentity {
    /// The [`TrainState`] of a checkpoint after `epoch` completed epochs (and, with
    /// `partial`, part of the next one).
    fn state(
        &self,
        epoch: u64,
        best: (Option<u64>, Option<f64>),
        val_score: Option<f64>,
        sched: &Scheduler,
        partial: Option<&Partial>,
    ) -> Result<TrainState, TrainError> {
        let mut extra = serde_json::json!({
            "config": self.config,
            "seed": self.seed,
            "iterations_per_epoch": self.iterations_per_epoch,
        });
        if let Some(p) = partial {
            extra["partial"] = serde_json::to_value(p)
                .map_err(|e| TrainError::Config(format!("mid-epoch state: {e}")))?;
        }
        Ok(TrainState {
            epoch,
            best_epoch: best.0,
            best_score: best.1,
            val_score,
            scheduler: serde_json::to_value(sched)
                .map_err(|e| TrainError::Config(format!("scheduler state: {e}")))?,
            loss: Value::Null,
            extra,
        })
    }
}

/// Stop flags set by SIGINT and SIGTERM.
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

fn fmt_values(values: &[(String, f64)]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|(k, v)| format!("\"{k}\": {}", round5(*v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn round5(v: f64) -> String {
    if v.is_finite() {
        let r = (v * 1e5).round() / 1e5;
        format!("{r}")
    } else {
        format!("{v}")
    }
}

/// The configuration as JSON, for the resume check.
fn config_json(spec: &RunSpec) -> Value {
    serde_json::to_value(spec.config.value()).unwrap_or(Value::Null)
}

/// Dotted keys whose values differ between two configuration trees.
pub(crate) fn differing_keys(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => differing_keys(u, v, &p, out),
                    _ => out.push(p),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Runs every batch of `source` (`epoch`'s order) through the model in eval mode without
/// gradients, with a progress bar named `what`, giving each batch and its logits to `f`;
/// returns the number of samples. Stops with [`TrainError::Interrupted`] on Ctrl-C.
fn forward_batches(
    net: &Net,
    source: &dyn BatchSource,
    epoch: u64,
    what: &str,
    folder: &mut RunFolder,
    stop: &AtomicBool,
    mut f: impl FnMut(&Batch, &Tensor) -> Result<(), TrainError>,
) -> Result<usize, TrainError> {
    folder.start_bar(source.num_batches(), what);
    let t0 = Instant::now();
    let mut seen = 0usize;
    for (i, b) in source.epoch(epoch, 0).enumerate() {
        if stop.load(Ordering::Relaxed) {
            folder.end_bar();
            return Err(TrainError::Interrupted {
                epoch,
                iteration: i,
                what: format!("during {what}; nothing of this phase was kept"),
            });
        }
        let b = b?;
        let x = net.input(&b.inputs)?;
        let logits = tch::no_grad(|| net.model.forward_t(&x, false));
        if let Err(e) = f(&b, &logits) {
            folder.end_bar();
            return Err(e);
        }
        seen += b.inputs.size()[0] as usize;
        folder.bar_update(
            i + 1,
            format!(
                "{:.0} img/s",
                seen as f64 / t0.elapsed().as_secs_f64().max(1e-9)
            ),
        );
    }
    folder.end_bar();
    Ok(seen)
}

/// An evaluated phase: its results, its meter (with the kept logits) and the batch sizes.
type Evaluated = (PhaseResult, Box<dyn Meter>, Vec<usize>);

/// Evaluates `source` with the model in eval mode: loss terms averaged per batch (the
/// reference's meter with n = 1), every metric of `phase`.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    net: &Net,
    loss: &dyn Loss,
    task: &dyn Task,
    source: &dyn BatchSource,
    phase: Phase,
    epoch: u64,
    folder: &mut RunFolder,
    stop: &AtomicBool,
) -> Result<Evaluated, TrainError> {
    let mut meter = task.meter(phase)?;
    let mut losses = LossMeter::new(loss.term_names());
    let mut sizes = Vec::new();
    let seen = forward_batches(
        net,
        source,
        epoch,
        phase.as_str(),
        folder,
        stop,
        |b, logits| {
            let y = b.targets.f_to_device(net.device)?;
            let terms = tch::no_grad(|| loss.forward(logits, &y))?;
            losses.add(&terms.values()?, 1.0);
            meter.update(logits, &y)?;
            sizes.push(b.targets.size()[0] as usize);
            Ok(())
        },
    )?;
    let (metrics, _) = meter.finish()?;
    let result = PhaseResult::new(phase.as_str(), seen as u64, losses.means(), &metrics);
    Ok((result, meter, sizes))
}

fn phase_record(phase: &str, epoch: u64, r: &PhaseResult, extra: &[(String, f64)]) -> Record {
    let mut values = vec![("samples".to_string(), r.samples as f64)];
    values.extend(extra.iter().cloned());
    values.extend(r.loss.iter().cloned());
    values.extend(r.metrics.iter().cloned());
    Record {
        phase: phase.to_string(),
        epoch,
        iter: None,
        wall_time: now(),
        values,
    }
}

fn print_phase(folder: &mut RunFolder, phase: &str, epoch: u64, rec: &Record) {
    folder.say(&format!(
        "{phase} Epoch[{epoch}] {}",
        fmt_values(&rec.values)
    ));
}

/// Trains as the reference's `Trainer.run()`: every epoch of training and validation, then
/// Test with the best model and TestPT after temperature scaling. Returns the summary (also
/// written as `summary.json`).
///
/// # Errors
/// A configuration that cannot run (named), unreadable data, a checkpoint that cannot be
/// written, a non-finite loss ([`TrainError::NonFinite`]), an interruption
/// ([`TrainError::Interrupted`]).
pub fn train(spec: &RunSpec, opts: &RunOptions) -> Result<Summary, TrainError> {
    let started = Instant::now();
    if spec.task == TaskKind::Ood {
        return Err(TrainError::Config(
            "task=ood is a test task (the reference's OODTester): train with task=cv, then \
             `mbls test task=ood ood.name=NAME ood.data_root=DIR hydra.run.dir=RUN`"
                .into(),
        ));
    }
    device_of(&spec.device)?; // before anything is opened or written
    let run_dir = opts.run_dir.clone().unwrap_or_else(|| {
        PathBuf::from("outputs")
            .join(spec.run_name())
            .join(timestamp_utc(now(), true))
    });
    let ckpt = CheckpointDir::new(&run_dir)?;
    let resume_state = if ckpt.exists("last") {
        if !spec.train.resume {
            let s = ckpt.state("last")?;
            return Err(TrainError::Config(format!(
                "{} already holds a run (trained {} epochs): continue it with \
                 train.resume=true, or choose another folder with hydra.run.dir=DIR",
                run_dir.display(),
                s.epoch
            )));
        }
        let s = ckpt.state("last")?;
        let saved = s.extra.get("config").cloned().unwrap_or(Value::Null);
        let mut diff = Vec::new();
        differing_keys(&saved, &config_json(spec), "", &mut diff);
        diff.retain(|k| !RESUMABLE_CHANGES.contains(&k.as_str()));
        if !diff.is_empty() {
            return Err(TrainError::Config(format!(
                "{}: cannot resume with another configuration; these keys differ from the \
                 run's: {} (only train.max_epoch and train.checkpoint_every may change)",
                run_dir.display(),
                diff.join(", ")
            )));
        }
        Some(s)
    } else {
        None
    };
    let start_epoch = resume_state.as_ref().map_or(0, |s| s.epoch);
    let partial: Option<Partial> = match resume_state.as_ref().and_then(|s| s.extra.get("partial"))
    {
        Some(v) if !v.is_null() => Some(serde_json::from_value(v.clone()).map_err(|e| {
            TrainError::Config(format!(
                "{}: the last checkpoint's mid-epoch state: {e}",
                run_dir.display()
            ))
        })?),
        _ => None,
    };

    // Everything that can fail on bad input is checked before the run folder is touched.
    let task = task::open(spec)?;
    let mut loss = build_loss(&spec.loss)?;
    let iters_per_epoch = task.train_source().num_batches() as u64;
    if let (Some(p), Some(s)) = (&partial, &resume_state) {
        let saved = s.extra.get("iterations_per_epoch").and_then(Value::as_u64);
        if saved != Some(iters_per_epoch) || p.iteration as u64 > iters_per_epoch {
            return Err(TrainError::Config(format!(
                "{}: the last checkpoint stopped at iteration {} of an epoch of {saved:?} \
                 iterations; this data gives {iters_per_epoch}",
                run_dir.display(),
                p.iteration
            )));
        }
    }
    // The epoch in progress, read before anything in the run folder changes.
    let mut restored: Option<(EpochState, usize)> = match &partial {
        Some(p) => Some((
            EpochState::restore(task.as_ref(), loss.as_ref(), &run_dir, p).map_err(|e| {
                TrainError::Config(format!(
                    "{e}; the last checkpoint's mid-epoch state cannot be used: train again in \
                     a new folder, or keep this run's best checkpoint with mbls test"
                ))
            })?,
            p.iteration,
        )),
        None => None,
    };
    // Records before the resume point are kept; those after it are written again.
    let resume_iter =
        start_epoch * iters_per_epoch + partial.as_ref().map_or(0, |p| p.iteration as u64);
    let keep = |r: &Record| match r.iter {
        Some(it) => r.phase == "Train" && it < resume_iter,
        None => (r.phase == "Train" || r.phase == "Val") && r.epoch < start_epoch,
    };
    let mut folder = RunFolder::open(&run_dir, "train.log", &keep, true)?;
    folder.write("config.yaml", &spec.config.to_yaml())?;
    {
        let line = opts.command_line.join(" ");
        let mut text = std::fs::read_to_string(run_dir.join("command.txt")).unwrap_or_default();
        text.push_str(&format!("{}  {line}\n", timestamp_utc(now(), false)));
        folder.write("command.txt", &text)?;
    }
    folder.log_only(&format!("command: {}", opts.command_line.join(" ")));
    folder.log_only(&format!(
        "resolved configuration:\n{}",
        spec.config.to_yaml()
    ));
    folder.say(&format!("run folder: {}", run_dir.display()));
    if spec.wandb.enable {
        folder.say(
            "wandb.enable=true: mbls writes TensorBoard event files instead (tensorboard/ in the \
             run folder; `wandb sync --sync-tensorboard` uploads them)",
        );
    }
    for l in task.describe() {
        folder.say(&l);
    }

    let net = Net::build(spec, Some(&mut folder))?;
    let mut opt = build_optimizer(spec, &net.vs)?;
    let mut sched: Scheduler = spec
        .scheduler
        .build(spec.optim.lr(), spec.train.max_epoch)?;
    let (mut best_epoch, mut best_score) = (None, None);
    if let Some(s) = &resume_state {
        let state = ckpt.load("last", &net.vs, Some(opt.as_mut()))?;
        if net.channels_last {
            vars_to_channels_last(&net.vs);
        }
        let saved: Scheduler = serde_json::from_value(state.scheduler.clone())
            .map_err(|e| TrainError::Config(format!("last checkpoint's scheduler: {e}")))?;
        sched.load_state(saved)?;
        for e in 0..s.epoch {
            loss.epoch_end(e as usize);
        }
        best_epoch = state.best_epoch;
        best_score = state.best_score;
        folder.say(&format!(
            "resumed from {} at epoch {}{} (best {} at epoch {})",
            ckpt.weights_path("last")?.display(),
            s.epoch,
            partial
                .as_ref()
                .map_or(String::new(), |p| format!(", iteration {}", p.iteration)),
            best_score.map_or("-".into(), |v: f64| format!("{v:.5}")),
            best_epoch.map_or("-".into(), |e: u64| e.to_string())
        ));
    } else if spec.train.resume {
        folder.say(&format!(
            "train.resume=true but {} holds no checkpoint yet: starting a new run",
            run_dir.display()
        ));
    }
    let params = trainable_variables(&net.vs);
    let nparams: i64 = params.iter().map(|(_, t)| t.numel() as i64).sum();
    folder.say(&format!(
        "model {} ({} parameters) on {}, loss {}, optimizer {} (lr {}), {} epochs from epoch {}",
        spec.model.name,
        nparams,
        spec.device,
        loss.name(),
        spec.config.group("optim"),
        opt.lr(),
        spec.train.max_epoch,
        start_epoch
    ));
    let stop = stop_flag();
    let train_src = task.train_source();
    let names: Vec<String> = net.names().to_vec();
    let identity = RunIdentity {
        config: config_json(spec),
        seed: spec.seed,
        iterations_per_epoch: iters_per_epoch,
    };
    // `last` mid-epoch: the epoch's meter state, then the weights and optimizer; the pointer
    // names the state file, so a kill at any moment leaves a consistent pair.
    let save_mid = |st: &EpochState,
                    (epoch, next, train_time): (u64, usize, f64),
                    opt: &dyn Optimizer,
                    sched: &Scheduler,
                    best: (Option<u64>, Option<f64>)|
     -> Result<(), TrainError> {
        let p = st.save(&run_dir, epoch, next, train_time)?;
        let state = identity.state(epoch, best, None, sched, Some(&p))?;
        ckpt.save("last", &net.vs, &names, Some(opt), &state)?;
        remove_partials(&run_dir, Some(&p.file));
        Ok(())
    };

    for epoch in start_epoch..spec.train.max_epoch {
        // ---- training epoch
        let lr = opt.lr();
        let (mut st, first) = match restored.take() {
            Some(r) => r,
            None => (EpochState::new(task.as_ref(), loss.as_ref())?, 0),
        };
        folder.start_bar(train_src.num_batches(), "Train");
        let t_epoch = Instant::now();
        let mut t_end = Instant::now();
        let seen0 = st.seen;
        for (k, b) in train_src.epoch(epoch, first).enumerate() {
            let i = first + k;
            let b = b?;
            let data_time = t_end.elapsed().as_secs_f64();
            let x = net.input(&b.inputs)?;
            let y = b.targets.f_to_device(net.device)?;
            tch::manual_seed(iteration_seed(spec.seed, epoch, i));
            let logits = net.model.forward_t(&x, true);
            let terms = loss.forward(&logits, &y)?;
            opt.zero_grad();
            terms.total().f_backward()?;
            let values = terms.values()?;
            if let Some((term, value)) = values.iter().find(|(_, v)| !v.is_finite()) {
                folder.end_bar();
                let _ = folder.flush();
                return Err(TrainError::NonFinite {
                    epoch,
                    iteration: i,
                    term: term.to_string(),
                    value: *value,
                });
            }
            if spec.train.clip_grad_norm {
                opt.clip_grad_norm(spec.train.clip_max_norm, 2.0)?;
            }
            opt.step()?;
            let bs = b.targets.size()[0] as usize;
            st.seen += bs;
            st.sizes.push(bs);
            st.losses.add(&values, bs as f64);
            let stats = st.meter.update(&logits, &y)?;
            let batch_time = t_end.elapsed().as_secs_f64();
            t_end = Instant::now();
            folder.bar_update(
                i + 1,
                format!(
                    "loss {:.4} acc {:.3} {:.1} img/s",
                    values[0].1,
                    stats.acc,
                    (st.seen - seen0) as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9)
                ),
            );
            if (i + 1) % spec.log_period == 0 {
                let mut v = vec![
                    ("data_time".to_string(), data_time),
                    ("batch_time".to_string(), batch_time),
                ];
                v.extend(values.iter().map(|(k, x)| (k.to_string(), *x)));
                v.push(("acc".into(), stats.acc));
                v.push(("mean_diffs".into(), stats.mean_diffs));
                v.push(("lr".into(), lr));
                folder.say(&format!(
                    "Train Epoch[{epoch}/{}] Iter[{}/{}] {}",
                    spec.train.max_epoch,
                    i + 1,
                    iters_per_epoch,
                    fmt_values(&v)
                ));
                folder.iteration(Record {
                    phase: "Train".into(),
                    epoch,
                    iter: Some(epoch * iters_per_epoch + i as u64),
                    wall_time: now(),
                    values: v,
                })?;
            }
            let interrupted = stop.load(Ordering::Relaxed);
            let global = epoch * iters_per_epoch + i as u64 + 1;
            let every = spec.train.checkpoint_every;
            // Mid-epoch saves need the epoch's outputs, kept when checkpoint_every > 0.
            let can_save = st.meter.kept().is_some();
            let periodic = every > 0 && global % every == 0 && (i as u64 + 1) < iters_per_epoch;
            if can_save && (interrupted || periodic) {
                folder.flush_records()?;
                let elapsed = st.time0 + t_epoch.elapsed().as_secs_f64();
                save_mid(
                    &st,
                    (epoch, i + 1, elapsed),
                    opt.as_ref(),
                    &sched,
                    (best_epoch, best_score),
                )?;
            }
            if interrupted {
                folder.end_bar();
                let _ = folder.flush();
                let what = if can_save {
                    format!("saved `last` at epoch {epoch}, iteration {}", i + 1)
                } else {
                    format!(
                        "the last checkpoint (epoch {}) is kept (train.checkpoint_every=N also \
                         saves mid-epoch)",
                        ckpt.state("last").map_or(0, |s| s.epoch)
                    )
                };
                return Err(TrainError::Interrupted {
                    epoch,
                    iteration: i,
                    what: format!(
                        "{what}; continue with train.resume=true hydra.run.dir={}",
                        run_dir.display(),
                    ),
                });
            }
        }
        folder.end_bar();
        let train_time = st.time0 + t_epoch.elapsed().as_secs_f64();
        let (train_metrics, _) = st.meter.finish()?;
        let mut extra = vec![("lr".to_string(), lr)];
        if let Some(a) = loss.scheduled_alpha() {
            extra.push(("alpha".to_string(), a));
        }
        let train_result =
            PhaseResult::new("Train", st.seen as u64, st.losses.means(), &train_metrics);
        let mut rec = phase_record("Train", epoch, &train_result, &extra);
        print_phase(&mut folder, "Train", epoch, &rec);
        rec.values.push(("time".into(), train_time));
        folder.epoch(rec)?;

        // ---- validation (Ctrl-C here keeps the finished training epoch)
        let t_val = Instant::now();
        let evaluated = evaluate(
            &net,
            loss.as_ref(),
            task.as_ref(),
            task.val_source(),
            Phase::Val,
            epoch,
            &mut folder,
            &stop,
        );
        let val = match evaluated {
            Ok((val, _, _)) => val,
            Err(TrainError::Interrupted { iteration, .. }) => {
                let n = iters_per_epoch as usize;
                folder.flush()?;
                let what = if st.meter.kept().is_some() {
                    save_mid(
                        &st,
                        (epoch, n, train_time),
                        opt.as_ref(),
                        &sched,
                        (best_epoch, best_score),
                    )?;
                    format!("saved `last` after the training phase of epoch {epoch}")
                } else {
                    format!(
                        "the last checkpoint (epoch {}) is kept",
                        ckpt.state("last").map_or(0, |s| s.epoch)
                    )
                };
                return Err(TrainError::Interrupted {
                    epoch,
                    iteration,
                    what: format!(
                        "during Val; {what}; continue with train.resume=true hydra.run.dir={}",
                        run_dir.display()
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        let mut rec = phase_record("Val", epoch, &val, &[]);
        print_phase(&mut folder, "Val", epoch, &rec);
        rec.values
            .push(("time".into(), t_val.elapsed().as_secs_f64()));
        folder.epoch(rec)?;

        // ---- scheduler, alpha schedule, checkpoints
        let metric = match spec.scheduler.metric() {
            Some(m) => {
                let key = m.strip_prefix("val_").unwrap_or(m);
                let key = if key == "loss" {
                    loss.term_names()[0]
                } else {
                    key
                };
                Some(val.get(key).ok_or_else(|| {
                    TrainError::Config(format!(
                        "scheduler.metric={m}: the validation phase has no `{key}`"
                    ))
                })?)
            }
            None => None,
        };
        let new_lr = sched.step(metric)?;
        opt.set_lr(new_lr)?;
        loss.epoch_end(epoch as usize);
        let score = val.get(task.main_metric()).unwrap_or(f64::NAN);
        let is_best = best_score.is_none_or(|b| score > b);
        if is_best {
            best_score = Some(score);
            best_epoch = Some(epoch);
        }
        folder.flush()?;
        let state = identity.state(
            epoch + 1,
            (best_epoch, best_score),
            Some(score),
            &sched,
            None,
        )?;
        if is_best {
            ckpt.save("best", &net.vs, &names, None, &state)?;
        }
        let k = spec.train.keep_checkpoint_num;
        let interval = spec.train.keep_checkpoint_interval;
        let n = epoch + 1;
        let by_interval = interval > 0 && n % interval == 0;
        if k > 1 || by_interval {
            ckpt.save(
                &format!("epoch_{n}"),
                &net.vs,
                &names,
                Some(opt.as_ref()),
                &state,
            )?;
        }
        if k > 1 && n > k {
            let old = n - k;
            if !(interval > 0 && old % interval == 0) {
                ckpt.remove(&format!("epoch_{old}"))?;
            }
        }
        ckpt.save("last", &net.vs, &names, Some(opt.as_ref()), &state)?;
        remove_partials(&run_dir, None);
        folder.say(&format!(
            "Epoch[{epoch}] Best {} on Val : {:.5} at epoch {}",
            task.main_metric(),
            best_score.unwrap_or(f64::NAN),
            best_epoch.map_or(-1, |e| e as i64)
        ));
    }
    let train_seconds = started.elapsed().as_secs_f64();

    // ---- Test with the best model, then TestPT
    if !ckpt.exists("best") {
        return Err(TrainError::Config(format!(
            "{}: no best checkpoint (train.max_epoch={} trained no epoch)",
            run_dir.display(),
            spec.train.max_epoch
        )));
    }
    let state = ckpt.load("best", &net.vs, None)?;
    if net.channels_last {
        vars_to_channels_last(&net.vs);
    }
    folder.say(&format!(
        "Test with the best checkpoint (epoch {})",
        state.best_epoch.map_or(-1, |e| e as i64)
    ));
    let mut summary = run_test(
        spec,
        &net,
        loss.as_ref(),
        task.as_ref(),
        &mut folder,
        &stop,
        TestOutputs {
            stem: "test",
            logits_stem: "best",
            post_temperature: true,
            epoch: spec.train.max_epoch,
        },
    )?;
    summary.checkpoint = "best".into();
    summary.epochs = Some(spec.train.max_epoch);
    summary.best_epoch = state.best_epoch;
    summary.best_val_score = state.best_score;
    summary.train_seconds = Some(train_seconds);
    folder.flush()?;
    report::finish(&mut folder, &summary)?;
    Ok(summary)
}

/// The logits (row-major) and labels of every sample of `source` in eval mode, without a loss
/// (the out-of-distribution split of `task=ood`, whose labels mean nothing to the model).
fn forward_logits(
    net: &Net,
    source: &dyn BatchSource,
    classes: usize,
    what: &str,
    folder: &mut RunFolder,
    stop: &AtomicBool,
) -> Result<(Vec<f32>, Vec<i64>), TrainError> {
    let mut out = Vec::with_capacity(source.len() * classes);
    let mut labels = Vec::with_capacity(source.len());
    forward_batches(net, source, 0, what, folder, stop, |b, logits| {
        let v = crate::meter::to_vec_f32(logits)?;
        let bs = b.inputs.size()[0] as usize;
        if v.len() != bs * classes {
            return Err(TrainError::Config(format!(
                "{what}: the model gave {} values for {bs} images, not {classes} classes each",
                v.len()
            )));
        }
        out.extend_from_slice(&v);
        labels.extend(crate::meter::to_vec_i64(&b.targets)?);
        Ok(())
    })?;
    Ok((out, labels))
}

/// OOD detection of in-distribution against OOD logits, logged as phase `phase`.
fn ood_phase(
    folder: &mut RunFolder,
    phase: &str,
    epoch: u64,
    inside: &[f32],
    outside: &[f32],
    classes: usize,
) -> Result<mbls_metrics::ood::OodReport, TrainError> {
    let r = mbls_metrics::ood::ood(inside, outside, classes, ScoreKind::Logits)?;
    let rec = Record {
        phase: phase.to_string(),
        epoch,
        iter: None,
        wall_time: now(),
        values: OodResult::values(&r),
    };
    print_phase(folder, phase, epoch, &rec);
    folder.epoch(rec)?;
    Ok(r)
}

struct TestOutputs<'a> {
    /// Prefix of the diagram files (`test` -> `test_reliability.svg`, `testpt_...`).
    stem: &'a str,
    /// Prefix of the logits files (`best` -> `best_logits.npz`).
    logits_stem: &'a str,
    post_temperature: bool,
    /// The step of the Test records.
    epoch: u64,
}

/// Test (and TestPT): the metrics, the temperature, the diagrams and logits files.
fn run_test(
    spec: &RunSpec,
    net: &Net,
    loss: &dyn Loss,
    task: &dyn Task,
    folder: &mut RunFolder,
    stop: &AtomicBool,
    out: TestOutputs<'_>,
) -> Result<Summary, TrainError> {
    let t_test = Instant::now();
    let (test, meter, sizes) = evaluate(
        net,
        loss,
        task,
        task.test_source(),
        Phase::Test,
        0,
        folder,
        stop,
    )?;
    let mut rec = phase_record("Test", out.epoch, &test, &[]);
    print_phase(folder, "Test", out.epoch, &rec);
    // the pass's seconds, as for Train and Val
    rec.values
        .push(("time".into(), t_test.elapsed().as_secs_f64()));
    folder.epoch(rec)?;
    let (test_logits, test_labels) = meter
        .kept()
        .map(|(l, y)| (l.to_vec(), y.to_vec()))
        .unwrap_or_default();
    let classes = task.num_classes();
    let bins = spec.calibrate.num_bins;
    let full_metrics = |logits: &[f32], labels: &[i64]| {
        mbls_metrics::evaluate(
            logits,
            labels,
            classes,
            ClassificationOptions {
                num_bins: bins,
                ..ClassificationOptions::default()
            },
        )
    };
    let test_full = full_metrics(&test_logits, &test_labels)?;
    // task=ood: the OOD test split through the same model, scored against the test split.
    let ood = match task.ood_source() {
        Some((source, format)) => {
            let (logits, labels) = forward_logits(net, source, classes, "OOD", folder, stop)?;
            let r = ood_phase(folder, "OOD", out.epoch, &test_logits, &logits, classes)?;
            if spec.test.save_logits {
                // `mbls eval <stem>_logits.npz --ood <stem>_ood_logits.npz` gives the same
                // numbers (the labels are the OOD dataset's own).
                let p = folder
                    .path()
                    .join(format!("{}_ood_logits.npz", out.logits_stem));
                save_npz(&p, &logits, &labels, classes)?;
                folder.say(&format!("wrote {}", p.display()));
            }
            Some((logits, format.to_string(), r))
        }
        None => None,
    };
    if spec.calibrate.visualize {
        for p in report::diagrams(folder.path(), out.stem, "Test", &test_full)? {
            folder.log_only(&format!("wrote {}", p.display()));
        }
    }
    if spec.test.save_logits {
        let p = folder
            .path()
            .join(format!("{}_logits.npz", out.logits_stem));
        save_npz(&p, &test_logits, &test_labels, classes)?;
        folder.say(&format!("wrote {}", p.display()));
    }
    let mut summary = Summary {
        run_dir: folder.path().to_path_buf(),
        checkpoint: String::new(),
        epochs: None,
        best_epoch: None,
        best_val_score: None,
        test,
        test_pt: None,
        temperature: None,
        calibrator: None,
        ood: ood.as_ref().map(|(_, dataset, r)| OodResult {
            dataset: dataset.clone(),
            test: r.clone(),
            test_pt: None,
        }),
        train_seconds: None,
    };
    if !(out.post_temperature && task.temperature_scaling()) {
        return Ok(summary);
    }
    // Temperature on the validation split with the same model (spec 6.5).
    let (val, vmeter, _) = evaluate(
        net,
        loss,
        task,
        task.val_source(),
        Phase::Val,
        0,
        folder,
        stop,
    )?;
    let (vl, vy) = vmeter.kept().unwrap_or_default();
    let val_ece = val.get("ece").unwrap_or(f64::NAN);
    let val_nll = val.get("nll").unwrap_or(f64::NAN);
    let method = spec.calibrate.post_hoc()?;
    let (mut temperature, mut calibrator) = (None, None);
    type PostHoc<'c> = Box<dyn Fn(&[f32]) -> Result<Vec<f32>, TrainError> + 'c>;
    let (post_hoc, pt_extra): (PostHoc<'_>, _) = if method == Method::Temperature {
        let grid = grid_search_temperature(vl, vy, classes, bins)?;
        let t = grid.temperature_ece;
        let nll_fit = fit_temperature_nll(vl, vy, classes)?;
        let v_after = full_metrics(&scale_logits(vl, t), vy)?;
        folder.say(&format!(
            "Optimal temperature: {t:.3} (validation ECE {val_ece:.5} -> {:.5}, NLL {val_nll:.5} \
             -> {:.5}; NLL fit: {:.4})",
            v_after.ece, v_after.nll, nll_fit.temperature
        ));
        let nll_test = full_metrics(
            &scale_logits(&test_logits, nll_fit.temperature),
            &test_labels,
        )?;
        temperature = Some(TemperatureResult {
            temperature: t,
            val_samples: v_after.samples,
            val_ece_before: val_ece,
            val_ece_after: v_after.ece,
            val_nll_before: val_nll,
            val_nll_after: v_after.nll,
            nll_fit_temperature: nll_fit.temperature,
            nll_fit_test_ece: nll_test.ece,
            nll_fit_test_nll: nll_test.nll,
        });
        (
            Box::new(move |l: &[f32]| Ok(scale_logits(l, t))),
            vec![("temperature".to_string(), t)],
        )
    } else {
        // Any other calibrator: fitted on the same validation logits, saved beside the
        // checkpoint; calibrated probabilities go on as log-probabilities (softmax gives them
        // back), so that TestPT's loss and meters take logits as in Test.
        let cal = calibrate::fit(
            method,
            vl,
            vy,
            classes,
            &FitOptions {
                num_bins: bins,
                ..FitOptions::default()
            },
        )
        .map_err(|e| {
            TrainError::Config(format!(
                "calibrate.method={method} on the validation split ({} samples): {e}",
                vy.len()
            ))
        })?;
        fn as_logits(c: calibrate::Calibrated) -> Vec<f32> {
            match c.kind {
                ScoreKind::Logits => c.scores,
                ScoreKind::Probabilities => c.scores.iter().map(|&p| p.max(1e-12).ln()).collect(),
            }
        }
        let v_after = full_metrics(&as_logits(cal.apply(vl)?), vy)?;
        let file = folder.write(
            &format!("{}_calibrator.json", out.logits_stem),
            &cal.to_json(),
        )?;
        folder.say(&format!(
            "Post-hoc calibrator {method}: {} iterations (validation ECE {val_ece:.5} -> {:.5}, \
             NLL {val_nll:.5} -> {:.5}); wrote {}",
            cal.fit.iterations,
            v_after.ece,
            v_after.nll,
            file.display()
        ));
        calibrator = Some(CalibratorResult {
            method: method.name().to_string(),
            file,
            val_samples: v_after.samples,
            iterations: cal.fit.iterations,
            val_ece_before: val_ece,
            val_ece_after: v_after.ece,
            val_nll_before: val_nll,
            val_nll_after: v_after.nll,
        });
        (
            Box::new(move |l: &[f32]| Ok(as_logits(cal.apply(l)?))),
            Vec::new(),
        )
    };
    let scaled = post_hoc(&test_logits)?;
    // TestPT: the calibrated test logits, the loss per batch as in Test.
    let mut pt_meter = task.meter(Phase::TestPt)?;
    let mut losses = LossMeter::new(loss.term_names());
    let mut off = 0usize;
    for &bs in &sizes {
        let l = Tensor::f_from_slice(&scaled[off * classes..(off + bs) * classes])?
            .f_view([bs as i64, classes as i64])?;
        let y = Tensor::f_from_slice(&test_labels[off..off + bs])?;
        let terms = tch::no_grad(|| loss.forward(&l, &y))?;
        losses.add(&terms.values()?, 1.0);
        pt_meter.update(&l, &y)?;
        off += bs;
    }
    let (pt_metrics, _) = pt_meter.finish()?;
    let test_pt = PhaseResult::new("TestPT", off as u64, losses.means(), &pt_metrics);
    let rec = phase_record("TestPT", out.epoch, &test_pt, &pt_extra);
    print_phase(folder, "TestPT", out.epoch, &rec);
    folder.epoch(rec)?;
    let pt_full = full_metrics(&scaled, &test_labels)?;
    if spec.calibrate.visualize {
        let stem = format!("{}pt", out.stem);
        for p in report::diagrams(folder.path(), &stem, "TestPT", &pt_full)? {
            folder.log_only(&format!("wrote {}", p.display()));
        }
    }
    if spec.test.save_logits {
        let p = folder
            .path()
            .join(format!("{}_logits_pt.npz", out.logits_stem));
        save_npz(&p, &scaled, &test_labels, classes)?;
        folder.say(&format!("wrote {}", p.display()));
    }
    if let (Some((logits, _, _)), Some(o)) = (&ood, summary.ood.as_mut()) {
        let r = ood_phase(
            folder,
            "OODPT",
            out.epoch,
            &scaled,
            &post_hoc(logits)?,
            classes,
        )?;
        o.test_pt = Some(r);
    }
    summary.temperature = temperature;
    summary.calibrator = calibrator;
    summary.test_pt = Some(test_pt);
    Ok(summary)
}

fn save_npz(path: &Path, logits: &[f32], labels: &[i64], classes: usize) -> Result<(), TrainError> {
    let bad = |e: mbls_npy::NpyError| TrainError::Config(format!("{}: {e}", path.display()));
    let l = mbls_npy::NpyArray::from_slice(&[labels.len(), classes], logits).map_err(bad)?;
    let y = mbls_npy::NpyArray::from_slice(&[labels.len()], labels).map_err(bad)?;
    mbls_npy::write_npz(path, &[("logits", &l), ("labels", &y)]).map_err(bad)
}

/// Tests a checkpoint as the reference's `Tester` (spec 6.4): `test.checkpoint` in the run
/// folder (`best` by default; one of ours, or a PyTorch `.pth` loaded with `strict=False`
/// and its load report printed) on the test split; with `test.post_temperature`, a
/// temperature fitted on the validation split and TestPT; with `test.save_logits`,
/// `<checkpoint>_logits.npz` next to it.
///
/// # Errors
/// No run folder given, a missing or foreign checkpoint, unreadable data.
pub fn test(spec: &RunSpec, opts: &RunOptions) -> Result<Summary, TrainError> {
    device_of(&spec.device)?;
    let run_dir = opts.run_dir.clone().ok_or_else(|| {
        TrainError::Config(
            "mbls test needs the run folder of the checkpoint: hydra.run.dir=DIR (or --run-dir \
             DIR)"
                .into(),
        )
    })?;
    if !run_dir.is_dir() {
        return Err(TrainError::Config(format!(
            "{}: no such run folder",
            run_dir.display()
        )));
    }
    let name = if spec.test.checkpoint.is_empty() {
        "best".to_string()
    } else {
        spec.test.checkpoint.clone()
    };
    let task = task::open(spec)?;
    let loss = build_loss(&spec.loss)?;
    let mut folder = RunFolder::open(&run_dir, "test.log", &|_| true, false)?;
    folder.log_only(&format!("command: {}", opts.command_line.join(" ")));
    for l in task.describe() {
        folder.say(&l);
    }
    let net = Net::build(spec, None)?;
    let file = run_dir.join(&name);
    let stem: String = if name.ends_with(".pth")
        || name.ends_with(".safetensors")
        || name.ends_with(".pt")
    {
        if !file.is_file() {
            return Err(TrainError::Config(format!(
                "test.checkpoint={name}: {} does not exist",
                file.display()
            )));
        }
        let report = load_weights(
            &net.vs,
            &file,
            &LoadOptions {
                strict: false,
                ..LoadOptions::default()
            },
        )?;
        folder.say(&format!("loaded {}: {report}", file.display()));
        // strict=False as the reference's tester; shapes that differ are an error there too
        // (PyTorch's load_state_dict), and entries left missing are said, not silent.
        if !report.mismatched.is_empty() {
            let m = &report.mismatched[0];
            return Err(TrainError::Config(format!(
                "{}: {} entries have another shape than model={} needs (first: {}: model \
                 {:?}, file {:?}): a checkpoint of another model or class count?",
                file.display(),
                report.mismatched.len(),
                spec.model.name,
                m.name,
                m.expected,
                m.found
            )));
        }
        if !report.missing.is_empty() && !report.loaded.is_empty() {
            folder.say(&format!(
                "warning: {} entries of model={} are not in {} and keep their initial values \
                 (strict=False, as the reference)",
                report.missing.len(),
                spec.model.name,
                file.display()
            ));
        }
        if report.loaded.is_empty() {
            return Err(TrainError::Config(format!(
                "{}: no entry matches model={} ({} unexpected entries): a checkpoint of another \
                 model?",
                file.display(),
                spec.model.name,
                report.unexpected.len()
            )));
        }
        Path::new(&name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(name.clone())
    } else {
        let tag = name.strip_suffix(".json").unwrap_or(&name).to_string();
        let ckpt = CheckpointDir::new(&run_dir)?;
        if !ckpt.exists(&tag) {
            return Err(TrainError::Config(format!(
                "test.checkpoint={name}: no checkpoint {tag} in {}",
                run_dir.display()
            )));
        }
        let state = ckpt.load(&tag, &net.vs, None)?;
        folder.say(&format!(
            "loaded checkpoint {tag} of {} (epoch {})",
            run_dir.display(),
            state.epoch
        ));
        tag
    };
    if net.channels_last {
        vars_to_channels_last(&net.vs);
    }
    let stop = stop_flag();
    let diagram_stem = format!("{stem}_test");
    let mut summary = run_test(
        spec,
        &net,
        loss.as_ref(),
        task.as_ref(),
        &mut folder,
        &stop,
        TestOutputs {
            stem: &diagram_stem,
            logits_stem: &stem,
            post_temperature: spec.test.post_temperature,
            epoch: 0,
        },
    )?;
    summary.checkpoint = name;
    folder.say(&format!("\n{}", summary.table()));
    folder.flush()?;
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| TrainError::Config(format!("summary: {e}")))?;
    let p = folder.write(&format!("{stem}_test_summary.json"), &json)?;
    folder.say(&format!("wrote {}", p.display()));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_seeds_differ_by_position() {
        let a = iteration_seed(1, 0, 0);
        assert_ne!(a, iteration_seed(1, 0, 1));
        assert_ne!(a, iteration_seed(1, 1, 0));
        assert_ne!(a, iteration_seed(2, 0, 0));
        assert!(a >= 0);
    }

    #[test]
    fn differing_keys_are_named() {
        let a = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        let b = serde_json::json!({"a": 1, "b": {"c": 5, "e": 3}});
        let mut d = Vec::new();
        differing_keys(&a, &b, "", &mut d);
        assert_eq!(d, ["b.c", "b.d", "b.e"]);
    }
}
