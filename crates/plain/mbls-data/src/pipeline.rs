//! The reference's data protocol per dataset: which split feeds training, validation and test,
//! with which transforms, normalisation, sampling order and `drop_last` (spec 5 and 6.1–6.4).
//!
//! [`build`] turns a typed [`DataSpec`] (no configuration dependency: the command line maps its
//! `data.*` keys onto it) into three [`Loader`]s:
//!
//! | dataset | train | val | test | normalisation |
//! |---|---|---|---|---|
//! | `cifar10` | 45k of the official train set ([`cifar_split`], seed), augmented, random order, `drop_last` | the other 5k, eval transform, random order | official test 10k, in order | CIFAR-10 |
//! | `cifar100` | as `cifar10`, no `drop_last` (unconfigured in the reference) | as `cifar10` | official test | CIFAR-10 constants |
//! | `folder` | `train/` split as `cifar10` | as `cifar10` | `test/` | CIFAR-10 |
//! | `tiny_imagenet` | official train minus 50 per class ([`per_class_split`]), augmented, random order | the 50 per class, eval, random order | official `val/`, in order | ImageNet |
//! | `cub` | official train, Resize→RandomCrop→flip, random order, `drop_last` | **official test** (as the reference), in order | official test | ImageNet |
//! | `voc` | `train.txt`, the albumentations train pipeline, random order, `drop_last` | `val.txt`, eval pipeline | `val.txt` | ImageNet |
//! | `mnist`, `fashion_mnist` (not in the reference) | 55k of the 60k IDX training images ([`holdout_split`], seed, 1/12 held out), random order | the other 5k, random order | `t10k` 10k, in order | the dataset's own (1 channel) |
//!
//! Transforms: CIFAR-style training is `RandomCrop(crop_size, padding=4)` → `RandomHorizontalFlip()`
//! (only with `augment`), evaluation is the identity; both then go through ToTensor → Normalize in
//! the loader. MNIST and Fashion-MNIST give 1-channel 28x28 images and train without
//! augmentation by default (`data.augment` adds `RandomCrop(crop_size, padding=4)`, no flip).
//! CUB uses `Resize(scale_size)` → `RandomCrop(crop_size)` → `HorizontalFlip()` for training and
//! `Resize(scale_size)` → `CenterCrop(crop_size)` for evaluation; VOC uses
//! [`seg_augment::voc_train`] and [`seg_augment::voc_eval`].
//!
//! The random order of the training and validation loaders (torch's `SubsetRandomSampler` /
//! `shuffle=True`) comes from the loader's own seeded scheme ([`DataSpec::loader_seed`]); only the
//! *splits* use NumPy's generator, which reproduces the reference's index lists exactly.
//!
//! 20 Newsgroups is a text dataset: [`build`] refuses it, [`build_text`] returns the reference's
//! arrays ([`load_newsgroups`]).

use crate::augment::{Compose, Identity, Normalize, RandomCrop, RandomHorizontalFlip};
use crate::cifar::{Cifar, CifarFormat, CifarKind};
use crate::idx::{Mnist, MnistKind};
use crate::image_folder::ImageFolder;
use crate::loader::{CachedDataset, Loader, LoaderOptions};
use crate::newsgroups::{NewsgroupsData, NewsgroupsOptions, load_newsgroups};
use crate::seg_augment;
use crate::splits::{check_fraction, cifar_split, holdout_split, per_class_split};
use crate::{Cub, DataError, Dataset, TinyImageNet, TinySplit, Transform, Voc, VocSplit};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The datasets the protocol knows (the reference's `data` group options plus `cifar100`, the
/// image-folder dataset `folder`, `mnist` and `fashion_mnist`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// CIFAR-10, official python or binary files (`data=cifar10`).
    Cifar10,
    /// CIFAR-100 (fine labels), official files; unconfigured in the reference.
    Cifar100,
    /// Tiny-ImageNet-200, official layout (`data=tiny_imagenet`).
    TinyImageNet,
    /// CUB-200-2011, official layout (`data=cub`).
    Cub,
    /// Pascal VOC 2012 segmentation (`data=voc`).
    Voc,
    /// An image-folder dataset with `train/` and `test/` class sub-folders (a folder or a
    /// `.tar.gz` of one), with the CIFAR-10 protocol (`data=folder`).
    Folder,
    /// MNIST handwritten digits, the official IDX files, plain or gzipped (`data=mnist`; not in
    /// the reference).
    Mnist,
    /// Zalando's Fashion-MNIST, the official IDX files, plain or gzipped (`data=fashion_mnist`;
    /// not in the reference).
    FashionMnist,
    /// 20 Newsgroups (`data=newgroups`, name `ng`), a text dataset ([`build_text`]).
    Newsgroups,
}

