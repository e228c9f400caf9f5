//! Row kernels: one sample (or one gathered pixel) of `C` logits at a time.

use super::*;

/// One row: writes the gradient of the batch loss with respect to this row's logits and
/// returns the row's contributions to the term sums.
#[inline(always)]
pub(super) fn row<const AVX2: bool>(
    ctx: &Ctx,
    x: &[f32],
    t: i64,
    g: &mut [f32],
    e: &mut [f32],
) -> Sums {
    if t == ctx.ignore_index {
        g.iter_mut().for_each(|v| *v = 0.0);
        return (0.0, 0.0);
    }
    let y = t as usize;
    let (mx, mn, _) = fastmath::max_min_sum(x);
    let sum = exp_shifted(x, mx, e);
    let inv = 1.0 / sum;
    let lse = (sum as f64).ln(); // log-sum-exp minus the max
    let logp_y = (x[y] - mx) as f64 - lse; // log p_y
    let n = ctx.inv_n;
    match ctx.kind {
        RowLoss::Ce => {
            for (gv, &ev) in g.iter_mut().zip(e.iter()) {
                *gv = ev * inv * n;
            }
            g[y] -= n;
            (-logp_y, 0.0)
        }
        RowLoss::Ls { alpha } => {
            let c = ctx.c as f32;
            let sub = alpha / c;
            for (gv, &ev) in g.iter_mut().zip(e.iter()) {
                *gv = (ev * inv - sub) * n;
            }
            g[y] -= (1.0 - alpha) * n;
            // (1 - a)(-log p_y) + a * mean_k(-log p_k)
            let mean_x = (fastmath::max_min_sum(x).2 / c - mx) as f64;
            let smooth = lse - mean_x;
            ((1.0 - alpha as f64) * -logp_y + alpha as f64 * smooth, 0.0)
        }
        RowLoss::Focal { gamma, mean } => focal_row(g, e, inv, y, logp_y, gamma as f64, mean, n),
        RowLoss::FocalAdaptive { gamma, mean } => {
            let p = (e[y] * inv) as f64;
            let gm = if p >= 0.5 {
                gamma as f64
            } else if p < 0.2 {
                5.0
            } else {
                3.0
            };
            focal_row(g, e, inv, y, logp_y, gm, mean, n)
        }
        RowLoss::LogitMargin { margin, alpha } => {
            let s = (alpha as f32) * ctx.inv_nc;
            let scale = inv * n;
            // exact fast path: no logit is more than `margin` below the max
            if mx - mn <= margin {
                for (gv, &ev) in g.iter_mut().zip(e.iter()) {
                    *gv = ev * scale;
                }
                g[y] -= n;
                return (-logp_y, 0.0);
            }
            let thr = mx - margin;
            // one vectorised pass: gradient of the CE and of the penalty's -s per active
            // logit, with the penalty and the active count in float lanes
            let (pen, active, first) = margin_row::<AVX2>(x, e, g, scale, thr, s, mx);
            // torch.max's gradient goes to the first maximal index: +s per active logit
            g[first] += s * active as f32;
            g[y] -= n;
            (-logp_y, pen)
        }
        RowLoss::Entropy { alpha } => {
            let a = (alpha as f32) * ctx.inv_nc;
            let (w, h) = entropy_row::<AVX2>(x, e, g, inv, mx, lse as f32);
            let cp = inv * (n - a * w);
            for (gv, &ev) in g.iter_mut().zip(e.iter()) {
                *gv = ev * cp + a * *gv;
            }
            g[y] -= n;
            (-logp_y, h)
        }
        RowLoss::L1 { alpha } => {
            let cf = (alpha as f32) * n;
            let cinv = (1.0 / ctx.c as f64) as f32;
            let (w, l1) = l1_row::<AVX2>(e, g, inv, cinv);
            for (gv, &ev) in g.iter_mut().zip(e.iter()) {
                *gv = ev * inv * (n + cf * (*gv - w));
            }
            g[y] -= n;
            (-logp_y, l1)
        }
        RowLoss::Brier => {
            let py = e[y] * inv;
            // sum of p_k^2 over the other classes (the target's term apart, in float64)
            let ey = std::mem::replace(&mut e[y], 0.0);
            let r = squares_row(e, inv);
            e[y] = ey;
            let d = r - py * (1.0 - py); // sum_k (p_k - onehot_k) p_k
            let two_n = 2.0 * n;
            for (gv, &ev) in g.iter_mut().zip(e.iter()) {
                let p = ev * inv;
                *gv = two_n * p * (p - d);
            }
            g[y] -= two_n * py;
            (r as f64 + (1.0 - py as f64) * (1.0 - py as f64), 0.0)
        }
    }
}

