//! The resolved configuration as typed specs: the one place where a composed
//! [`Config`] becomes the settings of every subcommand (`mbls train`, `mbls test`,
//! `mbls loss`, `mbls model`, `mbls data`).
//!
//! Every section is a serde struct that rejects unknown keys; no key has a default in Rust:
//! the built-in YAML files (`crates/plain/mbls-config/configs/`) are the only place where
//! defaults live, so a key missing from the tree is an error naming it. A `+new.key=...`
//! that no section knows is refused with its dotted path.
//!
//! | section | spec |
//! |---|---|
//! | `task`, `device`, `seed`, `log_period` | [`RunSpec`] fields |
//! | `data` | [`mbls_data::DataSpec`] ([`data_spec`]) |
//! | `model` | [`ModelSpec`] ([`model_spec`]) |
//! | `loss` | [`mbls_engine::losses::LossSpec`] ([`loss_spec`]) |
//! | `optim` | [`OptimSpec`] |
//! | `scheduler` | [`SchedulerSpec`] |
//! | `train`, `calibrate`, `test`, `wandb` | [`TrainSpec`], [`CalibrateSpec`], [`TestSpec`], [`WandbSpec`] |
//! | `ood` | [`RunSpec::ood`] (`task=ood`) |

use crate::TrainError;
use mbls_config::{Config, Value};
use mbls_data::{DataSpec, DatasetName};
use mbls_engine::losses::LossSpec;
use mbls_engine::models::{MODEL_NAMES, ModelOptions};
use mbls_engine::optim::{
    AdamConfig, CosineWarmup, MultiStepLr, PlateauConfig, PlateauMode, ReduceLrOnPlateau,
    Scheduler, SgdConfig, StepLr, WeightDecayPolicy,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The largest class count a model may be built with (a bound on memory from one value).
pub const MAX_CLASSES: i64 = 100_000;

/// Which training/testing flow (`task`): the reference's `cv`, `segment`, `nlp` (training)
/// and `ood` (testing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Image classification (the reference's `Trainer` and `Tester`).
    Cv,
    /// Semantic segmentation (`SegmentTrainer`).
    Segment,
    /// Text classification (`NLPTrainer`).
    Nlp,
    /// Out-of-distribution detection (`OODTester`).
    Ood,
}

impl TaskKind {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Cv => "cv",
            TaskKind::Segment => "segment",
            TaskKind::Nlp => "nlp",
            TaskKind::Ood => "ood",
        }
    }
}

/// `train.*`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Clip the gradients' total 2-norm at `clip_max_norm` before each step.
    pub clip_grad_norm: bool,
    /// The clipping threshold (the reference: 2).
    pub clip_max_norm: f64,
    /// Number of epochs.
    pub max_epoch: u64,
    /// Continue the run of the same run folder from its `last` checkpoint.
    pub resume: bool,
    /// Keep the last N `epoch_K` checkpoints (1: none besides `last` and `best`).
    pub keep_checkpoint_num: u64,
    /// Also keep `epoch_K` every N epochs (0: never).
    pub keep_checkpoint_interval: u64,
    /// Channels-last memory format for training and evaluation (convolutional models).
    pub channels_last: bool,
    /// Also save `last` every N training iterations (0: only at the end of each epoch).
    pub checkpoint_every: u64,
}

/// `calibrate.*`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrateSpec {
    /// Bins of the calibration errors (15).
    pub num_bins: usize,
    /// The post-hoc calibrator of TestPT (`ts`, the reference's grid temperature, by
    /// default; any method of [`mbls_metrics::calibrate::Method`]).
    pub method: String,
    /// Write reliability diagrams and bin tables for Test and TestPT.
    pub visualize: bool,
}

impl CalibrateSpec {
    /// The post-hoc method `method` names.
    ///
    /// # Errors
    /// An unknown method, named with the closest one.
    pub fn post_hoc(&self) -> Result<mbls_metrics::calibrate::Method, TrainError> {
        mbls_metrics::calibrate::Method::parse(&self.method)
            .map_err(|e| TrainError::Config(format!("calibrate.method={}: {e}", self.method)))
    }
}

/// `test.*`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// The checkpoint to test, in the run folder: `""` (`best`), one of ours (`best`,
    /// `last`, `epoch_3`, with or without `.json`) or a PyTorch `.pth` file.
    pub checkpoint: String,
    /// Write the test logits as `<checkpoint>_logits.npz` (keys `logits`, `labels`).
    pub save_logits: bool,
    /// `mbls test`: fit a temperature on the validation split and report TestPT.
    pub post_temperature: bool,
}

/// `wandb.*` (kept for the reference's command lines; mbls writes TensorBoard logs).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WandbSpec {
    /// Asked for Weights & Biases logging.
    pub enable: bool,
    /// Project name (unused).
    pub project: String,
    /// Entity (unused).
    pub entity: String,
    /// Tags (unused).
    pub tags: String,
}

