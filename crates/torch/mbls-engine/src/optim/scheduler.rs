//! Per-epoch learning-rate schedulers with PyTorch semantics and serialisable state.
//!
//! A scheduler owns the learning rate: construct it with the base learning rate, call
//! [`LrScheduler::step`] once per epoch (after the epoch's optimizer steps, as in PyTorch)
//! and pass the returned value to [`super::Optimizer::set_lr`]. After construction
//! `epoch() == 0` and `lr() == base_lr` (except [`CosineWarmup`], which starts warm-up
//! low); each `step` advances the epoch by one and returns the learning rate for it.
//!
//! Every scheduler serialises (serde) with its configuration and progress, so a checkpoint
//! that stores it resumes exactly; [`Scheduler`] is the enum of all of them, tagged by
//! `kind`, for configuration-driven training loops. Values that JSON cannot hold (the
//! infinite initial best of [`ReduceLrOnPlateau`]) are written as strings.

use serde::{Deserialize, Serialize};

use super::{OptimError, check_lr, check_range};

/// A learning-rate schedule stepped once per epoch.
pub trait LrScheduler {
    /// The learning rate of the current epoch.
    fn lr(&self) -> f64;

    /// The learning rate the schedule started from.
    fn base_lr(&self) -> f64;

    /// Number of [`LrScheduler::step`] calls so far (PyTorch's `last_epoch`).
    fn epoch(&self) -> u64;

    /// Advances one epoch and returns the new learning rate. `metric` is the monitored
    /// value for [`ReduceLrOnPlateau`] (required there: [`OptimError::MissingMetric`]
    /// otherwise) and ignored by the other schedulers.
    fn step(&mut self, metric: Option<f64>) -> Result<f64, OptimError>;
}

/// A constant learning rate (no schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstantLr {
    base_lr: f64,
    epoch: u64,
}

impl ConstantLr {
    /// A constant schedule at `base_lr` (finite, >= 0).
    pub fn new(base_lr: f64) -> Result<Self, OptimError> {
        let s = ConstantLr { base_lr, epoch: 0 };
        s.validate()?;
        Ok(s)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.base_lr)
    }
}

impl LrScheduler for ConstantLr {
    fn lr(&self) -> f64 {
        self.base_lr
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self, _metric: Option<f64>) -> Result<f64, OptimError> {
        self.epoch += 1;
        Ok(self.base_lr)
    }
}

/// `torch.optim.lr_scheduler.MultiStepLR`: the learning rate is multiplied by `gamma` at
/// each milestone epoch (by `gamma^k` when a milestone is listed k times). Computed
/// incrementally as PyTorch does (`lr = lr * gamma^k` at a milestone), so the values are
/// bitwise PyTorch's, e.g. 0.1, then 0.010000000000000002 after one milestone with
/// `gamma = 0.1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStepLr {
    base_lr: f64,
    milestones: Vec<u64>,
    gamma: f64,
    lr: f64,
    epoch: u64,
}

impl MultiStepLr {
    /// Decays `base_lr` by `gamma` (finite, >= 0) at each epoch of `milestones` (any order,
    /// repeats count).
    pub fn new(base_lr: f64, milestones: &[u64], gamma: f64) -> Result<Self, OptimError> {
        let mut milestones = milestones.to_vec();
        milestones.sort_unstable();
        let s = MultiStepLr {
            base_lr,
            milestones,
            gamma,
            lr: base_lr,
            epoch: 0,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.base_lr)?;
        check_gamma(self.gamma)
    }

    /// The milestones, sorted.
    pub fn milestones(&self) -> &[u64] {
        &self.milestones
    }

    /// The decay factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl LrScheduler for MultiStepLr {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self, _metric: Option<f64>) -> Result<f64, OptimError> {
        self.epoch += 1;
        let hits = self.milestones.iter().filter(|&&m| m == self.epoch).count();
        if hits > 0 {
            self.lr *= self.gamma.powf(hits as f64);
        }
        Ok(self.lr)
    }
}

/// `torch.optim.lr_scheduler.StepLR`: the learning rate is multiplied by `gamma` every
/// `step_size` epochs (at epochs `step_size`, `2 step_size`, ...), incrementally as PyTorch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLr {
    base_lr: f64,
    step_size: u64,
    gamma: f64,
    lr: f64,
    epoch: u64,
}

impl StepLr {
    /// Decays `base_lr` by `gamma` (finite, >= 0) every `step_size` (>= 1) epochs.
    pub fn new(base_lr: f64, step_size: u64, gamma: f64) -> Result<Self, OptimError> {
        let s = StepLr {
            base_lr,
            step_size,
            gamma,
            lr: base_lr,
            epoch: 0,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.base_lr)?;
        check_gamma(self.gamma)?;
        check_range(
            "step_size",
            self.step_size as f64,
            self.step_size >= 1,
            "must be >= 1",
        )
    }
}

