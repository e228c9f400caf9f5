//! Losses chosen by name and parameters (the reference's config names; every parameter given, from the config's loss group files).

use super::impls::*;
use super::params::{AlphaSchedule, Reduction};
use super::{Loss, LossError};
use serde_json::{Map, Value};

/// Names accepted by [`LossSpec::from_params`].
pub const LOSS_NAMES: &[&str] = &[
    "ce",
    "ls",
    "focal",
    "focal_adaptive",
    "penalty_ent",
    "mmce",
    "mmce_weighted",
    "logit_margin",
    "brier",
    "penalty_l1",
];

/// A loss and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum LossSpec {
    /// Cross-entropy.
    Ce {
        /// Target value to ignore.
        ignore_index: i64,
    },
    /// Label smoothing.
    Ls {
        /// Smoothing weight in [0, 1].
        alpha: f64,
        /// Target value to ignore.
        ignore_index: i64,
        /// Reduction.
        reduction: Reduction,
    },
    /// Focal loss.
    Focal {
        /// Focusing parameter (>= 0).
        gamma: f64,
        /// Target value to ignore.
        ignore_index: i64,
        /// Mean (true) or sum (false).
        size_average: bool,
    },
    /// Adaptive focal loss FLSD-53.
    FocalAdaptive {
        /// Gamma for `p_y >= 0.5`.
        gamma: f64,
        /// Target value to ignore.
        ignore_index: i64,
        /// Mean (true) or sum (false).
        size_average: bool,
    },
    /// Entropy penalty (ECP).
    PenaltyEnt {
        /// Weight of the entropy term (>= 0).
        alpha: f64,
        /// Target value to ignore.
        ignore_index: i64,
    },
    /// MMCE (MMCE_m).
    Mmce {
        /// Weight of the MMCE term (>= 0).
        lamda: f64,
        /// Target value to ignore.
        ignore_index: i64,
    },
    /// Weighted MMCE (MMCE_w).
    MmceWeighted {
        /// Weight of the MMCE term (>= 0).
        lamda: f64,
        /// Target value to ignore.
        ignore_index: i64,
    },
    /// Margin-based label smoothing (MbLS).
    LogitMargin {
        /// Margin m (>= 0).
        margin: f64,
        /// Weight alpha (>= 0).
        alpha: f64,
        /// Target value to ignore.
        ignore_index: i64,
        /// Alpha schedule.
        schedule: AlphaSchedule,
        /// Schedule step (added or multiplied).
        mu: f64,
        /// Upper bound of a scheduled alpha.
        max_alpha: f64,
        /// Epochs between `step` updates (>= 1).
        step_size: usize,
    },
    /// Brier score.
    Brier {
        /// Target value to ignore.
        ignore_index: i64,
    },
    /// CE plus L1 distance of the softmax to uniform.
    PenaltyL1 {
        /// Weight of the L1 term (>= 0).
        alpha: f64,
        /// Target value to ignore.
        ignore_index: i64,
    },
}

