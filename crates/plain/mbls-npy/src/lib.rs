//! Reading and writing NumPy `.npy` arrays and `.npz` archives.
//!
//! Supports format versions 1.0, 2.0 and 3.0, C and Fortran order (Fortran arrays are
//! returned in C order), little- and big-endian data, and the dtypes `f4 f8 i1 i2 i4 i8
//! u1 u2 u4 u8 b1`. `.npz` archives may be stored or deflate-compressed
//! (`np.savez` / `np.savez_compressed`); the CRC-32 of every member read is checked. Every
//! malformed input is a typed [`NpyError`] that names the problem; nothing here panics on
//! bad files.
//!
//! Limits: a shape has at most [`MAX_DIMS`] dimensions, and the product of its non-zero
//! dimensions is at most [`MAX_ELEMENTS`] (so that no element count, byte size or stride
//! computed from it overflows, even for an empty array such as `(0, 10^12, 10^12)`).
//!
//! ```
//! use mbls_npy::{NpyArray, NpyData};
//! let a = NpyArray::new(vec![2, 2], NpyData::F32(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
//! let mut buf = Vec::new();
//! a.write_to(&mut buf).unwrap();
//! let b = NpyArray::read_from(&mut buf.as_slice()).unwrap();
//! assert_eq!(a, b);
//! ```

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The largest number of elements a shape may span (2^40): the product of its non-zero
/// dimensions, checked by every reader and by [`NpyArray::new`].
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// The most dimensions a shape may have (NumPy's own limit, `NPY_MAXDIMS`).
pub const MAX_DIMS: usize = 64;

/// Errors while reading or writing `.npy` / `.npz` data.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// An I/O error on a stream without a path.
    #[error("i/o error: {0}")]
    Stream(std::io::Error),
    /// The data does not start with the `.npy` magic string.
    #[error("not a .npy array (bad magic bytes)")]
    BadMagic,
    /// The header is malformed.
    #[error("malformed .npy header: {0}")]
    BadHeader(String),
    /// The dtype is not one this crate reads.
    #[error("unsupported dtype '{0}' (supported: f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)")]
    UnsupportedDtype(String),
    /// The data ends before the size announced by the header.
    #[error("truncated .npy data: expected {expected} bytes of array data, found {found}")]
    Truncated {
        /// Bytes the header announces.
        expected: u64,
        /// Bytes actually present.
        found: u64,
    },
    /// A shape with more than [`MAX_DIMS`] dimensions, or whose non-zero dimensions multiply
    /// to more than [`MAX_ELEMENTS`] elements (or overflow).
    #[error("array too large: {0}")]
    TooLarge(String),
    /// The shape does not match the number of elements given.
    #[error("shape {shape:?} holds {expected} elements but {found} were given")]
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the shape holds.
        expected: usize,
        /// Elements given.
        found: usize,
    },
    /// The `.npz` archive is not a readable zip file.
    #[error("not a readable .npz (zip) archive: {0}")]
    Zip(String),
    /// An `.npz` member whose data does not match the CRC-32 the archive records for it.
    #[error("CRC mismatch in member {member} of {archive} (the archive is corrupt)")]
    CrcMismatch {
        /// The member's name in the archive (e.g. `logits.npy`).
        member: String,
        /// The archive.
        archive: String,
    },
    /// A key is missing from an `.npz` archive.
    #[error("key '{key}' not found in .npz archive (keys: {available})")]
    MissingKey {
        /// The key asked for.
        key: String,
        /// The keys present, comma-separated.
        available: String,
    },
    /// An error inside a named file or archive member.
    #[error("{context}: {error}")]
    In {
        /// Where the error happened (file path, archive member).
        context: String,
        /// The error.
        error: Box<NpyError>,
    },
}

impl From<std::io::Error> for NpyError {
    fn from(e: std::io::Error) -> Self {
        NpyError::Stream(e)
    }
}

impl NpyError {
    fn within(self, context: impl Into<String>) -> Self {
        NpyError::In {
            context: context.into(),
            error: Box::new(self),
        }
    }
}

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float (`f4`).
    F32,
    /// 64-bit float (`f8`).
    F64,
    /// Signed integers (`i1`, `i2`, `i4`, `i8`).
    I8,
    /// 16-bit signed integer.
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 8-bit unsigned integer (`u1`).
    U8,
    /// 16-bit unsigned integer.
    U16,
    /// 32-bit unsigned integer.
    U32,
    /// 64-bit unsigned integer.
    U64,
    /// Boolean (`b1`).
    Bool,
}

impl DType {
    fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }
    fn code(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I8 => "|i1",
            DType::I16 => "<i2",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
            DType::U8 => "|u1",
            DType::U16 => "<u2",
            DType::U32 => "<u4",
            DType::U64 => "<u8",
            DType::Bool => "|b1",
        }
    }
    /// Parses a NumPy dtype string such as `<f4`; returns the type and whether it is big-endian.
    fn parse(descr: &str) -> Result<(DType, bool), NpyError> {
        let bad = || NpyError::UnsupportedDtype(descr.to_string());
        let mut chars = descr.chars();
        let (order, rest) = match chars.next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (c, chars.as_str()),
            _ => ('=', descr),
        };
        let dt = match rest {
            "f4" => DType::F32,
            "f8" => DType::F64,
            "i1" => DType::I8,
            "i2" => DType::I16,
            "i4" => DType::I32,
            "i8" => DType::I64,
            "u1" => DType::U8,
            "u2" => DType::U16,
            "u4" => DType::U32,
            "u8" => DType::U64,
            "b1" => DType::Bool,
            _ => return Err(bad()),
        };
        let big = order == '>' || (order == '=' && cfg!(target_endian = "big"));
        Ok((dt, big && dt.size() > 1))
    }
    /// The NumPy name of the type, e.g. `float32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }
}

/// The elements of an array, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `float32`
    F32(Vec<f32>),
    /// `float64`
    F64(Vec<f64>),
    /// `int8`
    I8(Vec<i8>),
    /// `int16`
    I16(Vec<i16>),
    /// `int32`
    I32(Vec<i32>),
    /// `int64`
    I64(Vec<i64>),
    /// `uint8`
    U8(Vec<u8>),
    /// `uint16`
    U16(Vec<u16>),
    /// `uint32`
    U32(Vec<u32>),
    /// `uint64`
    U64(Vec<u64>),
    /// `bool`
    Bool(Vec<bool>),
}