/// ECP pass of a row: parks the gradient weights `w_k` in `g` and returns their sum and the
/// sum of the entropy terms (8 float lanes).
#[inline(always)]
pub(super) fn entropy_row<const AVX2: bool>(
    x: &[f32],
    e: &[f32],
    g: &mut [f32],
    inv: f32,
    mx: f32,
    lse: f32,
) -> (f32, f64) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` is only set by `chunk_2d_avx2`, run where the CPU has AVX2.
        return unsafe { avx2::entropy_row(x, e, g, inv, mx, lse) };
    }
    let floor = ent_floor();
    let mut wl = [0f32; 8];
    let mut hl = [0f32; 8];
    let mut gc = g.chunks_exact_mut(8);
    let mut ec = e.chunks_exact(8);
    let mut xc = x.chunks_exact(8);
    for ((gk, ek), xk) in (&mut gc).zip(&mut ec).zip(&mut xc) {
        for i in 0..8 {
            let (w, h) = ent_terms(ek[i] * inv, (xk[i] - mx) - lse, floor);
            gk[i] = w;
            wl[i] += w;
            hl[i] += h;
        }
    }
    let rest = gc
        .into_remainder()
        .iter_mut()
        .zip(ec.remainder())
        .zip(xc.remainder());
    for (i, ((gv, &ev), &xv)) in rest.enumerate() {
        let (w, h) = ent_terms(ev * inv, (xv - mx) - lse, floor);
        *gv = w;
        wl[i] += w;
        hl[i] += h;
    }
    (fastmath::fold8(&wl), fastmath::fold8(&hl) as f64)
}

/// L1 pass of a row: parks `sgn(p_k - 1/C)` in `g` and returns `sum_k sgn_k p_k` and the
/// L1 distance (8 float lanes).
#[inline(always)]
pub(super) fn l1_row<const AVX2: bool>(
    e: &[f32],
    g: &mut [f32],
    inv: f32,
    cinv: f32,
) -> (f32, f64) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: as for `entropy_row`.
        return unsafe { avx2::l1_row(e, g, inv, cinv) };
    }
    let mut wl = [0f32; 8];
    let mut dl = [0f32; 8];
    let mut gc = g.chunks_exact_mut(8);
    let mut ec = e.chunks_exact(8);
    for (gk, ek) in (&mut gc).zip(&mut ec) {
        for i in 0..8 {
            let p = ek[i] * inv;
            let (sg, d) = l1_terms(p, cinv);
            gk[i] = sg;
            wl[i] += sg * p;
            dl[i] += d;
        }
    }
    for (i, (gv, &ev)) in gc
        .into_remainder()
        .iter_mut()
        .zip(ec.remainder())
        .enumerate()
    {
        let p = ev * inv;
        let (sg, d) = l1_terms(p, cinv);
        *gv = sg;
        wl[i] += sg * p;
        dl[i] += d;
    }
    (fastmath::fold8(&wl), fastmath::fold8(&dl) as f64)
}

/// `sum_k (e_k inv)^2` in 8 float lanes.
#[inline(always)]
pub(super) fn squares_row(e: &[f32], inv: f32) -> f32 {
    let mut sl = [0f32; 8];
    let mut ec = e.chunks_exact(8);
    for ek in &mut ec {
        for i in 0..8 {
            let p = ek[i] * inv;
            sl[i] += p * p;
        }
    }
    for (i, &ev) in ec.remainder().iter().enumerate() {
        let p = ev * inv;
        sl[i] += p * p;
    }
    fastmath::fold8(&sl)
}

/// Writes `e_k = exp(x_k - mx)` and returns their sum (8 float lanes, added in a fixed order).
#[inline(always)]
pub(super) fn exp_shifted(x: &[f32], mx: f32, e: &mut [f32]) -> f32 {
    // a plain element loop (the loop vectoriser handles it; an 8-lane chunk body with the sum
    // folded in stays scalar), then the sum in 8 lanes
    for (ev, &v) in e.iter_mut().zip(x) {
        *ev = fastmath::exp(v - mx);
    }
    let mut sm = [0f32; 8];
    let mut es = e.chunks_exact(8);
    for c in &mut es {
        for i in 0..8 {
            sm[i] += c[i];
        }
    }
    for (i, &v) in es.remainder().iter().enumerate() {
        sm[i] += v;
    }
    fastmath::fold8(&sm)
}

/// The MbLS part of one row: [`margin_grad`] and the first maximal index
/// ([`first_index_of`]); one pass with AVX2 ([`avx2::margin_row`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn margin_row<const AVX2: bool>(
    x: &[f32],
    e: &[f32],
    g: &mut [f32],
    scale: f32,
    thr: f32,
    s: f32,
    mx: f32,
) -> (f64, u32, usize) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` is only set by `chunk_2d_avx2`, run where the CPU has AVX2.
        return unsafe { avx2::margin_row(x, e, g, scale, thr, s, mx) };
    }
    let (pen, active) = margin_grad(x, e, g, scale, thr, s);
    (pen, active, first_index_of(x, mx))
}

