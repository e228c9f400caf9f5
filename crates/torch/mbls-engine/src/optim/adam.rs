//! Adam (coupled L2 weight decay) and AdamW (decoupled weight decay).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::params::{Param, build_params};
use super::state::{
    HyperParams, OptimizerKind, OptimizerMeta, OptimizerState, ParamStateMeta,
    STATE_FORMAT_VERSION, TensorTaker, kind_mismatch, match_params, snapshot, state_key,
    zeros_like,
};
use super::{OptimError, Optimizer, WeightDecayPolicy, add_scaled, check_lr, check_range};

/// Hyper-parameters of [`Adam`] and [`AdamW`] (PyTorch's `torch.optim.Adam`/`AdamW` with
/// `maximize=False`, `capturable=False`, `differentiable=False`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamConfig {
    /// Learning rate (finite, >= 0). Default 1e-3.
    pub lr: f64,
    /// Decay rates of the first and second moment averages, each in [0, 1).
    /// Default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Term added to the denominator (finite, >= 0). Default 1e-8.
    pub eps: f64,
    /// Weight decay (finite, >= 0): added to the gradient by [`Adam`], applied to the
    /// parameter as `p *= 1 - lr * weight_decay` by [`AdamW`]. Default 0 here; PyTorch's
    /// AdamW defaults to 1e-2 ([`AdamConfig::adamw_default`]).
    pub weight_decay: f64,
    /// Use the maximum of the past second moments (AMSGrad). Default false.
    pub amsgrad: bool,
    /// Which parameters the weight decay applies to. Default: all.
    pub decay_policy: WeightDecayPolicy,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decay_policy: WeightDecayPolicy::All,
        }
    }
}

impl AdamConfig {
    /// PyTorch's AdamW defaults: those of Adam with `weight_decay = 1e-2`.
    pub fn adamw_default() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            ..AdamConfig::default()
        }
    }

    /// Checks every hyper-parameter's range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.lr)?;
        let (b1, b2) = self.betas;
        check_range("betas.0", b1, (0.0..1.0).contains(&b1), "must be in [0, 1)")?;
        check_range("betas.1", b2, (0.0..1.0).contains(&b2), "must be in [0, 1)")?;
        let eps = self.eps;
        check_range(
            "eps",
            eps,
            eps >= 0.0 && eps.is_finite(),
            "must be finite and >= 0",
        )?;
        let wd = self.weight_decay;
        check_range(
            "weight_decay",
            wd,
            wd >= 0.0 && wd.is_finite(),
            "must be finite and >= 0",
        )
    }
}

/// Moment estimates of one parameter (created at its first update).
#[derive(Debug)]
struct Moments {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

/// State of one parameter.
#[derive(Debug)]
struct AdamSlot {
    step: u64,
    moments: Option<Moments>,
}

/// The implementation shared by [`Adam`] and [`AdamW`].
#[derive(Debug)]
struct AdamCore {
    decoupled: bool,
    config: AdamConfig,
    params: Vec<Param>,
    state: Vec<AdamSlot>,
}

impl AdamCore {
    fn new(
        params: impl IntoIterator<Item = (String, Tensor)>,
        config: AdamConfig,
        decoupled: bool,
    ) -> Result<Self, OptimError> {
        config.validate()?;
        let params = build_params(params, config.decay_policy)?;
        let state = params
            .iter()
            .map(|_| AdamSlot {
                step: 0,
                moments: None,
            })
            .collect();
        Ok(AdamCore {
            decoupled,
            config,
            params,
            state,
        })
    }

    fn kind(&self) -> OptimizerKind {
        if self.decoupled {
            OptimizerKind::AdamW
        } else {
            OptimizerKind::Adam
        }
    }