macro_rules! each_data {
    ($d:expr, $v:ident => $body:expr) => {
        match $d {
            NpyData::F32($v) => $body,
            NpyData::F64($v) => $body,
            NpyData::I8($v) => $body,
            NpyData::I16($v) => $body,
            NpyData::I32($v) => $body,
            NpyData::I64($v) => $body,
            NpyData::U8($v) => $body,
            NpyData::U16($v) => $body,
            NpyData::U32($v) => $body,
            NpyData::U64($v) => $body,
            NpyData::Bool($v) => $body,
        }
    };
}

impl NpyData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        each_data!(self, v => v.len())
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            NpyData::F32(_) => DType::F32,
            NpyData::F64(_) => DType::F64,
            NpyData::I8(_) => DType::I8,
            NpyData::I16(_) => DType::I16,
            NpyData::I32(_) => DType::I32,
            NpyData::I64(_) => DType::I64,
            NpyData::U8(_) => DType::U8,
            NpyData::U16(_) => DType::U16,
            NpyData::U32(_) => DType::U32,
            NpyData::U64(_) => DType::U64,
            NpyData::Bool(_) => DType::Bool,
        }
    }
}

/// An n-dimensional array read from or written to `.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The elements in C order.
    pub data: NpyData,
}

/// The number of elements of `shape`, after checking it against the limits: at most
/// [`MAX_DIMS`] dimensions, and at most [`MAX_ELEMENTS`] for the product of the non-zero
/// dimensions (what strides are computed from, so that an empty array such as
/// `(0, 10^12, 10^12)` is refused too).
///
/// # Errors
/// [`NpyError::TooLarge`] past either limit.
pub fn check_shape(shape: &[usize]) -> Result<usize, NpyError> {
    if shape.len() > MAX_DIMS {
        return Err(NpyError::TooLarge(format!(
            "{} dimensions (at most {MAX_DIMS})",
            shape.len()
        )));
    }
    let mut span: u64 = 1;
    let mut empty = false;
    for &d in shape {
        if d == 0 {
            empty = true;
            continue;
        }
        span = (d as u64)
            .checked_mul(span)
            .filter(|&s| s <= MAX_ELEMENTS)
            .ok_or_else(|| {
                NpyError::TooLarge(format!(
                    "shape {shape:?} spans more than {MAX_ELEMENTS} elements (2^40, the limit; \
                     zero-sized dimensions aside)"
                ))
            })?;
    }
    Ok(if empty { 0 } else { span as usize })
}

/// Element types that can be written to `.npy`.
pub trait Element: Copy {
    /// Wraps a vector of this type.
    fn wrap(v: Vec<Self>) -> NpyData;
}
macro_rules! element {
    ($t:ty, $var:ident) => {
        impl Element for $t {
            fn wrap(v: Vec<Self>) -> NpyData {
                NpyData::$var(v)
            }
        }
    };
}
element!(f32, F32);
element!(f64, F64);
element!(i8, I8);
element!(i16, I16);
element!(i32, I32);
element!(i64, I64);
element!(u8, U8);
element!(u16, U16);
element!(u32, U32);
element!(u64, U64);
element!(bool, Bool);

impl NpyArray {
    /// Creates an array, checking that `shape` matches the number of elements.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<Self, NpyError> {
        let expected = check_shape(&shape)?;
        if expected != data.len() {
            return Err(NpyError::ShapeMismatch {
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(NpyArray { shape, data })
    }

    /// Creates an array from a slice of elements.
    pub fn from_slice<T: Element>(shape: &[usize], data: &[T]) -> Result<Self, NpyError> {
        Self::new(shape.to_vec(), T::wrap(data.to_vec()))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The elements as `f32` (float64 is rounded to nearest); `None` for non-float arrays.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            NpyData::F32(v) => Some(v.clone()),
            NpyData::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            _ => None,
        }
    }

    /// Moves the elements out as `f32` (float64 is rounded); `None` for non-float arrays.
    pub fn into_f32(self) -> Result<Vec<f32>, Self> {
        match self.data {
            NpyData::F32(v) => Ok(v),
            NpyData::F64(v) => Ok(v.into_iter().map(|x| x as f32).collect()),
            data => Err(NpyArray {
                shape: self.shape,
                data,
            }),
        }
    }

    /// The elements as `i64`; `None` for float or bool arrays or a `u64` value above `i64::MAX`.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        Some(match &self.data {
            NpyData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I16(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I64(v) => v.clone(),
            NpyData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::U16(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::U32(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x).ok())
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        })
    }

    /// Reads an array from a `.npy` file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, NpyError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| NpyError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let len = file.metadata().map(|m| m.len()).ok();
        let mut r = BufReader::with_capacity(1 << 20, file);
        read_npy(&mut r, len).map_err(|e| e.within(path.display().to_string()))
    }

    /// Reads an array from any reader positioned at the start of `.npy` data.
    pub fn read_from<R: Read>(r: &mut R) -> Result<Self, NpyError> {
        read_npy(r, None)
    }

    /// Writes the array as `.npy` (format 1.0, or 2.0 for very large headers), atomically:
    /// to a temporary file next to `path`, then renamed over it.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), NpyError> {
        mbls_base::fs::write_atomic(path.as_ref(), io_error, |w| self.write_to(w))
    }

    /// Writes the array as `.npy` to a writer.
    pub fn write_to<W: Write>(&self, w: &mut W) -> Result<(), NpyError> {
        let shape = match self.shape.len() {
            0 => "()".to_string(),
            1 => format!("({},)", self.shape[0]),
            _ => format!(
                "({})",
                self.shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let dict = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
            self.dtype().code(),
            shape
        );
        // magic(6) + version(2) + len(2 or 4) + dict + padding + '\n' multiple of 64
        let (version, len_bytes) = if dict.len() + 11 < 65535 {
            (1u8, 2)
        } else {
            (2u8, 4)
        };
        let pre = 6 + 2 + len_bytes;
        let total = (pre + dict.len() + 1).div_ceil(64) * 64;
        let hlen = total - pre;
        let mut header = Vec::with_capacity(total);
        header.extend_from_slice(MAGIC);
        header.push(version);
        header.push(0);
        if len_bytes == 2 {
            header.extend_from_slice(&(hlen as u16).to_le_bytes());
        } else {
            header.extend_from_slice(&(hlen as u32).to_le_bytes());
        }
        header.extend_from_slice(dict.as_bytes());
        header.resize(total - 1, b' ');
        header.push(b'\n');
        w.write_all(&header)?;
        write_le(&self.data, w)?;
        Ok(())
    }
}

