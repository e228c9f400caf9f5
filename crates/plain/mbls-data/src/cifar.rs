//! CIFAR-10 and CIFAR-100 in their official python-pickle and binary formats.
//!
//! Layouts (as in the official archives):
//! - python: `cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}` and
//!   `cifar-100-python/{train, test, meta}`; each file a pickled dict whose `data` is a uint8 array
//!   `N x 3072` (a row holds 1024 red, 1024 green, then 1024 blue bytes, each plane row by row) and
//!   whose labels are lists of ints (`labels`; `fine_labels`/`coarse_labels` for CIFAR-100). The
//!   official files were written by Python 2 cPickle (protocol 2); files re-written by Python 3
//!   (protocols 2 to 5) are read too. A small restricted pickle machine handles exactly the
//!   opcodes and NumPy globals these files need; any other global is a format error, nothing is
//!   ever executed.
//! - binary: `cifar-10-batches-bin/{data_batch_1..5.bin, test_batch.bin, batches.meta.txt}` with
//!   3,073-byte records (label, 3,072 pixel bytes), and
//!   `cifar-100-binary/{train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt}` with
//!   3,074-byte records (coarse label, fine label, 3,072 pixel bytes).
//!
//! [`Cifar::open`] finds whichever format is present (in `root` itself or in the official
//! sub-folder), keeps every image in memory and serves 32x32 RGB [`Image`]s in HWC order.

use crate::{DataError, Dataset, Image, Sample, Target};
use mbls_base::download::{download, extract_tar_gz};
use std::path::{Path, PathBuf};

/// Pixel bytes of one CIFAR image (3 planes of 32x32).
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR dataset (and, for CIFAR-100, which label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// CIFAR-10: 10 classes.
    Cifar10,
    /// CIFAR-100: 100 fine classes, or the 20 coarse superclasses when `coarse`.
    Cifar100 {
        /// Use the 20 coarse labels instead of the 100 fine ones.
        coarse: bool,
    },
}

impl CifarKind {
    /// Number of classes of the selected label set (10, 100 or 20).
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 { coarse: false } => 100,
            CifarKind::Cifar100 { coarse: true } => 20,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 { .. } => "CIFAR-100",
        }
    }
}

/// The two official on-disk formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarFormat {
    /// Pickled dicts (`cifar-10-batches-py`, `cifar-100-python`), torchvision's choice.
    Python,
    /// Fixed-size binary records (`cifar-10-batches-bin`, `cifar-100-binary`).
    Binary,
}

/// One official CIFAR archive: where to get it and what it unpacks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CifarArchive {
    /// Download address.
    pub url: String,
    /// MD5 digest of the archive (hex).
    pub md5: String,
    /// File name of the archive.
    pub file_name: String,
    /// Name of the folder the archive unpacks to.
    pub dir_name: String,
}

impl CifarArchive {
    /// The official archive of `kind` in `format` (from <https://www.cs.toronto.edu/~kriz/cifar.html>).
    pub fn official(kind: CifarKind, format: CifarFormat) -> Self {
        let (file, md5) = match (kind, format) {
            (CifarKind::Cifar10, CifarFormat::Python) => {
                ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
            }
            (CifarKind::Cifar10, CifarFormat::Binary) => {
                ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")
            }
            (CifarKind::Cifar100 { .. }, CifarFormat::Python) => (
                "cifar-100-python.tar.gz",
                "eb9058c3a382ffc7106e4002c42a8d85",
            ),
            (CifarKind::Cifar100 { .. }, CifarFormat::Binary) => (
                "cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            ),
        };
        CifarArchive {
            url: format!("https://www.cs.toronto.edu/~kriz/{file}"),
            md5: md5.to_string(),
            file_name: file.to_string(),
            dir_name: official_dir(kind, format).to_string(),
        }
    }
}

/// The folder name of the official archive's contents.
fn official_dir(kind: CifarKind, format: CifarFormat) -> &'static str {
    match (kind, format) {
        (CifarKind::Cifar10, CifarFormat::Python) => "cifar-10-batches-py",
        (CifarKind::Cifar10, CifarFormat::Binary) => "cifar-10-batches-bin",
        (CifarKind::Cifar100 { .. }, CifarFormat::Python) => "cifar-100-python",
        (CifarKind::Cifar100 { .. }, CifarFormat::Binary) => "cifar-100-binary",
    }
}

