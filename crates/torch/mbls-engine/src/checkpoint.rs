//! Checkpoints: model weights (safetensors), optimizer state and training state, written so
//! that a crash or kill never destroys the previous checkpoint; and import of PyTorch `.pth`
//! files (the reference's checkpoints, torchvision's weights) into a [`nn::VarStore`].
//!
//! # Layout of a checkpoint `TAG` in a folder
//! - `TAG.<token>.safetensors`: the model's `state_dict` (parameters and buffers, PyTorch's
//!   names and order);
//! - `TAG.<token>.optim.safetensors` and its `.json` sidecar: the optimizer's state
//!   ([`Optimizer::save`]), when one is saved;
//! - `TAG.json`: the pointer, naming the two files above and holding the [`TrainState`]
//!   (epoch, best score, scheduler and loss-schedule state, ...).
//!
//! [`CheckpointDir::save`] writes the data files first (each through a temporary file,
//! flushed and renamed), then replaces the pointer atomically, and only then deletes the files
//! of the previous save. Whenever the process dies, `TAG.json` names a complete, consistent
//! set of files: the old one or the new one.
//!
//! # Loading weights
//! [`load_tensors`] copies named tensors into a variable store and reports, by name, what was
//! loaded, missing, unexpected or of another shape ([`LoadReport`]). Names are matched after
//! removing a leading `module.` (`nn.DataParallel`), and segmentation_models_pytorch's newer
//! `decoder.aspp/conv/bn` spelling is accepted for the reference's `decoder.0/1/2`.
//! With [`LoadOptions::strict`], any difference is an error and nothing is changed.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use mbls_base::fs::write_atomic_path;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::fsutil::save_token;
use crate::optim::{OptimError, Optimizer};

/// Errors of checkpoint saving, loading and import.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read or written. (The cause is part of the message, not a
    /// `source()`, so that an error chain prints it once.)
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// A pointer file is not valid JSON of the expected shape.
    #[error("{}: not an mbls checkpoint pointer: {error}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: serde_json::Error,
    },
    /// No checkpoint of that name exists.
    #[error("{}: no such checkpoint", path.display())]
    NotFound {
        /// The pointer (or weight file) that was looked for.
        path: PathBuf,
    },
    /// A weight file could not be decoded.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A strict load found differences between the file and the model.
    #[error("{}: the weights do not match the model: {report}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs, by name.
        report: Box<LoadReport>,
    },
    /// Pretrained weights are not on this machine and could not be downloaded.
    #[error("{message}")]
    Unavailable {
        /// What was looked for, where, and how to provide it.
        message: String,
    },
    /// The optimizer state could not be saved or restored.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

fn io_err(path: &Path, error: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A tensor whose shape differs between the file and the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The model's name for it.
    pub name: String,
    /// Shape in the model.
    pub expected: Vec<i64>,
    /// Shape in the file.
    pub found: Vec<i64>,
}

/// What a load did, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model entries that received a value.
    pub loaded: Vec<String>,
    /// Model entries absent from the file (left as they were).
    pub missing: Vec<String>,
    /// `num_batches_tracked` buffers absent from the file, left as they were: files written
    /// before PyTorch 0.4.1 (torchvision's classic weights) lack them, and PyTorch itself
    /// tolerates that even in strict mode.
    pub defaulted: Vec<String>,
    /// File entries with no counterpart in the model.
    pub unexpected: Vec<String>,
    /// Entries present in both with different shapes (left as they were).
    pub mismatched: Vec<ShapeMismatch>,
    /// Entries ignored on purpose ([`LoadOptions::skip`]).
    pub skipped: Vec<String>,
}

impl LoadReport {
    /// True when every model entry was loaded (or defaulted) and every file entry used.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

fn list(f: &mut fmt::Formatter<'_>, what: &str, names: &[String]) -> fmt::Result {
    const SHOW: usize = 12;
    if names.is_empty() {
        return Ok(());
    }
    write!(f, "; {} {what}: ", names.len())?;
    let shown: Vec<&str> = names.iter().take(SHOW).map(String::as_str).collect();
    write!(f, "{}", shown.join(", "))?;
    if names.len() > SHOW {
        write!(f, ", ... ({} more)", names.len() - SHOW)?;
    }
    Ok(())
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} loaded", self.loaded.len())?;
        list(f, "missing", &self.missing)?;
        list(f, "unexpected", &self.unexpected)?;
        let shapes: Vec<String> = self
            .mismatched
            .iter()
            .map(|m| format!("{} (model {:?}, file {:?})", m.name, m.expected, m.found))
            .collect();
        list(f, "with another shape", &shapes)?;
        list(f, "skipped", &self.skipped)?;
        if !self.defaulted.is_empty() {
            write!(
                f,
                "; {} num_batches_tracked buffers absent (kept)",
                self.defaulted.len()
            )?;
        }
        Ok(())
    }
}

