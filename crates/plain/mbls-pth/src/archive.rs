//! Files and archives: format detection, the zip layout, storages, and the state dict.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::unpickler::{TORCH_RULES, Unpickler};
use crate::{PthError, TensorData, Value, legacy};

/// Loads a checkpoint file (zip or legacy format, detected from its content)
/// and returns its full decoded object graph.
pub fn load(path: impl AsRef<Path>) -> Result<Value, PthError> {
    load_reader(File::open(path)?)
}

/// Like [`load`], reading the checkpoint from any seekable reader.
///
/// The format is detected from the first byte at the reader's current
/// position: `0x80` (a pickle protocol marker) selects the legacy pre-1.6
/// format, anything else is opened as a zip archive.
pub fn load_reader<R: Read + Seek>(mut reader: R) -> Result<Value, PthError> {
    let start = reader.stream_position()?;
    let mut first = [0u8; 1];
    let n = loop {
        match reader.read(&mut first) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    };
    reader.seek(SeekFrom::Start(start))?;
    if n == 1 && first[0] == 0x80 {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        return legacy::load_bytes(&bytes);
    }
    load_zip(reader)
}

/// Loads a zip-format (PyTorch ≥ 1.6) checkpoint.
fn load_zip<R: Read + Seek>(reader: R) -> Result<Value, PthError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| PthError::NotZip(e.to_string()))?;
    let pkl_name = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.matches('/').count())
        .map(str::to_owned)
        .ok_or(PthError::MissingDataPkl)?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_owned();
    let pkl = read_entry(&mut zip, &pkl_name)?.ok_or(PthError::MissingDataPkl)?;
    let big_endian = match read_entry(&mut zip, &format!("{prefix}byteorder"))? {
        Some(b) => match b.as_slice() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(PthError::Malformed(format!(
                    "unknown byteorder record {:?}",
                    String::from_utf8_lossy(other)
                )));
            }
        },
        None => false,
    };
    let mut loader = StorageLoader {
        zip: &mut zip,
        prefix,
        cache: HashMap::new(),
        big_endian,
    };
    let mut up = Unpickler::new(&pkl, 0, &TORCH_RULES);
    let root = up.run()?;
    up.to_value(root, 0, &mut loader)
}

fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<Option<Vec<u8>>, PthError> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(PthError::NotZip(e.to_string())),
    };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| PthError::NotZip(format!("reading `{name}`: {e}")))?;
    Ok(Some(buf))
}

/// Loads a checkpoint and extracts its model state dict as `(name, tensor)`
/// pairs in file order.
///
/// The state dict is located the way the reference `load_checkpoint` does:
/// the top-level dict itself if all its values are tensors, otherwise its
/// `"state_dict"` entry (unwrapped up to two levels deep), otherwise its
/// `"model"` entry. A leading `"module."` (from `nn.DataParallel`) is stripped
/// from each key. Unlike the reference, which drops the first 7 characters of
/// any key that merely *contains* `"module"`, only a true prefix is removed, so
/// e.g. `"submodule.weight"` is kept intact.
pub fn load_state_dict(path: impl AsRef<Path>) -> Result<Vec<(String, TensorData)>, PthError> {
    state_dict_from_value(load(path)?)
}

/// Extracts the state dict from an already loaded checkpoint (see [`load_state_dict`]).
pub fn state_dict_from_value(value: Value) -> Result<Vec<(String, TensorData)>, PthError> {
    let sd = find_state_dict(value, 0)?;
    Ok(sd
        .into_iter()
        .map(|(k, t)| match k.strip_prefix("module.") {
            Some(rest) => (rest.to_owned(), t),
            None => (k, t),
        })
        .collect())
}

fn as_tensor_dict(items: &[(Value, Value)]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|(k, v)| matches!(k, Value::Str(_)) && matches!(v, Value::Tensor(_)))
}

fn find_state_dict(value: Value, depth: usize) -> Result<Vec<(String, TensorData)>, PthError> {
    let Value::Dict(items) = value else {
        return Err(PthError::NoStateDict(
            "checkpoint is not a dictionary".into(),
        ));
    };
    if as_tensor_dict(&items) {
        return Ok(items
            .into_iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => Some((k, t)),
                _ => None,
            })
            .collect());
    }
    let take = |items: Vec<(Value, Value)>, key: &str| {
        items
            .into_iter()
            .find_map(|(k, v)| matches!(&k, Value::Str(s) if s == key).then_some(v))
    };
    let has = |key: &str| {
        items
            .iter()
            .any(|(k, _)| matches!(k, Value::Str(s) if s == key))
    };
    if depth < 2 && has("state_dict") {
        if let Some(inner) = take(items, "state_dict") {
            return find_state_dict(inner, depth + 1);
        }
    } else if depth < 2 && has("model") {
        if let Some(inner) = take(items, "model") {
            return find_state_dict(inner, depth + 1);
        }
    }
    Err(PthError::NoStateDict(
        "no dict of tensors at the top level or under \"state_dict\"/\"model\"".into(),
    ))
}

// ---------------------------------------------------------------------------
// Storage access
// ---------------------------------------------------------------------------

struct StorageLoader<'a, R: Read + Seek> {
    zip: &'a mut zip::ZipArchive<R>,
    prefix: String,
    cache: HashMap<String, Vec<u8>>,
    big_endian: bool,
}

pub(crate) trait Storages {
    fn get(&mut self, key: &str) -> Result<&[u8], PthError>;
    fn big_endian(&self) -> bool;
    /// Bytes of the storages read so far (the basis of the tensor allowance).
    fn loaded_bytes(&self) -> usize;
}

impl<R: Read + Seek> Storages for StorageLoader<'_, R> {
    fn get(&mut self, key: &str) -> Result<&[u8], PthError> {
        if !self.cache.contains_key(key) {
            let name = format!("{}data/{}", self.prefix, key);
            let bytes = read_entry(self.zip, &name)?.ok_or(PthError::StorageMissing(name))?;
            self.cache.insert(key.to_owned(), bytes);
        }
        Ok(self.cache.get(key).map(Vec::as_slice).unwrap_or(&[]))
    }

    fn big_endian(&self) -> bool {
        self.big_endian
    }

    fn loaded_bytes(&self) -> usize {
        self.cache.values().map(Vec::len).sum()
    }
}
