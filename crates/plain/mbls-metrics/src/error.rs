//! Error type of the metrics crate.

/// Errors raised on bad input to a metric.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// Fewer than two classes.
    #[error("need at least 2 classes, got {0}")]
    TooFewClasses(usize),
    /// The number of scores is not rows x classes.
    #[error("{what}: expected {expected} values, got {found}")]
    Shape {
        /// What was being checked.
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Count found.
        found: usize,
    },
    /// A logit or probability is NaN or infinite.
    #[error("non-finite value ({value}) in {what} at sample {sample}, class {class}")]
    NonFinite {
        /// "logits" or "probabilities".
        what: &'static str,
        /// Row (sample or pixel) index within the batch.
        sample: usize,
        /// Class index.
        class: usize,
        /// The value.
        value: f32,
    },
    /// A label is outside `0..classes` (and is not the ignore index).
    #[error("label {label} at sample {sample} is outside 0..{classes}")]
    LabelOutOfRange {
        /// The label.
        label: i64,
        /// Its index within the batch.
        sample: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A probability row is not a distribution.
    #[error(
        "row {sample} is not a probability distribution (sum {sum}, min {min}); \
         pass logits, or probabilities that are non-negative and sum to 1"
    )]
    NotProbabilities {
        /// Row index within the batch.
        sample: usize,
        /// The row's sum.
        sum: f32,
        /// The row's smallest entry.
        min: f32,
    },
    /// A batch with a different class count than earlier batches.
    #[error("batch has {found} classes but earlier batches had {expected}")]
    ClassMismatch {
        /// Classes of earlier batches.
        expected: usize,
        /// Classes of this batch.
        found: usize,
    },
    /// No samples were given where some are needed.
    #[error("no samples to evaluate")]
    Empty,
    /// A class has no sample in a set a calibrator is fitted on.
    #[error(
        "class {class} has no sample among the {samples} fitting samples ({classes} classes); \
         a calibrator fitted without it would be undefined for it: use a validation set \
         that holds every class"
    )]
    MissingClass {
        /// The absent class.
        class: usize,
        /// Number of classes.
        classes: usize,
        /// Number of samples.
        samples: usize,
    },
    /// An invalid option value.
    #[error("invalid option: {0}")]
    Invalid(String),
}