/// `model.*` as typed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The engine's model name (`resnet18_cifar`, ...).
    pub name: String,
    /// Output classes.
    pub num_classes: i64,
    /// Load torchvision's ImageNet weights (ImageNet-style ResNets, DeepLabV3's encoder).
    pub pretrained: bool,
    /// The engine's options (dropout, encoder depth).
    pub options: ModelOptions,
}

/// `optim.*`.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimSpec {
    /// `optim=sgd`.
    Sgd(SgdConfig),
    /// `optim=adam`.
    Adam(AdamConfig),
    /// `optim=adamw`.
    AdamW(AdamConfig),
}

impl OptimSpec {
    /// The initial learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimSpec::Sgd(c) => c.lr,
            OptimSpec::Adam(c) | OptimSpec::AdamW(c) => c.lr,
        }
    }
}

/// `scheduler.*`.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerSpec {
    /// `scheduler=multi_step`.
    MultiStep {
        /// Epochs at which the rate is multiplied by `gamma`.
        milestones: Vec<u64>,
        /// The factor.
        gamma: f64,
    },
    /// `scheduler=step`.
    Step {
        /// Every this many epochs.
        step_size: u64,
        /// The factor.
        gamma: f64,
    },
    /// `scheduler=plateau`, stepped with the validation metric `metric`.
    Plateau {
        /// The scheduler's settings.
        config: PlateauConfig,
        /// The validation metric it watches (`val_loss`, `val_acc`, `val_nll`, `val_ece`, ...).
        metric: String,
    },
    /// `scheduler=cosine` over `train.max_epoch` epochs.
    Cosine {
        /// Linear warm-up epochs.
        warmup_epochs: u64,
        /// Final learning rate.
        min_lr: f64,
        /// Warm-up starts at this fraction of the rate.
        warmup_start_factor: f64,
    },
}

impl SchedulerSpec {
    /// The engine's scheduler starting at `lr`, for a run of `max_epoch` epochs.
    ///
    /// # Errors
    /// Out-of-range settings ([`TrainError::Config`]).
    pub fn build(&self, lr: f64, max_epoch: u64) -> Result<Scheduler, TrainError> {
        let bad = |e: mbls_engine::optim::OptimError| TrainError::Config(format!("scheduler: {e}"));
        Ok(match self {
            SchedulerSpec::MultiStep { milestones, gamma } => {
                Scheduler::MultiStep(MultiStepLr::new(lr, milestones, *gamma).map_err(bad)?)
            }
            SchedulerSpec::Step { step_size, gamma } => {
                Scheduler::Step(StepLr::new(lr, *step_size, *gamma).map_err(bad)?)
            }
            SchedulerSpec::Plateau { config, .. } => {
                Scheduler::Plateau(ReduceLrOnPlateau::new(lr, config.clone()).map_err(bad)?)
            }
            SchedulerSpec::Cosine {
                warmup_epochs,
                min_lr,
                warmup_start_factor,
            } => {
                if max_epoch <= *warmup_epochs {
                    return Err(TrainError::Config(format!(
                        "scheduler=cosine needs train.max_epoch ({max_epoch}) above \
                         scheduler.warmup_epochs ({warmup_epochs})"
                    )));
                }
                Scheduler::CosineWarmup(
                    CosineWarmup::new(lr, *warmup_epochs, max_epoch, *min_lr, *warmup_start_factor)
                        .map_err(bad)?,
                )
            }
        })
    }

    /// The validation metric a plateau scheduler watches.
    pub fn metric(&self) -> Option<&str> {
        match self {
            SchedulerSpec::Plateau { metric, .. } => Some(metric),
            _ => None,
        }
    }
}

/// Everything `mbls train` and `mbls test` need, typed and checked.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The composed configuration it was built from.
    pub config: Config,
    /// `task`.
    pub task: TaskKind,
    /// `device` (`cpu`, `cuda`, `cuda:N`).
    pub device: String,
    /// `seed` (a `null` seed is drawn once from the clock and the process id).
    pub seed: u32,
    /// `log_period`: iterations between training log lines.
    pub log_period: usize,
    /// `data.*`.
    pub data: DataSpec,
    /// `model.*`.
    pub model: ModelSpec,
    /// `loss.*`.
    pub loss: LossSpec,
    /// `optim.*`.
    pub optim: OptimSpec,
    /// `scheduler.*`.
    pub scheduler: SchedulerSpec,
    /// `train.*`.
    pub train: TrainSpec,
    /// `calibrate.*`.
    pub calibrate: CalibrateSpec,
    /// `test.*`.
    pub test: TestSpec,
    /// `wandb.*`.
    pub wandb: WandbSpec,
    /// `ood.*` with `task=ood`: the out-of-distribution dataset (its test split is scored),
    /// with the loader settings of `data`.
    pub ood: Option<DataSpec>,
}

