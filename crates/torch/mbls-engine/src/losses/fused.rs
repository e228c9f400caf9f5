//! Fused CPU kernels for the row-wise losses (CE, label smoothing, focal, FLSD-53, MbLS, ECP,
//! the L1 penalty and Brier).
//!
//! For float32 logits on the CPU, the loss value and its gradient with respect to the
//! logits are computed in one pass over the data (both threads, dense `N x C x H x W` read in
//! place, no transposed copy), and handed to autograd through a surrogate whose value is the
//! loss and whose gradient is the computed one:
//! `total = <x, g> − stop_grad(<x, g>) + value`. The gradients are the analytic ones of the
//! reference's formulas (checked against the reference's own gradients in the parity tests).
//! Only the total is differentiable, and only once (no double backward); other devices and
//! dtypes use the tensor-op implementations.

use super::LossError;
use super::impls::check_inputs;
use mbls_metrics::fastmath;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Which row loss to fuse.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowLoss {
    Ce,
    Ls {
        alpha: f32,
    },
    Focal {
        gamma: f32,
        mean: bool,
    },
    FocalAdaptive {
        gamma: f32,
        mean: bool,
    },
    Margin {
        margin: f32,
        alpha: f64,
    },
    /// ECP: CE minus `alpha` times the mean over N x C of `-p log p`, p clamped to 1e-10.
    Entropy {
        alpha: f64,
    },
    /// CE plus `alpha` times the L1 distance of the probabilities to uniform, per row.
    L1 {
        alpha: f64,
    },
    /// Brier score: squared distance of the probabilities to the one-hot target, per row.
    Brier,
}

/// Per-chunk sums: (main term sum, second term sum).
type Sums = (f64, f64);

/// Returns `None` when the fused path does not apply (not CPU float32, or empty).
pub(crate) fn fused(
    kind: RowLoss,
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
) -> Result<Option<(Vec<f64>, Tensor)>, LossError> {
    if logits.device() != Device::Cpu || logits.kind() != Kind::Float || logits.dim() < 2 {
        return Ok(None);
    }
    let dims = check_inputs(logits, targets)?;
    let (n, c) = (dims[0] as usize, dims[1] as usize);
    if targets.device() != Device::Cpu {
        return Ok(None);
    }
    if c == 0 || logits.numel() == 0 {
        return Ok(None);
    }
    let hw = dims[2..].iter().product::<i64>() as usize;
    let x = logits.detach().contiguous();
    let y = targets.to_kind(Kind::Int64).contiguous();
    // SAFETY: `x` and `y` are contiguous CPU tensors of the stated kinds and element counts,
    // alive for the whole function; they are only read.
    let xs: &[f32] = unsafe { std::slice::from_raw_parts(x.data_ptr() as *const f32, n * c * hw) };
    let ys: &[i64] = unsafe { std::slice::from_raw_parts(y.data_ptr() as *const i64, n * hw) };
    let mut valid = 0usize;
    for &t in ys {
        if t == ignore_index {
            continue;
        }
        if t < 0 || t as usize >= c {
            return Err(LossError::TargetOutOfRange {
                target: t,
                classes: c as i64,
                ignore_index,
            });
        }
        valid += 1;
    }
    if valid == 0 {
        return Ok(None); // the op path returns the zero loss
    }
    let g = Tensor::empty(dims.as_slice(), (Kind::Float, Device::Cpu));
    // SAFETY: `g` was just allocated, contiguous, float32, and nothing else refers to it.
    let gs: &mut [f32] =
        unsafe { std::slice::from_raw_parts_mut(g.data_ptr() as *mut f32, n * c * hw) };
    let inv_n = 1.0 / valid as f64;
    let ctx = Ctx {
        kind,
        c,
        ignore_index,
        inv_n: inv_n as f32,
        inv_nc: (inv_n / c as f64) as f32,
    };
    let (s1, s2) = if hw == 1 {
        rows_2d(&ctx, xs, ys, gs)
    } else {
        rows_dense(&ctx, xs, ys, gs, c, hw)
    };
    let terms = match kind {
        RowLoss::Ce | RowLoss::Ls { .. } => vec![s1 * inv_n],
        RowLoss::Focal { mean, .. } | RowLoss::FocalAdaptive { mean, .. } => {
            vec![if mean { s1 * inv_n } else { s1 }]
        }
        RowLoss::Margin { alpha, .. } => {
            let ce = s1 * inv_n;
            let margin = s2 * inv_n / c as f64;
            vec![ce + alpha * margin, ce, margin]
        }
        RowLoss::Entropy { alpha } => {
            let ce = s1 * inv_n;
            let ent = s2 * inv_n / c as f64;
            vec![ce - alpha * ent, ce, ent]
        }
        RowLoss::L1 { alpha } => {
            let ce = s1 * inv_n;
            let l1 = s2 * inv_n;
            vec![ce + alpha * l1, ce, l1]
        }
        RowLoss::Brier => vec![s1 * inv_n],
    };
    Ok(Some((terms, g)))
}

