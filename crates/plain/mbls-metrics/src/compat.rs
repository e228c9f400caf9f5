//! Calibration errors exactly as other libraries compute them, so that a number can be
//! compared with a paper that used one of them (`mbls eval --ece-compat LIB`).
//!
//! Every function takes per-sample confidences and 0/1 targets: for a multiclass problem the
//! top-label confidence `max_k p_k` and whether its class is the label; for a binary problem
//! given as `p(positive)`, that probability and the label (which is what `torchmetrics`'
//! `binary_calibration_error` and netcal's binary path measure). The conventions, read from
//! the libraries' sources and checked against their outputs
//! (`tests/data/compat_parity.json`, made by `bench/compat_parity.sh`):
//!
//! | library | bins | membership | weighting |
//! |---|---|---|---|
//! | torchmetrics 1.9 | `torch.linspace(0, 1, n+1)` in float32, plus a bin of its own for 1.0 | `[lo, hi)` | count; `max` over all bins; `l2` = sqrt of the count-weighted mean square |
//! | netcal 1.4 | float64 `linspace` (or quantiles of the confidences) after clipping to `[eps, 1-eps]` | `[lo, hi)`, counted with float64 edges but averaged with edges cast to float32 for float32 input | ECE by count, MCE max, ACE plain mean over non-empty bins |
//! | scikit-learn 1.9 | `calibration_curve`, `uniform` or `quantile` (numpy `percentile`) | `(lo, hi]`, the first bin closed | empty bins dropped; its ECE = count-weighted mean gap of the curve |
//!
//! The reference's own ECE (the default everywhere else in mbls) uses float32 `i/n` edges
//! and `(lo, hi]`: see [`crate::bins`].

use crate::MetricError;

/// A library whose binning and averaging [`compat`] reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Library {
    /// torchmetrics 1.9 `multiclass_calibration_error` / `binary_calibration_error`.
    Torchmetrics,
    /// netcal 1.4 `ECE`, `MCE`, `ACE` (`equal_intervals=True`).
    Netcal,
    /// scikit-learn 1.9 `calibration_curve` (which has no ECE of its own).
    Sklearn,
}

impl Library {
    /// Every library, in the order of the help text.
    pub const ALL: [Library; 3] = [Library::Torchmetrics, Library::Netcal, Library::Sklearn];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Library::Torchmetrics => "torchmetrics",
            Library::Netcal => "netcal",
            Library::Sklearn => "sklearn",
        }
    }

    /// The library's own default number of bins (torchmetrics 15, netcal 10, scikit-learn's
    /// `calibration_curve` 5).
    pub fn default_bins(self) -> usize {
        match self {
            Library::Torchmetrics => 15,
            Library::Netcal => 10,
            Library::Sklearn => 5,
        }
    }

    /// Parses a name (`torchmetrics`, `netcal`, `sklearn` or `scikit-learn`).
    pub fn parse(s: &str) -> Result<Library, MetricError> {
        let l = s.trim().to_ascii_lowercase();
        match l.as_str() {
            "torchmetrics" | "tm" => Ok(Library::Torchmetrics),
            "netcal" => Ok(Library::Netcal),
            "sklearn" | "scikit-learn" => Ok(Library::Sklearn),
            _ => {
                let names: Vec<&str> = Library::ALL.iter().map(|l| l.name()).collect();
                let closest = names
                    .iter()
                    .copied()
                    .min_by_key(|n| strsim::levenshtein(n, &l))
                    .unwrap_or("torchmetrics");
                Err(MetricError::Invalid(format!(
                    "unknown ECE convention {s:?}: did you mean {closest:?}? ({})",
                    names.join(", ")
                )))
            }
        }
    }

    /// The version whose behaviour is reproduced.
    pub fn version(self) -> &'static str {
        match self {
            Library::Torchmetrics => "1.9.0",
            Library::Netcal => "1.4.0",
            Library::Sklearn => "1.9.1",
        }
    }
}

/// One bin of a compatibility report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompatBin {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Samples in the bin.
    pub count: u64,
    /// Mean confidence (`None` when empty).
    pub mean_confidence: Option<f64>,
    /// Mean target (`None` when empty).
    pub accuracy: Option<f64>,
}