fn write_le<W: Write>(data: &NpyData, w: &mut W) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 16;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 8);
    macro_rules! put {
        ($v:expr) => {{
            for chunk in $v.chunks(CHUNK) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf)?;
            }
        }};
    }
    match data {
        NpyData::F32(v) => put!(v),
        NpyData::F64(v) => put!(v),
        NpyData::I8(v) => put!(v),
        NpyData::I16(v) => put!(v),
        NpyData::I32(v) => put!(v),
        NpyData::I64(v) => put!(v),
        NpyData::U8(v) => w.write_all(v)?,
        NpyData::U16(v) => put!(v),
        NpyData::U32(v) => put!(v),
        NpyData::U64(v) => put!(v),
        NpyData::Bool(v) => {
            for chunk in v.chunks(CHUNK) {
                buf.clear();
                buf.extend(chunk.iter().map(|&b| b as u8));
                w.write_all(&buf)?;
            }
        }
    }
    Ok(())
}

/// The [`NpyError::Io`] of `path`.
fn io_error(path: &Path, error: std::io::Error) -> NpyError {
    NpyError::Io {
        path: path.to_path_buf(),
        error,
    }
}

struct Header {
    dtype: DType,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
}

fn parse_header(text: &str) -> Result<Header, NpyError> {
    let bad = |m: &str| NpyError::BadHeader(format!("{m} in {:?}", text.trim()));
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|t| t.trim_end().strip_suffix('}'))
        .ok_or_else(|| bad("not a dictionary"))?;
    let value_of = |key: &str| -> Option<&str> {
        let pat1 = format!("'{key}'");
        let pat2 = format!("\"{key}\"");
        let at = t
            .find(&pat1)
            .map(|i| i + pat1.len())
            .or_else(|| t.find(&pat2).map(|i| i + pat2.len()))?;
        let rest = t[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr_rest = value_of("descr").ok_or_else(|| bad("no 'descr'"))?;
    let quote = descr_rest
        .chars()
        .next()
        .ok_or_else(|| bad("empty 'descr'"))?;
    if quote != '\'' && quote != '"' {
        return Err(NpyError::UnsupportedDtype(
            descr_rest.split(',').next().unwrap_or("").to_string(),
        ));
    }
    let descr_end = descr_rest[1..]
        .find(quote)
        .ok_or_else(|| bad("unterminated 'descr'"))?;
    let descr = &descr_rest[1..1 + descr_end];
    let (dtype, big_endian) = DType::parse(descr)?;
    let fo = value_of("fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?;
    let fortran = if fo.starts_with("True") {
        true
    } else if fo.starts_with("False") {
        false
    } else {
        return Err(bad("bad 'fortran_order'"));
    };
    let sh = value_of("shape").ok_or_else(|| bad("no 'shape'"))?;
    let sh = sh.strip_prefix('(').ok_or_else(|| bad("bad 'shape'"))?;
    let close = sh.find(')').ok_or_else(|| bad("bad 'shape'"))?;
    let mut shape = Vec::new();
    for part in sh[..close].split(',') {
        let p = part.trim().trim_end_matches('L');
        if p.is_empty() {
            continue;
        }
        if shape.len() == MAX_DIMS {
            return Err(NpyError::TooLarge(format!(
                "more than {MAX_DIMS} dimensions in 'shape'"
            )));
        }
        shape.push(
            p.parse::<usize>()
                .map_err(|_| bad("bad dimension in 'shape'"))?,
        );
    }
    Ok(Header {
        dtype,
        big_endian,
        fortran,
        shape,
    })
}

fn read_exact_or_truncated<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    expected: u64,
) -> Result<(), NpyError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(NpyError::Truncated {
                    expected,
                    found: filled as u64,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Element types whose every bit pattern is a valid value and which have no padding, so
/// that file bytes can be read straight into them.
///
/// # Safety
/// Implement only for such types.
unsafe trait PlainBits: Copy {}
// SAFETY: primitive numbers: no padding, every bit pattern valid.
unsafe impl PlainBits for f32 {}
// SAFETY: as above.
unsafe impl PlainBits for f64 {}
// SAFETY: as above.
unsafe impl PlainBits for i32 {}
// SAFETY: as above.
unsafe impl PlainBits for i64 {}

/// The bytes of `v`, to read into.
fn bytes_of_mut<T: PlainBits>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: `T: PlainBits` has no padding and takes any bytes; the length is v's size.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

/// Fills `buf` from `r`, the part of an array of `nbytes` bytes after the `done` read
/// before it (counted in a truncation error).
fn read_part<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    nbytes: usize,
    done: usize,
) -> Result<(), NpyError> {
    read_exact_or_truncated(r, buf, nbytes as u64).map_err(|e| match e {
        NpyError::Truncated { expected, found } => NpyError::Truncated {
            expected,
            found: done as u64 + found,
        },
        e => e,
    })
}

/// Reads and checks the header; returns it with the element count and data size in bytes.
fn read_header<R: Read>(
    r: &mut R,
    file_len: Option<u64>,
) -> Result<(Header, usize, u64), NpyError> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => NpyError::BadMagic,
        _ => NpyError::Stream(e),
    })?;
    if &pre[..6] != MAGIC {
        return Err(NpyError::BadMagic);
    }
    let major = pre[6];
    let hlen = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|_| NpyError::BadHeader("truncated header".into()))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| NpyError::BadHeader("truncated header".into()))?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(NpyError::BadHeader(format!("unknown format version {v}"))),
    };
    if hlen > 1 << 24 {
        return Err(NpyError::BadHeader(format!(
            "header length {hlen} is implausible"
        )));
    }
    let mut hbuf = vec![0u8; hlen];
    r.read_exact(&mut hbuf)
        .map_err(|_| NpyError::BadHeader("truncated header".into()))?;
    let text = if major == 3 {
        String::from_utf8(hbuf).map_err(|_| NpyError::BadHeader("header is not UTF-8".into()))?
    } else {
        hbuf.iter().map(|&b| b as char).collect()
    };
    let h = parse_header(&text)?;
    let n = check_shape(&h.shape)?;
    // at most 2^40 elements (`check_shape`) of at most 8 bytes: no overflow
    let nbytes = n as u64 * h.dtype.size() as u64;
    let header_total = (if major == 1 { 10 } else { 12 }) + hlen as u64;
    if let Some(len) = file_len {
        let avail = len.saturating_sub(header_total);
        if avail < nbytes {
            return Err(NpyError::Truncated {
                expected: nbytes,
                found: avail,
            });
        }
    }
    Ok((h, n, nbytes))
}