/// The surrogate `<x, g> - stop_grad(<x, g>) + value`: value `value`, gradient `g`.
pub(crate) fn attach(logits: &Tensor, g: &Tensor, value: f64) -> Tensor {
    let lin = logits.reshape([-1]).dot(&g.reshape([-1]));
    let constant = Tensor::from(value as f32) - lin.detach();
    lin + constant
}

struct Ctx {
    kind: RowLoss,
    c: usize,
    ignore_index: i64,
    inv_n: f32,
    inv_nc: f32,
}

/// Rows per parallel work item, fixed, so that the sums (and so the results) do not depend
/// on the number of threads. (Smaller items cost more in thread hand-offs than they gain on
/// 2 cores at the sizes measured in `bench/compare_losses.sh`.)
fn chunk_rows(_c: usize) -> usize {
    512
}

fn rows_2d(ctx: &Ctx, xs: &[f32], ys: &[i64], gs: &mut [f32]) -> Sums {
    let c = ctx.c;
    let rows = chunk_rows(c);
    if ys.len() <= rows {
        // one work item: run it here rather than hand it to a pool thread
        return chunk_2d_dispatch(ctx, xs, ys, gs);
    }
    let parts: Vec<Sums> = gs
        .par_chunks_mut(rows * c)
        .zip(xs.par_chunks(rows * c))
        .zip(ys.par_chunks(rows))
        .map(|((g, x), y)| chunk_2d_dispatch(ctx, x, y, g))
        .collect();
    parts.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// [`chunk_2d`] compiled for AVX2 when the CPU has it (same results: no fused multiply-adds).
fn chunk_2d_dispatch(ctx: &Ctx, x: &[f32], y: &[i64], g: &mut [f32]) -> Sums {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { chunk_2d_avx2(ctx, x, y, g) };
        }
    }
    chunk_2d::<false>(ctx, x, y, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_2d_avx2(ctx: &Ctx, x: &[f32], y: &[i64], g: &mut [f32]) -> Sums {
    chunk_2d::<true>(ctx, x, y, g)
}

/// `AVX2` as for [`dense_image`].
#[inline(always)]
fn chunk_2d<const AVX2: bool>(ctx: &Ctx, x: &[f32], y: &[i64], g: &mut [f32]) -> Sums {
    let c = ctx.c;
    let mut e = vec![0f32; c];
    let mut acc = (0f64, 0f64);
    for ((gr, xr), &t) in g.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(y) {
        let (a, b) = row::<AVX2>(ctx, xr, t, gr, &mut e);
        acc.0 += a;
        acc.1 += b;
    }
    acc
}

const TILE: usize = 512;

fn rows_dense(ctx: &Ctx, xs: &[f32], ys: &[i64], gs: &mut [f32], c: usize, hw: usize) -> Sums {
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
struct TileBufs {
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
fn dense_image_dispatch(
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
unsafe fn dense_image_avx2(
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
fn dense_image<const AVX2: bool>(
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
    let margin = matches!(ctx.kind, RowLoss::Margin { .. });
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
fn tile_softmax_parts<const MARGIN: bool, const LS: bool, const AVX2: bool>(
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
const ENT: u8 = 0;
const L1: u8 = 1;
const BRIER: u8 = 2;

/// Lower clamp of the probabilities in ECP (`clamp(p, 1e-10, 1 - 1e-10)` on float32: the
/// upper bound rounds to 1, which no probability exceeds).
const ENT_EPS: f32 = 1e-10;

/// `-q log q` of the clamped probability `q = ENT_EPS`.
#[inline(always)]
fn ent_floor() -> f32 {
    -ENT_EPS * ENT_EPS.ln()
}

/// ECP terms of one probability `p` with log `lp`: the gradient weight
/// `w = p (log p + 1)` (0 where the clamp holds `p` at 1e-10, as its gradient is 0 there)
/// and the entropy term `-q log q` of the clamped value.
#[inline(always)]
fn ent_terms(p: f32, lp: f32, floor: f32) -> (f32, f32) {
    let on = p >= ENT_EPS;
    (
        if on { p * (lp + 1.0) } else { 0.0 },
        if on { -p * lp } else { floor },
    )
}

/// L1 terms of one probability: `sgn(p - 1/C)` (0 at 0, as torch's abs gradient) and
/// `|p - 1/C|`.
#[inline(always)]
fn l1_terms(p: f32, cinv: f32) -> (f32, f32) {
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
fn dense_prob_tile<const KIND: u8, const AVX2: bool>(
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
fn dense_tile<const MARGIN: bool, const LS: bool, const AVX2: bool>(
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
            RowLoss::Margin { margin, .. } => {
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
        RowLoss::Margin { alpha, .. } => (alpha as f32) * ctx.inv_nc,
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

/// Hand-written AVX2 versions of the two MbLS-specific passes of the dense kernel (and of the
/// per-pixel max every dense loss needs). LLVM's auto-vectoriser turned the portable loops
/// into masked stores and per-lane branches; these keep the running values of several pixel
/// vectors in registers across the class planes. They do exactly the scalar loops'
/// operations in the same order (no fused multiply-adds), so results are the same bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use mbls_metrics::fastmath;
    use std::arch::x86_64::*;

    /// Pixels per block of the max pass (4 vectors of 8).
    const MAX_BLOCK: usize = 32;
    /// Pixels per block of the MbLS gradient pass (2 vectors of 8).
    const GRAD_BLOCK: usize = 16;

    /// Stage 1 over whole blocks of 32 pixels of the tile `[start, start + len)`: per-pixel
    /// max over the `c` class planes (strictly greater replaces, so the first maximal class is
    /// kept), with `MARGIN` the index of that class (as f32), with `LS` the sum of the logits
    /// in class order. Returns how many pixels it did (a multiple of 32, from the tile start).
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn max_planes<const MARGIN: bool, const LS: bool>(
        x: &[f32],
        hw: usize,
        c: usize,
        start: usize,
        len: usize,
        mx: &mut [f32],
        am: &mut [f32],
        sx: &mut [f32],
    ) -> usize {
        let done = len / MAX_BLOCK * MAX_BLOCK;
        if done == 0 || c == 0 {
            return 0;
        }
        // every load below is of plane k < c at pixels start..start + done
        assert!((c - 1) * hw + start + done <= x.len());
        assert!(mx.len() >= done && am.len() >= done && sx.len() >= done);
        let base = x.as_ptr();
        for ib in (0..done).step_by(MAX_BLOCK) {
            // SAFETY: the asserts above bound every offset (plane k < c, pixel < start + done).
            unsafe {
                let p0 = base.add(start + ib);
                let mut m = [
                    _mm256_loadu_ps(p0),
                    _mm256_loadu_ps(p0.add(8)),
                    _mm256_loadu_ps(p0.add(16)),
                    _mm256_loadu_ps(p0.add(24)),
                ];
                let mut a = [_mm256_setzero_ps(); 4];
                let mut s = m;
                for k in 1..c {
                    let p = base.add(k * hw + start + ib);
                    let kf = _mm256_set1_ps(k as f32);
                    for j in 0..4 {
                        let v = _mm256_loadu_ps(p.add(8 * j));
                        if MARGIN {
                            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, m[j]);
                            a[j] = _mm256_blendv_ps(a[j], kf, gt);
                        }
                        if LS {
                            s[j] = _mm256_add_ps(s[j], v);
                        }
                        // max_ps(v, m) is `v > m ? v : m`, the scalar loop's select
                        m[j] = _mm256_max_ps(v, m[j]);
                    }
                }
                for j in 0..4 {
                    _mm256_storeu_ps(mx.as_mut_ptr().add(ib + 8 * j), m[j]);
                    if MARGIN {
                        _mm256_storeu_ps(am.as_mut_ptr().add(ib + 8 * j), a[j]);
                    }
                    if LS {
                        _mm256_storeu_ps(sx.as_mut_ptr().add(ib + 8 * j), s[j]);
                    }
                }
            }
        }
        done
    }

    /// Stage 4 of MbLS over whole blocks of 16 pixels: for every class plane, the gradient
    /// `e * gscale - (x < thr ? s : 0)`, and per pixel the penalty `sum relu(thr - x)` and
    /// the count of penalised logits. Returns how many pixels it did.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn margin_grad(
        x: &[f32],
        e: &[f32],
        e_stride: usize,
        g: &mut [f32],
        hw: usize,
        c: usize,
        start: usize,
        len: usize,
        thr: &[f32],
        gscale: &[f32],
        s: f32,
        pen: &mut [f32],
        act: &mut [f32],
    ) -> usize {
        let done = len / GRAD_BLOCK * GRAD_BLOCK;
        if done == 0 || c == 0 {
            return 0;
        }
        assert!((c - 1) * hw + start + done <= x.len());
        assert!((c - 1) * hw + start + done <= g.len());
        assert!((c - 1) * e_stride + done <= e.len());
        assert!(thr.len() >= done && gscale.len() >= done);
        assert!(pen.len() >= done && act.len() >= done);
        let zero = _mm256_setzero_ps();
        let sv = _mm256_set1_ps(s);
        for ib in (0..done).step_by(GRAD_BLOCK) {
            // SAFETY: the asserts above bound every offset (plane k < c, pixel < done).
            unsafe {
                let th = [
                    _mm256_loadu_ps(thr.as_ptr().add(ib)),
                    _mm256_loadu_ps(thr.as_ptr().add(ib + 8)),
                ];
                let gs = [
                    _mm256_loadu_ps(gscale.as_ptr().add(ib)),
                    _mm256_loadu_ps(gscale.as_ptr().add(ib + 8)),
                ];
                let mut p = [zero; 2];
                let mut n = [_mm256_setzero_si256(); 2];
                for k in 0..c {
                    let xp = x.as_ptr().add(k * hw + start + ib);
                    let ep = e.as_ptr().add(k * e_stride + ib);
                    let gp = g.as_mut_ptr().add(k * hw + start + ib);
                    for j in 0..2 {
                        let d = _mm256_sub_ps(th[j], _mm256_loadu_ps(xp.add(8 * j)));
                        let on = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
                        p[j] = _mm256_add_ps(p[j], _mm256_and_ps(on, d));
                        // the mask is all ones (-1) where on: subtracting it counts
                        n[j] = _mm256_sub_epi32(n[j], _mm256_castps_si256(on));
                        let ge = _mm256_mul_ps(_mm256_loadu_ps(ep.add(8 * j)), gs[j]);
                        _mm256_storeu_ps(gp.add(8 * j), _mm256_sub_ps(ge, _mm256_and_ps(on, sv)));
                    }
                }
                for j in 0..2 {
                    _mm256_storeu_ps(pen.as_mut_ptr().add(ib + 8 * j), p[j]);
                    _mm256_storeu_ps(act.as_mut_ptr().add(ib + 8 * j), _mm256_cvtepi32_ps(n[j]));
                }
            }
        }
        done
    }

    /// The MbLS part of one row in a single pass over its logits: the gradient
    /// `g_k = e_k * scale - (x_k < thr ? s : 0)`, the penalty and the count of penalised
    /// logits (8 lanes, lane `i` taking elements `i mod 8`, as [`super::margin_grad`]), and
    /// the first index where `x_k == mx` (0 if none, as [`super::first_index_of`]).
    #[target_feature(enable = "avx2")]
    pub(super) fn margin_row(
        x: &[f32],
        e: &[f32],
        g: &mut [f32],
        scale: f32,
        thr: f32,
        s: f32,
        mx: f32,
    ) -> (f64, u32, usize) {
        let c = x.len();
        assert!(e.len() >= c && g.len() >= c);
        let full = c / 8 * 8;
        let zero = _mm256_setzero_ps();
        let (tv, sv, scv, mv) = (
            _mm256_set1_ps(thr),
            _mm256_set1_ps(s),
            _mm256_set1_ps(scale),
            _mm256_set1_ps(mx),
        );
        let mut p = zero;
        let mut n = _mm256_setzero_si256();
        let mut first = usize::MAX;
        for k in (0..full).step_by(8) {
            // SAFETY: k + 8 <= full <= the length of x, e and g (asserted above).
            unsafe {
                let xv = _mm256_loadu_ps(x.as_ptr().add(k));
                let d = _mm256_sub_ps(tv, xv);
                let on = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
                p = _mm256_add_ps(p, _mm256_and_ps(on, d));
                n = _mm256_sub_epi32(n, _mm256_castps_si256(on));
                let ge = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), scv);
                let gv = _mm256_sub_ps(ge, _mm256_and_ps(on, sv));
                _mm256_storeu_ps(g.as_mut_ptr().add(k), gv);
                if first == usize::MAX {
                    let eq = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(xv, mv));
                    if eq != 0 {
                        first = k + eq.trailing_zeros() as usize;
                    }
                }
            }
        }
        let mut pen = [0f32; 8];
        let mut act = [0i32; 8];
        // SAFETY: 8-lane stores into 8-element arrays.
        unsafe {
            _mm256_storeu_ps(pen.as_mut_ptr(), p);
            _mm256_storeu_si256(act.as_mut_ptr().cast(), n);
        }
        for k in full..c {
            let i = k - full;
            let d = thr - x[k];
            let on = d > 0.0;
            pen[i] += if on { d } else { 0.0 };
            act[i] += on as i32;
            g[k] = e[k] * scale - if on { s } else { 0.0 };
            if first == usize::MAX && x[k] == mx {
                first = k;
            }
        }
        if first == usize::MAX {
            first = 0;
        }
        let active: i32 = act.iter().sum();
        (pen.iter().map(|&v| v as f64).sum(), active as u32, first)
    }

    /// [`super::entropy_row`], 8 lanes in registers (same operations, same lanes).
    #[target_feature(enable = "avx2")]
    pub(super) fn entropy_row(
        x: &[f32],
        e: &[f32],
        g: &mut [f32],
        inv: f32,
        mx: f32,
        lse: f32,
    ) -> (f32, f64) {
        let c = x.len();
        assert!(e.len() >= c && g.len() >= c);
        let full = c / 8 * 8;
        let floor = super::ent_floor();
        let (iv, mv, lv, one) = (
            _mm256_set1_ps(inv),
            _mm256_set1_ps(mx),
            _mm256_set1_ps(lse),
            _mm256_set1_ps(1.0),
        );
        let (eps, fv, sign) = (
            _mm256_set1_ps(super::ENT_EPS),
            _mm256_set1_ps(floor),
            _mm256_set1_ps(-0.0),
        );
        let mut wv = _mm256_setzero_ps();
        let mut hv = _mm256_setzero_ps();
        for k in (0..full).step_by(8) {
            // SAFETY: k + 8 <= full <= the length of x, e and g (asserted above).
            unsafe {
                let p = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), iv);
                let xv = _mm256_loadu_ps(x.as_ptr().add(k));
                let lp = _mm256_sub_ps(_mm256_sub_ps(xv, mv), lv);
                let on = _mm256_cmp_ps::<_CMP_GE_OQ>(p, eps);
                let w = _mm256_and_ps(on, _mm256_mul_ps(p, _mm256_add_ps(lp, one)));
                let h = _mm256_blendv_ps(fv, _mm256_mul_ps(_mm256_xor_ps(p, sign), lp), on);
                _mm256_storeu_ps(g.as_mut_ptr().add(k), w);
                wv = _mm256_add_ps(wv, w);
                hv = _mm256_add_ps(hv, h);
            }
        }
        let mut wl = [0f32; 8];
        let mut hl = [0f32; 8];
        // SAFETY: 8-lane stores into 8-element arrays.
        unsafe {
            _mm256_storeu_ps(wl.as_mut_ptr(), wv);
            _mm256_storeu_ps(hl.as_mut_ptr(), hv);
        }
        for k in full..c {
            let (w, h) = super::ent_terms(e[k] * inv, (x[k] - mx) - lse, floor);
            g[k] = w;
            wl[k - full] += w;
            hl[k - full] += h;
        }
        (fastmath::fold8(&wl), fastmath::fold8(&hl) as f64)
    }

    /// [`super::l1_row`], 8 lanes in registers (same operations, same lanes).
    #[target_feature(enable = "avx2")]
    pub(super) fn l1_row(e: &[f32], g: &mut [f32], inv: f32, cinv: f32) -> (f32, f64) {
        let c = e.len();
        assert!(g.len() >= c);
        let full = c / 8 * 8;
        let (iv, cv, zero) = (
            _mm256_set1_ps(inv),
            _mm256_set1_ps(cinv),
            _mm256_setzero_ps(),
        );
        let (one, minus_one, abs) = (
            _mm256_set1_ps(1.0),
            _mm256_set1_ps(-1.0),
            _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)),
        );
        let mut wv = zero;
        let mut dv = zero;
        for k in (0..full).step_by(8) {
            // SAFETY: k + 8 <= full <= the length of e and g (asserted above).
            unsafe {
                let p = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), iv);
                let d = _mm256_sub_ps(p, cv);
                let sg = _mm256_or_ps(
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(d, zero), one),
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(d, zero), minus_one),
                );
                _mm256_storeu_ps(g.as_mut_ptr().add(k), sg);
                wv = _mm256_add_ps(wv, _mm256_mul_ps(sg, p));
                dv = _mm256_add_ps(dv, _mm256_and_ps(d, abs));
            }
        }
        let mut wl = [0f32; 8];
        let mut dl = [0f32; 8];
        // SAFETY: 8-lane stores into 8-element arrays.
        unsafe {
            _mm256_storeu_ps(wl.as_mut_ptr(), wv);
            _mm256_storeu_ps(dl.as_mut_ptr(), dv);
        }
        for k in full..c {
            let p = e[k] * inv;
            let (sg, d) = super::l1_terms(p, cinv);
            g[k] = sg;
            wl[k - full] += sg * p;
            dl[k - full] += d;
        }
        (fastmath::fold8(&wl), fastmath::fold8(&dl) as f64)
    }
}

