//! Image-folder datasets (one sub-folder per class) and a writer of CIFAR binary files.
//!
//! [`ImageFolder`] follows torchvision's `ImageFolder`: the classes are the sub-folders of the root
//! sorted by name (label = position), the samples of a class are the files with an image extension
//! found by a recursive walk (folders in sorted path order, files sorted by name within a folder).
//! Images are decoded on [`Dataset::get`] (JPEG/PNG; grayscale and RGBA become RGB). The same
//! layout can be read straight from a `.tar.gz` archive ([`ImageFolder::from_tar_gz`]), which is
//! read into memory once. [`write_cifar_binary`] converts a 32x32 RGB dataset into the official
//! CIFAR-10 binary layout; [`write_cifar_binary_splits`] writes a training and a test split as one
//! complete folder, atomically (a failure leaves the destination as it was).

use crate::cifar::image_to_planar;
use crate::{DataError, Dataset, Image, Sample, Target};
use rayon::prelude::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// File extensions torchvision accepts as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// True when `name` ends with one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

/// Decodes an encoded image (format detected from its bytes) into 8-bit RGB; grayscale, gray+alpha,
/// RGBA and 16-bit images are converted (alpha dropped, like PIL's `convert("RGB")`). JPEG files
/// are decoded by libjpeg-turbo with PIL's settings, so the pixels are the ones PyTorch users get
/// from torchvision (CMYK/YCCK JPEGs, rare, by the `image` crate); other formats by `image`.
///
/// # Errors
/// [`DataError::Image`] naming `source` when the bytes are not a decodable JPEG/PNG image.
pub fn decode_rgb(bytes: &[u8], source: &Path) -> Result<Image, DataError> {
    decode_rgb_oriented(bytes, source, false)
}

/// [`decode_rgb`], applying the EXIF orientation tag when `exif_orientation` is set (as OpenCV's
/// `cv2.imread(path, IMREAD_COLOR)` does; an unreadable tag counts as none). PIL, and so
/// torchvision, ignores it.
///
/// # Errors
/// As [`decode_rgb`].
pub fn decode_rgb_oriented(
    bytes: &[u8],
    source: &Path,
    exif_orientation: bool,
) -> Result<Image, DataError> {
    use image::ImageDecoder;
    let image_error = |e: image::ImageError| DataError::Image {
        path: source.to_path_buf(),
        message: e.to_string(),
    };
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(source, e))?;
    let jpeg = if crate::jpeg::is_jpeg(bytes) {
        crate::jpeg::decode(bytes, source)?
    } else {
        None
    };
    if let Some(image) = jpeg {
        if !exif_orientation {
            return Ok(image);
        }
        // The tag, read from the header by the general decoder; the pixels stay libjpeg's.
        let orientation = reader
            .into_decoder()
            .ok()
            .and_then(|mut d| d.orientation().ok())
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        let (width, height) = (image.width as u32, image.height as u32);
        let buffer = image::RgbImage::from_raw(width, height, image.data)
            .expect("the JPEG decoder returns width x height RGB pixels");
        let mut decoded = image::DynamicImage::ImageRgb8(buffer);
        decoded.apply_orientation(orientation);
        return Ok(rgb_image(decoded));
    }
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let orientation = if exif_orientation {
        decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms)
    } else {
        image::metadata::Orientation::NoTransforms
    };
    let mut decoded = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    decoded.apply_orientation(orientation);
    Ok(rgb_image(decoded))
}

/// `decoded` as 8-bit RGB (alpha dropped, gray replicated, 16 bits shifted down).
fn rgb_image(decoded: image::DynamicImage) -> Image {
    let rgb = decoded.into_rgb8();
    let (width, height) = rgb.dimensions();
    Image {
        height: height as usize,
        width: width as usize,
        channels: 3,
        data: rgb.into_raw(),
    }
}

/// Reads and decodes the image file `path` ([`decode_rgb_oriented`]), naming it on error.
pub(crate) fn read_rgb(path: &Path, exif_orientation: bool) -> Result<Image, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb_oriented(&bytes, path, exif_orientation)
}

/// Where the encoded images live.
enum Storage {
    /// One file per sample.
    Files(Vec<PathBuf>),
    /// All encoded images of an archive in one buffer: `(member name, start, end)` per sample.
    Archive {
        path: PathBuf,
        blob: Vec<u8>,
        members: Vec<(String, usize, usize)>,
    },
}

/// A classification dataset laid out as `root/<class>/**/<image>` (torchvision `ImageFolder`).
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    labels: Vec<usize>,
    storage: Storage,
}

/// Orders `(folder, file name, payload)` like torchvision: `sorted(os.walk(...))` visits folders
/// in sorted path order, and `sorted(fnames)` sorts the files of a folder.
fn walk_sort<T>(items: &mut [(String, String, T)]) {
    items.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
}