fn read_npy<R: Read>(r: &mut R, file_len: Option<u64>) -> Result<NpyArray, NpyError> {
    let (h, n, nbytes) = read_header(r, file_len)?;
    let data = read_data(r, h.dtype, h.big_endian, n, nbytes)?;
    let mut arr = NpyArray {
        shape: h.shape,
        data,
    };
    if h.fortran && arr.shape.len() > 1 {
        arr = fortran_to_c(arr);
    }
    Ok(arr)
}

fn read_data<R: Read>(
    r: &mut R,
    dtype: DType,
    big: bool,
    n: usize,
    nbytes: u64,
) -> Result<NpyData, NpyError> {
    // Read in chunks (converted as they arrive unless in native byte order): memory stays at
    // the output plus one chunk, and a header that lies about the size fails on a short
    // stream before a huge allocation.
    const CHUNK: usize = 1 << 20;
    let size = dtype.size();
    let nbytes = nbytes as usize;
    let cap = n.min(64 * CHUNK);
    let mut done = 0usize;
    let mut next = |r: &mut R, chunk: &mut Vec<u8>| -> Result<Option<usize>, NpyError> {
        if done >= nbytes {
            return Ok(None);
        }
        let k = (nbytes - done).min(CHUNK);
        read_part(r, &mut chunk[..k], nbytes, done)?;
        done += k;
        Ok(Some(k))
    };
    // Native byte order: read straight into the output, a chunk at a time (no conversion).
    macro_rules! native {
        ($t:ty, $var:ident) => {{
            let mut out: Vec<$t> = Vec::with_capacity(cap);
            let mut done = 0usize;
            while done < nbytes {
                let k = (nbytes - done).min(CHUNK);
                let len = out.len();
                out.resize(len + k / size, <$t>::default());
                read_part(r, bytes_of_mut(&mut out[len..]), nbytes, done)?;
                done += k;
            }
            NpyData::$var(out)
        }};
    }
    macro_rules! conv {
        ($t:ty, $var:ident, $f:expr) => {{
            let mut out: Vec<$t> = Vec::with_capacity(cap);
            let mut chunk = vec![0u8; CHUNK.min(nbytes.max(1))];
            while let Some(k) = next(r, &mut chunk)? {
                out.extend(chunk[..k].chunks_exact(size).map($f));
            }
            NpyData::$var(out)
        }};
        ($t:ty, $var:ident) => {
            conv!($t, $var, |c: &[u8]| {
                let arr: [u8; std::mem::size_of::<$t>()] = c.try_into().expect("chunk size");
                if big {
                    <$t>::from_be_bytes(arr)
                } else {
                    <$t>::from_le_bytes(arr)
                }
            })
        };
    }
    let native = big == cfg!(target_endian = "big");
    Ok(match dtype {
        DType::F32 if native => native!(f32, F32),
        DType::F64 if native => native!(f64, F64),
        DType::I32 if native => native!(i32, I32),
        DType::I64 if native => native!(i64, I64),
        DType::F32 => conv!(f32, F32),
        DType::F64 => conv!(f64, F64),
        DType::I8 => conv!(i8, I8, |c: &[u8]| c[0] as i8),
        DType::I16 => conv!(i16, I16),
        DType::I32 => conv!(i32, I32),
        DType::I64 => conv!(i64, I64),
        DType::U8 => conv!(u8, U8, |c: &[u8]| c[0]),
        DType::U16 => conv!(u16, U16),
        DType::U32 => conv!(u32, U32),
        DType::U64 => conv!(u64, U64),
        DType::Bool => conv!(bool, Bool, |c: &[u8]| c[0] != 0),
    })
}

/// The elements of a Fortran-order (column-major) array of `shape`, in C order. Memory is
/// the output only (source offsets are updated as the C index advances).
fn fortran_to_c_vec<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    let nd = shape.len();
    // Fortran strides (in elements) of each dimension; at most the element count, which
    // `check_shape` bounds.
    let mut fstride = vec![1usize; nd];
    for d in 1..nd {
        fstride[d] = fstride[d - 1] * shape[d - 1];
    }
    let mut out = Vec::with_capacity(v.len());
    let mut idx = vec![0usize; nd];
    let mut src = 0usize;
    for _ in 0..v.len() {
        out.push(v[src]);
        for d in (0..nd).rev() {
            idx[d] += 1;
            src += fstride[d];
            if idx[d] < shape[d] {
                break;
            }
            // idx[d] == shape[d]: its share of `src` is shape[d] * fstride[d]
            src -= fstride[d] * shape[d];
            idx[d] = 0;
        }
    }
    out
}

/// Reorders a Fortran-order array (data in column-major order) to C order.
fn fortran_to_c(arr: NpyArray) -> NpyArray {
    let shape = arr.shape;
    macro_rules! to_c {
        ($v:expr, $var:ident) => {
            NpyData::$var(fortran_to_c_vec(&$v, &shape))
        };
    }
    let data = match arr.data {
        NpyData::F32(v) => to_c!(v, F32),
        NpyData::F64(v) => to_c!(v, F64),
        NpyData::I8(v) => to_c!(v, I8),
        NpyData::I16(v) => to_c!(v, I16),
        NpyData::I32(v) => to_c!(v, I32),
        NpyData::I64(v) => to_c!(v, I64),
        NpyData::U8(v) => to_c!(v, U8),
        NpyData::U16(v) => to_c!(v, U16),
        NpyData::U32(v) => to_c!(v, U32),
        NpyData::U64(v) => to_c!(v, U64),
        NpyData::Bool(v) => to_c!(v, Bool),
    };
    NpyArray { shape, data }
}

