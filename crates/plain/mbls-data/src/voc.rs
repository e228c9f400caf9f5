//! Pascal VOC 2012 segmentation in its official layout.
//!
//! ```text
//! root/ImageSets/Segmentation/{train,val,trainval}.txt   image ids, one a line
//! root/JPEGImages/<id>.jpg                               the images
//! root/SegmentationClass/<id>.png                        palette PNGs: 0..=20 classes, 255 ignore
//! ```
//!
//! `root` is `VOCdevkit/VOC2012` (a folder holding `VOCdevkit/VOC2012` is accepted too). As the
//! reference (spec 5.4): images are decoded to RGB with their EXIF orientation applied (as
//! `cv2.imread`); masks are read as raw palette indices (as
//! `np.array(PIL.Image.open(png))` of a mode-`P` image), never converted to colours. The segmentation
//! lists hold 1,464 train and 1,449 val images (no SBD augmentation). Samples carry
//! [`Target::Mask`]; a mask pixel that is neither a class (< 21) nor the ignore label 255, or a mask
//! whose size differs from its image, is an error naming the file.

use crate::error::DataError;
use crate::image_folder::read_rgb;
use crate::sample::{Dataset, Mask, Sample, Target};
use crate::tiny_imagenet::read_text;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The 21 classes of VOC segmentation, in label order.
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// Number of classes (background included).
pub(crate) const NUM_CLASSES: usize = 21;
/// The mask value of object boundaries and "difficult" pixels, ignored by the loss and metrics.
pub const IGNORE_INDEX: u8 = 255;

/// The official VOC colour map: entry `i` is the RGB colour of palette index `i` (class `i`,
/// 255 = cream boundary colour). Bits 0, 1, 2 of `i` feed the top bits of R, G, B, then bits 3, 4, 5
/// the next ones, and so on.
pub fn voc_palette() -> [[u8; 3]; 256] {
    let mut out = [[0u8; 3]; 256];
    for (i, colour) in out.iter_mut().enumerate() {
        let mut c = i;
        for shift in (0..8).rev() {
            for (channel, value) in colour.iter_mut().enumerate() {
                *value |= (((c >> channel) & 1) as u8) << shift;
            }
            c >>= 3;
        }
    }
    out
}

/// Which list of `ImageSets/Segmentation` to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VocSplit {
    /// `train.txt` (1,464 images).
    Train,
    /// `val.txt` (1,449 images; the reference's validation and test set).
    Val,
    /// `trainval.txt` (both).
    TrainVal,
}

impl VocSplit {
    /// The list file name (`train.txt`, ...).
    pub fn list_name(self) -> &'static str {
        match self {
            VocSplit::Train => "train.txt",
            VocSplit::Val => "val.txt",
            VocSplit::TrainVal => "trainval.txt",
        }
    }
}

/// Pascal VOC 2012 segmentation, one split.
#[derive(Clone, Debug)]
pub struct Voc {
    root: PathBuf,
    split: VocSplit,
    ids: Vec<String>,
    classes: Vec<String>,
}

impl Voc {
    /// Reads the id list of `split` below `root` (no image is decoded).
    ///
    /// Errors: a missing list file or image/mask folder ([`DataError::Missing`]); an empty list
    /// ([`DataError::Format`]).
    pub fn open(root: impl AsRef<Path>, split: VocSplit) -> Result<Self, DataError> {
        let mut root = root.as_ref().to_path_buf();
        let nested = root.join("VOCdevkit").join("VOC2012");
        if !root.join("ImageSets").is_dir() && nested.join("ImageSets").is_dir() {
            root = nested;
        }
        for dir in ["JPEGImages", "SegmentationClass"] {
            let d = root.join(dir);
            if !d.is_dir() {
                return Err(DataError::Missing {
                    path: d,
                    what: format!("{dir} folder"),
                });
            }
        }
        let list = root
            .join("ImageSets")
            .join("Segmentation")
            .join(split.list_name());
        let text = read_text(&list, "segmentation list")?;
        let ids: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return Err(DataError::format(&list, "no image id"));
        }
        Ok(Voc {
            root,
            split,
            ids,
            classes: VOC_CLASSES.iter().map(|c| c.to_string()).collect(),
        })
    }

    /// The `VOC2012` folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The split that was opened.
    pub fn split(&self) -> VocSplit {
        self.split
    }

    /// The image ids, in list order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// `JPEGImages/<id>.jpg`.
    pub fn image_path(&self, index: usize) -> PathBuf {
        self.root
            .join("JPEGImages")
            .join(format!("{}.jpg", self.ids[index]))
    }

    /// `SegmentationClass/<id>.png`.
    pub fn mask_path(&self, index: usize) -> PathBuf {
        self.root
            .join("SegmentationClass")
            .join(format!("{}.png", self.ids[index]))
    }
}

