//! The decoded values: element types, dense tensors, and the object tree.

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.float32`
    F32,
    /// `torch.float64`
    F64,
    /// `torch.float16`
    F16,
    /// `torch.bfloat16`
    BF16,
    /// `torch.int64`
    I64,
    /// `torch.int32`
    I32,
    /// `torch.int16`
    I16,
    /// `torch.int8`
    I8,
    /// `torch.uint8`
    U8,
    /// `torch.bool` (one byte per element, 0 or 1)
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// PyTorch's name for the dtype, e.g. `"float32"`.
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// Maps a storage class name (`"FloatStorage"`, ...) to its dtype.
    pub(crate) fn from_storage_name(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }
}

/// A decoded tensor: contiguous, little-endian, C (row-major) order.
///
/// Storage offset and strides of the saved tensor have already been applied,
/// so views (transposes, slices) come out as their own dense copy.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    /// Element type.
    pub dtype: DType,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Raw element bytes, `numel() * dtype.size()` long.
    pub data: Vec<u8>,
}

impl TensorData {
    /// Number of elements (product of the shape; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Values as `f32` for floating dtypes (f32, f64, f16, bf16); `None` otherwise.
    /// f64 values are rounded to the nearest f32.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F64 => d
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b) as f32
                })
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            _ => return None,
        })
    }

    /// Values as `f64` for floating dtypes (exact for all of them); `None` otherwise.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        if self.dtype == DType::F64 {
            return Some(
                self.data
                    .chunks_exact(8)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        f64::from_le_bytes(b)
                    })
                    .collect(),
            );
        }
        self.to_f32()
            .map(|v| v.into_iter().map(f64::from).collect())
    }

    /// Values as `i64` for integer and bool dtypes; `None` for floating dtypes.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::I64 => d
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    i64::from_le_bytes(b)
                })
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::I8 => d.iter().map(|&b| i64::from(b as i8)).collect(),
            DType::U8 | DType::Bool => d.iter().map(|&b| i64::from(b)).collect(),
            _ => return None,
        })
    }
}

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` (must fit in 64 bits).
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `str`; also used for `torch.device` (e.g. `"cpu"`, `"cuda:0"`).
    Str(String),
    /// Python `bytes` / `bytearray` (and Python 2 `str` where the [`crate::pickle::Rules`]
    /// read them as bytes).
    Bytes(Vec<u8>),
    /// Python `list` (also `set`/`frozenset`).
    List(Vec<Value>),
    /// Python `tuple`.
    Tuple(Vec<Value>),
    /// Python `dict` / `OrderedDict`, insertion order preserved.
    Dict(Vec<(Value, Value)>),
    /// A tensor (or `nn.Parameter`); also a NumPy array of a plain pickle.
    Tensor(TensorData),
    /// An object of an unsupported class, identified by `module.name`.
    Object(String),
}

impl Value {
    /// Looks up a string key (text, or bytes equal to its UTF-8) in a [`Value::Dict`].
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                Value::Bytes(b) if b.as_slice() == key.as_bytes() => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }
}
