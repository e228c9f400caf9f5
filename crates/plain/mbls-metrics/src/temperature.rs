//! Post-hoc temperature scaling: the reference's grid search and a continuous NLL fit.
//!
//! Grid search (`ModelWithTemperature`): `T = 0.1`, then 100 candidates by repeated float64
//! addition of 0.1 (so `T` reaches about 10.0 with rounding drift, e.g.
//! `0.30000000000000004`); for each, ECE and NLL of `logits / T` (float32 division) are
//! computed, and the `T` with the **strictly** lowest ECE (and, separately, NLL) is kept.
//!
//! NLL fit: minimises the mean cross-entropy of `logits / T` over `t = ln T` with a
//! safeguarded Newton method (the NLL is convex in `1 / T`, so `t` has a single minimum),
//! bounded to `T` in [0.01, 100].

use crate::bins::BinEdges;
use crate::error::MetricError;
use rayon::prelude::*;

/// Result of the grid search.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GridSearch {
    /// Temperature with the lowest ECE (the reference's choice).
    pub temperature_ece: f64,
    /// Temperature with the lowest NLL.
    pub temperature_nll: f64,
    /// Lowest ECE found.
    pub best_ece: f64,
    /// Lowest NLL found.
    pub best_nll: f64,
    /// Every candidate as (T, ECE, NLL).
    pub candidates: Vec<(f64, f64, f64)>,
}

/// Result of the continuous NLL fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NllFit {
    /// Fitted temperature.
    pub temperature: f64,
    /// NLL at `temperature`.
    pub nll: f64,
    /// NLL at T = 1.
    pub nll_before: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

pub(crate) fn check(logits: &[f32], labels: &[i64], classes: usize) -> Result<(), MetricError> {
    if classes < 2 {
        return Err(MetricError::TooFewClasses(classes));
    }
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    if logits.len() != labels.len() * classes {
        return Err(MetricError::Shape {
            what: "logits (rows x classes)",
            expected: labels.len() * classes,
            found: logits.len(),
        });
    }
    for (i, &y) in labels.iter().enumerate() {
        if y < 0 || y as usize >= classes {
            return Err(MetricError::LabelOutOfRange {
                label: y,
                sample: i,
                classes,
            });
        }
    }
    if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
        return Err(MetricError::NonFinite {
            what: "logits",
            sample: i / classes,
            class: i % classes,
            value: logits[i],
        });
    }
    Ok(())
}

/// `logits / t` elementwise in float32, as `tensor / python_float` does.
pub fn scale_logits(logits: &[f32], t: f64) -> Vec<f32> {
    let t = t as f32;
    logits.par_iter().map(|&x| x / t).collect()
}

const ROWS: usize = 1024;

/// Per-bin count, confidence sum, correct count, and the NLL sum of a chunk of rows.
type BinSums = (Vec<u64>, Vec<f64>, Vec<u64>, f64);

/// ECE (equal-width bins) and NLL of `logits / t` without materialising the scaled logits.
fn ece_nll_at(
    logits: &[f32],
    labels: &[i64],
    classes: usize,
    edges: &BinEdges,
    t: f32,
) -> (f64, f64) {
    let nb = edges.len();
    let parts: Vec<BinSums> = logits
        .par_chunks(ROWS * classes)
        .zip(labels.par_chunks(ROWS))
        .map(|(x, y)| {
            let mut cnt = vec![0u64; nb];
            let mut conf = vec![0f64; nb];
            let mut corr = vec![0u64; nb];
            let mut nll = 0f64;
            let mut row = vec![0f32; classes];
            let mut e = vec![0f32; classes];
            for (r, &yy) in x.chunks_exact(classes).zip(y) {
                for (d, &v) in row.iter_mut().zip(r) {
                    *d = v / t;
                }
                // the first maximal class, as the strict `>` scan finds it
                let m = mbls_base::fastmath::max_min_sum(&row).0;
                let am = row.iter().position(|&v| v == m).unwrap_or(0);
                // exp(v - m) into `e` (vectorised), then the 8-lane sum of the metrics' softmax
                for (ev, &v) in e.iter_mut().zip(&row) {
                    *ev = mbls_base::fastmath::exp(v - m);
                }
                let sum = mbls_base::fastmath::max_min_sum(&e).2;
                let c = 1.0f32 / sum;
                nll += (sum as f64).ln() - (row[yy as usize] - m) as f64;
                if let Some(b) = edges.bin_of(c) {
                    cnt[b] += 1;
                    conf[b] += c as f64;
                    corr[b] += (am == yy as usize) as u64;
                }
            }
            (cnt, conf, corr, nll)
        })
        .collect();
    let n = labels.len() as f64;
    let mut cnt = vec![0u64; nb];
    let mut conf = vec![0f64; nb];
    let mut corr = vec![0u64; nb];
    let mut nll = 0.0;
    for (a, b, c, d) in parts {
        for i in 0..nb {
            cnt[i] += a[i];
            conf[i] += b[i];
            corr[i] += c[i];
        }
        nll += d;
    }
    let (ece, _) = crate::bins::binned_calibration_error(&cnt, &conf, &corr, n);
    (ece, nll / n)
}