impl LossSpec {
    /// The config name.
    pub fn name(&self) -> &'static str {
        match self {
            LossSpec::Ce { .. } => "ce",
            LossSpec::Ls { .. } => "ls",
            LossSpec::Focal { .. } => "focal",
            LossSpec::FocalAdaptive { .. } => "focal_adaptive",
            LossSpec::PenaltyEnt { .. } => "penalty_ent",
            LossSpec::Mmce { .. } => "mmce",
            LossSpec::MmceWeighted { .. } => "mmce_weighted",
            LossSpec::LogitMargin { .. } => "logit_margin",
            LossSpec::Brier { .. } => "brier",
            LossSpec::PenaltyL1 { .. } => "penalty_l1",
        }
    }

    /// Builds a spec from a loss name and all its parameters (a JSON object: the `loss`
    /// subtree of a composed configuration, whose group files hold the defaults). Keys
    /// `name`, `device` and `num_classes` are accepted and ignored; a missing parameter, any
    /// other unknown key, a value of the wrong type, or a value outside its range is an error.
    pub fn from_params(name: &str, params: &Map<String, Value>) -> Result<Self, LossError> {
        let allowed: &[&str] = match name {
            "ce" | "brier" => &["ignore_index"],
            "ls" => &["alpha", "ignore_index", "reduction"],
            "focal" | "focal_adaptive" => &["gamma", "ignore_index", "size_average"],
            "penalty_ent" | "penalty_l1" => &["alpha", "ignore_index"],
            "mmce" | "mmce_weighted" => &["lamda", "ignore_index"],
            "logit_margin" => &[
                "margin",
                "alpha",
                "ignore_index",
                "schedule",
                "mu",
                "max_alpha",
                "step_size",
            ],
            _ => {
                return Err(LossError::UnknownLoss {
                    name: name.to_string(),
                    choices: LOSS_NAMES.join(", "),
                });
            }
        };
        for k in params.keys() {
            if !allowed.contains(&k.as_str())
                && !["name", "device", "num_classes"].contains(&k.as_str())
            {
                return Err(LossError::UnknownParam {
                    loss: name.to_string(),
                    param: k.clone(),
                    allowed: allowed.join(", "),
                });
            }
        }
        let p = Params {
            loss: name,
            map: params,
        };
        let ignore_index = p.int("ignore_index")?;
        let spec = match name {
            "ce" => LossSpec::Ce { ignore_index },
            "brier" => LossSpec::Brier { ignore_index },
            "ls" => LossSpec::Ls {
                alpha: p.float("alpha")?,
                ignore_index,
                reduction: match p.string("reduction")?.as_str() {
                    "mean" => Reduction::Mean,
                    "sum" => Reduction::Sum,
                    "none" => Reduction::None,
                    other => {
                        return Err(p.invalid("reduction", other, "expected mean, sum or none"));
                    }
                },
            },
            "focal" => LossSpec::Focal {
                gamma: p.float("gamma")?,
                ignore_index,
                size_average: p.boolean("size_average")?,
            },
            "focal_adaptive" => LossSpec::FocalAdaptive {
                gamma: p.float("gamma")?,
                ignore_index,
                size_average: p.boolean("size_average")?,
            },
            "penalty_ent" => LossSpec::PenaltyEnt {
                alpha: p.float("alpha")?,
                ignore_index,
            },
            "penalty_l1" => LossSpec::PenaltyL1 {
                alpha: p.float("alpha")?,
                ignore_index,
            },
            "mmce" => LossSpec::Mmce {
                lamda: p.float("lamda")?,
                ignore_index,
            },
            "mmce_weighted" => LossSpec::MmceWeighted {
                lamda: p.float("lamda")?,
                ignore_index,
            },
            "logit_margin" => LossSpec::LogitMargin {
                margin: p.float("margin")?,
                alpha: p.float("alpha")?,
                ignore_index,
                schedule: match p.string("schedule")?.as_str() {
                    "" => AlphaSchedule::Constant,
                    "add" => AlphaSchedule::Add,
                    "multiply" => AlphaSchedule::Multiply,
                    "step" => AlphaSchedule::Step,
                    other => {
                        return Err(p.invalid(
                            "schedule",
                            other,
                            "expected \"\", add, multiply or step",
                        ));
                    }
                },
                mu: p.float("mu")?,
                max_alpha: p.float("max_alpha")?,
                step_size: {
                    let s = p.int("step_size")?;
                    if s < 1 {
                        return Err(p.invalid("step_size", &s.to_string(), "must be at least 1"));
                    }
                    s as usize
                },
            },
            _ => unreachable!("names checked above"),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks parameter ranges.
    pub fn validate(&self) -> Result<(), LossError> {
        let name = self.name();
        let check = |param: &str, v: f64, ok: bool, reason: &str| {
            // the losses compute in float32: a parameter must be a finite float32 value
            let in_range = v.is_finite() && v.abs() <= f64::from(f32::MAX);
            if ok && in_range {
                Ok(())
            } else {
                Err(LossError::InvalidParam {
                    loss: name.to_string(),
                    param: param.to_string(),
                    value: v.to_string(),
                    reason: if in_range {
                        reason.to_string()
                    } else {
                        "must be a finite float32 value (|x| <= 3.4e38)".to_string()
                    },
                })
            }
        };
        match *self {
            LossSpec::Ls { alpha, .. } => check(
                "alpha",
                alpha,
                (0.0..=1.0).contains(&alpha),
                "must be in [0, 1]",
            ),
            LossSpec::Focal { gamma, .. } | LossSpec::FocalAdaptive { gamma, .. } => {
                check("gamma", gamma, gamma >= 0.0, "must be >= 0")
            }
            LossSpec::PenaltyEnt { alpha, .. } | LossSpec::PenaltyL1 { alpha, .. } => {
                check("alpha", alpha, alpha >= 0.0, "must be >= 0")
            }
            LossSpec::Mmce { lamda, .. } | LossSpec::MmceWeighted { lamda, .. } => {
                check("lamda", lamda, lamda >= 0.0, "must be >= 0")
            }
            LossSpec::LogitMargin {
                margin,
                alpha,
                mu,
                max_alpha,
                ..
            } => {
                check("margin", margin, margin >= 0.0, "must be >= 0")?;
                check("alpha", alpha, alpha >= 0.0, "must be >= 0")?;
                check("mu", mu, mu >= 0.0, "must be >= 0")?;
                check("max_alpha", max_alpha, max_alpha >= 0.0, "must be >= 0")
            }
            LossSpec::Ce { .. } | LossSpec::Brier { .. } => Ok(()),
        }
    }
}

/// Builds the loss a spec describes (validating it first).
pub fn build_loss(spec: &LossSpec) -> Result<Box<dyn Loss>, LossError> {
    spec.validate()?;
    Ok(match *spec {
        LossSpec::Ce { ignore_index } => Box::new(CrossEntropy { ignore_index }),
        LossSpec::Ls {
            alpha,
            ignore_index,
            reduction,
        } => Box::new(LabelSmoothing {
            alpha,
            ignore_index,
            reduction,
        }),
        LossSpec::Focal {
            gamma,
            ignore_index,
            size_average,
        } => Box::new(Focal {
            gamma,
            ignore_index,
            size_average,
        }),
        LossSpec::FocalAdaptive {
            gamma,
            ignore_index,
            size_average,
        } => Box::new(FocalAdaptive {
            gamma,
            ignore_index,
            size_average,
        }),
        LossSpec::PenaltyEnt {
            alpha,
            ignore_index,
        } => Box::new(PenaltyEntropy {
            alpha,
            ignore_index,
        }),
        LossSpec::PenaltyL1 {
            alpha,
            ignore_index,
        } => Box::new(PenaltyL1 {
            alpha,
            ignore_index,
        }),
        LossSpec::Mmce {
            lamda,
            ignore_index,
        } => Box::new(Mmce {
            lamda,
            ignore_index,
        }),
        LossSpec::MmceWeighted {
            lamda,
            ignore_index,
        } => Box::new(MmceWeighted {
            lamda,
            ignore_index,
        }),
        LossSpec::Brier { ignore_index } => Box::new(Brier { ignore_index }),
        LossSpec::LogitMargin {
            margin,
            alpha,
            ignore_index,
            schedule,
            mu,
            max_alpha,
            step_size,
        } => Box::new(LogitMargin {
            margin,
            alpha,
            ignore_index,
            schedule,
            mu,
            max_alpha,
            step_size,
        }),
    })
}

struct Params<'a> {
    loss: &'a str,
    map: &'a Map<String, Value>,
}

