//! The subcommands that need no libtorch (`eval`, `calibrate`): run by the `mbls` front binary
//! itself and, flattened into its full command set, by `mbls-torch`.

use clap::Subcommand;

/// `mbls eval` and `mbls calibrate`.
#[derive(Subcommand)]
pub enum PlainCommand {
    /// Measure calibration of saved logits or probabilities (.npz or two .npy files).
    Eval(crate::eval::EvalArgs),
    /// Fit post-hoc calibrators on validation logits (temperature, vector, matrix, Dirichlet,
    /// histogram binning, isotonic, Platt, beta), save them as JSON, apply them.
    Calibrate(crate::calibrate_cmd::CalibrateArgs),
}

impl PlainCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            PlainCommand::Eval(a) => crate::eval::run(a),
            PlainCommand::Calibrate(a) => crate::calibrate_cmd::run(a),
        }
    }
}

/// Restores the default action of SIGPIPE (the Rust runtime ignores it, so that a write to a
/// closed pipe, as in `mbls eval X | head -1`, fails and `println!` panics). With the default
/// action the process ends quietly when its reader goes away, as `cat` and `grep` do.
/// Checkpoints and results stay intact: every file is written atomically.
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL at the start of main, before any
    // other thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