/// `ood.*` as written in `defaults.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OodKeys {
    name: Option<String>,
    data_root: Option<String>,
}

/// Deserialises the sub-tree at `key` into `T`, naming the full dotted key of any unknown,
/// missing or mistyped entry.
fn section<T: DeserializeOwned>(cfg: &Config, key: &str) -> Result<T, TrainError> {
    let v = cfg
        .get(key)
        .ok_or_else(|| TrainError::Config(format!("the configuration has no `{key}` section")))?;
    typed(key, v)
}

fn typed<T: DeserializeOwned>(key: &str, v: &Value) -> Result<T, TrainError> {
    let json = serde_json::to_value(v).map_err(|e| TrainError::Config(format!("{key}: {e}")))?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let full = if path == "." || path.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{path}")
        };
        TrainError::Config(format!("{full}: {}", e.inner()))
    })
}

/// The top-level keys of the tree: every section must be one of these.
const TOP_LEVEL: &[&str] = &[
    "task",
    "device",
    "seed",
    "log_period",
    "train",
    "calibrate",
    "test",
    "wandb",
    "data",
    "model",
    "loss",
    "optim",
    "scheduler",
    "ood",
];

impl RunSpec {
    /// Builds every spec from a composed configuration.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the key: an unknown or missing key, a value of the wrong
    /// type or out of range, an option that is listed but cannot be built (`model=resnet110`),
    /// a dataset that needs another task.
    pub fn from_config(cfg: &Config) -> Result<RunSpec, TrainError> {
        if let Value::Map(entries) = cfg.value() {
            for (k, _) in entries {
                if !TOP_LEVEL.contains(&k.as_str()) {
                    let names: Vec<String> = TOP_LEVEL.iter().map(|s| s.to_string()).collect();
                    let hint = closest(k, &names)
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    return Err(TrainError::Config(format!(
                        "unknown top-level key `{k}`{hint} (keys: {})",
                        TOP_LEVEL.join(", ")
                    )));
                }
            }
        }
        let task: TaskKind = section(cfg, "task")?;
        let device = cfg.get_str("device").map_err(cfg_err)?.to_string();
        check_device(&device)?;
        let seed = seed_at(cfg, "seed")?;
        let log_period = cfg.get_usize("log_period").map_err(cfg_err)?;
        if log_period == 0 {
            return Err(TrainError::Config("log_period must be at least 1".into()));
        }
        let train: TrainSpec = section(cfg, "train")?;
        if !(train.clip_max_norm.is_finite() && train.clip_max_norm > 0.0) {
            return Err(TrainError::Config(format!(
                "train.clip_max_norm={} must be positive and finite",
                train.clip_max_norm
            )));
        }
        if train.max_epoch > 1_000_000 {
            return Err(TrainError::Config(format!(
                "train.max_epoch={} is above the limit of 1000000",
                train.max_epoch
            )));
        }
        let calibrate: CalibrateSpec = section(cfg, "calibrate")?;
        if calibrate.num_bins == 0 || calibrate.num_bins > 10_000 {
            return Err(TrainError::Config(format!(
                "calibrate.num_bins={} must be between 1 and 10000",
                calibrate.num_bins
            )));
        }
        let method = calibrate.post_hoc()?;
        let data = data_spec(cfg)?;
        let ood = ood_spec(cfg, task, &data)?;
        let spec = RunSpec {
            task,
            device,
            seed,
            log_period,
            data,
            ood,
            model: model_spec(cfg)?,
            loss: loss_spec(cfg)?,
            optim: optim_spec(cfg)?,
            scheduler: scheduler_spec(cfg)?,
            train,
            calibrate,
            test: section(cfg, "test")?,
            wandb: section(cfg, "wandb")?,
            config: cfg.clone(),
        };
        spec.check_compatible()?;
        if method.binary_only() && spec.model.num_classes != 2 {
            return Err(TrainError::Config(format!(
                "calibrate.method={}: calibrates binary classifiers, but model.num_classes={} \
                 (use ts, ts-nll, vector, matrix, dirichlet, hist or isotonic)",
                spec.calibrate.method, spec.model.num_classes
            )));
        }
        Ok(spec)
    }

