//! `mbls-torch`: every subcommand of `mbls`, on libtorch. Users run `mbls` (`front.rs`), which
//! runs `eval` and `calibrate` itself without libtorch and hands everything else to this
//! binary; run directly, it does all of them.

mod calibrate_cmd;
mod compare_cmd;
mod data_cmd;
mod eval;
mod input;
mod loss_cmd;
mod model_cmd;
mod plain_cmd;
mod report;
mod train_cmd;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// mbls: margin-based label smoothing and calibration toolkit.
#[derive(Parser)]
#[command(name = "mbls", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// `eval`, `calibrate`.
    #[command(flatten)]
    Plain(plain_cmd::PlainCommand),
    /// Evaluate a configured loss (and its gradient) on saved logits and targets (.npy).
    Loss(loss_cmd::LossArgs),
    /// Show a configured model's parameter count and state dict (names, shapes).
    Model(model_cmd::ModelArgs),
    /// Open a configured dataset with the reference's splits and transforms and describe it;
    /// convert image folders to CIFAR binary files; download the official CIFAR archives.
    Data(data_cmd::DataArgs),
    /// Train a network (the reference's tools/train_net.py): training, validation, test with
    /// the best model, temperature scaling, calibration summary.
    Train(train_cmd::RunArgs),
    /// Test a checkpoint (the reference's tools/test_net.py) on the test split.
    Test(train_cmd::RunArgs),
    /// Compare methods: one training per method of a set (by default the paper's seven) and
    /// per seed, then one results table (markdown, CSV) and figures; reruns skip finished
    /// runs and resume interrupted ones.
    Compare(compare_cmd::CompareArgs),
    /// Show the tensor backend (libtorch) this binary runs on.
    Info,
}

fn main() -> ExitCode {
    plain_cmd::default_sigpipe();
    let help = train_cmd::help_text(&train_cmd::user_configs_of_argv());
    let command = Cli::command()
        .mut_subcommand("train", |c| c.after_help(help.clone()))
        .mut_subcommand("test", |c| c.after_help(help.clone()));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Plain(c) => c.run(),
        Command::Loss(args) => loss_cmd::run(args),
        Command::Model(args) => model_cmd::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Train(args) => train_cmd::train(args),
        Command::Test(args) => train_cmd::test(args),
        Command::Info => info(),
        Command::Compare(args) => match compare_cmd::run(args) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e
                .downcast_ref::<mbls_train::TrainError>()
                .map_or(2, mbls_train::TrainError::exit_code);
            ExitCode::from(code)
        }
    }
}

fn info() -> anyhow::Result<()> {
    let b = mbls_engine::backend_info();
    println!("mbls {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch threads: {}", b.threads);
    println!(
        "cuda: {}{}",
        if b.cuda { "available" } else { "not available" },
        if b.cuda {
            format!(" ({} devices)", b.cuda_devices)
        } else {
            String::new()
        }
    );
    Ok(())
}