    fn step(&mut self) -> Result<(), OptimError> {
        let _guard = tch::no_grad_guard();
        let c = &self.config;
        let (beta1, beta2) = c.betas;
        for (p, slot) in self.params.iter_mut().zip(&mut self.state) {
            let mut grad = p.tensor.grad();
            if !grad.defined() {
                continue;
            }
            if slot.moments.is_none() {
                slot.moments = Some(Moments {
                    exp_avg: zeros_like(&p.tensor)?,
                    exp_avg_sq: zeros_like(&p.tensor)?,
                    max_exp_avg_sq: if c.amsgrad {
                        Some(zeros_like(&p.tensor)?)
                    } else {
                        None
                    },
                });
            }
            let Some(m) = slot.moments.as_mut() else {
                unreachable!("moments were just created")
            };
            slot.step += 1;
            if c.weight_decay != 0.0 && p.weight_decay {
                if self.decoupled {
                    let _ = p.tensor.f_mul_scalar_(1.0 - c.lr * c.weight_decay)?;
                } else {
                    grad = add_scaled(&grad, &p.tensor, c.weight_decay)?;
                }
            }
            let _ = m.exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
            let _ = m.exp_avg_sq.f_mul_scalar_(beta2)?;
            // PyTorch's addcmul_(g, g, value = 1 - beta2) computes (value * g) * g
            let _ = m
                .exp_avg_sq
                .f_addcmul_(&grad.f_mul_scalar(1.0 - beta2)?, &grad)?;
            let step = slot.step as f64;
            let bias_correction1 = 1.0 - beta1.powf(step);
            let bias_correction2 = 1.0 - beta2.powf(step);
            let step_size = c.lr / bias_correction1;
            let bias_correction2_sqrt = bias_correction2.powf(0.5);
            let second = match &m.max_exp_avg_sq {
                Some(max) => {
                    let _ = max.f_maximum_out(max, &m.exp_avg_sq)?;
                    max
                }
                None => &m.exp_avg_sq,
            };
            let mut denom = second.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?;
            let _ = denom.f_add_scalar_(c.eps)?;
            // PyTorch's addcdiv_(m, d, value = -step_size) computes p + (value * m) / d
            let _ = p
                .tensor
                .f_addcdiv_(&m.exp_avg.f_mul_scalar(-step_size)?, &denom)?;
        }
        Ok(())
    }

    fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    fn set_lr(&mut self, lr: f64) -> Result<(), OptimError> {
        check_lr(lr)?;
        self.config.lr = lr;
        Ok(())
    }

    fn hyper(&self) -> HyperParams {
        if self.decoupled {
            HyperParams::AdamW(self.config.clone())
        } else {
            HyperParams::Adam(self.config.clone())
        }
    }

