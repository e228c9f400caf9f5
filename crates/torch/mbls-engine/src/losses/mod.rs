//! Calibration losses on `tch` tensors, with the MbLS reference semantics.
//!
//! Every loss takes logits `N x C` (or dense `N x C x H x W ...`, flattened to pixels as
//! the reference does: `N,C,H,W -> N*H*W, C`) and integer targets `N` (or `N x H x W`), drops
//! the rows whose target is `ignore_index`, and returns its named terms, the first being the
//! total to back-propagate (the reference's names: `loss`, `loss_ce`, `loss_margin_l1`,
//! `loss_ent`, `loss_l1`).
//!
//! | name | loss |
//! |---|---|
//! | `ce` | cross-entropy |
//! | `ls` | label smoothing: `(1 − α)·CE + α·mean_k(−log p_k)` (α spread over all C classes) |
//! | `focal` | `−(1 − p_y)^γ log p_y` (gradient also through `p_y`), mean or sum |
//! | `focal_adaptive` | FLSD-53: per-sample γ = 5 if `p_y < 0.2`, 3 if `p_y < 0.5`, else `gamma`; γ is not differentiated |
//! | `penalty_ent` | ECP: `CE − α·mean_{i,k}(−p log p)`, `p` clamped to `[1e-10, 1 − 1e-10]` |
//! | `mmce` | `CE + λ·Σ_ij (c_i − r_i)(c_j − r_j) exp(−|r_i − r_j| / 0.4) / N²` |
//! | `mmce_weighted` | MMCE_w (Kumar et al. 2018), as the reference's `MMCE_weighted` |
//! | `logit_margin` | MbLS: `CE + α·mean_{i,k} relu(max_j l_ij − l_ik − m)`, gradient through the max; α schedules |
//! | `brier` | `Σ_{i,k} (1[k = y_i] − p_ik)² / N` |
//! | `penalty_l1` | `CE + α·Σ_{i,k} |p_ik − 1/C| / N` |
//!
//! Differences from the reference, on purpose:
//! - The reference selects kept rows with `torch.nonzero(mask).squeeze()`, which turns a
//!   single surviving row into a 1-D tensor and breaks the loss; we index with the mask's
//!   indices as a 1-D tensor, so one surviving row works.
//! - `ignore_index` is honoured by every loss (the reference's `mmce`, `brier` and
//!   `penalty_l1` have none) and for every value: rows equal to it are dropped (the
//!   reference filters only when `ignore_index >= 0`; with its default −100 its inner
//!   cross-entropy drops −100 targets anyway).
//! - A batch whose rows are all ignored gives a zero loss connected to the graph (the
//!   reference would return NaN).
//!
//! Plug-in use in your own training loop:
//!
//! ```no_run
//! use mbls_engine::losses::{build_loss, AlphaSchedule, LossSpec};
//! use mbls_engine::tch::{Kind, Tensor};
//!
//! let spec = LossSpec::LogitMargin {
//!     margin: 10.0,
//!     alpha: 0.1,
//!     ignore_index: -100,
//!     schedule: AlphaSchedule::Constant,
//!     mu: 0.0,
//!     max_alpha: 100.0,
//!     step_size: 100,
//! };
//! let mut loss = build_loss(&spec).unwrap();
//! let logits = Tensor::randn([8, 10], (Kind::Float, mbls_engine::tch::Device::Cpu)).set_requires_grad(true);
//! let targets = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
//! let terms = loss.forward(&logits, &targets).unwrap();
//! terms.total().backward();
//! for (name, value) in terms.values().unwrap() {
//!     println!("{name} = {value:.4}");
//! }
//! loss.epoch_end(0); // advances the alpha schedule of logit_margin, if any
//! ```

// modules in dependency order, without cycles: spec -> impls -> fused -> inputs, params
mod fused;
mod impls;
mod inputs;
mod params;
mod spec;

pub use params::{AlphaSchedule, Reduction};
pub use spec::{LOSS_NAMES, LossSpec, build_loss};

use tch::{Kind, Tensor};

