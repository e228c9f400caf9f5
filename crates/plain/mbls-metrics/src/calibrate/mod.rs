//! Post-hoc calibrators: fitted on validation logits, applied to any logits of the same
//! classifier, saved as a small JSON file and reloaded.
//!
//! | method | fitted map | output |
//! |---|---|---|
//! | `ts` | `z / T`, T by the reference's grid search (lowest validation ECE) | logits |
//! | `ts-nll` | `z / T`, T minimising the validation NLL | logits |
//! | `vector` | `w ⊙ z + b` (Guo et al. 2017) | logits |
//! | `matrix` | `W z + b`, ODIR regularisation (Kull et al. 2019) | logits |
//! | `dirichlet` | `W ln softmax(z) + b`, ODIR regularisation (Kull et al. 2019) | logits |
//! | `hist` | one-vs-rest histogram binning of `softmax(z)_k`, rows renormalised | probabilities |
//! | `isotonic` | one-vs-rest isotonic regression of `softmax(z)_k`, rows renormalised | probabilities |
//! | `platt` | binary: `σ(a s + b)`, `s = z_1 − z_0`, Platt's smoothed targets | logits `[0, a s + b]` |
//! | `beta` | binary: `σ(a ln p − b ln(1 − p) + c)`, `p = σ(s)`, `a, b ≥ 0` (Kull et al. 2017) | logits `[0, …]` |
//!
//! The scaling methods minimise the mean negative log-likelihood plus their regulariser in
//! float64 with L-BFGS (argmin, More-Thuente line search) from the identity map, so a fit
//! starts at the uncalibrated model and is deterministic: rows are processed in fixed-size
//! chunks whose partial sums are added in order, so the result does not depend on the number
//! of threads.
//!
//! ODIR ("off-diagonal and intercept regularisation") adds
//! `λ · Σ_{j≠k} W_jk² / (K (K − 1)) + μ · Σ_j b_j² / K` to the mean NLL.

mod binary;
mod binning;
mod linear;

use crate::error::MetricError;
use crate::temperature::{check, fit_temperature_nll, grid_search_temperature};
use serde::{Deserialize, Serialize};

pub use binning::isotonic_fit;

/// The calibration methods, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Temperature by the reference's grid search on validation ECE.
    #[serde(rename = "ts")]
    Temperature,
    /// Temperature minimising validation NLL.
    #[serde(rename = "ts-nll")]
    TemperatureNll,
    /// Vector scaling.
    #[serde(rename = "vector")]
    Vector,
    /// Matrix scaling (ODIR).
    #[serde(rename = "matrix")]
    Matrix,
    /// Dirichlet calibration (ODIR).
    #[serde(rename = "dirichlet")]
    Dirichlet,
    /// One-vs-rest histogram binning.
    #[serde(rename = "hist")]
    Histogram,
    /// One-vs-rest isotonic regression.
    #[serde(rename = "isotonic")]
    Isotonic,
    /// Platt scaling (binary).
    #[serde(rename = "platt")]
    Platt,
    /// Beta calibration (binary).
    #[serde(rename = "beta")]
    Beta,
}

impl Method {
    /// Every method, in the order of the documentation.
    pub const ALL: [Method; 9] = [
        Method::Temperature,
        Method::TemperatureNll,
        Method::Vector,
        Method::Matrix,
        Method::Dirichlet,
        Method::Histogram,
        Method::Isotonic,
        Method::Platt,
        Method::Beta,
    ];

