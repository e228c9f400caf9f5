//! Segmentation metrics: per-class IoU, Dice and accuracy, and pixel-level calibration.
//!
//! Reference conventions (`SegmentEvaluator`, `SegmentCalibrateEvaluator`):
//! - pixels whose label is the ignore index (255) are dropped; the prediction is the first
//!   maximal class; areas (intersection, prediction, label, union) are summed over the set;
//! - `miou`, `mdsc`, `macc` average over classes 1.. (**background excluded**) with a
//!   1e-10 denominator guard, so a class absent from both labels and predictions counts
//!   as 0; `miou_present` (ours) averages only over the classes that appear;
//! - pixel calibration, reference: per batch, drop ignore **and background** pixels, compute
//!   NLL, ECE, adaptive ECE and classwise ECE on that batch, then average over batches
//!   weighted by their pixel counts; global (ours): the same pixels measured as one set,
//!   with the full metric set of [`ClassificationMetrics`]. Batches with no such pixel
//!   are skipped (the reference would produce NaN).

use crate::adaptive::AdaptiveVariant;
use crate::classify::{
    ClassificationAccumulator, ClassificationMetrics, ClassificationOptions, ScoreKind,
};
use crate::error::MetricError;
use rayon::prelude::*;

const EPS: f64 = 1e-10;

/// Options of a [`SegmentationAccumulator`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationOptions {
    /// Bins for the calibration metrics (15).
    pub num_bins: usize,
    /// Label value to ignore (255 for VOC); `None` keeps every pixel.
    pub ignore_index: Option<i64>,
    /// Drop background (class 0) pixels from the calibration metrics, as the reference does.
    pub exclude_background: bool,
    /// Keep one confidence per pixel (4 bytes) for the exact global adaptive ECE.
    pub global_adaptive: bool,
    /// Compute pixel-level calibration at all.
    pub calibration: bool,
}

impl Default for SegmentationOptions {
    fn default() -> Self {
        SegmentationOptions {
            num_bins: 15,
            ignore_index: Some(255),
            exclude_background: true,
            global_adaptive: true,
            calibration: true,
        }
    }
}

/// Scores of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScore {
    /// Class index.
    pub class: usize,
    /// Intersection over union.
    pub iou: f64,
    /// Dice coefficient.
    pub dice: f64,
    /// Recall (pixel accuracy within the class).
    pub acc: f64,
    /// Labelled pixels of the class.
    pub label_pixels: u64,
    /// Pixels predicted as the class.
    pub predicted_pixels: u64,
}

/// Pixel calibration as the reference reports it (batch-weighted).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PixelCalibration {
    /// Pixels measured.
    pub pixels: u64,
    /// Batches that contributed.
    pub batches: usize,
    /// NLL.
    pub nll: f64,
    /// ECE.
    pub ece: f64,
    /// Adaptive ECE (reference convention).
    pub aece: f64,
    /// Classwise ECE.
    pub cece: f64,
}

/// Final segmentation metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegmentationMetrics {
    /// Images seen.
    pub images: u64,
    /// Classes.
    pub classes: usize,
    /// Mean IoU over classes 1.. (absent classes count 0).
    pub miou: f64,
    /// Mean Dice over classes 1...
    pub mdsc: f64,
    /// Mean class accuracy over classes 1...
    pub macc: f64,
    /// Mean IoU over classes 1.. that appear in labels or predictions.
    pub miou_present: f64,
    /// Fraction of non-ignored pixels predicted correctly (background included).
    pub pixel_accuracy: f64,
    /// Every class, background included.
    pub per_class: Vec<ClassScore>,
    /// Reference pixel calibration (batch-weighted).
    pub calibration_reference: Option<PixelCalibration>,
    /// Global pixel calibration.
    pub calibration_global: Option<ClassificationMetrics>,
}

/// Streaming segmentation accumulator: O(classes x bins) state (plus 4 bytes per measured
/// pixel when `global_adaptive`).
#[derive(Debug, Clone)]
pub struct SegmentationAccumulator {
    classes: usize,
    opts: SegmentationOptions,
    inter: Vec<u64>,
    pred_area: Vec<u64>,
    label_area: Vec<u64>,
    images: u64,
    batch_pixels: Vec<u64>,
    batch_nll: Vec<f64>,
    batch_ece: Vec<f64>,
    batch_aece: Vec<f64>,
    batch_cece: Vec<f64>,
    global: ClassificationAccumulator,
}

const TILE: usize = 2048;

