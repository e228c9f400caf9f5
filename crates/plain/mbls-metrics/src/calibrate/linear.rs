//! Vector, matrix and Dirichlet scaling: a linear map of the logits (or of the log
//! probabilities) fitted by L-BFGS on the mean NLL plus the ODIR regulariser.

use super::{FitOptions, Method, Params};
use crate::error::MetricError;
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use mbls_base::fastmath::{exp64, exp64_in_place, sum64};
use rayon::prelude::*;
use std::cell::RefCell;

/// Rows per chunk: the partial sums of fixed chunks are added in order, so results do not
/// depend on the number of threads.
const CHUNK: usize = 1024;

/// Correction pairs L-BFGS keeps.
const LBFGS_MEMORY: usize = 30;

/// Mean cross-entropy of row-major logits, in float64.
pub(crate) fn mean_nll(logits: &[f32], labels: &[i64], k: usize) -> f64 {
    let parts: Vec<f64> = logits
        .par_chunks(CHUNK * k)
        .zip(labels.par_chunks(CHUNK))
        .map(|(x, y)| {
            x.chunks_exact(k)
                .zip(y)
                .map(|(r, &yy)| {
                    let m = r
                        .iter()
                        .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
                    let s: f64 = r.iter().map(|&v| exp64(f64::from(v) - m)).sum();
                    m + s.ln() - f64::from(r[yy as usize])
                })
                .sum()
        })
        .collect();
    parts.iter().sum::<f64>() / labels.len() as f64
}

/// `ln softmax(row)` in float64.
fn log_softmax_into(row: &[f32], out: &mut [f64]) {
    let m = row
        .iter()
        .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
    let s: f64 = row.iter().map(|&v| exp64(f64::from(v) - m)).sum();
    let lse = m + s.ln();
    for (o, &v) in out.iter_mut().zip(row) {
        *o = f64::from(v) - lse;
    }
}

/// The inputs of the linear map, in float64: the logits, or their log-softmax.
fn features(logits: &[f32], k: usize, log_probs: bool) -> Vec<f64> {
    let mut x = vec![0f64; logits.len()];
    x.par_chunks_mut(CHUNK * k)
        .zip(logits.par_chunks(CHUNK * k))
        .for_each(|(o, l)| {
            for (or, lr) in o.chunks_exact_mut(k).zip(l.chunks_exact(k)) {
                if log_probs {
                    log_softmax_into(lr, or);
                } else {
                    for (a, &b) in or.iter_mut().zip(lr) {
                        *a = f64::from(b);
                    }
                }
            }
        });
    x
}

