//! The restricted pickle machine: builds the object graph from the opcodes of protocols 0-5
//! (globals resolved against an allow-list given by the caller, nothing executed), then converts
//! it to [`Value`]s, reading tensor data from a [`Storages`] provider within [`crate::limits`].
//! The `.pth` reader uses it with [`TORCH_RULES`]; other readers (CIFAR's NumPy pickles) give
//! their own [`Rules`] to [`unpickle`].

use std::collections::HashMap;
use std::rc::Rc;

use crate::archive::Storages;
use crate::{DType, PthError, TensorData, Value, limits};

mod numpy;
mod rules;
#[cfg(test)]
mod tests;

use numpy::{NdArray, NumpyDtype, array_to_tensor, latin1, make_array, parse_dtype, unquote_py2};
use rules::always_refused;
pub use rules::{Callable, Python2Str, Resolution, Rules, TORCH_RULES, unpickle};

// ---------------------------------------------------------------------------
// Pickle machine
// ---------------------------------------------------------------------------

/// Index of an object in the unpickler's arena.
pub(crate) type Id = usize;

/// What a resolved global refers to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Global {
    /// A callable the machine evaluates.
    Known(Callable),
    /// Any other allowed global: yields opaque objects.
    Opaque(String),
    /// A global the rules name unusable: an error if called or used as storage.
    Forbidden(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    /// An integer that does not fit in 64 bits (LONG1 bytes, little-endian
    /// two's complement). Only the legacy magic number is expected here;
    /// anywhere else it is an error when converted to a [`Value`].
    BigInt(Vec<u8>),
    /// A tensor whose data is fetched from its storage when converted to a
    /// [`Value`] (legacy files store the data after the pickle).
    Tensor(TensorRef),
    Object(String),
    Global(Global),
    Storage(StorageRef),
    /// A byte string (protocol 3+ bytes, or Python 2 `str` read as bytes).
    Bytes(Rc<Vec<u8>>),
    /// `_reconstruct(ndarray, ...)` waiting for its BUILD state.
    ArrayStub,
    /// A NumPy dtype.
    Dtype(NumpyDtype),
    /// A NumPy array.
    Array(NdArray),
}

/// A (possibly partial view of a) storage referenced by a persistent id.
#[derive(Debug, Clone)]
pub(crate) struct StorageRef {
    dtype: DType,
    /// Root storage key.
    key: String,
    /// `(element offset, element count)` inside the root storage, for the
    /// storage views of legacy files.
    view: Option<(usize, usize)>,
}

/// A strided tensor over a storage, not yet materialised.
#[derive(Debug, Clone)]
pub(crate) struct TensorRef {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// Root storage facts declared by persistent ids: dtype and element count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RootInfo {
    pub(crate) dtype: DType,
    pub(crate) numel: u64,
}

const MAX_DEPTH: usize = 256;

/// The pickle machine. It only builds the object graph; tensor data is
/// read from a [`Storages`] provider afterwards, in [`Unpickler::to_value`].
pub(crate) struct Unpickler<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) arena: Vec<Obj>,
    pub(crate) stack: Vec<Id>,
    pub(crate) marks: Vec<usize>,
    pub(crate) memo: HashMap<u32, Id>,
    /// Root storages referenced by persistent ids.
    pub(crate) roots: HashMap<String, RootInfo>,
    /// Bytes the object graph may take ([`limits`]); spent by [`Unpickler::alloc`].
    graph_left: usize,
    /// Bytes the converted values may take (nodes and strings), spent by `to_value`.
    values_left: std::cell::Cell<usize>,
    /// Bytes of dense tensor data produced so far by `to_value`.
    tensor_bytes: std::cell::Cell<usize>,
    /// The caller's allow-list.
    rules: Rules,
}

/// The bytes of objects and values a pickle of `len` bytes may expand to.
fn graph_allowance(len: usize) -> usize {
    limits::GRAPH_BASE.saturating_add(len.saturating_mul(limits::GRAPH_FACTOR))
}

/// Approximate heap and arena bytes of one object.
fn obj_cost(o: &Obj) -> usize {
    let id = std::mem::size_of::<Id>();
    std::mem::size_of::<Obj>()
        + match o {
            Obj::Str(s) | Obj::Object(s) => s.len(),
            Obj::Global(Global::Opaque(s) | Global::Forbidden(s)) => s.len(),
            Obj::List(v) | Obj::Tuple(v) => v.len() * id,
            Obj::Dict(v) => v.len() * 2 * id,
            Obj::BigInt(b) => b.len(),
            Obj::Tensor(t) => (t.shape.len() + t.stride.len()) * id + t.storage.key.len(),
            Obj::Storage(s) => s.key.len(),
            Obj::Array(a) => a.shape.len() * id,
            // new byte strings are charged where they are made (`bytes`), shared ones are not
            _ => 0,
        }
}