impl Dataset for Voc {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        if index >= self.ids.len() {
            return Err(DataError::Invalid(format!(
                "VOC index {index} out of range ({} images)",
                self.ids.len()
            )));
        }
        let image = read_rgb(&self.image_path(index), true)?;
        let mask_path = self.mask_path(index);
        let mask = read_mask(&mask_path)?;
        if (mask.height, mask.width) != (image.height, image.width) {
            return Err(DataError::format(
                &mask_path,
                format!(
                    "mask is {}x{} but its image is {}x{} (height x width)",
                    mask.height, mask.width, image.height, image.width
                ),
            ));
        }
        if let Some(pos) = mask
            .data
            .iter()
            .position(|&v| v as usize >= NUM_CLASSES && v != IGNORE_INDEX)
        {
            return Err(DataError::format(
                &mask_path,
                format!(
                    "pixel (row {}, column {}) has label {}, neither a class (< {NUM_CLASSES}) nor {IGNORE_INDEX}",
                    pos / mask.width,
                    pos % mask.width,
                    mask.data[pos]
                ),
            ));
        }
        Ok(Sample {
            image,
            target: Target::Mask(mask),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        if index < self.ids.len() {
            self.image_path(index).display().to_string()
        } else {
            String::new()
        }
    }
}

/// Reads a label PNG as raw values: the palette indices of an indexed PNG (bit depth 1, 2, 4 or 8;
/// the palette itself is ignored), or the values of an 8-bit grayscale PNG. Other colour types are a
/// [`DataError::Format`] error (they would not be label maps).
pub fn read_mask(path: &Path) -> Result<Mask, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let bad = |e: png::DecodingError| DataError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut reader = decoder.read_info().map_err(bad)?;
    let (color, depth) = {
        let info = reader.info();
        (info.color_type, info.bit_depth)
    };
    let bits = match (color, depth) {
        (png::ColorType::Indexed, png::BitDepth::One) => 1,
        (png::ColorType::Indexed, png::BitDepth::Two) => 2,
        (png::ColorType::Indexed, png::BitDepth::Four) => 4,
        (png::ColorType::Indexed, png::BitDepth::Eight) => 8,
        (png::ColorType::Grayscale, png::BitDepth::Eight) => 8,
        _ => {
            return Err(DataError::format(
                path,
                format!(
                    "label PNG must be palette-indexed (or 8-bit grayscale), found {color:?} {depth:?}"
                ),
            ));
        }
    };
    let size = reader.output_buffer_size().ok_or_else(|| {
        DataError::format(path, "image too large for this machine's address space")
    })?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(bad)?;
    let (width, height) = (out.width as usize, out.height as usize);
    let stride = out.line_size;
    let mut data = Vec::with_capacity(width * height);
    let per_byte = 8 / bits;
    let mask = ((1u16 << bits) - 1) as u8;
    for row in buf.chunks(stride).take(height) {
        if bits == 8 {
            data.extend_from_slice(&row[..width]);
        } else {
            for x in 0..width {
                let byte = row[x / per_byte];
                let shift = 8 - bits * (x % per_byte + 1);
                data.push((byte >> shift) & mask);
            }
        }
    }
    if data.len() != width * height {
        return Err(DataError::format(path, "truncated image data"));
    }
    Ok(Mask {
        height,
        width,
        data,
    })
}
