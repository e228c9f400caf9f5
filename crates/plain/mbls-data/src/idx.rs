//! MNIST and Fashion-MNIST in the IDX format (gzipped or not).
//!
//! An IDX file starts with a big-endian magic number `0x0000TTDD` (TT = element type, 0x08 for
//! unsigned bytes; DD = number of dimensions), then one big-endian `u32` per dimension, then the
//! elements. Images have magic 2051 (`[n, rows, cols]`), labels 2049 (`[n]`). Files are
//! `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`, optionally with `.gz`; compression is detected from the content.

use crate::{DataError, Dataset, Image, Sample, Target};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 2049;

/// Which of the two MNIST-format datasets (they differ only in class names and folder name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MnistKind {
    /// Handwritten digits (MNIST).
    Digits,
    /// Zalando's Fashion-MNIST.
    Fashion,
}

impl MnistKind {
    /// Class names as torchvision lists them.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            MnistKind::Digits => [
                "0 - zero",
                "1 - one",
                "2 - two",
                "3 - three",
                "4 - four",
                "5 - five",
                "6 - six",
                "7 - seven",
                "8 - eight",
                "9 - nine",
            ],
            MnistKind::Fashion => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// The dataset's name for messages (`MNIST`, `Fashion-MNIST`).
    pub fn title(self) -> &'static str {
        match self {
            MnistKind::Digits => "MNIST",
            MnistKind::Fashion => "Fashion-MNIST",
        }
    }

    fn torchvision_dir(self) -> &'static str {
        match self {
            MnistKind::Digits => "MNIST",
            MnistKind::Fashion => "FashionMNIST",
        }
    }
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes: checks the magic number (`expected_magic`), reads the
/// dimensions and checks that exactly their product of elements follows. Returns
/// `(dimensions, elements)`.
///
/// # Errors
/// [`DataError::Format`] naming `path` for a wrong magic number, a short header or a size mismatch.
pub fn parse_idx(
    bytes: &[u8],
    expected_magic: u32,
    path: &Path,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic =
        word(0).ok_or_else(|| DataError::format(path, "file too short for an IDX header"))?;
    if magic != expected_magic {
        return Err(DataError::format(
            path,
            format!("IDX magic number {magic}, expected {expected_magic}"),
        ));
    }
    let ndim = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(ndim);
    for i in 1..=ndim {
        let d = word(i).ok_or_else(|| DataError::format(path, "IDX header truncated"))?;
        dims.push(d as usize);
    }
    let header = 4 * (ndim + 1);
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::format(path, "IDX dimensions overflow"))?;
    let body = &bytes[header.min(bytes.len())..];
    if body.len() != count {
        return Err(DataError::format(
            path,
            format!(
                "IDX dimensions {dims:?} need {count} bytes of data, the file has {} (truncated?)",
                body.len()
            ),
        ));
    }
    Ok((dims, body.to_vec()))
}

/// An MNIST / Fashion-MNIST split held in memory: 1-channel 28x28 images (any size the files
/// declare), labels 0..9.
#[derive(Clone)]
pub struct Mnist {
    kind: MnistKind,
    images_path: PathBuf,
    height: usize,
    width: usize,
    pixels: Vec<u8>,
    labels: Vec<usize>,
    classes: Vec<String>,
}

impl Mnist {
    /// Opens the MNIST training (`train`) or test (`t10k`) split under `root`.
    ///
    /// The files are looked for in `root`, `root/raw` and `root/MNIST/raw` (torchvision's
    /// layout), each name plain or with `.gz`.
    ///
    /// # Errors
    /// As [`Mnist::open_kind`].
    pub fn open(root: &Path, train: bool) -> Result<Mnist, DataError> {
        Mnist::open_kind(root, train, MnistKind::Digits)
    }

    /// Opens a split of `kind` under `root` (`root`, `root/raw`, or `root/<MNIST|FashionMNIST>/raw`).
    ///
    /// # Errors
    /// [`DataError::Missing`] when a file is absent; [`DataError::Format`] for wrong magic
    /// numbers, truncated files, corrupt gzip data or image and label counts that differ;
    /// [`DataError::Label`] for labels above 9.
    pub fn open_kind(root: &Path, train: bool, kind: MnistKind) -> Result<Mnist, DataError> {
        let prefix = if train { "train" } else { "t10k" };
        let dirs = [
            root.to_path_buf(),
            root.join("raw"),
            root.join(kind.torchvision_dir()).join("raw"),
        ];
        let find = |base: &str| -> Result<PathBuf, DataError> {
            dirs.iter()
                .flat_map(|d| [d.join(base), d.join(format!("{base}.gz"))])
                .find(|p| p.is_file())
                .ok_or_else(|| DataError::Missing {
                    path: root.join(base),
                    what: format!(
                        "IDX file {base}[.gz] (looked in {}, raw/ and {}/raw/)",
                        root.display(),
                        kind.torchvision_dir()
                    ),
                })
        };
        let images_path = find(&format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find(&format!("{prefix}-labels-idx1-ubyte"))?;
        let (dims, pixels) = parse_idx(
            &read_maybe_gz(&images_path)?,
            IDX_IMAGES_MAGIC,
            &images_path,
        )?;
        let (ldims, raw_labels) = parse_idx(
            &read_maybe_gz(&labels_path)?,
            IDX_LABELS_MAGIC,
            &labels_path,
        )?;
        let (n, height, width) = (dims[0], dims[1], dims[2]);
        if ldims[0] != n {
            return Err(DataError::format(
                &labels_path,
                format!(
                    "{} labels for the {n} images of {}",
                    ldims[0],
                    images_path.display()
                ),
            ));
        }
        let mut labels = Vec::with_capacity(n);
        for &l in &raw_labels {
            if l >= 10 {
                return Err(DataError::Label {
                    path: labels_path.clone(),
                    label: l.to_string(),
                    num_classes: 10,
                });
            }
            labels.push(usize::from(l));
        }
        Ok(Mnist {
            kind,
            images_path,
            height,
            width,
            pixels,
            labels,
            classes: kind.class_names().iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Which dataset this is.
    pub fn kind(&self) -> MnistKind {
        self.kind
    }

    /// All labels, in file order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// `(height, width)` of every image, as the images file declares it.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The images file that was read (plain or `.gz`).
    pub fn images_path(&self) -> &Path {
        &self.images_path
    }
}

impl std::fmt::Debug for Mnist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mnist")
            .field("kind", &self.kind)
            .field("images_path", &self.images_path)
            .field("images", &self.labels.len())
            .field("size", &(self.height, self.width))
            .finish_non_exhaustive()
    }
}

impl Dataset for Mnist {
    fn label_of(&self, index: usize) -> Option<usize> {
        self.labels().get(index).copied()
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let size = self.height * self.width;
        let pixels = (index < self.labels.len())
            .then(|| self.pixels.get(index * size..(index + 1) * size))
            .flatten();
        let (Some(&label), Some(px)) = (self.labels.get(index), pixels) else {
            return Err(DataError::Invalid(format!(
                "index {index} is outside the {} images of {}",
                self.labels.len(),
                self.images_path.display()
            )));
        };
        Ok(Sample {
            image: Image {
                height: self.height,
                width: self.width,
                channels: 1,
                data: px.to_vec(),
            },
            target: Target::Class(label),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        format!("{}[{index}]", self.images_path.display())
    }
}