    /// The command-line name (`ts`, `matrix`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Temperature => "ts",
            Method::TemperatureNll => "ts-nll",
            Method::Vector => "vector",
            Method::Matrix => "matrix",
            Method::Dirichlet => "dirichlet",
            Method::Histogram => "hist",
            Method::Isotonic => "isotonic",
            Method::Platt => "platt",
            Method::Beta => "beta",
        }
    }

    /// Parses a command-line name; `temperature`, `histogram`, `vs`, `ms` and `dir` are
    /// accepted as aliases. The error names the closest method.
    pub fn parse(s: &str) -> Result<Method, MetricError> {
        let alias = match s {
            "temperature" | "grid" => Some(Method::Temperature),
            "temperature-nll" | "nll" => Some(Method::TemperatureNll),
            "vs" => Some(Method::Vector),
            "ms" => Some(Method::Matrix),
            "dir" => Some(Method::Dirichlet),
            "histogram" | "histogram-binning" => Some(Method::Histogram),
            "iso" => Some(Method::Isotonic),
            "logistic" => Some(Method::Platt),
            _ => None,
        };
        if let Some(m) = alias {
            return Ok(m);
        }
        if let Some(m) = Method::ALL.iter().find(|m| m.name() == s) {
            return Ok(*m);
        }
        let closest = Method::ALL
            .iter()
            .map(|m| (strsim::levenshtein(s, m.name()), m.name()))
            .min()
            .map(|(_, n)| n)
            .unwrap_or("ts");
        Err(MetricError::Invalid(format!(
            "unknown calibration method `{s}` (closest: {closest}; methods: {})",
            Method::ALL.map(|m| m.name()).join(", ")
        )))
    }

    /// Whether the method only applies to two classes.
    pub fn binary_only(self) -> bool {
        matches!(self, Method::Platt | Method::Beta)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Bins of the `ts` grid search's ECE and of `hist` (equal width, `(lower, upper]`).
    pub num_bins: usize,
    /// ODIR weight of the off-diagonal entries (`matrix`, `dirichlet`); `None`: the default
    /// of the method (see [`FitOptions::lambda_for`]).
    pub reg_lambda: Option<f64>,
    /// ODIR weight of the intercepts (`vector`, `matrix`, `dirichlet`); `None`: same as λ.
    pub reg_mu: Option<f64>,
    /// Most L-BFGS iterations.
    pub max_iter: usize,
    /// Stop when the gradient's norm falls below this.
    pub tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            num_bins: 15,
            reg_lambda: None,
            reg_mu: None,
            max_iter: 500,
            tolerance: 1e-7,
        }
    }
}

impl FitOptions {
    /// λ used for `method`: the option, or 0 for `vector` (no off-diagonal entries) and 1e-3
    /// otherwise (a mild ODIR that keeps a K x K fit from overfitting a small validation set).
    pub fn lambda_for(&self, method: Method) -> f64 {
        self.reg_lambda.unwrap_or(match method {
            Method::Vector => 0.0,
            _ => 1e-3,
        })
    }

    /// μ used for `method`: the option, else λ (Kull et al.'s default ties them).
    pub fn mu_for(&self, method: Method) -> f64 {
        self.reg_mu.unwrap_or(match method {
            Method::Vector => 0.0,
            _ => self.lambda_for(method),
        })
    }
}

/// The fitted parameters of a calibrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum Params {
    /// `z / temperature`.
    #[serde(rename = "ts")]
    Temperature {
        /// The temperature.
        temperature: f64,
    },
    /// `z / temperature`, NLL-optimal.
    #[serde(rename = "ts-nll")]
    TemperatureNll {
        /// The temperature.
        temperature: f64,
    },
    /// `weights ⊙ z + bias`.
    #[serde(rename = "vector")]
    Vector {
        /// One weight per class.
        weights: Vec<f64>,
        /// One intercept per class.
        bias: Vec<f64>,
    },
    /// `weights · z + bias`.
    #[serde(rename = "matrix")]
    Matrix {
        /// K rows of K weights (output class by input class).
        weights: Vec<Vec<f64>>,
        /// One intercept per class.
        bias: Vec<f64>,
    },
    /// `weights · ln softmax(z) + bias`.
    #[serde(rename = "dirichlet")]
    Dirichlet {
        /// K rows of K weights (output class by input class).
        weights: Vec<Vec<f64>>,
        /// One intercept per class.
        bias: Vec<f64>,
    },
    /// Per class, the calibrated probability of each of `num_bins` equal-width bins.
    #[serde(rename = "hist")]
    Histogram {
        /// Number of bins.
        num_bins: usize,
        /// `values[k][b]`: calibrated probability of class k for `p_k` in bin b.
        values: Vec<Vec<f64>>,
    },
    /// Per class, the increasing piecewise-linear map through `(x, y)` (clipped outside).
    #[serde(rename = "isotonic")]
    Isotonic {
        /// Breakpoints' inputs, per class, increasing.
        x: Vec<Vec<f64>>,
        /// Breakpoints' outputs, per class, non-decreasing, in [0, 1].
        y: Vec<Vec<f64>>,
    },
    /// `σ(a s + b)` with `s = z_1 − z_0`.
    #[serde(rename = "platt")]
    Platt {
        /// Slope.
        a: f64,
        /// Intercept.
        b: f64,
    },
    /// `σ(a ln p − b ln(1 − p) + c)` with `p = σ(z_1 − z_0)`.
    #[serde(rename = "beta")]
    Beta {
        /// Weight of `ln p` (≥ 0).
        a: f64,
        /// Weight of `−ln(1 − p)` (≥ 0).
        b: f64,
        /// Intercept.
        c: f64,
    },
}