/// The data files of one split, and the meta file(s).
fn split_files(kind: CifarKind, format: CifarFormat, train: bool) -> Vec<&'static str> {
    match (kind, format, train) {
        (CifarKind::Cifar10, CifarFormat::Python, true) => vec![
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
        ],
        (CifarKind::Cifar10, CifarFormat::Python, false) => vec!["test_batch"],
        (CifarKind::Cifar10, CifarFormat::Binary, true) => vec![
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        (CifarKind::Cifar10, CifarFormat::Binary, false) => vec!["test_batch.bin"],
        (CifarKind::Cifar100 { .. }, CifarFormat::Python, true) => vec!["train"],
        (CifarKind::Cifar100 { .. }, CifarFormat::Python, false) => vec!["test"],
        (CifarKind::Cifar100 { .. }, CifarFormat::Binary, true) => vec!["train.bin"],
        (CifarKind::Cifar100 { .. }, CifarFormat::Binary, false) => vec!["test.bin"],
    }
}

/// A CIFAR-10 / CIFAR-100 split held in memory.
#[derive(Clone)]
pub struct Cifar {
    kind: CifarKind,
    format: CifarFormat,
    train: bool,
    dir: PathBuf,
    classes: Vec<String>,
    /// Planar pixel rows, `CIFAR_IMAGE_BYTES` per image.
    data: Vec<u8>,
    labels: Vec<usize>,
    /// (file, index of its first image), in order.
    files: Vec<(PathBuf, usize)>,
}

