//! `mbls`: one command with subcommands, for training calibrated networks and for measuring
//! and fixing calibration.
//!
//! This front binary runs `mbls eval` and `mbls calibrate` itself: they are plain Rust and
//! never touch libtorch, so they start without loading it (libtorch's initialisation alone
//! takes about 0.2 s and 100 MB). Every other subcommand, and the top-level help, is run by
//! `mbls-torch`, installed beside this binary, which replaces this process (`exec`: the same
//! process id, arguments, signals and exit code).

mod calibrate_cmd;
mod eval;
mod input;
mod plain_cmd;
mod report;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

/// mbls: margin-based label smoothing and calibration toolkit.
#[derive(Parser)]
#[command(name = "mbls", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: plain_cmd::PlainCommand,
}

fn main() -> ExitCode {
    plain_cmd::default_sigpipe();
    let args: Vec<OsString> = std::env::args_os().collect();
    let plain = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(plain_cmd::PlainCommand::has_subcommand);
    if !plain {
        return hand_over(&args);
    }
    match Cli::parse().command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `mbls-torch` (beside this binary) with the same arguments, in place of this process.
fn hand_over(args: &[OsString]) -> ExitCode {
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: the path of the mbls binary: {e}");
            return ExitCode::from(2);
        }
    };
    let torch = me.with_file_name(format!("mbls-torch{}", std::env::consts::EXE_SUFFIX));
    if !torch.is_file() {
        eprintln!(
            "error: {} is missing: `mbls` runs eval and calibrate itself and every other \
             subcommand with mbls-torch, which is built and installed with it (cargo build -p \
             mbls, cargo install --path crates/cli/mbls)",
            torch.display()
        );
        return ExitCode::from(2);
    }
    let mut cmd = std::process::Command::new(&torch);
    cmd.args(args.iter().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        let e = cmd.exec(); // returns only on failure
        eprintln!("error: running {}: {e}", torch.display());
        ExitCode::from(2)
    }
    #[cfg(not(unix))]
    match cmd.status() {
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c.clamp(0, 255) as u8)),
        Err(e) => {
            eprintln!("error: running {}: {e}", torch.display());
            ExitCode::from(2)
        }
    }
}
