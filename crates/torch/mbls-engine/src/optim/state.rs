//! Optimizer state: serialisable metadata plus named tensors, saved as safetensors with a
//! JSON sidecar, each file written atomically.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use mbls_base::fs::write_atomic_path;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::params::Param;
use super::{AdamConfig, OptimError, SgdConfig};
use crate::fsutil::save_token;

/// Version of the state layout written by [`OptimizerState::save`] and checked on load.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Name of the tensor that ties a safetensors file to its JSON sidecar.
const TOKEN_KEY: &str = "__mbls_save_token__";

/// The kind of an optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// [`super::Sgd`].
    Sgd,
    /// [`super::Adam`].
    Adam,
    /// [`super::AdamW`].
    AdamW,
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        })
    }
}

/// Hyper-parameters of a saved optimizer, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HyperParams {
    /// SGD's configuration.
    Sgd(SgdConfig),
    /// Adam's configuration.
    Adam(AdamConfig),
    /// AdamW's configuration.
    AdamW(AdamConfig),
}

impl HyperParams {
    /// The optimizer kind these hyper-parameters belong to.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            HyperParams::Sgd(_) => OptimizerKind::Sgd,
            HyperParams::Adam(_) => OptimizerKind::Adam,
            HyperParams::AdamW(_) => OptimizerKind::AdamW,
        }
    }
}

/// Scalar state of one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamStateMeta {
    /// The parameter's name.
    pub name: String,
    /// The parameter's shape.
    pub shape: Vec<i64>,
    /// Whether weight decay applies to it.
    pub weight_decay: bool,
    /// Number of updates it received (0: it never had a gradient and has no state tensors).
    pub step: u64,
}

/// The serialisable part of an optimizer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    /// Layout version ([`STATE_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Kind and hyper-parameters (learning rate included).
    pub hyper: HyperParams,
    /// Per-parameter scalar state, in the optimizer's parameter order.
    pub params: Vec<ParamStateMeta>,
}

/// A full optimizer state: metadata plus the per-parameter state tensors, named
/// `"<parameter name>.<slot>"` with slot `momentum_buffer` (SGD), `exp_avg`, `exp_avg_sq`
/// and `max_exp_avg_sq` (Adam/AdamW, the last with `amsgrad`), as in PyTorch.
#[derive(Debug)]
pub struct OptimizerState {
    /// Hyper-parameters, parameter names and shapes, step counts.
    pub meta: OptimizerMeta,
    /// The state tensors by name.
    pub tensors: Vec<(String, Tensor)>,
}

/// One tensor of the sidecar's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    shape: Vec<i64>,
}

/// The JSON sidecar written next to the safetensors file.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    /// Random value also stored in the tensor file, so that files of different saves are
    /// not mixed up.
    save_token: u64,
    meta: OptimizerMeta,
    tensors: Vec<ManifestEntry>,
}

/// The JSON sidecar of a state saved at `path`: `path` with `.json` appended
/// (`optim.safetensors` → `optim.safetensors.json`).
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Name of the state tensor `slot` of parameter `param`.
pub(crate) fn state_key(param: &str, slot: &str) -> String {
    format!("{param}.{slot}")
}

impl OptimizerState {
    /// Writes the tensors to `path` (safetensors, moved to the CPU) and the metadata to
    /// [`sidecar_path`]`(path)` (JSON). Each file is written to a temporary file in the same
    /// folder, flushed to disk and renamed over the destination, so that a crash never
    /// leaves a truncated file; a token stored in both files lets [`OptimizerState::load`]
    /// detect a pair from two different saves. The folder must exist.
    pub fn save(&self, path: &Path) -> Result<(), OptimError> {
        let _guard = tch::no_grad_guard();
        let token = save_token();
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(self.tensors.len() + 1);
        let mut manifest = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            if name == TOKEN_KEY {
                return Err(OptimError::UnexpectedStateTensor(name.clone()));
            }
            named.push((name.clone(), t.f_to_device(Device::Cpu)?.f_contiguous()?));
            manifest.push(ManifestEntry {
                name: name.clone(),
                shape: t.size(),
            });
        }
        named.push((TOKEN_KEY.to_string(), Tensor::from_slice(&[token as i64])));
        write_atomic_path(path, io_err, |tmp| {
            Tensor::write_safetensors(&named, tmp)?;
            Ok(())
        })?;
        let sidecar = Sidecar {
            save_token: token,
            meta: self.meta.clone(),
            tensors: manifest,
        };
        let sidecar_file = sidecar_path(path);
        let json = serde_json::to_vec_pretty(&sidecar).map_err(|source| OptimError::Json {
            path: sidecar_file.clone(),
            source,
        })?;
        write_atomic_path(&sidecar_file, io_err, |tmp| {
            fs::write(tmp, &json).map_err(|source| OptimError::Io {
                path: tmp.to_path_buf(),
                source,
            })
        })
    }

    /// Reads a state written by [`OptimizerState::save`], checking that the tensor file and
    /// the sidecar belong together and that every tensor has its recorded shape. Tensors
    /// are loaded on the CPU.
    pub fn load(path: &Path) -> Result<Self, OptimError> {
        let sidecar_file = sidecar_path(path);
        let bytes = fs::read(&sidecar_file).map_err(|source| OptimError::Io {
            path: sidecar_file.clone(),
            source,
        })?;
        let sidecar: Sidecar =
            serde_json::from_slice(&bytes).map_err(|source| OptimError::Json {
                path: sidecar_file.clone(),
                source,
            })?;
        if sidecar.meta.format_version != STATE_FORMAT_VERSION {
            return Err(OptimError::UnsupportedFormat {
                expected: STATE_FORMAT_VERSION,
                found: sidecar.meta.format_version,
            });
        }
        let mismatch = || OptimError::SaveMismatch {
            tensors: path.to_path_buf(),
            sidecar: sidecar_file.clone(),
        };
        let mut by_name: HashMap<String, Tensor> =
            Tensor::read_safetensors(path)?.into_iter().collect();
        let token = by_name.remove(TOKEN_KEY).ok_or_else(mismatch)?;
        if token.numel() != 1 || token.f_int64_value(&[0])? as u64 != sidecar.save_token {
            return Err(mismatch());
        }
        if by_name.len() != sidecar.tensors.len() {
            return Err(mismatch());
        }
        let mut tensors = Vec::with_capacity(sidecar.tensors.len());
        for entry in sidecar.tensors {
            let t = by_name.remove(&entry.name).ok_or_else(mismatch)?;
            if t.size() != entry.shape {
                return Err(mismatch());
            }
            tensors.push((entry.name, t));
        }
        Ok(OptimizerState {
            meta: sidecar.meta,
            tensors,
        })
    }

    /// The state tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Checks the parameter list of a saved state against the optimizer's and returns the saved
