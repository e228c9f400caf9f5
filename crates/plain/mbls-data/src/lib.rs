//! Datasets of the MbLS reference in their official on-disk formats, its exact NumPy splits,
//! augmentations and a parallel, seeded loader. Plain Rust: batches are `f32` NCHW buffers that the
//! engine turns into tensors.

#![warn(missing_docs)]

pub mod augment;
pub mod cifar;
pub mod core;
pub mod cub;
pub mod error;
pub mod idx;
pub mod image_folder;
pub mod loader;
pub mod newsgroups;
pub mod pipeline;
pub mod rng;
pub mod seg_augment;
pub mod splits;
pub mod tiny_imagenet;
pub mod voc;

pub use crate::augment::Normalize;
pub use crate::cifar::{Cifar, CifarFormat, CifarKind};
pub use crate::core::{Dataset, Image, Mask, Sample, Target, Transform};
pub use crate::cub::Cub;
pub use crate::error::DataError;
pub use crate::idx::{Mnist, MnistKind};
pub use crate::image_folder::{ImageFolder, write_cifar_binary, write_cifar_binary_splits};
pub use crate::loader::{Batch, CachedDataset, Loader, LoaderOptions};
pub use crate::newsgroups::{NewsgroupsData, NewsgroupsOptions, load_newsgroups};
pub use crate::pipeline::{DataSpec, DatasetName, Pipelines, build, build_text};
pub use crate::rng::NumpyRandomState;
pub use crate::tiny_imagenet::{TinyImageNet, TinySplit};
pub use crate::voc::{Voc, VocSplit};