impl DatasetName {
    /// Every dataset, in the order of the documentation.
    pub const ALL: [DatasetName; 9] = [
        DatasetName::Cifar10,
        DatasetName::Cifar100,
        DatasetName::TinyImageNet,
        DatasetName::Cub,
        DatasetName::Voc,
        DatasetName::Folder,
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Newsgroups,
    ];

    /// The configuration's `data.name` (`cifar10`, `cifar100`, `tiny_imagenet`, `cub`, `voc`,
    /// `folder`, `mnist`, `fashion_mnist`, `ng`).
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Cifar100 => "cifar100",
            DatasetName::TinyImageNet => "tiny_imagenet",
            DatasetName::Cub => "cub",
            DatasetName::Voc => "voc",
            DatasetName::Folder => "folder",
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion_mnist",
            DatasetName::Newsgroups => "ng",
        }
    }

    /// Parses a `data.name` or a `data` group option (`ng`, `newgroups` and `newsgroups` all name
    /// 20 Newsgroups; `fashion-mnist` and `fashionmnist` are `fashion_mnist`).
    ///
    /// # Errors
    /// [`DataError::Invalid`] listing the known names.
    pub fn parse(name: &str) -> Result<Self, DataError> {
        let n = name.trim().to_ascii_lowercase();
        let found = match n.as_str() {
            "newgroups" | "newsgroups" | "20newsgroups" => Some(DatasetName::Newsgroups),
            "tiny-imagenet" | "tinyimagenet" => Some(DatasetName::TinyImageNet),
            "fashion-mnist" | "fashionmnist" => Some(DatasetName::FashionMnist),
            _ => DatasetName::ALL.into_iter().find(|d| d.as_str() == n),
        };
        found.ok_or_else(|| {
            let names: Vec<&str> = DatasetName::ALL.iter().map(|d| d.as_str()).collect();
            DataError::Invalid(format!(
                "unknown dataset '{name}'; known: {}",
                names.join(", ")
            ))
        })
    }

    /// True for the image datasets that [`build`] handles (all but 20 Newsgroups).
    pub fn is_image(self) -> bool {
        self != DatasetName::Newsgroups
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything [`build`] needs: the `data.*` settings of the reference plus the loader's own.
/// [`DataSpec::reference`] gives the reference's configuration of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    /// Which dataset.
    pub name: DatasetName,
    /// `data.data_root`: the dataset folder (for `folder` also a `.tar.gz`).
    pub root: PathBuf,
    /// Samples per batch (all three loaders, as the reference).
    pub batch_size: usize,
    /// Loader worker threads (`data.num_workers`; 0 builds batches on the calling thread).
    pub num_workers: usize,
    /// Seed of the NumPy split (`data.random_seed`, i.e. the run's `seed`).
    pub seed: u32,
    /// Seed of the loaders' epoch orders and augmentations (the project's own scheme).
    pub loader_seed: u64,
    /// `data.shuffle`: shuffle the indices before splitting (CIFAR-style), required for
    /// Tiny-ImageNet and 20 Newsgroups.
    pub shuffle: bool,
    /// `data.augment`: random crop and flip on the training set (MNIST-style: crop only, off
    /// by default).
    pub augment: bool,
    /// `data.val_split`: validation fraction of the CIFAR-style training set (0.1; MNIST-style
    /// [`MNIST_VAL_SPLIT`], see [`mnist_val_count`]).
    pub val_split: f64,
    /// `data.val_samples_per_class`: Tiny-ImageNet validation images per class (50).
    pub val_samples_per_class: usize,
    /// `data.scale_size`: CUB resize side (256).
    pub scale_size: usize,
    /// `data.crop_size`: crop side: CUB 224, CIFAR/folder 32, Tiny-ImageNet 64, MNIST-style 28
    /// (the last three with padding 4); VOC's pipeline has fixed sizes and ignores it.
    pub crop_size: usize,
    /// `data.test_split`: 20 Newsgroups test fraction (0.2).
    pub test_split: f64,
    /// Decode every image once into memory ([`CachedDataset`]); CIFAR is always in memory.
    pub cache: bool,
    /// Memory limit of the cache, per dataset split, in bytes.
    pub cache_max_bytes: usize,
    /// Batches in flight ahead of the consumer.
    pub prefetch: usize,
    /// Leave out unreadable images instead of failing the epoch.
    pub skip_corrupt: bool,
    /// `data.train_subset`: train on a seeded, class-balanced subset of this many images of the
    /// training split ([`balanced_subset`]); the validation and test splits are unchanged.
    /// Datasets whose validation set is held out of the training set only (not CUB, VOC).
    pub train_subset: Option<usize>,
}

