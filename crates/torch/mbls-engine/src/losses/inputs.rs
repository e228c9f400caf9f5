//! The input checks every loss shares, tensor-op and fused alike: shapes and types of logits
//! and targets, dense logits as rows, `ignore_index` rows dropped, targets in range.

use super::LossError;
use tch::{Kind, Tensor};

/// Checks logits (`N x C ...`, floating point) against targets (`N ...`, integers);
/// returns the logits' shape.
pub(crate) fn check_inputs(logits: &Tensor, targets: &Tensor) -> Result<Vec<i64>, LossError> {
    let dims = logits.size();
    if dims.len() < 2 {
        return Err(LossError::Shape(format!(
            "logits must be N x C or N x C x H x W, got shape {dims:?}"
        )));
    }
    if !matches!(
        logits.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(LossError::Shape(format!(
            "logits must be floating point, got {:?}",
            logits.kind()
        )));
    }
    let want: Vec<i64> = std::iter::once(dims[0])
        .chain(dims[2..].iter().copied())
        .collect();
    if targets.size() != want {
        return Err(LossError::Shape(format!(
            "targets have shape {:?} but logits of shape {dims:?} need targets of shape {want:?}",
            targets.size()
        )));
    }
    if !matches!(
        targets.kind(),
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
    ) {
        return Err(LossError::Shape(format!(
            "targets must be integers, got {:?}",
            targets.kind()
        )));
    }
    Ok(dims)
}

/// Flattens dense logits to rows (`N,C,H,W -> N*H*W, C`), checks the targets, and drops the
/// rows whose target is `ignore_index`. Returns (rows x C logits, row targets as int64).
pub(crate) fn prepare(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
) -> Result<(Tensor, Tensor), LossError> {
    let dims = check_inputs(logits, targets)?;
    let (n, c) = (dims[0], dims[1]);
    let x = if dims.len() > 2 {
        logits.reshape([n, c, -1]).transpose(1, 2).reshape([-1, c])
    } else {
        logits.shallow_clone()
    };
    let y = targets.reshape([-1]).to_kind(Kind::Int64);
    let keep = y.ne(ignore_index);
    let all_kept = keep.numel() == 0 || keep.all().int64_value(&[]) == 1;
    let (x, y) = if all_kept {
        (x, y)
    } else {
        // 1-D indices even when a single row survives (the reference's squeeze() bug)
        let idx = keep.nonzero().squeeze_dim(1);
        (x.index_select(0, &idx), y.index_select(0, &idx))
    };
    if y.numel() > 0 {
        let lo = y.min().int64_value(&[]);
        let hi = y.max().int64_value(&[]);
        let bad = if lo < 0 {
            Some(lo)
        } else if hi >= c {
            Some(hi)
        } else {
            None
        };
        if let Some(t) = bad {
            return Err(LossError::TargetOutOfRange {
                target: t,
                classes: c,
                ignore_index,
            });
        }
    }
    Ok((x, y))
}