impl ImageFolder {
    /// Indexes the folder `root` (nothing is decoded yet).
    ///
    /// # Errors
    /// [`DataError::Missing`] when `root` is not a folder, has no class sub-folders, or a class
    /// folder holds no image file (torchvision refuses that too); [`DataError::Io`] on read errors.
    pub fn open(root: &Path) -> Result<ImageFolder, DataError> {
        if !root.is_dir() {
            return Err(DataError::Missing {
                path: root.to_path_buf(),
                what: "image folder".to_string(),
            });
        }
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(root).map_err(|e| DataError::io(root, e))? {
            let entry = entry.map_err(|e| DataError::io(root, e))?;
            // is_dir() follows symbolic links, as os.scandir().is_dir() does.
            if entry.path().is_dir() {
                classes.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::Missing {
                path: root.to_path_buf(),
                what: "class sub-folders".to_string(),
            });
        }
        let mut paths = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let class_dir = root.join(class);
            let mut files: Vec<(String, String, PathBuf)> = Vec::new();
            let mut stack = vec![class_dir.clone()];
            let mut visited = 0usize;
            while let Some(dir) = stack.pop() {
                visited += 1;
                if visited > 1_000_000 {
                    return Err(DataError::format(
                        &class_dir,
                        "more than a million folders (a symbolic-link cycle?)",
                    ));
                }
                let dir_key = dir.to_string_lossy().into_owned();
                for entry in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
                    let entry = entry.map_err(|e| DataError::io(&dir, e))?;
                    let path = entry.path();
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if path.is_dir() {
                        stack.push(path);
                    } else if has_image_extension(&name) {
                        files.push((dir_key.clone(), name, path));
                    }
                }
            }
            if files.is_empty() {
                return Err(DataError::Missing {
                    path: class_dir,
                    what: format!(
                        "image file for class '{class}' (extensions {})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                });
            }
            walk_sort(&mut files);
            labels.extend(std::iter::repeat_n(label, files.len()));
            paths.extend(files.into_iter().map(|(_, _, p)| p));
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            labels,
            storage: Storage::Files(paths),
        })
    }

    /// Reads the members `<split_prefix>/<class>/**/<image>` of the gzip-compressed tar archive
    /// `path` into memory (encoded bytes only) and indexes them with the folder semantics of
    /// [`ImageFolder::open`]. A leading `./` of member names is ignored; an empty `split_prefix`
    /// means the classes are at the top of the archive.
    ///
    /// # Errors
    /// [`DataError::Missing`] when the archive is absent or holds no class folder under the
    /// prefix, or a class holds no image; [`DataError::Io`] when it cannot be read or is corrupt.
    pub fn from_tar_gz(path: &Path, split_prefix: &str) -> Result<ImageFolder, DataError> {
        if !path.is_file() {
            return Err(DataError::Missing {
                path: path.to_path_buf(),
                what: "image archive (.tar.gz)".to_string(),
            });
        }
        let prefix = split_prefix.trim_matches('/');
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
        let mut archive = tar::Archive::new(gz);
        let mut blob = Vec::new();
        // class -> (folder, file name, (start, end, member name)); BTreeMap sorts the classes.
        type Member = (String, String, (usize, usize, String));
        let mut by_class: std::collections::BTreeMap<String, Vec<Member>> = Default::default();
        for entry in archive.entries().map_err(|e| DataError::io(path, e))? {
            let mut entry = entry.map_err(|e| DataError::io(path, e))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let rel = name.trim_start_matches("./");
            let rest = if prefix.is_empty() {
                Some(rel)
            } else {
                rel.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'))
            };
            let Some(rest) = rest else { continue };
            let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
            let kind = entry.header().entry_type();
            let Some(&class) = parts.first() else {
                continue;
            };
            if kind.is_dir() {
                by_class.entry(class.to_string()).or_default();
                continue;
            }
            // Files directly under the prefix are not samples (torchvision ignores them).
            if !kind.is_file() || parts.len() < 2 {
                continue;
            }
            let files = by_class.entry(class.to_string()).or_default();
            let Some((&file_name, dirs)) = parts.split_last() else {
                continue;
            };
            if !has_image_extension(file_name) {
                continue;
            }
            let start = blob.len();
            entry
                .read_to_end(&mut blob)
                .map_err(|e| DataError::io(path, e))?;
            files.push((
                dirs.join("/"),
                file_name.to_string(),
                (start, blob.len(), name.clone()),
            ));
        }
        let classes: Vec<String> = by_class.keys().cloned().collect();
        if classes.is_empty() {
            return Err(DataError::Missing {
                path: path.to_path_buf(),
                what: format!("class folders under '{prefix}/' in the archive"),
            });
        }
        let total: usize = by_class.values().map(Vec::len).sum();
        let mut labels = Vec::with_capacity(total);
        let mut members = Vec::with_capacity(total);
        for (label, (class, mut files)) in by_class.into_iter().enumerate() {
            if files.is_empty() {
                return Err(DataError::Missing {
                    path: path.to_path_buf(),
                    what: format!("image file for class '{class}' under '{prefix}/'"),
                });
            }
            walk_sort(&mut files);
            labels.extend(std::iter::repeat_n(label, files.len()));
            members.extend(
                files
                    .into_iter()
                    .map(|(_, _, (start, end, name))| (name, start, end)),
            );
        }
        Ok(ImageFolder {
            root: path.to_path_buf(),
            classes,
            labels,
            storage: Storage::Archive {
                path: path.to_path_buf(),
                blob,
                members,
            },
        })
    }

