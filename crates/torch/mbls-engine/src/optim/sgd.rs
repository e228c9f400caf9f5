//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::params::{Param, build_params};
use super::state::{
    HyperParams, OptimizerKind, OptimizerMeta, OptimizerState, ParamStateMeta,
    STATE_FORMAT_VERSION, TensorTaker, kind_mismatch, match_params, snapshot, state_key,
};
use super::{
    OptimError, Optimizer, WeightDecayPolicy, add_scaled, add_scaled_, check_lr, check_range,
};

/// Hyper-parameters of [`Sgd`] (PyTorch's `torch.optim.SGD`, `maximize=False`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SgdConfig {
    /// Learning rate (finite, >= 0). Default 1e-3, as PyTorch.
    pub lr: f64,
    /// Momentum factor, in [0, 1). Default 0 (plain SGD, no state).
    pub momentum: f64,
    /// Dampening of the momentum, in [0, 1]. Default 0.
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`). Default false.
    pub nesterov: bool,
    /// L2 penalty added to the gradient (`g += weight_decay * p`), finite, >= 0. Default 0.
    pub weight_decay: f64,
    /// Which parameters the weight decay applies to. Default: all.
    pub decay_policy: WeightDecayPolicy,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decay_policy: WeightDecayPolicy::All,
        }
    }
}

impl SgdConfig {
    /// Checks every hyper-parameter's range and the Nesterov conditions.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.lr)?;
        let m = self.momentum;
        check_range("momentum", m, (0.0..1.0).contains(&m), "must be in [0, 1)")?;
        let d = self.dampening;
        check_range(
            "dampening",
            d,
            (0.0..=1.0).contains(&d),
            "must be in [0, 1]",
        )?;
        let wd = self.weight_decay;
        check_range(
            "weight_decay",
            wd,
            wd >= 0.0 && wd.is_finite(),
            "must be finite and >= 0",
        )?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(OptimError::InvalidConfig(
                "Nesterov momentum requires momentum > 0 and dampening = 0".into(),
            ));
        }
        Ok(())
    }
}

/// State of one parameter.
#[derive(Debug)]
struct SgdSlot {
    step: u64,
    momentum_buffer: Option<Tensor>,
}

/// SGD as `torch.optim.SGD` (for-loop implementation). For each parameter with a gradient
/// `g`, in float32:
///
/// ```text
/// g = g + weight_decay * p                      (if weight_decay != 0 and it applies to p)
/// if momentum != 0:
///     buf = g                                   (first step: a copy, no dampening)
///     buf = momentum * buf + (1 - dampening) * g (later steps)
///     g = g + momentum * buf if nesterov else buf
/// p = p - lr * g
/// ```
#[derive(Debug)]
pub struct Sgd {
    config: SgdConfig,
    params: Vec<Param>,
    state: Vec<SgdSlot>,
}

