//! Streaming classification and calibration metrics over N x C scores.
//!
//! [`ClassificationAccumulator`] takes batches of logits (or probabilities) and labels,
//! keeps O(bins x classes) state for every binned metric plus 4 bytes per sample for the
//! exact adaptive ECE, merges across batches and threads, and yields
//! [`ClassificationMetrics`] with the reference's conventions:
//!
//! - softmax in float32 (`exp(x - max)` then multiplied by `1 / sum`), confidence = top
//!   probability, prediction = the **first** maximal class (`torch.max`), bins from
//!   [`BinEdges::equal_width`] with `(lower, upper]` membership;
//! - `ece = Σ_b |mean conf_b − acc_b| · n_b / N`, empty bins skipped; `mce` = the largest gap;
//! - `aece`: see [`crate::adaptive`]; `cece`: per-class ECE of `p[:, k]` against
//!   `label == k`, averaged over `max(label) + 1` classes;
//! - `nll`: mean cross-entropy; `brier`: mean of `Σ_k (p_k − 1[k = y])²`;
//! - `acc`, `acc_5`: as scikit-learn's `top_k_accuracy_score` on the probabilities (among
//!   tied scores the higher class index ranks first); `macc`: mean recall over the classes
//!   present in the labels or predictions (scikit-learn's normalised confusion matrix);
//! - logit statistics: `mean_diffs = Σ_k (max − l_k) / (C − 1)`, `max_diffs = max − min`,
//!   `margin = top1 − top2`, averaged over samples.
//!
//! Results do not depend on the number of threads: rows are processed in fixed-size chunks
//! whose partial sums are merged in order.

use crate::adaptive::ConfidenceStore;
use crate::bins::BinEdges;
use crate::error::MetricError;
use mbls_base::fastmath;
use rayon::prelude::*;

/// What the scores are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Unnormalised logits; softmax is applied.
    #[default]
    Logits,
    /// Probabilities (rows non-negative, summing to 1 within 1e-3).
    Probabilities,
}

/// Options of a [`ClassificationAccumulator`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassificationOptions {
    /// Number of equal-width (and equal-mass) bins; 15 in the reference.
    pub num_bins: usize,
    /// Logits or probabilities.
    pub kind: ScoreKind,
    /// Keep per-sample NLL and top-1 hits (needed for bootstrap intervals).
    pub keep_samples: bool,
    /// Keep per-sample confidences for the exact adaptive ECE (4 bytes per sample).
    pub keep_confidences: bool,
}

impl Default for ClassificationOptions {
    fn default() -> Self {
        ClassificationOptions {
            num_bins: 15,
            kind: ScoreKind::Logits,
            keep_samples: false,
            keep_confidences: true,
        }
    }
}

/// One equal-width bin of the top-label reliability statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BinStat {
    /// Lower edge (exclusive).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Samples in the bin.
    pub count: u64,
    /// Mean confidence, `None` if empty.
    pub mean_confidence: Option<f64>,
    /// Accuracy, `None` if empty.
    pub accuracy: Option<f64>,
}

/// Mean logit statistics (the reference's `LogitsEvaluator`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogitStats {
    /// Mean over samples of `Σ_k (max − l_k) / (C − 1)`.
    pub mean_diffs: f64,
    /// Mean over samples of `max − min`.
    pub max_diffs: f64,
    /// Mean over samples of `top1 − top2`.
    pub margin: f64,
}

/// Final metrics of a classification evaluation. Fractions, not percentages.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassificationMetrics {
    /// Number of samples.
    pub samples: u64,
    /// Number of classes (columns).
    pub classes: usize,
    /// Number of bins used.
    pub num_bins: usize,
    /// Top-1 accuracy, scikit-learn tie rule (the reference's epoch `acc`).
    pub acc: f64,
    /// Top-1 accuracy with the first maximal class as prediction (used by ECE).
    pub acc_first_max: f64,
    /// Top-5 accuracy (only when there are more than 5 classes).
    pub acc_5: Option<f64>,
    /// Mean per-class recall.
    pub macc: f64,
    /// Negative log-likelihood (mean cross-entropy).
    pub nll: f64,
    /// Expected calibration error, equal-width bins.
    pub ece: f64,
    /// Maximum calibration error over non-empty bins.
    pub mce: f64,
    /// Adaptive ECE, reference convention (`None` if confidences were not kept).
    pub aece: Option<f64>,
    /// Adaptive ECE, corrected (every sample counted).
    pub aece_corrected: Option<f64>,
    /// Classwise ECE over `max(label) + 1` classes.
    pub cece: f64,
    /// Brier score, mean over samples of the squared distance to the one-hot label.
    pub brier: f64,
    /// Mean top-label confidence.
    pub mean_confidence: f64,
    /// Logit statistics (`None` for probability inputs).
    pub logits: Option<LogitStats>,
    /// Per-bin top-label statistics (for reliability diagrams).
    pub bins: Vec<BinStat>,
}

/// Streaming accumulator of classification and calibration statistics.
///
/// It serialises (serde) so that the accumulators of several processes, each over its
/// share of the samples (data-parallel ranks), can be sent to one and merged there
/// ([`ClassificationAccumulator::merge`] checks what it is given).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClassificationAccumulator {
    classes: usize,
    opts: ClassificationOptions,
    edges: BinEdges,
    n: u64,
    bin_count: Vec<u64>,
    bin_conf: Vec<f64>,
    bin_correct: Vec<u64>,
    cw_count: Vec<u64>,
    cw_sum: Vec<f64>,
    cw_pos: Vec<u64>,
    cw_zero: Vec<u64>,
    cw_total_sum: Vec<f64>,
    sq_sum: f64,
    nll_sum: f64,
    brier_sum: f64,
    conf_sum: f64,
    correct_first: u64,
    top1: u64,
    top5: u64,
    true_count: Vec<u64>,
    tp: Vec<u64>,
    pred_count: Vec<u64>,
    diffs_sum: f64,
    maxdiff_sum: f64,
    margin_sum: f64,
    max_label: i64,
    store: ConfidenceStore,
    sample_nll: Vec<f32>,
    sample_top1: Vec<bool>,
}