/// How [`load_tensors`] matches file entries to model entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Fail, changing nothing, unless the file and the model match exactly (PyTorch's
    /// `strict=True`, missing `num_batches_tracked` buffers tolerated as PyTorch does).
    pub strict: bool,
    /// Prepended to every file name before matching (`"encoder."` to load torchvision ResNet
    /// weights into DeepLabV3's encoder).
    pub add_prefix: String,
    /// Names (after prefixing) starting with one of these are ignored on both sides and listed
    /// as skipped (`"fc."` keeps a fresh classifier, as the reference does after loading
    /// ImageNet weights).
    pub skip: Vec<String>,
}

/// smp renamed the DeepLabV3 decoder's modules; the reference's checkpoints use the old names.
const ALIASES: &[(&str, &str)] = &[
    ("decoder.aspp.", "decoder.0."),
    ("decoder.conv.", "decoder.1."),
    ("decoder.bn.", "decoder.2."),
];

fn canonical_name(name: &str, opts: &LoadOptions, model: &HashMap<String, Tensor>) -> String {
    let bare = name.strip_prefix("module.").unwrap_or(name);
    let full = format!("{}{bare}", opts.add_prefix);
    if model.contains_key(&full) {
        return full;
    }
    for (new, old) in ALIASES {
        if let Some(rest) = full.strip_prefix(new) {
            let alt = format!("{old}{rest}");
            if model.contains_key(&alt) {
                return alt;
            }
        }
    }
    full
}

/// Copies `tensors` (file names) into the variables of `vs` and reports what happened (see
/// the module documentation for name matching). Values are converted to each variable's kind
/// and device. With [`LoadOptions::strict`] a mismatch is an error and nothing is copied.
/// `source` names the file in errors.
pub fn load_tensors(
    vs: &VarStore,
    tensors: Vec<(String, Tensor)>,
    opts: &LoadOptions,
    source: &Path,
) -> Result<LoadReport, CheckpointError> {
    let vars = vs.variables();
    let skipped = |n: &str| opts.skip.iter().any(|p| n.starts_with(p.as_str()));
    let mut report = LoadReport::default();
    let mut seen = BTreeSet::new();
    let mut copies = Vec::new();
    for (name, t) in tensors {
        let name = canonical_name(&name, opts, &vars);
        if skipped(&name) {
            report.skipped.push(name);
            continue;
        }
        match vars.get(&name) {
            None => report.unexpected.push(name),
            Some(v) if v.size() != t.size() => report.mismatched.push(ShapeMismatch {
                name: name.clone(),
                expected: v.size(),
                found: t.size(),
            }),
            Some(v) => {
                seen.insert(name.clone());
                copies.push((name, v.shallow_clone(), t));
            }
        }
    }
    let mut model_names: Vec<&String> = vars.keys().collect();
    model_names.sort();
    for n in model_names {
        if seen.contains(n) || report.mismatched.iter().any(|m| &m.name == n) {
            continue;
        }
        if skipped(n) {
            if !report.skipped.contains(n) {
                report.skipped.push(n.clone());
            }
        } else if n.ends_with("num_batches_tracked") {
            report.defaulted.push(n.clone());
        } else {
            report.missing.push(n.clone());
        }
    }
    if opts.strict && !report.is_complete() {
        return Err(CheckpointError::Mismatch {
            path: source.to_path_buf(),
            report: Box::new(report),
        });
    }
    let _guard = tch::no_grad_guard();
    for (name, mut var, t) in copies {
        let value = t.f_to_kind(var.kind())?.f_to_device(var.device())?;
        var.f_copy_(&value)?;
        report.loaded.push(name);
    }
    Ok(report)
}