impl Params {
    /// The method these parameters belong to.
    pub fn method(&self) -> Method {
        match self {
            Params::Temperature { .. } => Method::Temperature,
            Params::TemperatureNll { .. } => Method::TemperatureNll,
            Params::Vector { .. } => Method::Vector,
            Params::Matrix { .. } => Method::Matrix,
            Params::Dirichlet { .. } => Method::Dirichlet,
            Params::Histogram { .. } => Method::Histogram,
            Params::Isotonic { .. } => Method::Isotonic,
            Params::Platt { .. } => Method::Platt,
            Params::Beta { .. } => Method::Beta,
        }
    }
}

/// What the fit saw and reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Validation samples.
    pub samples: usize,
    /// Mean validation NLL before calibration.
    pub nll_before: f64,
    /// Mean validation NLL after calibration (of the renormalised probabilities for `hist`
    /// and `isotonic`, with probabilities clipped at 1e-12).
    pub nll_after: f64,
    /// Optimiser iterations (0 for closed-form fits).
    pub iterations: usize,
    /// The options the fit used (λ and μ resolved).
    pub options: FitOptions,
}

/// Format tag of a calibrator file.
pub const FORMAT: &str = "mbls-calibrator";
/// Version of the calibrator file format.
pub const VERSION: u32 = 1;

/// A fitted calibrator: the class count, the parameters and how they were fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Number of classes of the logits it applies to.
    pub classes: usize,
    /// Method and parameters.
    #[serde(flatten)]
    pub params: Params,
    /// The fit's summary.
    pub fit: FitReport,
}

/// Scores produced by [`Calibrator::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    /// Row-major N x K scores.
    pub scores: Vec<f32>,
    /// Whether `scores` are logits or probabilities.
    pub kind: crate::ScoreKind,
}

