//! Optimizers (SGD, Adam, AdamW) with PyTorch semantics and saveable state, learning-rate
//! schedulers and gradient clipping.
//!
//! # Optimizers
//!
//! [`Sgd`], [`Adam`] and [`AdamW`] update tensors in place from their `.grad()`, with the
//! same float32 operations in the same order as `torch.optim`'s default per-parameter
//! ("for-loop", `foreach=False`) implementation, so that they agree with PyTorch bitwise on
//! the parity fixtures (and to rounding level in general). They are built from named parameters,
//! for example [`trainable_variables`] of a [`tch::nn::VarStore`]:
//!
//! ```no_run
//! use mbls_engine::optim::{trainable_variables, Optimizer, Sgd, SgdConfig};
//! # fn main() -> Result<(), mbls_engine::optim::OptimError> {
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! // ... build a model on vs.root() ...
//! let mut opt = Sgd::new(
//!     trainable_variables(&vs),
//!     SgdConfig { lr: 0.1, momentum: 0.9, weight_decay: 5e-4, ..SgdConfig::default() },
//! )?;
//! // per batch: opt.zero_grad(); loss.backward(); opt.clip_grad_norm(2.0, 2.0)?; opt.step()?;
//! opt.save(std::path::Path::new("ckpt/optim.safetensors"))?;
//! # Ok(())
//! # }
//! ```
//!
//! Weight decay applies to every parameter ([`WeightDecayPolicy::All`], PyTorch's and the
//! MbLS reference's behaviour) or only to parameters with at least 2 dimensions
//! ([`WeightDecayPolicy::ExcludeBiasAndNorm`]: biases and normalisation weights, which are
//! all 1-D, get none). This is the only parameter-group notion: one learning rate for all
//! parameters, weight decay on or off per parameter.
//!
//! Differences from `torch.optim`, all documented on the items: `zero_grad` zeroes gradients
//! in place (PyTorch's `set_to_none=False`) because `tch` cannot unset a gradient, so a
//! parameter is skipped by `step` only while it has never received a gradient.
//!
//! # State
//!
//! [`Optimizer::state_dict`] returns an [`OptimizerState`]: the per-parameter tensors
//! (momentum buffers, first and second moments) by name, plus an [`OptimizerMeta`] with the
//! hyper-parameters, parameter names and shapes and step counts, which serialises with serde.
//! [`Optimizer::save`] writes the tensors as safetensors and the metadata as a JSON sidecar,
//! each atomically; [`Optimizer::load`] restores them, checking names and shapes.
//!
//! # Schedulers and clipping
//!
//! [`MultiStepLr`], [`StepLr`], [`ReduceLrOnPlateau`], [`CosineWarmup`] and [`ConstantLr`]
//! (also as the serialisable enum [`Scheduler`]) implement [`LrScheduler`]: stepped once per
//! epoch, they return the learning rate to pass to [`Optimizer::set_lr`].
//! [`clip_grad_norm`] is `torch.nn.utils.clip_grad_norm_`.

mod adam;
mod clip;
mod nonfinite;
mod params;
mod scheduler;
mod sgd;
mod state;

use std::path::{Path, PathBuf};

use tch::Tensor;

pub use adam::{Adam, AdamConfig, AdamW};
pub use clip::clip_grad_norm;
pub use params::{Param, WeightDecayPolicy, trainable_variables};
pub use scheduler::{
    ConstantLr, CosineWarmup, LrScheduler, MultiStepLr, PlateauConfig, PlateauMode,
    ReduceLrOnPlateau, Scheduler, StepLr, ThresholdMode,
};
pub use sgd::{Sgd, SgdConfig};
pub use state::{
    HyperParams, OptimizerKind, OptimizerMeta, OptimizerState, ParamStateMeta,
    STATE_FORMAT_VERSION, sidecar_path,
};

/// Errors of the optimizers, schedulers and gradient clipping.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter is out of its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidHyperParameter {
        /// Name of the hyper-parameter (`lr`, `momentum`, `betas.0`, ...).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What the valid range is.
        reason: &'static str,
    },
    /// Two hyper-parameters that cannot be combined.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The optimizer was given no parameters.
    #[error("the optimizer got an empty parameter list")]
    EmptyParameterList,
    /// Two parameters share a name.
    #[error("duplicate parameter name `{0}`")]
    DuplicateParameter(String),
    /// A parameter is not a floating-point tensor.
    #[error("parameter `{name}` has kind {kind:?}; optimizers need floating-point parameters")]
    NonFloatParameter {
        /// The parameter's name.
        name: String,
        /// Its tensor kind.
        kind: tch::Kind,
    },
    /// A saved state belongs to another optimizer kind.
    #[error("optimizer state is for `{found}`, this optimizer is `{expected}`")]
    KindMismatch {
        /// The kind of the optimizer being restored.
        expected: String,
        /// The kind recorded in the state.
        found: String,
    },
    /// A saved state uses a format this version does not read.
    #[error("optimizer state format version {found} is not supported (expected {expected})")]
    UnsupportedFormat {
        /// The version this build writes and reads.
        expected: u32,
        /// The version found in the state.
        found: u32,
    },
    /// A parameter of the optimizer is absent from the saved state.
    #[error("parameter `{0}` of the optimizer is missing from the saved state")]
    MissingParameter(String),
    /// The saved state holds a parameter the optimizer does not have.
    #[error("the saved state has parameter `{0}`, which the optimizer does not have")]
    UnexpectedParameter(String),
    /// A parameter or state tensor has another shape than expected.
    #[error("shape mismatch for `{name}`: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Name of the parameter or state tensor.
        name: String,
        /// Shape the optimizer expects.
        expected: Vec<i64>,
        /// Shape found in the state.
        found: Vec<i64>,
    },
    /// A state tensor the metadata requires is absent.
    #[error("state tensor `{0}` is missing from the saved state")]
    MissingStateTensor(String),
    /// The saved state holds a tensor the optimizer does not use.
    #[error("unexpected state tensor `{0}` in the saved state")]
    UnexpectedStateTensor(String),
    /// The tensor file and the JSON sidecar come from different saves.
    #[error("{tensors} and {sidecar} do not come from the same save")]
    SaveMismatch {
        /// The safetensors file.
        tensors: PathBuf,
        /// The JSON sidecar.
        sidecar: PathBuf,
    },
    /// [`ReduceLrOnPlateau`] was stepped without a metric.
    #[error("ReduceLrOnPlateau::step needs a metric value")]
    MissingMetric,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON sidecar could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// An optimizer over named tensors: one learning rate, per-parameter state.
