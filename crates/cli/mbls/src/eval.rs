//! `mbls eval`: calibration report for saved logits.

use crate::calibrate_cmd::InputKeys;
use crate::input::{DenseSource, Loaded, Rows, load, open_dense_stream, with_rows};
use crate::report::{f5, table};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mbls_metrics::calibrate::{self, Calibrated, Calibrator, FitOptions};
use mbls_metrics::compat::{self, CompatReport, Library};
use mbls_metrics::estimators::{self, Errors};
use mbls_metrics::ood::{OodReport, OodScores};
use mbls_metrics::{
    BootstrapOptions, BootstrapResult, CalibrationMethod, ClassificationAccumulator,
    ClassificationMetrics, ClassificationOptions, ScoreKind, SegmentationAccumulator,
    SegmentationMetrics, SegmentationOptions, bootstrap, fit_temperature_nll,
    grid_search_temperature, scale_logits,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Post-hoc temperature fitting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TempMethod {
    /// The reference's grid search T = 0.1 .. 10.0, lowest validation ECE.
    Grid,
    /// Continuous NLL-optimal temperature (Newton on log T).
    Nll,
}

/// Arguments of `mbls eval`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mbls eval test_logits.npz\n  mbls eval logits.npy labels.npy --json\n  \
    mbls eval test.npz --temperature grid --val val.npz --plot out/\n  mbls eval seg_logits.npy seg_labels.npy --ignore-index 255"
)]
pub struct EvalArgs {
    /// One .npz (arrays `logits` and `labels`, as the reference's save_logits writes) or two
    /// .npy files: LOGITS (N x C, or N x C x H x W; float32/float64) LABELS (N, or N x H x W; integers)
    #[arg(required = true, num_args = 1..=2, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// The scores are probabilities, not logits.
    #[arg(long)]
    pub probs: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write reliability diagrams (SVG, PNG) and the per-bin CSV into DIR.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Number of equal-width (and equal-mass) bins (`calibrate.num_bins` in training)
    /// [default: 15; with --ece-compat, each library's own default].
    #[arg(long = "bins", alias = "num-bins", value_name = "N")]
    pub num_bins: Option<usize>,
    /// Also report the ECE as other libraries compute it, reproducing their binning and
    /// averaging exactly: comma-separated torchmetrics, netcal, sklearn, or all. Each uses the
    /// library's own default number of bins (torchmetrics 15, netcal 10, scikit-learn's
    /// calibration_curve 5) unless --bins is given.
    #[arg(long, value_name = "LIBS")]
    pub ece_compat: Option<String>,
    /// Out-of-distribution logits (.npz member --logits-key, or .npy; labels not needed):
    /// report how well the inputs' scores separate from them (AUROC, AUPR, FPR at 95% TPR,
    /// by maximum probability and by normalised entropy).
    #[arg(long, value_name = "FILE")]
    pub ood: Option<PathBuf>,
    /// Also report the smooth ECE (relplot's), the debiased L2 ECE (Kumar et al., 15
    /// equal-mass bins) and the Kolmogorov-Smirnov calibration error, top-label and class-wise.
    #[arg(long)]
    pub extra: bool,
    /// Label value to ignore. Dense (segmentation) inputs default to 255; classification
    /// inputs ignore nothing unless this is given.
    #[arg(long, value_name = "LABEL", allow_negative_numbers = true)]
    pub ignore_index: Option<i64>,
    /// Bootstrap percentile intervals for ECE, adaptive ECE, NLL and accuracy, with N replicates
    /// (2 to 1,000,000).
    #[arg(long, value_name = "N")]
    pub bootstrap: Option<usize>,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Confidence level of the bootstrap intervals.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Fit a temperature on the validation logits (--val) and report the test set before and after.
    #[arg(long, value_enum, requires = "val")]
    pub temperature: Option<TempMethod>,
    /// Validation logits for --temperature or --compare: one .npz or two .npy files.
    #[arg(long, num_args = 1..=2, value_name = "FILE")]
    pub val: Vec<PathBuf>,
    /// Apply a saved calibrator (`mbls calibrate fit`) and report the test set before and after.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["temperature", "compare"])]
    pub calibrator: Option<PathBuf>,
    /// Fit each of these calibrators on --val and print one table of the test set's metrics
    /// per method (comma-separated: ts, ts-nll, vector, matrix, dirichlet, hist, isotonic,
    /// platt, beta); with --bootstrap, intervals for acc, nll, ece and aece.
    #[arg(
        long,
        value_name = "METHODS",
        requires = "val",
        conflicts_with = "temperature"
    )]
    pub compare: Option<String>,
    /// Name of the logits array in .npz inputs.
    #[arg(long, default_value = "logits")]
    pub logits_key: String,
    /// Name of the labels array in .npz inputs.
    #[arg(long, default_value = "labels")]
    pub labels_key: String,
    /// Dense inputs: images per batch for the reference's batch-weighted pixel calibration
    /// (the reference's VOC test batch size is 8).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub seg_batch: usize,
    /// Dense inputs: keep background (class 0) pixels in the pixel calibration metrics
    /// (the reference drops them).
    #[arg(long)]
    pub include_background: bool,
}

