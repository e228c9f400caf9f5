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
        let array = pickle::as_u8_matrix(data)
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
            .ok_or_else(|| DataError::format(path, format!("no '{key}' entry")))
            .and_then(|v| {
                pickle::as_int_list(v).map_err(|m| DataError::format(path, format!("'{key}': {m}")))
            })?;
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
        self.data.extend_from_slice(pixels);
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
            let names = pickle::dict_get(&root, key)
                .ok_or_else(|| DataError::format(&path, format!("no '{key}' entry")))?;
            pickle::as_str_list(names)
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
    fn label_of(&self, index: usize) -> Option<usize> {
        self.labels().get(index).copied()
    }

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

/// CIFAR's pickles, read by the one restricted unpickler (mbls-pth's) with NumPy's allow-list:
/// `numpy.core.multiarray._reconstruct` + `numpy.ndarray` + `numpy.dtype` (arrays pickled by
/// Python 2 and by Python 3 protocol <= 4), `numpy.core.numeric._frombuffer` (protocol 5),
/// `_codecs.encode` and `bytearray` (bytes pickled by Python 3 with protocol <= 2); nothing else
/// can be named. Python 2 strings are bytes, as `pickle.load(f, encoding="bytes")` reads them.
mod pickle {
    use mbls_pth::Value;
    use mbls_pth::pickle::{Callable, Python2Str, Resolution, Rules};

    fn numpy_globals(module: &str, name: &str) -> Resolution {
        Resolution::Known(match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Callable::NumpyReconstruct
            }
            ("numpy", "ndarray") => Callable::NumpyNdarray,
            ("numpy", "dtype") => Callable::NumpyDtype,
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => {
                Callable::NumpyFromBuffer
            }
            ("_codecs", "encode") => Callable::CodecsEncode,
            ("__builtin__" | "builtins", "bytearray") => Callable::ByteArray,
            _ => return Resolution::Refused,
        })
    }

    const RULES: Rules = Rules {
        globals: numpy_globals,
        python2_str: Python2Str::Bytes,
    };

    /// Unpickles a CIFAR batch or meta file.
    pub(super) fn load(buf: &[u8]) -> Result<Value, String> {
        mbls_pth::pickle::unpickle(buf, &RULES).map_err(|e| e.to_string())
    }

    /// `d[key]` for a dict with str or byte-string keys.
    pub(super) fn dict_get<'v>(d: &'v Value, key: &str) -> Option<&'v Value> {
        d.get(key)
    }

    /// (rows, columns, bytes) of a 2-d uint8 array.
    pub(super) fn as_u8_matrix(v: &Value) -> Result<(usize, usize, &[u8]), String> {
        let Value::Tensor(t) = v else {
            return Err("not a NumPy array".into());
        };
        if t.dtype != mbls_pth::DType::U8 {
            return Err(format!("not a uint8 array ({})", t.dtype.torch_name()));
        }
        let [rows, cols] = t.shape[..] else {
            return Err(format!("array of shape {:?} is not 2-d", t.shape));
        };
        Ok((rows, cols, &t.data))
    }

    /// A list (or 1-d integer array) of integers.
    pub(super) fn as_int_list(v: &Value) -> Result<Vec<i64>, String> {
        match v {
            Value::List(items) => items
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Ok(*i),
                    Value::Bool(b) => Ok(i64::from(*b)),
                    _ => Err("list item is not an integer".to_string()),
                })
                .collect(),
            Value::Tensor(t) if t.shape.len() == 1 => t
                .to_i64()
                .ok_or_else(|| format!("array of {} is not integers", t.dtype.torch_name())),
            _ => Err("not a list of integers".into()),
        }
    }

    /// A list of (byte) strings.
    pub(super) fn as_str_list(v: &Value) -> Result<Vec<String>, String> {
        let Value::List(items) = v else {
            return Err("not a list".into());
        };
        items
            .iter()
            .map(|x| match x {
                Value::Str(s) => Ok(s.clone()),
                Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                _ => Err("list item is not a string".to_string()),
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rejects_unknown_global() {
            let p = b"\x80\x02cos\nsystem\nq\x00.";
            let err = load(p).unwrap_err();
            assert!(err.contains("os.system"), "{err}");
            // allowed in checkpoints, not in CIFAR files
            let p = b"\x80\x02ccollections\nOrderedDict\n)R.";
            let err = load(p).unwrap_err();
            assert!(err.contains("collections.OrderedDict"), "{err}");
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
            let l = as_int_list(dict_get(&v, "a").unwrap()).unwrap();
            assert_eq!(l, vec![1, -2, 300, 70000]);
        }

        #[test]
        fn protocol0_strings() {
            // protocol 0: (dp0\nS'data'\np1\nS'a\\x00\\'b'\np2\ns.
            let p = b"(dp0\nS'data'\np1\nS'a\\x00\\'b\\n'\np2\ns.";
            let v = load(p).unwrap();
            assert_eq!(
                dict_get(&v, "data"),
                Some(&Value::Bytes(b"a\x00'b\n".to_vec()))
            );
            assert!(load(b"S'bad\\q'\n.").is_err());
        }

        #[test]
        fn int_array_labels() {
            // numpy.frombuffer-style protocol 5 array: _frombuffer(bytearray(...), dtype('<i8'), (2,), 'C')
            let mut p = b"\x80\x05cnumpy.core.numeric\n_frombuffer\n(".to_vec();
            p.extend(b"\x96\x10\x00\x00\x00\x00\x00\x00\x00");
            p.extend([
                5u8, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
            ]);
            p.extend(b"cnumpy\ndtype\nX\x02\x00\x00\x00i8\x89\x88\x87R");
            p.extend(b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
            p.extend(b"K\x02\x85X\x01\x00\x00\x00CtR.");
            let v = load(&p).unwrap();
            assert_eq!(as_int_list(&v).unwrap(), vec![5, -1]);
        }
    }
}