impl DataSpec {
    /// The reference's configuration of `name` (batch size, workers, split settings, sizes) with
    /// split seed 1 (the reference's `seed: 1`), loader seed 1, no cache. For MNIST and
    /// Fashion-MNIST (not in the reference): batch 128, 4 workers, no augmentation,
    /// [`MNIST_VAL_SPLIT`], crop side 28.
    pub fn reference(name: DatasetName, root: impl Into<PathBuf>) -> Self {
        let mnist = matches!(name, DatasetName::Mnist | DatasetName::FashionMnist);
        let (batch_size, num_workers, crop_size) = match name {
            DatasetName::Cifar10 | DatasetName::Cifar100 | DatasetName::Folder => (128, 4, 32),
            DatasetName::Mnist | DatasetName::FashionMnist => (128, 4, 28),
            DatasetName::TinyImageNet => (64, 4, 64),
            DatasetName::Cub => (32, 8, 224),
            DatasetName::Voc => (8, 8, 512),
            DatasetName::Newsgroups => (128, 0, 0),
        };
        DataSpec {
            name,
            root: root.into(),
            batch_size,
            num_workers,
            seed: 1,
            loader_seed: 1,
            shuffle: true,
            augment: !mnist,
            val_split: if mnist { MNIST_VAL_SPLIT } else { 0.1 },
            val_samples_per_class: crate::tiny_imagenet::VAL_SAMPLES_PER_CLASS,
            scale_size: 256,
            crop_size,
            test_split: 0.2,
            cache: false,
            cache_max_bytes: crate::loader::DEFAULT_CACHE_LIMIT,
            prefetch: 4,
            skip_corrupt: false,
            train_subset: None,
        }
    }

    fn options(&self, shuffle: bool, drop_last: bool) -> LoaderOptions {
        LoaderOptions {
            batch_size: self.batch_size,
            shuffle,
            drop_last,
            seed: self.loader_seed,
            workers: self.num_workers,
            prefetch: self.prefetch,
            skip_corrupt: self.skip_corrupt,
        }
    }
}

/// The three loaders of a dataset and what a report needs to describe them.
#[derive(Clone, Debug)]
pub struct Pipelines {
    /// Which dataset.
    pub name: DatasetName,
    /// The on-disk format found, with its location (e.g. `CIFAR-10 binary files in DIR`).
    pub format: String,
    /// Training loader.
    pub train: Loader,
    /// Validation loader (model selection, temperature scaling).
    pub val: Loader,
    /// Test loader.
    pub test: Loader,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// `classes.len()`.
    pub num_classes: usize,
    /// Dataset indices of the training loader in split order (before the loader's shuffling).
    pub train_indices: Vec<usize>,
    /// Dataset indices of the validation loader in split order: for CIFAR, `folder`, MNIST-style
    /// and Tiny-ImageNet the (reference's) NumPy split of the training set, for CUB and VOC
    /// `0..len` of the validation (= test) split.
    pub val_indices: Vec<usize>,
    /// True when validation uses the test split (CUB, VOC).
    pub val_is_test: bool,
    /// True for per-pixel targets (VOC).
    pub segmentation: bool,
    /// The training transform, one step a line (before ToTensor → Normalize).
    pub train_transform: Vec<String>,
    /// The validation/test transform, one step a line (before ToTensor → Normalize).
    pub eval_transform: Vec<String>,
    /// The normalisation of all three loaders.
    pub normalize: Normalize,
}

fn cifar_train_transform(spec: &DataSpec) -> (Arc<dyn Transform>, Vec<String>) {
    if spec.augment {
        (
            Arc::new(Compose::new(vec![
                Box::new(RandomCrop {
                    size: spec.crop_size,
                    padding: 4,
                }),
                Box::new(RandomHorizontalFlip { p: 0.5 }),
            ])),
            vec![
                format!("RandomCrop({}, padding=4)", spec.crop_size),
                "RandomHorizontalFlip(p=0.5)".to_string(),
            ],
        )
    } else {
        (Arc::new(Identity), Vec::new())
    }
}

fn cached(ds: Arc<dyn Dataset>, spec: &DataSpec) -> Result<Arc<dyn Dataset>, DataError> {
    if spec.cache {
        Ok(Arc::new(CachedDataset::with_max_bytes(
            ds,
            spec.cache_max_bytes,
        )?))
    } else {
        Ok(ds)
    }
}

fn check_spec(spec: &DataSpec) -> Result<(), DataError> {
    if spec.batch_size == 0 {
        return Err(DataError::Invalid("batch_size must be positive".into()));
    }
    if !spec.root.exists() {
        return Err(DataError::Missing {
            path: spec.root.clone(),
            what: format!("data root of dataset '{}'", spec.name),
        });
    }
    Ok(())
}