/// The calibration errors of one library's convention.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompatReport {
    /// Whose convention.
    pub library: Library,
    /// The library version reproduced.
    pub version: &'static str,
    /// Number of bins.
    pub num_bins: usize,
    /// Expected calibration error (torchmetrics `norm="l1"`, netcal `ECE`, scikit-learn's
    /// uniform curve weighted by counts).
    pub ece: f64,
    /// Maximum calibration error (torchmetrics `norm="max"`, netcal `MCE`).
    pub mce: Option<f64>,
    /// torchmetrics `norm="l2"`.
    pub l2: Option<f64>,
    /// netcal `ACE`: the plain mean gap over non-empty equal-width bins.
    pub ace: Option<f64>,
    /// netcal's ECE with `equal_intervals=False`, or scikit-learn's quantile curve.
    pub ece_equal_mass: Option<f64>,
    /// The bins of the main (equal-width) binning.
    pub bins: Vec<CompatBin>,
}

/// The most bins of any binning (as for the reference's ECE).
const MAX_BINS: usize = 100_000;

fn check(conf: &[f32], target: &[bool], bins: usize) -> Result<(), MetricError> {
    if conf.len() != target.len() {
        return Err(MetricError::Shape {
            what: "targets",
            expected: conf.len(),
            found: target.len(),
        });
    }
    if conf.is_empty() {
        return Err(MetricError::Empty);
    }
    if bins == 0 || bins > MAX_BINS {
        return Err(MetricError::Invalid(format!(
            "number of bins must be in 1..={MAX_BINS}, got {bins}"
        )));
    }
    if let Some((i, &c)) = conf
        .iter()
        .enumerate()
        .find(|(_, c)| !(0.0..=1.0).contains(*c))
    {
        return Err(MetricError::Invalid(format!(
            "confidence {c} at sample {i} is outside [0, 1]"
        )));
    }
    Ok(())
}

/// The convention of `library` with `bins` bins.
pub fn compat(
    library: Library,
    conf: &[f32],
    target: &[bool],
    bins: usize,
) -> Result<CompatReport, MetricError> {
    check(conf, target, bins)?;
    let version = library.version();
    Ok(match library {
        Library::Torchmetrics => {
            let t = torchmetrics(conf, target, bins);
            CompatReport {
                library,
                version,
                num_bins: bins,
                ece: t.l1,
                mce: Some(t.max),
                l2: Some(t.l2),
                ace: None,
                ece_equal_mass: None,
                bins: t.bins,
            }
        }
        Library::Netcal => {
            let w = netcal(conf, target, bins, false, Precision::F32);
            let m = netcal(conf, target, bins, true, Precision::F32);
            CompatReport {
                library,
                version,
                num_bins: bins,
                ece: w.ece,
                mce: Some(w.mce),
                l2: None,
                ace: Some(w.ace),
                ece_equal_mass: Some(m.ece),
                bins: w.bins,
            }
        }
        Library::Sklearn => {
            let u = sklearn_curve(conf, target, bins, Strategy::Uniform);
            let q = sklearn_curve(conf, target, bins, Strategy::Quantile);
            CompatReport {
                library,
                version,
                num_bins: bins,
                ece: u.ece,
                mce: None,
                l2: None,
                ace: None,
                ece_equal_mass: Some(q.ece),
                bins: u.bins,
            }
        }
    })
}

// --------------------------------------------------------------------------- torchmetrics

/// torchmetrics' `_ce_compute` on float32 confidences.
#[derive(Debug, Clone, PartialEq)]
pub struct Torchmetrics {
    /// `norm="l1"`: the ECE.
    pub l1: f64,
    /// `norm="l2"`.
    pub l2: f64,
    /// `norm="max"`.
    pub max: f64,
    /// The `n + 1` edges of `torch.linspace(0, 1, n + 1, dtype=float32)` (the reference's
    /// edges too: [`crate::BinEdges::equal_width`]).
    pub edges: Vec<f32>,
    /// `n + 1` bins: the last holds the confidences equal to 1.0.
    pub bins: Vec<CompatBin>,
}

