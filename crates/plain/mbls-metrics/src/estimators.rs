//! Calibration errors beyond the binned ECE, each in its top-label and class-wise forms.
//!
//! - **Smooth ECE** (Błasiok & Nakkiran 2023, `relplot.smECE`): the mean absolute residual
//!   `E|E[f - y | f]|` after smoothing the residuals with a reflected Gaussian kernel whose
//!   bandwidth σ is the fixed point `smECE_σ = σ`; no bins.
//! - **Debiased L2 ECE** (Kumar et al. 2019, `calibration.get_calibration_error`): the
//!   root of `Σ_b (n_b/N) [(p̄_b - ȳ_b)² - ȳ_b(1 - ȳ_b)/(n_b - 1)]` over 15 equal-mass bins,
//!   which removes the squared ECE's upward bias from finite bins; the class-wise form is
//!   the root mean over classes of the squared per-class errors (their "marginal" error).
//! - **Kolmogorov-Smirnov calibration error** (Gupta et al. 2021): the largest gap between the
//!   cumulative sums of targets and of confidences, in confidence order, divided by N.
//!
//! Top-label: the confidence is `max_k p_k` and the target whether that class is the label.
//! Class-wise: one-vs-rest `p_k` against `y == k` for every class, then averaged (the mean for
//! smooth ECE and KS, the root mean square for the L2 error). The binary case (one column of
//! `p(positive)`) is the one-vs-rest case of class 1.
//!
//! The conventions are those of relplot 1.0.3 and uncertainty-calibration 0.1.4, checked
//! against their outputs (`tests/compat_parity.rs`).

use crate::MetricError;
use rayon::prelude::*;

/// Smooth ECE and the bandwidth it settled on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SmoothEce {
    /// The smooth ECE.
    pub value: f64,
    /// The kernel bandwidth σ (a multiple of 2⁻¹⁰, or 1).
    pub sigma: f64,
}

/// numpy's `linspace(0, 1, m)`.
fn linspace(m: usize) -> Vec<f64> {
    let step = 1.0 / (m - 1) as f64;
    let mut v: Vec<f64> = (0..m).map(|i| i as f64 * step).collect();
    v[m - 1] = 1.0;
    v
}

/// relplot's kernel smoothing of weights `w` placed at `f`, read at the points `t`.
fn smooth_at(f: &[f64], w: impl Fn(usize) -> f64, sigma: f64, t: &[f64]) -> Vec<f64> {
    let m = (2000f64.max((20.0 / sigma).round_ties_even()) as usize) / 2 + 1;
    let scale = (m - 1) as f64;
    // linear splatting onto the grid j / (m - 1)
    let mut v = vec![0f64; m];
    for (i, &x) in f.iter().enumerate() {
        let g = x * scale;
        let b = (g as i64).clamp(0, m as i64 - 2) as usize;
        let fr = g - b as f64;
        let wi = w(i);
        v[b] += (1.0 - fr) * wi;
        v[b + 1] += fr * wi;
    }
    // a Gaussian pdf sampled on the grid, centred at 0.5
    let norm = (2.0 * std::f64::consts::PI).sqrt() * sigma;
    let ker: Vec<f64> = linspace(m)
        .iter()
        .map(|&k| (-(k - 0.5) * (k - 0.5) / (2.0 * sigma * sigma)).exp() / norm)
        .collect();
    // reflect about 0 and 1 without repeating the end points, then a 'valid' convolution
    let mut ext = Vec::with_capacity(3 * m - 2);
    ext.extend(v[1..].iter().rev());
    ext.extend_from_slice(&v);
    ext.extend(v[..m - 1].iter().rev());
    let flipped: Vec<f64> = ker.iter().rev().copied().collect();
    let sm: Vec<f64> = (m / 2..m / 2 + m)
        .map(|i| ext[i..i + m].iter().zip(&flipped).map(|(a, b)| a * b).sum())
        .collect();
    // linear interpolation at t
    let h = 1.0 / scale;
    t.iter()
        .map(|&x| {
            let i = ((x * scale) as i64).clamp(0, m as i64 - 2) as usize;
            let r = (x - i as f64 * h) / h;
            sm[i] * (1.0 - r) + sm[i + 1] * r
        })
        .collect()
}