fn kind_of(dtype: mbls_pth::DType) -> Option<Kind> {
    use mbls_pth::DType as D;
    Some(match dtype {
        D::F32 => Kind::Float,
        D::F64 => Kind::Double,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::I64 => Kind::Int64,
        D::I32 => Kind::Int,
        D::I16 => Kind::Int16,
        D::I8 => Kind::Int8,
        D::U8 => Kind::Uint8,
        D::Bool => Kind::Bool,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Reads the model state dict of a PyTorch `.pth` file (nested `"state_dict"` entries and
/// `module.` prefixes handled by `mbls-pth`) as tensors.
pub fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    if !path.exists() {
        return Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let sd = mbls_pth::load_state_dict(path).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(sd.len());
    for (name, data) in sd {
        let kind = kind_of(data.dtype).ok_or_else(|| CheckpointError::Format {
            path: path.to_path_buf(),
            message: format!("{name}: unsupported dtype {:?}", data.dtype),
        })?;
        let shape: Vec<i64> = data.shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(&data.data, &shape, kind)?;
        out.push((name, t));
    }
    Ok(out)
}

/// Reads a safetensors weight file (our format; also Hugging Face-style files).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    if !path.exists() {
        return Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
        });
    }
    Tensor::read_safetensors(path).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: format!("not a readable safetensors file: {e}"),
    })
}

/// Reads weights from a PyTorch `.pth` (zip or legacy) or a safetensors file, told apart by
/// their content.
pub fn read_weights(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let format_err = |message: String| CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    };
    // Only regular files: a device such as /dev/zero would be read without end.
    if let Ok(m) = fs::metadata(path)
        && !m.is_file()
    {
        return Err(format_err(if m.is_dir() {
            "is a folder, not a weights file".into()
        } else {
            "not a regular file (a device, pipe or socket): not read".into()
        }));
    }
    let mut head = [0u8; 8];
    let n = {
        use std::io::Read;
        let mut f = fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CheckpointError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(path, e)
            }
        })?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(|e| io_err(path, e))? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    const NOT_WEIGHTS: &str = "a PyTorch .pth (zip or legacy pickle) or a safetensors file";
    if n == 0 {
        return Err(format_err(format!(
            "empty file (0 bytes), not {NOT_WEIGHTS}"
        )));
    }
    if head.starts_with(b"\x93NUMPY") {
        return Err(format_err(format!("a NumPy .npy array, not {NOT_WEIGHTS}")));
    }
    // A zip archive (PyTorch >= 1.6) or a pickle stream (legacy torch.save) is a .pth file;
    // anything else is read as safetensors (8-byte header length, then JSON).
    if (n >= 4 && &head[..4] == b"PK\x03\x04") || head[0] == 0x80 {
        read_pth(path)
    } else if n < 8 {
        Err(format_err(format!(
            "{n} bytes: too short to be {NOT_WEIGHTS}"
        )))
    } else {
        read_safetensors(path).map_err(|e| match e {
            CheckpointError::Format { path, message } => CheckpointError::Format {
                path,
                message: format!("not {NOT_WEIGHTS} ({message})"),
            },
            other => other,
        })
    }
}

/// Loads weights from `path` (see [`read_weights`]) into `vs` (see [`load_tensors`]).
pub fn load_weights(
    vs: &VarStore,
    path: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, CheckpointError> {
    load_tensors(vs, read_weights(path)?, opts, path)
}

/// Writes the variables `names` of `vs` (a model's `state_dict` order) to a safetensors file,
/// atomically (temporary file, flush, rename).
pub fn save_weights(vs: &VarStore, names: &[String], path: &Path) -> Result<(), CheckpointError> {
    let vars = vs.variables();
    let _guard = tch::no_grad_guard();
    let mut named = Vec::with_capacity(names.len());
    for n in names {
        let t = vars.get(n).ok_or_else(|| CheckpointError::Format {
            path: path.to_path_buf(),
            message: format!("{n} is not a variable of the model"),
        })?;
        named.push((n.clone(), t.f_to_device(tch::Device::Cpu)?.f_contiguous()?));
    }
    write_atomic_path(path, io_err, |tmp| {
        Tensor::write_safetensors(&named, tmp)?;
        Ok(())
    })
}

/// Training progress stored with a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Number of completed epochs (training resumes at this epoch index).
    pub epoch: u64,
    /// Epoch index of the best validation score so far.
    pub best_epoch: Option<u64>,
    /// Best validation score so far.
    pub best_score: Option<f64>,
    /// Validation score of the last completed epoch.
    pub val_score: Option<f64>,
    /// Scheduler state (whatever the scheduler serialises).
    #[serde(default)]
    pub scheduler: serde_json::Value,
    /// Loss state (MbLS alpha schedule, ...).
    #[serde(default)]
    pub loss: serde_json::Value,
    /// Anything else the trainer needs (configuration, RNG positions, ...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

const POINTER_FORMAT: &str = "mbls-checkpoint";
const POINTER_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    format: String,
    version: u32,
    weights: String,
    optimizer: Option<String>,
    state: TrainState,
}

