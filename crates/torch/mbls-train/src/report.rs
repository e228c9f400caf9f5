//! The end of a run: Test and TestPT results, the post-hoc temperature, the printed summary
//! table, `summary.json` and the reliability diagrams.

use crate::TrainError;
use crate::meter::Metrics;
use crate::runlog::RunFolder;
use mbls_metrics::ClassificationMetrics;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The metrics of one evaluated phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// `Val`, `Test` or `TestPT`.
    pub phase: String,
    /// Samples evaluated.
    pub samples: u64,
    /// Mean of the per-batch loss terms.
    pub loss: Vec<(String, f64)>,
    /// Every metric, in report order (`acc`, `acc_5`, `macc`, `nll`, `ece`, `aece`, `cece`,
    /// logit statistics).
    pub metrics: Vec<(String, f64)>,
}

impl PhaseResult {
    pub(crate) fn new(phase: &str, samples: u64, loss: Vec<(String, f64)>, m: &Metrics) -> Self {
        PhaseResult {
            phase: phase.to_string(),
            samples,
            loss,
            metrics: m.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// The value of metric `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .chain(&self.loss)
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

/// The post-hoc temperature fitted on the validation split.
#[derive(Debug, Clone, Serialize)]
pub struct TemperatureResult {
    /// The reference's grid search (T = 0.1 .. 10.0, lowest validation ECE): the one applied.
    pub temperature: f64,
    /// Validation samples it was fitted on.
    pub val_samples: u64,
    /// Validation ECE and NLL before and after.
    pub val_ece_before: f64,
    /// Validation ECE after scaling by `temperature`.
    pub val_ece_after: f64,
    /// Validation NLL before.
    pub val_nll_before: f64,
    /// Validation NLL after scaling by `temperature`.
    pub val_nll_after: f64,
    /// Our continuous NLL fit on the same logits, reported beside it.
    pub nll_fit_temperature: f64,
    /// Test ECE with the NLL-fitted temperature.
    pub nll_fit_test_ece: f64,
    /// Test NLL with the NLL-fitted temperature.
    pub nll_fit_test_nll: f64,
}

/// A post-hoc calibrator other than the grid temperature (`calibrate.method`), fitted on
/// the validation split and applied for TestPT.
#[derive(Debug, Clone, Serialize)]
pub struct CalibratorResult {
    /// The method's name (`matrix`, `isotonic`, ...).
    pub method: String,
    /// The calibrator file written in the run folder (`mbls eval --calibrator` reads it).
    pub file: PathBuf,
    /// Validation samples it was fitted on.
    pub val_samples: u64,
    /// Optimiser iterations (0 for closed-form fits).
    pub iterations: usize,
    /// Validation ECE before.
    pub val_ece_before: f64,
    /// Validation ECE after calibration.
    pub val_ece_after: f64,
    /// Validation NLL before.
    pub val_nll_before: f64,
    /// Validation NLL after calibration.
    pub val_nll_after: f64,
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The checkpoint tested.
    pub checkpoint: String,
    /// Epochs trained (for `mbls train`).
    pub epochs: Option<u64>,
    /// Best validation epoch and score.
    pub best_epoch: Option<u64>,
    /// The best validation score (`acc`).
    pub best_val_score: Option<f64>,
    /// Test results.
    pub test: PhaseResult,
    /// Test results after temperature scaling.
    pub test_pt: Option<PhaseResult>,
    /// The temperature (`calibrate.method=ts`, the default).
    pub temperature: Option<TemperatureResult>,
    /// The post-hoc calibrator (any other `calibrate.method`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibrator: Option<CalibratorResult>,
    /// `task=ood`: detection of the OOD dataset's test split against the test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ood: Option<OodResult>,
    /// Wall time of training, seconds.
    pub train_seconds: Option<f64>,
}

/// OOD detection of `mbls test task=ood` (the reference's `OODTester`), before and after the
/// post-hoc step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OodResult {
    /// The OOD dataset (`ood.name` and its format).
    pub dataset: String,
    /// With the tested model's logits.
    pub test: mbls_metrics::ood::OodReport,
    /// With the post-hoc calibrator applied to both splits (`test.post_temperature`).
    pub test_pt: Option<mbls_metrics::ood::OodReport>,
}

impl OodResult {
    /// The reference's names of one report's values, for the metric logs: `auc_ent` and
    /// `auc_conf` (AUROC by entropy and by maximum probability), then AUPR-In, AUPR-Out and
    /// FPR at 95% TPR of each.
    pub fn values(r: &mbls_metrics::ood::OodReport) -> Vec<(String, f64)> {
        let mut v = vec![
            ("samples_in".to_string(), r.samples_in as f64),
            ("samples_out".to_string(), r.samples_out as f64),
            ("auc_ent".to_string(), r.entropy.auroc),
            ("auc_conf".to_string(), r.max_confidence.auroc),
        ];
        for (tag, d) in [("ent", &r.entropy), ("conf", &r.max_confidence)] {
            v.push((format!("aupr_in_{tag}"), d.aupr_in));
            v.push((format!("aupr_out_{tag}"), d.aupr_out));
            v.push((format!("fpr95_{tag}"), d.fpr_at_95_tpr));
        }
        v
    }
}

/// The columns of the summary table.
const TABLE: &[&str] = &["acc", "acc_5", "macc", "nll", "ece", "aece", "cece"];

impl Summary {
    /// The printed table: one row per phase, the temperature below.
    pub fn table(&self) -> String {
        let mut rows = vec![&self.test];
        if let Some(p) = &self.test_pt {
            rows.push(p);
        }
        let cols: Vec<&str> = TABLE
            .iter()
            .copied()
            .filter(|c| rows.iter().any(|r| r.get(c).is_some()))
            .collect();
        let mut s = format!("{:<8} {:>8}", "phase", "samples");
        for c in &cols {
            s.push_str(&format!(" {c:>8}"));
        }
        s.push('\n');
        s.push_str(&"-".repeat(17 + 9 * cols.len()));
        s.push('\n');
        for r in rows {
            s.push_str(&format!("{:<8} {:>8}", r.phase, r.samples));
            for c in &cols {
                match r.get(c) {
                    Some(v) => s.push_str(&format!(" {v:>8.5}")),
                    None => s.push_str(&format!(" {:>8}", "-")),
                }
            }
            s.push('\n');
        }
        if let Some(t) = &self.temperature {
            s.push_str(&format!(
                "temperature (grid search, lowest validation ECE): T = {:.4}, fitted on {} \
                 validation samples: ECE {:.5} -> {:.5}, NLL {:.5} -> {:.5}\n",
                t.temperature,
                t.val_samples,
                t.val_ece_before,
                t.val_ece_after,
                t.val_nll_before,
                t.val_nll_after
            ));
            s.push_str(&format!(
                "temperature (NLL fit, for comparison): T = {:.4}: test ECE {:.5}, NLL {:.5}\n",
                t.nll_fit_temperature, t.nll_fit_test_ece, t.nll_fit_test_nll
            ));
        }
        if let Some(o) = &self.ood {
            s.push_str(&format!(
                "OOD detection against {}:\n{:<8} {:<14} {:>8} {:>8} {:>8} {:>10}\n",
                o.dataset, "phase", "score", "auroc", "aupr_in", "aupr_out", "fpr@95tpr"
            ));
            let reports =
                std::iter::once(("Test", &o.test)).chain(o.test_pt.as_ref().map(|r| ("TestPT", r)));
            for (phase, r) in reports {
                for (score, d) in [("entropy", &r.entropy), ("max_conf", &r.max_confidence)] {
                    s.push_str(&format!(
                        "{phase:<8} {score:<14} {:>8.5} {:>8.5} {:>8.5} {:>10.5}\n",
                        d.auroc, d.aupr_in, d.aupr_out, d.fpr_at_95_tpr
                    ));
                }
            }
        }
        if let Some(c) = &self.calibrator {
            s.push_str(&format!(
                "post-hoc calibrator {} ({} iterations), fitted on {} validation samples: ECE \
                 {:.5} -> {:.5}, NLL {:.5} -> {:.5}; saved to {}\n",
                c.method,
                c.iterations,
                c.val_samples,
                c.val_ece_before,
                c.val_ece_after,
                c.val_nll_before,
                c.val_nll_after,
                c.file.display()
            ));
        }
        s
    }
}

/// Writes the reliability diagram, histogram and bin table of `m` as `<stem>_*` in the run
/// folder.
pub(crate) fn diagrams(
    dir: &Path,
    stem: &str,
    title: &str,
    m: &ClassificationMetrics,
) -> Result<Vec<PathBuf>, TrainError> {
    let r = mbls_plot::Reliability::from_metrics(m, title);
    mbls_plot::write_all(&r, dir, stem)
        .map_err(|e| TrainError::Config(format!("{}: {e}", dir.display())))
}

/// Prints the summary and writes `summary.json`.
pub(crate) fn finish(folder: &mut RunFolder, summary: &Summary) -> Result<(), TrainError> {
    folder.say(&format!("\n{}", summary.table()));
    let json = serde_json::to_string_pretty(summary)
        .map_err(|e| TrainError::Config(format!("summary.json: {e}")))?;
    let p = folder.write("summary.json", &json)?;
    folder.say(&format!("wrote {}", p.display()));
    Ok(())
}
