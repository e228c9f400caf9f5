//! Out-of-distribution detection from a classifier's scores, as the reference's
//! `OODEvaluator` measures it and as OOD papers report it.
//!
//! Two scores per sample: the maximum probability (higher means in-distribution) and the
//! reference's normalised entropy `-Σ_k p_k ln(p_k + 1e-10) / ln K` (higher means
//! out-of-distribution). For each:
//! - **AUROC**: the probability that a random in-distribution sample looks more
//!   in-distribution than a random OOD one, ties counting one half (scikit-learn's
//!   `roc_auc_score`; the reference's `auc_conf` and `auc_ent`).
//! - **AUPR-In / AUPR-Out**: average precision (scikit-learn's `average_precision_score`,
//!   the step-wise area without interpolation) with the in-distribution, or the OOD, samples
//!   as the positive class.
//! - **FPR at 95% TPR**: the fraction of OOD samples accepted when the threshold accepts at
//!   least 95% of the in-distribution samples (the first point of the ROC curve with
//!   TPR ≥ 0.95).

use crate::{MetricError, ScoreKind, probabilities};

/// Detection quality of one score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    /// Area under the ROC curve.
    pub auroc: f64,
    /// Average precision with the in-distribution samples positive.
    pub aupr_in: f64,
    /// Average precision with the OOD samples positive.
    pub aupr_out: f64,
    /// False-positive rate (OOD accepted) at 95% true-positive rate (in-distribution kept).
    pub fpr_at_95_tpr: f64,
}

/// OOD detection by maximum probability and by normalised entropy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OodReport {
    /// In-distribution samples.
    pub samples_in: usize,
    /// Out-of-distribution samples.
    pub samples_out: usize,
    /// Scored by the maximum probability.
    pub max_confidence: Detection,
    /// Scored by the normalised entropy (the reference's main metric, `auc_ent`).
    pub entropy: Detection,
}

/// The positive and negative counts at each distinct score, highest score first: one sort
/// serves the ROC curve and both average precisions.
fn tie_blocks(pos: &[f64], neg: &[f64]) -> Vec<(f64, f64)> {
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        let (mut p, mut n) = (0f64, 0f64);
        while i < all.len() && all[i].0 == s {
            if all[i].1 {
                p += 1.0;
            } else {
                n += 1.0;
            }
            i += 1;
        }
        blocks.push((p, n));
    }
    blocks
}

/// Average precision over tie blocks of (positive, negative) counts in threshold order:
/// `Σ_t (R_t - R_{t-1}) P_t` over distinct thresholds.
fn average_precision(blocks: impl Iterator<Item = (f64, f64)>, np: f64) -> f64 {
    let (mut tp, mut fp) = (0f64, 0f64);
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for (p, n) in blocks {
        tp += p;
        fp += n;
        let recall = tp / np;
        ap += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
    }
    ap
}

/// AUROC and FPR at 95% TPR from the tie blocks (highest score first), positives being
/// in-distribution.
fn roc(blocks: &[(f64, f64)], np: f64, nn: f64) -> (f64, f64) {
    let (mut tp, mut fp) = (0f64, 0f64);
    let (mut area, mut fpr95) = (0.0, None);
    for &(p, n) in blocks {
        let (tp0, fp0) = (tp, fp);
        tp += p;
        fp += n;
        // trapezoid over the tie block: ties count one half
        area += (fp - fp0) * (tp + tp0) / 2.0;
        if fpr95.is_none() && tp / np >= 0.95 {
            fpr95 = Some(fp / nn);
        }
    }
    (area / (np * nn), fpr95.unwrap_or(1.0))
}

/// Detection quality of in-distribution scores against OOD scores (higher = in).
pub fn detection(in_scores: &[f64], out_scores: &[f64]) -> Result<Detection, MetricError> {
    if in_scores.is_empty() || out_scores.is_empty() {
        return Err(MetricError::Empty);
    }
    if let Some(v) = in_scores.iter().chain(out_scores).find(|v| v.is_nan()) {
        return Err(MetricError::Invalid(format!(
            "OOD score {v} is not a number"
        )));
    }
    let (np, nn) = (in_scores.len() as f64, out_scores.len() as f64);
    let blocks = tie_blocks(in_scores, out_scores);
    let (auroc, fpr) = roc(&blocks, np, nn);
    Ok(Detection {
        auroc,
        aupr_in: average_precision(blocks.iter().copied(), np),
        // OOD positive, lower scores first: the same blocks from the other end
        aupr_out: average_precision(blocks.iter().rev().map(|&(p, n)| (n, p)), nn),
        fpr_at_95_tpr: fpr,
    })
}

/// The two scores of every row of probabilities: (max probability, normalised entropy).
fn row_scores(probs: &[f32], classes: usize) -> (Vec<f64>, Vec<f64>) {
    let lk = (classes as f64).ln();
    probs
        .chunks_exact(classes)
        .map(|row| {
            let top = row.iter().fold(0f32, |a, &b| a.max(b)) as f64;
            let h: f64 = row
                .iter()
                .map(|&p| {
                    let p = p as f64;
                    -p * (p + 1e-10).ln()
                })
                .sum();
            (top, h / lk)
        })
        .unzip()
}

