//! What differs between the reference's trainers (`cv`, `segment`, `nlp`): where batches come
//! from, what is measured in each phase, and which metric picks the best epoch. The loop of
//! [`crate::train`] is written against [`Task`] only.

use crate::TrainError;
use crate::meter::{ClassifyMeter, Meter};
use crate::spec::{RunSpec, TaskKind};
use mbls_data::Loader;
use mbls_data::{self, Pipelines};
use mbls_engine::batch::to_tensors;
use mbls_engine::tch::{Device, Tensor};

/// A phase of a run, as the reference names them in its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Training epochs.
    Train,
    /// Validation after each epoch.
    Val,
    /// The test split with the best (or given) checkpoint.
    Test,
    /// The test split after post-hoc temperature scaling.
    TestPt,
}

impl Phase {
    /// The reference's name (`Train`, `Val`, `Test`, `TestPT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Train => "Train",
            Phase::Val => "Val",
            Phase::Test => "Test",
            Phase::TestPt => "TestPT",
        }
    }
}

/// Inputs and targets of one batch, on the CPU.
#[derive(Debug)]
pub struct Batch {
    /// Model inputs (`N x C x H x W` images).
    pub inputs: Tensor,
    /// Targets (`N` labels, or `N x H x W` masks).
    pub targets: Tensor,
}

/// Batches of one split, epoch by epoch, in a seeded order.
pub trait BatchSource {
    /// Samples per epoch.
    fn len(&self) -> usize;
    /// True without samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Batches per epoch.
    fn num_batches(&self) -> usize;
    /// The batches of `epoch` from batch `start` on, identical to those of a whole epoch from
    /// there (resuming mid-epoch decodes nothing before `start`).
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch, TrainError>> + '_>;
}

/// A training task: its data and its measurements.
pub trait Task {
    /// Which task.
    fn kind(&self) -> TaskKind;
    /// The validation metric whose strict improvement makes a new `best` (`acc`).
    fn main_metric(&self) -> &'static str;
    /// Output classes.
    fn num_classes(&self) -> usize;
    /// The training split.
    fn train_source(&self) -> &dyn BatchSource;
    /// The validation split (model selection, temperature scaling).
    fn val_source(&self) -> &dyn BatchSource;
    /// The test split.
    fn test_source(&self) -> &dyn BatchSource;
    /// A fresh accumulator of the metrics of `phase`.
    fn meter(&self, phase: Phase) -> Result<Box<dyn Meter>, TrainError>;
    /// Lines that describe the data (format, splits, transforms).
    fn describe(&self) -> Vec<String>;
    /// Whether post-hoc temperature scaling applies (classification).
    fn temperature_scaling(&self) -> bool;
    /// The out-of-distribution test split of `task=ood` (its labels are ignored), with the
    /// dataset's description.
    fn ood_source(&self) -> Option<(&dyn BatchSource, &str)> {
        None
    }
}

/// A [`BatchSource`] over one of the data crate's loaders; single-channel (grey) images are
/// given to the model as three identical channels (torchvision's `Grayscale(3)`), since
/// every image model takes RGB input.
struct LoaderSource(Loader, bool);

impl LoaderSource {
    fn new(loader: &Loader, channels: usize) -> LoaderSource {
        LoaderSource(loader.clone(), channels == 1)
    }
}

impl BatchSource for LoaderSource {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn num_batches(&self) -> usize {
        self.0.num_batches()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch, TrainError>> + '_> {
        Box::new(self.0.epoch_from(epoch, start).map(|b| {
            let b = b?;
            let t = to_tensors(&b, Device::Cpu)?;
            let inputs = if self.1 {
                t.images.f_repeat([1, 3, 1, 1])?
            } else {
                t.images
            };
            Ok(Batch {
                inputs,
                targets: t.targets,
            })
        }))
    }
}

/// Image classification (`task=cv`): the reference's `Trainer` with its CIFAR, folder,
/// Tiny-ImageNet and CUB pipelines.
pub struct Classification {
    pipelines: Pipelines,
    train: LoaderSource,
    val: LoaderSource,
    test: LoaderSource,
    num_bins: usize,
    /// `task=ood`: the OOD dataset's test split and its format.
    ood: Option<(LoaderSource, String)>,
    /// Whether the training meter keeps the epoch's outputs (for mid-epoch checkpoints).
    keep_train_outputs: bool,
}