impl LrScheduler for StepLr {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self, _metric: Option<f64>) -> Result<f64, OptimError> {
        self.epoch += 1;
        if self.epoch % self.step_size == 0 {
            self.lr *= self.gamma;
        }
        Ok(self.lr)
    }
}

/// Whether a lower or a higher metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`ReduceLrOnPlateau`] compares a metric with the best one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// Better means beyond `best * (1 ∓ threshold)`.
    Rel,
    /// Better means beyond `best ∓ threshold`.
    Abs,
}

/// Configuration of [`ReduceLrOnPlateau`]; the defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlateauConfig {
    /// Lower or higher is better. Default: min.
    pub mode: PlateauMode,
    /// Factor applied to the learning rate on a plateau, in [0, 1). Default 0.1.
    pub factor: f64,
    /// Number of epochs without improvement tolerated; the rate drops on the next one.
    /// Default 10.
    pub patience: u64,
    /// Minimum change that counts as an improvement (finite, >= 0). Default 1e-4.
    pub threshold: f64,
    /// Relative or absolute threshold. Default: relative.
    pub threshold_mode: ThresholdMode,
    /// Epochs after a reduction during which bad epochs are not counted. Default 0.
    pub cooldown: u64,
    /// Lower bound of the learning rate (finite, >= 0). Default 0.
    pub min_lr: f64,
    /// A reduction smaller than this is skipped (finite, >= 0). Default 1e-8.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau`, stepped with the monitored metric.
///
/// Each step: the metric is better than the best so far when (mode min, rel)
/// `metric < best * (1 - threshold)`, (min, abs) `metric < best - threshold`, (max, rel)
/// `metric > best * (1 + threshold)`, (max, abs) `metric > best + threshold`; the best
/// starts at +inf (min) or -inf (max), and a NaN metric is never better. A better metric
/// resets the count of bad epochs, another one increments it; during cooldown the count is
/// held at 0. When the count exceeds `patience`, `lr = max(lr * factor, min_lr)` (skipped
/// if the change is at most `eps`), cooldown starts and the count resets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    base_lr: f64,
    lr: f64,
    #[serde(with = "super::nonfinite")]
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    epoch: u64,
}