fn validate(scores: &[f32], classes: usize, what: &'static str) -> Result<usize, MetricError> {
    if classes < 2 {
        return Err(MetricError::TooFewClasses(classes));
    }
    if scores.is_empty() || scores.len() % classes != 0 {
        return Err(MetricError::Shape {
            what,
            expected: (scores.len() / classes).max(1) * classes,
            found: scores.len(),
        });
    }
    if let Some((i, &v)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricError::NonFinite {
            what,
            sample: i / classes,
            class: i % classes,
            value: v,
        });
    }
    Ok(scores.len() / classes)
}

/// Per-sample OOD scores of a set, accumulated chunk by chunk (8 bytes a sample per score),
/// so that the logits themselves need not be kept.
#[derive(Debug, Clone, Default)]
pub struct OodScores {
    /// Maximum probability of each sample.
    pub max_confidence: Vec<f64>,
    /// Normalised entropy of each sample.
    pub entropy: Vec<f64>,
}

impl OodScores {
    /// Adds the samples of `scores` (row-major `n x classes` logits or probabilities).
    pub fn update(
        &mut self,
        scores: &[f32],
        classes: usize,
        kind: ScoreKind,
        what: &'static str,
    ) -> Result<(), MetricError> {
        validate(scores, classes, what)?;
        let (c, e) = row_scores(&probabilities(scores, classes, kind), classes);
        self.max_confidence.extend(c);
        self.entropy.extend(e);
        Ok(())
    }

    /// Samples added.
    pub fn len(&self) -> usize {
        self.max_confidence.len()
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.max_confidence.is_empty()
    }
}

/// OOD detection from the per-sample scores of an in-distribution and an
/// out-of-distribution set.
pub fn report(inside: &OodScores, outside: &OodScores) -> Result<OodReport, MetricError> {
    let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<_>>();
    Ok(OodReport {
        samples_in: inside.len(),
        samples_out: outside.len(),
        max_confidence: detection(&inside.max_confidence, &outside.max_confidence)?,
        entropy: detection(&neg(&inside.entropy), &neg(&outside.entropy))?,
    })
}

/// OOD detection from the scores (row-major `N x classes` logits or probabilities) of an
/// in-distribution and an out-of-distribution set.
pub fn ood(
    in_scores: &[f32],
    out_scores: &[f32],
    classes: usize,
    kind: ScoreKind,
) -> Result<OodReport, MetricError> {
    let mut a = OodScores::default();
    a.update(in_scores, classes, kind, "in-distribution scores")?;
    let mut b = OodScores::default();
    b.update(out_scores, classes, kind, "out-of-distribution scores")?;
    report(&a, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cases_by_hand() {
        // in: 0.9 0.8 0.4; out: 0.7 0.3 — pairs in > out: 0.9>both, 0.8>both, 0.4>0.3: 5/6
        let d = detection(&[0.9, 0.8, 0.4], &[0.7, 0.3]).unwrap();
        assert!((d.auroc - 5.0 / 6.0).abs() < 1e-15);
        // thresholds 0.9 (1/1), 0.8 (2/2), 0.7 (2/3), 0.4 (3/4), 0.3 (3/5): AP over recall steps
        let ap = (1.0 / 3.0) * 1.0 + (1.0 / 3.0) * 1.0 + (1.0 / 3.0) * 0.75;
        assert!((d.aupr_in - ap).abs() < 1e-15, "{}", d.aupr_in);
        // OOD positive on negated scores: -0.3 (out) -0.4 (in) -0.7 (out) -0.8 -0.9
        let ap_out = 0.5 * 1.0 + 0.5 * (2.0 / 3.0);
        assert!((d.aupr_out - ap_out).abs() < 1e-15, "{}", d.aupr_out);
        // TPR reaches 0.95 only with all three in-samples (threshold 0.4): one OOD above it
        assert!((d.fpr_at_95_tpr - 0.5).abs() < 1e-15);
    }

    #[test]
    fn ties_count_one_half_and_perfect_separation() {
        let d = detection(&[0.5, 0.5], &[0.5, 0.5]).unwrap();
        assert!((d.auroc - 0.5).abs() < 1e-15);
        assert_eq!(d.fpr_at_95_tpr, 1.0);
        let d = detection(&[0.9, 0.8], &[0.1, 0.2]).unwrap();
        assert_eq!(
            (d.auroc, d.aupr_in, d.aupr_out, d.fpr_at_95_tpr),
            (1.0, 1.0, 1.0, 0.0)
        );
    }

    #[test]
    fn confident_in_and_flat_out_logits() {
        let k = 4;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..50 {
            let mut r = vec![0f32; k];
            r[i % k] = 5.0 + (i as f32) * 0.01;
            a.extend(r);
            b.extend((0..k).map(|j| (j as f32 + i as f32 * 0.001) * 0.1));
        }
        let r = ood(&a, &b, k, ScoreKind::Logits).unwrap();
        assert_eq!(r.samples_in, 50);
        assert_eq!(r.max_confidence.auroc, 1.0);
        assert_eq!(r.entropy.auroc, 1.0);
        assert!(ood(&a, &b[..5], k, ScoreKind::Logits).is_err());
        let mut bad = b.clone();
        bad[3] = f32::NAN;
        assert!(ood(&a, &bad, k, ScoreKind::Logits).is_err());
    }
}
