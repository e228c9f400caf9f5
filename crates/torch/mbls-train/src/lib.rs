//! Training, validation and testing of mbls: the reference's `Trainer` (spec 6.1) and
//! `Tester` (spec 6.4) on libtorch, with its metric conventions, and what the reference lacks
//! (exact resume, atomic checkpoints, TensorBoard/JSONL/CSV logs, a summary table).
//!
//! - [`spec`] turns a composed configuration into typed specs for every section (the only
//!   mapping from configuration keys to settings; the YAML files hold every default);
//! - [`train`] runs the whole flow of `mbls train`: per epoch training, validation, the
//!   scheduler and alpha-schedule steps, the `best`/`last`/`epoch_N` checkpoints; then Test
//!   with the best model, the post-hoc temperature fitted on the validation split, TestPT;
//! - [`test`] is `mbls test`: one checkpoint (ours or a PyTorch `.pth`) on the test split;
//! - [`compare`] is `mbls compare`: one training per method and seed, and the results table.
//!
//! The task (`task=cv`; segmentation and text later) is an abstraction of its own
//! ([`task::Task`]): what the loop feeds the model, what it measures, and which metric picks
//! the best epoch. Data parallelism is prepared for: batches come from loaders that can be
//! sharded by rank, metrics are streaming accumulators that merge, and every file of the run
//! folder is written by one [`RunFolder`].

#![warn(missing_docs)]

pub mod compare;
mod meter;
mod report;
mod runlog;
pub mod spec;
pub mod task;
pub mod tensorboard;
mod trainer;

pub use report::{CalibratorResult, OodResult, PhaseResult, Summary, TemperatureResult};
pub use runlog::RunFolder;
pub use spec::RunSpec;
pub use trainer::{RunOptions, test, train};

/// Errors of training and testing.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration does not give a runnable spec (unknown key, bad value, an
    /// incompatible choice); names the key.
    #[error("{0}")]
    Config(String),
    /// The dataset could not be opened or a sample could not be read.
    #[error(transparent)]
    Data(#[from] mbls_data::DataError),
    /// A model could not be built.
    #[error(transparent)]
    Model(#[from] mbls_engine::models::ModelError),
    /// A loss could not be built or evaluated.
    #[error(transparent)]
    Loss(#[from] mbls_engine::losses::LossError),
    /// An optimizer or scheduler error.
    #[error(transparent)]
    Optim(#[from] mbls_engine::optim::OptimError),
    /// A checkpoint could not be written, read or imported.
    #[error(transparent)]
    Checkpoint(#[from] mbls_engine::checkpoint::CheckpointError),
    /// A metric could not be computed.
    #[error(transparent)]
    Metric(#[from] mbls_metrics::MetricError),
    /// A file of the run folder could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The loss became NaN or infinite.
    #[error(
        "the loss term `{term}` is {value} at epoch {epoch}, iteration {iteration}: training \
         stopped; the last good checkpoint is kept"
    )]
    NonFinite {
        /// Epoch index (0-based).
        epoch: u64,
        /// Iteration within the epoch (0-based).
        iteration: usize,
        /// The term's name.
        term: String,
        /// Its value.
        value: f64,
    },
    /// Training was interrupted (Ctrl-C / SIGINT or SIGTERM).
    #[error("interrupted at epoch {epoch}, iteration {iteration}: {what}")]
    Interrupted {
        /// Epoch index (0-based).
        epoch: u64,
        /// Iteration within the epoch.
        iteration: usize,
        /// What was kept and how to continue.
        what: String,
    },
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] mbls_engine::tch::TchError),
}

impl TrainError {
    /// The process exit code `mbls` uses for this error: 130 for an interruption, 1 for a
    /// non-finite loss (a run that failed, not bad input), 2 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            TrainError::Interrupted { .. } => 130,
            TrainError::NonFinite { .. } => 1,
            _ => 2,
        }
    }
}

pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