    /// Refuses combinations that cannot run, before any data is opened.
    fn check_compatible(&self) -> Result<(), TrainError> {
        let data = self.data.name;
        let wanted = match data {
            DatasetName::Voc => TaskKind::Segment,
            DatasetName::Newsgroups => TaskKind::Nlp,
            _ => TaskKind::Cv,
        };
        let task = self.task;
        if task != wanted && !(task == TaskKind::Ood && wanted == TaskKind::Cv) {
            return Err(TrainError::Config(format!(
                "data={} needs task={} (the configuration has task={})",
                self.config.group("data"),
                wanted.as_str(),
                task.as_str()
            )));
        }
        let model = self.model.name.as_str();
        let model_ok = match task {
            TaskKind::Segment => model == "deeplabv3",
            TaskKind::Nlp => model == "global_pooling",
            TaskKind::Cv | TaskKind::Ood => model != "deeplabv3" && model != "global_pooling",
        };
        if !model_ok {
            return Err(TrainError::Config(format!(
                "model={model} cannot be used with task={} (data={})",
                task.as_str(),
                self.config.group("data")
            )));
        }
        Ok(())
    }

    /// The tag of the configuration in the default run folder:
    /// `<data.name>/<model.name>-<loss.name>-<optim.name>`.
    pub fn run_name(&self) -> String {
        let name = |k: &str| {
            self.config
                .get_str(&format!("{k}.name"))
                .unwrap_or("unknown")
                .to_string()
        };
        format!(
            "{}/{}-{}-{}",
            name("data"),
            name("model"),
            name("loss"),
            name("optim")
        )
    }
}

fn cfg_err(e: mbls_config::ConfigError) -> TrainError {
    TrainError::Config(e.to_string())
}

fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn check_device(device: &str) -> Result<(), TrainError> {
    let ok = device == "cpu"
        || device == "cuda"
        || device
            .strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "device={device}: expected cpu, cuda or cuda:N"
        )))
    }
}

/// A seed from `key`: an integer in `0..2^32` (NumPy's `np.random.seed` range), or, for
/// `null` (the reference's "random seed"), one drawn from the clock and the process id.
pub fn seed_at(cfg: &Config, key: &str) -> Result<u32, TrainError> {
    if matches!(cfg.get(key), Some(Value::Null)) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        return Ok(nanos ^ std::process::id().rotate_left(16));
    }
    let s = cfg.get_i64(key).map_err(cfg_err)?;
    u32::try_from(s).map_err(|_| {
        TrainError::Config(format!(
            "{key}={s}: a seed must be between 0 and 4294967295 (NumPy's range)"
        ))
    })
}

/// `data.*` as written in the group files; keys a dataset's file does not carry take the
/// dataset's fixed protocol value ([`DataSpec::reference`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataKeys {
    name: String,
    data_root: String,
    batch_size: usize,
    num_workers: Option<usize>,
    augment: Option<bool>,
    val_split: Option<f64>,
    shuffle: Option<bool>,
    random_seed: Option<serde_json::Value>,
    val_samples_per_class: Option<usize>,
    scale_size: Option<usize>,
    crop_size: Option<usize>,
    test_split: Option<f64>,
    cache: Option<bool>,
    train_subset: Option<usize>,
}

/// The [`DataSpec`] of the configuration's `data` group (used by `mbls data` and the
/// trainers). The split seed is `data.random_seed` (the run's `seed` by default), the
/// loaders' order and augmentation seed the run's `seed`.
///
/// # Errors
/// An unknown, missing or mistyped key, an unknown `data.name`, an empty root, a zero or
/// absurd batch size, a seed outside `0..2^32`.
pub fn data_spec(cfg: &Config) -> Result<DataSpec, TrainError> {
    let keys: DataKeys = section(cfg, "data")?;
    let name = DatasetName::parse(&keys.name).map_err(|e| TrainError::Config(e.to_string()))?;
    if keys.data_root.is_empty() {
        return Err(TrainError::Config(
            "data.data_root is empty: give the dataset folder, e.g. data.data_root=DIR".into(),
        ));
    }
    if keys.batch_size == 0 || keys.batch_size > 1 << 20 {
        return Err(TrainError::Config(format!(
            "data.batch_size={} must be between 1 and 1048576",
            keys.batch_size
        )));
    }
    let base = DataSpec::reference(name, &keys.data_root);
    let seed = if keys.random_seed.is_some() {
        seed_at(cfg, "data.random_seed")?
    } else {
        seed_at(cfg, "seed")?
    };
    let loader_seed = if cfg.contains("seed") {
        u64::from(seed_at(cfg, "seed")?)
    } else {
        u64::from(seed)
    };
    let num_workers = keys.num_workers.unwrap_or(base.num_workers);
    if num_workers > 256 {
        return Err(TrainError::Config(format!(
            "data.num_workers={num_workers} is above the limit of 256"
        )));
    }
    if keys.train_subset == Some(0) {
        return Err(TrainError::Config(
            "data.train_subset=0: give a number of training images, or null for all".into(),
        ));
    }
    for (k, v) in [
        ("val_split", keys.val_split),
        ("test_split", keys.test_split),
    ] {
        if let Some(v) = v {
            if !(0.0..1.0).contains(&v) {
                return Err(TrainError::Config(format!(
                    "data.{k}={v} must be in [0, 1)"
                )));
            }
        }
    }
    Ok(DataSpec {
        batch_size: keys.batch_size,
        num_workers,
        seed,
        loader_seed,
        shuffle: keys.shuffle.unwrap_or(base.shuffle),
        augment: keys.augment.unwrap_or(base.augment),
        val_split: keys.val_split.unwrap_or(base.val_split),
        val_samples_per_class: keys
            .val_samples_per_class
            .unwrap_or(base.val_samples_per_class),
        scale_size: keys.scale_size.unwrap_or(base.scale_size),
        crop_size: keys.crop_size.unwrap_or(base.crop_size),
        test_split: keys.test_split.unwrap_or(base.test_split),
        cache: keys.cache.unwrap_or(base.cache),
        train_subset: keys.train_subset,
        ..base
    })
}