/// Errors of loss construction and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// No loss has this name.
    #[error("unknown loss '{name}' (choose one of: {choices})")]
    UnknownLoss {
        /// The name given.
        name: String,
        /// The valid names.
        choices: String,
    },
    /// A parameter that the loss does not take.
    #[error("loss '{loss}' has no parameter '{param}' (its parameters: {allowed})")]
    UnknownParam {
        /// The loss.
        loss: String,
        /// The parameter given.
        param: String,
        /// The valid parameters.
        allowed: String,
    },
    /// A parameter that the parameters given do not hold.
    #[error(
        "loss '{loss}': parameter '{param}' is missing (the loss config group gives every parameter)"
    )]
    MissingParam {
        /// The loss.
        loss: String,
        /// The missing parameter.
        param: String,
    },
    /// A parameter value of the wrong type or out of range.
    #[error("loss '{loss}': invalid {param} = {value}: {reason}")]
    InvalidParam {
        /// The loss.
        loss: String,
        /// The parameter.
        param: String,
        /// The value given.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// Logits and targets that do not fit together.
    #[error("{0}")]
    Shape(String),
    /// A target outside `0..C` that is not the ignore index.
    #[error("target {target} is outside 0..{classes} (and is not the ignore index {ignore_index})")]
    TargetOutOfRange {
        /// The offending target.
        target: i64,
        /// Number of classes.
        classes: i64,
        /// The ignore index in force.
        ignore_index: i64,
    },
    /// A loss term is not a scalar where one is needed.
    #[error("loss term '{0}' is not a scalar (reduction 'none'?)")]
    NotScalar(String),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The terms a loss returns: the first is the total that is back-propagated.
///
/// Terms that are only reported (not back-propagated) may be held as plain values and turned
/// into tensors on first access, which saves tensor allocations in the fused kernels.
#[derive(Debug)]
pub struct LossTerms {
    names: &'static [&'static str],
    total: Tensor,
    rest: Vec<Term>,
}

#[derive(Debug)]
enum Term {
    Tensor(Tensor),
    Value(f64, std::sync::OnceLock<Tensor>),
}

impl LossTerms {
    pub(crate) fn new(names: &'static [&'static str], tensors: Vec<Tensor>) -> Self {
        debug_assert_eq!(names.len(), tensors.len());
        let mut it = tensors.into_iter();
        let total = it.next().expect("a total term");
        LossTerms {
            names,
            total,
            rest: it.map(Term::Tensor).collect(),
        }
    }

    /// A differentiable total and reported values for the other terms.
    pub(crate) fn with_values(
        names: &'static [&'static str],
        total: Tensor,
        values: &[f64],
    ) -> Self {
        debug_assert_eq!(names.len(), values.len() + 1);
        LossTerms {
            names,
            total,
            rest: values
                .iter()
                .map(|&v| Term::Value(v, std::sync::OnceLock::new()))
                .collect(),
        }
    }

    /// The total loss (first term).
    pub fn total(&self) -> &Tensor {
        &self.total
    }

    /// Term names, in order (the reference's names).
    pub fn names(&self) -> &'static [&'static str] {
        self.names
    }

    fn tensor_at(&self, i: usize) -> &Tensor {
        if i == 0 {
            return &self.total;
        }
        match &self.rest[i - 1] {
            Term::Tensor(t) => t,
            Term::Value(v, cell) => cell.get_or_init(|| Tensor::from(*v as f32)),
        }
    }

    /// The term called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| self.tensor_at(i))
    }

    /// Every term as (name, tensor).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Tensor)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, self.tensor_at(i)))
    }

    /// Every term's value (scalar terms only).
    pub fn values(&self) -> Result<Vec<(&'static str, f64)>, LossError> {
        let scalar = |n: &str, t: &Tensor| -> Result<f64, LossError> {
            if t.numel() != 1 {
                return Err(LossError::NotScalar(n.to_string()));
            }
            Ok(t.to_kind(Kind::Double).f_double_value(&[])?)
        };
        let mut out = vec![(self.names[0], scalar(self.names[0], &self.total)?)];
        for (n, term) in self.names[1..].iter().zip(&self.rest) {
            out.push(match term {
                Term::Tensor(t) => (*n, scalar(n, t)?),
                Term::Value(v, _) => (*n, *v as f32 as f64),
            });
        }
        Ok(out)
    }
}

/// A loss that can be plugged into a training loop.
pub trait Loss: Send {
    /// The config name (`ce`, `logit_margin`, ...).
    fn name(&self) -> &'static str;
    /// Names of the terms `forward` returns; the first is the total.
    fn term_names(&self) -> &'static [&'static str];
    /// Computes the terms for `logits` (`N x C` or `N x C x ...`) and `targets` (`N` or `N x ...`).
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError>;
    /// Called after each training epoch (the reference calls its alpha schedule here).
    fn epoch_end(&mut self, _epoch: usize) {}
    /// Current value of a scheduled weight, if the loss has one (logged as `alpha`).
    fn scheduled_alpha(&self) -> Option<f64> {
        None
    }
}