/// Builds the train, validation and test loaders of `spec.name` as the reference does (see the
/// module documentation for the table).
///
/// # Errors
/// [`DataError::Missing`] when `spec.root` does not exist or the dataset's files are not there
/// (naming what was expected); format and decoding errors of the dataset readers (for MNIST:
/// [`DataError::Format`] naming the file for a wrong magic number, a truncated file or image
/// and label counts that differ);
/// [`DataError::Invalid`] for 20 Newsgroups (use [`build_text`]), a zero batch size, a bad split
/// fraction, Tiny-ImageNet with `shuffle == false` (the reference then builds empty loaders), or a
/// `folder` root that is neither a folder with `train/` and `test/` nor a `.tar.gz`.
pub fn build(spec: &DataSpec) -> Result<Pipelines, DataError> {
    check_spec(spec)?;
    match spec.name {
        DatasetName::Cifar10 => build_cifar(spec, CifarKind::Cifar10),
        DatasetName::Cifar100 => build_cifar(spec, CifarKind::Cifar100 { coarse: false }),
        DatasetName::Folder => build_folder(spec),
        DatasetName::Mnist => build_mnist(spec, MnistKind::Digits),
        DatasetName::FashionMnist => build_mnist(spec, MnistKind::Fashion),
        DatasetName::TinyImageNet => build_tiny(spec),
        DatasetName::Cub => build_cub(spec),
        DatasetName::Voc => build_voc(spec),
        DatasetName::Newsgroups => Err(DataError::Invalid(
            "20 Newsgroups is a text dataset without image loaders; use build_text".into(),
        )),
    }
}

/// The CIFAR-10 protocol on any train/test pair (CIFAR-10, CIFAR-100, image folders).
fn cifar_protocol(
    spec: &DataSpec,
    name: DatasetName,
    format: String,
    train_set: Arc<dyn Dataset>,
    test_set: Arc<dyn Dataset>,
    drop_last: bool,
) -> Result<Pipelines, DataError> {
    let split = cifar_split(
        train_set.len(),
        spec.val_split,
        spec.shuffle.then_some(spec.seed),
    )?;
    if test_set.classes() != train_set.classes() {
        return Err(DataError::Invalid(format!(
            "the training classes ({}) differ from the test classes ({})",
            train_set.classes().join(", "),
            test_set.classes().join(", ")
        )));
    }
    let held = HeldOut {
        name,
        format,
        train_set,
        test_set,
        split,
        normalize: Normalize::CIFAR10,
        drop_last,
        train_transform: cifar_train_transform(spec),
    };
    held_out(spec, held)
}

/// Stream of the subset's random choices (the split seed's own stream for this purpose).
const SUBSET_STREAM: u64 = 0x7375_6273_6574; // "subset"