    /// The folder (or archive) the dataset was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All labels, in dataset order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The encoded bytes of sample `index` (read from disk for folders).
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an index out of range, [`DataError::Io`] on read errors.
    pub fn encoded(&self, index: usize) -> Result<std::borrow::Cow<'_, [u8]>, DataError> {
        let out_of_range = || {
            DataError::Invalid(format!(
                "index {index} is outside the {} images of {}",
                self.labels.len(),
                self.root.display()
            ))
        };
        match &self.storage {
            Storage::Files(paths) => {
                let path = paths.get(index).ok_or_else(out_of_range)?;
                let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
                Ok(std::borrow::Cow::Owned(bytes))
            }
            Storage::Archive { blob, members, .. } => {
                let (_, start, end) = members.get(index).ok_or_else(out_of_range)?;
                let bytes = blob.get(*start..*end).ok_or_else(out_of_range)?;
                Ok(std::borrow::Cow::Borrowed(bytes))
            }
        }
    }

    /// The path used in error messages for sample `index` (`archive.tar.gz/member` for archives).
    fn source_path(&self, index: usize) -> PathBuf {
        match &self.storage {
            Storage::Files(paths) => paths
                .get(index)
                .cloned()
                .unwrap_or_else(|| self.root.clone()),
            Storage::Archive { path, members, .. } => match members.get(index) {
                Some((name, _, _)) => path.join(name),
                None => path.clone(),
            },
        }
    }
}

impl std::fmt::Debug for ImageFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolder")
            .field("root", &self.root)
            .field("classes", &self.classes.len())
            .field("images", &self.labels.len())
            .field("archive", &matches!(self.storage, Storage::Archive { .. }))
            .finish_non_exhaustive()
    }
}