/// Elements `start..end` of `data`, copied.
fn slice_data(data: &NpyData, start: usize, end: usize) -> NpyData {
    macro_rules! part {
        ($v:expr, $var:ident) => {
            NpyData::$var($v[start..end].to_vec())
        };
    }
    match data {
        NpyData::F32(v) => part!(v, F32),
        NpyData::F64(v) => part!(v, F64),
        NpyData::I8(v) => part!(v, I8),
        NpyData::I16(v) => part!(v, I16),
        NpyData::I32(v) => part!(v, I32),
        NpyData::I64(v) => part!(v, I64),
        NpyData::U8(v) => part!(v, U8),
        NpyData::U16(v) => part!(v, U16),
        NpyData::U32(v) => part!(v, U32),
        NpyData::U64(v) => part!(v, U64),
        NpyData::Bool(v) => part!(v, Bool),
    }
}

/// A `.npy` file read in chunks, so that arrays larger than memory can be processed
/// batch by batch. Chunks are always in C order: a C-order file is read chunk by chunk; a
/// Fortran-order file (more than one dimension) cannot be, so it is read whole on the first
/// [`NpyStream::read_chunk`] and reordered, memory then being about twice the array's size.
pub struct NpyStream<R: Read> {
    r: R,
    dtype: DType,
    big_endian: bool,
    /// Fortran order with more than one dimension: read whole, then served from `whole`.
    fortran: bool,
    /// The whole array in C order (Fortran-order files, once the first chunk is asked for).
    whole: Option<NpyData>,
    /// Elements already returned from `whole`.
    offset: usize,
    shape: Vec<usize>,
    remaining: usize,
    context: String,
    /// `(member, archive)` when reading an `.npz` member, to report a CRC-32 mismatch.
    member: Option<(String, String)>,
}

impl NpyStream<BufReader<File>> {
    /// Opens a `.npy` file and reads its header; the file size is checked against it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NpyError> {
        let path = path.as_ref();
        let ctx = path.display().to_string();
        let file = File::open(path).map_err(|e| NpyError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let len = file.metadata().map(|m| m.len()).ok();
        // a small buffer: the header is read through it, and chunk reads larger than it go
        // straight into the caller's memory (BufReader bypasses its buffer when empty)
        NpyStream::new(BufReader::with_capacity(64 << 10, file), len, ctx)
    }
}

impl<R: Read> NpyStream<R> {
    /// Reads the header from `r`; `file_len`, when known, is checked against it; `context`
    /// names the source in errors.
    pub fn new(mut r: R, file_len: Option<u64>, context: String) -> Result<Self, NpyError> {
        let (h, n, _) = read_header(&mut r, file_len).map_err(|e| e.within(context.clone()))?;
        Ok(Self::after_header(r, h, n, context, None))
    }

    /// The stream positioned after header `h` of `n` elements.
    fn after_header(
        r: R,
        h: Header,
        n: usize,
        context: String,
        member: Option<(String, String)>,
    ) -> Self {
        NpyStream {
            r,
            dtype: h.dtype,
            big_endian: h.big_endian,
            fortran: h.fortran && h.shape.len() > 1,
            whole: None,
            offset: 0,
            shape: h.shape,
            remaining: n,
            context,
            member,
        }
    }

    /// The error to return for `e`: a CRC-32 mismatch of the member being read when the zip
    /// reader reported one, else `e` within this stream's context.
    fn fail(&self, e: NpyError) -> NpyError {
        let crc = matches!(&e, NpyError::Stream(io) if is_crc_error(io));
        match (&self.member, crc) {
            (Some((member, archive)), true) => NpyError::CrcMismatch {
                member: member.clone(),
                archive: archive.clone(),
            },
            _ => e.within(self.context.clone()),
        }
    }

    /// Reads what follows the array to the end of the input (bytes after the array are
    /// ignored, as NumPy does): for an `.npz` member this is where the zip reader checks the
    /// member's CRC-32, so call it after the last chunk to know the data was intact.
    pub fn finish(mut self) -> Result<(), NpyError> {
        match std::io::copy(&mut self.r, &mut std::io::sink()) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(NpyError::Stream(e))),
        }
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Elements not read yet.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next `n` elements (fewer at the end) into `out`, reusing its allocation, when the
    /// array is float32 in the machine's byte order and C order: the bytes go straight into
    /// `out` (resized to the count read). Returns `false`, having read nothing, for any other
    /// array (use [`NpyStream::read_chunk`] then).
    pub fn read_f32_into(&mut self, n: usize, out: &mut Vec<f32>) -> Result<bool, NpyError> {
        let native = self.big_endian == cfg!(target_endian = "big");
        if self.dtype != DType::F32 || !native || self.fortran {
            return Ok(false);
        }
        let n = n.min(self.remaining);
        out.resize(n, 0.0); // a no-op for a buffer of the same size read before
        read_exact_or_truncated(&mut self.r, bytes_of_mut(out), (n * 4) as u64)
            .map_err(|e| self.fail(e))?;
        self.remaining -= n;
        Ok(true)
    }

    /// The next `n` elements (fewer at the end), in C order.
    pub fn read_chunk(&mut self, n: usize) -> Result<NpyData, NpyError> {
        let n = n.min(self.remaining);
        if self.fortran && n > 0 {
            let whole = match self.whole.take() {
                Some(w) => w,
                None => {
                    // nothing was returned yet: `remaining` is the whole array
                    let total = self.remaining;
                    let nbytes = (total * self.dtype.size()) as u64;
                    let data = read_data(&mut self.r, self.dtype, self.big_endian, total, nbytes)
                        .map_err(|e| self.fail(e))?;
                    let arr = NpyArray {
                        shape: self.shape.clone(),
                        data,
                    };
                    fortran_to_c(arr).data
                }
            };
            let out = slice_data(&whole, self.offset, self.offset + n);
            self.offset += n;
            self.remaining -= n;
            if self.remaining > 0 {
                self.whole = Some(whole);
            }
            return Ok(out);
        }
        let nbytes = (n * self.dtype.size()) as u64;
        let data = read_data(&mut self.r, self.dtype, self.big_endian, n, nbytes)
            .map_err(|e| self.fail(e))?;
        self.remaining -= n;
        Ok(data)
    }
}

/// How far past a failed read of an `.npz` member the rest is read to check its CRC-32.
const CRC_LOOKAHEAD: u64 = 64 << 20;

/// Whether `e` is the zip reader's report of a CRC-32 mismatch at a member's end.
fn is_crc_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidData && e.to_string().contains("checksum")
}