impl Params<'_> {
    fn invalid(&self, param: &str, value: &str, reason: &str) -> LossError {
        LossError::InvalidParam {
            loss: self.loss.to_string(),
            param: param.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
    /// The value of `k`: every parameter is given (the configuration's loss group files
    /// are the only place where defaults live).
    fn get(&self, k: &str) -> Result<&Value, LossError> {
        self.map.get(k).ok_or_else(|| LossError::MissingParam {
            loss: self.loss.to_string(),
            param: k.to_string(),
        })
    }
    fn float(&self, k: &str) -> Result<f64, LossError> {
        let v = self.get(k)?;
        v.as_f64()
            .ok_or_else(|| self.invalid(k, &v.to_string(), "expected a number"))
    }
    fn int(&self, k: &str) -> Result<i64, LossError> {
        let v = self.get(k)?;
        v.as_i64()
            .ok_or_else(|| self.invalid(k, &v.to_string(), "expected an integer"))
    }
    fn boolean(&self, k: &str) -> Result<bool, LossError> {
        let v = self.get(k)?;
        v.as_bool()
            .ok_or_else(|| self.invalid(k, &v.to_string(), "expected true or false"))
    }
    fn string(&self, k: &str) -> Result<String, LossError> {
        match self.get(k)? {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            v => Err(self.invalid(k, &v.to_string(), "expected a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The built-in config's parameters of `loss`, with `v`'s entries over them.
    fn obj_for(loss: &str, v: Value) -> Map<String, Value> {
        mbls_testkit::loss_params(loss, &v)
    }

    #[test]
    fn the_config_group_files_give_every_parameter() {
        let s = LossSpec::from_params("logit_margin", &obj_for("logit_margin", json!({}))).unwrap();
        assert_eq!(
            s,
            LossSpec::LogitMargin {
                margin: 10.0,
                alpha: 0.1,
                ignore_index: -100,
                schedule: AlphaSchedule::Constant,
                mu: 0.0,
                max_alpha: 100.0,
                step_size: 100,
            }
        );
        let s = LossSpec::from_params("ls", &obj_for("ls", json!({}))).unwrap();
        assert!(matches!(s, LossSpec::Ls { alpha, .. } if alpha == 0.05));
        for n in LOSS_NAMES {
            let s = LossSpec::from_params(n, &obj_for(n, json!({}))).unwrap();
            assert_eq!(s.name(), *n);
            let l = build_loss(&s).unwrap();
            assert_eq!(l.name(), *n);
        }
        // no defaults in Rust: a parameter left out is named
        let mut m = obj_for("logit_margin", json!({}));
        m.remove("margin");
        let e = LossSpec::from_params("logit_margin", &m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'margin' is missing"), "{e}");
    }

    #[test]
    fn bad_specs_are_rejected() {
        let e = LossSpec::from_params("nope", &Map::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown loss 'nope'") && e.contains("logit_margin"),
            "{e}"
        );
        let e = LossSpec::from_params(
            "logit_margin",
            &obj_for("logit_margin", json!({"margin": -1.0})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("margin") && e.contains(">= 0"), "{e}");
        let e = LossSpec::from_params("ls", &obj_for("ls", json!({"alpha": 1.5})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[0, 1]"), "{e}");
        let e = LossSpec::from_params("focal", &obj_for("focal", json!({"gamma": -0.5})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gamma"), "{e}");
        let e = LossSpec::from_params("ce", &obj_for("ce", json!({"marg": 1})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no parameter 'marg'"), "{e}");
        let e = LossSpec::from_params(
            "logit_margin",
            &obj_for("logit_margin", json!({"schedule": "cosine"})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schedule"), "{e}");
        let e = LossSpec::from_params(
            "logit_margin",
            &obj_for("logit_margin", json!({"alpha": "big"})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected a number"), "{e}");
        assert!(
            LossSpec::from_params(
                "ce",
                &obj_for("ce", json!({"name": "ce", "ignore_index": 255}))
            )
            .is_ok()
        );
    }
}