/// The reference's grid search over T = 0.1, 0.2, ... (100 values).
pub fn grid_search_temperature(
    logits: &[f32],
    labels: &[i64],
    classes: usize,
    num_bins: usize,
) -> Result<GridSearch, MetricError> {
    check(logits, labels, classes)?;
    if num_bins == 0 {
        return Err(MetricError::Invalid(
            "number of bins must be positive".into(),
        ));
    }
    let edges = BinEdges::equal_width(num_bins);
    let mut t = 0.1f64;
    let mut best = GridSearch {
        temperature_ece: 1.0,
        temperature_nll: 1.0,
        best_ece: 1e7,
        best_nll: 1e7,
        candidates: Vec::with_capacity(100),
    };
    for _ in 0..100 {
        let (ece, nll) = ece_nll_at(logits, labels, classes, &edges, t as f32);
        if best.best_nll > nll {
            best.best_nll = nll;
            best.temperature_nll = t;
        }
        if best.best_ece > ece {
            best.best_ece = ece;
            best.temperature_ece = t;
        }
        best.candidates.push((t, ece, nll));
        t += 0.1;
    }
    Ok(best)
}

/// NLL and its first two derivatives with respect to beta = 1/T, in float64.
fn nll_derivs(logits: &[f32], labels: &[i64], classes: usize, beta: f64) -> (f64, f64, f64) {
    let parts: Vec<(f64, f64, f64)> = logits
        .par_chunks(ROWS * classes)
        .zip(labels.par_chunks(ROWS))
        .map(|(x, y)| {
            use mbls_base::fastmath::{dot64, exp64_in_place, sum64};
            let mut f = 0.0;
            let mut g = 0.0;
            let mut h = 0.0;
            let (mut v64, mut e, mut ev) = (
                vec![0f64; classes],
                vec![0f64; classes],
                vec![0f64; classes],
            );
            for (r, &yy) in x.chunks_exact(classes).zip(y) {
                let m = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
                for ((a, b), &v) in v64.iter_mut().zip(e.iter_mut()).zip(r) {
                    *a = f64::from(v);
                    *b = beta * (*a - m);
                }
                exp64_in_place(&mut e);
                for ((c, &a), &b) in ev.iter_mut().zip(&e).zip(&v64) {
                    *c = a * b;
                }
                let (s, s1, s2) = (sum64(&e), sum64(&ev), dot64(&ev, &v64));
                let mean = s1 / s;
                let var = (s2 / s - mean * mean).max(0.0);
                let xy = r[yy as usize] as f64;
                f += s.ln() + beta * m - beta * xy;
                g += mean - xy;
                h += var;
            }
            (f, g, h)
        })
        .collect();
    let n = labels.len() as f64;
    let (f, g, h) = parts
        .into_iter()
        .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    (f / n, g / n, h / n)
}

/// Fits the NLL-optimal temperature (continuous, on `ln T`).
pub fn fit_temperature_nll(
    logits: &[f32],
    labels: &[i64],
    classes: usize,
) -> Result<NllFit, MetricError> {
    check(logits, labels, classes)?;
    let (t_lo, t_hi) = (0.01f64.ln(), 100f64.ln());
    let eval = |t: f64| nll_derivs(logits, labels, classes, (-t).exp());
    let nll_before = eval(0.0).0;
    let mut t = 0.0f64;
    let (mut f, mut g, mut h) = eval(t);
    let mut iterations = 0;
    for _ in 0..100 {
        iterations += 1;
        let beta = (-t).exp();
        let ft = -beta * g;
        let ftt = beta * g + beta * beta * h;
        if ft.abs() < 1e-12 {
            break;
        }
        let mut step = if ftt > 0.0 {
            -ft / ftt
        } else {
            -ft.signum() * 0.5
        };
        step = step.clamp(-1.0, 1.0);
        let mut accepted = false;
        for _ in 0..40 {
            let tn = (t + step).clamp(t_lo, t_hi);
            let (fnew, gn, hn) = eval(tn);
            if fnew <= f {
                let moved = (tn - t).abs();
                t = tn;
                f = fnew;
                g = gn;
                h = hn;
                accepted = moved > 0.0;
                break;
            }
            step *= 0.5;
        }
        if !accepted || step.abs() < 1e-14 {
            break;
        }
    }
    Ok(NllFit {
        temperature: t.exp(),
        nll: f,
        nll_before,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(scale: f32) -> (Vec<f32>, Vec<i64>) {
        let mut s = 11u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        let n = 2000;
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let y = (next() * 5.0) as usize % 5;
            // the favoured class is right 60% of the time
            let fav = if next() < 0.6 {
                y
            } else {
                (y + 1 + (next() * 4.0) as usize % 4) % 5
            };
            for k in 0..5 {
                let base = if k == fav { 1.0 } else { 0.0 };
                logits.push((base + next() * 0.5) * scale);
            }
            labels.push(y as i64);
        }
        (logits, labels)
    }

    #[test]
    fn fit_finds_the_minimum() {
        let (l, y) = data(4.0);
        let fit = fit_temperature_nll(&l, &y, 5).unwrap();
        assert!(fit.nll <= fit.nll_before);
        // scan around the optimum: it is a minimum
        for dt in [0.97, 1.03] {
            let (f, _, _) = nll_derivs(&l, &y, 5, 1.0 / (fit.temperature * dt));
            assert!(f >= fit.nll - 1e-12, "T*{dt}: {f} < {}", fit.nll);
        }
        // overconfident logits need T > 1
        assert!(fit.temperature > 1.0, "{fit:?}");
    }

    #[test]
    fn grid_has_100_candidates_and_float_drift() {
        let (l, y) = data(1.0);
        let g = grid_search_temperature(&l, &y, 5, 15).unwrap();
        assert_eq!(g.candidates.len(), 100);
        assert_eq!(g.candidates[2].0, 0.30000000000000004);
        assert!(g.best_ece <= g.candidates.iter().map(|c| c.1).fold(f64::MAX, f64::min));
    }
}
