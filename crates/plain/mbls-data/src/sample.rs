//! Types shared by every dataset, transform and the loader.

use crate::DataError;
use rand_chacha::ChaCha8Rng;

/// An 8-bit image stored row by row with interleaved channels (HWC). Datasets yield RGB (3 channels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels per pixel (3 for RGB).
    pub channels: usize,
    /// `height * width * channels` bytes, HWC.
    pub data: Vec<u8>,
}

/// A per-pixel label map (segmentation), row by row; 255 is the ignore label of VOC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` labels.
    pub data: Vec<u8>,
}

/// What a sample is labelled with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One class index (classification).
    Class(usize),
    /// One class per pixel (segmentation).
    Mask(Mask),
}

/// One decoded sample before tensor conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The image.
    pub image: Image,
    /// Its label(s).
    pub target: Target,
}

impl Sample {
    /// Checks that the image buffer holds `height x width x channels` bytes (at least one
    /// channel) and that a mask target has the image's size; transforms call it first.
    pub fn check(&self) -> Result<(), DataError> {
        let im = &self.image;
        if im.channels == 0 || im.data.len() != im.height * im.width * im.channels {
            return Err(DataError::Invalid(format!(
                "image buffer holds {} bytes but {}x{}x{} needs {}",
                im.data.len(),
                im.height,
                im.width,
                im.channels,
                im.height * im.width * im.channels
            )));
        }
        if let Target::Mask(m) = &self.target
            && ((m.height, m.width) != (im.height, im.width) || m.data.len() != m.height * m.width)
        {
            return Err(DataError::Invalid(format!(
                "mask {}x{} ({} values) does not match its image {}x{}",
                m.height,
                m.width,
                m.data.len(),
                im.height,
                im.width
            )));
        }
        Ok(())
    }
}

/// A random-access image dataset. Implementations must be cheap to share between worker threads.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Decodes sample `index` (`index < len()`).
    fn get(&self, index: usize) -> Result<Sample, DataError>;
    /// Class names, in label order.
    fn classes(&self) -> &[String];
    /// Where sample `index` comes from (a file name), for error messages and skip reports.
    fn source(&self, index: usize) -> String;
    /// The class of sample `index` without decoding it, for datasets that know their labels
    /// up front (`None` otherwise: per-pixel targets, unlabelled splits).
    fn label_of(&self, index: usize) -> Option<usize> {
        let _ = index;
        None
    }
}

/// A random transformation of a sample (augmentation). All randomness comes from `rng`, which the
/// loader derives from (seed, epoch, sample index), so results do not depend on the thread count.
pub trait Transform: Send + Sync {
    /// Transforms one sample.
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError>;
}
