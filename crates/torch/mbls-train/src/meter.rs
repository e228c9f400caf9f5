//! Per-phase metric accumulators: streaming and mergeable (the metrics crate's
//! accumulators), fed batch by batch with the model's outputs.

use crate::TrainError;
use crate::task::Phase;
use mbls_engine::tch::{Device, Kind, Tensor};
use mbls_metrics::{ClassificationAccumulator, ClassificationMetrics, ClassificationOptions};

/// Named metric values, in report order.
pub type Metrics = Vec<(&'static str, f64)>;

/// What an iteration log line shows of one batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    /// Top-1 accuracy of the batch (first maximal class).
    pub acc: f64,
    /// Mean over samples of `Σ_k (max l − l_k) / (C − 1)`.
    pub mean_diffs: f64,
}

/// The metrics of one phase.
pub trait Meter {
    /// Adds a batch of outputs (`N x C` logits) and targets (`N`).
    fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<BatchStats, TrainError>;
    /// The phase's metrics so far.
    fn finish(&self) -> Result<(Metrics, Option<ClassificationMetrics>), TrainError>;
    /// The outputs and targets seen so far (for temperature scaling, `test.save_logits`, and
    /// the state of a training epoch saved by a mid-epoch checkpoint), when the task keeps them.
    fn kept(&self) -> Option<(&[f32], &[i64])>;
}

/// Classification metrics with the reference's conventions (`ClassificationEvaluator`,
/// `CalibrateEvaluator`, `LogitsEvaluator`).
pub struct ClassifyMeter {
    acc: ClassificationAccumulator,
    phase: Phase,
    classes: usize,
    keep: bool,
    logits: Vec<f32>,
    labels: Vec<i64>,
}

impl ClassifyMeter {
    /// A meter for `classes` classes and `num_bins` calibration bins. With `keep` it keeps
    /// the logits (`N x C` floats: for temperature scaling, `test.save_logits` and mid-epoch
    /// checkpoints); evaluation phases also keep the confidences of the adaptive ECE.
    pub fn new(
        classes: usize,
        num_bins: usize,
        phase: Phase,
        keep: bool,
    ) -> Result<Self, TrainError> {
        let eval = phase != Phase::Train;
        let opts = ClassificationOptions {
            num_bins,
            keep_confidences: eval,
            ..ClassificationOptions::default()
        };
        Ok(ClassifyMeter {
            acc: ClassificationAccumulator::new(classes, opts)?,
            phase,
            classes,
            keep,
            logits: Vec::new(),
            labels: Vec::new(),
        })
    }
}

/// A tensor's values as `f32` on the CPU, row-major.
pub(crate) fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>, TrainError> {
    let t = t
        .f_detach()?
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<f32>::try_from(&t)?)
}

/// A tensor's values as `i64` on the CPU.
pub(crate) fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>, TrainError> {
    let t = t
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Int64)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<i64>::try_from(&t)?)
}

impl Meter for ClassifyMeter {
    fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<BatchStats, TrainError> {
        let scores = to_vec_f32(logits)?;
        let labels = to_vec_i64(targets)?;
        let c = self.classes;
        if scores.len() != labels.len() * c {
            return Err(TrainError::Config(format!(
                "the model gave {} outputs for {} samples of {c} classes",
                scores.len(),
                labels.len()
            )));
        }
        self.acc.update(&scores, &labels)?;
        let mut hits = 0usize;
        let mut diffs = 0f64;
        for (row, &y) in scores.chunks_exact(c).zip(&labels) {
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0usize);
            for (k, &v) in row.iter().enumerate() {
                if v > best {
                    best = v;
                    arg = k;
                }
            }
            hits += usize::from(arg as i64 == y);
            if c > 1 {
                let s: f64 = row.iter().map(|&v| f64::from(best) - f64::from(v)).sum();
                diffs += s / (c - 1) as f64;
            }
        }
        let n = labels.len().max(1) as f64;
        if self.keep {
            self.logits.extend_from_slice(&scores);
            self.labels.extend_from_slice(&labels);
        }
        Ok(BatchStats {
            acc: hits as f64 / n,
            mean_diffs: diffs / n,
        })
    }

    fn finish(&self) -> Result<(Metrics, Option<ClassificationMetrics>), TrainError> {
        let m = self.acc.finish()?;
        let mut out: Metrics = vec![("acc", m.acc)];
        if let Some(a5) = m.acc_5 {
            out.push(("acc_5", a5));
        }
        out.push(("macc", m.macc));
        if self.phase != Phase::Train {
            out.push(("nll", m.nll));
            out.push(("ece", m.ece));
            if let Some(a) = m.aece {
                out.push(("aece", a));
            }
            out.push(("cece", m.cece));
        }
        if let Some(l) = &m.logits {
            out.push(("mean_diffs", l.mean_diffs));
            out.push(("max_diffs", l.max_diffs));
            out.push(("margin", l.margin));
        }
        Ok((out, Some(m)))
    }

    fn kept(&self) -> Option<(&[f32], &[i64])> {
        self.keep.then_some((&self.logits[..], &self.labels[..]))
    }
}