/// MbLS row gradient without the max's share: `g_k = e_k * scale - s [x_k < thr]`; returns
/// `(Σ_k relu(thr − x_k), #{x_k < thr})`, accumulated in float lanes so the loop vectorises
/// (counts are exact in f32 up to 2^24 classes).
#[inline(always)]
pub(super) fn margin_grad(
    x: &[f32],
    e: &[f32],
    g: &mut [f32],
    scale: f32,
    thr: f32,
    s: f32,
) -> (f64, u32) {
    // plain element loop for the gradient (vectorised by the loop vectoriser) ...
    for ((gv, &ev), &v) in g.iter_mut().zip(e).zip(x) {
        *gv = ev * scale - if v < thr { s } else { 0.0 };
    }
    // ... and the two sums in 8 float lanes over x alone (selects, as in max_min_sum)
    let mut pen = [0f32; 8];
    let mut act = [0f32; 8];
    let mut xs = x.chunks_exact(8);
    for c in &mut xs {
        for i in 0..8 {
            let d = thr - c[i];
            pen[i] += if d > 0.0 { d } else { 0.0 };
            act[i] += if d > 0.0 { 1.0 } else { 0.0 };
        }
    }
    for (i, &v) in xs.remainder().iter().enumerate() {
        let d = thr - v;
        pen[i] += if d > 0.0 { d } else { 0.0 };
        act[i] += if d > 0.0 { 1.0 } else { 0.0 };
    }
    let active: f32 = act.iter().sum();
    (pen.iter().map(|&v| v as f64).sum(), active as u32)
}

/// Index of the first element equal to `m` (0 if none), testing 8 at a time.
#[inline(always)]
pub(super) fn first_index_of(x: &[f32], m: f32) -> usize {
    let mut it = x.chunks_exact(8);
    let mut base = 0;
    for c in &mut it {
        let mut hit = false;
        for &v in c {
            hit |= v == m;
        }
        if hit {
            return base + c.iter().position(|&v| v == m).unwrap_or(0);
        }
        base += 8;
    }
    base + it.remainder().iter().position(|&v| v == m).unwrap_or(0)
}

/// Focal loss of one row and the coefficient `coef` of its gradient: `dL/dx_k = -coef p_k`
/// plus `coef` at the target.
#[inline(always)]
pub(super) fn focal_coef(logp_y: f64, gamma: f64, mean: bool, n: f32) -> (f64, f32) {
    let p = logp_y.exp();
    let q = 1.0 - p;
    // (1-p)^g and (1-p)^(g-1): by multiplications for the usual whole gammas (1 to 16;
    // FLSD-53 uses 3 and 5), two libm pow calls per sample otherwise
    let (qg, qg1) = if gamma == 0.0 {
        (1.0, 0.0)
    } else if gamma.fract() == 0.0 && (1.0..=16.0).contains(&gamma) {
        let qg1 = q.powi(gamma as i32 - 1);
        (qg1 * q, qg1)
    } else {
        (q.powf(gamma), q.powf(gamma - 1.0))
    };
    let loss = -qg * logp_y;
    // dL/dlog p_y = -(1-p)^g + g (1-p)^(g-1) p log p ; dlog p_y/dx_k = [k=y] - p_k
    let dq = if gamma == 0.0 {
        0.0
    } else {
        gamma * qg1 * p * logp_y
    };
    let coef = (-qg + dq) as f32 * if mean { n } else { 1.0 };
    (loss, coef)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn focal_row(
    g: &mut [f32],
    e: &[f32],
    inv: f32,
    y: usize,
    logp_y: f64,
    gamma: f64,
    mean: bool,
    n: f32,
) -> Sums {
    let (loss, coef) = focal_coef(logp_y, gamma, mean, n);
    for (gv, &ev) in g.iter_mut().zip(e) {
        *gv = -coef * ev * inv;
    }
    g[y] += coef;
    (loss, 0.0)
}