/// Smooth ECE at a fixed bandwidth (relplot's `smooth_ece(f, y, sigma)`).
pub fn smooth_ece_at(conf: &[f64], target: &[bool], sigma: f64) -> f64 {
    let pts = 200f64.max((10.0 / sigma).round_ties_even()) as usize;
    let t = linspace(pts);
    let y = |i: usize| f64::from(u8::from(target[i]));
    let num = smooth_at(conf, |i| conf[i] - y(i), sigma, &t);
    let den: Vec<f64> = smooth_at(conf, |_| 1.0, sigma, &t)
        .into_iter()
        .map(|d| d + 1e-4)
        .collect();
    let total: f64 = den.iter().sum();
    num.iter()
        .zip(&den)
        .map(|(n, d)| (n / d).abs() * d)
        .sum::<f64>()
        / total
}

/// Smooth ECE with relplot's bandwidth search: σ = 1 if `smECE(1) > 1`, else ten bisection
/// steps on (0, 1] for the fixed point, keeping the upper end.
pub fn smooth_ece(conf: &[f32], target: &[bool]) -> Result<SmoothEce, MetricError> {
    check(conf, target)?;
    let f: Vec<f64> = conf.iter().map(|&c| c as f64).collect();
    let ece = |s: f64| smooth_ece_at(&f, target, s);
    if 1.0 < ece(1.0) {
        return Ok(SmoothEce {
            value: ece(1.0),
            sigma: 1.0,
        });
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..10 {
        let mid = (hi + lo) / 2.0;
        if mid < 0.001 || mid < ece(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(SmoothEce {
        value: ece(hi),
        sigma: hi,
    })
}

/// uncertainty-calibration's equal-mass bin upper edges: the sorted values split into
/// `num_bins` parts (the first `N mod num_bins` one longer), each boundary the float32
/// midpoint of neighbouring parts, then 1.0; duplicates removed.
pub fn equal_mass_upper_edges(p: &[f32], num_bins: usize) -> Vec<f64> {
    let mut s = p.to_vec();
    s.sort_by(f32::total_cmp);
    let parts = num_bins.min(s.len()).max(1);
    let (base, extra) = (s.len() / parts, s.len() % parts);
    let mut ends = Vec::with_capacity(parts);
    let mut at = 0;
    for i in 0..parts {
        at += base + usize::from(i < extra);
        ends.push(at);
    }
    let mut b: Vec<f64> = ends[..parts - 1]
        .iter()
        .map(|&e| ((s[e - 1] + s[e]) / 2.0) as f64)
        .collect();
    b.push(1.0);
    b.sort_by(f64::total_cmp);
    b.dedup();
    b
}

/// The binned `L_p` calibration error of uncertainty-calibration on right-closed bins with
/// the given upper edges: plug-in `(Σ_b (n_b/N) |p̄_b - ȳ_b|^p)^(1/p)`, or for `p = 2` with
/// `debias` its debiased estimate (bins of fewer than 2 samples skipped, clamped at 0).
pub fn binned_lp_error(p: &[f32], target: &[bool], upper: &[f64], power: f64, debias: bool) -> f64 {
    let nb = upper.len();
    let mut count = vec![0u64; nb];
    let mut sp = vec![0f64; nb];
    let mut sy = vec![0f64; nb];
    for (&x, &t) in p.iter().zip(target) {
        // searchsorted(side="left"): the number of edges < x
        let b = upper.partition_point(|&e| e < x as f64).min(nb - 1);
        count[b] += 1;
        sp[b] += x as f64;
        sy[b] += f64::from(u8::from(t));
    }
    let n = p.len() as f64;
    let mut total = 0.0;
    for b in 0..nb {
        let k = count[b];
        if k == 0 || (debias && k < 2) {
            continue;
        }
        let (pm, ym) = (sp[b] / k as f64, sy[b] / k as f64);
        let err = if debias {
            (pm - ym).powi(2) - ym * (1.0 - ym) / (k as f64 - 1.0)
        } else {
            (pm - ym).abs().powf(power)
        };
        total += k as f64 / n * err;
    }
    if debias {
        total.max(0.0).sqrt()
    } else {
        total.powf(1.0 / power)
    }
}

/// The debiased L2 calibration error of Kumar et al. over `num_bins` equal-mass bins (their
/// default 15).
pub fn debiased_l2_error(
    conf: &[f32],
    target: &[bool],
    num_bins: usize,
) -> Result<f64, MetricError> {
    check(conf, target)?;
    Ok(binned_lp_error(
        conf,
        target,
        &equal_mass_upper_edges(conf, num_bins),
        2.0,
        true,
    ))
}

/// The Kolmogorov-Smirnov calibration error: `max_i |Σ_{j<=i} (y_j - c_j)| / N` with the
/// samples in increasing confidence order, the maximum taken at the ends of runs of equal
/// confidences so that the order within ties does not matter.
pub fn ks_error(conf: &[f32], target: &[bool]) -> Result<f64, MetricError> {
    check(conf, target)?;
    let mut order: Vec<u32> = (0..conf.len() as u32).collect();
    order.par_sort_by(|&a, &b| conf[a as usize].total_cmp(&conf[b as usize]));
    let (mut s, mut best) = (0f64, 0f64);
    for (j, &i) in order.iter().enumerate() {
        let i = i as usize;
        s += f64::from(u8::from(target[i])) - conf[i] as f64;
        // only at the end of a run of equal confidences: the order within ties is arbitrary
        let last = order
            .get(j + 1)
            .is_none_or(|&n| conf[n as usize] != conf[i]);
        if last {
            best = best.max(s.abs());
        }
    }
    Ok(best / conf.len() as f64)
}

fn check(conf: &[f32], target: &[bool]) -> Result<(), MetricError> {
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
    if conf.len() > u32::MAX as usize {
        return Err(MetricError::Invalid(format!(
            "{} samples is more than these estimators take (2^32 - 1)",
            conf.len()
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

/// The three errors of one set of confidences.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Errors {
    /// Smooth ECE (σ found by relplot's search).
    pub smece: f64,
    /// Its bandwidth (top-label: one value; class-wise: the mean over classes).
    pub smece_sigma: f64,
    /// Debiased L2 ECE over 15 equal-mass bins.
    pub l2_debiased: f64,
    /// The plug-in L2 ECE on the same bins.
    pub l2_plugin: f64,
    /// Kolmogorov-Smirnov calibration error.
    pub ks: f64,
}

/// Equal-mass bins of the debiased L2 error (Kumar et al.'s default).
pub const L2_BINS: usize = 15;

/// The errors of confidences `conf` against targets.
pub fn errors(conf: &[f32], target: &[bool]) -> Result<Errors, MetricError> {
    let s = smooth_ece(conf, target)?;
    let edges = equal_mass_upper_edges(conf, L2_BINS);
    Ok(Errors {
        smece: s.value,
        smece_sigma: s.sigma,
        l2_debiased: binned_lp_error(conf, target, &edges, 2.0, true),
        l2_plugin: binned_lp_error(conf, target, &edges, 2.0, false),
        ks: ks_error(conf, target)?,
    })
}

/// Class-wise errors from an `N x classes` row-major probability matrix: each class's
/// one-vs-rest error, then the mean over classes (root mean square for the L2 errors, as
/// uncertainty-calibration's "marginal" mode). Classes run in parallel.
pub fn classwise_errors(
    probs: &[f32],
    labels: &[i64],
    classes: usize,
) -> Result<Errors, MetricError> {
    if classes < 2 {
        return Err(MetricError::TooFewClasses(classes));
    }
    if probs.len() != labels.len() * classes {
        return Err(MetricError::Shape {
            what: "probabilities",
            expected: labels.len() * classes,
            found: probs.len(),
        });
    }
    let per: Vec<Errors> = (0..classes)
        .into_par_iter()
        .map(|k| {
            let p: Vec<f32> = probs.iter().skip(k).step_by(classes).copied().collect();
            let t: Vec<bool> = labels.iter().map(|&y| y == k as i64).collect();
            errors(&p, &t)
        })
        .collect::<Result<_, _>>()?;
    let k = classes as f64;
    let mean = |f: fn(&Errors) -> f64| per.iter().map(f).sum::<f64>() / k;
    Ok(Errors {
        smece: mean(|e| e.smece),
        smece_sigma: mean(|e| e.smece_sigma),
        l2_debiased: mean(|e| e.l2_debiased * e.l2_debiased).sqrt(),
        l2_plugin: mean(|e| e.l2_plugin * e.l2_plugin).sqrt(),
        ks: mean(|e| e.ks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_calibration_has_small_errors_and_a_biased_one_large() {
        // deterministic: targets hit exactly a fraction c of each confidence level c
        let mut conf = Vec::new();
        let mut hit = Vec::new();
        for level in 1..=9 {
            let c = level as f32 / 10.0;
            for j in 0..1000 {
                conf.push(c);
                hit.push(j < level * 100);
            }
        }
        let e = errors(&conf, &hit).unwrap();
        assert!(
            e.ks < 1e-3 && e.l2_debiased < 0.02 && e.smece < 0.01,
            "{e:?}"
        );
        let shifted: Vec<f32> = conf.iter().map(|c| (c + 0.1).min(1.0)).collect();
        let b = errors(&shifted, &hit).unwrap();
        assert!((b.ks - 0.1).abs() < 0.01, "{b:?}");
        assert!(b.l2_debiased > 0.08 && b.smece > 0.05, "{b:?}");
    }

    #[test]
    fn ks_is_order_independent_and_exact_on_a_small_case() {
        // sorted: (0.2, 0) (0.6, 1) (0.9, 1): partial sums -0.2, 0.2, 0.3
        let k = ks_error(&[0.9, 0.2, 0.6], &[true, false, true]).unwrap();
        assert!((k - 0.3 / 3.0).abs() < 1e-9, "{k}");
    }

    #[test]
    fn equal_mass_edges_split_like_numpy() {
        // 7 values in 3 parts: 3, 2, 2
        let e = equal_mass_upper_edges(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 3);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0], ((0.3f32 + 0.4f32) / 2.0) as f64);
        assert_eq!(e[1], ((0.5f32 + 0.6f32) / 2.0) as f64);
        assert_eq!(e[2], 1.0);
        // ties collapse bins
        assert_eq!(equal_mass_upper_edges(&[0.5; 10], 5), vec![0.5, 1.0]);
    }

    #[test]
    fn classwise_averages_the_classes() {
        let probs = [0.7f32, 0.3, 0.2, 0.8, 0.6, 0.4, 0.1, 0.9];
        let labels = [0i64, 1, 1, 1];
        let c = classwise_errors(&probs, &labels, 2).unwrap();
        let p0: Vec<f32> = probs.iter().step_by(2).copied().collect();
        let t0: Vec<bool> = labels.iter().map(|&y| y == 0).collect();
        let p1: Vec<f32> = probs.iter().skip(1).step_by(2).copied().collect();
        let t1: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
        let (a, b) = (errors(&p0, &t0).unwrap(), errors(&p1, &t1).unwrap());
        assert!((c.ks - (a.ks + b.ks) / 2.0).abs() < 1e-15);
        assert!(classwise_errors(&probs, &labels, 3).is_err());
        assert!(errors(&[], &[]).is_err());
        assert!(errors(&[f32::NAN], &[true]).is_err());
    }
}