/// torchmetrics' binning: `[e_i, e_{i+1})` on float32 edges with 1.0 in a bin of its own;
/// sums in float32 in input order as its `scatter_add_` does.
pub fn torchmetrics(conf: &[f32], target: &[bool], n: usize) -> Torchmetrics {
    let edges = crate::BinEdges::equal_width(n).edges().to_vec();
    let mut count = vec![0f32; n + 1];
    let mut sc = vec![0f32; n + 1];
    let mut sa = vec![0f32; n + 1];
    let mut counts = vec![0u64; n + 1];
    for (&c, &t) in conf.iter().zip(target) {
        // bucketize(right=True) - 1: the number of edges <= c, minus one
        let b = edges.partition_point(|&e| e <= c) - 1;
        count[b] += 1.0;
        counts[b] += 1;
        sc[b] += c;
        sa[b] += f32::from(u8::from(t));
    }
    let total: f32 = count.iter().sum();
    let (mut l1, mut l2, mut max) = (0f32, 0f32, 0f32);
    let mut bins = Vec::with_capacity(n + 1);
    for b in 0..=n {
        let (cb, ab) = if count[b] > 0.0 {
            (sc[b] / count[b], sa[b] / count[b])
        } else {
            (0.0, 0.0)
        };
        let prop = count[b] / total;
        let gap = (ab - cb).abs();
        l1 += gap * prop;
        l2 += (ab - cb) * (ab - cb) * prop;
        max = max.max(gap);
        bins.push(CompatBin {
            lower: edges[b] as f64,
            upper: edges.get(b + 1).map_or(1.0, |&e| e as f64),
            count: counts[b],
            mean_confidence: (counts[b] > 0).then_some(cb as f64),
            accuracy: (counts[b] > 0).then_some(ab as f64),
        });
    }
    Torchmetrics {
        l1: l1 as f64,
        l2: if l2 > 0.0 { l2.sqrt() as f64 } else { 0.0 },
        max: max as f64,
        edges,
        bins,
    }
}

// --------------------------------------------------------------------------------- netcal

/// The dtype netcal was given the probabilities in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// float32 arrays: clipped to `[eps32, 1 - eps32]`; scipy casts the edges to float32 for
    /// the bin means while numpy counts with float64 edges.
    F32,
    /// The same values as float64 (`X.astype(np.float64)`): both binnings agree.
    F64,
}

/// netcal's ECE, MCE and ACE.
#[derive(Debug, Clone, PartialEq)]
pub struct Netcal {
    /// `ECE`: gaps weighted by the bins' counts.
    pub ece: f64,
    /// `MCE`: the largest gap (empty bins 0).
    pub mce: f64,
    /// `ACE`: the mean gap over non-empty bins.
    pub ace: f64,
    /// The float64 edges.
    pub edges: Vec<f64>,
    /// The bins (counts of numpy's `histogramdd`, means of scipy's `binned_statistic_dd`).
    pub bins: Vec<CompatBin>,
}

/// numpy's `linspace(0, 1, n + 1)` in float64: `i * (1 / n)`, the last exactly 1.
pub fn numpy_linspace(n: usize) -> Vec<f64> {
    let step = 1.0 / n as f64;
    let mut v: Vec<f64> = (0..=n).map(|i| i as f64 * step).collect();
    v[n] = 1.0;
    v
}

/// numpy's `quantile(sorted, q)` with the default `linear` method, for values of the given
/// precision (the difference `b - a` is taken in that precision, the rest in float64).
fn numpy_quantile(sorted: &[f64], q: f64, precision: Precision) -> f64 {
    let n = sorted.len();
    let virt = (n - 1) as f64 * q;
    if virt >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    if virt <= 0.0 {
        return sorted[0];
    }
    let prev = virt.floor() as usize;
    let g = virt - prev as f64;
    let (a, b) = (sorted[prev], sorted[prev + 1]);
    let diff = match precision {
        Precision::F32 => (b as f32 - a as f32) as f64,
        Precision::F64 => b - a,
    };
    if g >= 0.5 {
        b - diff * (1.0 - g)
    } else {
        a + diff * g
    }
}