impl Sgd {
    /// An SGD optimizer over named parameters (for example [`super::trainable_variables`]).
    ///
    /// Fails on invalid hyper-parameters (see [`SgdConfig::validate`]), an empty list,
    /// duplicate names or non-float tensors.
    pub fn new(
        params: impl IntoIterator<Item = (String, Tensor)>,
        config: SgdConfig,
    ) -> Result<Self, OptimError> {
        config.validate()?;
        let params = build_params(params, config.decay_policy)?;
        let state = params
            .iter()
            .map(|_| SgdSlot {
                step: 0,
                momentum_buffer: None,
            })
            .collect();
        Ok(Sgd {
            config,
            params,
            state,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl Optimizer for Sgd {
    fn kind(&self) -> OptimizerKind {
        OptimizerKind::Sgd
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn step(&mut self) -> Result<(), OptimError> {
        let _guard = tch::no_grad_guard();
        let c = &self.config;
        for (p, slot) in self.params.iter_mut().zip(&mut self.state) {
            let grad = p.tensor.grad();
            if !grad.defined() {
                continue;
            }
            let mut d_p = if c.weight_decay != 0.0 && p.weight_decay {
                add_scaled(&grad, &p.tensor, c.weight_decay)?
            } else {
                grad
            };
            if c.momentum != 0.0 {
                let buf = match &mut slot.momentum_buffer {
                    None => slot.momentum_buffer.insert(d_p.f_detach_copy()?),
                    Some(buf) => {
                        let _ = buf.f_mul_scalar_(c.momentum)?;
                        if c.dampening == 0.0 {
                            let _ = buf.f_add_(&d_p)?;
                        } else {
                            add_scaled_(buf, &d_p, 1.0 - c.dampening)?;
                        }
                        buf
                    }
                };
                d_p = if c.nesterov {
                    add_scaled(&d_p, buf, c.momentum)?
                } else {
                    buf.shallow_clone()
                };
            }
            add_scaled_(&mut p.tensor, &d_p, -c.lr)?;
            slot.step += 1;
        }
        Ok(())
    }

    fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<(), OptimError> {
        check_lr(lr)?;
        self.config.lr = lr;
        Ok(())
    }

    fn state_dict(&self) -> Result<OptimizerState, OptimError> {
        let mut tensors = Vec::new();
        let mut metas = Vec::with_capacity(self.params.len());
        for (p, slot) in self.params.iter().zip(&self.state) {
            if let Some(buf) = &slot.momentum_buffer {
                tensors.push((state_key(&p.name, "momentum_buffer"), snapshot(buf)?));
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
                hyper: HyperParams::Sgd(self.config.clone()),
                params: metas,
            },
            tensors,
        })
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<(), OptimError> {
        let config = match &state.meta.hyper {
            HyperParams::Sgd(c) => c,
            other => return Err(kind_mismatch(OptimizerKind::Sgd, other.kind())),
        };
        config.validate()?;
        let metas = match_params(&self.params, &state.meta)?;
        let mut taker = TensorTaker::new(state);
        let mut slots = Vec::with_capacity(self.params.len());
        for (p, m) in self.params.iter().zip(&metas) {
            let momentum_buffer = if m.step > 0 && config.momentum != 0.0 {
                Some(taker.take(p, "momentum_buffer")?)
            } else {
                None
            };
            slots.push(SgdSlot {
                step: m.step,
                momentum_buffer,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn params() -> Vec<(String, Tensor)> {
        vec![
            (
                "w".to_string(),
                Tensor::ones([2, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true),
            ),
            (
                "b".to_string(),
                Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true),
            ),
        ]
    }

    fn cfg() -> SgdConfig {
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..SgdConfig::default()
        }
    }

    fn expect_invalid(config: SgdConfig, name: &str) {
        match Sgd::new(params(), config) {
            Err(OptimError::InvalidHyperParameter { name: n, .. }) => assert_eq!(n, name),
            other => panic!("expected invalid {name}, got {other:?}"),
        }
    }

    #[test]
    fn validation() {
        expect_invalid(SgdConfig { lr: -0.1, ..cfg() }, "lr");
        expect_invalid(
            SgdConfig {
                lr: f64::NAN,
                ..cfg()
            },
            "lr",
        );
        expect_invalid(
            SgdConfig {
                momentum: 1.0,
                ..cfg()
            },
            "momentum",
        );
        expect_invalid(
            SgdConfig {
                momentum: -0.5,
                ..cfg()
            },
            "momentum",
        );
        expect_invalid(
            SgdConfig {
                dampening: 1.5,
                ..cfg()
            },
            "dampening",
        );
        expect_invalid(
            SgdConfig {
                weight_decay: -1e-4,
                ..cfg()
            },
            "weight_decay",
        );
        let nesterov_no_momentum = SgdConfig {
            nesterov: true,
            momentum: 0.0,
            ..cfg()
        };
        assert!(matches!(
            Sgd::new(params(), nesterov_no_momentum),
            Err(OptimError::InvalidConfig(_))
        ));
        let nesterov_dampening = SgdConfig {
            nesterov: true,
            dampening: 0.1,
            ..cfg()
        };
        assert!(matches!(
            Sgd::new(params(), nesterov_dampening),
            Err(OptimError::InvalidConfig(_))
        ));
        let mut opt = Sgd::new(params(), cfg()).unwrap();
        assert!(opt.set_lr(-1.0).is_err());
        opt.set_lr(0.5).unwrap();
        assert_eq!(opt.lr(), 0.5);
    }

    #[test]
    fn skips_undefined_grads_and_zero_grad() {
        let mut opt = Sgd::new(params(), cfg()).unwrap();
        opt.step().unwrap(); // no gradient yet: nothing moves, no state
        let st = opt.state_dict().unwrap();
        assert!(st.tensors.is_empty());
        assert!(st.meta.params.iter().all(|p| p.step == 0));
        let w = opt.params()[0].tensor().shallow_clone();
        (&w * 2.0).sum(Kind::Float).backward();
        opt.step().unwrap();
        let v = Vec::<f32>::try_from(w.detach().view([-1])).unwrap();
        assert!(v.iter().all(|x| (x - 0.8).abs() < 1e-7), "{v:?}");
        let st = opt.state_dict().unwrap();
        assert_eq!(st.tensors.len(), 1);
        assert_eq!(st.tensors[0].0, "w.momentum_buffer");
        assert_eq!(st.meta.params[0].step, 1);
        assert_eq!(st.meta.params[1].step, 0);
        opt.zero_grad();
        let g = Vec::<f32>::try_from(w.grad().view([-1])).unwrap();
        assert!(g.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn state_dict_mismatches() {
        let mut opt = Sgd::new(params(), cfg()).unwrap();
        let w = opt.params()[0].tensor().shallow_clone();
        (&w * 2.0).sum(Kind::Float).backward();
        opt.step().unwrap();
        let good = opt.state_dict().unwrap();

        // a parameter with another shape
        let other = vec![
            (
                "w".to_string(),
                Tensor::ones([3, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true),
            ),
            params().remove(1),
        ];
        let mut fresh = Sgd::new(other, cfg()).unwrap();
        match fresh.load_state_dict(&good) {
            Err(OptimError::ShapeMismatch {
                name,
                expected,
                found,
            }) => {
                assert_eq!(name, "w");
                assert_eq!(expected, [3, 2]);
                assert_eq!(found, [2, 3]);
            }
            other => panic!("{other:?}"),
        }

        // a parameter missing from the optimizer / from the state
        let mut fewer = Sgd::new(params().into_iter().take(1), cfg()).unwrap();
        match fewer.load_state_dict(&good) {
            Err(OptimError::UnexpectedParameter(n)) => assert_eq!(n, "b"),
            other => panic!("{other:?}"),
        }
        let mut more = Sgd::new(
            params().into_iter().chain([(
                "extra".to_string(),
                Tensor::zeros([1], (Kind::Float, Device::Cpu)),
            )]),
            cfg(),
        )
        .unwrap();
        match more.load_state_dict(&good) {
            Err(OptimError::MissingParameter(n)) => assert_eq!(n, "extra"),
            other => panic!("{other:?}"),
        }

        // a state tensor with a wrong shape, a missing one, an extra one
        let mut fresh = Sgd::new(params(), cfg()).unwrap();
        let mut bad = opt.state_dict().unwrap();
        bad.tensors[0].1 = Tensor::zeros([6], (Kind::Float, Device::Cpu));
        match fresh.load_state_dict(&bad) {
            Err(OptimError::ShapeMismatch { name, .. }) => assert_eq!(name, "w.momentum_buffer"),
            other => panic!("{other:?}"),
        }
        let mut bad = opt.state_dict().unwrap();
        bad.tensors.clear();
        match fresh.load_state_dict(&bad) {
            Err(OptimError::MissingStateTensor(n)) => assert_eq!(n, "w.momentum_buffer"),
            other => panic!("{other:?}"),
        }
        let mut bad = opt.state_dict().unwrap();
        bad.tensors.push((
            "b.momentum_buffer".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        ));
        match fresh.load_state_dict(&bad) {
            Err(OptimError::UnexpectedStateTensor(n)) => assert_eq!(n, "b.momentum_buffer"),
            other => panic!("{other:?}"),
        }
        // failed loads leave the optimizer untouched
        assert!(fresh.state_dict().unwrap().tensors.is_empty());

        // another optimizer kind
        let adam = super::super::Adam::new(params(), Default::default()).unwrap();
        match fresh.load_state_dict(&adam.state_dict().unwrap()) {
            Err(OptimError::KindMismatch { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_str()), ("sgd", "adam"))
            }
            other => panic!("{other:?}"),
        }

        fresh.load_state_dict(&good).unwrap();
        assert_eq!(fresh.state_dict().unwrap().meta, good.meta);
    }
}
