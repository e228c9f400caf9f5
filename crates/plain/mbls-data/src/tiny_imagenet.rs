//! Tiny-ImageNet-200 in its official layout.
//!
//! ```text
//! root/wnids.txt                         200 WordNet ids, one a line
//! root/train/<wnid>/images/<wnid>_<cnt>.JPEG   cnt 0..499
//! root/val/images/val_<n>.JPEG
//! root/val/val_annotations.txt           file <TAB> wnid <TAB> box...
//! root/test/images/test_<n>.JPEG         no labels
//! ```
//!
//! As the reference (spec 5.2): the classes are the lines of `wnids.txt`, sorted, and a label is the
//! index of its wnid there. The images of a split are `sorted(glob(split/**/*.JPEG, recursive=True))`,
//! i.e. every non-hidden `*.JPEG` file below the split folder, ordered byte-wise by the full path
//! string (not component-wise). Train labels come from the file name `{wnid}_{cnt}.JPEG`, val labels
//! from `val/val_annotations.txt`. Images are decoded to RGB (grayscale JPEGs are replicated to three
//! channels, as PIL's `convert("RGB")`).
//!
//! Because the order is lexicographic, the images of one class follow the order
//! `…_0, …_1, …_10, …_100, …_101, …, …_11, …` rather than the numeric one; the reference's
//! train/validation split ([`crate::splits::per_class_split`] with 50 images per class, see
//! [`TinyImageNet::reference_split`]) shuffles the indices of each class in this order, so the same
//! order is needed to get its exact 90,000/10,000 split.
//!
//! The reference evaluates on the official `val` folder (its "test" loader); the official `test`
//! folder has no labels: [`TinySplit::Test`] lists its images, [`TinyImageNet::image`] decodes them,
//! but [`Dataset::get`] refuses them with [`DataError::Invalid`].

use crate::error::DataError;
use crate::image_folder::read_rgb;
use crate::sample::{Dataset, Image, Sample, Target};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The file with the class ids, below the root.
pub const WNIDS_FILE: &str = "wnids.txt";
/// The val annotation file, below `root/val`.
pub const VAL_ANNOTATIONS_FILE: &str = "val_annotations.txt";
/// Images per class in the official train split (file names `{wnid}_{0..499}.JPEG`).
pub const IMAGES_PER_CLASS: usize = 500;
/// Validation images per class that the reference carves from the train split.
pub const VAL_SAMPLES_PER_CLASS: usize = 50;
/// The image extension (case-sensitive, as the reference's glob on Linux).
pub const EXTENSION: &str = "JPEG";

/// One of the three folders of Tiny-ImageNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TinySplit {
    /// `train/` (100,000 labelled images; the reference splits it 90k/10k into train/validation).
    Train,
    /// `val/` (10,000 labelled images; the reference's test set).
    Val,
    /// `test/` (10,000 images without labels).
    Test,
}

impl TinySplit {
    /// The folder name (`train`, `val`, `test`).
    pub fn dir_name(self) -> &'static str {
        match self {
            TinySplit::Train => "train",
            TinySplit::Val => "val",
            TinySplit::Test => "test",
        }
    }
}

/// Tiny-ImageNet-200, one split, read from its official layout.
#[derive(Clone, Debug)]
pub struct TinyImageNet {
    split: TinySplit,
    classes: Vec<String>,
    paths: Vec<PathBuf>,
    labels: Vec<usize>,
}