/// netcal's binning with `bins` equal-width (or, with `equal_mass`, quantile) bins.
pub fn netcal(
    conf: &[f32],
    target: &[bool],
    bins: usize,
    equal_mass: bool,
    precision: Precision,
) -> Netcal {
    // clip to [eps, 1 - eps] of the dtype
    let clipped: Vec<f64> = match precision {
        Precision::F32 => {
            let e = f32::EPSILON;
            conf.iter().map(|&c| c.clamp(e, 1.0 - e) as f64).collect()
        }
        Precision::F64 => {
            let e = f64::EPSILON;
            conf.iter().map(|&c| (c as f64).clamp(e, 1.0 - e)).collect()
        }
    };
    let edges = if equal_mass {
        let mut s = clipped.clone();
        s.sort_by(f64::total_cmp);
        let q = numpy_linspace(bins);
        let mut e: Vec<f64> = q
            .iter()
            .map(|&q| numpy_quantile(&s, q, precision))
            .collect();
        e[0] = 0.0;
        e[bins] = 1.0;
        e
    } else {
        numpy_linspace(bins)
    };
    // the means' edges: cast to the sample dtype by scipy
    let mean_edges: Vec<f64> = match precision {
        Precision::F32 => edges.iter().map(|&e| e as f32 as f64).collect(),
        Precision::F64 => edges.clone(),
    };
    let bin_of = |edges: &[f64], v: f64| -> Option<usize> {
        // searchsorted(side="right") - 1; a value on the last edge joins the last bin
        let i = edges.partition_point(|&e| e <= v);
        if v == edges[bins] {
            Some(bins - 1)
        } else if i == 0 || i > bins {
            None
        } else {
            Some(i - 1)
        }
    };
    let mut count = vec![0u64; bins];
    let mut mcount = vec![0u64; bins];
    let mut sa = vec![0f64; bins];
    let mut sc = vec![0f64; bins];
    for (&v, &t) in clipped.iter().zip(target) {
        if let Some(b) = bin_of(&edges, v) {
            count[b] += 1;
        }
        if let Some(b) = bin_of(&mean_edges, v) {
            mcount[b] += 1;
            sa[b] += f64::from(u8::from(t));
            sc[b] += v;
        }
    }
    let total: u64 = count.iter().sum();
    let (mut ece, mut mce, mut gaps, mut nonempty) = (0.0, 0.0f64, 0.0, 0usize);
    let mut out = Vec::with_capacity(bins);
    for b in 0..bins {
        let ok = count[b] >= 1 && mcount[b] > 0;
        let (cb, ab) = if ok {
            (sc[b] / mcount[b] as f64, sa[b] / mcount[b] as f64)
        } else {
            (0.0, 0.0)
        };
        let dev = (ab - cb).abs();
        ece += dev * (count[b] as f64 / total as f64);
        mce = mce.max(dev);
        if count[b] > 0 {
            gaps += dev;
            nonempty += 1;
        }
        out.push(CompatBin {
            lower: edges[b],
            upper: edges[b + 1],
            count: count[b],
            mean_confidence: ok.then_some(cb),
            accuracy: ok.then_some(ab),
        });
    }
    Netcal {
        ece,
        mce,
        ace: if nonempty > 0 {
            gaps / nonempty as f64
        } else {
            0.0
        },
        edges,
        bins: out,
    }
}

// -------------------------------------------------------------------------------- sklearn

/// `calibration_curve`'s `strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Equal-width bins.
    Uniform,
    /// Bin edges at numpy `percentile`s of the confidences.
    Quantile,
}

/// scikit-learn's `calibration_curve` and the count-weighted ECE of its bins.
#[derive(Debug, Clone, PartialEq)]
pub struct SklearnCurve {
    /// The `n + 1` edges.
    pub edges: Vec<f64>,
    /// `prob_true` of the non-empty bins.
    pub prob_true: Vec<f64>,
    /// `prob_pred` of the non-empty bins.
    pub prob_pred: Vec<f64>,
    /// Counts of the non-empty bins.
    pub counts: Vec<u64>,
    /// `Σ count_b |prob_true_b - prob_pred_b| / N`.
    pub ece: f64,
    /// Every bin, empty ones included.
    pub bins: Vec<CompatBin>,
}