/// `C = A · Bᵀ` for row-major A (m x k) and B (n x k), into row-major C (m x n).
fn gemm_abt(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    // SAFETY: the slices hold the m x k, n x k and m x n elements the strides address.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `C = Aᵀ · B` for row-major A (r x m) and B (r x n), into row-major C (m x n).
fn gemm_atb(r: usize, m: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    assert!(a.len() >= r * m && b.len() >= r * n && c.len() >= m * n);
    // SAFETY: as in `gemm_abt`.
    unsafe {
        matrixmultiply::dgemm(
            m,
            r,
            n,
            1.0,
            a.as_ptr(),
            1,
            m as isize,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Turns a row of outputs into `softmax − onehot(y)` and returns the row's NLL.
fn softmax_grad_row(row: &mut [f64], y: usize) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
    let zy = row[y];
    // one exponential per entry: e = exp(v - m), then e / Σ e
    for v in row.iter_mut() {
        *v -= m;
    }
    exp64_in_place(row);
    let s = sum64(row);
    let nll = m + s.ln() - zy;
    let inv = 1.0 / s;
    for v in row.iter_mut() {
        *v *= inv;
    }
    row[y] -= 1.0;
    nll
}

/// The parameters last evaluated, the objective there and its gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

pub(crate) struct Problem<'a> {
    x: Vec<f64>,
    y: &'a [i64],
    k: usize,
    full: bool,
    lambda: f64,
    mu: f64,
    /// Full methods: the column means `m` subtracted from the features, so that the
    /// optimiser sees `W (x − m) + b'` with `b' = b + W m` (the same model, far better
    /// conditioned when the features share a large offset, as log-probabilities do); the
    /// regulariser is still on `b`. Empty: no centring.
    center: Vec<f64>,
    cache: RefCell<Option<Evaluation>>,
}

impl Problem<'_> {
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        if let Some((p, f, g)) = self.cache.borrow().as_ref()
            && p.as_slice() == theta
        {
            return (*f, g.clone());
        }
        let (f, g) = if self.full {
            self.eval_matrix(theta)
        } else {
            self.eval_vector(theta)
        };
        *self.cache.borrow_mut() = Some((theta.to_vec(), f, g.clone()));
        (f, g)
    }

    fn eval_matrix(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let k = self.k;
        let (w, b) = theta.split_at(k * k);
        let parts: Vec<(f64, Vec<f64>)> = self
            .x
            .par_chunks(CHUNK * k)
            .zip(self.y.par_chunks(CHUNK))
            .map(|(x, y)| {
                let r = y.len();
                let mut z = vec![0f64; r * k];
                gemm_abt(r, k, k, x, w, &mut z);
                let mut grad = vec![0f64; k * k + k];
                let mut nll = 0.0;
                for (row, &yy) in z.chunks_exact_mut(k).zip(y) {
                    for (v, bj) in row.iter_mut().zip(b) {
                        *v += bj;
                    }
                    nll += softmax_grad_row(row, yy as usize);
                    for (g, v) in grad[k * k..].iter_mut().zip(row.iter()) {
                        *g += v;
                    }
                }
                gemm_atb(r, k, k, &z, x, &mut grad[..k * k]);
                (nll, grad)
            })
            .collect();
        self.reduce(parts, theta)
    }

    fn eval_vector(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let k = self.k;
        let (w, b) = theta.split_at(k);
        let parts: Vec<(f64, Vec<f64>)> = self
            .x
            .par_chunks(CHUNK * k)
            .zip(self.y.par_chunks(CHUNK))
            .map(|(x, y)| {
                let mut grad = vec![0f64; 2 * k];
                let mut row = vec![0f64; k];
                let mut nll = 0.0;
                for (xr, &yy) in x.chunks_exact(k).zip(y) {
                    for j in 0..k {
                        row[j] = w[j] * xr[j] + b[j];
                    }
                    nll += softmax_grad_row(&mut row, yy as usize);
                    for j in 0..k {
                        grad[j] += row[j] * xr[j];
                        grad[k + j] += row[j];
                    }
                }
                (nll, grad)
            })
            .collect();
        self.reduce(parts, theta)
    }

    /// Adds the chunks' sums in order, divides by N and adds the regulariser.
    fn reduce(&self, parts: Vec<(f64, Vec<f64>)>, theta: &[f64]) -> (f64, Vec<f64>) {
        let n = self.y.len() as f64;
        let mut f = 0.0;
        let mut g = vec![0f64; theta.len()];
        for (pf, pg) in parts {
            f += pf;
            for (a, b) in g.iter_mut().zip(pg) {
                *a += b;
            }
        }
        f /= n;
        for v in &mut g {
            *v /= n;
        }
        let k = self.k;
        let nb = theta.len() - k;
        if self.full && self.lambda > 0.0 {
            let c = self.lambda / (k * (k - 1)) as f64;
            for j in 0..k {
                for i in 0..k {
                    if i != j {
                        let v = theta[j * k + i];
                        f += c * v * v;
                        g[j * k + i] += 2.0 * c * v;
                    }
                }
            }
        }
        if self.mu > 0.0 {
            let c = self.mu / k as f64;
            let b = self.original_bias(theta);
            for j in 0..k {
                let v = b[j];
                f += c * v * v;
                g[nb + j] += 2.0 * c * v;
                // b_j = b'_j − Σ_i W_ji m_i: the chain rule into W
                for (i, &m) in self.center.iter().enumerate() {
                    g[j * k + i] -= 2.0 * c * v * m;
                }
            }
        }
        (f, g)
    }

    /// The bias of the model in the original features: `b' − W m` (or `b'` uncentred).
    fn original_bias(&self, theta: &[f64]) -> Vec<f64> {
        if self.full {
            problem_bias(theta, self.k, &self.center)
        } else {
            theta[self.k..].to_vec()
        }
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.evaluate(p).0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(p).1)
    }
}

/// Fits vector, matrix or Dirichlet scaling; returns the parameters and the iterations.
pub(crate) fn fit(
    method: Method,
    logits: &[f32],
    labels: &[i64],
    k: usize,
    lambda: f64,
    mu: f64,
    opts: &FitOptions,
) -> Result<(Params, usize), MetricError> {
    let full = method != Method::Vector;
    let mut x = features(logits, k, method == Method::Dirichlet);
    let center = if full {
        center_columns(&mut x, k)
    } else {
        Vec::new()
    };
    let problem = Problem {
        x,
        y: labels,
        k,
        full,
        lambda,
        mu,
        center,
        cache: RefCell::new(None),
    };
    let init: Vec<f64> = if full {
        // the identity map: W = I, b = 0, i.e. b' = m
        let mut t = vec![0f64; k * k + k];
        for j in 0..k {
            t[j * k + j] = 1.0;
            t[k * k + j] = problem.center[j];
        }
        t
    } else {
        let mut t = vec![0f64; 2 * k];
        t[..k].fill(1.0);
        t
    };
    let failed = |e: argmin::core::Error| {
        MetricError::Invalid(format!("{method} calibration: the optimiser failed: {e}"))
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), LBFGS_MEMORY)
        .with_tolerance_grad(opts.tolerance)
        .map_err(failed)?
        .with_tolerance_cost(1e-13)
        .map_err(failed)?;
    let centers = problem.center.clone();
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(init.clone()).max_iters(opts.max_iter as u64))
        .run()
        .map_err(failed)?;
    let state = res.state();
    let iterations = state.get_iter() as usize;
    let theta = state.get_best_param().cloned().unwrap_or(init);
    if theta.iter().any(|v| !v.is_finite()) {
        return Err(MetricError::Invalid(format!(
            "{method} calibration diverged (non-finite parameters); try a larger reg_lambda / reg_mu"
        )));
    }
    let params = if full {
        let b = problem_bias(&theta, k, &centers);
        let weights = theta[..k * k]
            .chunks_exact(k)
            .map(<[f64]>::to_vec)
            .collect();
        if method == Method::Dirichlet {
            Params::Dirichlet { weights, bias: b }
        } else {
            Params::Matrix { weights, bias: b }
        }
    } else {
        Params::Vector {
            weights: theta[..k].to_vec(),
            bias: theta[k..].to_vec(),
        }
    };
    Ok((params, iterations))
}