impl Cifar {
    /// Opens the training (`train`) or test split of `kind` under `root`.
    ///
    /// `root` may be the folder that holds the official sub-folder (`cifar-10-batches-py`,
    /// `cifar-10-batches-bin`, `cifar-100-python`, `cifar-100-binary`) or that sub-folder itself.
    /// The python format is preferred when both are present.
    ///
    /// # Errors
    /// [`DataError::Missing`] when no CIFAR files are found (the message suggests
    /// [`Cifar::download`]) or a file of the split is missing; [`DataError::Format`] for corrupt
    /// pickles or record files whose size is not a whole number of records;
    /// [`DataError::Label`] for labels outside the class list; [`DataError::Io`] for read errors.
    pub fn open(root: &Path, kind: CifarKind, train: bool) -> Result<Cifar, DataError> {
        let mut found = None;
        'search: for format in [CifarFormat::Python, CifarFormat::Binary] {
            for dir in [root.join(official_dir(kind, format)), root.to_path_buf()] {
                let first = split_files(kind, format, train)[0];
                if dir.join(first).is_file() {
                    found = Some((dir, format));
                    break 'search;
                }
            }
        }
        let Some((dir, format)) = found else {
            return Err(DataError::Missing {
                path: root.to_path_buf(),
                what: format!(
                    "{} {} files (expected {}/ or {}/ with the official archive's content); \
                     fetch them with Cifar::download or unpack {} there by hand",
                    kind.name(),
                    if train { "training" } else { "test" },
                    official_dir(kind, CifarFormat::Python),
                    official_dir(kind, CifarFormat::Binary),
                    CifarArchive::official(kind, CifarFormat::Python).url
                ),
            });
        };
        let mut cifar = Cifar {
            kind,
            format,
            train,
            dir: dir.clone(),
            classes: Vec::new(),
            data: Vec::new(),
            labels: Vec::new(),
            files: Vec::new(),
        };
        cifar.classes = read_classes(&dir, kind, format)?;
        for name in split_files(kind, format, train) {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(DataError::Missing {
                    path,
                    what: format!(
                        "{} data file (the folder is incomplete; re-download with Cifar::download)",
                        kind.name()
                    ),
                });
            }
            let start = cifar.labels.len();
            match format {
                CifarFormat::Python => cifar.load_pickle(&path)?,
                CifarFormat::Binary => cifar.load_binary(&path)?,
            }
            cifar.files.push((path, start));
        }
        Ok(cifar)
    }

    /// Downloads the official python archive of `kind` into `root` (MD5-checked, resumable, see
    /// [`download`]) and unpacks it there, unless its folder is already present. Returns the
    /// folder (`root/cifar-10-batches-py` or `root/cifar-100-python`).
    ///
    /// # Errors
    /// As [`download`] (no network: the message says where to place the archive by hand) and
    /// [`extract_tar_gz`].
    pub fn download(root: &Path, kind: CifarKind) -> Result<PathBuf, DataError> {
        Cifar::download_archive(
            root,
            kind,
            &CifarArchive::official(kind, CifarFormat::Python),
        )
    }

    /// Like [`Cifar::download`] for any archive description (the binary archives, a mirror).
    /// Nothing is fetched when `root/<dir_name>` already holds the split files; the archive is
    /// kept in `root` after unpacking.
    ///
    /// # Errors
    /// As [`download`] and [`extract_tar_gz`]; [`DataError::Missing`] when the archive does not
    /// contain `dir_name`.
    pub fn download_archive(
        root: &Path,
        kind: CifarKind,
        archive: &CifarArchive,
    ) -> Result<PathBuf, DataError> {
        let dir = root.join(&archive.dir_name);
        let complete = [CifarFormat::Python, CifarFormat::Binary]
            .iter()
            .any(|&format| {
                [true, false].iter().all(|&train| {
                    split_files(kind, format, train)
                        .iter()
                        .all(|f| dir.join(f).is_file())
                })
            });
        if complete {
            return Ok(dir);
        }
        let archive_path = download(&archive.url, &root.join(&archive.file_name), &archive.md5)?;
        extract_tar_gz(&archive_path, root)?;
        if !dir.is_dir() {
            return Err(DataError::Missing {
                path: dir,
                what: format!("folder unpacked from {}", archive_path.display()),
            });
        }
        Ok(dir)
    }

    /// Which dataset this is.
    pub fn kind(&self) -> CifarKind {
        self.kind
    }

    /// The format the files were read from.
    pub fn format(&self) -> CifarFormat {
        self.format
    }

    /// True for the training split (50,000 images), false for the test split (10,000).
    pub fn is_train(&self) -> bool {
        self.train
    }

    /// The folder the files were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// All labels, in dataset order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The 3,072 planar bytes (R plane, G plane, B plane) of image `index`, as stored.
    pub fn planar(&self, index: usize) -> Option<&[u8]> {
        if index >= self.labels.len() {
            return None;
        }
        self.data
            .get(index * CIFAR_IMAGE_BYTES..(index + 1) * CIFAR_IMAGE_BYTES)
    }

    fn check_label(&self, path: &Path, label: i64, num_classes: usize) -> Result<usize, DataError> {
        match usize::try_from(label) {
            Ok(l) if l < num_classes => Ok(l),
            _ => Err(DataError::Label {
                path: path.to_path_buf(),
                label: label.to_string(),
                num_classes,
            }),
        }
    }

    fn load_binary(&mut self, path: &Path) -> Result<(), DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let header = match self.kind {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 { .. } => 2,
        };
        let record = header + CIFAR_IMAGE_BYTES;
        if bytes.len() % record != 0 {
            return Err(DataError::format(
                path,
                format!(
                    "size {} is not a whole number of {record}-byte records (truncated file?)",
                    bytes.len()
                ),
            ));
        }
        let n = bytes.len() / record;
        self.data.reserve(n * CIFAR_IMAGE_BYTES);
        self.labels.reserve(n);
        for rec in bytes.chunks_exact(record) {
            let label = match self.kind {
                CifarKind::Cifar10 | CifarKind::Cifar100 { coarse: true } => rec[0],
                CifarKind::Cifar100 { coarse: false } => rec[1],
            };
            let label = self.check_label(path, i64::from(label), self.kind.num_classes())?;
            self.labels.push(label);
            self.data.extend_from_slice(&rec[header..]);
        }
        Ok(())
    }

    fn load_pickle(&mut self, path: &Path) -> Result<(), DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let root = pickle::load(&bytes).map_err(|m| DataError::format(path, m))?;
        let data = pickle::dict_get(&root, "data")
            .ok_or_else(|| DataError::format(path, "no 'data' entry"))?;
        let array = data
            .as_u8_matrix()
            .map_err(|m| DataError::format(path, format!("'data': {m}")))?;
        let (rows, cols, pixels) = array;
        if cols != CIFAR_IMAGE_BYTES {
            return Err(DataError::format(
                path,
                format!("'data' has {cols} columns, expected {CIFAR_IMAGE_BYTES}"),
            ));
        }
        let key = match self.kind {
            CifarKind::Cifar10 => "labels",
            CifarKind::Cifar100 { coarse: false } => "fine_labels",
            CifarKind::Cifar100 { coarse: true } => "coarse_labels",
        };
        let labels = pickle::dict_get(&root, key)
            .ok_or_else(|| DataError::format(path, format!("no '{key}' entry")))?
            .as_int_list()
            .map_err(|m| DataError::format(path, format!("'{key}': {m}")))?;
        if labels.len() != rows {
            return Err(DataError::format(
                path,
                format!("{} labels for {rows} images", labels.len()),
            ));
        }
        for label in labels {
            let label = self.check_label(path, label, self.kind.num_classes())?;
            self.labels.push(label);
        }
        self.data.extend_from_slice(&pixels);
        Ok(())
    }
}