impl Classification {
    /// Opens the dataset of `spec` with the reference's splits and transforms, and checks
    /// that `model.num_classes` matches its classes.
    ///
    /// # Errors
    /// A missing or unreadable data root, a dataset of another task, a class-count mismatch.
    pub fn open(spec: &RunSpec) -> Result<Self, TrainError> {
        let p = mbls_data::build(&spec.data)?;
        if p.segmentation {
            return Err(TrainError::Config(format!(
                "data.name={} is a segmentation dataset: use task=segment",
                spec.data.name
            )));
        }
        if !matches!(p.normalize.channels, 1 | 3) {
            return Err(TrainError::Config(format!(
                "data.name={}: {}-channel images, but the models take 3-channel (RGB) or \
                 1-channel (grey, repeated to RGB) input",
                spec.data.name, p.normalize.channels
            )));
        }
        if p.num_classes as i64 != spec.model.num_classes {
            return Err(TrainError::Config(format!(
                "model.num_classes={} but the dataset in {} has {} classes; set \
                 model.num_classes={}",
                spec.model.num_classes,
                spec.data.root.display(),
                p.num_classes,
                p.num_classes
            )));
        }
        if p.train.is_empty() || p.val.is_empty() || p.test.is_empty() {
            return Err(TrainError::Config(format!(
                "{}: a split is empty (train {}, val {}, test {})",
                p.format,
                p.train.len(),
                p.val.len(),
                p.test.len()
            )));
        }
        let ood = match &spec.ood {
            None => None,
            Some(o) => {
                let q = mbls_data::build(o).map_err(|e| {
                    TrainError::Config(format!("the OOD dataset (ood.name={}): {e}", o.name))
                })?;
                if q.segmentation || !matches!(q.normalize.channels, 1 | 3) {
                    return Err(TrainError::Config(format!(
                        "ood.name={}: the OOD images must be RGB or grey classification \
                         images ({}-channel{})",
                        o.name,
                        q.normalize.channels,
                        if q.segmentation { ", segmentation" } else { "" }
                    )));
                }
                if q.test.is_empty() {
                    return Err(TrainError::Config(format!(
                        "ood.data_root={}: the OOD test split is empty",
                        o.root.display()
                    )));
                }
                Some((
                    LoaderSource::new(&q.test, q.normalize.channels),
                    q.format.clone(),
                ))
            }
        };
        Ok(Classification {
            ood,
            train: LoaderSource::new(&p.train, p.normalize.channels),
            val: LoaderSource::new(&p.val, p.normalize.channels),
            test: LoaderSource::new(&p.test, p.normalize.channels),
            pipelines: p,
            num_bins: spec.calibrate.num_bins,
            keep_train_outputs: spec.train.checkpoint_every > 0,
        })
    }
}

impl Task for Classification {
    fn kind(&self) -> TaskKind {
        TaskKind::Cv
    }
    fn main_metric(&self) -> &'static str {
        "acc"
    }
    fn num_classes(&self) -> usize {
        self.pipelines.num_classes
    }
    fn train_source(&self) -> &dyn BatchSource {
        &self.train
    }
    fn val_source(&self) -> &dyn BatchSource {
        &self.val
    }
    fn test_source(&self) -> &dyn BatchSource {
        &self.test
    }
    fn meter(&self, phase: Phase) -> Result<Box<dyn Meter>, TrainError> {
        Ok(Box::new(ClassifyMeter::new(
            self.pipelines.num_classes,
            self.num_bins,
            phase,
            phase != Phase::Train || self.keep_train_outputs,
        )?))
    }
    fn describe(&self) -> Vec<String> {
        let p = &self.pipelines;
        let mut lines = vec![
            format!("data: {}", p.format),
            format!(
                "splits: train {} ({} batches), val {}{}, test {}; {} classes",
                p.train.len(),
                p.train.num_batches(),
                p.val.len(),
                if p.val_is_test { " (= test split)" } else { "" },
                p.test.len(),
                p.num_classes
            ),
        ];
        if p.normalize.channels == 1 {
            lines.push("grey images: given to the model as 3 identical channels".into());
        }
        if !p.train_transform.is_empty() {
            lines.push(format!(
                "train transform: {}",
                p.train_transform.join(" -> ")
            ));
        }
        lines
    }
    fn temperature_scaling(&self) -> bool {
        true
    }
    fn ood_source(&self) -> Option<(&dyn BatchSource, &str)> {
        self.ood
            .as_ref()
            .map(|(s, f)| (s as &dyn BatchSource, f.as_str()))
    }
}

/// Opens the task of `spec`.
///
/// # Errors
/// As [`Classification::open`]; segmentation and text training are not built yet.
pub fn open(spec: &RunSpec) -> Result<Box<dyn Task>, TrainError> {
    match spec.task {
        // task=ood tests a classifier of `data` against the OOD dataset of `ood`.
        TaskKind::Cv | TaskKind::Ood => Ok(Box::new(Classification::open(spec)?)),
        other => Err(TrainError::Config(format!(
            "task={} training is not available yet in mbls (task=cv is)",
            other.as_str()
        ))),
    }
}