/// Subtracts each column's mean (over the rows, in float64, chunk sums added in order) and
/// returns the means.
fn center_columns(x: &mut [f64], k: usize) -> Vec<f64> {
    let n = x.len() / k;
    let parts: Vec<Vec<f64>> = x
        .par_chunks(CHUNK * k)
        .map(|c| {
            let mut s = vec![0f64; k];
            for row in c.chunks_exact(k) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v;
                }
            }
            s
        })
        .collect();
    let mut m = vec![0f64; k];
    for p in parts {
        for (a, v) in m.iter_mut().zip(p) {
            *a += v;
        }
    }
    for a in &mut m {
        *a /= n as f64;
    }
    x.par_chunks_mut(CHUNK * k).for_each(|c| {
        for row in c.chunks_exact_mut(k) {
            for (v, &mm) in row.iter_mut().zip(&m) {
                *v -= mm;
            }
        }
    });
    m
}

/// `b' − W m`: the bias in the uncentred features.
fn problem_bias(theta: &[f64], k: usize, center: &[f64]) -> Vec<f64> {
    let mut b = theta[k * k..].to_vec();
    if !center.is_empty() {
        for (j, bj) in b.iter_mut().enumerate() {
            *bj -= mbls_base::fastmath::dot64(&theta[j * k..(j + 1) * k], center);
        }
    }
    b
}

/// `w ⊙ z + b` per row, as float32.
pub(crate) fn apply_vector(logits: &[f32], w: &[f64], b: &[f64]) -> Vec<f32> {
    let k = w.len();
    let mut out = vec![0f32; logits.len()];
    out.par_chunks_mut(CHUNK * k)
        .zip(logits.par_chunks(CHUNK * k))
        .for_each(|(o, l)| {
            for (or, lr) in o.chunks_exact_mut(k).zip(l.chunks_exact(k)) {
                for j in 0..k {
                    or[j] = (w[j] * f64::from(lr[j]) + b[j]) as f32;
                }
            }
        });
    out
}

/// `W x + b` per row with x the logits (or their log-softmax when `log_probs`), as float32.
pub(crate) fn apply_matrix(logits: &[f32], w: &[Vec<f64>], b: &[f64], log_probs: bool) -> Vec<f32> {
    let k = b.len();
    let wf: Vec<f64> = w.iter().flatten().copied().collect();
    let mut out = vec![0f32; logits.len()];
    out.par_chunks_mut(CHUNK * k)
        .zip(logits.par_chunks(CHUNK * k))
        .for_each(|(o, l)| {
            let r = l.len() / k;
            let x = features(l, k, log_probs);
            let mut z = vec![0f64; r * k];
            gemm_abt(r, k, k, &x, &wf, &mut z);
            for (or, zr) in o.chunks_exact_mut(k).zip(z.chunks_exact(k)) {
                for j in 0..k {
                    or[j] = (zr[j] + b[j]) as f32;
                }
            }
        });
    out
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// The objective of a vector (`full = false`), matrix or Dirichlet (`log_probs`) fit.
    pub(crate) fn problem<'a>(
        logits: &[f32],
        labels: &'a [i64],
        k: usize,
        full: bool,
        log_probs: bool,
        lambda: f64,
        mu: f64,
    ) -> Problem<'a> {
        // as `fit` builds it: full methods centred
        let mut x = features(logits, k, log_probs);
        let center = if full {
            center_columns(&mut x, k)
        } else {
            Vec::new()
        };
        Problem {
            x,
            y: labels,
            k,
            full,
            lambda,
            mu,
            center,
            cache: RefCell::new(None),
        }
    }

    impl Problem<'_> {
        pub(crate) fn evaluate_for_tests(&self, theta: &[f64]) -> (f64, Vec<f64>) {
            self.evaluate(theta)
        }
    }
}