/// Fits `method` on validation logits (row-major N x `classes`) and labels.
///
/// Errors: bad shapes, non-finite logits, labels out of range, a class absent from the
/// labels (`MissingClass`), a binary-only method on more than two classes, bad options.
pub fn fit(
    method: Method,
    logits: &[f32],
    labels: &[i64],
    classes: usize,
    opts: &FitOptions,
) -> Result<Calibrator, MetricError> {
    check(logits, labels, classes)?;
    if method.binary_only() && classes != 2 {
        return Err(MetricError::Invalid(format!(
            "`{method}` calibrates binary classifiers; these logits have {classes} classes \
             (use ts, vector, matrix, dirichlet, hist or isotonic)"
        )));
    }
    let mut seen = vec![false; classes];
    for &y in labels {
        seen[y as usize] = true;
    }
    if let Some(k) = seen.iter().position(|s| !s) {
        return Err(MetricError::MissingClass {
            class: k,
            classes,
            samples: labels.len(),
        });
    }
    if opts.num_bins == 0 {
        return Err(MetricError::Invalid(
            "number of bins must be positive".into(),
        ));
    }
    if opts.max_iter == 0 || opts.tolerance.is_nan() || opts.tolerance <= 0.0 {
        return Err(MetricError::Invalid(
            "max_iter must be positive and tolerance a positive number".into(),
        ));
    }
    for (name, v) in [("reg_lambda", opts.reg_lambda), ("reg_mu", opts.reg_mu)] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(MetricError::Invalid(format!(
                "{name} must be a non-negative number, got {v}"
            )));
        }
    }
    let mut used = opts.clone();
    used.reg_lambda = Some(opts.lambda_for(method));
    used.reg_mu = Some(opts.mu_for(method));
    let nll_before = linear::mean_nll(logits, labels, classes);
    let (params, iterations) = match method {
        Method::Temperature => (
            Params::Temperature {
                temperature: grid_search_temperature(logits, labels, classes, opts.num_bins)?
                    .temperature_ece,
            },
            100,
        ),
        Method::TemperatureNll => {
            let f = fit_temperature_nll(logits, labels, classes)?;
            (
                Params::TemperatureNll {
                    temperature: f.temperature,
                },
                f.iterations,
            )
        }
        Method::Vector | Method::Matrix | Method::Dirichlet => linear::fit(
            method,
            logits,
            labels,
            classes,
            used.lambda_for(method),
            used.mu_for(method),
            opts,
        )?,
        Method::Histogram => (
            binning::fit_histogram(logits, labels, classes, opts.num_bins),
            0,
        ),
        Method::Isotonic => (binning::fit_isotonic(logits, labels, classes), 0),
        Method::Platt => binary::fit_platt(logits, labels),
        Method::Beta => binary::fit_beta(logits, labels),
    };
    let mut cal = Calibrator {
        format: FORMAT.into(),
        version: VERSION,
        classes,
        params,
        fit: FitReport {
            samples: labels.len(),
            nll_before,
            nll_after: f64::NAN,
            iterations,
            options: used,
        },
    };
    cal.validate()?;
    let out = cal.apply(logits)?;
    cal.fit.nll_after = out.mean_nll(labels, classes);
    Ok(cal)
}

impl Calibrated {
    /// Mean NLL of these scores against `labels` (probabilities clipped at 1e-12).
    pub fn mean_nll(&self, labels: &[i64], classes: usize) -> f64 {
        match self.kind {
            crate::ScoreKind::Logits => linear::mean_nll(&self.scores, labels, classes),
            crate::ScoreKind::Probabilities => {
                let s: f64 = self
                    .scores
                    .chunks_exact(classes)
                    .zip(labels)
                    .map(|(r, &y)| -(f64::from(r[y as usize]).max(1e-12)).ln())
                    .sum();
                s / labels.len() as f64
            }
        }
    }
}

impl Calibrator {
    /// The method.
    pub fn method(&self) -> Method {
        self.params.method()
    }