/// Reads every array of an `.npz` archive, keyed by name (without the `.npy` suffix).
pub fn read_npz(path: impl AsRef<Path>) -> Result<BTreeMap<String, NpyArray>, NpyError> {
    let path = path.as_ref();
    let mut npz = Npz::open(path)?;
    let mut out = BTreeMap::new();
    for key in npz.keys() {
        let a = npz.get(&key)?;
        out.insert(key, a);
    }
    Ok(out)
}

/// A member of an `.npz` archive being read (decompressed on the fly when deflated).
pub struct ZipMember<'a>(Box<dyn Read + 'a>);

impl Read for ZipMember<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// An open `.npz` archive, to read members by name.
pub struct Npz<R: Read + Seek> {
    zip: zip::ZipArchive<R>,
    context: String,
}

impl Npz<BufReader<File>> {
    /// Opens an `.npz` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NpyError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| NpyError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        Npz::new(BufReader::new(file), path.display().to_string())
    }
}

impl<R: Read + Seek> Npz<R> {
    /// Wraps a reader holding a zip archive; `context` names it in errors.
    pub fn new(r: R, context: String) -> Result<Self, NpyError> {
        let zip = zip::ZipArchive::new(r)
            .map_err(|e| NpyError::Zip(e.to_string()).within(context.clone()))?;
        Ok(Npz { zip, context })
    }

    /// Names of the arrays in the archive, in archive order.
    pub fn keys(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect()
    }

    /// Whether the archive holds an array named `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.keys().iter().any(|k| k == key)
    }

    /// The member holding the array `key` (`key.npy`, or `key` itself).
    fn member(&self, key: &str) -> Result<String, NpyError> {
        if self.zip.index_for_name(&format!("{key}.npy")).is_some() {
            Ok(format!("{key}.npy"))
        } else if self.zip.index_for_name(key).is_some() {
            Ok(key.to_string())
        } else {
            Err(NpyError::MissingKey {
                key: key.to_string(),
                available: self.keys().join(", "),
            }
            .within(self.context.clone()))
        }
    }

    /// Opens the array named `key` to be read in chunks, stored and deflated members alike,
    /// without holding it whole in memory. After the last chunk, [`NpyStream::finish`]
    /// checks the member's CRC-32.
    pub fn stream(&mut self, key: &str) -> Result<NpyStream<BufReader<ZipMember<'_>>>, NpyError> {
        let name = self.member(key)?;
        let ctx = format!("{}[{}]", self.context, key);
        let archive = self.context.clone();
        let f = self
            .zip
            .by_name(&name)
            .map_err(|e| NpyError::Zip(e.to_string()).within(ctx.clone()))?;
        let size = f.size();
        let mut r = BufReader::with_capacity(1 << 20, ZipMember(Box::new(f)));
        match read_header(&mut r, Some(size)) {
            Ok((h, n, _)) => Ok(NpyStream::after_header(r, h, n, ctx, Some((name, archive)))),
            Err(e) => {
                // a corrupt member is reported as such, not by its symptom (as `get` does)
                let tail = std::io::copy(&mut (&mut r).take(CRC_LOOKAHEAD), &mut std::io::sink());
                let crc = matches!(&e, NpyError::Stream(io) if is_crc_error(io))
                    || matches!(&tail, Err(io) if is_crc_error(io));
                if crc {
                    Err(NpyError::CrcMismatch {
                        member: name,
                        archive,
                    })
                } else {
                    Err(e.within(ctx))
                }
            }
        }
    }

    /// Reads the array named `key`.
    pub fn get(&mut self, key: &str) -> Result<NpyArray, NpyError> {
        let name = self.member(key)?;
        let ctx = format!("{}[{}]", self.context, key);
        let archive = self.context.clone();
        let mut f = self
            .zip
            .by_name(&name)
            .map_err(|e| NpyError::Zip(e.to_string()).within(ctx.clone()))?;
        let size = f.size();
        let mut r = BufReader::with_capacity(1 << 20, &mut f);
        let result = read_npy(&mut r, Some(size));
        // The zip reader checks the member's CRC-32 when it reaches the member's end, so read
        // on to it (bytes after the array are ignored, as NumPy does). After an error, look a
        // bounded way further: a corrupt member is reported as such, not by its symptom.
        let limit = if result.is_ok() {
            u64::MAX
        } else {
            CRC_LOOKAHEAD
        };
        let mut rest = (&mut r).take(limit);
        let tail = std::io::copy(&mut rest, &mut std::io::sink());
        let crc_failed = matches!(&result, Err(NpyError::Stream(e)) if is_crc_error(e))
            || matches!(&tail, Err(e) if is_crc_error(e));
        if crc_failed {
            return Err(NpyError::CrcMismatch {
                member: name,
                archive,
            });
        }
        let arr = result.map_err(|e| e.within(ctx.clone()))?;
        tail.map_err(|e| NpyError::Stream(e).within(ctx))?;
        Ok(arr)
    }
}