struct ImagePart {
    inter: Vec<u64>,
    pred: Vec<u64>,
    label: Vec<u64>,
    calib: Option<ClassificationAccumulator>,
}

impl SegmentationAccumulator {
    /// A new accumulator for `classes` classes.
    pub fn new(classes: usize, opts: SegmentationOptions) -> Result<Self, MetricError> {
        let global = ClassificationAccumulator::new(
            classes,
            ClassificationOptions {
                num_bins: opts.num_bins,
                kind: ScoreKind::Logits,
                keep_samples: false,
                keep_confidences: opts.global_adaptive,
            },
        )?;
        Ok(SegmentationAccumulator {
            classes,
            inter: vec![0; classes],
            pred_area: vec![0; classes],
            label_area: vec![0; classes],
            images: 0,
            batch_pixels: Vec::new(),
            batch_nll: Vec::new(),
            batch_ece: Vec::new(),
            batch_aece: Vec::new(),
            batch_cece: Vec::new(),
            global,
            opts,
        })
    }

    /// Adds one batch: `logits` is `B x C x H x W` row-major, `labels` is `B x H x W`.
    /// One call is one batch for the reference's batch-weighted calibration.
    pub fn update_batch(
        &mut self,
        logits: &[f32],
        dims: [usize; 4],
        labels: &[i64],
    ) -> Result<(), MetricError> {
        let [b, c, h, w] = dims;
        if c != self.classes {
            return Err(MetricError::ClassMismatch {
                expected: self.classes,
                found: c,
            });
        }
        let hw = h * w;
        if logits.len() != b * c * hw {
            return Err(MetricError::Shape {
                what: "logits (B x C x H x W)",
                expected: b * c * hw,
                found: logits.len(),
            });
        }
        if labels.len() != b * hw {
            return Err(MetricError::Shape {
                what: "labels (B x H x W)",
                expected: b * hw,
                found: labels.len(),
            });
        }
        let ignore = self.opts.ignore_index;
        for (i, &y) in labels.iter().enumerate() {
            if Some(y) != ignore && (y < 0 || y as usize >= c) {
                return Err(MetricError::LabelOutOfRange {
                    label: y,
                    sample: i,
                    classes: c,
                });
            }
        }
        if hw == 0 {
            self.images += b as u64;
            return Ok(());
        }
        let calib_opts = ClassificationOptions {
            num_bins: self.opts.num_bins,
            kind: ScoreKind::Logits,
            keep_samples: false,
            keep_confidences: true,
        };
        let parts: Vec<Result<ImagePart, MetricError>> = logits
            .par_chunks(c * hw)
            .zip(labels.par_chunks(hw))
            .enumerate()
            .map(|(img, (x, y))| self.process_image(x, y, img * hw, &calib_opts))
            .collect();
        let mut batch: Option<ClassificationAccumulator> = None;
        for p in parts {
            let p = p?;
            for k in 0..c {
                self.inter[k] += p.inter[k];
                self.pred_area[k] += p.pred[k];
                self.label_area[k] += p.label[k];
            }
            if let Some(a) = p.calib {
                match &mut batch {
                    None => batch = Some(a),
                    Some(bacc) => bacc.merge(&a)?,
                }
            }
        }
        self.images += b as u64;
        if let Some(bacc) = batch
            && bacc.samples() > 0
        {
            let (ece, _) = bacc.ece_mce();
            let aece = bacc
                .confidences()
                .adaptive_ece(self.opts.num_bins, AdaptiveVariant::Reference);
            self.batch_pixels.push(bacc.samples());
            self.batch_nll.push(bacc.mean_nll());
            self.batch_ece.push(ece);
            self.batch_aece.push(aece);
            self.batch_cece.push(bacc.cece());
            self.global.merge(&bacc)?;
        }
        Ok(())
    }

