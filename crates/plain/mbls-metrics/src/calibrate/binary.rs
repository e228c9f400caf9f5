//! Binary calibrators: Platt scaling and beta calibration, both logistic regressions on a
//! feature of the score `s = z_1 − z_0`, fitted by Newton's method in float64.

use super::Params;

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn scores(logits: &[f32]) -> Vec<f64> {
    logits
        .chunks_exact(2)
        .map(|r| f64::from(r[1]) - f64::from(r[0]))
        .collect()
}

/// Minimises `Σ_i −[t_i ln σ(θ·φ_i) + (1 − t_i) ln(1 − σ(θ·φ_i))] + ε‖θ‖²` by Newton with
/// backtracking; `phi` holds `d` features per sample. Returns θ and the iterations.
fn logistic(phi: &[f64], t: &[f64], d: usize) -> (Vec<f64>, usize) {
    let ridge = 1e-10 * t.len() as f64;
    let loss = |th: &[f64]| -> f64 {
        let mut f = ridge * th.iter().map(|v| v * v).sum::<f64>();
        for (x, &ti) in phi.chunks_exact(d).zip(t) {
            let u: f64 = x.iter().zip(th).map(|(a, b)| a * b).sum();
            // −t ln σ(u) − (1 − t) ln σ(−u)
            f += ti * softplus(-u) + (1.0 - ti) * softplus(u);
        }
        f
    };
    let mut th = vec![0f64; d];
    let mut f = loss(&th);
    let mut iters = 0;
    for _ in 0..200 {
        iters += 1;
        let mut g = vec![0f64; d];
        let mut h = vec![0f64; d * d];
        for (x, &ti) in phi.chunks_exact(d).zip(t) {
            let u: f64 = x.iter().zip(&th).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-u).exp());
            let w = p * (1.0 - p);
            for i in 0..d {
                g[i] += (p - ti) * x[i];
                for j in 0..d {
                    h[i * d + j] += w * x[i] * x[j];
                }
            }
        }
        for i in 0..d {
            g[i] += 2.0 * ridge * th[i];
            h[i * d + i] += 2.0 * ridge;
        }
        let Some(step) = solve(&h, &g, d) else { break };
        let mut scale = 1.0;
        let mut moved = false;
        for _ in 0..60 {
            let cand: Vec<f64> = th.iter().zip(&step).map(|(a, s)| a - scale * s).collect();
            let fc = loss(&cand);
            if fc <= f {
                moved = cand != th;
                let gain = f - fc;
                th = cand;
                f = fc;
                if gain <= 1e-15 * f.abs().max(1.0) {
                    moved = false;
                }
                break;
            }
            scale *= 0.5;
        }
        if !moved {
            break;
        }
    }
    (th, iters)
}

/// Solves the d x d system `h x = g` by Gaussian elimination with partial pivoting.
fn solve(h: &[f64], g: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut a: Vec<f64> = h.to_vec();
    let mut b: Vec<f64> = g.to_vec();
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| a[i * d + c].abs().total_cmp(&a[j * d + c].abs()))?;
        if a[p * d + c].abs() < 1e-300 {
            return None;
        }
        for j in 0..d {
            a.swap(c * d + j, p * d + j);
        }
        b.swap(c, p);
        for i in c + 1..d {
            let f = a[i * d + c] / a[c * d + c];
            for j in c..d {
                a[i * d + j] -= f * a[c * d + j];
            }
            b[i] -= f * b[c];
        }
    }
    let mut x = vec![0f64; d];
    for c in (0..d).rev() {
        let s: f64 = (c + 1..d).map(|j| a[c * d + j] * x[j]).sum();
        x[c] = (b[c] - s) / a[c * d + c];
    }
    Some(x)
}

/// Platt scaling with Platt's smoothed targets `(N₊ + 1) / (N₊ + 2)` and `1 / (N₋ + 2)`.
pub(crate) fn fit_platt(logits: &[f32], labels: &[i64]) -> (Params, usize) {
    let s = scores(logits);
    let pos = labels.iter().filter(|&&y| y == 1).count() as f64;
    let neg = labels.len() as f64 - pos;
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let t: Vec<f64> = labels
        .iter()
        .map(|&y| if y == 1 { hi } else { lo })
        .collect();
    let phi: Vec<f64> = s.iter().flat_map(|&v| [v, 1.0]).collect();
    let (th, it) = logistic(&phi, &t, 2);
    (Params::Platt { a: th[0], b: th[1] }, it)
}

/// `a ln p − b ln(1 − p) + c` with `p = σ(s)`.
pub(crate) fn beta_map(s: f64, a: f64, b: f64, c: f64) -> f64 {
    -a * softplus(-s) + b * softplus(s) + c
}

/// Beta calibration: logistic regression on `(ln p, −ln(1 − p))`; a negative weight is
/// fixed at 0 and the other refitted, so that the map stays monotone.
pub(crate) fn fit_beta(logits: &[f32], labels: &[i64]) -> (Params, usize) {
    let s = scores(logits);
    let t: Vec<f64> = labels
        .iter()
        .map(|&y| f64::from(u8::from(y == 1)))
        .collect();
    let lp: Vec<f64> = s.iter().map(|&v| -softplus(-v)).collect();
    let l1p: Vec<f64> = s.iter().map(|&v| softplus(v)).collect();
    let phi: Vec<f64> = lp
        .iter()
        .zip(&l1p)
        .flat_map(|(&a, &b)| [a, b, 1.0])
        .collect();
    let (th, mut it) = logistic(&phi, &t, 3);
    let (mut a, mut b, mut c) = (th[0], th[1], th[2]);
    if a < 0.0 {
        let phi: Vec<f64> = l1p.iter().flat_map(|&v| [v, 1.0]).collect();
        let (th, i2) = logistic(&phi, &t, 2);
        it += i2;
        (a, b, c) = (0.0, th[0].max(0.0), th[1]);
    } else if b < 0.0 {
        let phi: Vec<f64> = lp.iter().flat_map(|&v| [v, 1.0]).collect();
        let (th, i2) = logistic(&phi, &t, 2);
        it += i2;
        (a, b, c) = (th[0].max(0.0), 0.0, th[1]);
    }
    (Params::Beta { a, b, c }, it)
}

/// Rows `[0, f(s)]` for two-class logits.
pub(crate) fn apply(logits: &[f32], f: impl Fn(f64) -> f64) -> Vec<f32> {
    scores(logits)
        .into_iter()
        .flat_map(|s| [0.0, f(s) as f32])
        .collect()
}
