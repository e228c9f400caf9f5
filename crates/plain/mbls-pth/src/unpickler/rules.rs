//! The caller's side of the unpickler: which globals stand for which callables, how
//! Python 2 strings are read, and the entry point for plain (storage-free) pickles.

use super::Unpickler;
use crate::archive::Storages;
use crate::{DType, PthError, Value};

/// The callables the machine knows how to evaluate; a caller's [`Rules`] say which global
/// names stand for which (nothing else can be called).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Callable {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `builtins.dict`.
    Dict,
    /// `builtins.list` (also `set`, `frozenset`: a list of the items).
    List,
    /// `builtins.tuple`.
    Tuple,
    /// `copyreg._reconstructor` (object.__reduce_ex__ with protocol < 2): an opaque object.
    CopyregReconstructor,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor` (PyTorch < 0.4, legacy files).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter(_with_state)`.
    RebuildParameter,
    /// A typed storage class such as `torch.FloatStorage` (used in persistent ids).
    TorchStorage(DType),
    /// `torch.device` (becomes its string, e.g. `"cuda:0"`).
    TorchDevice,
    /// `numpy.core.multiarray._reconstruct(numpy.ndarray, ...)`, completed by BUILD.
    NumpyReconstruct,
    /// `numpy.ndarray` (the class given to `_reconstruct`).
    NumpyNdarray,
    /// `numpy.dtype(descr, ...)`, its byte order set by BUILD.
    NumpyDtype,
    /// `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)` (protocol 5).
    NumpyFromBuffer,
    /// `_codecs.encode(str, "latin1")`: bytes as Python 3 pickles them with protocol <= 2.
    CodecsEncode,
    /// `builtins.bytearray`.
    ByteArray,
}

/// What a global `module.name` is, as a caller's [`Rules`] decide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolution {
    /// One of the callables the machine evaluates.
    Known(Callable),
    /// Any object of another class: calling it yields an opaque [`Value::Object`].
    Opaque,
    /// Named, but an error if it is called or used as a storage type.
    Unusable,
    /// Refused as soon as the pickle names it.
    Refused,
}

/// How Python 2 `str` values (opcodes `U`, `T`, `S`) are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Python2Str {
    /// Decoded as UTF-8 text, as `torch.load` does by default.
    Utf8,
    /// Kept as bytes ([`Value::Bytes`]), as `pickle.load(..., encoding="bytes")` does: the
    /// raw data of NumPy arrays pickled by Python 2.
    Bytes,
}

/// A caller's allow-list: how globals resolve and how Python 2 strings are read. Whatever the
/// rules, globals that run code (`os.*`, `subprocess.*`, `builtins.eval`, ...) are refused.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Resolves `(module, name)`.
    pub globals: fn(&str, &str) -> Resolution,
    /// How Python 2 strings are read.
    pub python2_str: Python2Str,
}

/// PyTorch checkpoints' allow-list: the tensor and storage rebuilders, `torch.device`,
/// `OrderedDict` and a few builtins; other `torch.*` globals are [`Resolution::Unusable`],
/// everything else [`Resolution::Opaque`] (for example `argparse.Namespace` in `args`).
pub const TORCH_RULES: Rules = Rules {
    globals: torch_globals,
    python2_str: Python2Str::Utf8,
};

fn torch_globals(module: &str, name: &str) -> Resolution {
    use Callable::*;
    Resolution::Known(match (module, name) {
        ("collections", "OrderedDict") => OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => RebuildTensor,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            RebuildParameter
        }
        ("torch", "device") => TorchDevice,
        ("builtins" | "__builtin__", "set" | "frozenset" | "list") => List,
        ("builtins" | "__builtin__", "tuple") => Tuple,
        ("builtins" | "__builtin__", "dict") => Dict,
        ("copyreg" | "copy_reg", "_reconstructor") => CopyregReconstructor,
        ("torch" | "torch.cuda", n) if DType::from_storage_name(n).is_some() => {
            TorchStorage(DType::from_storage_name(n).unwrap_or(DType::U8))
        }
        (m, _) if m == "torch" || m.starts_with("torch.") => return Resolution::Unusable,
        _ => return Resolution::Opaque,
    })
}

/// Globals refused whatever the caller's rules: they run code or reach the system.
pub(super) fn always_refused(module: &str, name: &str) -> bool {
    matches!(
        module,
        "os" | "posix" | "nt" | "subprocess" | "sys" | "runpy" | "importlib" | "shutil" | "socket"
    ) || (matches!(module, "builtins" | "__builtin__")
        && matches!(
            name,
            "eval"
                | "exec"
                | "compile"
                | "__import__"
                | "getattr"
                | "setattr"
                | "open"
                | "globals"
                | "locals"
                | "breakpoint"
                | "input"
        ))
}

/// Unpickles a plain pickle (no tensor storages) with the caller's `rules`, within the same
/// [`crate::limits`] as checkpoints: NumPy arrays become [`Value::Tensor`]s (C order,
/// little-endian), byte strings [`Value::Bytes`].
///
/// # Errors
/// As for checkpoints: [`PthError::Truncated`], [`PthError::UnknownOpcode`],
/// [`PthError::DisallowedGlobal`], [`PthError::Malformed`], [`PthError::Amplified`].
pub fn unpickle(bytes: &[u8], rules: &Rules) -> Result<Value, PthError> {
    struct NoStorages;
    impl Storages for NoStorages {
        fn get(&mut self, key: &str) -> Result<&[u8], PthError> {
            Err(PthError::Malformed(format!(
                "a plain pickle references tensor storage `{key}`"
            )))
        }
        fn big_endian(&self) -> bool {
            false
        }
        fn loaded_bytes(&self) -> usize {
            0
        }
    }
    let mut up = Unpickler::new(bytes, 0, rules);
    let root = up.run()?;
    up.to_value(root, 0, &mut NoStorages)
}