#[derive(Serialize)]
struct TemperatureReport {
    method: TempMethod,
    temperature: f64,
    val_samples: u64,
    val_ece_before: f64,
    val_nll_before: f64,
    val_ece_after: f64,
    val_nll_after: f64,
    after: ClassificationMetrics,
}

#[derive(Serialize)]
struct ClassificationReport {
    kind: &'static str,
    source: String,
    scores: ScoreKind,
    ignored: u64,
    metrics: ClassificationMetrics,
    bootstrap: Option<BootstrapResult>,
    temperature: Option<TemperatureReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ece_compat: Vec<CompatEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<ExtraReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ood: Option<OodEntry>,
    plots: Vec<PathBuf>,
}

/// OOD detection against `--ood`.
#[derive(Serialize)]
struct OodEntry {
    source: String,
    #[serde(flatten)]
    report: OodReport,
}

/// One library's ECE convention applied to these scores.
#[derive(Serialize)]
struct CompatEntry {
    #[serde(flatten)]
    report: CompatReport,
    /// What was binned: the top-label confidence, or p(class 1) of a binary problem.
    target: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The smooth ECE, debiased L2 ECE and KS error, top-label and class-wise.
#[derive(Serialize)]
struct ExtraReport {
    top_label: Errors,
    classwise: Errors,
}

fn parse_libraries(list: &str) -> Result<Vec<Library>> {
    if list.trim() == "all" {
        return Ok(Library::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in list.split(',').filter(|s| !s.trim().is_empty()) {
        let l = Library::parse(name).context("--ece-compat")?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        bail!("--ece-compat: give at least one of torchmetrics, netcal, sklearn (or all)");
    }
    Ok(out)
}

/// Each library's ECE of the scores. `conf`/`hit` are the top-label confidences; for a
/// binary problem netcal and scikit-learn bin p(class 1) against the label, as they do when
/// given such data.
fn compat_entries(
    libs: &[Library],
    bins: Option<usize>,
    (conf, hit): (&[f32], &[bool]),
    probs: &[f32],
    labels: &[i64],
    classes: usize,
) -> Result<Vec<CompatEntry>> {
    let binary = (classes == 2).then(|| {
        let p1: Vec<f32> = probs.iter().skip(1).step_by(2).copied().collect();
        let y1: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
        (p1, y1)
    });
    let mut distinct: Vec<i64> = labels.iter().take(1 << 20).copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let few_labels = distinct.len() <= 2 && labels.iter().all(|y| distinct.contains(y));
    let mut out = Vec::new();
    for &lib in libs {
        let n = bins.unwrap_or(lib.default_bins());
        let (c, h, target, note) = match (&binary, lib) {
            (Some((p1, y1)), Library::Netcal | Library::Sklearn) => {
                (p1.as_slice(), y1.as_slice(), "p(class 1)", None)
            }
            (Some(_), Library::Torchmetrics) => (
                conf,
                hit,
                "top-label",
                Some(
                    "multiclass_calibration_error with num_classes=2;                      binary_calibration_error would bin p(class 1)"
                        .to_string(),
                ),
            ),
            (None, Library::Netcal) if few_labels => (
                conf,
                hit,
                "top-label",
                Some(format!(
                    "the labels take at most 2 values: netcal would treat the scores as binary                      and reject {classes} columns"
                )),
            ),
            (None, _) => (conf, hit, "top-label", None),
        };
        out.push(CompatEntry {
            report: compat::compat(lib, c, h, n)?,
            target,
            note,
        });
    }
    Ok(out)
}

#[derive(Serialize)]
struct SegmentationReport {
    kind: &'static str,
    source: String,
    ignore_index: Option<i64>,
    batch_size: usize,
    metrics: SegmentationMetrics,
    plots: Vec<PathBuf>,
}

impl EvalArgs {
    /// The number of bins: `--bins`, or 15.
    pub fn bins(&self) -> usize {
        self.num_bins.unwrap_or(15)
    }

    /// The bootstrap intervals `--bootstrap`, `--seed` and `--level` ask for, of the samples
    /// `acc` kept.
    fn bootstrap_of(&self, acc: &ClassificationAccumulator) -> Result<Option<BootstrapResult>> {
        self.bootstrap
            .map(|replicates| {
                bootstrap(
                    acc,
                    &BootstrapOptions {
                        replicates,
                        seed: self.seed,
                        level: self.level,
                    },
                )
            })
            .transpose()
            .map_err(Into::into)
    }
}

/// Runs `mbls eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let compat_libs = match &args.ece_compat {
        Some(list) => parse_libraries(list)?,
        None => Vec::new(),
    };
    if (args.extra || !compat_libs.is_empty())
        && (args.compare.is_some() || args.calibrator.is_some())
    {
        bail!(
            "--ece-compat and --extra report one set of scores; not with --compare or --calibrator"
        );
    }
    if args.bins() == 0 {
        bail!("--bins must be at least 1");
    }
    // checked before any input is read (the library refuses it too)
    let max_reps = mbls_metrics::MAX_REPLICATES;
    if let Some(reps) = args.bootstrap.filter(|&r| r > max_reps) {
        bail!("--bootstrap {reps}: at most {max_reps} replicates are supported");
    }
    if !args.val.is_empty() && args.temperature.is_none() && args.compare.is_none() {
        bail!("--val is used by --temperature or --compare; give one of them");
    }
    if args.compare.is_some() || args.calibrator.is_some() {
        return run_calibrated(&args);
    }
    if let Some(stream) = open_dense_stream(&args.inputs)? {
        return run_dense(&args, stream);
    }
    let kind = if args.probs {
        ScoreKind::Probabilities
    } else {
        ScoreKind::Logits
    };
    let streamed = with_rows(
        &args.inputs,
        &args.logits_key,
        Some(&args.labels_key),
        |rows| classify(&args, &compat_libs, kind, rows),
    )?;
    let Some(Classified {
        source,
        ignored,
        metrics,
        bootstrap: boot,
        temperature,
        ece_compat,
        extra,
        ood,
    }) = streamed
    else {
        // dense scores in an .npz: in memory
        let data = load(&args.inputs, &args.logits_key, &args.labels_key)?;
        return run_dense(&args, DenseSource::Memory(data));
    };
    let mut plots = Vec::new();
    if let Some(dir) = &args.plot {
        plots.extend(plot(
            dir,
            "test",
            &format!("{} ({})", file_title(&args.inputs), "before scaling"),
            &metrics,
        )?);
        if let Some(t) = &temperature {
            plots.extend(plot(
                dir,
                "test_ts",
                &format!("{} (T = {:.3})", file_title(&args.inputs), t.temperature),
                &t.after,
            )?);
        }
    }
    let report = ClassificationReport {
        kind: "classification",
        source,
        scores: kind,
        ignored,
        metrics,
        bootstrap: boot,
        temperature,
        ece_compat,
        extra,
        ood,
        plots,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_classification(&report, &args);
    }
    Ok(())
}

fn file_title(inputs: &[PathBuf]) -> String {
    inputs[0]
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn drop_ignored(data: Loaded, ignore: Option<i64>) -> (Vec<f32>, Vec<i64>, u64) {
    let Some(ig) = ignore else {
        return (data.scores, data.labels, 0);
    };
    if !data.labels.contains(&ig) {
        return (data.scores, data.labels, 0);
    }
    let c = data.classes();
    let mut s = Vec::with_capacity(data.scores.len());
    let mut l = Vec::with_capacity(data.labels.len());
    for (row, &y) in data.scores.chunks_exact(c).zip(&data.labels) {
        if y != ig {
            s.extend_from_slice(row);
            l.push(y);
        }
    }
    let ignored = (data.labels.len() - l.len()) as u64;
    (s, l, ignored)
}

/// What [`classify`] measured on the streamed test scores.
struct Classified {
    source: String,
    ignored: u64,
    metrics: ClassificationMetrics,
    bootstrap: Option<BootstrapResult>,
    temperature: Option<TemperatureReport>,
    ece_compat: Vec<CompatEntry>,
    extra: Option<ExtraReport>,
    ood: Option<OodEntry>,
}

/// Drops the rows of `scores` (`classes` wide) whose label is `ignore`; returns how many.
fn drop_rows(scores: &mut Vec<f32>, labels: &mut Vec<i64>, classes: usize, ignore: i64) -> u64 {
    if !labels.contains(&ignore) {
        return 0;
    }
    let mut kept = 0;
    for i in 0..labels.len() {
        if labels[i] != ignore {
            scores.copy_within(i * classes..(i + 1) * classes, kept * classes);
            labels[kept] = labels[i];
            kept += 1;
        }
    }
    let dropped = (labels.len() - kept) as u64;
    scores.truncate(kept * classes);
    labels.truncate(kept);
    dropped
}

/// Every classification metric `mbls eval` reports, from the test scores read a chunk at a
/// time: memory holds per-sample confidences (and, with --bootstrap, per-sample NLL), never
/// the logits, except for --ece-compat and --extra, whose class-wise estimators need every
/// probability.
fn classify(
    args: &EvalArgs,
    libs: &[Library],
    kind: ScoreKind,
    rows: &mut Rows<'_>,
) -> Result<Classified> {
    let c = rows.classes();
    let source = rows.source().to_string();
    let opts = ClassificationOptions {
        num_bins: args.bins(),
        kind,
        keep_samples: args.bootstrap.is_some(),
        keep_confidences: true,
    };
    let mut acc = ClassificationAccumulator::new(c, opts)?;
    // the temperature is fitted on --val before the test scores are read
    let fit = match args.temperature {
        Some(method) => Some(fit_temperature(args, method, c)?),
        None => None,
    };
    let mut acc_ts = match &fit {
        Some(_) => Some(ClassificationAccumulator::new(
            c,
            ClassificationOptions {
                num_bins: args.bins(),
                ..Default::default()
            },
        )?),
        None => None,
    };
    let keep_probs = !libs.is_empty() || args.extra;
    let (mut probs, mut kept) = (Vec::new(), Vec::new());
    let mut ood_in = args.ood.as_ref().map(|_| OodScores::default());
    let mut ignored = 0u64;
    rows.for_each_chunk(|s, y| {
        if let Some(ig) = args.ignore_index {
            ignored += drop_rows(s, y, c, ig);
        }
        if y.is_empty() {
            return Ok(());
        }
        acc.update(s, y).with_context(|| source.clone())?;
        if let (Some(a), Some((t, ..))) = (&mut acc_ts, &fit) {
            a.update(&scale_logits(s, *t), y)?;
        }
        if let Some(o) = &mut ood_in {
            o.update(s, c, kind, "in-distribution scores")?;
        }
        if keep_probs {
            probs.extend(mbls_metrics::probabilities(s, c, kind));
            kept.extend_from_slice(y);
        }
        Ok(())
    })?;
    if acc.samples() == 0 {
        bail!("{source}: every sample has the ignore label");
    }
    let metrics = acc.finish()?;
    let bootstrap = args.bootstrap_of(&acc)?;
    let mut ece_compat = Vec::new();
    let mut extra = None;
    if keep_probs {
        let store = acc.confidences();
        let (conf, hit): (Vec<f32>, Vec<bool>) = (0..store.len()).map(|i| store.get(i)).unzip();
        ece_compat = compat_entries(libs, args.num_bins, (&conf, &hit), &probs, &kept, c)?;
        if args.extra {
            extra = Some(ExtraReport {
                top_label: estimators::errors(&conf, &hit)?,
                classwise: estimators::classwise_errors(&probs, &kept, c)?,
            });
        }
    }
    let ood = match (&args.ood, &ood_in) {
        (Some(path), Some(inside)) => {
            let out = with_rows(std::slice::from_ref(path), &args.logits_key, None, |o| {
                if o.classes() != c {
                    bail!(
                        "{}: the OOD logits have {} classes but {source} has {c}",
                        o.source(),
                        o.classes()
                    );
                }
                let mut outside = OodScores::default();
                let from = o.source().to_string();
                o.for_each_chunk(|s, _| {
                    outside
                        .update(s, c, kind, "out-of-distribution scores")
                        .with_context(|| from.clone())
                })?;
                Ok(outside)
            })?
            .ok_or_else(|| anyhow::anyhow!("{}: OOD scores must be N x C", path.display()))?;
            Some(OodEntry {
                source: path.display().to_string(),
                report: mbls_metrics::ood::report(inside, &out)?,
            })
        }
        _ => None,
    };
    let temperature = match (fit, acc_ts) {
        (Some((t, method, before, vafter)), Some(a)) => Some(TemperatureReport {
            method,
            temperature: t,
            val_samples: before.samples,
            val_ece_before: before.ece,
            val_nll_before: before.nll,
            val_ece_after: vafter.ece,
            val_nll_after: vafter.nll,
            after: a.finish()?,
        }),
        _ => None,
    };
    Ok(Classified {
        source,
        ignored,
        metrics,
        bootstrap,
        temperature,
        ece_compat,
        extra,
        ood,
    })
}

/// Fits the temperature on --val: `(T, method, val metrics before, val metrics after)`.
fn fit_temperature(
    args: &EvalArgs,
    method: TempMethod,
    classes: usize,
) -> Result<(
    f64,
    TempMethod,
    ClassificationMetrics,
    ClassificationMetrics,
)> {
    if args.probs {
        bail!("--temperature needs logits, not probabilities (--probs)");
    }
    let val =
        load(&args.val, &args.logits_key, &args.labels_key).context("validation set (--val)")?;
    if val.is_dense() {
        bail!(
            "{}: temperature scaling of dense (segmentation) logits is not supported",
            val.source
        );
    }
    if val.classes() != classes {
        bail!(
            "{}: validation logits have {} classes but the test logits have {}",
            val.source,
            val.classes(),
            classes
        );
    }
    let vsrc = val.source.clone();
    let (vs, vl, _) = drop_ignored(val, args.ignore_index);
    let vopts = ClassificationOptions {
        num_bins: args.bins(),
        keep_confidences: false,
        ..Default::default()
    };
    let before =
        mbls_metrics::evaluate(&vs, &vl, classes, vopts.clone()).with_context(|| vsrc.clone())?;
    let t = match method {
        TempMethod::Grid => {
            grid_search_temperature(&vs, &vl, classes, args.bins())?.temperature_ece
        }
        TempMethod::Nll => fit_temperature_nll(&vs, &vl, classes)?.temperature,
    };
    let vafter = mbls_metrics::evaluate(&scale_logits(&vs, t), &vl, classes, vopts)?;
    Ok((t, method, before, vafter))
}

/// Logits and labels of a classification set, ready for a calibrator: ignored labels
/// dropped, probabilities (with `--probs`) turned into log-probabilities.
pub struct ClassificationSet {
    /// Where they came from, for messages.
    pub source: String,
    /// Row-major N x C logits (or log-probabilities).
    pub logits: Vec<f32>,
    /// N labels.
    pub labels: Vec<i64>,
    /// C.
    pub classes: usize,
    /// Samples dropped for the ignore label.
    pub ignored: u64,
}

/// Loads a classification set for the calibrators (dense inputs are refused).
pub fn load_classification(paths: &[PathBuf], keys: &InputKeys) -> Result<ClassificationSet> {
    let data = load(paths, &keys.logits_key, &keys.labels_key)?;
    if data.is_dense() {
        bail!(
            "{}: calibrators take classification logits (N x C); these are dense, shape {:?}",
            data.source,
            data.shape
        );
    }
    let classes = data.classes();
    let source = data.source.clone();
    let (mut logits, labels, ignored) = drop_ignored(data, keys.ignore_index);
    if labels.is_empty() {
        bail!("{source}: no samples left (every label is the ignore index)");
    }
    if keys.probs {
        for (i, row) in logits.chunks_exact(classes).enumerate() {
            let sum: f32 = row.iter().sum();
            if row.iter().any(|p| !(0.0..=1.0).contains(p)) || (sum - 1.0).abs() > 1e-3 {
                bail!(
                    "{source}: row {i} is not a probability distribution (sum {sum}); \
                     drop --probs for logits"
                );
            }
        }
        for p in &mut logits {
            *p = p.max(1e-30).ln();
        }
    }
    Ok(ClassificationSet {
        source,
        logits,
        labels,
        classes,
        ignored,
    })
}

fn keys_of(args: &EvalArgs) -> InputKeys {
    InputKeys {
        probs: args.probs,
        ignore_index: args.ignore_index,
        logits_key: args.logits_key.clone(),
        labels_key: args.labels_key.clone(),
    }
}

/// Metrics of calibrated scores.
fn metrics_of(
    out: &Calibrated,
    labels: &[i64],
    classes: usize,
    args: &EvalArgs,
) -> Result<(ClassificationMetrics, Option<BootstrapResult>)> {
    let opts = ClassificationOptions {
        num_bins: args.bins(),
        kind: out.kind,
        keep_samples: args.bootstrap.is_some(),
        keep_confidences: true,
    };
    let mut acc = ClassificationAccumulator::new(classes, opts)?;
    acc.update(&out.scores, labels)?;
    let m = acc.finish()?;
    let b = args.bootstrap_of(&acc)?;
    Ok((m, b))
}

#[derive(Serialize)]
struct CompareRow {
    method: String,
    val_nll_before: Option<f64>,
    val_nll_after: Option<f64>,
    iterations: Option<usize>,
    metrics: ClassificationMetrics,
    bootstrap: Option<BootstrapResult>,
}

#[derive(Serialize)]
struct CalibratedReport {
    kind: &'static str,
    source: String,
    val_source: Option<String>,
    calibrator: Option<PathBuf>,
    ignored: u64,
    rows: Vec<CompareRow>,
}

/// `--calibrator FILE` or `--compare LIST`: one row for the uncalibrated logits, then one
/// per calibrator.
fn run_calibrated(args: &EvalArgs) -> Result<()> {
    let keys = keys_of(args);
    let test = load_classification(&args.inputs, &keys)?;
    let identity = Calibrated {
        scores: test.logits.clone(),
        kind: ScoreKind::Logits,
    };
    let (m0, b0) = metrics_of(&identity, &test.labels, test.classes, args)?;
    drop(identity);
    let mut rows = vec![CompareRow {
        method: "none".into(),
        val_nll_before: None,
        val_nll_after: None,
        iterations: None,
        metrics: m0,
        bootstrap: b0,
    }];
    let mut val_source = None;
    let mut cals: Vec<Calibrator> = Vec::new();
    if let Some(path) = &args.calibrator {
        let cal = crate::calibrate_cmd::load_calibrator(path)?;
        crate::calibrate_cmd::check_classes(&cal, path, &test)?;
        cals.push(cal);
    }
    if let Some(list) = &args.compare {
        let methods: Vec<CalibrationMethod> = list
            .split(',')
            .map(|m| CalibrationMethod::parse(m.trim()))
            .collect::<Result<_, _>>()
            .context("--compare")?;
        if methods.is_empty() {
            bail!("--compare: give at least one method");
        }
        let val = load_classification(&args.val, &keys).context("validation set (--val)")?;
        if val.classes != test.classes {
            bail!(
                "{}: validation logits have {} classes but the test logits have {}",
                val.source,
                val.classes,
                test.classes
            );
        }
        let opts = crate::calibrate_cmd::fit_options(
            args.bins(),
            None,
            None,
            FitOptions::default().max_iter,
        );
        for m in methods {
            let cal = calibrate::fit(m, &val.logits, &val.labels, val.classes, &opts)
                .with_context(|| format!("{}: fitting {m}", val.source))?;
            cals.push(cal);
        }
        val_source = Some(val.source);
    }
    for cal in cals {
        let out = cal.apply(&test.logits)?;
        let (m, b) = metrics_of(&out, &test.labels, test.classes, args)?;
        rows.push(CompareRow {
            method: cal.method().name().into(),
            val_nll_before: Some(cal.fit.nll_before),
            val_nll_after: Some(cal.fit.nll_after),
            iterations: Some(cal.fit.iterations),
            metrics: m,
            bootstrap: b,
        });
    }
    if let Some(dir) = &args.plot {
        let mut plots = Vec::new();
        for r in &rows {
            let stem = format!("test_{}", r.method);
            let title = format!("{} ({})", file_title(&args.inputs), r.method);
            plots.extend(plot(dir, &stem, &title, &r.metrics)?);
        }
        if !args.json {
            for p in &plots {
                println!("wrote {}", p.display());
            }
        }
    }
    let report = CalibratedReport {
        kind: "calibration",
        source: test.source,
        val_source,
        calibrator: args.calibrator.clone(),
        ignored: test.ignored,
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}", report.source);
    if let Some(v) = &report.val_source {
        println!("calibrators fitted on {v}");
    }
    if let Some(c) = &report.calibrator {
        println!("calibrator {}", c.display());
    }
    let first = &report.rows[0].metrics;
    println!(
        "samples {}  classes {}  bins {}{}",
        first.samples,
        first.classes,
        first.num_bins,
        if report.ignored > 0 {
            format!("  ignored {}", report.ignored)
        } else {
            String::new()
        }
    );
    println!();
    let cell = |v: f64, iv: Option<&mbls_metrics::Interval>| match iv {
        Some(iv) => format!("{} [{}, {}]", f5(v), f5(iv.lower), f5(iv.upper)),
        None => f5(v),
    };
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            let m = &r.metrics;
            let b = r.bootstrap.as_ref();
            vec![
                r.method.clone(),
                cell(m.acc, b.map(|b| &b.acc)),
                cell(m.nll, b.map(|b| &b.nll)),
                cell(m.ece, b.map(|b| &b.ece)),
                m.aece
                    .map_or(String::new(), |v| cell(v, b.map(|b| &b.aece))),
                f5(m.cece),
                f5(m.brier),
                r.val_nll_after.map_or(String::new(), f5),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "method", "acc", "nll", "ece", "aece", "cece", "brier", "val nll"
            ],
            &rows
        )
    );
    if let Some(b) = &report.rows[0].bootstrap {
        println!();
        println!(
            "[..]: {:.0}% bootstrap percentile intervals, {} replicates, seed {}",
            b.level * 100.0,
            b.replicates,
            args.seed
        );
    }
    Ok(())
}