/// Writes arrays into an `.npz` archive (stored, uncompressed, as `np.savez` does), atomically.
pub fn write_npz(path: impl AsRef<Path>, arrays: &[(&str, &NpyArray)]) -> Result<(), NpyError> {
    mbls_base::fs::write_atomic(path.as_ref(), io_error, |w| {
        let mut z = zip::ZipWriter::new(w);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, arr) in arrays {
            z.start_file(format!("{name}.npy"), opts)
                .map_err(|e| NpyError::Zip(e.to_string()))?;
            arr.write_to(&mut z)?;
        }
        z.finish().map_err(|e| NpyError::Zip(e.to_string()))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(a: &NpyArray) -> NpyArray {
        let mut buf = Vec::new();
        a.write_to(&mut buf).unwrap();
        NpyArray::read_from(&mut buf.as_slice()).unwrap()
    }

    #[test]
    fn roundtrip_all_dtypes() {
        let cases = vec![
            NpyArray::from_slice(&[2, 3], &[1.5f32, -2.0, 3.0, 4.0, 5.0, f32::MAX]).unwrap(),
            NpyArray::from_slice(&[3], &[1.5f64, -2.0, 1e300]).unwrap(),
            NpyArray::from_slice(&[2], &[-1i64, i64::MAX]).unwrap(),
            NpyArray::from_slice(&[2], &[-1i32, 7]).unwrap(),
            NpyArray::from_slice(&[1, 2, 2], &[0u8, 255, 3, 4]).unwrap(),
            NpyArray::from_slice(&[2], &[true, false]).unwrap(),
            NpyArray::from_slice::<f32>(&[], &[2.0]).unwrap(),
            NpyArray::from_slice::<f32>(&[0, 5], &[]).unwrap(),
        ];
        for a in &cases {
            assert_eq!(&roundtrip(a), a);
        }
    }

    #[test]
    fn header_is_aligned_to_64() {
        let a = NpyArray::from_slice(&[3], &[1i64, 2, 3]).unwrap();
        let mut buf = Vec::new();
        a.write_to(&mut buf).unwrap();
        assert_eq!((buf.len() - 24) % 64, 0);
        assert_eq!(buf[buf.len() - 25], b'\n');
    }

    fn raw(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn fortran_order_and_big_endian() {
        // Fortran 2x3: memory order is column-major
        let vals: Vec<u8> = [1f32, 4., 2., 5., 3., 6.]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b = raw(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n",
            &vals,
        );
        let a = NpyArray::read_from(&mut b.as_slice()).unwrap();
        assert_eq!(a.data, NpyData::F32(vec![1., 2., 3., 4., 5., 6.]));
        let vals: Vec<u8> = [1i32, -2].iter().flat_map(|x| x.to_be_bytes()).collect();
        let b = raw(
            "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n",
            &vals,
        );
        let a = NpyArray::read_from(&mut b.as_slice()).unwrap();
        assert_eq!(a.to_i64().unwrap(), vec![1, -2]);
    }

    #[test]
    fn errors_are_typed() {
        let b = b"not numpy at all".to_vec();
        assert!(matches!(
            NpyArray::read_from(&mut b.as_slice()),
            Err(NpyError::BadMagic)
        ));
        let b = raw(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n",
            &[0; 16],
        );
        assert!(matches!(
            NpyArray::read_from(&mut b.as_slice()),
            Err(NpyError::UnsupportedDtype(_))
        ));
        let b = raw(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n",
            &[0; 10],
        );
        match NpyArray::read_from(&mut b.as_slice()) {
            Err(NpyError::Truncated {
                expected: 16,
                found: 10,
            }) => {}
            other => panic!("{other:?}"),
        }
        let b = raw(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }\n",
            &[],
        );
        assert!(matches!(
            NpyArray::read_from(&mut b.as_slice()),
            Err(NpyError::BadHeader(_))
        ));
        let b = raw(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 4],
        );
        assert!(matches!(
            NpyArray::read_from(&mut b.as_slice()),
            Err(NpyError::UnsupportedDtype(_))
        ));
    }

    #[test]
    fn shapes_past_the_limits_are_refused() {
        let t = 1_000_000_000_000u64;
        let b = raw(
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5, {t}, {t}), }}\n"),
            &[],
        );
        match NpyArray::read_from(&mut b.as_slice()) {
            Err(NpyError::TooLarge(m)) => assert!(m.contains("2^40"), "{m}"),
            other => panic!("{other:?}"),
        }
        let b = raw(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (18446744073709551615, 2), }\n",
            &[],
        );
        assert!(matches!(
            NpyArray::read_from(&mut b.as_slice()),
            Err(NpyError::TooLarge(_))
        ));
        let dims = ["1"; MAX_DIMS + 1].join(", ");
        let b = raw(
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}\n"),
            &[0; 4],
        );
        assert!(matches!(
            NpyArray::read_from(&mut b.as_slice()),
            Err(NpyError::TooLarge(_))
        ));
        // the limits themselves are accepted
        assert_eq!(check_shape(&[0, 1 << 20, 1 << 20]).unwrap(), 0);
        assert_eq!(check_shape(&[1 << 20, 1 << 20]).unwrap(), 1 << 40);
        assert_eq!(check_shape(&[1; MAX_DIMS]).unwrap(), 1);
        assert!(check_shape(&[0, 1 << 20, (1 << 20) + 1]).is_err());
        assert!(NpyArray::from_slice::<f32>(&[0, 1 << 30, 1 << 30], &[]).is_err());
    }

    #[test]
    fn fortran_order_streams_in_c_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npy");
        // 2 x 3 x 2 in Fortran order: element (i, j, k) is stored at i + 2j + 6k
        let c: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut fortran = [0f32; 12];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..2 {
                    fortran[i + 2 * j + 6 * k] = c[i * 6 + j * 2 + k];
                }
            }
        }
        let bytes: Vec<u8> = fortran.iter().flat_map(|x| x.to_le_bytes()).collect();
        let file = raw(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 2), }\n",
            &bytes,
        );
        std::fs::write(&p, &file).unwrap();
        assert_eq!(NpyArray::read(&p).unwrap().data, NpyData::F32(c.clone()));
        let mut st = NpyStream::open(&p).unwrap();
        assert_eq!(st.shape(), &[2, 3, 2]);
        assert_eq!(st.read_chunk(5).unwrap(), NpyData::F32(c[..5].to_vec()));
        assert_eq!(st.remaining(), 7);
        assert_eq!(st.read_chunk(100).unwrap(), NpyData::F32(c[5..].to_vec()));
        assert_eq!(st.remaining(), 0);
        assert_eq!(st.read_chunk(3).unwrap(), NpyData::F32(Vec::new()));
        // a truncated Fortran file fails at open, as a C-order one does
        let file = raw(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 2), }\n",
            &bytes[..40],
        );
        std::fs::write(&p, &file).unwrap();
        let err = NpyStream::open(&p).err().unwrap().to_string();
        assert!(err.contains("truncated") && err.contains("f.npy"), "{err}");
    }

    #[test]
    fn npz_member_crc_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("c.npz");
        let a = NpyArray::from_slice(&[2, 2], &[1f32, 2., 3., 4.]).unwrap();
        let l = NpyArray::from_slice(&[2], &[0i64, 1]).unwrap();
        write_npz(&z, &[("logits", &a), ("labels", &l)]).unwrap();
        let good = std::fs::read(&z).unwrap();
        assert_eq!(Npz::open(&z).unwrap().get("logits").unwrap(), a);
        let magic = good.windows(6).position(|w| w == MAGIC).unwrap();
        let data = magic + good[magic..].iter().position(|&b| b == b'\n').unwrap() + 1;
        // one flipped bit in the array data, then one in the header text
        for at in [data + 1, magic + 12] {
            let mut bytes = good.clone();
            bytes[at] ^= 1;
            std::fs::write(&z, &bytes).unwrap();
            let mut npz = Npz::open(&z).unwrap();
            let err = npz.get("logits").unwrap_err();
            assert!(matches!(err, NpyError::CrcMismatch { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("CRC mismatch in member logits.npy of") && msg.contains("c.npz"),
                "{msg}"
            );
            // the other member is intact
            assert_eq!(npz.get("labels").unwrap(), l);
            assert!(read_npz(&z).is_err());
        }
    }

    #[test]
    fn npz_members_stream_in_chunks_stored_and_deflated() {
        let dir = tempfile::tempdir().unwrap();
        let v: Vec<f32> = (0..3000).map(|i| (i as f32).sin()).collect();
        let a = NpyArray::from_slice(&[1000, 3], &v).unwrap();
        let l = NpyArray::from_slice(&[1000], &vec![1i64; 1000]).unwrap();
        let stored = dir.path().join("s.npz");
        write_npz(&stored, &[("logits", &a), ("labels", &l)]).unwrap();
        // a deflated archive, as np.savez_compressed writes it
        let deflated = dir.path().join("d.npz");
        {
            let mut zw = zip::ZipWriter::new(File::create(&deflated).unwrap());
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            for (name, arr) in [("logits.npy", &a), ("labels.npy", &l)] {
                zw.start_file(name, opts).unwrap();
                arr.write_to(&mut zw).unwrap();
            }
            zw.finish().unwrap();
        }
        for z in [&stored, &deflated] {
            let mut npz = Npz::open(z).unwrap();
            let mut st = npz.stream("logits").unwrap();
            assert_eq!(st.shape(), &[1000, 3]);
            assert_eq!(st.read_chunk(700).unwrap(), NpyData::F32(v[..700].to_vec()));
            assert_eq!(
                st.read_chunk(5000).unwrap(),
                NpyData::F32(v[700..].to_vec())
            );
            st.finish().unwrap();
            assert_eq!(npz.get("labels").unwrap(), l);
            let err = npz.stream("probs").err().unwrap().to_string();
            assert!(err.contains("'probs' not found"), "{err}");
        }
        // a flipped bit in the data: the stream reads it, then finish reports the CRC
        let good = std::fs::read(&stored).unwrap();
        let magic = good.windows(6).position(|w| w == MAGIC).unwrap();
        let data = magic + good[magic..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let mut bytes = good.clone();
        bytes[data + 100] ^= 1;
        std::fs::write(&stored, &bytes).unwrap();
        let mut npz = Npz::open(&stored).unwrap();
        let mut st = npz.stream("logits").unwrap();
        st.read_chunk(3000).unwrap();
        let err = st.finish().unwrap_err();
        assert!(matches!(err, NpyError::CrcMismatch { .. }), "{err}");
        // a flipped bit in the header text: reported as a CRC mismatch at open
        let mut bytes = good.clone();
        bytes[magic + 12] ^= 1;
        std::fs::write(&stored, &bytes).unwrap();
        let mut npz = Npz::open(&stored).unwrap();
        let err = npz.stream("logits").err().unwrap();
        assert!(matches!(err, NpyError::CrcMismatch { .. }), "{err}");
    }

    #[test]
    fn streaming_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npy");
        let v: Vec<f64> = (0..10).map(|i| i as f64).collect();
        NpyArray::from_slice(&[5, 2], &v)
            .unwrap()
            .write(&p)
            .unwrap();
        let mut st = NpyStream::open(&p).unwrap();
        assert_eq!(st.shape(), &[5, 2]);
        assert_eq!(st.read_chunk(4).unwrap(), NpyData::F64(v[..4].to_vec()));
        assert_eq!(st.read_chunk(100).unwrap(), NpyData::F64(v[4..].to_vec()));
        assert_eq!(st.remaining(), 0);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 8]).unwrap();
        let err = NpyStream::open(&p).err().unwrap().to_string();
        assert!(err.contains("truncated") && err.contains("s.npy"), "{err}");
    }

    #[test]
    fn float32_chunks_into_a_reused_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npy");
        let v: Vec<f32> = (0..30).map(|i| i as f32 * 0.5 - 3.0).collect();
        NpyArray::from_slice(&[10, 3], &v)
            .unwrap()
            .write(&p)
            .unwrap();
        let mut st = NpyStream::open(&p).unwrap();
        let mut buf = Vec::new();
        assert!(st.read_f32_into(12, &mut buf).unwrap());
        assert_eq!(buf, v[..12]);
        let at = buf.as_ptr();
        assert!(st.read_f32_into(12, &mut buf).unwrap());
        assert_eq!(
            (buf.as_slice(), buf.as_ptr()),
            (&v[12..24], at),
            "same allocation"
        );
        assert!(st.read_f32_into(12, &mut buf).unwrap());
        assert_eq!(buf, v[24..]);
        assert!(st.read_f32_into(12, &mut buf).unwrap());
        assert!(buf.is_empty() && st.remaining() == 0);
        // other element types are left to read_chunk, nothing read
        let q = dir.path().join("d.npy");
        NpyArray::from_slice(&[3], &[1f64, 2., 3.])
            .unwrap()
            .write(&q)
            .unwrap();
        let mut st = NpyStream::open(&q).unwrap();
        assert!(!st.read_f32_into(2, &mut buf).unwrap());
        assert_eq!(st.read_chunk(3).unwrap(), NpyData::F64(vec![1., 2., 3.]));
    }

    #[test]
    fn files_and_npz() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let a = NpyArray::from_slice(&[2, 2], &[1f32, 2., 3., 4.]).unwrap();
        a.write(&p).unwrap();
        assert_eq!(NpyArray::read(&p).unwrap(), a);
        // truncated file on disk
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let err = NpyArray::read(&p).unwrap_err().to_string();
        assert!(err.contains("truncated") && err.contains("a.npy"), "{err}");

        let z = dir.path().join("x.npz");
        let l = NpyArray::from_slice(&[2], &[0i64, 1]).unwrap();
        write_npz(&z, &[("logits", &a), ("labels", &l)]).unwrap();
        let m = read_npz(&z).unwrap();
        assert_eq!(m["logits"], a);
        assert_eq!(m["labels"], l);
        let mut npz = Npz::open(&z).unwrap();
        let err = npz.get("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("logits"), "{err}");
        std::fs::write(&z, b"PK garbage").unwrap();
        assert!(Npz::open(&z).is_err());
        assert!(NpyArray::read(dir.path().join("missing.npy")).is_err());
    }
}