impl Dataset for ImageFolder {
    fn label_of(&self, index: usize) -> Option<usize> {
        self.labels().get(index).copied()
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let bytes = self.encoded(index)?;
        let image = decode_rgb(&bytes, &self.source_path(index))?;
        Ok(Sample {
            image,
            target: Target::Class(self.labels[index]),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        self.source_path(index).display().to_string()
    }
}

/// Writes `dataset` (32x32 RGB images, class labels < 256) in the official CIFAR-10 binary layout
/// into `out_dir`: with `train` the samples are cut, in order, into five files
/// `data_batch_1.bin` .. `data_batch_5.bin` (10,000 records each for 50,000 samples; the first
/// files take one more record when the count is not a multiple of 5), otherwise one
/// `test_batch.bin`; each record is the label byte followed by the 1,024 red, 1,024 green and
/// 1,024 blue bytes. `batches.meta.txt` gets the class names, one per line ([`crate::cifar::Cifar`]
/// reads the result back when there are exactly 10 classes). Every file is written
/// to a temporary name and renamed when complete; other files of `out_dir` are kept (so that a
/// training and a test split can be written one after the other). Samples are decoded in
/// parallel. Returns the files written.
///
/// A failure can leave `out_dir` with some files new and others old: to replace a whole
/// dataset, use [`write_cifar_binary_splits`], which does it as one step.
///
/// # Errors
/// [`DataError::Invalid`] naming the sample when an image is not 32x32 RGB or its label is not a
/// class label below 256; decoding errors of the dataset; [`DataError::Io`] for write errors.
pub fn write_cifar_binary(
    dataset: &dyn Dataset,
    out_dir: &Path,
    train: bool,
) -> Result<Vec<PathBuf>, DataError> {
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    write_cifar_files(dataset, out_dir, train)
}

/// Writes a training and a test split as one complete CIFAR-10 binary folder `out_dir`
/// (`data_batch_1.bin` .. `data_batch_5.bin` from `train`, `test_batch.bin` from `test`,
/// `batches.meta.txt` with the class names; the files of [`write_cifar_binary`]), atomically:
/// the files are written into a temporary folder beside `out_dir`, which takes the place of
/// `out_dir` only once every file is complete. A failure (an undecodable or truncated source,
/// a wrong image size, a full disk) leaves `out_dir` exactly as it was: absent, or with its
/// previous content, never a mix of old and new batches. On success the previous content of
/// `out_dir` is replaced as a whole (files this format does not name are not kept). Returns the
/// files, sorted by name.
///
/// # Errors
/// As [`write_cifar_binary`]; [`DataError::Io`] naming `out_dir` when it exists and is not a
/// folder or cannot be replaced.
pub fn write_cifar_binary_splits(
    train: &dyn Dataset,
    test: &dyn Dataset,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, DataError> {
    let mut names = Vec::new();
    mbls_base::fs::replace_dir_atomic(out_dir, io_error, |tmp| {
        for (dataset, is_train) in [(train, true), (test, false)] {
            for file in write_cifar_files(dataset, tmp, is_train)? {
                names.extend(file.file_name().map(|n| n.to_os_string()));
            }
        }
        Ok(())
    })?;
    names.sort();
    names.dedup();
    Ok(names.into_iter().map(|n| out_dir.join(n)).collect())
}

/// The files of [`write_cifar_binary`], written into the existing folder `out_dir`.
fn write_cifar_files(
    dataset: &dyn Dataset,
    out_dir: &Path,
    train: bool,
) -> Result<Vec<PathBuf>, DataError> {
    let n = dataset.len();
    let batches: Vec<(String, std::ops::Range<usize>)> = if train {
        let base = n / 5;
        let extra = n % 5;
        let mut start = 0;
        (0..5)
            .map(|b| {
                let len = base + usize::from(b < extra);
                let range = start..start + len;
                start += len;
                (format!("data_batch_{}.bin", b + 1), range)
            })
            .collect()
    } else {
        vec![("test_batch.bin".to_string(), 0..n)]
    };
    let mut written = Vec::new();
    for (name, range) in batches {
        let records: Vec<Vec<u8>> = range
            .into_par_iter()
            .map(|i| cifar_record(dataset, i))
            .collect::<Result<_, _>>()?;
        let path = out_dir.join(&name);
        write_atomic(&path, |w| {
            for r in &records {
                w.write_all(r)?;
            }
            Ok(())
        })?;
        written.push(path);
    }
    let meta = out_dir.join("batches.meta.txt");
    write_atomic(&meta, |w| {
        for class in dataset.classes() {
            writeln!(w, "{class}")?;
        }
        writeln!(w)
    })?;
    written.push(meta);
    Ok(written)
}

/// One 3,073-byte CIFAR-10 record of sample `index`.
fn cifar_record(dataset: &dyn Dataset, index: usize) -> Result<Vec<u8>, DataError> {
    let sample = dataset.get(index)?;
    let label = match sample.target {
        Target::Class(l) => u8::try_from(l).map_err(|_| {
            DataError::Invalid(format!(
                "{}: label {l} does not fit the CIFAR binary format (one byte)",
                dataset.source(index)
            ))
        })?,
        Target::Mask(_) => {
            return Err(DataError::Invalid(format!(
                "{}: a segmentation mask cannot be written as a CIFAR label",
                dataset.source(index)
            )));
        }
    };
    let planar = image_to_planar(&sample.image).ok_or_else(|| {
        DataError::Invalid(format!(
            "{}: image is {}x{}x{}, the CIFAR binary format needs 32x32x3",
            dataset.source(index),
            sample.image.height,
            sample.image.width,
            sample.image.channels
        ))
    })?;
    let mut record = Vec::with_capacity(1 + planar.len());
    record.push(label);
    record.extend_from_slice(&planar);
    Ok(record)
}

/// Writes `path` atomically through `fill` (a temporary file beside it, synced and renamed over
/// it), so that `path` is either absent/old or complete.
fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), DataError> {
    mbls_base::fs::write_atomic(path, io_error, |w| fill(w).map_err(|e| io_error(path, e)))
}

/// [`DataError::io`] for a borrowed path (a plain function, as the atomic writers take).
fn io_error(path: &Path, error: std::io::Error) -> DataError {
    DataError::io(path, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert!(has_image_extension("a.JPG"));
        assert!(has_image_extension("b.c.png"));
        assert!(!has_image_extension("notes.txt"));
        assert!(!has_image_extension("jpg"));
    }

    #[test]
    fn walk_order_matches_python_sorted_walk() {
        let mut items = vec![
            ("r/c/b".to_string(), "1.png".to_string(), ()),
            ("r/c".to_string(), "z.png".to_string(), ()),
            ("r/c/a".to_string(), "2.png".to_string(), ()),
            ("r/c".to_string(), "a.png".to_string(), ()),
        ];
        walk_sort(&mut items);
        let order: Vec<String> = items.iter().map(|i| format!("{}/{}", i.0, i.1)).collect();
        assert_eq!(
            order,
            ["r/c/a.png", "r/c/z.png", "r/c/a/2.png", "r/c/b/1.png"]
        );
    }
}