fn plot(dir: &Path, stem: &str, title: &str, m: &ClassificationMetrics) -> Result<Vec<PathBuf>> {
    let r = mbls_plot::Reliability::from_metrics(m, title);
    Ok(mbls_plot::write_all(&r, dir, stem)?)
}

fn metric_rows(m: &ClassificationMetrics) -> Vec<(&'static str, Option<f64>)> {
    let ls = m.logits.as_ref();
    vec![
        ("acc", Some(m.acc)),
        ("acc_5", m.acc_5),
        ("macc", Some(m.macc)),
        ("nll", Some(m.nll)),
        ("ece", Some(m.ece)),
        ("aece", m.aece),
        ("aece_corrected", m.aece_corrected),
        ("cece", Some(m.cece)),
        ("mce", Some(m.mce)),
        ("brier", Some(m.brier)),
        ("mean_confidence", Some(m.mean_confidence)),
        ("mean_diffs", ls.map(|l| l.mean_diffs)),
        ("max_diffs", ls.map(|l| l.max_diffs)),
        ("margin", ls.map(|l| l.margin)),
    ]
}

fn print_classification(r: &ClassificationReport, args: &EvalArgs) {
    let m = &r.metrics;
    println!("{}", r.source);
    println!(
        "samples {}  classes {}  bins {}  scores {}{}",
        m.samples,
        m.classes,
        m.num_bins,
        if args.probs {
            "probabilities"
        } else {
            "logits"
        },
        if r.ignored > 0 {
            format!("  ignored {}", r.ignored)
        } else {
            String::new()
        }
    );
    println!();
    let mut headers = vec!["metric", "value"];
    let ci_header;
    if let Some(b) = &r.bootstrap {
        ci_header = format!("{:.0}% CI ({} boot.)", b.level * 100.0, b.replicates);
        headers.push(&ci_header);
    }
    let mut after_rows = None;
    if let Some(t) = &r.temperature {
        headers.push("after TS");
        after_rows = Some(metric_rows(&t.after));
    }
    let mut rows = Vec::new();
    for (i, (name, v)) in metric_rows(m).into_iter().enumerate() {
        let Some(v) = v else { continue };
        let mut row = vec![name.to_string(), f5(v)];
        if let Some(b) = &r.bootstrap {
            let iv = match name {
                "ece" => Some(&b.ece),
                "aece" => Some(&b.aece),
                "nll" => Some(&b.nll),
                "acc" => Some(&b.acc),
                _ => None,
            };
            row.push(iv.map_or(String::new(), |iv| {
                format!("[{}, {}]", f5(iv.lower), f5(iv.upper))
            }));
        }
        if let Some(a) = &after_rows {
            row.push(a[i].1.map_or(String::new(), f5));
        }
        rows.push(row);
    }
    print!("{}", table(&headers, &rows));
    if let Some(t) = &r.temperature {
        println!();
        println!(
            "temperature ({}): T = {:.4}, fitted on {} validation samples: ECE {} -> {}, NLL {} -> {}",
            match t.method {
                TempMethod::Grid => "grid search, lowest ECE",
                TempMethod::Nll => "NLL fit",
            },
            t.temperature,
            t.val_samples,
            f5(t.val_ece_before),
            f5(t.val_ece_after),
            f5(t.val_nll_before),
            f5(t.val_nll_after)
        );
    }
    if !r.ece_compat.is_empty() {
        println!();
        println!("ECE as other libraries compute it");
        let opt = |v: Option<f64>| v.map_or(String::new(), f5);
        let rows: Vec<Vec<String>> = r
            .ece_compat
            .iter()
            .map(|e| {
                let c = &e.report;
                vec![
                    format!("{} {}", c.library.name(), c.version),
                    c.num_bins.to_string(),
                    e.target.to_string(),
                    f5(c.ece),
                    opt(c.mce),
                    opt(c.l2),
                    opt(c.ace),
                    opt(c.ece_equal_mass),
                ]
            })
            .collect();
        let headers = [
            "library",
            "bins",
            "binned",
            "ece",
            "mce",
            "l2",
            "ace",
            "equal-mass",
        ];
        print!("{}", table(&headers, &rows));
        for e in r.ece_compat.iter().filter(|e| e.note.is_some()) {
            println!(
                "note ({}): {}",
                e.report.library.name(),
                e.note.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(x) = &r.extra {
        println!();
        let rows = [
            ("smooth ECE", x.top_label.smece, x.classwise.smece),
            (
                "  bandwidth",
                x.top_label.smece_sigma,
                x.classwise.smece_sigma,
            ),
            (
                "debiased L2 ECE",
                x.top_label.l2_debiased,
                x.classwise.l2_debiased,
            ),
            (
                "plug-in L2 ECE",
                x.top_label.l2_plugin,
                x.classwise.l2_plugin,
            ),
            ("KS error", x.top_label.ks, x.classwise.ks),
        ]
        .iter()
        .map(|(n, a, b)| vec![n.to_string(), f5(*a), f5(*b)])
        .collect::<Vec<_>>();
        print!("{}", table(&["error", "top-label", "class-wise"], &rows));
    }
    if let Some(o) = &r.ood {
        println!();
        println!(
            "OOD detection: {} in-distribution vs {} samples of {}",
            o.report.samples_in, o.report.samples_out, o.source
        );
        let row = |name: &str, d: &mbls_metrics::ood::Detection| {
            vec![
                name.to_string(),
                f5(d.auroc),
                f5(d.aupr_in),
                f5(d.aupr_out),
                f5(d.fpr_at_95_tpr),
            ]
        };
        let rows = [
            row("max probability", &o.report.max_confidence),
            row("entropy", &o.report.entropy),
        ];
        print!(
            "{}",
            table(
                &["score", "auroc", "aupr_in", "aupr_out", "fpr@95tpr"],
                &rows
            )
        );
    }
    for p in &r.plots {
        println!("wrote {}", p.display());
    }
}

fn run_dense(args: &EvalArgs, mut data: DenseSource) -> Result<()> {
    if args.ece_compat.is_some() || args.extra || args.ood.is_some() {
        bail!(
            "{}: --ece-compat, --extra and --ood take classification scores (N x C), not dense ones",
            data.source()
        );
    }
    if args.probs {
        bail!(
            "{}: --probs is not supported for dense (segmentation) inputs; pass logits",
            data.source()
        );
    }
    if args.temperature.is_some() {
        bail!(
            "{}: --temperature is not supported for dense (segmentation) inputs",
            data.source()
        );
    }
    if args.bootstrap.is_some() {
        bail!(
            "{}: --bootstrap is not supported for dense (segmentation) inputs",
            data.source()
        );
    }
    if args.seg_batch == 0 {
        bail!("--seg-batch must be at least 1");
    }
    let n = data.shape()[0];
    let c = data.shape()[1];
    let hw: usize = data.shape()[2..].iter().product();
    let ignore = Some(args.ignore_index.unwrap_or(255));
    let mut acc = SegmentationAccumulator::new(
        c,
        SegmentationOptions {
            num_bins: args.bins(),
            ignore_index: ignore,
            exclude_background: !args.include_background,
            global_adaptive: true,
            calibration: true,
        },
    )?;
    let mut start = 0;
    while start < n {
        let end = (start + args.seg_batch).min(n);
        let (x, y) = data.batch(start, end)?;
        acc.update_batch(&x, [end - start, c, hw, 1], &y)
            .with_context(|| format!("{}: images {start}..{end}", data.source()))?;
        start = end;
    }
    let metrics = acc.finish()?;
    let mut plots = Vec::new();
    if let (Some(dir), Some(g)) = (&args.plot, &metrics.calibration_global) {
        plots = plot(
            dir,
            "pixels",
            &format!("{} (pixels)", file_title(&args.inputs)),
            g,
        )?;
    }
    let report = SegmentationReport {
        kind: "segmentation",
        source: data.source().to_string(),
        ignore_index: ignore,
        batch_size: args.seg_batch,
        metrics,
        plots,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let m = &report.metrics;
    println!("{}", report.source);
    println!(
        "images {}  classes {}  ignore {:?}  bins {}  batch {}",
        m.images,
        m.classes,
        report.ignore_index,
        args.bins(),
        args.seg_batch
    );
    println!();
    let rows = vec![
        vec!["miou".into(), f5(m.miou)],
        vec!["mdsc".into(), f5(m.mdsc)],
        vec!["macc".into(), f5(m.macc)],
        vec!["miou_present".into(), f5(m.miou_present)],
        vec!["pixel_accuracy".into(), f5(m.pixel_accuracy)],
    ];
    print!("{}", table(&["segmentation (classes 1..)", "value"], &rows));
    println!();
    let per: Vec<Vec<String>> = m
        .per_class
        .iter()
        .map(|s| {
            vec![
                s.class.to_string(),
                format!("{:.4}", s.iou),
                format!("{:.4}", s.dice),
                format!("{:.4}", s.acc),
                s.label_pixels.to_string(),
            ]
        })
        .collect();
    print!("{}", table(&["class", "iou", "dsc", "acc", "pixels"], &per));
    if let (Some(r), Some(g)) = (&m.calibration_reference, &m.calibration_global) {
        println!();
        let bg = if args.include_background {
            "incl."
        } else {
            "excl."
        };
        println!(
            "pixel calibration ({} pixels, background {bg}, ignore dropped)",
            r.pixels
        );
        let rows = vec![
            vec!["nll".into(), f5(r.nll), f5(g.nll)],
            vec!["ece".into(), f5(r.ece), f5(g.ece)],
            vec!["aece".into(), f5(r.aece), g.aece.map_or(String::new(), f5)],
            vec!["cece".into(), f5(r.cece), f5(g.cece)],
            vec!["mce".into(), String::new(), f5(g.mce)],
            vec!["brier".into(), String::new(), f5(g.brier)],
            vec!["acc".into(), String::new(), f5(g.acc)],
        ];
        print!(
            "{}",
            table(&["metric", "per-batch (reference)", "global"], &rows)
        );
    }
    for p in &report.plots {
        println!("wrote {}", p.display());
    }
    Ok(())
}