/// A seeded, class-balanced subset of `n` of the training indices `indices`: each class's
/// indices are shuffled (ChaCha8 from `seed`), then taken one class at a time in label order,
/// round after round, until `n` are taken (a class with too few images is used up and the
/// others make up for it). Returned in the order of `indices`. The same seed and split give
/// the same subset.
///
/// # Errors
/// [`DataError::Invalid`] when `n` is 0 or more than `indices.len()`, or when the dataset does
/// not know its labels without decoding ([`Dataset::label_of`]).
pub fn balanced_subset(
    dataset: &dyn Dataset,
    indices: &[usize],
    n: usize,
    seed: u32,
) -> Result<Vec<usize>, DataError> {
    use rand_core::SeedableRng;
    if n == 0 || n > indices.len() {
        return Err(DataError::Invalid(format!(
            "data.train_subset={n} must be between 1 and the {} images of the training split",
            indices.len()
        )));
    }
    let classes = dataset.classes().len().max(1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (pos, &i) in indices.iter().enumerate() {
        let label = dataset.label_of(i).ok_or_else(|| {
            DataError::Invalid(
                "data.train_subset needs a dataset whose labels are known without decoding \
                 (CIFAR, image folders, MNIST-style, Tiny-ImageNet)"
                    .into(),
            )
        })?;
        let slot = by_class.get_mut(label).ok_or_else(|| {
            DataError::Invalid(format!(
                "label {label} of sample {i} is outside the class list"
            ))
        })?;
        slot.push(pos);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(seed));
    rng.set_stream(SUBSET_STREAM);
    for members in &mut by_class {
        // Fisher-Yates with unbiased draws
        for k in (1..members.len()).rev() {
            let j = crate::uniform_below(&mut rng, k + 1);
            members.swap(k, j);
        }
    }
    let mut chosen = Vec::with_capacity(n);
    let mut round = 0;
    while chosen.len() < n {
        for members in &by_class {
            if chosen.len() == n {
                break;
            }
            if let Some(&pos) = members.get(round) {
                chosen.push(pos);
            }
        }
        round += 1;
    }
    chosen.sort_unstable();
    Ok(chosen.into_iter().map(|pos| indices[pos]).collect())
}

/// A dataset whose validation samples are held out of its training set (CIFAR, image
/// folders, Tiny-ImageNet, MNIST-style), for [`held_out`].
struct HeldOut {
    name: DatasetName,
    format: String,
    train_set: Arc<dyn Dataset>,
    test_set: Arc<dyn Dataset>,
    /// Training and validation indices into `train_set`.
    split: (Vec<usize>, Vec<usize>),
    normalize: Normalize,
    drop_last: bool,
    /// The training transform and its description (the others get the identity).
    train_transform: (Arc<dyn Transform>, Vec<String>),
}

/// Shuffled train and validation loaders over the two parts of the training set (the
/// augmentation for training only), and a test loader over the test set.
fn held_out(spec: &DataSpec, h: HeldOut) -> Result<Pipelines, DataError> {
    let (mut train_idx, val_idx) = h.split;
    if let Some(n) = spec.train_subset {
        train_idx = balanced_subset(&*h.train_set, &train_idx, n, spec.seed)?;
    }
    let (train_tf, train_desc) = h.train_transform;
    let eval_tf: Arc<dyn Transform> = Arc::new(Identity);
    let normalize = h.normalize;
    let classes = h.train_set.classes().to_vec();
    let train = Loader::new(
        Arc::clone(&h.train_set),
        Some(train_idx.clone()),
        train_tf,
        normalize,
        spec.options(true, h.drop_last),
    )?;
    let val = Loader::new(
        h.train_set,
        Some(val_idx.clone()),
        Arc::clone(&eval_tf),
        normalize,
        spec.options(true, false),
    )?;
    let test = Loader::new(
        h.test_set,
        None,
        eval_tf,
        normalize,
        spec.options(false, false),
    )?;
    Ok(Pipelines {
        name: h.name,
        format: h.format,
        train,
        val,
        test,
        num_classes: classes.len(),
        classes,
        train_indices: train_idx,
        val_indices: val_idx,
        val_is_test: false,
        segmentation: false,
        train_transform: train_desc,
        eval_transform: Vec::new(),
        normalize,
    })
}

fn build_cifar(spec: &DataSpec, kind: CifarKind) -> Result<Pipelines, DataError> {
    let train = Cifar::open(&spec.root, kind, true)?;
    let test = Cifar::open(&spec.root, kind, false)?;
    let format = format!(
        "{} {} files in {}",
        match kind {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 { .. } => "CIFAR-100",
        },
        match train.format() {
            CifarFormat::Python => "python (pickle)",
            CifarFormat::Binary => "binary",
        },
        train.dir().display()
    );
    let name = match kind {
        CifarKind::Cifar10 => DatasetName::Cifar10,
        CifarKind::Cifar100 { .. } => DatasetName::Cifar100,
    };
    // CIFAR-10 drops the last partial training batch; the reference's cifar100.py does not.
    let drop_last = name == DatasetName::Cifar10;
    cifar_protocol(
        spec,
        name,
        format,
        Arc::new(train),
        Arc::new(test),
        drop_last,
    )
}

/// True when `path` names a gzip-compressed tar archive by its extension.
pub fn is_tar_gz(path: &Path) -> bool {
    let s = path.to_string_lossy().to_ascii_lowercase();
    s.ends_with(".tar.gz") || s.ends_with(".tgz")
}

/// Opens the `train` and `test` splits of an image-folder dataset: `root/{train,test}/<class>/…`,
/// or the same layout inside the `.tar.gz` archive `root`. Returns `(train, test, format)`.
///
/// # Errors
/// [`DataError::Missing`] when `root` does not exist or lacks `train/` or `test/`;
/// [`DataError::Invalid`] when `root` is a file that is not a `.tar.gz`; the errors of
/// [`ImageFolder::open`] and [`ImageFolder::from_tar_gz`].
pub fn open_folder_splits(root: &Path) -> Result<(ImageFolder, ImageFolder, String), DataError> {
    if root.is_file() {
        if !is_tar_gz(root) {
            return Err(DataError::Invalid(format!(
                "{}: expected a folder with train/ and test/ class sub-folders or a .tar.gz of \
                 them",
                root.display()
            )));
        }
        let train = ImageFolder::from_tar_gz(root, "train")?;
        let test = ImageFolder::from_tar_gz(root, "test")?;
        let format = format!("image-folder archive {} (train/, test/)", root.display());
        return Ok((train, test, format));
    }
    if !root.is_dir() {
        return Err(DataError::Missing {
            path: root.to_path_buf(),
            what: "image-folder dataset (a folder with train/ and test/, or a .tar.gz)".into(),
        });
    }
    for split in ["train", "test"] {
        if !root.join(split).is_dir() {
            return Err(DataError::Missing {
                path: root.join(split),
                what: format!("{split}/ folder of class sub-folders"),
            });
        }
    }
    let train = ImageFolder::open(&root.join("train"))?;
    let test = ImageFolder::open(&root.join("test"))?;
    let format = format!("image folders {}/{{train,test}}", root.display());
    Ok((train, test, format))
}

fn build_folder(spec: &DataSpec) -> Result<Pipelines, DataError> {
    let (train, test, format) = open_folder_splits(&spec.root)?;
    let train = cached(Arc::new(train), spec)?;
    let test = cached(Arc::new(test), spec)?;
    cifar_protocol(spec, DatasetName::Folder, format, train, test, true)
}

fn build_tiny(spec: &DataSpec) -> Result<Pipelines, DataError> {
    if !spec.shuffle {
        return Err(DataError::Invalid(
            "Tiny-ImageNet needs data.shuffle=true: with shuffle off the reference builds empty \
             train and validation lists (spec 10, item 11)"
                .into(),
        ));
    }
    let train_set = TinyImageNet::open(&spec.root, TinySplit::Train)?;
    let test_set = TinyImageNet::open(&spec.root, TinySplit::Val)?;
    let split = per_class_split(train_set.labels(), spec.val_samples_per_class, spec.seed)?;
    let held = HeldOut {
        name: DatasetName::TinyImageNet,
        format: format!("Tiny-ImageNet official layout in {}", spec.root.display()),
        train_set: cached(Arc::new(train_set), spec)?,
        test_set: cached(Arc::new(test_set), spec)?,
        split,
        normalize: Normalize::IMAGENET,
        drop_last: false,
        train_transform: cifar_train_transform(spec),
    };
    held_out(spec, held)
}

/// Validation fraction of MNIST and Fashion-MNIST (not in the reference): 1/12, i.e. 5,000 of
/// the 60,000 training images.
pub const MNIST_VAL_SPLIT: f64 = 1.0 / 12.0;

/// Validation samples held out of an MNIST-style training set of `n_train` images for
/// `val_split`: `n_train / 12` in integers for the default [`MNIST_VAL_SPLIT`] (5,000 of the
/// official 60,000, 10 of a 120-image test set; no floating-point rounding), otherwise
/// `floor(val_split * n_train)` as [`cifar_split`] computes it.
///
/// # Errors
/// [`DataError::Invalid`] when `val_split` is not within `[0, 1]`.
pub fn mnist_val_count(n_train: usize, val_split: f64) -> Result<usize, DataError> {
    check_fraction("val_split", val_split)?;
    if (val_split - MNIST_VAL_SPLIT).abs() < 1e-12 {
        Ok(n_train / 12)
    } else {
        // f64 -> usize truncates; the product is non-negative, so this is floor().
        Ok(((val_split * n_train as f64).floor() as usize).min(n_train))
    }
}

/// MNIST / Fashion-MNIST (not in the reference): the IDX training files split by
/// [`holdout_split`] ([`mnist_val_count`] validation images, NumPy shuffle with `spec.seed`
/// when `spec.shuffle`), the `t10k` files as the test set, the dataset's own normalisation on
/// the 1-channel images, no `drop_last`.
fn build_mnist(spec: &DataSpec, kind: MnistKind) -> Result<Pipelines, DataError> {
    let train = Mnist::open_kind(&spec.root, true, kind)?;
    let test = Mnist::open_kind(&spec.root, false, kind)?;
    if train.size() != test.size() {
        let ((th, tw), (eh, ew)) = (train.size(), test.size());
        return Err(DataError::Invalid(format!(
            "{}: {th}x{tw} training images but {}: {eh}x{ew} test images",
            train.images_path().display(),
            test.images_path().display()
        )));
    }
    let n_train = train.len();
    let n_val = mnist_val_count(n_train, spec.val_split)?;
    let split = holdout_split(n_train, n_val, spec.shuffle.then_some(spec.seed))?;
    let dir = train.images_path().parent().unwrap_or(spec.root.as_path());
    let format = format!("{} IDX files in {}", kind.title(), dir.display());
    let (name, normalize) = match kind {
        MnistKind::Digits => (DatasetName::Mnist, Normalize::MNIST),
        MnistKind::Fashion => (DatasetName::FashionMnist, Normalize::FASHION_MNIST),
    };
    let train_transform: (Arc<dyn Transform>, Vec<String>) = if spec.augment {
        (
            Arc::new(RandomCrop {
                size: spec.crop_size,
                padding: 4,
            }),
            vec![format!("RandomCrop({}, padding=4)", spec.crop_size)],
        )
    } else {
        (Arc::new(Identity), Vec::new())
    };
    let held = HeldOut {
        name,
        format,
        train_set: Arc::new(train),
        test_set: Arc::new(test),
        split,
        normalize,
        drop_last: false,
        train_transform,
    };
    held_out(spec, held)
}

fn build_cub(spec: &DataSpec) -> Result<Pipelines, DataError> {
    if spec.crop_size == 0 || spec.crop_size > spec.scale_size {
        return Err(DataError::Invalid(format!(
            "CUB crop_size {} must be between 1 and scale_size {}",
            spec.crop_size, spec.scale_size
        )));
    }
    let train_set = Cub::open(&spec.root, true)?;
    let test_set = Cub::open(&spec.root, false)?;
    let format = format!(
        "CUB-200-2011 official layout in {}",
        train_set.root().display()
    );
    let classes = train_set.classes().to_vec();
    let train_set = cached(Arc::new(train_set), spec)?;
    let test_set = cached(Arc::new(test_set), spec)?;
    let (s, c) = (spec.scale_size, spec.crop_size);
    let resize = seg_augment::Resize {
        height: s,
        width: s,
    };
    let mut train_steps: Vec<Box<dyn Transform>> = vec![Box::new(resize)];
    let mut train_desc = vec![format!("Resize({s}, {s})")];
    if spec.augment {
        train_steps.push(Box::new(seg_augment::RandomCrop {
            height: c,
            width: c,
        }));
        train_steps.push(Box::new(seg_augment::HorizontalFlip { p: 0.5 }));
        train_desc.push(format!("RandomCrop({c}, {c})"));
        train_desc.push("HorizontalFlip(p=0.5)".into());
    } else {
        train_steps.push(Box::new(seg_augment::CenterCrop {
            height: c,
            width: c,
        }));
        train_desc.push(format!("CenterCrop({c}, {c})"));
    }
    let eval_tf: Arc<dyn Transform> = Arc::new(Compose::new(vec![
        Box::new(resize),
        Box::new(seg_augment::CenterCrop {
            height: c,
            width: c,
        }),
    ]));
    let eval_desc = vec![format!("Resize({s}, {s})"), format!("CenterCrop({c}, {c})")];
    val_is_test(
        spec,
        ValIsTest {
            name: DatasetName::Cub,
            format,
            classes,
            train_set,
            test_set,
            train_tf: Arc::new(Compose::new(train_steps)),
            train_desc,
            eval_tf,
            eval_desc,
            segmentation: false,
        },
    )
}

/// Datasets the reference validates on their test split (CUB: the official test split, spec
/// 5.3 and 10 item 6; VOC: the `val` list for both, spec 5.4), ImageNet normalisation.
struct ValIsTest {
    name: DatasetName,
    format: String,
    classes: Vec<String>,
    train_set: Arc<dyn Dataset>,
    test_set: Arc<dyn Dataset>,
    train_tf: Arc<dyn Transform>,
    train_desc: Vec<String>,
    eval_tf: Arc<dyn Transform>,
    eval_desc: Vec<String>,
    segmentation: bool,
}

/// Train loader (shuffled, drop_last) plus validation and test loaders over the same test set.
fn val_is_test(spec: &DataSpec, p: ValIsTest) -> Result<Pipelines, DataError> {
    let normalize = Normalize::IMAGENET;
    let train = Loader::new(
        p.train_set,
        None,
        p.train_tf,
        normalize,
        spec.options(true, true),
    )?;
    let eval = |tf: Arc<dyn Transform>| {
        Loader::new(
            Arc::clone(&p.test_set),
            None,
            tf,
            normalize,
            spec.options(false, false),
        )
    };
    let val = eval(Arc::clone(&p.eval_tf))?;
    let test = eval(p.eval_tf)?;
    Ok(Pipelines {
        name: p.name,
        format: p.format,
        train_indices: (0..train.len()).collect(),
        val_indices: (0..p.test_set.len()).collect(),
        train,
        val,
        test,
        num_classes: p.classes.len(),
        classes: p.classes,
        val_is_test: true,
        segmentation: p.segmentation,
        train_transform: p.train_desc,
        eval_transform: p.eval_desc,
        normalize,
    })
}

fn build_voc(spec: &DataSpec) -> Result<Pipelines, DataError> {
    let train_set = Voc::open(&spec.root, VocSplit::Train)?;
    let val_set = Voc::open(&spec.root, VocSplit::Val)?;
    let format = format!("Pascal VOC 2012 in {}", train_set.root().display());
    let classes = train_set.classes().to_vec();
    let train_set = cached(Arc::new(train_set), spec)?;
    let val_set = cached(Arc::new(val_set), spec)?;
    let (train_tf, train_desc): (Arc<dyn Transform>, Vec<String>) = if spec.augment {
        (
            Arc::new(seg_augment::voc_train()),
            vec![
                "LongestMaxSize(640)".into(),
                "PadIfNeeded(512, 512, value=0, mask_value=255)".into(),
                "RandomCrop(512, 512)".into(),
                "HorizontalFlip(p=0.5)".into(),
                "RandomBrightnessContrast(0.3, 0.3, p=0.5)".into(),
                "HueSaturationValue(20, 30, 20, p=0.5)".into(),
            ],
        )
    } else {
        (
            Arc::new(seg_augment::voc_eval()),
            vec![
                "LongestMaxSize(480)".into(),
                "PadIfNeeded(480, 480, value=0, mask_value=255)".into(),
            ],
        )
    };
    let eval_tf: Arc<dyn Transform> = Arc::new(seg_augment::voc_eval());
    let eval_desc = vec![
        "LongestMaxSize(480)".to_string(),
        "PadIfNeeded(480, 480, value=0, mask_value=255)".to_string(),
    ];
    val_is_test(
        spec,
        ValIsTest {
            name: DatasetName::Voc,
            format,
            classes,
            train_set,
            test_set: val_set,
            train_tf,
            train_desc,
            eval_tf,
            eval_desc,
            segmentation: true,
        },
    )
}

/// The reference's 20 Newsgroups arrays (`ng_loader`): `spec.root` is the folder holding
/// `20_newsgroups/` and `glove.6B/`; the split uses `spec.seed` and `spec.test_split` (900
/// validation documents, 1000-token sequences, 2000 words, 100-d GloVe). The NLP trainer batches
/// these arrays itself (spec 6.3).
///
/// # Errors
/// [`DataError::Invalid`] when `spec.name` is not [`DatasetName::Newsgroups`] or `shuffle` is off
/// (only the shuffled split is implemented); [`DataError::Missing`] for a missing root; the errors
/// of [`load_newsgroups`].
pub fn build_text(spec: &DataSpec) -> Result<NewsgroupsData, DataError> {
    if spec.name != DatasetName::Newsgroups {
        return Err(DataError::Invalid(format!(
            "build_text reads 20 Newsgroups, not '{}' (use build)",
            spec.name
        )));
    }
    if !spec.shuffle {
        return Err(DataError::Invalid(
            "20 Newsgroups: only the reference's shuffled split (data.shuffle=true) is supported"
                .into(),
        ));
    }
    check_spec(spec)?;
    let options = NewsgroupsOptions {
        test_split: spec.test_split,
        seed: spec.seed,
        ..NewsgroupsOptions::default()
    };
    load_newsgroups(&spec.root, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DatasetName::ALL {
            assert_eq!(DatasetName::parse(d.as_str()).unwrap(), d);
        }
        assert_eq!(
            DatasetName::parse("newgroups").unwrap(),
            DatasetName::Newsgroups
        );
        assert_eq!(
            DatasetName::parse("Fashion-MNIST").unwrap(),
            DatasetName::FashionMnist
        );
        assert_eq!(DatasetName::parse("mnist").unwrap(), DatasetName::Mnist);
        let e = DatasetName::parse("svhn").unwrap_err().to_string();
        assert!(
            e.contains("unknown dataset 'svhn'") && e.contains("fashion_mnist"),
            "{e}"
        );
    }

    #[test]
    fn reference_settings() {
        let s = DataSpec::reference(DatasetName::Cifar10, "x");
        assert_eq!((s.batch_size, s.num_workers, s.crop_size), (128, 4, 32));
        assert_eq!(s.val_split, 0.1);
        let s = DataSpec::reference(DatasetName::Cub, "x");
        assert_eq!((s.batch_size, s.scale_size, s.crop_size), (32, 256, 224));
        let s = DataSpec::reference(DatasetName::TinyImageNet, "x");
        assert_eq!((s.batch_size, s.val_samples_per_class), (64, 50));
        let s = DataSpec::reference(DatasetName::FashionMnist, "x");
        assert_eq!((s.batch_size, s.crop_size, s.augment), (128, 28, false));
        assert_eq!(s.val_split, MNIST_VAL_SPLIT);
    }

    #[test]
    fn mnist_validation_counts() {
        assert_eq!(mnist_val_count(60_000, MNIST_VAL_SPLIT).unwrap(), 5_000);
        assert_eq!(mnist_val_count(120, MNIST_VAL_SPLIT).unwrap(), 10);
        assert_eq!(mnist_val_count(11, MNIST_VAL_SPLIT).unwrap(), 0);
        // every multiple of 12 gives exactly a twelfth
        for k in [1usize, 7, 4_095, 4_096, 65_535, 1 << 20] {
            assert_eq!(mnist_val_count(12 * k, 1.0 / 12.0).unwrap(), k);
        }
        assert_eq!(mnist_val_count(60_000, 0.1).unwrap(), 6_000);
        assert_eq!(mnist_val_count(60_000, 0.0).unwrap(), 0);
        assert!(mnist_val_count(60_000, 1.5).is_err());
    }

    #[test]
    fn text_and_image_are_separate() {
        let dir = std::env::temp_dir();
        let e = build(&DataSpec::reference(DatasetName::Newsgroups, &dir)).unwrap_err();
        assert!(e.to_string().contains("build_text"));
        let e = build_text(&DataSpec::reference(DatasetName::Cifar10, &dir)).unwrap_err();
        assert!(e.to_string().contains("not 'cifar10'"));
    }

    #[test]
    fn missing_root_is_named() {
        let e = build(&DataSpec::reference(
            DatasetName::Cifar10,
            "/nonexistent/mbls-data-root",
        ))
        .unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/mbls-data-root"));
    }
}