fn op_name(op: u8) -> &'static str {
    match op {
        0x8b => "LONG4",
        b'V' => "UNICODE",
        b'P' => "PERSID",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

impl<'a> Unpickler<'a> {
    /// A machine reading one pickle from `data`, starting at byte `pos`
    /// (error offsets are reported relative to the start of `data`).
    pub(crate) fn new(data: &'a [u8], pos: usize, rules: &Rules) -> Self {
        Unpickler {
            data,
            pos,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            roots: HashMap::new(),
            graph_left: graph_allowance(data.len().saturating_sub(pos)),
            values_left: std::cell::Cell::new(graph_allowance(data.len().saturating_sub(pos))),
            tensor_bytes: std::cell::Cell::new(0),
            rules: *rules,
        }
    }

    /// Takes `bytes` of the object graph's allowance.
    fn spend(&mut self, bytes: usize) -> Result<(), PthError> {
        self.graph_left = self.graph_left.checked_sub(bytes).ok_or_else(|| {
            PthError::Amplified(format!(
                "the pickle builds objects of more than {} bytes from {} bytes (shared objects copied at every use?)",
                graph_allowance(self.data.len()),
                self.data.len()
            ))
        })?;
        Ok(())
    }

    /// Takes `bytes` of the converted values' allowance.
    fn spend_value(&self, bytes: usize) -> Result<(), PthError> {
        let left = self.values_left.get().checked_sub(bytes).ok_or_else(|| {
            PthError::Amplified(format!(
                "the pickle's objects expand to more than {} bytes of values ({} bytes of pickle: a shared object referenced too many times)",
                graph_allowance(self.data.len()),
                self.data.len()
            ))
        })?;
        self.values_left.set(left);
        Ok(())
    }

    fn alloc(&mut self, o: Obj) -> Result<Id, PthError> {
        self.spend(obj_cost(&o))?;
        self.arena.push(o);
        Ok(self.arena.len() - 1)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PthError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| PthError::Truncated {
                offset: self.pos,
                what: what.into(),
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PthError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PthError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PthError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// The text up to the next newline (which is consumed).
    fn line(&mut self, what: &'static str) -> Result<String, PthError> {
        let line = self.raw_line(what)?;
        std::str::from_utf8(line)
            .map(str::to_owned)
            .map_err(|_| PthError::Malformed(format!("{what} is not UTF-8")))
    }

    /// Pushes `n` bytes as a byte string, charged to the graph's allowance.
    fn bytes(&mut self, n: u64) -> Result<(), PthError> {
        let n = usize::try_from(n).map_err(|_| PthError::Truncated {
            offset: self.pos,
            what: "bytes".into(),
        })?;
        let b = self.take(n, "bytes")?;
        self.spend(n)?;
        self.push(Obj::Bytes(Rc::new(b.to_vec())))
    }

    /// Pushes a Python 2 `str` of `n` bytes as the rules read it.
    fn python2_str(&mut self, n: u64) -> Result<(), PthError> {
        match self.rules.python2_str {
            Python2Str::Utf8 => self.utf8(n),
            Python2Str::Bytes => self.bytes(n),
        }
    }

    /// The bytes up to the next newline (which is consumed).
    fn raw_line(&mut self, what: &'static str) -> Result<&'a [u8], PthError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PthError::Truncated {
                offset: self.pos,
                what: what.into(),
            })?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    /// A memo index written as text (protocol 0 PUT / GET).
    fn line_index(&mut self, what: &'static str) -> Result<u32, PthError> {
        let line = self.line(what)?;
        line.trim()
            .parse()
            .map_err(|_| PthError::Malformed(format!("{what} {line:?} is not a memo index")))
    }

    fn utf8(&mut self, n: u64) -> Result<(), PthError> {
        let n = usize::try_from(n).map_err(|_| PthError::Truncated {
            offset: self.pos,
            what: "string".into(),
        })?;
        let b = self.take(n, "string")?;
        let s = std::str::from_utf8(b)
            .map_err(|_| PthError::Malformed("string is not valid UTF-8".into()))?;
        self.push(Obj::Str(s.to_owned()))?;
        Ok(())
    }

    fn push(&mut self, o: Obj) -> Result<(), PthError> {
        let id = self.alloc(o)?;
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id, PthError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PthError::Malformed("stack underflow".into()));
        }
        self.stack
            .pop()
            .ok_or_else(|| PthError::Malformed("stack underflow".into()))
    }

    fn top(&self) -> Result<Id, PthError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PthError::Malformed("stack underflow".into()));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| PthError::Malformed("stack underflow".into()))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PthError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| PthError::Malformed("no MARK on stack".into()))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, idx: u32) -> Result<(), PthError> {
        let id = self.top()?;
        self.memo.insert(idx, id);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<(), PthError> {
        let id = *self
            .memo
            .get(&idx)
            .ok_or_else(|| PthError::Malformed(format!("memo key {idx} not found")))?;
        self.stack.push(id);
        Ok(())
    }

    fn tuple(&mut self, items: Vec<Id>) -> Result<(), PthError> {
        self.push(Obj::Tuple(items))
    }

    fn resolve_global(&self, module: &str, name: &str) -> Result<Global, PthError> {
        let full = format!("{module}.{name}");
        if always_refused(module, name) {
            return Err(PthError::DisallowedGlobal(full));
        }
        Ok(match (self.rules.globals)(module, name) {
            Resolution::Known(c) => Global::Known(c),
            Resolution::Opaque => Global::Opaque(full),
            Resolution::Unusable => Global::Forbidden(full),
            Resolution::Refused => return Err(PthError::DisallowedGlobal(full)),
        })
    }

    pub(crate) fn run(&mut self) -> Result<Id, PthError> {
        loop {
            let offset = self.pos;
            let op = self.u8("opcode")?;
            match op {
                0x80 => {
                    let p = self.u8("protocol")?;
                    if p > 5 {
                        return Err(PthError::Malformed(format!(
                            "unsupported pickle protocol {p}"
                        )));
                    }
                }
                0x95 => {
                    self.u64("frame length")?;
                }
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                b']' => self.push(Obj::List(Vec::new()))?,
                b')' => self.tuple(Vec::new())?,
                b'(' => self.marks.push(self.stack.len()),
                b'X' => {
                    let n = self.u32("string length")?;
                    self.utf8(u64::from(n))?;
                }
                0x8c => {
                    let n = self.u8("string length")?;
                    self.utf8(u64::from(n))?;
                }
                0x8d => {
                    let n = self.u64("string length")?;
                    self.utf8(n)?;
                }
                // Python 2 `str` (legacy checkpoints written by Python 2, NumPy data): as
                // the rules say, UTF-8 text (`torch.load`'s default) or bytes.
                b'U' => {
                    let n = self.u8("string length")?;
                    self.python2_str(u64::from(n))?;
                }
                b'T' => {
                    let n = self.u32("string length")? as i32;
                    let n = u64::try_from(n)
                        .map_err(|_| PthError::Malformed("negative BINSTRING length".into()))?;
                    self.python2_str(n)?;
                }
                b'S' => {
                    let line = self.raw_line("STRING argument")?;
                    let b = unquote_py2(line)
                        .ok_or_else(|| PthError::Malformed("bad STRING argument".into()))?;
                    match self.rules.python2_str {
                        Python2Str::Bytes => {
                            self.spend(b.len())?;
                            self.push(Obj::Bytes(Rc::new(b)))?;
                        }
                        Python2Str::Utf8 => {
                            let s = String::from_utf8(b).map_err(|_| {
                                PthError::Malformed("string is not valid UTF-8".into())
                            })?;
                            self.push(Obj::Str(s))?;
                        }
                    }
                }
                // bytes (protocol 3+), bytearray (protocol 5)
                b'C' => {
                    let n = self.u8("bytes length")?;
                    self.bytes(u64::from(n))?;
                }
                b'B' => {
                    let n = self.u32("bytes length")?;
                    self.bytes(u64::from(n))?;
                }
                0x8e | 0x96 => {
                    let n = self.u64("bytes length")?;
                    self.bytes(n)?;
                }
                // protocol 0 text arguments
                b'I' | b'L' => {
                    let line = self.line("INT argument")?;
                    let t = line.trim().trim_end_matches('L');
                    let o = match (op, t) {
                        (b'I', "00") => Obj::Bool(false),
                        (b'I', "01") => Obj::Bool(true),
                        _ => Obj::Int(t.parse().map_err(|_| {
                            PthError::Malformed(format!("bad integer {t:?} at byte {offset}"))
                        })?),
                    };
                    self.push(o)?;
                }
                b'F' => {
                    let line = self.line("FLOAT argument")?;
                    let v: f64 = line.trim().parse().map_err(|_| {
                        PthError::Malformed(format!("bad float {line:?} at byte {offset}"))
                    })?;
                    self.push(Obj::Float(v))?;
                }
                b'p' => {
                    let i = self.line_index("PUT argument")?;
                    self.memo_put(i)?;
                }
                b'g' => {
                    let i = self.line_index("GET argument")?;
                    self.memo_get(i)?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(PthError::Malformed("odd number of DICT entries".into()));
                    }
                    let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push(Obj::Dict(pairs))?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                b'J' => {
                    let v = self.u32("int")? as i32;
                    self.push(Obj::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.u8("int")?;
                    self.push(Obj::Int(i64::from(v)))?;
                }
                b'M' => {
                    let b = self.take(2, "int")?;
                    self.push(Obj::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))))?;
                }
                0x8a => {
                    let n = usize::from(self.u8("long length")?);
                    let b = self.take(n, "long")?;
                    match decode_long(b) {
                        Some(v) => self.push(Obj::Int(v))?,
                        None => self.push(Obj::BigInt(b.to_vec()))?,
                    }
                }
                b'G' => {
                    let b = self.take(8, "float")?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Obj::Float(f64::from_be_bytes(a)))?;
                }
                0x88 => self.push(Obj::Bool(true))?,
                0x89 => self.push(Obj::Bool(false))?,
                b'N' => self.push(Obj::None)?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                0x85 => {
                    let a = self.pop()?;
                    self.tuple(vec![a])?;
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.tuple(vec![a, b])?;
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.tuple(vec![a, b, c])?;
                }
                b'c' => {
                    let module = self.line("GLOBAL module")?;
                    let name = self.line("GLOBAL name")?;
                    let g = self.resolve_global(&module, &name)?;
                    self.push(Obj::Global(g))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Obj::Str(m), Obj::Str(n)) = (&self.arena[module], &self.arena[name])
                    else {
                        return Err(PthError::Malformed("STACK_GLOBAL needs two strings".into()));
                    };
                    let g = self.resolve_global(m, n)?;
                    self.push(Obj::Global(g))?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let o = self.call(func, args)?;
                    self.push(o)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let o = self.call(cls, args)?;
                    self.push(o)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    self.build(obj, state)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?;
                    self.set_items(d, items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(l, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(l, items)?;
                }
                b'q' => {
                    let i = self.u8("memo index")?;
                    self.memo_put(u32::from(i))?;
                }
                b'r' => {
                    let i = self.u32("memo index")?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len())
                        .map_err(|_| PthError::Malformed("memo too large".into()))?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8("memo index")?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = self.u32("memo index")?;
                    self.memo_get(i)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let id = self.persistent_load(pid)?;
                    self.stack.push(id);
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                _ => {
                    return Err(PthError::UnknownOpcode {
                        opcode: op,
                        name: op_name(op),
                        offset,
                    });
                }
            }
        }
    }

    fn set_items(&mut self, d: Id, items: Vec<Id>) -> Result<(), PthError> {
        self.spend(items.len() * std::mem::size_of::<Id>())?;
        if items.len() % 2 != 0 {
            return Err(PthError::Malformed("odd number of SETITEMS entries".into()));
        }
        match &mut self.arena[d] {
            Obj::Dict(v) => {
                v.extend(items.chunks_exact(2).map(|c| (c[0], c[1])));
                Ok(())
            }
            // Items set on an opaque object are dropped along with it.
            Obj::Object(_) => Ok(()),
            _ => Err(PthError::Malformed("SETITEM on a non-dict".into())),
        }
    }

    fn append(&mut self, l: Id, items: Vec<Id>) -> Result<(), PthError> {
        self.spend(items.len() * std::mem::size_of::<Id>())?;
        match &mut self.arena[l] {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            Obj::Object(_) => Ok(()),
            _ => Err(PthError::Malformed("APPEND on a non-list".into())),
        }
    }

    fn tuple_items(&self, id: Id, what: &str) -> Result<Vec<Id>, PthError> {
        match &self.arena[id] {
            Obj::Tuple(v) => Ok(v.clone()),
            _ => Err(PthError::Malformed(format!("{what}: expected a tuple"))),
        }
    }

    fn int(&self, id: Id, what: &str) -> Result<i64, PthError> {
        match &self.arena[id] {
            Obj::Int(v) => Ok(*v),
            Obj::Bool(b) => Ok(i64::from(*b)),
            Obj::BigInt(_) => Err(PthError::Malformed(format!(
                "{what}: integer does not fit in 64 bits"
            ))),
            _ => Err(PthError::Malformed(format!("{what}: expected an int"))),
        }
    }

    fn usize_tuple(&self, id: Id, what: &str) -> Result<Vec<usize>, PthError> {
        let ids = match &self.arena[id] {
            Obj::Tuple(v) | Obj::List(v) => v.clone(),
            _ => return Err(PthError::Malformed(format!("{what}: expected a tuple"))),
        };
        ids.into_iter()
            .map(|i| {
                let v = self.int(i, what)?;
                usize::try_from(v)
                    .map_err(|_| PthError::Malformed(format!("{what}: negative value {v}")))
            })
            .collect()
    }

    /// Resolves a persistent id. `('storage', type, key, location, numel[,
    /// view_metadata])` yields a storage reference (and records the root
    /// storage's dtype and size); `('module', class, ...)` (whole-module
    /// saves in the legacy format) yields the class itself.
    fn persistent_load(&mut self, pid: Id) -> Result<Id, PthError> {
        let items = self.tuple_items(pid, "persistent id")?;
        if items.len() < 2 {
            return Err(PthError::Malformed("persistent id tuple too short".into()));
        }
        match &self.arena[items[0]] {
            Obj::Str(s) if s == "storage" => {}
            Obj::Str(s) if s == "module" => return Ok(items[1]),
            _ => {
                return Err(PthError::Malformed(
                    "persistent id is not a ('storage', ...) tuple".into(),
                ));
            }
        }
        if items.len() < 3 {
            return Err(PthError::Malformed("persistent id tuple too short".into()));
        }
        let dtype = match &self.arena[items[1]] {
            Obj::Global(Global::Known(Callable::TorchStorage(d))) => *d,
            Obj::Global(Global::Forbidden(n) | Global::Opaque(n)) => {
                return Err(PthError::DisallowedGlobal(format!("{n} (as storage type)")));
            }
            _ => return Err(PthError::Malformed("persistent id storage type".into())),
        };
        let key = match &self.arena[items[2]] {
            Obj::Str(s) => s.clone(),
            _ => return Err(PthError::Malformed("storage key is not a string".into())),
        };
        if key.contains('/') || key.contains('\\') || key.contains("..") {
            return Err(PthError::Malformed(format!(
                "suspicious storage key {key:?}"
            )));
        }
        // items[3] is the location ("cpu", "cuda:0"): irrelevant here.
        if let Some(&n) = items.get(4) {
            let numel = u64::try_from(self.int(n, "storage size")?)
                .map_err(|_| PthError::Malformed("negative storage size".into()))?;
            let info = RootInfo { dtype, numel };
            match self.roots.get(&key) {
                Some(prev) if *prev != info => {
                    return Err(PthError::Malformed(format!(
                        "storage {key:?} declared twice with different types or sizes"
                    )));
                }
                Some(_) => {}
                None => {
                    self.roots.insert(key.clone(), info);
                }
            }
        }
        let view = match items.get(5).map(|&v| &self.arena[v]) {
            None | Some(Obj::None) => None,
            Some(Obj::Tuple(v)) if v.len() == 3 => {
                let (off, len) = (v[1], v[2]);
                let off = usize::try_from(self.int(off, "storage view offset")?)
                    .map_err(|_| PthError::Malformed("negative storage view offset".into()))?;
                let len = usize::try_from(self.int(len, "storage view size")?)
                    .map_err(|_| PthError::Malformed("negative storage view size".into()))?;
                Some((off, len))
            }
            Some(_) => {
                return Err(PthError::Malformed(
                    "storage view metadata is not a (key, offset, size) tuple".into(),
                ));
            }
        };
        self.alloc(Obj::Storage(StorageRef { dtype, key, view }))
    }

    fn call(&mut self, func: Id, args: Id) -> Result<Obj, PthError> {
        let c = match &self.arena[func] {
            Obj::Global(Global::Known(c)) => *c,
            Obj::Global(Global::Opaque(n)) => return Ok(Obj::Object(n.clone())),
            Obj::Global(Global::Forbidden(n)) => {
                return Err(PthError::DisallowedGlobal(n.clone()));
            }
            Obj::Object(n) => return Ok(Obj::Object(n.clone())),
            _ => return Err(PthError::Malformed("REDUCE on a non-callable".into())),
        };
        let args = self.tuple_items(args, "call arguments")?;
        match c {
            Callable::OrderedDict | Callable::Dict => {
                let mut items = Vec::new();
                if let Some(&a) = args.first() {
                    let pairs = match &self.arena[a] {
                        Obj::List(v) | Obj::Tuple(v) => v.clone(),
                        Obj::Dict(v) => return Ok(Obj::Dict(v.clone())),
                        _ => return Err(PthError::Malformed("dict(): bad argument".into())),
                    };
                    for p in pairs {
                        // Python 3 pickles pairs as tuples, Python 2's
                        // OrderedDict.__reduce__ as two-element lists.
                        let kv = match &self.arena[p] {
                            Obj::Tuple(v) | Obj::List(v) => v.clone(),
                            _ => {
                                return Err(PthError::Malformed(
                                    "dict item: expected a pair".into(),
                                ));
                            }
                        };
                        if kv.len() != 2 {
                            return Err(PthError::Malformed("dict item is not a pair".into()));
                        }
                        items.push((kv[0], kv[1]));
                    }
                }
                Ok(Obj::Dict(items))
            }
            Callable::List | Callable::Tuple => {
                let items = match args.first().map(|&a| &self.arena[a]) {
                    None => Vec::new(),
                    Some(Obj::List(v) | Obj::Tuple(v)) => v.clone(),
                    Some(_) => return Err(PthError::Malformed("list(): bad argument".into())),
                };
                Ok(if c == Callable::Tuple {
                    Obj::Tuple(items)
                } else {
                    Obj::List(items)
                })
            }
            Callable::RebuildTensorV2 => self.rebuild_tensor(&args, 6).map(Obj::Tensor),
            Callable::RebuildTensor => self.rebuild_tensor(&args, 4).map(Obj::Tensor),
            Callable::RebuildParameter => {
                let a = *args
                    .first()
                    .ok_or_else(|| PthError::Malformed("_rebuild_parameter: no data".into()))?;
                match &self.arena[a] {
                    Obj::Tensor(t) => Ok(Obj::Tensor(t.clone())),
                    _ => Err(PthError::Malformed(
                        "_rebuild_parameter: data is not a tensor".into(),
                    )),
                }
            }
            Callable::TorchDevice => {
                let mut s = match args.first().map(|&a| &self.arena[a]) {
                    Some(Obj::Str(s)) => s.clone(),
                    _ => return Err(PthError::Malformed("torch.device: bad argument".into())),
                };
                if let Some(&i) = args.get(1) {
                    if let Obj::Int(i) = self.arena[i] {
                        s = format!("{s}:{i}");
                    }
                }
                Ok(Obj::Str(s))
            }
            Callable::CopyregReconstructor => match args.first().map(|&a| &self.arena[a]) {
                Some(Obj::Global(Global::Opaque(n))) => Ok(Obj::Object(n.clone())),
                _ => Ok(Obj::Object("copyreg._reconstructor".into())),
            },
            Callable::TorchStorage(d) => Err(PthError::DisallowedGlobal(format!(
                "torch.{} (called directly)",
                d.torch_name()
            ))),
            Callable::NumpyReconstruct => match args.first().map(|&a| &self.arena[a]) {
                Some(Obj::Global(Global::Known(Callable::NumpyNdarray))) => Ok(Obj::ArrayStub),
                _ => Err(PthError::Malformed(
                    "_reconstruct of something other than numpy.ndarray".into(),
                )),
            },
            Callable::NumpyNdarray => {
                Err(PthError::Malformed("numpy.ndarray called directly".into()))
            }
            Callable::NumpyDtype => {
                let descr = args.first().and_then(|&a| self.text(a)).ok_or_else(|| {
                    PthError::Malformed("dtype descriptor is not a string".into())
                })?;
                Ok(Obj::Dtype(parse_dtype(&descr)?))
            }
            Callable::CodecsEncode | Callable::ByteArray => {
                let bytes = match args.as_slice() {
                    [] if c == Callable::ByteArray => Vec::new(),
                    [b] if c == Callable::ByteArray => match &self.arena[*b] {
                        Obj::Bytes(b) => return Ok(Obj::Bytes(Rc::clone(b))),
                        _ => return Err(PthError::Malformed("bytearray(): bad argument".into())),
                    },
                    [text, encoding] => {
                        let Obj::Str(text) = &self.arena[*text] else {
                            return Err(PthError::Malformed("encode(): not a string".into()));
                        };
                        let text = text.clone();
                        let encoding = self
                            .text(*encoding)
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        if !matches!(
                            encoding.as_str(),
                            "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1"
                        ) {
                            return Err(PthError::Malformed(format!(
                                "unsupported string encoding {encoding:?}"
                            )));
                        }
                        latin1(&text)?
                    }
                    _ => {
                        return Err(PthError::Malformed(format!(
                            "{c:?} with {} arguments",
                            args.len()
                        )));
                    }
                };
                self.spend(bytes.len())?;
                Ok(Obj::Bytes(Rc::new(bytes)))
            }
            Callable::NumpyFromBuffer => {
                let [buffer, dtype, shape, order] = args[..] else {
                    return Err(PthError::Malformed(
                        "_frombuffer: expected 4 arguments".into(),
                    ));
                };
                let (Obj::Bytes(data), Obj::Dtype(dtype)) =
                    (&self.arena[buffer], &self.arena[dtype])
                else {
                    return Err(PthError::Malformed(
                        "_frombuffer: expected bytes and a dtype".into(),
                    ));
                };
                let (data, dtype) = (Rc::clone(data), *dtype);
                let fortran = self.text(order).is_some_and(|o| o == "F");
                let shape = self.usize_tuple(shape, "array shape")?;
                make_array(dtype, shape, fortran, data).map(Obj::Array)
            }
        }
    }

    /// A string argument (text, or bytes read as latin-1).
    fn text(&self, id: Id) -> Option<String> {
        match &self.arena[id] {
            Obj::Str(s) => Some(s.clone()),
            Obj::Bytes(b) => Some(b.iter().map(|&c| char::from(c)).collect()),
            _ => None,
        }
    }

    /// BUILD: completes a NumPy array (`(version, shape, dtype, is_fortran, data)`) or sets a
    /// dtype's byte order; the state of any other object (attributes, which this reader does
    /// not model) is dropped.
    fn build(&mut self, obj: Id, state: Id) -> Result<(), PthError> {
        match &self.arena[obj] {
            Obj::ArrayStub => {
                let st = self.tuple_items(state, "ndarray state")?;
                let [_, shape, dtype, fortran, raw] = st[..] else {
                    return Err(PthError::Malformed(
                        "ndarray state has an unexpected layout".into(),
                    ));
                };
                let Obj::Dtype(dtype) = self.arena[dtype] else {
                    return Err(PthError::Malformed("ndarray state holds no dtype".into()));
                };
                let data = match &self.arena[raw] {
                    Obj::Bytes(b) => Rc::clone(b),
                    Obj::Str(text) => {
                        // Python 2 data read as text: its latin-1 bytes
                        let text = text.clone();
                        let bytes = latin1(&text)?;
                        self.spend(bytes.len())?;
                        Rc::new(bytes)
                    }
                    _ => {
                        return Err(PthError::Malformed(
                            "ndarray data is not a byte string (object array?)".into(),
                        ));
                    }
                };
                let fortran = matches!(self.arena[fortran], Obj::Bool(true) | Obj::Int(1));
                let shape = self.usize_tuple(shape, "array shape")?;
                let array = make_array(dtype, shape, fortran, data)?;
                self.spend(obj_cost(&Obj::Array(array.clone())))?;
                self.arena[obj] = Obj::Array(array);
            }
            Obj::Dtype(d) => {
                let mut d = *d;
                let st = self.tuple_items(state, "dtype state")?;
                if let Some(order) = st.get(1).and_then(|&o| self.text(o)) {
                    d.big_endian = order == ">";
                }
                self.arena[obj] = Obj::Dtype(d);
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the arguments of `_rebuild_tensor(_v2)` (`storage, offset,
    /// size, stride, ...`); at least `min_args` are required.
    fn rebuild_tensor(&mut self, args: &[Id], min_args: usize) -> Result<TensorRef, PthError> {
        if args.len() < min_args {
            return Err(PthError::Malformed(format!(
                "_rebuild_tensor expects at least {min_args} arguments, got {}",
                args.len()
            )));
        }
        let storage = match &self.arena[args[0]] {
            Obj::Storage(s) => s.clone(),
            _ => {
                return Err(PthError::Malformed(
                    "_rebuild_tensor: first argument is not a storage".into(),
                ));
            }
        };
        let offset = usize::try_from(self.int(args[1], "storage offset")?)
            .map_err(|_| PthError::Malformed("negative storage offset".into()))?;
        let shape = self.usize_tuple(args[2], "tensor size")?;
        let stride = self.usize_tuple(args[3], "tensor stride")?;
        if shape.len() != stride.len() {
            return Err(PthError::Malformed("size and stride lengths differ".into()));
        }
        Ok(TensorRef {
            storage,
            offset,
            shape,
            stride,
        })
    }

    /// Converts the object `id` to a [`Value`], reading tensor data from `storages`.
    pub(crate) fn to_value<S: Storages>(
        &self,
        id: Id,
        depth: usize,
        storages: &mut S,
    ) -> Result<Value, PthError> {
        if depth > MAX_DEPTH {
            return Err(PthError::Malformed(
                "object graph too deep (or self-referential)".into(),
            ));
        }
        let list = |v: &[Id], storages: &mut S| -> Result<Vec<Value>, PthError> {
            v.iter()
                .map(|&i| self.to_value(i, depth + 1, storages))
                .collect()
        };
        let text = match &self.arena[id] {
            Obj::Str(s) | Obj::Object(s) => s.len(),
            Obj::Global(Global::Opaque(s) | Global::Forbidden(s)) => s.len(),
            Obj::Bytes(b) => b.len(),
            Obj::Array(a) => a.data.len(),
            _ => 0,
        };
        self.spend_value(std::mem::size_of::<Value>() + text)?;
        Ok(match &self.arena[id] {
            Obj::None => Value::None,
            Obj::Bool(b) => Value::Bool(*b),
            Obj::Int(i) => Value::Int(*i),
            Obj::BigInt(_) => {
                return Err(PthError::Malformed(
                    "integer does not fit in 64 bits".into(),
                ));
            }
            Obj::Float(f) => Value::Float(*f),
            Obj::Str(s) => Value::Str(s.clone()),
            Obj::List(v) => Value::List(list(v, storages)?),
            Obj::Tuple(v) => Value::Tuple(list(v, storages)?),
            Obj::Dict(v) => {
                let mut out = Vec::with_capacity(v.len());
                for &(k, x) in v {
                    out.push((
                        self.to_value(k, depth + 1, storages)?,
                        self.to_value(x, depth + 1, storages)?,
                    ));
                }
                Value::Dict(out)
            }
            Obj::Tensor(t) => Value::Tensor(materialize(t, storages, &self.tensor_bytes)?),
            Obj::Object(n) => Value::Object(n.clone()),
            Obj::Global(g) => Value::Object(match g {
                Global::Opaque(n) | Global::Forbidden(n) => n.clone(),
                Global::Known(c) => format!("{c:?}"),
            }),
            Obj::Storage(s) => Value::Object(format!("storage:{}", s.key)),
            Obj::Bytes(b) => Value::Bytes(b.to_vec()),
            Obj::Array(a) => Value::Tensor(array_to_tensor(a)),
            Obj::Dtype(d) => Value::Object(format!("numpy.dtype({})", d.dtype.torch_name())),
            Obj::ArrayStub => {
                return Err(PthError::Malformed(
                    "numpy.ndarray without its BUILD state".into(),
                ));
            }
        })
    }
}

/// Reads a strided tensor out of its storage into a dense little-endian copy;
/// `spent` counts the dense bytes produced so far, bounded by [`limits`].
fn materialize<S: Storages>(
    t: &TensorRef,
    storages: &mut S,
    spent: &std::cell::Cell<usize>,
) -> Result<TensorData, PthError> {
    let TensorRef {
        storage: sref,
        offset,
        shape,
        stride,
    } = t;
    let (dtype, offset) = (sref.dtype, *offset);
    let es = dtype.size();
    let overflow = || PthError::Malformed("tensor size overflows".into());
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    let out_len = numel.checked_mul(es).ok_or_else(overflow)?;
    let big_endian = storages.big_endian();
    storages.get(&sref.key)?; // read (and cached) first, so that it counts in `loaded`
    let loaded = storages.loaded_bytes();
    let root = storages.get(&sref.key)?;
    let storage = match sref.view {
        None => root,
        Some((off, len)) => {
            let start = off.checked_mul(es).ok_or_else(overflow)?;
            let end = off
                .checked_add(len)
                .and_then(|x| x.checked_mul(es))
                .ok_or_else(overflow)?;
            if root.len() < end {
                return Err(PthError::StorageTooShort {
                    key: sref.key.clone(),
                    needed: end,
                    actual: root.len(),
                });
            }
            &root[start..end]
        }
    };
    if numel == 0 {
        return Ok(TensorData {
            dtype,
            shape: shape.clone(),
            data: Vec::new(),
        });
    }
    // Highest element index touched, to bounds-check the storage once.
    let mut max_idx = offset;
    for (&d, &s) in shape.iter().zip(stride) {
        max_idx = (d - 1)
            .checked_mul(s)
            .and_then(|x| x.checked_add(max_idx))
            .ok_or_else(overflow)?;
    }
    let needed = max_idx
        .checked_add(1)
        .and_then(|x| x.checked_mul(es))
        .ok_or_else(overflow)?;
    if storage.len() < needed {
        return Err(PthError::StorageTooShort {
            key: sref.key.clone(),
            needed,
            actual: storage.len(),
        });
    }
    let allowed = limits::TENSOR_BASE.saturating_add(loaded.saturating_mul(limits::TENSOR_FACTOR));
    let total = spent.get().saturating_add(out_len);
    if total > allowed {
        return Err(PthError::Amplified(format!(
            "tensor of shape {shape:?} over storage `{}` ({out_len} bytes) brings the tensors read to {total} bytes, \
             more than {} x the {loaded} bytes of storage read + {} MiB (views with stride 0, or many views of one storage)",
            sref.key,
            limits::TENSOR_FACTOR,
            limits::TENSOR_BASE >> 20
        )));
    }
    spent.set(total);
    let mut data = Vec::new();
    data.try_reserve_exact(out_len)
        .map_err(|_| PthError::Malformed(format!("cannot allocate {out_len} bytes")))?;
    let contiguous = {
        let mut expect = 1usize;
        let mut ok = true;
        for (&d, &s) in shape.iter().zip(stride).rev() {
            if d != 1 && s != expect {
                ok = false;
                break;
            }
            expect = expect.saturating_mul(d);
        }
        ok
    };
    if contiguous {
        data.extend_from_slice(&storage[offset * es..offset * es + out_len]);
    } else {
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..numel {
            let lin = offset + idx.iter().zip(stride).map(|(&i, &s)| i * s).sum::<usize>();
            data.extend_from_slice(&storage[lin * es..(lin + 1) * es]);
            for ax in (0..shape.len()).rev() {
                idx[ax] += 1;
                if idx[ax] < shape[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
    }
    if big_endian && es > 1 {
        for c in data.chunks_exact_mut(es) {
            c.reverse();
        }
    }
    Ok(TensorData {
        dtype,
        shape: shape.clone(),
        data,
    })
}

/// Decodes a little-endian two's-complement integer (pickle LONG1).
fn decode_long(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return Some(0);
    }
    if b.len() > 8 {
        // Allow redundant sign-extension bytes only.
        let (lo, hi) = b.split_at(8);
        let neg = lo[7] & 0x80 != 0;
        let fill = if neg { 0xff } else { 0 };
        if hi.iter().any(|&x| x != fill) {
            return None;
        }
        return decode_long(lo);
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
    a[..b.len()].copy_from_slice(b);
    Some(i64::from_le_bytes(a))
}
