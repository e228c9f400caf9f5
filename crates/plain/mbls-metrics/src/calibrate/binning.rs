//! One-vs-rest histogram binning and isotonic regression of the softmax probabilities;
//! the calibrated rows are renormalised to sum to 1 (a row that maps to all zeros becomes
//! uniform).

use super::Params;
use rayon::prelude::*;

const CHUNK: usize = 1024;

/// Softmax of a float32 row, in float64.
fn softmax_into(row: &[f32], out: &mut [f64]) {
    use mbls_base::fastmath::{exp64_in_place, sum64};
    let m = row
        .iter()
        .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
    for (o, &v) in out.iter_mut().zip(row) {
        *o = f64::from(v) - m;
    }
    exp64_in_place(out);
    let inv = 1.0 / sum64(out);
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Column `k` of the softmax probabilities, for every row (rows in parallel chunks, then
/// one column per task).
fn columns(logits: &[f32], k: usize) -> Vec<Vec<f64>> {
    let mut probs = vec![0f64; logits.len()];
    probs
        .par_chunks_mut(CHUNK * k)
        .zip(logits.par_chunks(CHUNK * k))
        .for_each(|(o, l)| {
            for (or, lr) in o.chunks_exact_mut(k).zip(l.chunks_exact(k)) {
                softmax_into(lr, or);
            }
        });
    (0..k)
        .into_par_iter()
        .map(|c| probs.iter().skip(c).step_by(k).copied().collect())
        .collect()
}

/// Equal-width bin of `p` in [0, 1] with `(lower, upper]` membership (0 goes to bin 0).
fn bin_of(p: f64, m: usize) -> usize {
    ((p * m as f64).ceil() as usize)
        .saturating_sub(1)
        .min(m - 1)
}

/// Per class and bin, the fraction of samples of that class; an empty bin keeps its
/// midpoint (the identity map's value there).
pub(crate) fn fit_histogram(logits: &[f32], labels: &[i64], k: usize, m: usize) -> Params {
    // per class and bin: samples, and samples of that class (integer counts: the order in
    // which the chunks are added does not matter)
    let parts: Vec<(Vec<u64>, Vec<u64>)> = logits
        .par_chunks(CHUNK * k)
        .zip(labels.par_chunks(CHUNK))
        .map(|(l, y)| {
            let mut cnt = vec![0u64; k * m];
            let mut pos = vec![0u64; k * m];
            let mut p = vec![0f64; k];
            for (row, &yy) in l.chunks_exact(k).zip(y) {
                softmax_into(row, &mut p);
                for (c, &v) in p.iter().enumerate() {
                    cnt[c * m + bin_of(v, m)] += 1;
                }
                pos[yy as usize * m + bin_of(p[yy as usize], m)] += 1;
            }
            (cnt, pos)
        })
        .collect();
    let (mut cnt, mut pos) = (vec![0u64; k * m], vec![0u64; k * m]);
    for (c, p) in parts {
        for (a, b) in cnt.iter_mut().zip(c) {
            *a += b;
        }
        for (a, b) in pos.iter_mut().zip(p) {
            *a += b;
        }
    }
    let values = (0..k)
        .map(|c| {
            (0..m)
                .map(|b| {
                    let (n, q) = (cnt[c * m + b], pos[c * m + b]);
                    if n == 0 {
                        (b as f64 + 0.5) / m as f64
                    } else {
                        q as f64 / n as f64
                    }
                })
                .collect()
        })
        .collect();
    Params::Histogram {
        num_bins: m,
        values,
    }
}

/// Renormalises a row of calibrated probabilities into float32 output.
fn normalise_into(q: &[f64], out: &mut [f32]) {
    let s: f64 = q.iter().sum();
    let k = q.len() as f64;
    for (o, &v) in out.iter_mut().zip(q) {
        *o = if s > 0.0 {
            (v / s) as f32
        } else {
            (1.0 / k) as f32
        };
    }
}

pub(crate) fn apply_histogram(logits: &[f32], k: usize, m: usize, values: &[Vec<f64>]) -> Vec<f32> {
    let mut out = vec![0f32; logits.len()];
    out.par_chunks_mut(CHUNK * k)
        .zip(logits.par_chunks(CHUNK * k))
        .for_each(|(o, l)| {
            let mut p = vec![0f64; k];
            for (or, lr) in o.chunks_exact_mut(k).zip(l.chunks_exact(k)) {
                softmax_into(lr, &mut p);
                for (c, v) in p.iter_mut().enumerate() {
                    *v = values[c][bin_of(*v, m)];
                }
                normalise_into(&p, or);
            }
        });
    out
}

/// Isotonic (non-decreasing) least-squares fit of `y` on `x` with unit weights, by pool
/// adjacent violators over the distinct values of `x` (tied inputs share one fitted value,
/// as scikit-learn's `IsotonicRegression` does).
///
/// Returns the breakpoints `(x, y)` of the piecewise-linear interpolant: the first and last
/// input of every constant block, so `x` is increasing and `y` non-decreasing.
pub fn isotonic_fit(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    // (x, y) pairs sorted directly (faster than sorting indices); ties in x ordered by y,
    // so a tie group's sum does not depend on the input order
    let mut pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    // blocks: (sum of y, weight, first x, last x)
    let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let xv = pairs[i].0;
        let (mut s, mut w) = (0.0, 0.0);
        while i < pairs.len() && pairs[i].0 == xv {
            s += pairs[i].1;
            w += 1.0;
            i += 1;
        }
        blocks.push((s, w, xv, xv));
        while blocks.len() > 1 {
            let n = blocks.len();
            let (s1, w1, _, _) = blocks[n - 2];
            let (s2, w2, _, l2) = blocks[n - 1];
            if s1 / w1 < s2 / w2 {
                break;
            }
            blocks.pop();
            let b = blocks.last_mut().expect("two blocks");
            b.0 = s1 + s2;
            b.1 = w1 + w2;
            b.3 = l2;
        }
    }
    let mut bx = Vec::with_capacity(2 * blocks.len());
    let mut by = Vec::with_capacity(2 * blocks.len());
    for (s, w, first, last) in blocks {
        let v = s / w;
        bx.push(first);
        by.push(v);
        if last > first {
            bx.push(last);
            by.push(v);
        }
    }
    (bx, by)
}

/// The interpolant through the breakpoints, clipped to the end values outside them.
fn interp(xs: &[f64], ys: &[f64], p: f64) -> f64 {
    let i = xs.partition_point(|&x| x <= p);
    if i == 0 {
        return ys[0];
    }
    if i == xs.len() {
        return ys[xs.len() - 1];
    }
    let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
    y0 + (y1 - y0) * (p - x0) / (x1 - x0)
}

pub(crate) fn fit_isotonic(logits: &[f32], labels: &[i64], k: usize) -> Params {
    let cols = columns(logits, k);
    let fits: Vec<(Vec<f64>, Vec<f64>)> = cols
        .par_iter()
        .enumerate()
        .map(|(c, col)| {
            let t: Vec<f64> = labels
                .iter()
                .map(|&y| f64::from(u8::from(y as usize == c)))
                .collect();
            isotonic_fit(col, &t)
        })
        .collect();
    let (x, y) = fits.into_iter().unzip();
    Params::Isotonic { x, y }
}

pub(crate) fn apply_isotonic(
    logits: &[f32],
    k: usize,
    xs: &[Vec<f64>],
    ys: &[Vec<f64>],
) -> Vec<f32> {
    let mut out = vec![0f32; logits.len()];
    out.par_chunks_mut(CHUNK * k)
        .zip(logits.par_chunks(CHUNK * k))
        .for_each(|(o, l)| {
            let mut p = vec![0f64; k];
            for (or, lr) in o.chunks_exact_mut(k).zip(l.chunks_exact(k)) {
                softmax_into(lr, &mut p);
                for (c, v) in p.iter_mut().enumerate() {
                    *v = interp(&xs[c], &ys[c], *v);
                }
                normalise_into(&p, or);
            }
        });
    out
}

#[cfg(test)]
pub(crate) fn tests_interp(xs: &[f64], ys: &[f64], p: f64) -> f64 {
    interp(xs, ys, p)
}
