//! Native reader for PyTorch checkpoint files (`.pth` / `.pt`).
//!
//! Two on-disk formats are understood, told apart by content (not by file
//! name), so [`load`], [`load_reader`] and [`load_state_dict`] accept either:
//!
//! * **zip** (PyTorch ≥ 1.6 default, file starts with `PK\x03\x04`): an
//!   archive laid out as `<name>/data.pkl` (a pickle describing the object
//!   graph), `<name>/data/<key>` (one raw storage file per tensor storage),
//!   `<name>/version` and, in newer versions, `<name>/byteorder`.
//! * **legacy** (pre-1.6, still written by
//!   `torch.save(..., _use_new_zipfile_serialization=False)`; the format of
//!   torchvision's classic ImageNet weights; file starts with the pickle
//!   protocol byte `0x80`): a sequence of pickles — the magic number
//!   `0x1950a86a20f9469cfc6c`, the protocol version `1001`, a `sys_info`
//!   dict, the object graph, the sorted list of storage keys — followed, for
//!   each key in that list, by an 8-byte little-endian element count and the
//!   storage's raw little-endian bytes. Legacy persistent ids may carry view
//!   metadata `(view_key, offset, size)` (storage views, PyTorch < 0.4), and
//!   tensors from PyTorch < 0.4 are rebuilt with `torch._utils._rebuild_tensor`;
//!   both are supported, as are Python 2 byte strings (decoded as UTF-8, like
//!   `torch.load` does).
//!
//! Both formats are parsed directly in Rust — no Python, no libtorch — by the
//! same pickle machine and the same tensor rebuilding code.
//!
//! The pickle reader implements the opcodes of protocols 0-5 that plain data
//! needs (what `torch.save` emits, and NumPy arrays for other callers, see
//! [`pickle`]) and never executes anything: globals are resolved against an
//! allow-list given by the caller; for checkpoints
//! (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_tensor`, `torch._utils._rebuild_parameter`, the
//! typed storage classes such as `torch.FloatStorage`, `torch.device`, and a
//! few builtins). Any other
//! global outside the `torch` namespace (for example `argparse.Namespace`
//! stored in a checkpoint's `args`) becomes an opaque [`Value::Object`];
//! an unknown `torch.*` callable (sparse/quantized tensor rebuilders and the
//! like) is rejected with [`PthError::DisallowedGlobal`], because the tensor it
//! would produce cannot be decoded faithfully.
//!
//! Very old tar-based checkpoints (PyTorch 0.1) are not supported.

#![warn(missing_docs)]

mod archive;
mod legacy;
mod tensor;
mod unpickler;

pub use archive::{load, load_reader, load_state_dict, state_dict_from_value};
pub use tensor::{DType, TensorData, Value};

/// The restricted unpickler itself, for other pickled files: the caller gives its allow-list
/// ([`Rules`](pickle::Rules)); checkpoints are read with [`TORCH_RULES`](pickle::TORCH_RULES).
/// mbls-data reads CIFAR's NumPy pickles with it.
pub mod pickle {
    pub use crate::unpickler::{Callable, Python2Str, Resolution, Rules, TORCH_RULES, unpickle};
}

/// Errors produced while reading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    /// The file could not be opened or read.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file is neither a readable zip archive nor a legacy pickle stream
    /// (the name is historical: legacy checkpoints are recognised by their
    /// leading `0x80` byte and never produce this error).
    #[error(
        "not a PyTorch checkpoint (neither a zip archive nor a legacy pre-1.6 pickle stream, or the file is truncated/corrupt): {0}"
    )]
    NotZip(String),
    /// A legacy (pre-1.6) checkpoint has an invalid header or storage section
    /// (wrong magic number or protocol version, bad storage key list, ...).
    #[error("invalid legacy checkpoint: {0}")]
    Legacy(String),
    /// The zip archive does not contain a `data.pkl` record.
    #[error("zip archive has no `data.pkl` record")]
    MissingDataPkl,
    /// The data ended before it was complete.
    #[error("truncated at byte {offset} while reading {what}")]
    Truncated {
        /// Byte offset where more data was needed: in `data.pkl` for zip
        /// checkpoints, in the file itself for legacy ones.
        offset: usize,
        /// What was being read (for legacy files, prefixed by the section).
        what: String,
    },
    /// The pickle contains an opcode this reader does not implement.
    #[error("unsupported pickle opcode {name} (0x{opcode:02x}) at byte {offset}")]
    UnknownOpcode {
        /// Raw opcode byte.
        opcode: u8,
        /// Human-readable opcode name (or `"unknown"`).
        name: &'static str,
        /// Byte offset in `data.pkl`.
        offset: usize,
    },
    /// The pickle references a global that is not allowed in this position.
    #[error("disallowed pickle global `{0}`")]
    DisallowedGlobal(String),
    /// A storage referenced by the pickle is absent from the archive.
    #[error("storage file `{0}` missing from archive")]
    StorageMissing(String),
    /// A legacy storage section's element count differs from the count the
    /// pickle declared for that storage.
    #[error("storage `{key}`: pickle declares {expected} elements, file holds {found}")]
    StorageSizeMismatch {
        /// Storage key.
        key: String,
        /// Element count from the pickle's persistent id.
        expected: u64,
        /// Element count stored in front of the storage's bytes.
        found: u64,
    },
    /// A storage file is shorter than the tensors referencing it require.
    #[error("storage `{key}` too short: need {needed} bytes, file has {actual}")]
    StorageTooShort {
        /// Storage key (file name under `data/` for zip checkpoints).
        key: String,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The pickle is structurally invalid (bad stack/memo use, wrong argument types, ...).
    #[error("malformed pickle: {0}")]
    Malformed(String),
    /// [`load_state_dict`] could not locate a dictionary of tensors.
    #[error("no state dict found: {0}")]
    NoStateDict(String),
    /// Decoding would take memory out of proportion to the file: a pickle
    /// whose shared (memoised) objects expand at every use, or tensors viewing
    /// a storage with stride 0 or many times over (see [`limits`]).
    #[error("refused: {0}")]
    Amplified(String),
}

/// Bounds on the memory a checkpoint may expand to, relative to its size.
///
/// A pickle may reference one object many times (memo), and tensors may view
/// one storage many times or with stride 0 (`expand`); this reader returns a
/// tree of dense values, so such references are copied. The copies are
/// bounded: the decoded object graph and the values may each use at most
/// [`GRAPH_BASE`](limits::GRAPH_BASE) + [`GRAPH_FACTOR`](limits::GRAPH_FACTOR)
/// x the pickle's bytes, and the dense tensors at most
/// [`TENSOR_BASE`](limits::TENSOR_BASE) + [`TENSOR_FACTOR`](limits::TENSOR_FACTOR)
/// x the bytes of the storages read. Checkpoints written by `torch.save` of a
/// model or training state stay far below (their tensors own their storages).
pub mod limits {
    /// Fixed allowance for the object graph and decoded values, in bytes.
    pub const GRAPH_BASE: usize = 16 << 20;
    /// Allowance for the object graph and decoded values per pickle byte.
    pub const GRAPH_FACTOR: usize = 64;
    /// Fixed allowance for dense tensor data, in bytes.
    pub const TENSOR_BASE: usize = 64 << 20;
    /// Allowance for dense tensor data per byte of storage read.
    pub const TENSOR_FACTOR: usize = 4;
}
