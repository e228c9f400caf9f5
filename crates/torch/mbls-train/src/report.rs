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
    /// The temperature.
    pub temperature: Option<TemperatureResult>,
    /// Wall time of training, seconds.
    pub train_seconds: Option<f64>,
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
