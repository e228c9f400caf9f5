//! Dense kernels: `N x C x H x W` logits read in place, tile by tile of pixels.

use super::*;

pub(super) const TILE: usize = 512;

pub(super) fn rows_dense(
    ctx: &Ctx,
    xs: &[f32],
    ys: &[i64],
    gs: &mut [f32],
    c: usize,
    hw: usize,
) -> Sums {
    // images run in parallel (each owns its gradient planes); tiles within an image in order
    let tiles = hw.div_ceil(TILE);
    let parts: Vec<Sums> = gs
        .par_chunks_mut(c * hw)
        .zip(xs.par_chunks(c * hw))
        .zip(ys.par_chunks(hw))
        .flat_map_iter(|((g, x), y)| dense_image_dispatch(ctx, x, y, g, c, hw, tiles))
        .collect();
    parts.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Per-tile scratch of the planar dense kernel: one value per pixel, and the exponentials of
/// every class plane of the tile.
pub(super) struct TileBufs {
    mx: Vec<f32>,
    am: Vec<f32>,
    sx: Vec<f32>,
    sum: Vec<f32>,
    gscale: Vec<f32>,
    sub: Vec<f32>,
    gy: Vec<f32>,
    thr: Vec<f32>,
    pen: Vec<f32>,
    act: Vec<f32>,
    e: Vec<f32>,
}

impl TileBufs {
    fn new(c: usize) -> Self {
        let v = || vec![0f32; TILE];
        TileBufs {
            mx: v(),
            am: v(),
            sx: v(),
            sum: v(),
            gscale: v(),
            sub: v(),
            gy: v(),
            thr: v(),
            pen: v(),
            act: v(),
            e: vec![0f32; TILE * c],
        }
    }
}

/// [`dense_image`] compiled for AVX2 when the CPU has it (8 floats per instruction instead of
/// SSE2's 4; no fused multiply-adds are introduced, so results are the same bits).
#[allow(clippy::too_many_arguments)]
pub(super) fn dense_image_dispatch(
    ctx: &Ctx,
    x: &[f32],
    y: &[i64],
    g: &mut [f32],
    c: usize,
    hw: usize,
    tiles: usize,
) -> Vec<Sums> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { dense_image_avx2(ctx, x, y, g, c, hw, tiles) };
        }
    }
    dense_image::<false>(ctx, x, y, g, c, hw, tiles)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dense_image_avx2(
    ctx: &Ctx,
    x: &[f32],
    y: &[i64],
    g: &mut [f32],
    c: usize,
    hw: usize,
    tiles: usize,
) -> Vec<Sums> {
    dense_image::<true>(ctx, x, y, g, c, hw, tiles)
}

/// One image of a dense batch (C planes of HW pixels), tile by tile, computed plane-wise:
/// every inner loop runs over contiguous pixels of one class plane, so it vectorises across
/// pixels and nothing is gathered into rows or scattered back. `AVX2` (only set where the
/// caller was compiled for AVX2 and the CPU has it) uses the hand-written passes of [`avx2`].
#[inline(always)]
pub(super) fn dense_image<const AVX2: bool>(
    ctx: &Ctx,
    x: &[f32],
    y: &[i64],
    g: &mut [f32],
    c: usize,
    hw: usize,
    tiles: usize,
) -> Vec<Sums> {
    let mut b = TileBufs::new(c);
    let mut out = Vec::with_capacity(tiles);
    let margin = matches!(ctx.kind, RowLoss::LogitMargin { .. });
    let ls = matches!(ctx.kind, RowLoss::Ls { .. });
    for t in 0..tiles {
        let start = t * TILE;
        let len = TILE.min(hw - start);
        let out_t = if margin {
            dense_tile::<true, false, AVX2>(ctx, x, y, g, c, hw, start, len, &mut b)
        } else if let RowLoss::Entropy { .. } = ctx.kind {
            dense_prob_tile::<ENT, AVX2>(ctx, x, y, g, c, hw, start, len, &mut b)
        } else if let RowLoss::L1 { .. } = ctx.kind {
            dense_prob_tile::<L1, AVX2>(ctx, x, y, g, c, hw, start, len, &mut b)
        } else if let RowLoss::Brier = ctx.kind {
            dense_prob_tile::<BRIER, AVX2>(ctx, x, y, g, c, hw, start, len, &mut b)
        } else if ls {
            dense_tile::<false, true, AVX2>(ctx, x, y, g, c, hw, start, len, &mut b)
        } else {
            dense_tile::<false, false, AVX2>(ctx, x, y, g, c, hw, start, len, &mut b)
        };
        out.push(out_t);
    }
    out
}