    fn process_image(
        &self,
        x: &[f32],
        y: &[i64],
        base: usize,
        calib_opts: &ClassificationOptions,
    ) -> Result<ImagePart, MetricError> {
        let c = self.classes;
        let hw = y.len();
        let mut part = ImagePart {
            inter: vec![0; c],
            pred: vec![0; c],
            label: vec![0; c],
            calib: if self.opts.calibration {
                Some(ClassificationAccumulator::new(c, calib_opts.clone())?)
            } else {
                None
            },
        };
        let ignore = self.opts.ignore_index;
        let excl_bg = self.opts.exclude_background;
        let mut idx: Vec<usize> = Vec::with_capacity(TILE);
        let mut rows: Vec<f32> = vec![0.0; TILE * c];
        let mut row_labels: Vec<i64> = Vec::with_capacity(TILE);
        let mut start = 0;
        while start < hw {
            let end = (start + TILE).min(hw);
            idx.clear();
            row_labels.clear();
            // calibration pixels first, then the other valid ones (background)
            for (p, &l) in y.iter().enumerate().take(end).skip(start) {
                if Some(l) != ignore && !(excl_bg && l == 0) {
                    idx.push(p);
                    row_labels.push(l);
                }
            }
            let n_cal = idx.len();
            for (p, &l) in y.iter().enumerate().take(end).skip(start) {
                if Some(l) != ignore && excl_bg && l == 0 {
                    idx.push(p);
                    row_labels.push(l);
                }
            }
            let m = idx.len();
            for k in 0..c {
                let plane = &x[k * hw..(k + 1) * hw];
                for (i, &p) in idx.iter().enumerate() {
                    rows[i * c + k] = plane[p];
                }
            }
            for (i, row) in rows[..m * c].chunks_exact(c).enumerate() {
                let (best, _, sum) = mbls_base::fastmath::max_min_sum(row);
                if !sum.is_finite() || !best.is_finite() {
                    if let Some(k) = row.iter().position(|v| !v.is_finite()) {
                        return Err(MetricError::NonFinite {
                            what: "logits",
                            sample: base + idx[i],
                            class: k,
                            value: row[k],
                        });
                    }
                }
                let am = row.iter().position(|&v| v == best).unwrap_or(0);
                let l = row_labels[i] as usize;
                part.pred[am] += 1;
                part.label[l] += 1;
                part.inter[l] += (am == l) as u64;
            }
            if let Some(acc) = &mut part.calib {
                acc.process_rows(&rows[..n_cal * c], &row_labels[..n_cal], base)?;
            }
            start = end;
        }
        Ok(part)
    }

    /// Images seen so far.
    pub fn images(&self) -> u64 {
        self.images
    }

    /// The final metrics.
    pub fn finish(&self) -> Result<SegmentationMetrics, MetricError> {
        let c = self.classes;
        let per_class: Vec<ClassScore> = (0..c)
            .map(|k| {
                let inter = self.inter[k] as f64;
                let union = (self.pred_area[k] + self.label_area[k] - self.inter[k]) as f64;
                ClassScore {
                    class: k,
                    iou: inter / (union + EPS),
                    dice: 2.0 * inter / ((self.pred_area[k] + self.label_area[k]) as f64 + EPS),
                    acc: inter / (self.label_area[k] as f64 + EPS),
                    label_pixels: self.label_area[k],
                    predicted_pixels: self.pred_area[k],
                }
            })
            .collect();
        let fg = &per_class[1..];
        let mean = |f: fn(&ClassScore) -> f64| fg.iter().map(f).sum::<f64>() / fg.len() as f64;
        let present: Vec<&ClassScore> = fg
            .iter()
            .filter(|s| s.label_pixels > 0 || s.predicted_pixels > 0)
            .collect();
        let miou_present = if present.is_empty() {
            0.0
        } else {
            present.iter().map(|s| s.iou).sum::<f64>() / present.len() as f64
        };
        let valid: u64 = self.label_area.iter().sum();
        let correct: u64 = self.inter.iter().sum();
        let total: u64 = self.batch_pixels.iter().sum();
        let calibration_reference = (self.opts.calibration && total > 0).then(|| {
            let wsum = |v: &[f64]| {
                v.iter()
                    .zip(&self.batch_pixels)
                    .map(|(m, &n)| m * (n as f64 / total as f64))
                    .sum::<f64>()
            };
            PixelCalibration {
                pixels: total,
                batches: self.batch_pixels.len(),
                nll: wsum(&self.batch_nll),
                ece: wsum(&self.batch_ece),
                aece: wsum(&self.batch_aece),
                cece: wsum(&self.batch_cece),
            }
        });
        let calibration_global = if self.opts.calibration && self.global.samples() > 0 {
            Some(self.global.finish()?)
        } else {
            None
        };
        Ok(SegmentationMetrics {
            images: self.images,
            classes: c,
            miou: mean(|s| s.iou),
            mdsc: mean(|s| s.dice),
            macc: mean(|s| s.acc),
            miou_present,
            pixel_accuracy: if valid > 0 {
                correct as f64 / valid as f64
            } else {
                0.0
            },
            per_class,
            calibration_reference,
            calibration_global,
        })
    }
}
