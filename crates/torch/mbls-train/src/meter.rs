//! Per-phase metric accumulators: streaming and mergeable (the metrics crate's
//! accumulators), fed batch by batch with the model's outputs. A meter's state serialises
//! ([`Meter::state`]) and merges into another's ([`Meter::merge_state`]), so that the
//! meters of data-parallel ranks, each over its shard, give the metrics of the whole split.

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
    /// Everything this meter has gathered, as bytes to send to another process.
    fn state(&self) -> Result<Vec<u8>, TrainError>;
    /// Adds the samples of another meter of the same phase and task, given as its
    /// [`Meter::state`] (they come after this meter's): a state of another class count,
    /// binning or phase, or a corrupt one, is an error and leaves this meter unchanged.
    fn merge_state(&mut self, state: &[u8]) -> Result<(), TrainError>;
}

/// What [`ClassifyMeter::state`] sends: the accumulator and the kept outputs.
#[derive(serde::Serialize)]
struct ClassifyStateRef<'a> {
    phase: &'a str,
    acc: &'a ClassificationAccumulator,
    logits: &'a [f32],
    labels: &'a [i64],
}

/// [`ClassifyStateRef`] as received.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyState {
    phase: String,
    acc: ClassificationAccumulator,
    logits: Vec<f32>,
    labels: Vec<i64>,
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

    fn state(&self) -> Result<Vec<u8>, TrainError> {
        serde_json::to_vec(&ClassifyStateRef {
            phase: self.phase.as_str(),
            acc: &self.acc,
            logits: &self.logits,
            labels: &self.labels,
        })
        .map_err(|e| {
            TrainError::Config(format!("serialising a {} meter: {e}", self.phase.as_str()))
        })
    }

    fn merge_state(&mut self, state: &[u8]) -> Result<(), TrainError> {
        let phase = self.phase.as_str();
        let bad = |why: String| TrainError::Config(format!("merging a {phase} meter: {why}"));
        let s: ClassifyState =
            serde_json::from_slice(state).map_err(|e| bad(format!("not a meter state: {e}")))?;
        if s.phase != phase {
            return Err(bad(format!("the state is of phase {}", s.phase)));
        }
        let n = s.acc.samples() as usize;
        if self.keep && (s.logits.len() != n * self.classes || s.labels.len() != n) {
            return Err(bad("its kept outputs do not match its sample count".into()));
        }
        self.acc.merge(&s.acc)?;
        if self.keep {
            self.logits.extend_from_slice(&s.logits);
            self.labels.extend_from_slice(&s.labels);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, c: usize, seed: u64) -> (Tensor, Tensor) {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let y: Vec<i64> = (0..n)
            .map(|_| (next() * c as f32) as i64 % c as i64)
            .collect();
        let x: Vec<f32> = (0..n * c)
            .map(|i| next() * 4.0 + if (i % c) as i64 == y[i / c] { 2.0 } else { 0.0 })
            .collect();
        (
            Tensor::from_slice(&x).view([n as i64, c as i64]),
            Tensor::from_slice(&y),
        )
    }

    /// Two ranks, each over its shard of the validation batches, merged on one: the metrics
    /// of one meter over every batch (up to the order of float sums), and the kept outputs in
    /// rank order.
    #[test]
    fn meters_of_two_shards_merge_to_the_whole() {
        let c = 10;
        let batches: Vec<_> = (0..6).map(|i| batch(37, c, i)).collect();
        let mut whole = ClassifyMeter::new(c, 15, Phase::Val, true).unwrap();
        let mut rank0 = ClassifyMeter::new(c, 15, Phase::Val, true).unwrap();
        let mut rank1 = ClassifyMeter::new(c, 15, Phase::Val, true).unwrap();
        for (i, (x, y)) in batches.iter().enumerate() {
            whole.update(x, y).unwrap();
            if i < 3 { &mut rank0 } else { &mut rank1 }
                .update(x, y)
                .unwrap();
        }
        let state = rank1.state().unwrap();
        rank0.merge_state(&state).unwrap();
        let (a, am) = whole.finish().unwrap();
        let (b, bm) = rank0.finish().unwrap();
        assert_eq!(a.len(), b.len());
        for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
            assert_eq!(ka, kb);
            assert!(
                (va - vb).abs() <= 1e-12 * va.abs().max(1.0),
                "{ka}: {va} vs {vb}"
            );
        }
        let (am, bm) = (am.unwrap(), bm.unwrap());
        assert_eq!(
            (am.samples, am.acc, am.acc_5),
            (bm.samples, bm.acc, bm.acc_5)
        );
        assert_eq!(
            am.bins.iter().map(|b| b.count).collect::<Vec<_>>(),
            bm.bins.iter().map(|b| b.count).collect::<Vec<_>>()
        );
        assert_eq!(whole.kept(), rank0.kept());

        // a state of another phase, class count or a corrupt one is refused, nothing merged
        let before = rank0.finish().unwrap().0;
        let mut test = ClassifyMeter::new(c, 15, Phase::Test, true).unwrap();
        test.update(&batches[0].0, &batches[0].1).unwrap();
        let e = rank0
            .merge_state(&test.state().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("phase"), "{e}");
        let mut other = ClassifyMeter::new(c + 1, 15, Phase::Val, true).unwrap();
        other
            .update(&batch(5, c + 1, 9).0, &batch(5, c + 1, 9).1)
            .unwrap();
        assert!(rank0.merge_state(&other.state().unwrap()).is_err());
        let e = rank0.merge_state(b"{not json").unwrap_err().to_string();
        assert!(e.contains("not a meter state"), "{e}");
        assert_eq!(rank0.finish().unwrap().0, before);
    }
}
