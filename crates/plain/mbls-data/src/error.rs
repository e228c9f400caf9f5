//! The one error type of the data crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading, splitting or augmenting data.
///
/// Every variant names the file (or folder) concerned, so that a user can find it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be opened or read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        error: std::io::Error,
    },
    /// A required file or folder does not exist.
    #[error("{}: missing {what}", path.display())]
    Missing {
        /// Where it was expected.
        path: PathBuf,
        /// What it is (e.g. "list file", "class folder").
        what: String,
    },
    /// A file exists but its content is not in the expected format.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{}: cannot decode image: {message}", path.display())]
    Image {
        /// The image file (or archive member).
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// A label is not in the dataset's class list.
    #[error("{}: label {label} is outside the {num_classes} classes", path.display())]
    Label {
        /// The file that holds the label.
        path: PathBuf,
        /// The label as found.
        label: String,
        /// The number of classes.
        num_classes: usize,
    },
    /// Downloading, checking or unpacking an official archive failed (the checksum, the
    /// network, or a local file: [`mbls_base::download::DownloadError`]).
    #[error(transparent)]
    Fetch(#[from] mbls_base::download::DownloadError),
    /// An invalid argument (sizes, split fractions, ...).
    #[error("{0}")]
    Invalid(String),
    /// Sample `index` of a dataset could not be loaded or transformed (raised by the loader).
    #[error("sample {index} ({file}): {message}")]
    Sample {
        /// The sample's index in its dataset.
        index: usize,
        /// Where it comes from (`Dataset::source`).
        file: String,
        /// The underlying error.
        message: String,
    },
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            error,
        }
    }

    /// A [`DataError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
