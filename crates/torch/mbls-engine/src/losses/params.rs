//! The parameter types the loss specs and implementations share.

/// Reduction of label smoothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Mean over rows.
    Mean,
    /// Sum over rows.
    Sum,
    /// One value per row.
    None,
}

/// Alpha schedule of the MbLS loss, applied by [`Loss::epoch_end`](super::Loss::epoch_end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlphaSchedule {
    /// No change (`""`, the paper's setting).
    Constant,
    /// `alpha = min(alpha + mu, max_alpha)` every epoch.
    Add,
    /// `alpha = min(alpha * mu, max_alpha)` every epoch.
    Multiply,
    /// `alpha = min(alpha * mu, max_alpha)` when `(epoch + 1) % step_size == 0`.
    Step,
}
