//! Loading logits and labels from `.npz` or `.npy` files, with clear errors.

use anyhow::{Context, Result, bail};
use mbls_npy::{DType, NpyArray, Npz};
use std::path::{Path, PathBuf};

/// Scores and labels loaded from disk.
pub struct Loaded {
    /// Where they came from, for messages.
    pub source: String,
    /// Scores, row-major, float32.
    pub scores: Vec<f32>,
    /// Shape of the scores: `[N, C]` or `[N, C, spatial...]`.
    pub shape: Vec<usize>,
    /// Labels, `[N]` or `[N, spatial...]`.
    pub labels: Vec<i64>,
}

impl Loaded {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.shape[1]
    }
    /// Whether the scores are dense (`N x C x H x W ...`).
    pub fn is_dense(&self) -> bool {
        self.shape.len() > 2
    }
}

fn is_npz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

/// Loads `paths`: one `.npz` (keys `logits_key`, `labels_key`) or two `.npy` files
/// (scores, then labels).
pub fn load(paths: &[PathBuf], logits_key: &str, labels_key: &str) -> Result<Loaded> {
    let (scores, labels, source) = match paths {
        [p] if is_npz(p) => {
            let mut z = Npz::open(p)?;
            let s = z.get(logits_key)?;
            let l = z.get(labels_key)?;
            (s, l, p.display().to_string())
        }
        [p] => bail!(
            "{}: a single input must be an .npz archive with '{logits_key}' and '{labels_key}'; \
             for .npy files give two paths: LOGITS.npy LABELS.npy",
            p.display()
        ),
        [s, l] => (
            NpyArray::read(s)?,
            NpyArray::read(l)?,
            format!("{} + {}", s.display(), l.display()),
        ),
        _ => bail!(
            "expected one .npz file or two .npy files (logits, labels), got {}",
            paths.len()
        ),
    };
    check(scores, labels, source)
}

fn check(scores: NpyArray, labels: NpyArray, source: String) -> Result<Loaded> {
    let sdt = scores.dtype();
    if !matches!(sdt, DType::F32 | DType::F64) {
        bail!(
            "{source}: logits must be float32 or float64, found {}",
            sdt.name()
        );
    }
    let ldt = labels.dtype();
    if matches!(ldt, DType::F32 | DType::F64 | DType::Bool) {
        bail!(
            "{source}: labels must be integers (int32/int64 or smaller), found {}",
            ldt.name()
        );
    }
    let shape = scores.shape.clone();
    if shape.len() < 2 {
        bail!(
            "{source}: logits must be N x C (or N x C x H x W), found shape {:?}",
            shape
        );
    }
    if shape[1] < 2 {
        bail!(
            "{source}: need at least 2 classes, logits have C = {}",
            shape[1]
        );
    }
    let want_labels: Vec<usize> = std::iter::once(shape[0])
        .chain(shape[2..].iter().copied())
        .collect();
    if labels.shape != want_labels {
        bail!(
            "{source}: labels have shape {:?} but logits of shape {:?} need labels of shape {:?} \
             (mismatched N or spatial size)",
            labels.shape,
            shape,
            want_labels
        );
    }
    if shape[0] == 0 {
        bail!("{source}: no samples (N = 0)");
    }
    let labels_v = labels
        .to_i64()
        .with_context(|| format!("{source}: labels do not fit in int64"))?;
    let scores_v = scores
        .into_f32()
        .map_err(|_| anyhow::anyhow!("{source}: logits are not floating point"))?;
    Ok(Loaded {
        source,
        scores: scores_v,
        shape,
        labels: labels_v,
    })
}