impl ReduceLrOnPlateau {
    /// A plateau scheduler starting at `base_lr`.
    pub fn new(base_lr: f64, config: PlateauConfig) -> Result<Self, OptimError> {
        let best = match config.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        let s = ReduceLrOnPlateau {
            config,
            base_lr,
            lr: base_lr,
            best,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            epoch: 0,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OptimError> {
        let c = &self.config;
        check_lr(self.base_lr)?;
        check_range(
            "factor",
            c.factor,
            (0.0..1.0).contains(&c.factor),
            "must be in [0, 1)",
        )?;
        for (name, v) in [
            ("threshold", c.threshold),
            ("min_lr", c.min_lr),
            ("eps", c.eps),
        ] {
            check_range(
                name,
                v,
                v >= 0.0 && v.is_finite(),
                "must be finite and >= 0",
            )?;
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The best metric so far (+inf or -inf before the first step).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// The current count of epochs without improvement.
    pub fn num_bad_epochs(&self) -> u64 {
        self.num_bad_epochs
    }

    fn is_better(&self, a: f64) -> bool {
        let (best, t) = (self.best, self.config.threshold);
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }
}

impl LrScheduler for ReduceLrOnPlateau {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self, metric: Option<f64>) -> Result<f64, OptimError> {
        let current = metric.ok_or(OptimError::MissingMetric)?;
        self.epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.config.patience {
            let new_lr = (self.lr * self.config.factor).max(self.config.min_lr);
            if self.lr - new_lr > self.config.eps {
                self.lr = new_lr;
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
        }
        Ok(self.lr)
    }
}

/// Linear warm-up then cosine annealing, in closed form. With base rate `b`, start factor
/// `f`, `W = warmup_epochs`, `T = total_epochs`, the rate at epoch `e` is
///
/// ```text
/// e < W:       b * (f + (1 - f) * e / W)
/// W <= e < T:  min_lr + (b - min_lr) * (1 + cos(pi * (e - W) / (T - W))) / 2
/// e >= T:      min_lr
/// ```
///
/// so it rises linearly from `f b` to `b` at epoch `W` and follows a half cosine down to
/// `min_lr`, reached at epoch `T` and kept afterwards. For `e <= T` this is PyTorch's
/// `SequentialLR([LinearLR(start_factor=f, total_iters=W), CosineAnnealingLR(T_max=T-W,
/// eta_min=min_lr)], milestones=[W])` (which computes the same values recursively, equal
/// within 1e-15; after `T` PyTorch's cosine would rise again, this schedule stays at
/// `min_lr`). `W = 0` gives plain cosine annealing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineWarmup {
    base_lr: f64,
    warmup_epochs: u64,
    total_epochs: u64,
    min_lr: f64,
    warmup_start_factor: f64,
    lr: f64,
    epoch: u64,
}

impl CosineWarmup {
    /// The schedule described on the type. Requires `total_epochs > warmup_epochs`,
    /// `0 <= min_lr <= base_lr` and `warmup_start_factor` in [0, 1].
    pub fn new(
        base_lr: f64,
        warmup_epochs: u64,
        total_epochs: u64,
        min_lr: f64,
        warmup_start_factor: f64,
    ) -> Result<Self, OptimError> {
        let mut s = CosineWarmup {
            base_lr,
            warmup_epochs,
            total_epochs,
            min_lr,
            warmup_start_factor,
            lr: base_lr,
            epoch: 0,
        };
        s.validate()?;
        s.lr = s.lr_at(0);
        Ok(s)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.base_lr)?;
        check_range(
            "min_lr",
            self.min_lr,
            self.min_lr >= 0.0 && self.min_lr <= self.base_lr,
            "must be in [0, base_lr]",
        )?;
        let f = self.warmup_start_factor;
        check_range(
            "warmup_start_factor",
            f,
            (0.0..=1.0).contains(&f),
            "must be in [0, 1]",
        )?;
        if self.total_epochs <= self.warmup_epochs {
            return Err(OptimError::InvalidConfig(format!(
                "total_epochs ({}) must exceed warmup_epochs ({})",
                self.total_epochs, self.warmup_epochs
            )));
        }
        Ok(())
    }

    /// The learning rate at epoch `e` (the closed form on the type).
    pub fn lr_at(&self, e: u64) -> f64 {
        let (b, w, t) = (self.base_lr, self.warmup_epochs, self.total_epochs);
        if e < w {
            let f = self.warmup_start_factor;
            b * (f + (1.0 - f) * e as f64 / w as f64)
        } else if e >= t {
            self.min_lr
        } else {
            let progress = (e - w) as f64 / (t - w) as f64;
            self.min_lr + (b - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
        }
    }
}

impl LrScheduler for CosineWarmup {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn base_lr(&self) -> f64 {
        self.base_lr
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self, _metric: Option<f64>) -> Result<f64, OptimError> {
        self.epoch += 1;
        self.lr = self.lr_at(self.epoch);
        Ok(self.lr)
    }
}

/// Any of the schedulers, serialised with a `kind` tag (`constant`, `multi_step`, `step`,
/// `plateau`, `cosine_warmup`) next to the scheduler's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scheduler {
    /// [`ConstantLr`].
    Constant(ConstantLr),
    /// [`MultiStepLr`].
    MultiStep(MultiStepLr),
    /// [`StepLr`].
    Step(StepLr),
    /// [`ReduceLrOnPlateau`].
    Plateau(ReduceLrOnPlateau),
    /// [`CosineWarmup`].
    CosineWarmup(CosineWarmup),
}

impl Scheduler {
    fn inner(&self) -> &dyn LrScheduler {
        match self {
            Scheduler::Constant(s) => s,
            Scheduler::MultiStep(s) => s,
            Scheduler::Step(s) => s,
            Scheduler::Plateau(s) => s,
            Scheduler::CosineWarmup(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn LrScheduler {
        match self {
            Scheduler::Constant(s) => s,
            Scheduler::MultiStep(s) => s,
            Scheduler::Step(s) => s,
            Scheduler::Plateau(s) => s,
            Scheduler::CosineWarmup(s) => s,
        }
    }

    /// The `kind` tag of this scheduler.
    pub fn kind(&self) -> &'static str {
        match self {
            Scheduler::Constant(_) => "constant",
            Scheduler::MultiStep(_) => "multi_step",
            Scheduler::Step(_) => "step",
            Scheduler::Plateau(_) => "plateau",
            Scheduler::CosineWarmup(_) => "cosine_warmup",
        }
    }

    /// Checks the configuration of the wrapped scheduler (useful after deserialising).
    pub fn validate(&self) -> Result<(), OptimError> {
        match self {
            Scheduler::Constant(s) => s.validate(),
            Scheduler::MultiStep(s) => s.validate(),
            Scheduler::Step(s) => s.validate(),
            Scheduler::Plateau(s) => s.validate(),
            Scheduler::CosineWarmup(s) => s.validate(),
        }
    }

    /// Replaces this scheduler's configuration and progress with a saved one of the same
    /// kind (as PyTorch's `load_state_dict`); fails, leaving `self` unchanged, if the kinds
    /// differ or the saved configuration is invalid.
    pub fn load_state(&mut self, saved: Scheduler) -> Result<(), OptimError> {
        if self.kind() != saved.kind() {
            return Err(OptimError::KindMismatch {
                expected: self.kind().to_string(),
                found: saved.kind().to_string(),
            });
        }
        saved.validate()?;
        *self = saved;
        Ok(())
    }
}

impl LrScheduler for Scheduler {
    fn lr(&self) -> f64 {
        self.inner().lr()
    }
    fn base_lr(&self) -> f64 {
        self.inner().base_lr()
    }
    fn epoch(&self) -> u64 {
        self.inner().epoch()
    }
    fn step(&mut self, metric: Option<f64>) -> Result<f64, OptimError> {
        self.inner_mut().step(metric)
    }
}

fn check_gamma(gamma: f64) -> Result<(), OptimError> {
    check_range(
        "gamma",
        gamma,
        gamma >= 0.0 && gamma.is_finite(),
        "must be finite and >= 0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(MultiStepLr::new(-0.1, &[1], 0.1).is_err());
        assert!(MultiStepLr::new(0.1, &[1], f64::NAN).is_err());
        assert!(StepLr::new(0.1, 0, 0.1).is_err());
        let bad_factor = PlateauConfig {
            factor: 1.0,
            ..PlateauConfig::default()
        };
        assert!(ReduceLrOnPlateau::new(0.1, bad_factor).is_err());
        assert!(CosineWarmup::new(0.1, 5, 5, 0.0, 0.1).is_err());
        assert!(CosineWarmup::new(0.1, 0, 5, 0.2, 0.1).is_err());
        assert!(CosineWarmup::new(0.1, 1, 5, 0.0, 1.5).is_err());
        assert!(ConstantLr::new(f64::INFINITY).is_err());
    }

    #[test]
    fn plateau_needs_metric_and_serialises_infinite_best() {
        let mut s = ReduceLrOnPlateau::new(0.1, PlateauConfig::default()).unwrap();
        assert!(matches!(s.step(None), Err(OptimError::MissingMetric)));
        assert_eq!(s.epoch(), 0);
        let json = serde_json::to_string(&Scheduler::Plateau(s.clone())).unwrap();
        assert!(json.contains("\"best\":\"inf\""), "{json}");
        let back: Scheduler = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Scheduler::Plateau(s.clone()));
        s.step(Some(0.5)).unwrap();
        assert_eq!(s.best(), 0.5);
        // NaN is never better
        s.step(Some(f64::NAN)).unwrap();
        assert_eq!(s.num_bad_epochs(), 1);
    }

    #[test]
    fn cosine_endpoints() {
        let s = CosineWarmup::new(0.1, 5, 30, 1e-3, 0.1).unwrap();
        assert!((s.lr() - 0.01).abs() < 1e-15);
        assert_eq!(s.lr_at(5), 0.1);
        assert_eq!(s.lr_at(30), 1e-3);
        assert_eq!(s.lr_at(100), 1e-3);
        let plain = CosineWarmup::new(0.2, 0, 10, 0.0, 1.0).unwrap();
        assert_eq!(plain.lr(), 0.2);
        assert!((plain.lr_at(5) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn serialised_tag_is_kind() {
        let all = [
            Scheduler::Constant(ConstantLr::new(0.1).unwrap()),
            Scheduler::MultiStep(MultiStepLr::new(0.1, &[2], 0.1).unwrap()),
            Scheduler::Step(StepLr::new(0.1, 2, 0.1).unwrap()),
            Scheduler::Plateau(ReduceLrOnPlateau::new(0.1, PlateauConfig::default()).unwrap()),
            Scheduler::CosineWarmup(CosineWarmup::new(0.1, 1, 3, 0.0, 0.5).unwrap()),
        ];
        for s in all {
            let v = serde_json::to_value(&s).unwrap();
            assert_eq!(v["kind"], s.kind(), "{v}");
            let back: Scheduler = serde_json::from_value(v).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn resume_through_json_matches_uninterrupted() {
        let make = || Scheduler::MultiStep(MultiStepLr::new(0.1, &[3, 6, 6], 0.5).unwrap());
        let mut a = make();
        let mut b = make();
        for _ in 0..4 {
            a.step(None).unwrap();
            b.step(None).unwrap();
        }
        let json = serde_json::to_string(&b).unwrap();
        let mut c = make();
        c.load_state(serde_json::from_str(&json).unwrap()).unwrap();
        for _ in 0..5 {
            assert_eq!(a.step(None).unwrap(), c.step(None).unwrap());
        }
        assert_eq!(a, c);
        assert_eq!(c.lr(), 0.1 * 0.5 * 0.25);
        let mut d = Scheduler::Step(StepLr::new(0.1, 2, 0.5).unwrap());
        assert!(matches!(
            d.load_state(a.clone()),
            Err(OptimError::KindMismatch { .. })
        ));
    }
}
