//! `mbls calibrate fit` and `mbls calibrate apply`: post-hoc calibrators saved as JSON.

use crate::eval::{ClassificationSet, load_classification};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mbls_metrics::calibrate::{Calibrator, FitOptions, Method, fit};
use mbls_npy::NpyArray;
use std::path::{Path, PathBuf};

/// Arguments of `mbls calibrate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Methods: ts (the reference's grid on validation ECE), ts-nll, vector, \
    matrix, dirichlet, hist, isotonic, platt (binary), beta (binary).\n\nExamples:\n  \
    mbls calibrate fit --method matrix --val val.npz -o cal.json\n  \
    mbls eval test.npz --calibrator cal.json\n  \
    mbls calibrate apply --calibrator cal.json test.npz -o test_calibrated.npz"
)]
pub struct CalibrateArgs {
    #[command(subcommand)]
    command: CalibrateCommand,
}

#[derive(Debug, Subcommand)]
enum CalibrateCommand {
    /// Fit a calibrator on validation logits and save it as JSON.
    Fit(FitArgs),
    /// Apply a saved calibrator to logits and write the calibrated scores as .npz.
    Apply(ApplyArgs),
}

/// Where the logits come from, shared by the subcommands.
#[derive(Debug, Args, Clone)]
pub struct InputKeys {
    /// The scores are probabilities, not logits: they are turned into log-probabilities
    /// (`ln max(p, 1e-30)`) before fitting or applying, which every method accepts.
    #[arg(long)]
    pub probs: bool,
    /// Label value to drop before fitting.
    #[arg(long, value_name = "LABEL", allow_negative_numbers = true)]
    pub ignore_index: Option<i64>,
    /// Name of the logits array in .npz inputs.
    #[arg(long, default_value = "logits")]
    pub logits_key: String,
    /// Name of the labels array in .npz inputs.
    #[arg(long, default_value = "labels")]
    pub labels_key: String,
}

#[derive(Debug, Args)]
struct FitArgs {
    /// Calibration method.
    #[arg(long, value_name = "METHOD")]
    method: String,
    /// Validation logits: one .npz or two .npy files.
    #[arg(long, required = true, num_args = 1..=2, value_name = "FILE")]
    val: Vec<PathBuf>,
    /// Output JSON file.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Bins of `hist`, and of the ECE that `ts` minimises.
    #[arg(long = "bins", default_value_t = 15, value_name = "N")]
    num_bins: usize,
    /// ODIR weight of the off-diagonal weights (matrix, dirichlet; default 1e-3).
    #[arg(long, value_name = "X")]
    reg_lambda: Option<f64>,
    /// ODIR weight of the intercepts (vector: default 0; matrix, dirichlet: default λ).
    #[arg(long, value_name = "X")]
    reg_mu: Option<f64>,
    /// Most L-BFGS iterations (vector, matrix, dirichlet).
    #[arg(long, default_value_t = FitOptions::default().max_iter, value_name = "N")]
    max_iter: usize,
    #[command(flatten)]
    keys: InputKeys,
    /// Print the fitted calibrator as JSON too.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The calibrator (JSON from `mbls calibrate fit`).
    #[arg(long, value_name = "FILE")]
    calibrator: PathBuf,
    /// Logits: one .npz or two .npy files (logits, labels).
    #[arg(required = true, num_args = 1..=2, value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Output .npz: `logits` (scaling methods) or `probs` (hist, isotonic), and `labels`.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    keys: InputKeys,
}

/// Runs `mbls calibrate`.
pub fn run(args: CalibrateArgs) -> Result<()> {
    match args.command {
        CalibrateCommand::Fit(a) => run_fit(a),
        CalibrateCommand::Apply(a) => run_apply(a),
    }
}

/// The fit options of a command line.
pub fn fit_options(
    num_bins: usize,
    reg_lambda: Option<f64>,
    reg_mu: Option<f64>,
    max_iter: usize,
) -> FitOptions {
    FitOptions {
        num_bins,
        reg_lambda,
        reg_mu,
        max_iter,
        ..FitOptions::default()
    }
}

fn run_fit(a: FitArgs) -> Result<()> {
    let method = Method::parse(&a.method)?;
    let opts = fit_options(a.num_bins, a.reg_lambda, a.reg_mu, a.max_iter);
    let val = load_classification(&a.val, &a.keys).context("validation set (--val)")?;
    let cal = fit(method, &val.logits, &val.labels, val.classes, &opts)
        .with_context(|| format!("{}: fitting {method}", val.source))?;
    save(&cal, &a.output)?;
    println!(
        "{method}: fitted on {} samples of {} classes ({}): NLL {:.5} -> {:.5}{}",
        cal.fit.samples,
        cal.classes,
        val.source,
        cal.fit.nll_before,
        cal.fit.nll_after,
        if cal.fit.iterations > 0 {
            format!(", {} iterations", cal.fit.iterations)
        } else {
            String::new()
        }
    );
    if a.json {
        println!("{}", cal.to_json());
    }
    println!("wrote {}", a.output.display());
    Ok(())
}

/// Writes `cal` as JSON, atomically.
pub fn save(cal: &Calibrator, path: &Path) -> Result<()> {
    let text = cal.to_json();
    mbls_base::fs::write_atomic(
        path,
        |p, e| anyhow::anyhow!("{}: {e}", p.display()),
        |w| {
            use std::io::Write;
            w.write_all(text.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .with_context(|| path.display().to_string())
        },
    )
}

/// Reads and validates a calibrator file (bounded: a calibrator of 1,000 classes is a few
/// tens of MB at most).
pub fn load_calibrator(path: &Path) -> Result<Calibrator> {
    const MAX: u64 = 1 << 30;
    let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
    if !meta.is_file() {
        bail!("{}: not a file", path.display());
    }
    if meta.len() > MAX {
        bail!(
            "{}: {} bytes is too large for a calibrator file",
            path.display(),
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Calibrator::from_json(&text).with_context(|| path.display().to_string())
}

/// Checks that a calibrator fits a set of logits.
pub fn check_classes(cal: &Calibrator, path: &Path, set: &ClassificationSet) -> Result<()> {
    if cal.classes != set.classes {
        bail!(
            "{}: the calibrator ({}) was fitted on {} classes but {} has {}",
            path.display(),
            cal.method(),
            cal.classes,
            set.source,
            set.classes
        );
    }
    Ok(())
}

fn run_apply(a: ApplyArgs) -> Result<()> {
    let cal = load_calibrator(&a.calibrator)?;
    let set = load_classification(&a.inputs, &a.keys)?;
    check_classes(&cal, &a.calibrator, &set)?;
    let out = cal.apply(&set.logits).with_context(|| set.source.clone())?;
    let n = set.labels.len();
    let key = match out.kind {
        mbls_metrics::ScoreKind::Logits => "logits",
        mbls_metrics::ScoreKind::Probabilities => "probs",
    };
    let scores = NpyArray::from_slice(&[n, set.classes], &out.scores)?;
    let labels = NpyArray::from_slice(&[n], &set.labels)?;
    mbls_npy::write_npz(&a.output, &[(key, &scores), ("labels", &labels)])?;
    println!(
        "{}: {} samples through {} -> {} ({key}, labels)",
        set.source,
        n,
        cal.method(),
        a.output.display()
    );
    Ok(())
}