    /// Checks the format tag, the version and that every parameter is finite and of the
    /// shape `classes` asks for (a file read from disk may be corrupt or hostile).
    pub fn validate(&self) -> Result<(), MetricError> {
        let bad = |what: String| Err(MetricError::Invalid(format!("calibrator: {what}")));
        if self.format != FORMAT {
            return bad(format!("format is `{}`, expected `{FORMAT}`", self.format));
        }
        if self.version != VERSION {
            return bad(format!(
                "version {} is not supported (this build reads version {VERSION})",
                self.version
            ));
        }
        let k = self.classes;
        if !(2..=1_000_000).contains(&k) {
            return bad(format!("{k} classes (expected 2 to 1,000,000)"));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        let vec_ok = |name: &str, v: &[f64]| -> Result<(), MetricError> {
            if v.len() != k || !finite(v) {
                return Err(MetricError::Invalid(format!(
                    "calibrator: `{name}` must hold {k} finite numbers (found {}{})",
                    v.len(),
                    if finite(v) { "" } else { ", not all finite" }
                )));
            }
            Ok(())
        };
        let mat_ok = |name: &str, m: &[Vec<f64>]| -> Result<(), MetricError> {
            if m.len() != k {
                return Err(MetricError::Invalid(format!(
                    "calibrator: `{name}` must have {k} rows, found {}",
                    m.len()
                )));
            }
            m.iter().try_for_each(|r| vec_ok(name, r))
        };
        match &self.params {
            Params::Temperature { temperature } | Params::TemperatureNll { temperature } => {
                if !(temperature.is_finite() && *temperature > 0.0) {
                    return bad(format!(
                        "temperature {temperature} is not a positive number"
                    ));
                }
            }
            Params::Vector { weights, bias } => {
                vec_ok("weights", weights)?;
                vec_ok("bias", bias)?;
            }
            Params::Matrix { weights, bias } | Params::Dirichlet { weights, bias } => {
                mat_ok("weights", weights)?;
                vec_ok("bias", bias)?;
            }
            Params::Histogram { num_bins, values } => {
                if !(1..=1_000_000).contains(num_bins) {
                    return bad(format!("num_bins {num_bins} (expected 1 to 1,000,000)"));
                }
                if values.len() != k
                    || values
                        .iter()
                        .any(|v| v.len() != *num_bins || v.iter().any(|x| !(0.0..=1.0).contains(x)))
                {
                    return bad(format!(
                        "`values` must be {k} rows of {num_bins} probabilities in [0, 1]"
                    ));
                }
            }
            Params::Isotonic { x, y } => {
                if x.len() != k || y.len() != k {
                    return bad(format!("`x` and `y` must have {k} rows"));
                }
                for (c, (xs, ys)) in x.iter().zip(y).enumerate() {
                    let ok = !xs.is_empty()
                        && xs.len() == ys.len()
                        && finite(xs)
                        && xs.windows(2).all(|w| w[0] < w[1])
                        && ys.iter().all(|v| (0.0..=1.0).contains(v))
                        && ys.windows(2).all(|w| w[0] <= w[1]);
                    if !ok {
                        return bad(format!(
                            "class {c}: breakpoints must be non-empty, of equal length, with \
                             increasing x and non-decreasing y in [0, 1]"
                        ));
                    }
                }
            }
            Params::Platt { a, b } => {
                if k != 2 || !finite(&[*a, *b]) {
                    return bad("platt needs 2 classes and finite a, b".into());
                }
            }
            Params::Beta { a, b, c } => {
                if k != 2 || !finite(&[*a, *b, *c]) || *a < 0.0 || *b < 0.0 {
                    return bad("beta needs 2 classes, finite a, b, c and a, b >= 0".into());
                }
            }
        }
        Ok(())
    }

    /// Applies the calibrator to row-major N x `classes` logits.
    pub fn apply(&self, logits: &[f32]) -> Result<Calibrated, MetricError> {
        let k = self.classes;
        if logits.len() % k != 0 {
            return Err(MetricError::Shape {
                what: "logits (rows x classes of the calibrator)",
                expected: logits.len().div_ceil(k) * k,
                found: logits.len(),
            });
        }
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(MetricError::NonFinite {
                what: "logits",
                sample: i / k,
                class: i % k,
                value: logits[i],
            });
        }
        use crate::ScoreKind::{Logits, Probabilities};
        let (scores, kind) = match &self.params {
            Params::Temperature { temperature } | Params::TemperatureNll { temperature } => {
                (crate::scale_logits(logits, *temperature), Logits)
            }
            Params::Vector { weights, bias } => {
                (linear::apply_vector(logits, weights, bias), Logits)
            }
            Params::Matrix { weights, bias } => {
                (linear::apply_matrix(logits, weights, bias, false), Logits)
            }
            Params::Dirichlet { weights, bias } => {
                (linear::apply_matrix(logits, weights, bias, true), Logits)
            }
            Params::Histogram { num_bins, values } => (
                binning::apply_histogram(logits, k, *num_bins, values),
                Probabilities,
            ),
            Params::Isotonic { x, y } => (binning::apply_isotonic(logits, k, x, y), Probabilities),
            Params::Platt { a, b } => (binary::apply(logits, |s| a * s + b), Logits),
            Params::Beta { a, b, c } => (
                binary::apply(logits, |s| binary::beta_map(s, *a, *b, *c)),
                Logits,
            ),
        };
        Ok(Calibrated { scores, kind })
    }

    /// The calibrator as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("calibrator parameters serialise")
    }

    /// Reads a calibrator from JSON and validates it.
    pub fn from_json(text: &str) -> Result<Calibrator, MetricError> {
        let cal: Calibrator = serde_json::from_str(text)
            .map_err(|e| MetricError::Invalid(format!("calibrator file: {e}")))?;
        cal.validate()?;
        Ok(cal)
    }
}

#[cfg(test)]
mod tests;