/// Class names from the meta file(s).
fn read_classes(
    dir: &Path,
    kind: CifarKind,
    format: CifarFormat,
) -> Result<Vec<String>, DataError> {
    let (file, key) = match (kind, format) {
        (CifarKind::Cifar10, CifarFormat::Python) => ("batches.meta", "label_names"),
        (CifarKind::Cifar10, CifarFormat::Binary) => ("batches.meta.txt", ""),
        (CifarKind::Cifar100 { coarse }, CifarFormat::Python) => (
            "meta",
            if coarse {
                "coarse_label_names"
            } else {
                "fine_label_names"
            },
        ),
        (CifarKind::Cifar100 { coarse }, CifarFormat::Binary) => (
            if coarse {
                "coarse_label_names.txt"
            } else {
                "fine_label_names.txt"
            },
            "",
        ),
    };
    let path = dir.join(file);
    if !path.is_file() {
        return Err(DataError::Missing {
            path,
            what: format!(
                "{} meta file with the class names (re-download with Cifar::download)",
                kind.name()
            ),
        });
    }
    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
    let names = match format {
        CifarFormat::Binary => String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        CifarFormat::Python => {
            let root = pickle::load(&bytes).map_err(|m| DataError::format(&path, m))?;
            pickle::dict_get(&root, key)
                .ok_or_else(|| DataError::format(&path, format!("no '{key}' entry")))?
                .as_str_list()
                .map_err(|m| DataError::format(&path, format!("'{key}': {m}")))?
        }
    };
    if names.len() != kind.num_classes() {
        return Err(DataError::format(
            &path,
            format!(
                "{} class names, expected {}",
                names.len(),
                kind.num_classes()
            ),
        ));
    }
    Ok(names)
}

/// Converts 3,072 planar bytes (R, G, B planes of 32x32) into a 32x32x3 HWC [`Image`].
pub fn planar_to_image(planar: &[u8]) -> Option<Image> {
    if planar.len() != CIFAR_IMAGE_BYTES {
        return None;
    }
    let (r, rest) = planar.split_at(1024);
    let (g, b) = rest.split_at(1024);
    let mut data = Vec::with_capacity(CIFAR_IMAGE_BYTES);
    for p in 0..1024 {
        data.extend_from_slice(&[r[p], g[p], b[p]]);
    }
    Some(Image {
        height: 32,
        width: 32,
        channels: 3,
        data,
    })
}

/// Converts a 32x32 RGB HWC image into 3,072 planar bytes (R, G, B planes), the CIFAR layout.
pub fn image_to_planar(image: &Image) -> Option<Vec<u8>> {
    if image.height != 32 || image.width != 32 || image.channels != 3 {
        return None;
    }
    if image.data.len() != CIFAR_IMAGE_BYTES {
        return None;
    }
    let mut out = vec![0u8; CIFAR_IMAGE_BYTES];
    for (p, px) in image.data.chunks_exact(3).enumerate() {
        out[p] = px[0];
        out[1024 + p] = px[1];
        out[2048 + p] = px[2];
    }
    Some(out)
}

impl std::fmt::Debug for Cifar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cifar")
            .field("kind", &self.kind)
            .field("format", &self.format)
            .field("train", &self.train)
            .field("dir", &self.dir)
            .field("images", &self.labels.len())
            .finish_non_exhaustive()
    }
}

impl Dataset for Cifar {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let (Some(planar), Some(&label)) = (self.planar(index), self.labels.get(index)) else {
            return Err(DataError::Invalid(format!(
                "index {index} is outside the {} images of {}",
                self.labels.len(),
                self.dir.display()
            )));
        };
        let image = planar_to_image(planar).ok_or_else(|| {
            DataError::Invalid(format!(
                "image {index} of {} is incomplete",
                self.dir.display()
            ))
        })?;
        Ok(Sample {
            image,
            target: Target::Class(label),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        let pos = self.files.partition_point(|(_, start)| *start <= index);
        match pos.checked_sub(1).and_then(|i| self.files.get(i)) {
            Some((path, start)) => format!("{}[{}]", path.display(), index - start),
            None => format!("{}[{index}]", self.dir.display()),
        }
    }
}

/// A restricted unpickler: the opcodes of protocols 0-5 that plain data needs, and only the NumPy
/// and codec globals that pickled uint8 arrays use. Nothing is executed.
mod pickle {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    /// The callables the files may name.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Global {
        /// `numpy.core.multiarray._reconstruct`
        Reconstruct,
        /// `numpy.ndarray`
        NdArray,
        /// `numpy.dtype`
        Dtype,
        /// `_codecs.encode` (Python 3 protocol <= 2 bytes)
        CodecsEncode,
        /// `numpy.core.numeric._frombuffer` (protocol 5)
        FromBuffer,
        /// `builtins.bytearray`
        ByteArray,
    }