/// scikit-learn's `calibration_curve(target, conf, n_bins=n, strategy=...)`: right-closed
/// bins `(e_{i-1}, e_i]` (the first closed), compared in float64, empty bins dropped.
pub fn sklearn_curve(conf: &[f32], target: &[bool], n: usize, strategy: Strategy) -> SklearnCurve {
    let edges = match strategy {
        Strategy::Uniform => numpy_linspace(n),
        Strategy::Quantile => {
            let mut s: Vec<f64> = conf.iter().map(|&c| c as f64).collect();
            s.sort_by(f64::total_cmp);
            // np.percentile(p, linspace(0, 1, n + 1) * 100): q is divided by 100 again
            numpy_linspace(n)
                .iter()
                .map(|&q| numpy_quantile(&s, q * 100.0 / 100.0, Precision::F32))
                .collect()
        }
    };
    let inner = &edges[1..n];
    let mut count = vec![0u64; n];
    let mut st = vec![0f64; n];
    let mut sp = vec![0f64; n];
    for (&c, &t) in conf.iter().zip(target) {
        let v = c as f64;
        // searchsorted(side="left"): the number of inner edges < v
        let b = inner.partition_point(|&e| e < v);
        count[b] += 1;
        st[b] += f64::from(u8::from(t));
        sp[b] += v;
    }
    let total = conf.len() as f64;
    let mut c = SklearnCurve {
        edges: edges.clone(),
        prob_true: Vec::new(),
        prob_pred: Vec::new(),
        counts: Vec::new(),
        ece: 0.0,
        bins: Vec::with_capacity(n),
    };
    for b in 0..n {
        let ok = count[b] > 0;
        if ok {
            let (pt, pp) = (st[b] / count[b] as f64, sp[b] / count[b] as f64);
            c.prob_true.push(pt);
            c.prob_pred.push(pp);
            c.counts.push(count[b]);
            c.ece += count[b] as f64 * (pt - pp).abs();
        }
        c.bins.push(CompatBin {
            lower: edges[b],
            upper: edges[b + 1],
            count: count[b],
            mean_confidence: ok.then(|| sp[b] / count[b] as f64),
            accuracy: ok.then(|| st[b] / count[b] as f64),
        });
    }
    c.ece /= total;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions_differ_on_an_edge_and_on_one() {
        // a confidence exactly on an edge and one of exactly 1.0
        let conf = [0.5f32, 1.0, 0.25, 0.75];
        let hit = [true, false, true, true];
        let t = torchmetrics(&conf, &hit, 2);
        // [0, .5) [.5, 1) [1, 1]: 0.5 goes up, 1.0 has a bin of its own
        let counts: Vec<u64> = t.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, [1, 2, 1]);
        let s = sklearn_curve(&conf, &hit, 2, Strategy::Uniform);
        // (0, .5] (.5, 1]: 0.5 goes down, 1.0 joins the last bin
        assert_eq!(s.counts, [2, 2]);
        let n = netcal(&conf, &hit, 2, false, Precision::F32);
        // clipped 1.0 stays below the last edge: [0, .5) [.5, 1)
        assert_eq!(n.bins.iter().map(|b| b.count).collect::<Vec<_>>(), [1, 3]);
        let top = (0.5 + (1.0 - f32::EPSILON) as f64 + 0.75) / 3.0;
        let gaps = [0.75, (2.0 / 3.0 - top).abs()];
        assert!((n.ace - (gaps[0] + gaps[1]) / 2.0).abs() < 1e-15);
        assert!((n.ece - (gaps[0] + 3.0 * gaps[1]) / 4.0).abs() < 1e-15);
        assert!((n.mce - gaps[0]).abs() < 1e-15);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(compat(Library::Netcal, &[0.5], &[true, false], 10).is_err());
        assert!(compat(Library::Netcal, &[], &[], 10).is_err());
        assert!(compat(Library::Netcal, &[1.5], &[true], 10).is_err());
        assert!(compat(Library::Netcal, &[f32::NAN], &[true], 10).is_err());
        assert!(compat(Library::Sklearn, &[0.5], &[true], 0).is_err());
        let e = Library::parse("torchmetric").unwrap_err().to_string();
        assert!(e.contains("\"torchmetrics\""), "{e}");
        assert_eq!(Library::parse("scikit-learn").unwrap(), Library::Sklearn);
    }
}