/// metadata of each optimizer parameter, in the optimizer's order.
pub(crate) fn match_params<'a>(
    params: &[Param],
    meta: &'a OptimizerMeta,
) -> Result<Vec<&'a ParamStateMeta>, OptimError> {
    if meta.format_version != STATE_FORMAT_VERSION {
        return Err(OptimError::UnsupportedFormat {
            expected: STATE_FORMAT_VERSION,
            found: meta.format_version,
        });
    }
    let mut saved: HashMap<&str, &ParamStateMeta> = HashMap::new();
    for p in &meta.params {
        if saved.insert(p.name.as_str(), p).is_some() {
            return Err(OptimError::DuplicateParameter(p.name.clone()));
        }
    }
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let m = saved
            .remove(p.name.as_str())
            .ok_or_else(|| OptimError::MissingParameter(p.name.clone()))?;
        let shape = p.shape();
        if m.shape != shape {
            return Err(OptimError::ShapeMismatch {
                name: p.name.clone(),
                expected: shape,
                found: m.shape.clone(),
            });
        }
        out.push(m);
    }
    if let Some(extra) = meta
        .params
        .iter()
        .find(|p| saved.contains_key(p.name.as_str()))
    {
        return Err(OptimError::UnexpectedParameter(extra.name.clone()));
    }
    Ok(out)
}

/// Takes state tensors out of a saved state, checking shapes and that none is left over.
pub(crate) struct TensorTaker<'a> {
    by_name: HashMap<&'a str, &'a Tensor>,
    used: HashSet<&'a str>,
}

impl<'a> TensorTaker<'a> {
    pub(crate) fn new(state: &'a OptimizerState) -> Self {
        TensorTaker {
            by_name: state.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect(),
            used: HashSet::new(),
        }
    }

    /// A deep copy of state tensor `slot` of `param`, on the parameter's device and kind.
    pub(crate) fn take(&mut self, param: &Param, slot: &str) -> Result<Tensor, OptimError> {
        let key = state_key(&param.name, slot);
        let (&name, &t) = self
            .by_name
            .get_key_value(key.as_str())
            .ok_or_else(|| OptimError::MissingStateTensor(key.clone()))?;
        let expected = param.shape();
        if t.size() != expected {
            return Err(OptimError::ShapeMismatch {
                name: key,
                expected,
                found: t.size(),
            });
        }
        self.used.insert(name);
        let _guard = tch::no_grad_guard();
        let p = &param.tensor;
        Ok(t.f_to_device(p.device())?
            .f_to_kind(p.kind())?
            .f_detach_copy()?)
    }

    /// Fails if the state holds a tensor that was not taken.
    pub(crate) fn finish(self) -> Result<(), OptimError> {
        match self.by_name.keys().find(|n| !self.used.contains(*n)) {
            Some(n) => Err(OptimError::UnexpectedStateTensor(n.to_string())),
            None => Ok(()),
        }
    }
}

/// A deep, detached copy of a state tensor for [`OptimizerState`].
pub(crate) fn snapshot(t: &Tensor) -> Result<Tensor, OptimError> {
    let _guard = tch::no_grad_guard();
    Ok(t.f_detach_copy()?)
}

/// Zeros like `p` (same shape, kind, device), for lazily created state.
pub(crate) fn zeros_like(p: &Tensor) -> Result<Tensor, OptimError> {
    Ok(Tensor::f_zeros(p.size(), (p.kind(), p.device()))?)
}

/// An [`OptimError::Io`] for `path`.
fn io_err(path: &Path, source: std::io::Error) -> OptimError {
    OptimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hyper-parameter check shared by the optimizers' `load_state_dict`: the kind must match.
pub(crate) fn kind_mismatch(expected: OptimizerKind, found: OptimizerKind) -> OptimError {
    OptimError::KindMismatch {
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_appends_json() {
        assert_eq!(
            sidecar_path(Path::new("ck/optim.safetensors")),
            PathBuf::from("ck/optim.safetensors.json")
        );
    }
}