/// Rows per parallel work item: fixed for a given class count, so that results do not
/// depend on the number of threads.
fn chunk_rows(classes: usize) -> usize {
    ((1usize << 18) / classes.max(1)).clamp(64, 8192)
}

impl ClassificationAccumulator {
    /// A new accumulator for `classes` classes.
    pub fn new(classes: usize, opts: ClassificationOptions) -> Result<Self, MetricError> {
        if classes < 2 {
            return Err(MetricError::TooFewClasses(classes));
        }
        if opts.num_bins == 0 || opts.num_bins > 100_000 {
            return Err(MetricError::Invalid(format!(
                "number of bins must be in 1..=100000, got {}",
                opts.num_bins
            )));
        }
        let b = opts.num_bins;
        Ok(ClassificationAccumulator {
            classes,
            edges: BinEdges::equal_width(b),
            n: 0,
            bin_count: vec![0; b],
            bin_conf: vec![0.0; b],
            bin_correct: vec![0; b],
            cw_count: vec![0; b * classes],
            cw_sum: vec![0.0; b * classes],
            cw_pos: vec![0; b * classes],
            cw_zero: vec![0; classes],
            cw_total_sum: vec![0.0; classes],
            sq_sum: 0.0,
            nll_sum: 0.0,
            brier_sum: 0.0,
            conf_sum: 0.0,
            correct_first: 0,
            top1: 0,
            top5: 0,
            true_count: vec![0; classes],
            tp: vec![0; classes],
            pred_count: vec![0; classes],
            diffs_sum: 0.0,
            maxdiff_sum: 0.0,
            margin_sum: 0.0,
            max_label: -1,
            store: ConfidenceStore::new(),
            sample_nll: Vec::new(),
            sample_top1: Vec::new(),
            opts,
        })
    }

