//! The legacy (pre-1.6, non-zip) checkpoint format.
//!
//! Layout, all in one stream:
//!
//! 1. a pickle of the magic number `0x1950a86a20f9469cfc6c`,
//! 2. a pickle of the protocol version `1001`,
//! 3. a pickle of the `sys_info` dict (`protocol_version`, `little_endian`,
//!    `type_sizes`; informational only, `torch.load` ignores it too),
//! 4. the object pickle, whose persistent ids are
//!    `('storage', <storage class>, root_key, location, numel, view_metadata)`,
//! 5. a pickle of the list of root storage keys,
//! 6. for each key of that list, in order: the element count as an 8-byte
//!    little-endian integer, then `count * element_size` bytes of
//!    little-endian data (PyTorch converts on big-endian hosts).
//!
//! Each pickle is run by the crate's ordinary restricted [`Unpickler`], with a
//! fresh memo as `pickle.load` would; tensors are materialised only after the
//! storage section has been indexed, by the same code as for zip files.

use std::collections::HashMap;

use crate::archive::Storages;
use crate::unpickler::{Obj, TORCH_RULES, Unpickler};
use crate::{PthError, Value};

/// `0x1950a86a20f9469cfc6c` as minimal little-endian two's complement.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The only legacy protocol version PyTorch ever wrote.
const PROTOCOL_VERSION: i64 = 1001;

/// Root storages of a legacy file: byte ranges into the file buffer.
struct LegacyStorages<'a> {
    bytes: &'a [u8],
    ranges: HashMap<String, (usize, usize)>,
}

impl Storages for LegacyStorages<'_> {
    fn get(&mut self, key: &str) -> Result<&[u8], PthError> {
        let &(start, len) = self
            .ranges
            .get(key)
            .ok_or_else(|| PthError::StorageMissing(key.to_owned()))?;
        Ok(&self.bytes[start..start + len])
    }

    fn big_endian(&self) -> bool {
        false
    }

    fn loaded_bytes(&self) -> usize {
        self.ranges.values().map(|&(_, len)| len).sum()
    }
}

/// Prefixes the `what` of a truncation error with the section being read.
fn in_section(e: PthError, section: &str) -> PthError {
    match e {
        PthError::Truncated { offset, what } => PthError::Truncated {
            offset,
            what: format!("{section}: {what}"),
        },
        other => other,
    }
}

/// Runs one pickle starting at `pos`; returns the machine (for its arena) and
/// the root object.
fn run_pickle<'a>(
    bytes: &'a [u8],
    pos: usize,
    section: &str,
) -> Result<(Unpickler<'a>, usize), PthError> {
    let mut up = Unpickler::new(bytes, pos, &TORCH_RULES);
    let root = up.run().map_err(|e| in_section(e, section))?;
    Ok((up, root))
}

/// Strips redundant sign-extension bytes from a little-endian integer.
fn minimal_le(b: &[u8]) -> &[u8] {
    let mut n = b.len();
    while n > 1 && b[n - 1] == 0 && b[n - 2] & 0x80 == 0 {
        n -= 1;
    }
    &b[..n]
}