///
/// The trait is object safe, so `Box<dyn Optimizer>` holds any of [`Sgd`], [`Adam`],
/// [`AdamW`].
pub trait Optimizer {
    /// The kind of optimizer (`sgd`, `adam`, `adamw`), as recorded in its state.
    fn kind(&self) -> OptimizerKind;

    /// The parameters, in the order they were given.
    fn params(&self) -> &[Param];

    /// Updates every parameter that has a defined gradient; parameters whose gradient is
    /// undefined (never computed) are skipped and keep no state, as in PyTorch.
    fn step(&mut self) -> Result<(), OptimError>;

    /// Zeroes the gradient of every parameter in place (those with a defined gradient).
    ///
    /// This is PyTorch's `zero_grad(set_to_none=False)`: PyTorch's default sets gradients to
    /// `None` instead, which `tch` cannot do. The difference only shows for a parameter that
    /// gets no gradient in a later backward pass: PyTorch skips it, here it is updated with
    /// a zero gradient (weight decay and momentum still apply).
    fn zero_grad(&mut self);

    /// The current learning rate.
    fn lr(&self) -> f64;

    /// Sets the learning rate (for example from [`LrScheduler::step`]); it must be finite
    /// and non-negative.
    fn set_lr(&mut self, lr: f64) -> Result<(), OptimError>;

    /// A copy of the optimizer's state: hyper-parameters, per-parameter step counts and
    /// state tensors (deep copies, on the parameters' devices).
    fn state_dict(&self) -> Result<OptimizerState, OptimError>;

    /// Restores a state from [`Optimizer::state_dict`] (hyper-parameters included, as
    /// PyTorch's `load_state_dict` does).
    ///
    /// The state must be of the same kind and hold exactly this optimizer's parameter
    /// names with the same shapes, and every state tensor its metadata requires, with the
    /// parameter's shape; otherwise an error names the offending parameter and the
    /// optimizer is left unchanged. Tensors are copied to each parameter's device and kind.
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<(), OptimError>;

    /// Saves the state: tensors to `path` (safetensors) and metadata to
    /// [`sidecar_path`]`(path)` (`path` with `.json` appended), each written atomically.
    fn save(&self, path: &Path) -> Result<(), OptimError> {
        self.state_dict()?.save(path)
    }

    /// Loads a state written by [`Optimizer::save`] (see [`Optimizer::load_state_dict`]).
    fn load(&mut self, path: &Path) -> Result<(), OptimError> {
        let state = OptimizerState::load(path)?;
        self.load_state_dict(&state)
    }

    /// [`clip_grad_norm`] over this optimizer's parameters; returns the total norm.
    fn clip_grad_norm(&self, max_norm: f64, norm_type: f64) -> Result<f64, OptimError> {
        clip_grad_norm(self.params().iter().map(Param::tensor), max_norm, norm_type)
    }
}

/// `a + alpha * b` as PyTorch's `a.add(b, alpha=alpha)` computes it.
///
/// PyTorch's kernel fuses the multiply and the add (one rounding, on CUDA and on CPUs with
/// FMA); `a + b * alpha` would round the product first. `addcmul` with `alpha` as a 0-d
/// tensor of `b`'s kind evaluates `fma(b, alpha, a)` in the same kernels, so the result is
/// bitwise PyTorch's on the same CPU (libtorch fuses only where its vectorised kernels use
/// FMA, so across CPUs the parity fixtures allow a few float32 ulps).
fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor, tch::TchError> {
    a.f_addcmul(b, &scalar_like(alpha, b)?)
}

/// In-place [`add_scaled`]: `a += alpha * b` as PyTorch's `a.add_(b, alpha=alpha)`.
fn add_scaled_(a: &mut Tensor, b: &Tensor, alpha: f64) -> Result<(), tch::TchError> {
    let s = scalar_like(alpha, b)?;
    a.f_addcmul_(b, &s).map(drop)
}

/// A 0-d tensor holding `v`, with `like`'s kind and device.
fn scalar_like(v: f64, like: &Tensor) -> Result<Tensor, tch::TchError> {
    Tensor::f_scalar_tensor(v, (like.kind(), like.device()))
}

/// Checks a learning rate: finite and non-negative.
fn check_lr(lr: f64) -> Result<(), OptimError> {
    check_range(
        "lr",
        lr,
        lr >= 0.0 && lr.is_finite(),
        "must be finite and >= 0",
    )
}

/// Returns `InvalidHyperParameter` unless `ok`.
fn check_range(
    name: &'static str,
    value: f64,
    ok: bool,
    reason: &'static str,
) -> Result<(), OptimError> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::InvalidHyperParameter {
            name,
            value,
            reason,
        })
    }
}