/// The out-of-distribution dataset of `task=ood`: `ood.name` and `ood.data_root`, loaded with
/// the batch size, workers and seeds of `data`.
fn ood_spec(cfg: &Config, task: TaskKind, data: &DataSpec) -> Result<Option<DataSpec>, TrainError> {
    let keys: OodKeys = section(cfg, "ood")?;
    if task != TaskKind::Ood {
        if keys.name.is_some() || keys.data_root.is_some() {
            return Err(TrainError::Config(format!(
                "ood.name/ood.data_root are set, but task={}: OOD detection is `mbls test \
                 task=ood`",
                task.as_str()
            )));
        }
        return Ok(None);
    }
    let (Some(name), Some(root)) = (keys.name, keys.data_root) else {
        return Err(TrainError::Config(
            "task=ood (OOD detection, a task of `mbls test`) needs the out-of-distribution \
             dataset: ood.name=NAME (any image \
             classification dataset: cifar100, folder, ...) and ood.data_root=DIR"
                .into(),
        ));
    };
    let name =
        DatasetName::parse(&name).map_err(|e| TrainError::Config(format!("ood.name: {e}")))?;
    if matches!(name, DatasetName::Voc | DatasetName::Newsgroups) {
        return Err(TrainError::Config(format!(
            "ood.name={name}: OOD detection scores image classifiers; use an image \
             classification dataset"
        )));
    }
    if root.is_empty() {
        return Err(TrainError::Config(
            "ood.data_root is empty: give the out-of-distribution dataset's folder".into(),
        ));
    }
    Ok(Some(DataSpec {
        batch_size: data.batch_size,
        num_workers: data.num_workers,
        seed: data.seed,
        loader_seed: data.loader_seed,
        cache: false,
        ..DataSpec::reference(name, root)
    }))
}

/// `model.*` as written in the group files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelKeys {
    name: String,
    num_classes: i64,
    pretrained: Option<bool>,
    has_dropout: Option<bool>,
    encoder_name: Option<String>,
    encoder_weights: Option<serde_json::Value>,
    in_channels: Option<i64>,
}

/// The [`ModelSpec`] of the configuration's `model` group.
///
/// # Errors
/// An unknown key, a class count outside `1..=`[`MAX_CLASSES`], a model name the engine
/// does not build (the reference's `model=resnet110` names a torchvision-style ResNet-110
/// that does not exist), an encoder other than a ResNet.
pub fn model_spec(cfg: &Config) -> Result<ModelSpec, TrainError> {
    // A float (`1e7`), a string or null is named with the bound, not as a bare type error.
    let classes = cfg.get("model.num_classes");
    if let Some(v) = classes.filter(|v| !matches!(v, Value::Int(_))) {
        return Err(TrainError::Config(format!(
            "model.num_classes={v} must be an integer between 1 and {MAX_CLASSES}"
        )));
    }
    let keys: ModelKeys = section(cfg, "model")?;
    if keys.name == "resnet110" {
        return Err(TrainError::Config(
            "model=resnet110: the reference's config points to calibrate.net.resnet.resnet110, \
             which does not exist (torchvision has no ImageNet-style ResNet-110); use \
             model=resnet110_cifar or model=resnet110_tiny (Bottleneck [3, 4, 26, 3])"
                .into(),
        ));
    }
    if !MODEL_NAMES.contains(&keys.name.as_str()) {
        return Err(TrainError::Config(format!(
            "model.name={}: not a model mbls builds ({})",
            keys.name,
            MODEL_NAMES.join(", ")
        )));
    }
    if !(1..=MAX_CLASSES).contains(&keys.num_classes) {
        return Err(TrainError::Config(format!(
            "model.num_classes={} must be between 1 and {MAX_CLASSES}",
            keys.num_classes
        )));
    }
    let mut options = ModelOptions {
        has_dropout: keys.has_dropout.unwrap_or(false),
        ..ModelOptions::default()
    };
    let mut pretrained = keys.pretrained.unwrap_or(false);
    if let Some(enc) = &keys.encoder_name {
        options.encoder_depth = enc
            .strip_prefix("resnet")
            .and_then(|d| d.parse().ok())
            .filter(|d| [18, 34, 50, 101, 152].contains(d))
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "model.encoder_name={enc}: expected resnet18, resnet34, resnet50, resnet101 \
                     or resnet152"
                ))
            })?;
    }
    if let Some(w) = &keys.encoder_weights {
        pretrained = match w {
            serde_json::Value::Null => false,
            serde_json::Value::String(s) if s == "imagenet" => true,
            serde_json::Value::String(s) if s.is_empty() || s == "none" => false,
            other => {
                return Err(TrainError::Config(format!(
                    "model.encoder_weights={other}: expected imagenet or null"
                )));
            }
        };
    }
    if let Some(c) = keys.in_channels {
        if c != 3 {
            return Err(TrainError::Config(format!(
                "model.in_channels={c}: only 3 (RGB) is supported"
            )));
        }
    }
    Ok(ModelSpec {
        name: keys.name,
        num_classes: keys.num_classes,
        pretrained,
        options,
    })
}

