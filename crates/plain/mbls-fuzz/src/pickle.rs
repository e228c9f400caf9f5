//! A minimal pickle writer (protocol 2, plus protocol 3's `BINBYTES`), for building valid and
//! hostile checkpoints and CIFAR batches opcode by opcode.

/// Pickle bytes under construction; every method appends one opcode (with its argument).
#[derive(Clone, Debug)]
pub struct Pickle(Vec<u8>);

impl Default for Pickle {
    fn default() -> Self {
        Self::new()
    }
}

impl Pickle {
    /// `PROTO 2`.
    pub fn new() -> Self {
        Pickle(vec![0x80, 2])
    }

    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// `MARK`.
    pub fn mark(&mut self) -> &mut Self {
        self.op(b"(")
    }
    /// `TUPLE` (items since the mark).
    pub fn tuple(&mut self) -> &mut Self {
        self.op(b"t")
    }
    /// `TUPLE1`.
    pub fn tuple1(&mut self) -> &mut Self {
        self.op(&[0x85])
    }
    /// `TUPLE2`.
    pub fn tuple2(&mut self) -> &mut Self {
        self.op(&[0x86])
    }
    /// `TUPLE3`.
    pub fn tuple3(&mut self) -> &mut Self {
        self.op(&[0x87])
    }
    /// `EMPTY_TUPLE`.
    pub fn empty_tuple(&mut self) -> &mut Self {
        self.op(b")")
    }
    /// `EMPTY_LIST`.
    pub fn empty_list(&mut self) -> &mut Self {
        self.op(b"]")
    }
    /// `EMPTY_DICT`.
    pub fn empty_dict(&mut self) -> &mut Self {
        self.op(b"}")
    }
    /// `APPENDS` (items since the mark).
    pub fn appends(&mut self) -> &mut Self {
        self.op(b"e")
    }
    /// `SETITEMS` (pairs since the mark).
    pub fn setitems(&mut self) -> &mut Self {
        self.op(b"u")
    }
    /// `SETITEM`.
    pub fn setitem(&mut self) -> &mut Self {
        self.op(b"s")
    }
    /// `REDUCE`.
    pub fn reduce(&mut self) -> &mut Self {
        self.op(b"R")
    }
    /// `BUILD`.
    pub fn build(&mut self) -> &mut Self {
        self.op(b"b")
    }
    /// `BINPERSID`.
    pub fn binpersid(&mut self) -> &mut Self {
        self.op(b"Q")
    }
    /// `NONE`.
    pub fn none(&mut self) -> &mut Self {
        self.op(b"N")
    }
    /// `NEWTRUE` / `NEWFALSE`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.op(if v { &[0x88] } else { &[0x89] })
    }
    /// `BININT1`, `BININT2`, `BININT` or `LONG1`, the shortest that holds `v`.
    pub fn int(&mut self, v: i64) -> &mut Self {
        if (0..256).contains(&v) {
            self.op(&[b'K', v as u8])
        } else if (0..65536).contains(&v) {
            let b = (v as u16).to_le_bytes();
            self.op(&[b'M', b[0], b[1]])
        } else if let Ok(i) = i32::try_from(v) {
            self.op(b"J");
            self.op(&i.to_le_bytes())
        } else {
            self.op(&[0x8a, 8]);
            self.op(&v.to_le_bytes())
        }
    }
    /// `BINUNICODE`.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X");
        self.op(&(s.len() as u32).to_le_bytes());
        self.op(s.as_bytes())
    }
    /// `BINBYTES`.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.op(b"B");
        self.op(&(b.len() as u32).to_le_bytes());
        self.op(b)
    }
    /// `GLOBAL module name`.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b"c");
        self.op(module.as_bytes());
        self.op(b"\n");
        self.op(name.as_bytes());
        self.op(b"\n")
    }
    /// `BINPUT i` (memoise the top of the stack).
    pub fn put(&mut self, i: u8) -> &mut Self {
        self.op(&[b'q', i])
    }
    /// `BINGET i` (push the memoised object `i`).
    pub fn get(&mut self, i: u8) -> &mut Self {
        self.op(&[b'h', i])
    }
    /// Raw bytes (for hostile pickles).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.op(b)
    }
    /// `STOP`, and the bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.push(b'.');
        v
    }
}