    /// A NumPy dtype: kind (`u`, `i`, `b`, `f`), item size, byte order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Dtype {
        kind: u8,
        size: usize,
        big_endian: bool,
    }

    /// A NumPy array (C or Fortran order) with its raw bytes.
    #[derive(Debug)]
    pub(super) struct Array {
        shape: Vec<usize>,
        dtype: Dtype,
        fortran: bool,
        data: Rc<Vec<u8>>,
    }

    /// A Python value.
    #[derive(Clone, Debug)]
    pub(super) enum Value {
        None,
        Bool(bool),
        Int(i64),
        Bytes(Rc<Vec<u8>>),
        Str(Rc<str>),
        Tuple(Rc<Vec<Value>>),
        List(Rc<RefCell<Vec<Value>>>),
        Dict(Rc<RefCell<Vec<(Value, Value)>>>),
        Global(Global),
        Dtype(Dtype),
        /// `_reconstruct(ndarray, ...)` before its BUILD.
        ArrayStub,
        Array(Rc<Array>),
    }

    struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or_else(|| format!("pickle truncated at byte {}", self.pos))?;
            let s = &self.buf[self.pos..end];
            self.pos = end;
            Ok(s)
        }
        fn u8(&mut self) -> Result<u8, String> {
            Ok(self.take(1)?[0])
        }
        fn le(&mut self, n: usize) -> Result<u64, String> {
            Ok(self
                .take(n)?
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }
        fn len(&mut self, n: usize) -> Result<usize, String> {
            let v = self.le(n)?;
            usize::try_from(v).map_err(|_| format!("length {v} too large"))
        }
        fn line_bytes(&mut self) -> Result<&'a [u8], String> {
            let rest = &self.buf[self.pos..];
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(|| format!("pickle truncated at byte {}", self.pos))?;
            self.pos += end + 1;
            Ok(&rest[..end])
        }
        fn line(&mut self) -> Result<&'a str, String> {
            let rest = &self.buf[self.pos..];
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(|| format!("pickle truncated at byte {}", self.pos))?;
            self.pos += end + 1;
            std::str::from_utf8(&rest[..end])
                .map_err(|_| format!("non-UTF-8 text argument at byte {}", self.pos))
        }
    }

    /// The bytes of a Python 2 `repr()` of a byte string (protocol 0 `STRING`): quoted with `'`
    /// or `"`, escapes `\\`, `\'`, `\"`, `\t`, `\n`, `\r`, `\xhh`.
    fn unquote_py2(line: &[u8]) -> Option<Vec<u8>> {
        let q = *line.first()?;
        if !(q == b'\'' || q == b'"') || line.len() < 2 || line[line.len() - 1] != q {
            return None;
        }
        let body = &line[1..line.len() - 1];
        let mut out = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            let c = body[i];
            i += 1;
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let e = *body.get(i)?;
            i += 1;
            match e {
                b'\\' | b'\'' | b'"' => out.push(e),
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'x' => {
                    let hex = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                _ => return None,
            }
        }
        Some(out)
    }

    fn resolve(module: &str, name: &str) -> Result<Global, String> {
        Ok(match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Global::Reconstruct
            }
            ("numpy", "ndarray") => Global::NdArray,
            ("numpy", "dtype") => Global::Dtype,
            ("_codecs", "encode") => Global::CodecsEncode,
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => Global::FromBuffer,
            ("__builtin__" | "builtins", "bytearray") => Global::ByteArray,
            _ => return Err(format!("pickle global {module}.{name} is not allowed")),
        })
    }

    fn text(v: &Value) -> Option<String> {
        match v {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(b.iter().map(|&c| char::from(c)).collect()),
            _ => None,
        }
    }

    fn usize_of(v: &Value) -> Option<usize> {
        match v {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }

    fn shape_of(v: &Value) -> Result<Vec<usize>, String> {
        match v {
            Value::Tuple(t) => t
                .iter()
                .map(|x| usize_of(x).ok_or_else(|| "array shape is not a tuple of sizes".into()))
                .collect(),
            _ => Err("array shape is not a tuple".into()),
        }
    }

    fn truthy(v: &Value) -> bool {
        match v {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            _ => false,
        }
    }

    fn parse_dtype(descr: &str) -> Result<Dtype, String> {
        let (order, rest) = match descr.as_bytes().first() {
            Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
            Some(b'>') => (true, &descr[1..]),
            _ => (false, descr),
        };
        let mut chars = rest.bytes();
        let kind = chars.next().unwrap_or(0);
        let size: usize = rest.get(1..).and_then(|s| s.parse().ok()).unwrap_or(0);
        if !matches!(kind, b'u' | b'i' | b'b' | b'f') || !matches!(size, 1 | 2 | 4 | 8) {
            return Err(format!("unsupported array dtype '{descr}'"));
        }
        Ok(Dtype {
            kind,
            size,
            big_endian: order,
        })
    }

    fn make_array(
        shape: Vec<usize>,
        dtype: Dtype,
        fortran: bool,
        data: Rc<Vec<u8>>,
    ) -> Result<Value, String> {
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|c| c.checked_mul(dtype.size))
            .ok_or("array size overflows")?;
        if count != data.len() {
            return Err(format!(
                "array of shape {shape:?} needs {count} bytes, the pickle holds {}",
                data.len()
            ));
        }
        Ok(Value::Array(Rc::new(Array {
            shape,
            dtype,
            fortran,
            data,
        })))
    }

    fn latin1(s: &str) -> Result<Vec<u8>, String> {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| "non-latin-1 character".to_string()))
            .collect()
    }

    fn reduce(func: Global, args: &[Value]) -> Result<Value, String> {
        match (func, args) {
            (Global::Reconstruct, [Value::Global(Global::NdArray), _, _]) => Ok(Value::ArrayStub),
            (Global::Dtype, [descr, ..]) => {
                let descr = text(descr).ok_or("dtype descriptor is not a string")?;
                Ok(Value::Dtype(parse_dtype(&descr)?))
            }
            (Global::CodecsEncode | Global::ByteArray, [Value::Str(s), enc]) => {
                let enc = text(enc).unwrap_or_default().to_ascii_lowercase();
                if !matches!(
                    enc.as_str(),
                    "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1"
                ) {
                    return Err(format!("unsupported string encoding '{enc}'"));
                }
                Ok(Value::Bytes(Rc::new(latin1(s)?)))
            }
            (Global::ByteArray, []) => Ok(Value::Bytes(Rc::new(Vec::new()))),
            (Global::ByteArray, [Value::Bytes(b)]) => Ok(Value::Bytes(Rc::clone(b))),
            (Global::FromBuffer, [Value::Bytes(buf), Value::Dtype(dtype), shape, order]) => {
                let fortran = text(order).is_some_and(|o| o == "F");
                make_array(shape_of(shape)?, *dtype, fortran, Rc::clone(buf))
            }
            _ => Err(format!(
                "unsupported call of {func:?} with {} arguments",
                args.len()
            )),
        }
    }

    fn build(obj: Value, state: Value) -> Result<Value, String> {
        let Value::Tuple(st) = &state else {
            return Err("BUILD state is not a tuple".into());
        };
        match obj {
            Value::ArrayStub => {
                // (version, shape, dtype, is_fortran, raw data)
                let (shape, dtype, fortran, raw) = match st.as_slice() {
                    [_, shape, dtype, fortran, raw] => (shape, dtype, fortran, raw),
                    _ => return Err("ndarray state has an unexpected layout".into()),
                };
                let Value::Dtype(dtype) = dtype else {
                    return Err("ndarray state holds no dtype".into());
                };
                let raw = match raw {
                    Value::Bytes(b) => Rc::clone(b),
                    Value::Str(s) => Rc::new(latin1(s)?),
                    _ => return Err("ndarray data is not a byte string (object array?)".into()),
                };
                make_array(shape_of(shape)?, *dtype, truthy(fortran), raw)
            }
            Value::Dtype(mut d) => {
                if let Some(order) = st.get(1).and_then(text) {
                    d.big_endian = order == ">";
                }
                Ok(Value::Dtype(d))
            }
            _ => Err("BUILD on an unsupported object".into()),
        }
    }

    /// Unpickles `buf`.
    pub(super) fn load(buf: &[u8]) -> Result<Value, String> {
        let mut r = Reader { buf, pos: 0 };
        let mut stack: Vec<Value> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: HashMap<u64, Value> = HashMap::new();
        macro_rules! pop {
            () => {
                stack
                    .pop()
                    .ok_or_else(|| format!("pickle stack underflow at byte {}", r.pos))?
            };
        }
        macro_rules! pop_mark {
            () => {{
                let m = marks
                    .pop()
                    .ok_or_else(|| format!("pickle MARK missing at byte {}", r.pos))?;
                if m > stack.len() {
                    return Err(format!("pickle stack underflow at byte {}", r.pos));
                }
                stack.split_off(m)
            }};
        }
        macro_rules! top {
            () => {
                stack
                    .last()
                    .ok_or_else(|| format!("pickle stack underflow at byte {}", r.pos))?
            };
        }
        loop {
            let at = r.pos;
            let op = r.u8()?;
            match op {
                0x80 => {
                    let proto = r.u8()?;
                    if proto > 5 {
                        return Err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    r.le(8)?;
                }
                b'.' => return stack.pop().ok_or_else(|| "empty pickle".to_string()),
                b'(' => marks.push(stack.len()),
                b'}' => stack.push(Value::Dict(Default::default())),
                b']' => stack.push(Value::List(Default::default())),
                b')' => stack.push(Value::Tuple(Rc::new(Vec::new()))),
                b'd' => {
                    let items = pop_mark!();
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    stack.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                b'l' => {
                    let items = pop_mark!();
                    stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b't' => {
                    let items = pop_mark!();
                    stack.push(Value::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if stack.len() < n {
                        return Err(format!("pickle stack underflow at byte {at}"));
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Value::Tuple(Rc::new(items)));
                }
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = pop!();
                        let k = pop!();
                        vec![k, v]
                    } else {
                        pop_mark!()
                    };
                    let Value::Dict(d) = top!() else {
                        return Err(format!("SETITEM on a non-dict at byte {at}"));
                    };
                    let mut d = d.borrow_mut();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![pop!()]
                    } else {
                        pop_mark!()
                    };
                    let Value::List(l) = top!() else {
                        return Err(format!("APPEND on a non-list at byte {at}"));
                    };
                    l.borrow_mut().extend(items);
                }
                b'q' | b'r' | 0x94 | b'p' => {
                    let key = match op {
                        b'q' => r.le(1)?,
                        b'r' => r.le(4)?,
                        0x94 => memo.len() as u64,
                        _ => r
                            .line()?
                            .trim()
                            .parse()
                            .map_err(|_| "bad PUT".to_string())?,
                    };
                    let v = top!().clone();
                    memo.insert(key, v);
                }
                b'h' | b'j' | b'g' => {
                    let key = match op {
                        b'h' => r.le(1)?,
                        b'j' => r.le(4)?,
                        _ => r
                            .line()?
                            .trim()
                            .parse()
                            .map_err(|_| "bad GET".to_string())?,
                    };
                    let v = memo
                        .get(&key)
                        .ok_or_else(|| format!("pickle memo {key} missing at byte {at}"))?;
                    stack.push(v.clone());
                }
                b'J' => stack.push(Value::Int(i64::from(r.le(4)? as u32 as i32))),
                b'K' => stack.push(Value::Int(r.le(1)? as i64)),
                b'M' => stack.push(Value::Int(r.le(2)? as i64)),
                0x8a => {
                    let n = usize::from(r.u8()?);
                    let bytes = r.take(n)?;
                    if n > 8 {
                        return Err(format!("integer of {n} bytes at byte {at}"));
                    }
                    let mut v: i64 = 0;
                    for (i, &b) in bytes.iter().enumerate() {
                        v |= i64::from(b) << (8 * i);
                    }
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    stack.push(Value::Int(v));
                }
                b'I' | b'L' => {
                    let line = r.line()?.trim().trim_end_matches('L');
                    let v = match line {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(
                            line.parse()
                                .map_err(|_| format!("bad integer '{line}' at byte {at}"))?,
                        ),
                    };
                    stack.push(v);
                }
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'U' | b'T' | b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'U' | b'C' => r.len(1)?,
                        b'T' => {
                            let n = r.le(4)? as u32 as i32;
                            usize::try_from(n).map_err(|_| format!("negative length at {at}"))?
                        }
                        b'B' => r.len(4)?,
                        _ => r.len(8)?,
                    };
                    stack.push(Value::Bytes(Rc::new(r.take(n)?.to_vec())));
                }
                b'S' => {
                    let line = r.line_bytes()?;
                    let bytes = unquote_py2(line)
                        .ok_or_else(|| format!("bad STRING argument at byte {at}"))?;
                    stack.push(Value::Bytes(Rc::new(bytes)));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => r.len(4)?,
                        0x8c => r.len(1)?,
                        _ => r.len(8)?,
                    };
                    let s = std::str::from_utf8(r.take(n)?)
                        .map_err(|_| format!("invalid UTF-8 string at byte {at}"))?;
                    stack.push(Value::Str(Rc::from(s)));
                }
                b'c' => {
                    let module = r.line()?;
                    let name = r.line()?;
                    stack.push(Value::Global(resolve(module, name)?));
                }
                0x93 => {
                    let name = pop!();
                    let module = pop!();
                    let (Some(module), Some(name)) = (text(&module), text(&name)) else {
                        return Err(format!("STACK_GLOBAL without names at byte {at}"));
                    };
                    stack.push(Value::Global(resolve(&module, &name)?));
                }
                b'R' => {
                    let args = pop!();
                    let func = pop!();
                    let (Value::Global(func), Value::Tuple(args)) = (func, args) else {
                        return Err(format!("REDUCE on a non-global at byte {at}"));
                    };
                    stack.push(reduce(func, &args)?);
                }
                b'b' => {
                    let state = pop!();
                    let obj = pop!();
                    stack.push(build(obj, state).map_err(|m| format!("{m} (byte {at})"))?);
                }
                b'0' => {
                    pop!();
                }
                b'1' => {
                    drop(pop_mark!());
                }
                b'2' => {
                    let v = top!().clone();
                    stack.push(v);
                }
                _ => return Err(format!("unsupported pickle opcode 0x{op:02x} at byte {at}")),
            }
        }
    }

    /// `d[key]` for a dict with str or byte-string keys.
    pub(super) fn dict_get(d: &Value, key: &str) -> Option<Value> {
        let Value::Dict(d) = d else { return None };
        d.borrow()
            .iter()
            .find(|(k, _)| match k {
                Value::Str(s) => &**s == key,
                Value::Bytes(b) => b.as_slice() == key.as_bytes(),
                _ => false,
            })
            .map(|(_, v)| v.clone())
    }

    impl Value {
        /// (rows, columns, bytes) of a 2-d C-order uint8 array.
        pub(super) fn as_u8_matrix(&self) -> Result<(usize, usize, Vec<u8>), String> {
            let Value::Array(a) = self else {
                return Err("not a NumPy array".into());
            };
            if a.dtype.kind != b'u' || a.dtype.size != 1 {
                return Err("not a uint8 array".into());
            }
            let [rows, cols] = a.shape[..] else {
                return Err(format!("array of shape {:?} is not 2-d", a.shape));
            };
            if a.fortran && rows > 1 && cols > 1 {
                return Err("Fortran-ordered arrays are not supported".into());
            }
            Ok((rows, cols, a.data.to_vec()))
        }

        /// A list (or 1-d integer array) of integers.
        pub(super) fn as_int_list(&self) -> Result<Vec<i64>, String> {
            match self {
                Value::List(l) => l
                    .borrow()
                    .iter()
                    .map(|v| match v {
                        Value::Int(i) => Ok(*i),
                        Value::Bool(b) => Ok(i64::from(*b)),
                        _ => Err("list item is not an integer".to_string()),
                    })
                    .collect(),
                Value::Array(a) if a.shape.len() == 1 && a.dtype.kind != b'f' => {
                    let size = a.dtype.size;
                    Ok(a.data
                        .chunks_exact(size)
                        .map(|c| {
                            let mut bytes = [0u8; 8];
                            if a.dtype.big_endian {
                                for (i, &b) in c.iter().rev().enumerate() {
                                    bytes[i] = b;
                                }
                            } else {
                                bytes[..size].copy_from_slice(c);
                            }
                            let v = i64::from_le_bytes(bytes);
                            if a.dtype.kind == b'i' && size < 8 {
                                let shift = 64 - 8 * size as u32;
                                (v << shift) >> shift
                            } else {
                                v
                            }
                        })
                        .collect())
                }
                _ => Err("not a list of integers".into()),
            }
        }

        /// A list of (byte) strings.
        pub(super) fn as_str_list(&self) -> Result<Vec<String>, String> {
            let Value::List(l) = self else {
                return Err("not a list".into());
            };
            l.borrow()
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.to_string()),
                    Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                    _ => Err("list item is not a string".to_string()),
                })
                .collect()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rejects_unknown_global() {
            let p = b"\x80\x02cos\nsystem\nq\x00.";
            let err = load(p).unwrap_err();
            assert!(err.contains("os.system"), "{err}");
        }

        #[test]
        fn truncated_and_garbage() {
            assert!(load(b"\x80\x02}q\x00(U\x04da").is_err());
            assert!(load(b"").is_err());
            assert!(load(b"\xff").is_err());
            assert!(load(b"T\xff\xff\xff\xffabc.").is_err());
            assert!(load(b"u.").is_err());
        }

        #[test]
        fn small_values() {
            // {'a': [1, -2, 300, 70000]} protocol 2, text keys via BINUNICODE, LONG1 for -2
            let p = b"\x80\x02}q\x00X\x01\x00\x00\x00a]q\x01(K\x01\x8a\x01\xfeM,\x01J\x70\x11\x01\x00es.";
            let v = load(p).unwrap();
            let l = dict_get(&v, "a").unwrap().as_int_list().unwrap();
            assert_eq!(l, vec![1, -2, 300, 70000]);
        }

        #[test]
        fn protocol0_strings() {
            // protocol 0: (dp0\nS'data'\np1\nS'a\\x00\\'b'\np2\ns.
            let p = b"(dp0\nS'data'\np1\nS'a\\x00\\'b\\n'\np2\ns.";
            let v = load(p).unwrap();
            let Some(Value::Bytes(b)) = dict_get(&v, "data") else {
                panic!("no bytes");
            };
            assert_eq!(b.as_slice(), b"a\x00'b\n");
            assert_eq!(unquote_py2(b"\"it's\""), Some(b"it's".to_vec()));
            assert_eq!(unquote_py2(b"'bad\\q'"), None);
        }

        #[test]
        fn int_array_labels() {
            let a = make_array(
                vec![2],
                parse_dtype("<i8").unwrap(),
                false,
                Rc::new(
                    [
                        5u8, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
                    ]
                    .to_vec(),
                ),
            )
            .unwrap();
            assert_eq!(a.as_int_list().unwrap(), vec![5, -1]);
        }
    }
}
