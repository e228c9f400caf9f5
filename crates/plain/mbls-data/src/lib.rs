//! Datasets of the MbLS reference in their official on-disk formats, its exact NumPy splits,
//! augmentations and a parallel, seeded loader. Plain Rust: batches are `f32` NCHW buffers that the
//! engine turns into tensors.

pub mod core;
pub mod error;
pub mod rng;
pub mod splits;
pub mod cifar;
pub mod image_folder;
pub mod idx;
pub mod download;
pub mod augment;
pub mod loader;
pub mod tiny_imagenet;
pub mod cub;
pub mod voc;
pub mod seg_augment;
pub mod newsgroups;
pub mod pipeline;

pub use crate::core::{Dataset, Image, Mask, Sample, Target, Transform};
pub use crate::error::DataError;
pub use crate::loader::{Batch, CachedDataset, Loader, LoaderOptions};
pub use crate::augment::Normalize;
pub use crate::cifar::{Cifar, CifarFormat, CifarKind};
pub use crate::download::download;
pub use crate::idx::{Mnist, MnistKind};
pub use crate::image_folder::{ImageFolder, write_cifar_binary};
pub use crate::rng::NumpyRandomState;
pub use crate::cub::Cub;
pub use crate::newsgroups::{NewsgroupsData, NewsgroupsOptions, load_newsgroups};
pub use crate::tiny_imagenet::{TinyImageNet, TinySplit};
pub use crate::voc::{Voc, VocSplit};
pub use crate::pipeline::{DataSpec, DatasetName, Pipelines, build, build_text};