    fn state_dict(&self) -> Result<OptimizerState, OptimError> {
        let mut tensors = Vec::new();
        let mut metas = Vec::with_capacity(self.params.len());
        for (p, slot) in self.params.iter().zip(&self.state) {
            if let Some(m) = &slot.moments {
                tensors.push((state_key(&p.name, "exp_avg"), snapshot(&m.exp_avg)?));
                tensors.push((state_key(&p.name, "exp_avg_sq"), snapshot(&m.exp_avg_sq)?));
                if let Some(max) = &m.max_exp_avg_sq {
                    tensors.push((state_key(&p.name, "max_exp_avg_sq"), snapshot(max)?));
                }
            }
            metas.push(ParamStateMeta {
                name: p.name.clone(),
                shape: p.shape(),
                weight_decay: p.weight_decay,
                step: slot.step,
            });
        }
        Ok(OptimizerState {
            meta: OptimizerMeta {
                format_version: STATE_FORMAT_VERSION,
                hyper: self.hyper(),
                params: metas,
            },
            tensors,
        })
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<(), OptimError> {
        let config = match (&state.meta.hyper, self.decoupled) {
            (HyperParams::Adam(c), false) | (HyperParams::AdamW(c), true) => c,
            (other, _) => return Err(kind_mismatch(self.kind(), other.kind())),
        };
        config.validate()?;
        let metas = match_params(&self.params, &state.meta)?;
        let mut taker = TensorTaker::new(state);
        let mut slots = Vec::with_capacity(self.params.len());
        for (p, m) in self.params.iter().zip(&metas) {
            let moments = if m.step > 0 {
                Some(Moments {
                    exp_avg: taker.take(p, "exp_avg")?,
                    exp_avg_sq: taker.take(p, "exp_avg_sq")?,
                    max_exp_avg_sq: if config.amsgrad {
                        Some(taker.take(p, "max_exp_avg_sq")?)
                    } else {
                        None
                    },
                })
            } else {
                None
            };
            slots.push(AdamSlot {
                step: m.step,
                moments,
            });
        }
        taker.finish()?;
        for (p, m) in self.params.iter_mut().zip(&metas) {
            p.weight_decay = m.weight_decay;
        }
        self.config = config.clone();
        self.state = slots;
        Ok(())
    }
}

/// Adam as `torch.optim.Adam` (for-loop implementation), weight decay coupled (L2 penalty
/// added to the gradient). For each parameter with a gradient `g`, at its step `t` (1, 2,
/// ...), in float32 with the scalar factors in float64:
///
/// ```text
/// g = g + weight_decay * p                         (if weight_decay != 0 and it applies)
/// m = lerp(m, g, 1 - beta1)                        (m + (1 - beta1) (g - m))
/// v = beta2 * v + ((1 - beta2) * g) * g
/// vmax = max(vmax, v); use vmax instead of v       (amsgrad)
/// denom = sqrt(v) / sqrt(1 - beta2^t) + eps
/// p = p + (-(lr / (1 - beta1^t)) * m) / denom
/// ```
#[derive(Debug)]
pub struct Adam(AdamCore);

/// AdamW as `torch.optim.AdamW` (for-loop implementation): [`Adam`] with decoupled weight
/// decay, `p *= 1 - lr * weight_decay` before the moment updates, instead of the L2 term
/// in the gradient. Note PyTorch's default weight decay of 1e-2
/// ([`AdamConfig::adamw_default`]).
#[derive(Debug)]
pub struct AdamW(AdamCore);

impl Adam {
    /// An Adam optimizer over named parameters. Fails on invalid hyper-parameters (see
    /// [`AdamConfig::validate`]), an empty list, duplicate names or non-float tensors.
    pub fn new(
        params: impl IntoIterator<Item = (String, Tensor)>,
        config: AdamConfig,
    ) -> Result<Self, OptimError> {
        AdamCore::new(params, config, false).map(Adam)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.0.config
    }
}

impl AdamW {
    /// An AdamW optimizer over named parameters. Fails on invalid hyper-parameters (see
    /// [`AdamConfig::validate`]), an empty list, duplicate names or non-float tensors.
    pub fn new(
        params: impl IntoIterator<Item = (String, Tensor)>,
        config: AdamConfig,
    ) -> Result<Self, OptimError> {
        AdamCore::new(params, config, true).map(AdamW)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.0.config
    }
}

macro_rules! delegate_optimizer {
    ($t:ty) => {
        impl Optimizer for $t {
            fn kind(&self) -> OptimizerKind {
                self.0.kind()
            }
            fn params(&self) -> &[Param] {
                &self.0.params
            }
            fn step(&mut self) -> Result<(), OptimError> {
                self.0.step()
            }
            fn zero_grad(&mut self) {
                self.0.zero_grad()
            }
            fn lr(&self) -> f64 {
                self.0.config.lr
            }
            fn set_lr(&mut self, lr: f64) -> Result<(), OptimError> {
                self.0.set_lr(lr)
            }
            fn state_dict(&self) -> Result<OptimizerState, OptimError> {
                self.0.state_dict()
            }
            fn load_state_dict(&mut self, state: &OptimizerState) -> Result<(), OptimError> {
                self.0.load_state_dict(state)
            }
        }
    };
}

delegate_optimizer!(Adam);
delegate_optimizer!(AdamW);

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn params() -> Vec<(String, Tensor)> {
        vec![(
            "w".to_string(),
            Tensor::ones([2, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true),
        )]
    }

    fn expect_invalid(config: AdamConfig, name: &str) {
        match Adam::new(params(), config.clone()) {
            Err(OptimError::InvalidHyperParameter { name: n, .. }) => assert_eq!(n, name),
            other => panic!("expected invalid {name}, got {other:?}"),
        }
        assert!(AdamW::new(params(), config).is_err());
    }

    #[test]
    fn validation() {
        let d = AdamConfig::default;
        expect_invalid(AdamConfig { lr: -1e-3, ..d() }, "lr");
        expect_invalid(
            AdamConfig {
                betas: (1.0, 0.999),
                ..d()
            },
            "betas.0",
        );
        expect_invalid(
            AdamConfig {
                betas: (0.9, -0.1),
                ..d()
            },
            "betas.1",
        );
        expect_invalid(
            AdamConfig {
                betas: (0.9, 1.5),
                ..d()
            },
            "betas.1",
        );
        expect_invalid(AdamConfig { eps: -1.0, ..d() }, "eps");
        expect_invalid(
            AdamConfig {
                weight_decay: f64::INFINITY,
                ..d()
            },
            "weight_decay",
        );
        assert_eq!(AdamConfig::adamw_default().weight_decay, 1e-2);
    }

    #[test]
    fn amsgrad_state_and_kinds() {
        let cfg = AdamConfig {
            amsgrad: true,
            ..AdamConfig::default()
        };
        let mut opt = AdamW::new(params(), cfg.clone()).unwrap();
        assert_eq!(opt.kind(), OptimizerKind::AdamW);
        let w = opt.params()[0].tensor().shallow_clone();
        (&w * 3.0).sum(Kind::Float).backward();
        opt.step().unwrap();
        let st = opt.state_dict().unwrap();
        let names: Vec<&str> = st.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w.exp_avg", "w.exp_avg_sq", "w.max_exp_avg_sq"]);
        assert_eq!(st.meta.params[0].step, 1);
        // first Adam step moves every coordinate by about lr against the gradient's sign
        let v = Vec::<f32>::try_from(w.detach().view([-1])).unwrap();
        for x in v {
            assert!((x - (1.0 - 1e-3)).abs() < 1e-6, "{x}");
        }
        let mut adam = Adam::new(params(), cfg).unwrap();
        match adam.load_state_dict(&st) {
            Err(OptimError::KindMismatch { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_str()), ("adam", "adamw"))
            }
            other => panic!("{other:?}"),
        }
        let mut again = AdamW::new(params(), AdamConfig::default()).unwrap();
        again.load_state_dict(&st).unwrap();
        assert!(again.config().amsgrad, "hyper-parameters are restored");
    }
}
