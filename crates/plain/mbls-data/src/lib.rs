//! Datasets of the MbLS reference in their official on-disk formats, its exact NumPy splits,
//! augmentations and a parallel, seeded loader. Plain Rust: batches are `f32` NCHW buffers that the
//! engine turns into tensors.
//!
//! Every item has one path, at the crate root, except the segmentation transforms, which keep
//! their module ([`seg_augment`]: they transform an image and its mask together, and some share
//! a name with the image transforms).

#![warn(missing_docs)]

mod augment;
mod cifar;
mod cub;
mod error;
mod idx;
mod image_folder;
mod jpeg;
mod loader;
mod newsgroups;
mod pipeline;
mod rng;
mod sample;
pub mod seg_augment;
mod splits;
mod tiny_imagenet;
mod voc;

pub use augment::{
    CIFAR10_MEAN, CIFAR10_STD, CenterCrop, Compose, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
    IMAGENET_MEAN, IMAGENET_STD, Identity, MNIST_MEAN, MNIST_STD, Normalize, RandomCrop,
    RandomHorizontalFlip, Resize, ResizeSize, hflip, uniform_below, uniform_f32,
};
pub use cifar::{
    CIFAR_IMAGE_BYTES, Cifar, CifarArchive, CifarFormat, CifarKind, image_to_planar,
    planar_to_image,
};
pub use cub::{ARCHIVE_FOLDER, Cub};
pub use error::DataError;
pub use idx::{IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, Mnist, MnistKind, parse_idx};
pub use image_folder::{
    IMAGE_EXTENSIONS, ImageFolder, decode_rgb, decode_rgb_oriented, has_image_extension,
    write_cifar_binary, write_cifar_binary_splits,
};
pub use loader::{
    Batch, CachedDataset, DEFAULT_CACHE_LIMIT, EpochIter, Loader, LoaderOptions, order_rng,
    sample_rng, shuffle,
};
pub use newsgroups::{
    GloVe, KERAS_FILTERS, NewsgroupsData, NewsgroupsOptions, NewsgroupsTexts, Tokenizer,
    decode_latin1, embedding_matrix, load_newsgroups, pad_sequences, read_glove, read_newsgroups,
    strip_header, text_to_word_sequence,
};
pub use pipeline::{
    DataSpec, DatasetName, MNIST_VAL_SPLIT, Pipelines, balanced_subset, build, build_text,
    is_tar_gz, mnist_val_count, open_folder_splits,
};
pub use rng::NumpyRandomState;
pub use sample::{Dataset, Image, Mask, Sample, Target, Transform};
pub use splits::{
    TrainValidTest, check_fraction, cifar_split, holdout_split, newsgroups_split, per_class_split,
};
pub use tiny_imagenet::{
    EXTENSION, IMAGES_PER_CLASS, TinyImageNet, TinySplit, VAL_ANNOTATIONS_FILE,
    VAL_SAMPLES_PER_CLASS, WNIDS_FILE,
};
pub use voc::{IGNORE_INDEX, VOC_CLASSES, Voc, VocSplit, read_mask, voc_palette};
