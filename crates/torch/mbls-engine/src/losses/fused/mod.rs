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
use super::inputs::check_inputs;
use mbls_base::fastmath;
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
    /// MbLS (config name `logit_margin`): CE plus `alpha` times the mean over N x C of
    /// `relu(max - x - margin)`.
    LogitMargin {
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
        RowLoss::LogitMargin { alpha, .. } => {
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

#[cfg(target_arch = "x86_64")]
mod avx2;
mod dense;
mod rows;
// the tests compare the AVX2 passes with the portable ones
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;

use dense::*;
use rows::*;