/// Stages 1 and 2 of a dense tile: per-pixel max `b.mx` (first maximal class kept on ties,
/// as torch.max; its index in `b.am` with `MARGIN`), the sum of the logits `b.sx` with `LS`,
/// the exponentials `b.e` of every class plane shifted by the max, and their sums `b.sum`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn tile_softmax_parts<const MARGIN: bool, const LS: bool, const AVX2: bool>(
    x: &[f32],
    c: usize,
    hw: usize,
    start: usize,
    len: usize,
    b: &mut TileBufs,
) {
    let plane = |k: usize| &x[k * hw + start..k * hw + start + len];
    let (mx, am, sx) = (&mut b.mx[..len], &mut b.am[..len], &mut b.sx[..len]);
    // 1. per-pixel max (first maximal class kept on ties, as torch.max), sum of logits
    mx.copy_from_slice(plane(0));
    if MARGIN {
        am.fill(0.0);
    }
    if LS {
        sx.copy_from_slice(plane(0));
    }
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` is only set by `dense_image_avx2`, which runs where the CPU has AVX2.
        done = unsafe { avx2::max_planes::<MARGIN, LS>(x, hw, c, start, len, mx, am, sx) };
    }
    // blocks of 8 pixels keep the running max and argmax in registers across the class planes
    let blocked = if MARGIN {
        done + (len - done) / 8 * 8
    } else {
        done
    };
    for ib in (done..blocked).step_by(8) {
        let mut m = [0f32; 8];
        let mut a = [0f32; 8];
        m.copy_from_slice(&mx[ib..ib + 8]);
        for k in 1..c {
            let xk = &x[k * hw + start + ib..k * hw + start + ib + 8];
            let kf = k as f32;
            for j in 0..8 {
                let v = xk[j];
                let gt = v > m[j];
                let bits = (gt as u32).wrapping_neg();
                a[j] = f32::from_bits((kf.to_bits() & bits) | (a[j].to_bits() & !bits));
                m[j] = if gt { v } else { m[j] };
            }
        }
        mx[ib..ib + 8].copy_from_slice(&m);
        am[ib..ib + 8].copy_from_slice(&a);
    }
    for k in 1..c {
        let xk = plane(k);
        let kf = k as f32;
        for i in blocked..len {
            let v = xk[i];
            let gt = v > mx[i];
            if MARGIN {
                // a bit blend rather than a select: LLVM turns that select into a
                // conditional store here and gives up vectorising the loop
                let m = (gt as u32).wrapping_neg();
                am[i] = f32::from_bits((kf.to_bits() & m) | (am[i].to_bits() & !m));
            }
            if LS {
                sx[i] += v;
            }
            mx[i] = if gt { v } else { mx[i] };
        }
    }
    // 2. exponentials and their per-pixel sums
    let sum = &mut b.sum[..len];
    sum.fill(0.0);
    for k in 0..c {
        let xk = plane(k);
        let ek = &mut b.e[k * TILE..k * TILE + len];
        for i in 0..len {
            let v = fastmath::exp(xk[i] - mx[i]);
            ek[i] = v;
            sum[i] += v;
        }
    }
}

/// [`dense_prob_tile`] kinds.
pub(super) const ENT: u8 = 0;
pub(super) const L1: u8 = 1;
pub(super) const BRIER: u8 = 2;

/// Lower clamp of the probabilities in ECP (`clamp(p, 1e-10, 1 - 1e-10)` on float32: the
/// upper bound rounds to 1, which no probability exceeds).
pub(super) const ENT_EPS: f32 = 1e-10;

/// `-q log q` of the clamped probability `q = ENT_EPS`.
#[inline(always)]
pub(super) fn ent_floor() -> f32 {
    -ENT_EPS * ENT_EPS.ln()
}

/// ECP terms of one probability `p` with log `lp`: the gradient weight
/// `w = p (log p + 1)` (0 where the clamp holds `p` at 1e-10, as its gradient is 0 there)
/// and the entropy term `-q log q` of the clamped value.
#[inline(always)]
pub(super) fn ent_terms(p: f32, lp: f32, floor: f32) -> (f32, f32) {
    let on = p >= ENT_EPS;
    (
        if on { p * (lp + 1.0) } else { 0.0 },
        if on { -p * lp } else { floor },
    )
}

/// L1 terms of one probability: `sgn(p - 1/C)` (0 at 0, as torch's abs gradient) and
/// `|p - 1/C|`.
#[inline(always)]
pub(super) fn l1_terms(p: f32, cinv: f32) -> (f32, f32) {
    let d = p - cinv;
    let sg = if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    };
    (sg, d.abs())
}

/// One dense tile of the losses whose gradient needs a sum over the classes of a function
/// of the probabilities (ECP, L1, Brier): after the shared max and exponentials, one plane
/// pass gathers the per-pixel sums (the gradient weights parked in `g`), a second writes
/// the gradient.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn dense_prob_tile<const KIND: u8, const AVX2: bool>(
    ctx: &Ctx,
    x: &[f32],
    y: &[i64],
    g: &mut [f32],
    c: usize,
    hw: usize,
    start: usize,
    len: usize,
    b: &mut TileBufs,
) -> Sums {
    tile_softmax_parts::<false, false, AVX2>(x, c, hw, start, len, b);
    let n = ctx.inv_n;
    let alpha = match ctx.kind {
        RowLoss::Entropy { alpha } | RowLoss::L1 { alpha } => alpha as f32,
        _ => 0.0,
    };
    let (mx, sum) = (&b.mx[..len], &b.sum[..len]);
    let (inv, lse, yf) = (&mut b.gscale[..len], &mut b.sub[..len], &mut b.thr[..len]);
    // per pixel: 1/sum (0 at ignored pixels, which so get p = 0 and a zero gradient), the
    // log of the sum, the target as a float (-1 when ignored), and the CE
    let mut acc = 0f64;
    for i in 0..len {
        let t = y[start + i];
        if t == ctx.ignore_index {
            inv[i] = 0.0;
            lse[i] = 0.0;
            yf[i] = -1.0;
            continue;
        }
        inv[i] = 1.0 / sum[i];
        let l = (sum[i] as f64).ln();
        lse[i] = l as f32;
        yf[i] = t as f32;
        if KIND != BRIER {
            acc += -((x[t as usize * hw + start + i] - mx[i]) as f64 - l);
        }
    }
    // pass A: per-pixel sums; ECP and L1 park their gradient weights in g
    let (ws, hs) = (&mut b.gy[..len], &mut b.pen[..len]);
    ws.fill(0.0);
    hs.fill(0.0);
    let floor = ent_floor();
    let cinv = (1.0 / c as f64) as f32;
    for k in 0..c {
        let xk = &x[k * hw + start..k * hw + start + len];
        let ek = &b.e[k * TILE..k * TILE + len];
        let gk = &mut g[k * hw + start..k * hw + start + len];
        let kf = k as f32;
        for i in 0..len {
            let p = ek[i] * inv[i];
            if KIND == ENT {
                let (w, h) = ent_terms(p, (xk[i] - mx[i]) - lse[i], floor);
                gk[i] = w;
                ws[i] += w;
                hs[i] += h;
            } else if KIND == L1 {
                let (sg, d) = l1_terms(p, cinv);
                gk[i] = sg;
                ws[i] += sg * p;
                hs[i] += d;
            } else {
                // the target's own term is added apart, in float64
                let q = if yf[i] == kf { 0.0 } else { p };
                hs[i] += q * q;
            }
        }
    }
    // per pixel: the value, and `coef` for pass B and the target's share (ECP: the gradient
    // coefficient; Brier: p_y; L1 needs none, `inv` and `ws` serve)
    let coef = &mut b.act[..len];
    let a = alpha * ctx.inv_nc;
    let mut s2 = 0f64;
    for i in 0..len {
        if yf[i] < 0.0 {
            coef[i] = 0.0;
            continue;
        }
        if KIND == ENT {
            coef[i] = inv[i] * (n - a * ws[i]);
            s2 += hs[i] as f64;
        } else if KIND == L1 {
            s2 += hs[i] as f64;
        } else {
            let py = b.e[yf[i] as usize * TILE + i] * inv[i];
            // sum_k (p_k - onehot_k) p_k, for the gradient
            ws[i] = hs[i] - py * (1.0 - py);
            coef[i] = py; // for the target's share below
            acc += hs[i] as f64 + (1.0 - py as f64) * (1.0 - py as f64);
        }
    }
    // pass B: the gradient planes
    let cf = alpha * n;
    let two_n = 2.0 * n;
    for k in 0..c {
        let ek = &b.e[k * TILE..k * TILE + len];
        let gk = &mut g[k * hw + start..k * hw + start + len];
        for i in 0..len {
            if KIND == ENT {
                gk[i] = ek[i] * coef[i] + a * gk[i];
            } else if KIND == L1 {
                gk[i] = ek[i] * inv[i] * (n + cf * (gk[i] - ws[i]));
            } else {
                let p = ek[i] * inv[i];
                gk[i] = two_n * p * (p - ws[i]);
            }
        }
    }
    // the target's share
    for i in 0..len {
        if yf[i] < 0.0 {
            continue;
        }
        let at = yf[i] as usize * hw + start + i;
        if KIND == BRIER {
            g[at] -= two_n * coef[i];
        } else {
            g[at] -= n;
        }
    }
    (acc, s2)
}

/// One tile of `len` pixels from `start`; `MARGIN` adds the first maximal class and the
/// penalty terms, `LS` the sum of the logits.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn dense_tile<const MARGIN: bool, const LS: bool, const AVX2: bool>(
    ctx: &Ctx,
    x: &[f32],
    y: &[i64],
    g: &mut [f32],
    c: usize,
    hw: usize,
    start: usize,
    len: usize,
    b: &mut TileBufs,
) -> Sums {
    tile_softmax_parts::<MARGIN, LS, AVX2>(x, c, hw, start, len, b);
    let plane = |k: usize| &x[k * hw + start..k * hw + start + len];
    let (mx, am, sx) = (&mut b.mx[..len], &mut b.am[..len], &mut b.sx[..len]);
    let sum = &mut b.sum[..len];
    // 3. per pixel: the loss and the coefficients of the gradient
    let n = ctx.inv_n;
    let (gscale, sub, gy, thr) = (
        &mut b.gscale[..len],
        &mut b.sub[..len],
        &mut b.gy[..len],
        &mut b.thr[..len],
    );
    let mut acc = 0f64;
    for i in 0..len {
        let t = y[start + i];
        if t == ctx.ignore_index {
            gscale[i] = 0.0;
            sub[i] = 0.0;
            gy[i] = 0.0;
            thr[i] = f32::NEG_INFINITY;
            continue;
        }
        let ty = t as usize;
        let inv = 1.0 / sum[i];
        let lse = (sum[i] as f64).ln();
        let logp_y = (x[ty * hw + start + i] - mx[i]) as f64 - lse;
        sub[i] = 0.0;
        thr[i] = f32::NEG_INFINITY;
        match ctx.kind {
            RowLoss::Ce => {
                gscale[i] = inv * n;
                gy[i] = -n;
                acc += -logp_y;
            }
            RowLoss::Ls { alpha } => {
                let cf = ctx.c as f32;
                gscale[i] = inv * n;
                sub[i] = alpha / cf * n;
                gy[i] = -(1.0 - alpha) * n;
                let mean_x = (sx[i] / cf - mx[i]) as f64;
                acc += (1.0 - alpha as f64) * -logp_y + alpha as f64 * (lse - mean_x);
            }
            RowLoss::Focal { gamma, mean } => {
                let (loss, coef) = focal_coef(logp_y, gamma as f64, mean, n);
                gscale[i] = -coef * inv;
                gy[i] = coef;
                acc += loss;
            }
            RowLoss::FocalAdaptive { gamma, mean } => {
                let p = (b.e[ty * TILE + i] * inv) as f64;
                let gm = if p >= 0.5 {
                    gamma as f64
                } else if p < 0.2 {
                    5.0
                } else {
                    3.0
                };
                let (loss, coef) = focal_coef(logp_y, gm, mean, n);
                gscale[i] = -coef * inv;
                gy[i] = coef;
                acc += loss;
            }
            RowLoss::LogitMargin { margin, .. } => {
                gscale[i] = inv * n;
                gy[i] = -n;
                // logits below the threshold are penalised (none when all are within margin)
                thr[i] = mx[i] - margin;
                acc += -logp_y;
            }
            RowLoss::Entropy { .. } | RowLoss::L1 { .. } | RowLoss::Brier => {
                unreachable!("dense_image runs these through dense_prob_tile")
            }
        }
    }
    // 4. the gradient planes (and the penalty and active counts per pixel)
    let s = match ctx.kind {
        RowLoss::LogitMargin { alpha, .. } => (alpha as f32) * ctx.inv_nc,
        _ => 0.0,
    };
    let (pen, act) = (&mut b.pen[..len], &mut b.act[..len]);
    if MARGIN {
        pen.fill(0.0);
        act.fill(0.0);
    }
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if AVX2 && MARGIN {
        // SAFETY: as for stage 1.
        done = unsafe {
            avx2::margin_grad(
                x, &b.e, TILE, g, hw, c, start, len, thr, gscale, s, pen, act,
            )
        };
    }
    // MbLS: blocks of 8 pixels keep the penalty and active count in registers across planes
    let blocked = if MARGIN {
        done + (len - done) / 8 * 8
    } else {
        0
    };
    for ib in (done..blocked).step_by(8) {
        let mut p8 = [0f32; 8];
        let mut a8 = [0f32; 8];
        let mut th = [0f32; 8];
        let mut gs = [0f32; 8];
        th.copy_from_slice(&thr[ib..ib + 8]);
        gs.copy_from_slice(&gscale[ib..ib + 8]);
        for k in 0..c {
            let xk = &x[k * hw + start + ib..k * hw + start + ib + 8];
            let ek = &b.e[k * TILE + ib..k * TILE + ib + 8];
            let gk = &mut g[k * hw + start + ib..k * hw + start + ib + 8];
            for j in 0..8 {
                let d = th[j] - xk[j];
                let on = d > 0.0;
                p8[j] += if on { d } else { 0.0 };
                a8[j] += if on { 1.0 } else { 0.0 };
                gk[j] = ek[j] * gs[j] - if on { s } else { 0.0 };
            }
        }
        pen[ib..ib + 8].copy_from_slice(&p8);
        act[ib..ib + 8].copy_from_slice(&a8);
    }
    for k in 0..c {
        let xk = plane(k);
        let ek = &b.e[k * TILE..k * TILE + len];
        let gk = &mut g[k * hw + start..k * hw + start + len];
        if MARGIN {
            for i in blocked..len {
                let d = thr[i] - xk[i];
                let on = d > 0.0;
                pen[i] += if on { d } else { 0.0 };
                act[i] += if on { 1.0 } else { 0.0 };
                gk[i] = ek[i] * gscale[i] - if on { s } else { 0.0 };
            }
        } else if LS {
            for i in 0..len {
                gk[i] = ek[i] * gscale[i] - sub[i];
            }
        } else {
            for i in 0..len {
                gk[i] = ek[i] * gscale[i];
            }
        }
    }
    // 5. the target's share, and the max's share of the penalty (+s per active logit)
    // (two loops: in one, the load of g[am][i] would wait on the store to g[t][i], which is
    // a whole number of planes away and so looks like the same address to the CPU's 4 KiB
    // alias check)
    for i in 0..len {
        let t = y[start + i];
        if t == ctx.ignore_index {
            continue;
        }
        g[t as usize * hw + start + i] += gy[i];
    }
    if MARGIN {
        for i in 0..len {
            // ignored pixels have no penalised logit (threshold -inf): they add s * 0
            g[am[i] as usize * hw + start + i] += s * act[i];
        }
    }
    // the penalties of the tile (0 at ignored pixels, whose threshold is -inf), summed in 4
    // float64 lanes rather than one chain of dependent adds
    let mut pen_sum = 0f64;
    if MARGIN {
        let mut lanes = [0f64; 4];
        let mut chunks = pen.chunks_exact(4);
        for ch in &mut chunks {
            for j in 0..4 {
                lanes[j] += ch[j] as f64;
            }
        }
        for (j, &v) in chunks.remainder().iter().enumerate() {
            lanes[j] += v as f64;
        }
        pen_sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    }
    (acc, pen_sum)
}