/// Loads a complete legacy checkpoint held in memory.
pub(crate) fn load_bytes(bytes: &[u8]) -> Result<Value, PthError> {
    let (up, root) = run_pickle(bytes, 0, "legacy magic number")?;
    match &up.arena[root] {
        Obj::BigInt(b) if minimal_le(b) == MAGIC => {}
        _ => {
            return Err(PthError::Legacy(
                "wrong magic number (not a PyTorch checkpoint, or corrupt)".into(),
            ));
        }
    }
    let (up, root) = run_pickle(bytes, up.pos, "legacy protocol version")?;
    match &up.arena[root] {
        Obj::Int(PROTOCOL_VERSION) => {}
        Obj::Int(v) => {
            return Err(PthError::Legacy(format!(
                "unsupported protocol version {v} (expected {PROTOCOL_VERSION})"
            )));
        }
        _ => return Err(PthError::Legacy("protocol version is not an int".into())),
    }
    let (up, root) = run_pickle(bytes, up.pos, "legacy sys_info")?;
    if !matches!(up.arena[root], Obj::Dict(_)) {
        return Err(PthError::Legacy("sys_info is not a dict".into()));
    }
    let (obj, obj_root) = run_pickle(bytes, up.pos, "legacy object pickle")?;
    let (up, root) = run_pickle(bytes, obj.pos, "legacy storage key list")?;
    let keys = match &up.arena[root] {
        Obj::List(ids) => ids
            .iter()
            .map(|&i| match &up.arena[i] {
                Obj::Str(s) => Ok(s.clone()),
                _ => Err(PthError::Legacy("storage key is not a string".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(PthError::Legacy("storage key list is not a list".into())),
    };

    let mut pos = up.pos;
    let mut ranges = HashMap::with_capacity(keys.len());
    for key in keys {
        let info = *obj.roots.get(&key).ok_or_else(|| {
            PthError::Legacy(format!(
                "storage key {key:?} is listed but no persistent id declares it"
            ))
        })?;
        if ranges.contains_key(&key) {
            return Err(PthError::Legacy(format!(
                "storage key {key:?} listed twice"
            )));
        }
        let count_bytes = bytes
            .get(pos..)
            .and_then(|rest| rest.get(..8))
            .ok_or_else(|| PthError::Truncated {
                offset: pos,
                what: format!("element count of storage `{key}`"),
            })?;
        let mut c = [0u8; 8];
        c.copy_from_slice(count_bytes);
        let count = u64::from_le_bytes(c);
        pos += 8;
        if count != info.numel {
            return Err(PthError::StorageSizeMismatch {
                key,
                expected: info.numel,
                found: count,
            });
        }
        let available = bytes.len() - pos;
        let nbytes = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(info.dtype.size()))
            .filter(|&n| n <= available)
            .ok_or_else(|| PthError::Truncated {
                offset: pos,
                what: format!(
                    "data of storage `{key}` ({count} x {}-byte elements, {available} bytes left)",
                    info.dtype.size()
                ),
            })?;
        ranges.insert(key, (pos, nbytes));
        pos += nbytes;
    }
    // Every storage the object graph references must have had its data stored.
    if let Some(key) = obj.roots.keys().find(|k| !ranges.contains_key(*k)) {
        return Err(PthError::StorageMissing(key.clone()));
    }
    let mut storages = LegacyStorages { bytes, ranges };
    obj.to_value(obj_root, 0, &mut storages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_le_strips_sign_extension_only() {
        assert_eq!(minimal_le(&[0x6c, 0x19, 0, 0]), &[0x6c, 0x19]);
        assert_eq!(minimal_le(&[0x6c, 0x80, 0]), &[0x6c, 0x80, 0]);
        assert_eq!(minimal_le(&[0]), &[0]);
    }

    #[test]
    fn header_errors_are_typed() {
        // Magic number pickled as a small int.
        let r = load_bytes(b"\x80\x02K\x01.");
        assert!(matches!(r, Err(PthError::Legacy(_))), "{r:?}");
        // Right magic, wrong protocol version.
        let mut f = b"\x80\x02\x8a\x0a".to_vec();
        f.extend(MAGIC);
        f.extend(b".\x80\x02M\xe8\x03.");
        let r = load_bytes(&f);
        assert!(
            matches!(&r, Err(PthError::Legacy(m)) if m.contains("1000")),
            "{r:?}"
        );
        // Truncated inside the protocol version pickle: section is named.
        let r = load_bytes(&f[..f.len() - 2]);
        match r {
            Err(PthError::Truncated { offset, what }) => {
                // BININT2's 2-byte argument starts right after the `M`.
                assert_eq!(offset, f.len() - 3);
                assert!(what.starts_with("legacy protocol version"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }
}