/// Where a save stops, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopAt {
    Never,
    BeforePointer,
}

/// A folder of named checkpoints (`last`, `best`, `epoch_3`, ...); see the module
/// documentation for the layout and the crash-safety guarantee.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    /// Opens (creating it if needed) the folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(CheckpointDir { dir })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn pointer_path(&self, tag: &str) -> PathBuf {
        self.dir.join(format!("{tag}.json"))
    }

    /// True when checkpoint `tag` exists.
    pub fn exists(&self, tag: &str) -> bool {
        self.pointer_path(tag).is_file()
    }

    /// Saves the model entries `names` of `vs`, the optimizer state (if given) and `state` as
    /// checkpoint `tag`, replacing any previous one of that name only once everything is on
    /// disk.
    pub fn save(
        &self,
        tag: &str,
        vs: &VarStore,
        names: &[String],
        optimizer: Option<&dyn Optimizer>,
        state: &TrainState,
    ) -> Result<(), CheckpointError> {
        self.save_inner(tag, vs, names, optimizer, state, StopAt::Never)
    }

    fn save_inner(
        &self,
        tag: &str,
        vs: &VarStore,
        names: &[String],
        optimizer: Option<&dyn Optimizer>,
        state: &TrainState,
        stop: StopAt,
    ) -> Result<(), CheckpointError> {
        if tag.is_empty() || tag.contains(['/', '\\']) || tag.starts_with('.') {
            return Err(CheckpointError::Format {
                path: self.dir.clone(),
                message: format!("invalid checkpoint name {tag:?}"),
            });
        }
        let token = format!("{:016x}", save_token());
        let weights = format!("{tag}.{token}.safetensors");
        save_weights(vs, names, &self.dir.join(&weights))?;
        let optim_file = match optimizer {
            Some(o) => {
                let f = format!("{tag}.{token}.optim.safetensors");
                o.save(&self.dir.join(&f))?;
                Some(f)
            }
            None => None,
        };
        if stop == StopAt::BeforePointer {
            return Ok(());
        }
        let pointer = Pointer {
            format: POINTER_FORMAT.into(),
            version: POINTER_VERSION,
            weights,
            optimizer: optim_file,
            state: state.clone(),
        };
        let path = self.pointer_path(tag);
        let json = serde_json::to_vec_pretty(&pointer).map_err(|error| CheckpointError::Json {
            path: path.clone(),
            error,
        })?;
        write_atomic_path(&path, io_err, |tmp| {
            fs::write(tmp, &json).map_err(|e| io_err(tmp, e))
        })?;
        self.remove_stale(tag, &pointer);
        Ok(())
    }

    /// Deletes data files of `tag` that `pointer` does not name (older saves, or saves that
    /// died before their pointer was written). Best effort.
    fn remove_stale(&self, tag: &str, pointer: &Pointer) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = format!("{tag}.");
        let mut keep = vec![pointer.weights.clone()];
        if let Some(o) = &pointer.optimizer {
            keep.push(o.clone());
            keep.push(format!("{o}.json"));
        }
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let data_file = name.starts_with(&prefix)
                && (name.ends_with(".safetensors") || name.ends_with(".safetensors.json"));
            if data_file && !keep.contains(&name) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    fn read_pointer(&self, tag: &str) -> Result<Pointer, CheckpointError> {
        let path = self.pointer_path(tag);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CheckpointError::NotFound { path: path.clone() }
            } else {
                io_err(&path, e)
            }
        })?;
        let p: Pointer = serde_json::from_slice(&bytes).map_err(|error| CheckpointError::Json {
            path: path.clone(),
            error,
        })?;
        if p.format != POINTER_FORMAT || p.version != POINTER_VERSION {
            return Err(CheckpointError::Format {
                path,
                message: format!(
                    "format {:?} version {} (expected {POINTER_FORMAT:?} version {POINTER_VERSION})",
                    p.format, p.version
                ),
            });
        }
        Ok(p)
    }

    /// The training state of checkpoint `tag`, without loading any tensor.
    pub fn state(&self, tag: &str) -> Result<TrainState, CheckpointError> {
        Ok(self.read_pointer(tag)?.state)
    }

    /// The weight file of checkpoint `tag`.
    pub fn weights_path(&self, tag: &str) -> Result<PathBuf, CheckpointError> {
        Ok(self.dir.join(self.read_pointer(tag)?.weights))
    }

    /// Loads checkpoint `tag`: weights into `vs` strictly (the model must match exactly),
    /// the optimizer state into `optimizer` when given (an error if the checkpoint has none),
    /// and returns the training state.
    pub fn load(
        &self,
        tag: &str,
        vs: &VarStore,
        optimizer: Option<&mut dyn Optimizer>,
    ) -> Result<TrainState, CheckpointError> {
        let p = self.read_pointer(tag)?;
        let weights = self.dir.join(&p.weights);
        let opts = LoadOptions {
            strict: true,
            ..LoadOptions::default()
        };
        load_tensors(vs, read_safetensors(&weights)?, &opts, &weights)?;
        if let Some(o) = optimizer {
            let f = p
                .optimizer
                .as_ref()
                .ok_or_else(|| CheckpointError::Format {
                    path: self.pointer_path(tag),
                    message: "this checkpoint holds no optimizer state".into(),
                })?;
            o.load(&self.dir.join(f))?;
        }
        Ok(p.state)
    }

    /// Deletes checkpoint `tag` (pointer first, then its files); no error if absent.
    pub fn remove(&self, tag: &str) -> Result<(), CheckpointError> {
        let Ok(p) = self.read_pointer(tag) else {
            return Ok(());
        };
        let path = self.pointer_path(tag);
        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        let mut files = vec![p.weights];
        if let Some(o) = p.optimizer {
            files.push(format!("{o}.json"));
            files.push(o);
        }
        for f in files {
            let _ = fs::remove_file(self.dir.join(f));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelOptions, build_model};
    use crate::optim::{Sgd, SgdConfig};
    use tch::Device;
    use tch::nn::ModuleT;

    fn model(seed: i64) -> (VarStore, crate::models::Model) {
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let m = build_model("resnet18_cifar", 10, &vs.root(), ModelOptions::default()).unwrap();
        (vs, m)
    }

    fn fingerprint(vs: &VarStore) -> f64 {
        let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.iter()
            .map(|(_, t)| t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]))
            .sum()
    }

    fn sgd(vs: &VarStore) -> Sgd {
        let params = crate::optim::trainable_variables(vs);
        Sgd::new(params, SgdConfig::default()).unwrap()
    }

    #[test]
    fn save_load_round_trip_with_optimizer_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let ck = CheckpointDir::new(dir.path().join("run")).unwrap();
        let (vs, m) = model(1);
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let mut opt = sgd(&vs);
        let loss = m.forward_t(&x, true).sum(Kind::Float);
        opt.zero_grad();
        loss.backward();
        opt.step().unwrap();
        let state = TrainState {
            epoch: 3,
            best_epoch: Some(2),
            best_score: Some(0.5),
            val_score: Some(0.25),
            scheduler: serde_json::json!({"last_epoch": 3}),
            ..TrainState::default()
        };
        ck.save("last", &vs, m.state_dict_names(), Some(&opt), &state)
            .unwrap();
        let (vs2, m2) = model(2);
        assert_ne!(fingerprint(&vs), fingerprint(&vs2));
        let mut opt2 = sgd(&vs2);
        let got = ck.load("last", &vs2, Some(&mut opt2)).unwrap();
        assert_eq!(got, state);
        assert_eq!(fingerprint(&vs), fingerprint(&vs2));
        let a = tch::no_grad(|| m.forward_t(&x, false));
        let b = tch::no_grad(|| m2.forward_t(&x, false));
        assert_eq!((a - b).abs().max().double_value(&[]), 0.0);
        // A second save replaces the files of the first.
        ck.save("last", &vs, m.state_dict_names(), Some(&opt), &state)
            .unwrap();
        let files: Vec<String> = fs::read_dir(ck.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 4, "{files:?}"); // pointer, weights, optim + sidecar
    }

    #[test]
    fn a_save_that_dies_before_its_pointer_leaves_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let ck = CheckpointDir::new(dir.path()).unwrap();
        let (vs, m) = model(1);
        let first = TrainState {
            epoch: 1,
            ..TrainState::default()
        };
        ck.save("last", &vs, m.state_dict_names(), None, &first)
            .unwrap();
        let before = fingerprint(&vs);
        // New weights, then a save that stops after its data files.
        tch::no_grad(|| {
            for (_, mut t) in vs.variables() {
                if t.kind() == Kind::Float {
                    let _ = t.fill_(0.5);
                }
            }
        });
        let second = TrainState {
            epoch: 2,
            ..TrainState::default()
        };
        ck.save_inner(
            "last",
            &vs,
            m.state_dict_names(),
            None,
            &second,
            StopAt::BeforePointer,
        )
        .unwrap();
        let (vs2, _) = model(3);
        assert_eq!(ck.load("last", &vs2, None).unwrap(), first);
        assert_eq!(fingerprint(&vs2), before);
        // The next complete save removes the orphaned files.
        ck.save("last", &vs, m.state_dict_names(), None, &second)
            .unwrap();
        let n = fs::read_dir(ck.path()).unwrap().count();
        assert_eq!(n, 2);
        assert_eq!(ck.state("last").unwrap(), second);
    }

    #[test]
    fn corrupt_or_missing_checkpoints_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ck = CheckpointDir::new(dir.path()).unwrap();
        let (vs, m) = model(1);
        assert!(matches!(
            ck.load("last", &vs, None),
            Err(CheckpointError::NotFound { .. })
        ));
        fs::write(dir.path().join("bad.json"), b"{not json").unwrap();
        assert!(matches!(
            ck.load("bad", &vs, None),
            Err(CheckpointError::Json { .. })
        ));
        ck.save(
            "last",
            &vs,
            m.state_dict_names(),
            None,
            &TrainState::default(),
        )
        .unwrap();
        let w = ck.weights_path("last").unwrap();
        let bytes = fs::read(&w).unwrap();
        fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
        let e = ck.load("last", &vs, None).unwrap_err();
        assert!(e.to_string().contains("safetensors"), "{e}");
        // Asking for optimizer state that was not saved.
        ck.save(
            "noopt",
            &vs,
            m.state_dict_names(),
            None,
            &TrainState::default(),
        )
        .unwrap();
        let mut o = sgd(&vs);
        assert!(ck.load("noopt", &vs, Some(&mut o)).is_err());
        assert!(
            ck.save(
                "../x",
                &vs,
                m.state_dict_names(),
                None,
                &TrainState::default()
            )
            .is_err()
        );
    }

    #[test]
    fn strict_loads_report_names_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (vs, m) = model(1);
        let path = dir.path().join("w.safetensors");
        save_weights(&vs, m.state_dict_names(), &path).unwrap();
        // Into a model with another class count: fc differs.
        let vs2 = VarStore::new(Device::Cpu);
        let _m2 = build_model("resnet18_cifar", 7, &vs2.root(), ModelOptions::default()).unwrap();
        let before = fingerprint(&vs2);
        let strict = LoadOptions {
            strict: true,
            ..LoadOptions::default()
        };
        let e = load_weights(&vs2, &path, &strict).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("fc.weight (model [7, 512], file [10, 512])"),
            "{msg}"
        );
        assert_eq!(fingerprint(&vs2), before);
        // Skipping fc loads the rest.
        let skip = LoadOptions {
            strict: true,
            skip: vec!["fc.".into()],
            ..LoadOptions::default()
        };
        let mut r = load_weights(&vs2, &path, &skip).unwrap();
        r.skipped.sort();
        assert_eq!(r.skipped, ["fc.bias", "fc.weight"]);
        assert!(r.is_complete());
        assert_eq!(r.loaded.len(), m.state_dict_names().len() - 2);
        // A file with extra and missing entries, and DataParallel prefixes, non-strict.
        let mut t = read_weights(&path).unwrap();
        t.retain(|(n, _)| n != "bn1.weight" && !n.ends_with("num_batches_tracked"));
        let mut t: Vec<(String, Tensor)> = t
            .into_iter()
            .map(|(n, v)| (format!("module.{n}"), v))
            .collect();
        t.push((
            "extra.weight".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        ));
        let vs3 = VarStore::new(Device::Cpu);
        let _m3 = build_model("resnet18_cifar", 10, &vs3.root(), ModelOptions::default()).unwrap();
        let r = load_tensors(&vs3, t, &LoadOptions::default(), &path).unwrap();
        assert_eq!(r.missing, ["bn1.weight"]);
        assert_eq!(r.unexpected, ["extra.weight"]);
        assert!(!r.defaulted.is_empty());
        assert!(!r.is_complete());
    }
}