/// The [`LossSpec`] of the configuration's `loss` group (its parameters checked by
/// [`LossSpec::from_params`]).
///
/// # Errors
/// An unknown parameter or a value out of range.
pub fn loss_spec(cfg: &Config) -> Result<LossSpec, TrainError> {
    let name = cfg.group("loss").to_string();
    let v = cfg
        .get("loss")
        .ok_or_else(|| TrainError::Config("the configuration has no `loss` section".into()))?;
    let params = match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(TrainError::Config("loss: not a mapping".into())),
    };
    let name = params
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .unwrap_or(name);
    LossSpec::from_params(&name, &params).map_err(|e| TrainError::Config(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SgdKeys {
    name: String,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
    no_decay_norm_bias: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdamKeys {
    name: String,
    lr: f64,
    betas: (f64, f64),
    weight_decay: f64,
    no_decay_norm_bias: bool,
}

fn policy(no_decay_norm_bias: bool) -> WeightDecayPolicy {
    if no_decay_norm_bias {
        WeightDecayPolicy::ExcludeBiasAndNorm
    } else {
        WeightDecayPolicy::All
    }
}

/// The [`OptimSpec`] of the configuration's `optim` group, validated.
///
/// # Errors
/// An unknown key or an out-of-range hyper-parameter.
pub fn optim_spec(cfg: &Config) -> Result<OptimSpec, TrainError> {
    let group = cfg.group("optim").to_string();
    let bad = |e: mbls_engine::optim::OptimError| TrainError::Config(format!("optim: {e}"));
    let name = cfg.get_str("optim.name").map_err(cfg_err)?.to_string();
    let spec = match name.as_str() {
        "sgd" => {
            let k: SgdKeys = section(cfg, "optim")?;
            let _ = k.name;
            let c = SgdConfig {
                lr: k.lr,
                momentum: k.momentum,
                dampening: 0.0,
                nesterov: k.nesterov,
                weight_decay: k.weight_decay,
                decay_policy: policy(k.no_decay_norm_bias),
            };
            c.validate().map_err(bad)?;
            OptimSpec::Sgd(c)
        }
        "adam" | "adamw" => {
            let k: AdamKeys = section(cfg, "optim")?;
            let _ = k.name;
            let c = AdamConfig {
                lr: k.lr,
                betas: k.betas,
                eps: 1e-8,
                weight_decay: k.weight_decay,
                amsgrad: false,
                decay_policy: policy(k.no_decay_norm_bias),
            };
            c.validate().map_err(bad)?;
            if name == "adam" {
                OptimSpec::Adam(c)
            } else {
                OptimSpec::AdamW(c)
            }
        }
        other => {
            return Err(TrainError::Config(format!(
                "optim.name={other} (optim={group}): expected sgd, adam or adamw"
            )));
        }
    };
    Ok(spec)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiStepKeys {
    name: String,
    milestones: Vec<u64>,
    gamma: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepKeys {
    name: String,
    step_size: u64,
    gamma: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlateauKeys {
    name: String,
    mode: PlateauMode,
    factor: f64,
    patience: u64,
    metric: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CosineKeys {
    name: String,
    warmup_epochs: u64,
    min_lr: f64,
    warmup_start_factor: f64,
}

/// The validation metrics a plateau scheduler can watch.
pub const PLATEAU_METRICS: &[&str] = &[
    "val_loss",
    "val_acc",
    "val_acc_5",
    "val_macc",
    "val_nll",
    "val_ece",
    "val_aece",
    "val_cece",
];

/// The [`SchedulerSpec`] of the configuration's `scheduler` group.
///
/// # Errors
/// An unknown key or value, an unknown plateau metric.
pub fn scheduler_spec(cfg: &Config) -> Result<SchedulerSpec, TrainError> {
    let name = cfg.get_str("scheduler.name").map_err(cfg_err)?.to_string();
    Ok(match name.as_str() {
        "multi_step" => {
            let k: MultiStepKeys = section(cfg, "scheduler")?;
            let _ = k.name;
            SchedulerSpec::MultiStep {
                milestones: k.milestones,
                gamma: k.gamma,
            }
        }
        "step" => {
            let k: StepKeys = section(cfg, "scheduler")?;
            let _ = k.name;
            SchedulerSpec::Step {
                step_size: k.step_size,
                gamma: k.gamma,
            }
        }
        "plateau" => {
            let k: PlateauKeys = section(cfg, "scheduler")?;
            let _ = k.name;
            if !PLATEAU_METRICS.contains(&k.metric.as_str()) {
                return Err(TrainError::Config(format!(
                    "scheduler.metric={}: expected one of {}",
                    k.metric,
                    PLATEAU_METRICS.join(", ")
                )));
            }
            SchedulerSpec::Plateau {
                config: PlateauConfig {
                    mode: k.mode,
                    factor: k.factor,
                    patience: k.patience,
                    ..PlateauConfig::default()
                },
                metric: k.metric,
            }
        }
        "cosine" => {
            let k: CosineKeys = section(cfg, "scheduler")?;
            let _ = k.name;
            SchedulerSpec::Cosine {
                warmup_epochs: k.warmup_epochs,
                min_lr: k.min_lr,
                warmup_start_factor: k.warmup_start_factor,
            }
        }
        other => {
            return Err(TrainError::Config(format!(
                "scheduler.name={other}: expected multi_step, step, plateau or cosine"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(overrides: &[&str]) -> Result<RunSpec, TrainError> {
        RunSpec::from_config(&Config::compose(overrides).map_err(cfg_err)?)
    }

    #[test]
    fn defaults_build() {
        let s = spec(&[]).unwrap();
        assert_eq!(s.task, TaskKind::Cv);
        assert_eq!(s.model.name, "resnet50");
        assert_eq!(s.data.name, DatasetName::Cifar10);
        assert_eq!(s.optim.lr(), 0.1);
        assert!(s.train.clip_grad_norm);
        assert_eq!(s.train.clip_max_norm, 2.0);
        assert_eq!(s.calibrate.num_bins, 15);
        assert_eq!(
            s.calibrate.post_hoc().unwrap(),
            mbls_metrics::calibrate::Method::Temperature
        );
    }

    #[test]
    fn post_hoc_methods_are_checked_before_any_data() {
        for m in [
            "ts",
            "ts-nll",
            "vector",
            "matrix",
            "dirichlet",
            "hist",
            "isotonic",
        ] {
            let s = spec(&[&format!("calibrate.method={m}")]).unwrap();
            assert_eq!(s.calibrate.post_hoc().unwrap().name(), m);
        }
        let e = spec(&["calibrate.method=matrx"]).unwrap_err().to_string();
        assert!(
            e.contains("calibrate.method=matrx") && e.contains("closest: matrix"),
            "{e}"
        );
        let e = spec(&["calibrate.method=beta"]).unwrap_err().to_string();
        assert!(e.contains("binary") && e.contains("num_classes=10"), "{e}");
        spec(&["calibrate.method=platt", "model.num_classes=2"]).unwrap();
    }

    #[test]
    fn the_config_lists_exactly_the_engine_losses() {
        // one list of loss names (the engine's): the config's loss group has a file for each
        let (_, listed) = Config::groups()
            .iter()
            .find(|(g, _)| *g == "loss")
            .expect("a loss group");
        let mut listed = listed.to_vec();
        let mut engine = mbls_engine::losses::LOSS_NAMES.to_vec();
        listed.sort_unstable();
        engine.sort_unstable();
        assert_eq!(listed, engine);
    }

    /// Every option of every group listed by the registry composes into specs, or is
    /// refused with a message that says why.
    #[test]
    fn every_listed_option_builds_or_says_why() {
        for (group, options) in Config::groups() {
            for option in *options {
                let mut o = vec![format!("{group}={option}")];
                match (*group, *option) {
                    ("data", "voc") => {
                        o.push("task=segment".into());
                        o.push("model=deeplabv3".into());
                    }
                    ("data", "newgroups") => {
                        o.push("task=nlp".into());
                        o.push("model=global_pooling".into());
                    }
                    ("model", "deeplabv3") => {
                        o.push("task=segment".into());
                        o.push("data=voc".into());
                    }
                    ("model", "global_pooling") => {
                        o.push("task=nlp".into());
                        o.push("data=newgroups".into());
                    }
                    _ => {}
                }
                let cfg = Config::compose_args(&o).unwrap_or_else(|e| panic!("{o:?}: {e}"));
                match RunSpec::from_config(&cfg) {
                    Ok(_) => {}
                    Err(e) if (*group, *option) == ("model", "resnet110") => {
                        let msg = e.to_string();
                        assert!(msg.contains("does not exist"), "{msg}");
                    }
                    Err(e) => panic!("{group}={option}: {e}"),
                }
            }
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = spec(&["+train.foo=1"]).unwrap_err().to_string();
        assert!(e.contains("train") && e.contains("foo"), "{e}");
        let e = spec(&["+extra=1"]).unwrap_err().to_string();
        assert!(e.contains("unknown top-level key `extra`"), "{e}");
        let e = spec(&["+data.colour=1"]).unwrap_err().to_string();
        assert!(e.contains("data") && e.contains("colour"), "{e}");
        let e = spec(&["model.num_classes=0"]).unwrap_err().to_string();
        assert!(e.contains("model.num_classes"), "{e}");
        let e = spec(&["model.num_classes=9223372036854775807"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.num_classes"), "{e}");
        let e = spec(&["device=tpu"]).unwrap_err().to_string();
        assert!(e.contains("device=tpu"), "{e}");
        let e = spec(&["scheduler=plateau", "scheduler.metric=val_foo"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheduler.metric"), "{e}");
    }

    #[test]
    fn incompatible_choices_are_refused() {
        let e = spec(&["data=voc"]).unwrap_err().to_string();
        assert!(e.contains("needs task=segment"), "{e}");
        let e = spec(&["model=deeplabv3"]).unwrap_err().to_string();
        assert!(e.contains("cannot be used with task=cv"), "{e}");
        let e = spec(&["data=newgroups", "task=nlp"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model=resnet50 cannot be used"), "{e}");
    }

    #[test]
    fn cosine_needs_more_epochs_than_warmup() {
        let s = spec(&["scheduler=cosine", "train.max_epoch=3"]).unwrap();
        let e = s.scheduler.build(0.1, 3).unwrap_err().to_string();
        assert!(e.contains("train.max_epoch"), "{e}");
        assert!(s.scheduler.build(0.1, 10).is_ok());
    }

    #[test]
    fn data_keys_map_onto_the_data_spec() {
        let cfg = Config::compose(&["data.data_root=/d", "seed=5"]).unwrap();
        let s = data_spec(&cfg).unwrap();
        assert_eq!(s.name, DatasetName::Cifar10);
        assert_eq!(
            (s.batch_size, s.num_workers, s.seed, s.loader_seed),
            (128, 4, 5, 5)
        );
        let cfg = Config::compose(&["data=cub"]).unwrap();
        let s = data_spec(&cfg).unwrap();
        assert_eq!((s.scale_size, s.crop_size, s.batch_size), (256, 224, 32));
        let cfg = Config::compose(&["seed=-1"]).unwrap();
        assert!(data_spec(&cfg).unwrap_err().to_string().contains("seed"));
        let cfg = Config::compose(&["data.batch_size=0"]).unwrap();
        assert!(data_spec(&cfg).is_err());
    }

    /// MNIST and Fashion-MNIST (not in the reference) are image classification datasets
    /// (`task=cv`) with their own protocol defaults.
    #[test]
    fn mnist_datasets_are_cv() {
        for (option, name) in [
            ("mnist", DatasetName::Mnist),
            ("fashion_mnist", DatasetName::FashionMnist),
        ] {
            let group = format!("data={option}");
            let s = spec(&[group.as_str(), "seed=3"]).unwrap();
            assert_eq!(s.task, TaskKind::Cv);
            assert_eq!(s.data.name, name);
            assert_eq!(
                (s.data.batch_size, s.data.crop_size, s.data.seed),
                (128, 28, 3)
            );
            assert!(!s.data.augment && s.data.shuffle);
            assert_eq!(s.data.val_split, mbls_data::MNIST_VAL_SPLIT);
            let root = format!("data/{option}");
            assert_eq!(s.data.root, std::path::Path::new(&root));
        }
        let e = spec(&["data=mnist", "task=segment"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("data=mnist needs task=cv"), "{e}");
    }

    #[test]
    fn a_training_subset_is_read_from_the_data_group() {
        assert_eq!(spec(&[]).unwrap().data.train_subset, None);
        for option in ["cifar10", "cifar100", "folder", "tiny_imagenet", "mnist"] {
            let group = format!("data={option}");
            let s = spec(&[group.as_str(), "data.train_subset=5000"]).unwrap();
            assert_eq!(s.data.train_subset, Some(5000), "{option}");
        }
        let e = spec(&["data.train_subset=0"]).unwrap_err().to_string();
        assert!(e.contains("data.train_subset=0"), "{e}");
        // not a key of the datasets whose validation set is not held out of training
        assert!(spec(&["data=voc", "task=segment", "data.train_subset=10"]).is_err());
    }
}
