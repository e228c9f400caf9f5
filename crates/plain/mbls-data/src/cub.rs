//! CUB-200-2011 in its official layout.
//!
//! ```text
//! root/images.txt              <image id> <relative path>        (11,788 lines)
//! root/image_class_labels.txt  <image id> <class id 1..=200>
//! root/train_test_split.txt    <image id> <1 = train, 0 = test>
//! root/classes.txt             <class id> <name, e.g. 001.Black_footed_Albatross>
//! root/images/<relative path>  the JPEG files
//! ```
//!
//! As the reference (spec 5.3): the three id files are joined on the image id, in the order of
//! `images.txt`, and filtered on the train flag (5,994 train / 5,794 test images); the label is the
//! class id minus one. Images are decoded to RGB with their EXIF orientation applied (the reference
//! reads BGR with `cv2.imread`, which rotates by EXIF, and converts).
//! The reference validates on the test split. `root` may also be the folder that contains
//! `CUB_200_2011/` (as extracted from the official archive).

use crate::error::DataError;
use crate::image_folder::read_rgb;
use crate::sample::{Dataset, Image, Sample, Target};
use crate::tiny_imagenet::read_text;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The folder name inside the official archive.
pub const ARCHIVE_FOLDER: &str = "CUB_200_2011";

/// CUB-200-2011, the train or the test split.
#[derive(Clone, Debug)]
pub struct Cub {
    root: PathBuf,
    train: bool,
    classes: Vec<String>,
    ids: Vec<u64>,
    paths: Vec<PathBuf>,
    labels: Vec<usize>,
}

impl Cub {
    /// Reads the list files below `root` and keeps the train (`train == true`) or test images.
    ///
    /// Errors: a missing list file ([`DataError::Missing`]); a malformed line, duplicate or
    /// inconsistent image ids between the files, a train flag other than 0/1, class ids of
    /// `classes.txt` not numbered `1..=n` ([`DataError::Format`], with the line number); a class
    /// id outside `1..=n` ([`DataError::Label`]).
    pub fn open(root: impl AsRef<Path>, train: bool) -> Result<Self, DataError> {
        let mut root = root.as_ref().to_path_buf();
        if !root.join("images.txt").exists()
            && root.join(ARCHIVE_FOLDER).join("images.txt").exists()
        {
            root = root.join(ARCHIVE_FOLDER);
        }
        let classes_path = root.join("classes.txt");
        let classes = read_id_lines(&classes_path, "class list (classes.txt)")?;
        for (i, (id, _, line)) in classes.iter().enumerate() {
            if *id != i as u64 + 1 {
                return Err(DataError::format(
                    &classes_path,
                    format!("line {line}: class id {id}, expected {}", i + 1),
                ));
            }
        }
        let classes: Vec<String> = classes.into_iter().map(|(_, name, _)| name).collect();
        let num_classes = classes.len();

        let images_path = root.join("images.txt");
        let images = read_id_lines(&images_path, "image list (images.txt)")?;
        let labels_path = root.join("image_class_labels.txt");
        let labels = id_map(
            &labels_path,
            read_id_lines(&labels_path, "label file (image_class_labels.txt)")?,
        )?;
        let split_path = root.join("train_test_split.txt");
        let flags = id_map(
            &split_path,
            read_id_lines(&split_path, "split file (train_test_split.txt)")?,
        )?;

        let mut seen = HashMap::with_capacity(images.len());
        let (mut ids, mut paths, mut out_labels) = (Vec::new(), Vec::new(), Vec::new());
        for (id, rel, line) in &images {
            if seen.insert(*id, *line).is_some() {
                return Err(DataError::format(
                    &images_path,
                    format!("line {line}: duplicate image id {id}"),
                ));
            }
            let (label_text, label_line) = labels.get(id).ok_or_else(|| {
                DataError::format(
                    &labels_path,
                    format!("no label for image id {id} (images.txt line {line})"),
                )
            })?;
            let label = match label_text.parse::<usize>() {
                Ok(l) if (1..=num_classes).contains(&l) => l - 1,
                _ => {
                    return Err(DataError::Label {
                        path: labels_path.clone(),
                        label: format!("{label_text} (line {label_line}, 1-based)"),
                        num_classes,
                    });
                }
            };
            let (flag, flag_line) = flags.get(id).ok_or_else(|| {
                DataError::format(
                    &split_path,
                    format!("no train/test flag for image id {id} (images.txt line {line})"),
                )
            })?;
            let is_train = match flag.as_str() {
                "1" => true,
                "0" => false,
                _ => {
                    return Err(DataError::format(
                        &split_path,
                        format!("line {flag_line}: flag {flag:?} is neither 1 nor 0"),
                    ));
                }
            };
            if is_train == train {
                ids.push(*id);
                paths.push(root.join("images").join(rel));
                out_labels.push(label);
            }
        }
        for (map, path) in [(&labels, &labels_path), (&flags, &split_path)] {
            let stray = map
                .iter()
                .filter(|(id, _)| !seen.contains_key(id))
                .min_by_key(|(_, (_, line))| *line);
            if let Some((id, (_, line))) = stray {
                return Err(DataError::format(
                    path,
                    format!("line {line}: image id {id} is not in images.txt"),
                ));
            }
        }
        Ok(Cub {
            root,
            train,
            classes,
            ids,
            paths,
            labels: out_labels,
        })
    }

    /// The folder that holds the list files (after resolving `CUB_200_2011/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True for the train split.
    pub fn is_train(&self) -> bool {
        self.train
    }

    /// The official image ids of the samples, in order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// The image files of the samples, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The 0-based labels of the samples, in order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Decodes image `index` to RGB.
    pub fn image(&self, index: usize) -> Result<Image, DataError> {
        let path = self.paths.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "CUB index {index} out of range ({} images)",
                self.paths.len()
            ))
        })?;
        read_rgb(path, true)
    }
}

impl Dataset for Cub {
    fn label_of(&self, index: usize) -> Option<usize> {
        self.labels().get(index).copied()
    }

    fn len(&self) -> usize {
        self.paths.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
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

/// Reads `<id> <value>` lines (whitespace separated, blank lines skipped): (id, value, line number).
fn read_id_lines(path: &Path, what: &str) -> Result<Vec<(u64, String, usize)>, DataError> {
    let text = read_text(path, what)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(id) = fields.next() else { continue };
        let (Some(value), None) = (fields.next(), fields.next()) else {
            return Err(DataError::format(
                path,
                format!("line {}: expected `<id> <value>`, found {line:?}", n + 1),
            ));
        };
        let id = id.parse::<u64>().map_err(|_| {
            DataError::format(path, format!("line {}: id {id:?} is not a number", n + 1))
        })?;
        out.push((id, value.to_string(), n + 1));
    }
    if out.is_empty() {
        return Err(DataError::format(path, "empty file"));
    }
    Ok(out)
}

/// id → (value, line), rejecting duplicate ids.
fn id_map(
    path: &Path,
    lines: Vec<(u64, String, usize)>,
) -> Result<HashMap<u64, (String, usize)>, DataError> {
    let mut map = HashMap::with_capacity(lines.len());
    for (id, value, line) in lines {
        if map.insert(id, (value, line)).is_some() {
            return Err(DataError::format(
                path,
                format!("line {line}: duplicate image id {id}"),
            ));
        }
    }
    Ok(map)
}