    fn empty_like(&self) -> Self {
        let mut a = Self::new(self.classes, self.opts.clone()).expect("valid options");
        a.edges = self.edges.clone();
        a
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Samples seen so far.
    pub fn samples(&self) -> u64 {
        self.n
    }

    /// The options.
    pub fn options(&self) -> &ClassificationOptions {
        &self.opts
    }

    /// The per-sample confidences and correctness (empty unless `keep_confidences`).
    pub fn confidences(&self) -> &ConfidenceStore {
        &self.store
    }

    /// Per-sample NLL (empty unless `keep_samples`).
    pub fn sample_nll(&self) -> &[f32] {
        &self.sample_nll
    }

    /// Per-sample top-1 hits, scikit-learn rule (empty unless `keep_samples`).
    pub fn sample_top1(&self) -> &[bool] {
        &self.sample_top1
    }

    /// The equal-width bin edges.
    pub fn edges(&self) -> &BinEdges {
        &self.edges
    }

    /// Adds a batch: `scores` is row-major `labels.len() x classes`.
    pub fn update(&mut self, scores: &[f32], labels: &[i64]) -> Result<(), MetricError> {
        let c = self.classes;
        if scores.len() != labels.len() * c {
            return Err(MetricError::Shape {
                what: "scores (rows x classes)",
                expected: labels.len() * c,
                found: scores.len(),
            });
        }
        for (i, &y) in labels.iter().enumerate() {
            if y < 0 || y as usize >= c {
                return Err(MetricError::LabelOutOfRange {
                    label: y,
                    sample: i,
                    classes: c,
                });
            }
        }
        let rows = chunk_rows(c);
        // Groups of chunks bound the memory held by partial accumulators; chunks are merged
        // in order, so the result does not depend on the thread count.
        const GROUP: usize = 64;
        for (gi, (gs, gl)) in scores
            .chunks(GROUP * rows * c)
            .zip(labels.chunks(GROUP * rows))
            .enumerate()
        {
            let base = gi * GROUP * rows;
            let parts: Vec<Result<Self, MetricError>> = gs
                .par_chunks(rows * c)
                .zip(gl.par_chunks(rows))
                .enumerate()
                .map(|(ci, (s, l))| {
                    let mut part = self.empty_like();
                    part.process_rows(s, l, base + ci * rows)?;
                    Ok(part)
                })
                .collect();
            for p in parts {
                self.merge(&p?)?;
            }
        }
        Ok(())
    }

    /// Adds rows already validated (labels in range); `base` offsets row numbers in errors.
    pub(crate) fn process_rows(
        &mut self,
        scores: &[f32],
        labels: &[i64],
        base: usize,
    ) -> Result<(), MetricError> {
        match self.opts.kind {
            ScoreKind::Logits => self.process_logits(scores, labels, base),
            ScoreKind::Probabilities => self.process_probs(scores, labels, base),
        }
    }

    fn process_logits(
        &mut self,
        scores: &[f32],
        labels: &[i64],
        base: usize,
    ) -> Result<(), MetricError> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.process_logits_avx2(scores, labels, base) };
        }
        self.logits_kernel::<false>(scores, labels, base)
    }

    /// [`Self::logits_kernel`] compiled for AVX2: 8 float lanes instead of 4, the same
    /// operations per element (no fused multiply-add), so the same bits as the portable path.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn process_logits_avx2(
        &mut self,
        scores: &[f32],
        labels: &[i64],
        base: usize,
    ) -> Result<(), MetricError> {
        self.logits_kernel::<true>(scores, labels, base)
    }

    /// `AVX2`: called from an AVX2 function (the class pass then takes 8 lanes at once).
    #[inline(always)]
    fn logits_kernel<const AVX2: bool>(
        &mut self,
        scores: &[f32],
        labels: &[i64],
        base: usize,
    ) -> Result<(), MetricError> {
        let c = self.classes;
        let mut e = vec![0f32; c];
        for (r, (row, &y)) in scores.chunks_exact(c).zip(labels).enumerate() {
            let y = y as usize;
            let st = row_stats::<AVX2>(row);
            let (top1, mn, sum_x) = (st.max, st.min, st.sum);
            if !sum_x.is_finite() || !top1.is_finite() || !mn.is_finite() {
                if let Some((k, &v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(MetricError::NonFinite {
                        what: "logits",
                        sample: base + r,
                        class: k,
                        value: v,
                    });
                }
            }
            // the prediction is the first maximal class (torch.max)
            let (am, top2) = (st.argmax, st.second);
            // softmax, reference order: exp(x - max), sum, multiply by 1/sum
            for (ev, &x) in e.iter_mut().zip(row) {
                *ev = fastmath::exp(x - top1);
            }
            let sum = sum8::<AVX2>(&e);
            let inv = 1.0f32 / sum;
            let conf = inv; // exp(0) * inv
            let nll = sum.ln() as f64 - wide_diff(row[y], top1);
            self.row_common::<AVX2>(&e, inv, conf, am, y, nll);
            // a float32 sum of finite logits can overflow (|x| near f32::MAX): sum in f64 then
            let sum_x = if sum_x.is_finite() {
                f64::from(sum_x)
            } else {
                row.iter().map(|&x| f64::from(x)).sum()
            };
            self.diffs_sum += (c as f64 * f64::from(top1) - sum_x) / (c - 1) as f64;
            self.maxdiff_sum += wide_diff(top1, mn);
            self.margin_sum += wide_diff(top1, top2);
        }
        Ok(())
    }

    fn process_probs(
        &mut self,
        scores: &[f32],
        labels: &[i64],
        base: usize,
    ) -> Result<(), MetricError> {
        let c = self.classes;
        for (r, (row, &y)) in scores.chunks_exact(c).zip(labels).enumerate() {
            let y = y as usize;
            let mut top1 = row[0];
            let mut am = 0usize;
            let mut mn = row[0];
            let mut sum = 0f32;
            for (k, &x) in row.iter().enumerate() {
                if !x.is_finite() {
                    return Err(MetricError::NonFinite {
                        what: "probabilities",
                        sample: base + r,
                        class: k,
                        value: x,
                    });
                }
                if x > top1 {
                    top1 = x;
                    am = k;
                }
                mn = mn.min(x);
                sum += x;
            }
            if mn < 0.0 || (sum - 1.0).abs() > 1e-3 {
                return Err(MetricError::NotProbabilities {
                    sample: base + r,
                    sum,
                    min: mn,
                });
            }
            let nll = -((row[y].max(1e-12)) as f64).ln();
            self.row_common::<false>(row, 1.0, top1, am, y, nll);
        }
        Ok(())
    }

    /// Shared per-row work once the (unnormalised) scores `e` and `1/sum` are known:
    /// probabilities are `e[k] * inv`.
    ///
    /// One vectorised pass over the classes keeps only what must be per class, the sum of
    /// the probabilities (`cw_total_sum`); the rank of the label, the number of
    /// probabilities above the first bin edge, the zeros and `Σ p²` are counted in
    /// registers. The few probabilities above the first edge (they sum to at most 1) are then
    /// scattered into their class-wise bins; the first bin is what remains of the class
    /// totals at the end. Rare cases (ties with the label's probability, zeros) take a
    /// scalar pass.
    #[inline(always)]
    fn row_common<const AVX2: bool>(
        &mut self,
        e: &[f32],
        inv: f32,
        conf: f32,
        am: usize,
        y: usize,
        nll: f64,
    ) {
        let nb = self.opts.num_bins;
        let correct = am == y;
        self.n += 1;
        self.nll_sum += nll;
        self.conf_sum += conf as f64;
        self.correct_first += correct as u64;
        self.true_count[y] += 1;
        self.pred_count[am] += 1;
        self.tp[y] += correct as u64;
        self.max_label = self.max_label.max(y as i64);
        if let Some(b) = self.edges.bin_of(conf) {
            self.bin_count[b] += 1;
            self.bin_conf[b] += conf as f64;
            self.bin_correct[b] += correct as u64;
        }
        let py = e[y] * inv;
        let edge1 = self.edges.edges()[1];
        let (cw_count, cw_sum) = (&mut self.cw_count, &mut self.cw_sum);
        let edges = &self.edges;
        let pass = class_pass::<AVX2>(e, inv, py, edge1, &mut self.cw_total_sum, |k, p| {
            if let Some(b) = edges.bin_of(p) {
                cw_count[k * nb + b] += 1;
                cw_sum[k * nb + b] += p as f64;
            }
        });
        let (greater, equal, zeros) = (pass.greater, pass.equal, pass.zeros);
        // classes ranked before y (scikit-learn order: among ties the higher index first)
        let mut ahead = greater;
        if equal > 1 {
            ahead += e[y + 1..].iter().filter(|&&ev| ev * inv == py).count() as u32;
        }
        if zeros > 0 {
            for (z, &ev) in self.cw_zero.iter_mut().zip(e) {
                *z += (ev * inv <= 0.0) as u64;
            }
        }
        // Brier = Σ_k p_k² − 2 p_y + 1
        self.sq_sum += pass.sq as f64;
        self.brier_sum += 1.0 - 2.0 * py as f64;
        if let Some(b) = self.edges.bin_of(py) {
            self.cw_pos[y * nb + b] += 1;
        }
        let hit1 = ahead < 1;
        self.top1 += hit1 as u64;
        self.top5 += (ahead < 5) as u64;
        if self.opts.keep_confidences {
            self.store.push(conf, correct);
        }
        if self.opts.keep_samples {
            self.sample_nll.push(nll as f32);
            self.sample_top1.push(hit1);
        }
    }

    /// Merges the statistics of `other` (same classes, bins and score kind) into `self`;
    /// samples of `other` come after those of `self`. Per-sample data is kept only if
    /// `self` keeps it.
    pub fn merge(&mut self, other: &Self) -> Result<(), MetricError> {
        if other.classes != self.classes {
            return Err(MetricError::ClassMismatch {
                expected: self.classes,
                found: other.classes,
            });
        }
        if other.opts.num_bins != self.opts.num_bins
            || other.opts.kind != self.opts.kind
            || other.edges != self.edges
        {
            return Err(MetricError::Invalid(
                "merging accumulators with different bins or score kinds".into(),
            ));
        }
        other.check_sizes()?;
        fn add<T: Copy + std::ops::AddAssign>(a: &mut [T], b: &[T]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
        self.n += other.n;
        add(&mut self.bin_count, &other.bin_count);
        add(&mut self.bin_conf, &other.bin_conf);
        add(&mut self.bin_correct, &other.bin_correct);
        add(&mut self.cw_count, &other.cw_count);
        add(&mut self.cw_sum, &other.cw_sum);
        add(&mut self.cw_pos, &other.cw_pos);
        add(&mut self.cw_zero, &other.cw_zero);
        add(&mut self.cw_total_sum, &other.cw_total_sum);
        self.sq_sum += other.sq_sum;
        self.nll_sum += other.nll_sum;
        self.brier_sum += other.brier_sum;
        self.conf_sum += other.conf_sum;
        self.correct_first += other.correct_first;
        self.top1 += other.top1;
        self.top5 += other.top5;
        add(&mut self.true_count, &other.true_count);
        add(&mut self.tp, &other.tp);
        add(&mut self.pred_count, &other.pred_count);
        self.diffs_sum += other.diffs_sum;
        self.maxdiff_sum += other.maxdiff_sum;
        self.margin_sum += other.margin_sum;
        self.max_label = self.max_label.max(other.max_label);
        if self.opts.keep_confidences {
            self.store.extend_from(&other.store);
        }
        if self.opts.keep_samples {
            self.sample_nll.extend_from_slice(&other.sample_nll);
            self.sample_top1.extend_from_slice(&other.sample_top1);
        }
        Ok(())
    }

    /// Checks that the per-bin and per-class tables have the sizes of the options (an
    /// accumulator deserialised from another process may not).
    fn check_sizes(&self) -> Result<(), MetricError> {
        let (b, c) = (self.opts.num_bins, self.classes);
        let per_bin = [
            self.bin_count.len(),
            self.bin_conf.len(),
            self.bin_correct.len(),
        ];
        let per_cell = [self.cw_count.len(), self.cw_sum.len(), self.cw_pos.len()];
        let per_class = [
            self.cw_zero.len(),
            self.cw_total_sum.len(),
            self.true_count.len(),
            self.tp.len(),
            self.pred_count.len(),
        ];
        let samples = self.n as usize;
        let kept_ok = (!self.opts.keep_confidences || self.store.len() == samples)
            && (!self.opts.keep_samples
                || (self.sample_nll.len() == samples && self.sample_top1.len() == samples));
        if per_bin.iter().all(|&l| l == b)
            && per_cell.iter().all(|&l| Some(l) == b.checked_mul(c))
            && per_class.iter().all(|&l| l == c)
            && self.edges.edges().len() == b + 1
            && self.max_label < c as i64
            && kept_ok
        {
            Ok(())
        } else {
            Err(MetricError::Invalid(format!(
                "an accumulator state whose tables do not match {c} classes and {b} bins"
            )))
        }
    }

    /// Per-bin top-label statistics.
    pub fn bin_stats(&self) -> Vec<BinStat> {
        let e = self.edges.edges();
        (0..self.opts.num_bins)
            .map(|b| {
                let cnt = self.bin_count[b];
                BinStat {
                    lower: e[b] as f64,
                    upper: e[b + 1] as f64,
                    count: cnt,
                    mean_confidence: (cnt > 0).then(|| self.bin_conf[b] / cnt as f64),
                    accuracy: (cnt > 0).then(|| self.bin_correct[b] as f64 / cnt as f64),
                }
            })
            .collect()
    }

    /// ECE and MCE from the equal-width bins.
    pub fn ece_mce(&self) -> (f64, f64) {
        crate::bins::binned_calibration_error(
            &self.bin_count,
            &self.bin_conf,
            &self.bin_correct,
            self.n as f64,
        )
    }

    /// Mean negative log-likelihood so far (0 when empty).
    pub fn mean_nll(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.nll_sum / self.n as f64
        }
    }

    /// Classwise ECE over `max(label) + 1` classes.
    pub fn cece(&self) -> f64 {
        let nb = self.opts.num_bins;
        let k_used = (self.max_label + 1).max(0) as usize;
        if k_used == 0 || self.n == 0 {
            return 0.0;
        }
        let n = self.n as f64;
        let mut total = 0.0;
        for k in 0..k_used {
            let mut sce = 0.0;
            // bins 1.. were scattered; bin 0 is what remains of the class totals
            let upper_count: u64 = self.cw_count[k * nb + 1..(k + 1) * nb].iter().sum();
            let upper_sum: f64 = self.cw_sum[k * nb + 1..(k + 1) * nb].iter().sum();
            for b in 0..nb {
                let (cnt, sum) = if b == 0 {
                    (
                        self.n - self.cw_zero[k] - upper_count,
                        self.cw_total_sum[k] - upper_sum,
                    )
                } else {
                    (self.cw_count[k * nb + b], self.cw_sum[k * nb + b])
                };
                if cnt == 0 {
                    continue;
                }
                let c = cnt as f64;
                sce += (sum / c - self.cw_pos[k * nb + b] as f64 / c).abs() * (c / n);
            }
            total += sce;
        }
        total / k_used as f64
    }

    /// The final metrics. Errors if no sample was added.
    pub fn finish(&self) -> Result<ClassificationMetrics, MetricError> {
        if self.n == 0 {
            return Err(MetricError::Empty);
        }
        let n = self.n as f64;
        let (ece, mce) = self.ece_mce();
        let (aece, aece_corrected) = if self.opts.keep_confidences {
            let (r, c) = self.store.adaptive_ece_both(self.opts.num_bins);
            (Some(r), Some(c))
        } else {
            (None, None)
        };
        let present: Vec<usize> = (0..self.classes)
            .filter(|&k| self.true_count[k] > 0 || self.pred_count[k] > 0)
            .collect();
        let macc = present
            .iter()
            .map(|&k| {
                if self.true_count[k] > 0 {
                    self.tp[k] as f64 / self.true_count[k] as f64
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / present.len() as f64;
        Ok(ClassificationMetrics {
            samples: self.n,
            classes: self.classes,
            num_bins: self.opts.num_bins,
            acc: self.top1 as f64 / n,
            acc_first_max: self.correct_first as f64 / n,
            acc_5: (self.classes > 5).then(|| self.top5 as f64 / n),
            macc,
            nll: self.nll_sum / n,
            ece,
            mce,
            aece,
            aece_corrected,
            cece: self.cece(),
            brier: (self.brier_sum + self.sq_sum) / n,
            mean_confidence: self.conf_sum / n,
            logits: (self.opts.kind == ScoreKind::Logits).then(|| LogitStats {
                mean_diffs: self.diffs_sum / n,
                max_diffs: self.maxdiff_sum / n,
                margin: self.margin_sum / n,
            }),
            bins: self.bin_stats(),
        })
    }
}

/// Computes every classification metric of `scores` (row-major N x C) in one call.
pub fn evaluate(
    scores: &[f32],
    labels: &[i64],
    classes: usize,
    opts: ClassificationOptions,
) -> Result<ClassificationMetrics, MetricError> {
    let mut acc = ClassificationAccumulator::new(classes, opts)?;
    acc.update(scores, labels)?;
    acc.finish()
}

/// The probabilities of row-major `N x classes` scores: the softmax of logits in the
/// reference's order (`exp(x - max)`, multiplied by `1 / sum`, as [`evaluate`] computes the
/// confidences), or the probabilities themselves. Call it on validated scores.
pub fn probabilities(scores: &[f32], classes: usize, kind: ScoreKind) -> Vec<f32> {
    match kind {
        ScoreKind::Probabilities => scores.to_vec(),
        ScoreKind::Logits => {
            let mut out = vec![0f32; scores.len()];
            for (o, row) in out
                .chunks_exact_mut(classes)
                .zip(scores.chunks_exact(classes))
            {
                let top = fastmath::max_min_sum(row).0;
                for (e, &x) in o.iter_mut().zip(row) {
                    *e = fastmath::exp(x - top);
                }
                let inv = 1.0f32 / fastmath::max_min_sum(o).2;
                o.iter_mut().for_each(|e| *e *= inv);
            }
            out
        }
    }
}

/// [`fastmath::row_stats`], in AVX2 registers when `AVX2` (set only by callers compiled for
/// AVX2, run after the CPU check).
#[inline(always)]
fn row_stats<const AVX2: bool>(row: &[f32]) -> fastmath::RowStats {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` implies the CPU has AVX2 (above).
        return unsafe { fastmath::row_stats_avx2(row) };
    }
    fastmath::row_stats(row)
}

/// [`fastmath::sum8`], in AVX2 registers when `AVX2` (as [`row_stats`]).
#[inline(always)]
fn sum8<const AVX2: bool>(v: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: as in `row_stats`.
        return unsafe { fastmath::sum8_avx2(v) };
    }
    fastmath::sum8(v)
}

/// What [`class_pass`] counts over a row of probabilities `p_k = e_k * inv`.
struct ClassPass {
    /// Probabilities above `p_y`.
    greater: u32,
    /// Probabilities equal to `p_y` (`p_y` itself included).
    equal: u32,
    /// Zero probabilities.
    zeros: u32,
    /// `Σ p²` in the 8-lane order (lane `i` takes classes `i mod 8`, folded by `fold8`).
    sq: f32,
}

/// One pass over the classes of a row: `ts[k] += p_k` (float64), the counts of
/// [`ClassPass`], and `above(k, p_k)` for every `p_k > edge1`, in class order. On x86_64 by
/// hand in SSE2, or in AVX2 when `AVX2` (only from a function compiled for AVX2) (LLVM turns
/// the portable loop's counters into scalar compares); the result is that of
/// [`class_pass_portable`] bit for bit.
#[inline(always)]
fn class_pass<const AVX2: bool>(
    e: &[f32],
    inv: f32,
    py: f32,
    edge1: f32,
    ts: &mut [f64],
    above: impl FnMut(usize, f32),
) -> ClassPass {
    #[cfg(target_arch = "x86_64")]
    {
        if AVX2 {
            // SAFETY: `AVX2` is set only by callers compiled for AVX2, run after the check.
            return unsafe { class_pass_avx2(e, inv, py, edge1, ts, above) };
        }
        // SAFETY: SSE2 is part of x86_64.
        unsafe { class_pass_sse2(e, inv, py, edge1, ts, above) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    class_pass_portable(e, inv, py, edge1, ts, above)
}

/// The definition of [`class_pass`].
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn class_pass_portable(
    e: &[f32],
    inv: f32,
    py: f32,
    edge1: f32,
    ts: &mut [f64],
    mut above: impl FnMut(usize, f32),
) -> ClassPass {
    let mut lanes = PassLanes::default();
    lanes.scalar(0, e, inv, py, edge1, ts, &mut above);
    lanes.finish()
}

/// The running counts of a class pass, `Σ p²` in 8 lanes (lane `k mod 8`).
#[derive(Default)]
struct PassLanes {
    greater: u32,
    equal: u32,
    zeros: u32,
    sq: [f32; 8],
}

impl PassLanes {
    /// The classes `from..` one at a time (`from` a multiple of 8, so lanes stay `k mod 8`):
    /// the whole portable pass, and the tail of the vector ones.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn scalar(
        &mut self,
        from: usize,
        e: &[f32],
        inv: f32,
        py: f32,
        edge1: f32,
        ts: &mut [f64],
        above: &mut impl FnMut(usize, f32),
    ) {
        let n = e.len().min(ts.len());
        for k in from..n {
            let p = e[k] * inv;
            self.greater += (p > py) as u32;
            self.equal += (p == py) as u32;
            self.zeros += (p <= 0.0) as u32;
            self.sq[k % 8] += p * p;
            ts[k] += p as f64;
            if p > edge1 {
                above(k, p);
            }
        }
    }

    #[inline(always)]
    fn finish(self) -> ClassPass {
        ClassPass {
            greater: self.greater,
            equal: self.equal,
            zeros: self.zeros,
            sq: fastmath::fold8(&self.sq),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn class_pass_sse2(
    e: &[f32],
    inv: f32,
    py: f32,
    edge1: f32,
    ts: &mut [f64],
    mut above: impl FnMut(usize, f32),
) -> ClassPass {
    use std::arch::x86_64::*;
    let n = e.len().min(ts.len());
    let full = n / 8 * 8;
    let mut sq = [0f32; 8];
    let (greater, equal, zeros);
    // SAFETY (whole block): loads of e[k..k + 8] and loads and stores of ts[k..k + 8] with
    // k + 8 <= full <= n, and stores into the 8-float array.
    unsafe {
        let (vinv, vpy, vedge, zero, one) = (
            _mm_set1_ps(inv),
            _mm_set1_ps(py),
            _mm_set1_ps(edge1),
            _mm_setzero_ps(),
            _mm_set1_ps(1.0),
        );
        let (mut gr, mut eq, mut ze) = (zero, zero, zero);
        let (mut q0, mut q1) = (zero, zero);
        let mut k = 0;
        while k < full {
            let p0 = _mm_mul_ps(_mm_loadu_ps(e.as_ptr().add(k)), vinv);
            let p1 = _mm_mul_ps(_mm_loadu_ps(e.as_ptr().add(k + 4)), vinv);
            gr = _mm_add_ps(gr, _mm_and_ps(_mm_cmpgt_ps(p0, vpy), one));
            gr = _mm_add_ps(gr, _mm_and_ps(_mm_cmpgt_ps(p1, vpy), one));
            eq = _mm_add_ps(eq, _mm_and_ps(_mm_cmpeq_ps(p0, vpy), one));
            eq = _mm_add_ps(eq, _mm_and_ps(_mm_cmpeq_ps(p1, vpy), one));
            ze = _mm_add_ps(ze, _mm_and_ps(_mm_cmple_ps(p0, zero), one));
            ze = _mm_add_ps(ze, _mm_and_ps(_mm_cmple_ps(p1, zero), one));
            q0 = _mm_add_ps(q0, _mm_mul_ps(p0, p0));
            q1 = _mm_add_ps(q1, _mm_mul_ps(p1, p1));
            let t = ts.as_mut_ptr().add(k);
            _mm_storeu_pd(t, _mm_add_pd(_mm_loadu_pd(t), _mm_cvtps_pd(p0)));
            let t2 = t.add(2);
            _mm_storeu_pd(
                t2,
                _mm_add_pd(_mm_loadu_pd(t2), _mm_cvtps_pd(_mm_movehl_ps(p0, p0))),
            );
            let t4 = t.add(4);
            _mm_storeu_pd(t4, _mm_add_pd(_mm_loadu_pd(t4), _mm_cvtps_pd(p1)));
            let t6 = t.add(6);
            _mm_storeu_pd(
                t6,
                _mm_add_pd(_mm_loadu_pd(t6), _mm_cvtps_pd(_mm_movehl_ps(p1, p1))),
            );
            let mut m = (_mm_movemask_ps(_mm_cmpgt_ps(p0, vedge))
                | (_mm_movemask_ps(_mm_cmpgt_ps(p1, vedge)) << 4)) as u32;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                above(k + i, *e.get_unchecked(k + i) * inv);
            }
            k += 8;
        }
        _mm_storeu_ps(sq.as_mut_ptr(), q0);
        _mm_storeu_ps(sq.as_mut_ptr().add(4), q1);
        let mut c = [0f32; 4];
        let mut total = |v: __m128| {
            _mm_storeu_ps(c.as_mut_ptr(), v);
            (c[0] + c[1] + c[2] + c[3]) as u32
        };
        greater = total(gr);
        equal = total(eq);
        zeros = total(ze);
    }
    let mut lanes = PassLanes {
        greater,
        equal,
        zeros,
        sq,
    };
    lanes.scalar(full, e, inv, py, edge1, ts, &mut above);
    lanes.finish()
}

/// [`class_pass_sse2`] with one 8-lane register where it takes two of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn class_pass_avx2(
    e: &[f32],
    inv: f32,
    py: f32,
    edge1: f32,
    ts: &mut [f64],
    mut above: impl FnMut(usize, f32),
) -> ClassPass {
    use std::arch::x86_64::*;
    let n = e.len().min(ts.len());
    let full = n / 8 * 8;
    let mut sq = [0f32; 8];
    let mut c = [0f32; 8];
    // SAFETY (whole block): loads of e[k..k + 8] and loads and stores of ts[k..k + 8] with
    // k + 8 <= full <= n, and stores into the 8-float arrays.
    let (greater, equal, zeros) = unsafe {
        let (vinv, vpy, vedge, zero, one) = (
            _mm256_set1_ps(inv),
            _mm256_set1_ps(py),
            _mm256_set1_ps(edge1),
            _mm256_setzero_ps(),
            _mm256_set1_ps(1.0),
        );
        let (mut gr, mut eq, mut ze, mut q) = (zero, zero, zero, zero);
        let mut k = 0;
        while k < full {
            let p = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), vinv);
            gr = _mm256_add_ps(gr, _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(p, vpy), one));
            eq = _mm256_add_ps(eq, _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(p, vpy), one));
            ze = _mm256_add_ps(ze, _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(p, zero), one));
            q = _mm256_add_ps(q, _mm256_mul_ps(p, p));
            let t = ts.as_mut_ptr().add(k);
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(p));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(p));
            _mm256_storeu_pd(t, _mm256_add_pd(_mm256_loadu_pd(t), lo));
            _mm256_storeu_pd(t.add(4), _mm256_add_pd(_mm256_loadu_pd(t.add(4)), hi));
            let mut m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(p, vedge)) as u32;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                above(k + i, *e.get_unchecked(k + i) * inv);
            }
            k += 8;
        }
        _mm256_storeu_ps(sq.as_mut_ptr(), q);
        let mut total = |v: __m256| {
            _mm256_storeu_ps(c.as_mut_ptr(), v);
            c.iter().sum::<f32>() as u32
        };
        (total(gr), total(eq), total(ze))
    };
    let mut lanes = PassLanes {
        greater,
        equal,
        zeros,
        sq,
    };
    lanes.scalar(full, e, inv, py, edge1, ts, &mut above);
    lanes.finish()
}

/// `a - b` as float32 arithmetic gives it (the reference's convention), or exactly in f64
/// where the float32 difference of two finite values overflows.
fn wide_diff(a: f32, b: f32) -> f64 {
    let d = a - b;
    if d.is_finite() {
        f64::from(d)
    } else {
        f64::from(a) - f64::from(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> (Vec<f32>, Vec<i64>) {
        let mut s = 7u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 6.0 - 3.0
        };
        let logits: Vec<f32> = (0..3000 * 7).map(|_| next()).collect();
        let labels: Vec<i64> = (0..3000).map(|i| (i * 5 % 7) as i64).collect();
        (logits, labels)
    }

    #[test]
    fn batches_merge_to_the_same_result() {
        let (l, y) = rows();
        let whole = evaluate(&l, &y, 7, ClassificationOptions::default()).unwrap();
        let mut acc = ClassificationAccumulator::new(7, ClassificationOptions::default()).unwrap();
        acc.update(&l[..7 * 1000], &y[..1000]).unwrap();
        acc.update(&l[7 * 1000..], &y[1000..]).unwrap();
        let parts = acc.finish().unwrap();
        assert_eq!(whole.samples, parts.samples);
        assert!((whole.ece - parts.ece).abs() < 1e-12);
        assert_eq!(whole.aece, parts.aece);
        assert!((whole.nll - parts.nll).abs() < 1e-12);
        assert!((whole.cece - parts.cece).abs() < 1e-12);
        assert_eq!(whole.acc, parts.acc);
    }

    /// Rows with ties (with the label's probability too), zero probabilities (logits far
    /// below the maximum) and lengths around the 8-lane chunks.
    fn hard_rows(c: usize, n: usize) -> (Vec<f32>, Vec<i64>) {
        let mut s = 99u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut l = Vec::with_capacity(n * c);
        for r in 0..n {
            for _ in 0..c {
                let x = next() * 6.0 - 3.0;
                l.push(match r % 4 {
                    0 => x.round(),              // ties
                    1 if next() < 0.2 => -200.0, // exp underflows to 0
                    _ => x,
                });
            }
        }
        let y = (0..n).map(|i| ((i * 7 + 3) % c) as i64).collect();
        (l, y)
    }

    #[test]
    fn class_pass_paths_are_the_definition_bit_for_bit() {
        for c in [2usize, 3, 8, 9, 15, 16, 17, 100] {
            let (l, y) = hard_rows(c, 64);
            let edge1 = BinEdges::equal_width(15).edges()[1];
            for (row, &yy) in l.chunks(c).zip(&y) {
                let m = row.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = row.iter().map(|&x| fastmath::exp(x - m)).collect();
                let inv = 1.0 / e.iter().sum::<f32>();
                let py = e[yy as usize] * inv;
                let run = |which: u8| {
                    let mut ts = vec![0.25f64; c];
                    let mut hits = Vec::new();
                    let f = |k: usize, p: f32| hits.push((k, p.to_bits()));
                    let r = match which {
                        0 => class_pass_portable(&e, inv, py, edge1, &mut ts, f),
                        #[cfg(target_arch = "x86_64")]
                        1 => unsafe { class_pass_sse2(&e, inv, py, edge1, &mut ts, f) },
                        #[cfg(target_arch = "x86_64")]
                        _ => unsafe { class_pass_avx2(&e, inv, py, edge1, &mut ts, f) },
                        #[cfg(not(target_arch = "x86_64"))]
                        _ => unreachable!(),
                    };
                    let ts: Vec<u64> = ts.iter().map(|t| t.to_bits()).collect();
                    (r.greater, r.equal, r.zeros, r.sq.to_bits(), ts, hits)
                };
                let want = run(0);
                #[cfg(target_arch = "x86_64")]
                {
                    assert_eq!(run(1), want, "sse2, {c} classes");
                    if std::arch::is_x86_feature_detected!("avx2") {
                        assert_eq!(run(2), want, "avx2, {c} classes");
                    }
                }
            }
        }
    }

    #[test]
    fn portable_and_dispatched_kernels_agree_exactly() {
        for c in [2usize, 7, 16, 100] {
            let (l, y) = hard_rows(c, 500);
            let opts = ClassificationOptions {
                keep_samples: true,
                ..Default::default()
            };
            let mut a = ClassificationAccumulator::new(c, opts.clone()).unwrap();
            a.process_rows(&l, &y, 0).unwrap();
            let mut b = ClassificationAccumulator::new(c, opts).unwrap();
            b.logits_kernel::<false>(&l, &y, 0).unwrap();
            assert_eq!(a.finish().unwrap(), b.finish().unwrap(), "{c} classes");
            assert_eq!(a.sample_nll(), b.sample_nll());
        }
    }

    #[test]
    fn serialised_accumulators_merge_and_tampered_ones_are_refused() {
        let (l, y) = rows();
        let whole = evaluate(&l, &y, 7, ClassificationOptions::default()).unwrap();
        let mut a = ClassificationAccumulator::new(7, ClassificationOptions::default()).unwrap();
        a.update(&l[..7 * 1200], &y[..1200]).unwrap();
        let mut b = ClassificationAccumulator::new(7, ClassificationOptions::default()).unwrap();
        b.update(&l[7 * 1200..], &y[1200..]).unwrap();
        let sent = serde_json::to_string(&b).unwrap();
        let got: ClassificationAccumulator = serde_json::from_str(&sent).unwrap();
        let mut merged = a.clone();
        merged.merge(&got).unwrap();
        let m = merged.finish().unwrap();
        assert_eq!(
            (m.samples, m.acc, m.aece),
            (whole.samples, whole.acc, whole.aece)
        );
        assert!((m.ece - whole.ece).abs() < 1e-12 && (m.cece - whole.cece).abs() < 1e-12);
        let mut v: serde_json::Value = serde_json::from_str(&sent).unwrap();
        v["cw_zero"] = serde_json::json!([0, 0]);
        let bad: ClassificationAccumulator = serde_json::from_value(v).unwrap();
        let before = a.finish().unwrap();
        assert!(matches!(a.merge(&bad), Err(MetricError::Invalid(_))));
        assert_eq!(a.finish().unwrap(), before);
    }

    #[test]
    fn probabilities_match_logits() {
        let (l, y) = rows();
        let mut probs = Vec::with_capacity(l.len());
        for row in l.chunks(7) {
            let m = row.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = row.iter().map(|x| (x - m).exp()).collect();
            let s: f32 = e.iter().sum();
            probs.extend(e.iter().map(|v| v / s));
        }
        let a = evaluate(&l, &y, 7, ClassificationOptions::default()).unwrap();
        let opts = ClassificationOptions {
            kind: ScoreKind::Probabilities,
            ..Default::default()
        };
        let b = evaluate(&probs, &y, 7, opts).unwrap();
        assert!((a.ece - b.ece).abs() < 1e-4, "{} {}", a.ece, b.ece);
        assert!((a.nll - b.nll).abs() < 1e-4);
        assert!((a.brier - b.brier).abs() < 1e-4);
        assert!(b.logits.is_none());
    }

    #[test]
    fn perfect_confident_predictions() {
        let l = vec![20.0f32, 0.0, 0.0, 20.0];
        let m = evaluate(&l, &[0, 1], 2, ClassificationOptions::default()).unwrap();
        assert_eq!(m.acc, 1.0);
        assert!(m.ece < 1e-6 && m.nll < 1e-6 && m.brier < 1e-12);
    }

    #[test]
    fn bad_input_is_an_error() {
        let opts = ClassificationOptions::default;
        assert!(matches!(
            ClassificationAccumulator::new(1, opts()),
            Err(MetricError::TooFewClasses(1))
        ));
        assert!(matches!(
            evaluate(&[0.0; 5], &[0, 1], 2, opts()),
            Err(MetricError::Shape { .. })
        ));
        assert!(matches!(
            evaluate(&[0.0, 1.0, f32::NAN, 0.0], &[0, 1], 2, opts()),
            Err(MetricError::NonFinite {
                sample: 1,
                class: 0,
                ..
            })
        ));
        assert!(matches!(
            evaluate(&[0.0, 1.0, 0.0, f32::INFINITY], &[0, 1], 2, opts()),
            Err(MetricError::NonFinite {
                sample: 1,
                class: 1,
                ..
            })
        ));
        assert!(matches!(
            evaluate(&[0.0, 1.0, 0.0, 1.0], &[0, 2], 2, opts()),
            Err(MetricError::LabelOutOfRange {
                label: 2,
                sample: 1,
                ..
            })
        ));
        assert!(matches!(
            evaluate(&[0.0, 1.0], &[-1], 2, opts()),
            Err(MetricError::LabelOutOfRange { .. })
        ));
        let p = ClassificationOptions {
            kind: ScoreKind::Probabilities,
            ..Default::default()
        };
        assert!(matches!(
            evaluate(&[0.7, 0.7], &[0], 2, p),
            Err(MetricError::NotProbabilities { .. })
        ));
        assert!(matches!(
            evaluate(&[], &[], 2, opts()),
            Err(MetricError::Empty)
        ));
    }
}