/// One row: writes the gradient of the batch loss with respect to this row's logits and
/// returns the row's contributions to the term sums.
#[inline(always)]
fn row<const AVX2: bool>(ctx: &Ctx, x: &[f32], t: i64, g: &mut [f32], e: &mut [f32]) -> Sums {
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
        RowLoss::Margin { margin, alpha } => {
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
fn entropy_row<const AVX2: bool>(
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
fn l1_row<const AVX2: bool>(e: &[f32], g: &mut [f32], inv: f32, cinv: f32) -> (f32, f64) {
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
fn squares_row(e: &[f32], inv: f32) -> f32 {
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
fn exp_shifted(x: &[f32], mx: f32, e: &mut [f32]) -> f32 {
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
fn margin_row<const AVX2: bool>(
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
fn margin_grad(x: &[f32], e: &[f32], g: &mut [f32], scale: f32, thr: f32, s: f32) -> (f64, u32) {
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
fn first_index_of(x: &[f32], m: f32) -> usize {
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
fn focal_coef(logp_y: f64, gamma: f64, mean: bool, n: f32) -> (f64, f32) {
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
fn focal_row(
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

// the tests compare the AVX2 passes with the portable ones
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// A deterministic pseudo-random image: integer-valued logits (many tied maxima), and
    /// targets with some ignored pixels.
    fn image(c: usize, hw: usize) -> (Vec<f32>, Vec<i64>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let x = (0..c * hw)
            .map(|_| (next() % 9) as f32 * 1.5 - 6.0)
            .collect();
        let y = (0..hw)
            .map(|_| match next() % 10 {
                0 => 255,
                v => (v as usize % c) as i64,
            })
            .collect();
        (x, y)
    }

    /// The hand-written AVX2 passes give the same bits as the portable loops, for every dense
    /// loss, on tiles that end in partial blocks of 32, 16 and 8 pixels.
    #[test]
    fn avx2_dense_passes_equal_the_portable_ones() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            mbls_testkit::skip("this CPU has no AVX2");
            return;
        }
        for (c, hw) in [(7usize, 1353usize), (21, 512 + 57), (2, 31), (1, 100)] {
            let (x, y) = image(c, hw);
            let kinds = [
                RowLoss::Ce,
                RowLoss::Ls { alpha: 0.2 },
                RowLoss::Focal {
                    gamma: 2.0,
                    mean: true,
                },
                RowLoss::Margin {
                    margin: 3.0,
                    alpha: 0.1,
                },
                RowLoss::Margin {
                    margin: 0.0,
                    alpha: 0.1,
                },
                RowLoss::Entropy { alpha: 0.1 },
                RowLoss::L1 { alpha: 1.0 },
                RowLoss::Brier,
            ];
            for kind in kinds {
                let ctx = Ctx {
                    kind,
                    c,
                    ignore_index: 255,
                    inv_n: 1.0 / hw as f32,
                    inv_nc: 1.0 / (hw * c) as f32,
                };
                let tiles = hw.div_ceil(TILE);
                let mut ga = vec![0f32; c * hw];
                let mut gp = vec![0f32; c * hw];
                // SAFETY: the CPU has AVX2 (checked above)
                let sa = unsafe { dense_image_avx2(&ctx, &x, &y, &mut ga, c, hw, tiles) };
                let sp = dense_image::<false>(&ctx, &x, &y, &mut gp, c, hw, tiles);
                assert_eq!(sa, sp, "{kind:?} c={c} hw={hw}: sums");
                let same = ga.iter().zip(&gp).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{kind:?} c={c} hw={hw}: gradients differ");
            }
        }
    }

    /// The same for the row kernels (`N x C` input), with class counts around the 8 lanes.
    #[test]
    fn avx2_row_passes_equal_the_portable_ones() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            mbls_testkit::skip("this CPU has no AVX2");
            return;
        }
        let sizes = [
            (10usize, 128usize),
            (200, 64),
            (13, 40),
            (3, 50),
            (8, 9),
            (1, 5),
        ];
        // scale 8: probabilities far below ECP's clamp at 1e-10
        for ((c, rows), scale) in sizes.iter().flat_map(|&s| [(s, 1.0f32), (s, 8.0)]) {
            let (mut x, y) = image(c, rows);
            x.iter_mut().for_each(|v| *v *= scale);
            for kind in [
                RowLoss::Ce,
                RowLoss::Margin {
                    margin: 3.0,
                    alpha: 0.1,
                },
                RowLoss::Margin {
                    margin: 20.0,
                    alpha: 0.1,
                },
                RowLoss::Entropy { alpha: 0.1 },
                RowLoss::L1 { alpha: 1.0 },
                RowLoss::Brier,
            ] {
                let ctx = Ctx {
                    kind,
                    c,
                    ignore_index: 255,
                    inv_n: 1.0 / rows as f32,
                    inv_nc: 1.0 / (rows * c) as f32,
                };
                // `image` lays out planes; any layout will do for rows
                let mut ga = vec![0f32; c * rows];
                let mut gp = vec![0f32; c * rows];
                // SAFETY: the CPU has AVX2 (checked above)
                let sa = unsafe { chunk_2d_avx2(&ctx, &x, &y, &mut ga) };
                let sp = chunk_2d::<false>(&ctx, &x, &y, &mut gp);
                assert_eq!(sa, sp, "{kind:?} c={c}: sums");
                let same = ga.iter().zip(&gp).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{kind:?} c={c}: gradients differ");
            }
        }
    }
}