impl TinyImageNet {
    /// Reads the file lists and labels of `split` below `root` (no image is decoded).
    ///
    /// Errors: a missing `wnids.txt` or split folder ([`DataError::Missing`]), a duplicate wnid, a
    /// train file name not of the form `{wnid}_{0..499}.JPEG` or a malformed annotation line (with
    /// its line number) ([`DataError::Format`]), a wnid that is not in `wnids.txt`
    /// ([`DataError::Label`]), a val image without annotation ([`DataError::Format`]).
    pub fn open(root: impl AsRef<Path>, split: TinySplit) -> Result<Self, DataError> {
        let root = root.as_ref();
        let classes = read_wnids(&root.join(WNIDS_FILE))?;
        let index: HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let split_dir = root.join(split.dir_name());
        if !split_dir.is_dir() {
            return Err(DataError::Missing {
                path: split_dir,
                what: format!("{} folder", split.dir_name()),
            });
        }
        let paths = glob_jpeg_sorted(&split_dir)?;
        let labels = match split {
            TinySplit::Train => paths
                .iter()
                .map(|p| train_label(p, &index))
                .collect::<Result<Vec<_>, _>>()?,
            TinySplit::Val => {
                let ann_path = split_dir.join(VAL_ANNOTATIONS_FILE);
                let ann = read_val_annotations(&ann_path, &index)?;
                paths
                    .iter()
                    .map(|p| {
                        let name = file_name_str(p)?;
                        ann.get(name).copied().ok_or_else(|| {
                            DataError::format(&ann_path, format!("no annotation for image {name}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            TinySplit::Test => Vec::new(),
        };
        Ok(TinyImageNet {
            split,
            classes,
            paths,
            labels,
        })
    }

    /// The split that was opened.
    pub fn split(&self) -> TinySplit {
        self.split
    }

    /// The image files, in the reference's (byte-wise sorted) order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The label of every image, in [`Self::paths`] order; empty for [`TinySplit::Test`].
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Decodes image `index` to RGB, whatever the split.
    pub fn image(&self, index: usize) -> Result<Image, DataError> {
        let path = self.paths.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "Tiny-ImageNet index {index} out of range ({} images)",
                self.paths.len()
            ))
        })?;
        // PIL's `convert("RGB")`: EXIF orientation ignored
        read_rgb(path, false)
    }

    /// The reference's train/validation split of the train folder: 50 images per class to
    /// validation, the rest to training (90,000/10,000 on the full set), with NumPy's legacy RNG
    /// seeded once with `seed` ([`crate::splits::per_class_split`]). Returns (train, validation)
    /// dataset indices. Errors unless this is the train split, or when a class has fewer than 50
    /// images.
    pub fn reference_split(&self, seed: u32) -> Result<(Vec<usize>, Vec<usize>), DataError> {
        if self.split != TinySplit::Train {
            return Err(DataError::Invalid(format!(
                "the Tiny-ImageNet train/validation split is taken from the train folder, not {}",
                self.split.dir_name()
            )));
        }
        crate::splits::per_class_split(&self.labels, VAL_SAMPLES_PER_CLASS, seed)
    }
}

impl Dataset for TinyImageNet {
    fn label_of(&self, index: usize) -> Option<usize> {
        self.labels().get(index).copied()
    }

    fn len(&self) -> usize {
        self.paths.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        if self.split == TinySplit::Test {
            return Err(DataError::Invalid(
                "the Tiny-ImageNet test folder has no labels (the reference tests on the val folder)"
                    .to_string(),
            ));
        }
        let image = self.image(index)?;
        Ok(Sample {
            image,
            target: Target::Class(self.labels[index]),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        self.paths
            .get(index)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// Reads a whole text file as UTF-8 (as Python's default `open`), naming the file on error.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, DataError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::Missing {
                path: path.to_path_buf(),
                what: what.to_string(),
            });
        }
        Err(e) => return Err(DataError::io(path, e)),
    };
    String::from_utf8(bytes).map_err(|e| DataError::format(path, format!("not UTF-8 text: {e}")))
}

/// The sorted, stripped lines of `wnids.txt` (blank lines are skipped; duplicates are an error).
fn read_wnids(path: &Path) -> Result<Vec<String>, DataError> {
    let text = read_text(path, "class list (wnids.txt)")?;
    let mut classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if classes.is_empty() {
        return Err(DataError::format(path, "no class id"));
    }
    classes.sort();
    if let Some(w) = classes.windows(2).find(|w| w[0] == w[1]) {
        return Err(DataError::format(
            path,
            format!("duplicate class id {}", w[0]),
        ));
    }
    Ok(classes)
}

/// `val_annotations.txt` → file name → label. Columns are tab-separated: 0 = file, 1 = wnid.
fn read_val_annotations(
    path: &Path,
    index: &HashMap<&str, usize>,
) -> Result<HashMap<String, usize>, DataError> {
    let text = read_text(path, "val annotation file")?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut terms = line.split('\t');
        let (Some(file), Some(wnid)) = (terms.next(), terms.next()) else {
            return Err(DataError::format(
                path,
                format!(
                    "line {}: expected `file<TAB>wnid...`, found {line:?}",
                    n + 1
                ),
            ));
        };
        if file.is_empty() {
            return Err(DataError::format(
                path,
                format!("line {}: empty file name", n + 1),
            ));
        }
        let Some(&label) = index.get(wnid) else {
            return Err(DataError::Label {
                path: path.to_path_buf(),
                label: format!("{wnid} (line {})", n + 1),
                num_classes: index.len(),
            });
        };
        // Later lines win, as the reference's dict.
        out.insert(file.to_string(), label);
    }
    Ok(out)
}

/// The label of a train image from its name `{wnid}_{cnt}.JPEG`, `cnt` in `0..500` written as `%d`.
fn train_label(path: &Path, index: &HashMap<&str, usize>) -> Result<usize, DataError> {
    let name = file_name_str(path)?;
    let bad = || {
        DataError::format(
            path,
            format!("train image name is not of the form {{wnid}}_{{0..499}}.{EXTENSION}"),
        )
    };
    let stem = name
        .strip_suffix(EXTENSION)
        .and_then(|s| s.strip_suffix('.'))
        .ok_or_else(bad)?;
    let (wnid, cnt) = stem.rsplit_once('_').ok_or_else(bad)?;
    let canonical = !cnt.is_empty()
        && cnt.bytes().all(|b| b.is_ascii_digit())
        && (cnt == "0" || !cnt.starts_with('0'));
    if !canonical || cnt.len() > 3 || cnt.parse::<usize>().map_err(|_| bad())? >= IMAGES_PER_CLASS {
        return Err(bad());
    }
    index.get(wnid).copied().ok_or_else(|| DataError::Label {
        path: path.to_path_buf(),
        label: wnid.to_string(),
        num_classes: index.len(),
    })
}

fn file_name_str(path: &Path) -> Result<&str, DataError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| DataError::format(path, "file name is not UTF-8"))
}

/// Python's `sorted(glob(dir/**/*.JPEG, recursive=True))`: all non-hidden files named `*.JPEG`
/// below `dir` (any depth, including `dir` itself), not descending into hidden folders, ordered
/// byte-wise by the full path string.
fn glob_jpeg_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut found: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| DataError::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&d, e))?;
            let name = entry.file_name();
            let name_bytes = name.as_encoded_bytes();
            if name_bytes.first() == Some(&b'.') {
                continue;
            }
            let path = entry.path();
            // Follows symbolic links, as glob does.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if name_bytes.ends_with(b".JPEG") {
                found.push((path.as_os_str().as_encoded_bytes().to_vec(), path));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, p)| p).collect())
}
