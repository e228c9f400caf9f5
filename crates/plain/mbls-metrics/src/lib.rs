//! Calibration metrics for classifiers and segmenters, in plain Rust (no libtorch).
//!
//! The defaults follow the MbLS reference implementation exactly (15 equal-width bins with
//! `(lower, upper]` membership, its adaptive-ECE quirk, classwise ECE over `max(label) + 1`
//! classes, scikit-learn's accuracy tie rule, background-excluded segmentation means), so
//! that numbers can be compared with the paper. See each module for the conventions.
//!
//! ```
//! use mbls_metrics::{evaluate, ClassificationOptions};
//! let logits = [2.0f32, 0.5, -1.0, 0.1, 1.5, 0.2];
//! let labels = [0i64, 2];
//! let m = evaluate(&logits, &labels, 3, ClassificationOptions::default()).unwrap();
//! assert_eq!(m.samples, 2);
//! assert!((0.0..=1.0).contains(&m.ece));
//! ```

#![warn(missing_docs)]

pub mod adaptive;
pub mod bins;
pub mod bootstrap;
pub mod calibrate;
pub mod classify;
pub mod compat;
pub mod error;
pub mod estimators;
pub mod ood;
pub mod segment;
pub mod temperature;

pub use adaptive::{AdaptiveVariant, ConfidenceStore};
pub use bins::BinEdges;
pub use bootstrap::{BootstrapOptions, BootstrapResult, Interval, MAX_REPLICATES, bootstrap};
pub use calibrate::{Calibrated, Calibrator, FitOptions, Method as CalibrationMethod};
pub use classify::{
    BinStat, ClassificationAccumulator, ClassificationMetrics, ClassificationOptions, LogitStats,
    ScoreKind, evaluate, probabilities,
};
pub use error::MetricError;
pub use segment::{SegmentationAccumulator, SegmentationMetrics, SegmentationOptions};
pub use temperature::{
    GridSearch, NllFit, fit_temperature_nll, grid_search_temperature, scale_logits,
};
