//! `mbls compare`: argument parsing only; the work is `mbls_train::compare`'s.

use anyhow::{Context, Result};
use clap::Args;
use mbls_train::compare::{self, CompareOptions, MethodSet, Outcome};
use std::path::PathBuf;

/// Arguments of `mbls compare`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each run is `mbls train` with the shared overrides, the method's overrides and `seed=S`, in \
<OUT>/<method>/seed<S>/. A rerun skips the finished runs (same configuration) and resumes an \
interrupted one; a folder holding another configuration's run is reported, never overwritten. \
The report: <OUT>/results.md, results.csv (one row per method: mean and sd), runs.csv (one \
row per run), reliability.svg/png (test reliability diagrams side by side) and \
ece_vs_acc.svg/png. Exit code: 0 when every run finished, 1 when one failed or was invalid, \
130 when interrupted, 2 for bad arguments.

Examples:
  mbls compare --dry-run data=folder data.data_root=cifar10-jpg.tar.gz model=resnet18_cifar
  mbls compare --only ce,mbls --epochs 2 --out outputs/compare/p1 \\
      data=folder data.data_root=cifar10-jpg.tar.gz model=resnet18_cifar
  mbls compare --seeds 1,2,3 --epochs 10 data.train_subset=2000 data=folder ...")]
pub struct CompareArgs {
    /// Overrides shared by every run, as `mbls train` takes them (`data=folder`,
    /// `model=resnet18_cifar`, `data.train_subset=5000`, ...).
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
    /// The method set: `paper` (CE, LS, FL, FLSD-53, ECP, MbLS m=0, MbLS m=10; built in) or a
    /// YAML file of the same form (`methods: [{name, label, overrides}]`).
    #[arg(long, default_value = "paper", value_name = "NAME|FILE")]
    pub set: String,
    /// Run only these methods of the set (comma-separated names, in set order).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub only: Vec<String>,
    /// Seeds, comma-separated (default: the configuration's `seed`).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub seeds: Vec<i64>,
    /// Train every run for N epochs, scaling the scheduler's milestones (step size, warm-up,
    /// patience) by N / train.max_epoch unless an override sets them.
    #[arg(long, value_name = "N")]
    pub epochs: Option<u64>,
    /// With --epochs: keep the scheduler's epoch counts as they are.
    #[arg(long)]
    pub no_scale_schedule: bool,
    /// Folder of the runs and the report.
    #[arg(long, default_value = "outputs/compare", value_name = "DIR")]
    pub out: PathBuf,
    /// Print the planned runs (state and command) and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the report of the runs already in --out, without training.
    #[arg(long, conflicts_with = "dry_run")]
    pub report_only: bool,
    /// A folder of group option files, as for `mbls train` (passed on to every run).
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
}

/// Runs `mbls compare`; returns the process exit code.
pub fn run(args: CompareArgs) -> Result<u8> {
    let set = MethodSet::load(&args.set)?;
    let mut user = mbls_config::UserConfigs::none();
    for d in &args.config_dir {
        user.load(d)?;
    }
    let opts = CompareOptions {
        out: args.out.clone(),
        seeds: args.seeds.clone(),
        only: args.only.clone(),
        epochs: args.epochs,
        scale_schedule: !args.no_scale_schedule,
        overrides: args.overrides.clone(),
    };
    let mut runs = compare::plan(&set, &opts, &user)?;
    // The runs' commands pass the user's config folders on.
    for r in &mut runs {
        for d in args.config_dir.iter().rev() {
            r.overrides
                .insert(0, format!("--config-dir={}", d.display()));
        }
    }
    let exe = std::env::current_exe().context("the path of the mbls binary")?;
    if args.dry_run {
        print!("{}", compare::describe(&runs, "mbls"));
        let invalid = runs
            .iter()
            .filter(|r| matches!(r.state, compare::RunState::Invalid(_)))
            .count();
        println!(
            "{} runs planned in {} ({} invalid)",
            runs.len(),
            args.out.display(),
            invalid
        );
        return Ok(u8::from(invalid > 0));
    }
    let outcomes = if args.report_only {
        None
    } else {
        Some(compare::execute(&runs, &exe, &mut |l| eprintln!("{l}"))?)
    };
    let results = compare::collect(&runs, outcomes.as_deref());
    let written = compare::write_report(&args.out, &results)?;
    println!("\n{}", compare::markdown(&results));
    for p in &written {
        println!("wrote {}", p.display());
    }
    let interrupted = outcomes
        .as_deref()
        .is_some_and(|o| o.contains(&Outcome::Interrupted));
    let failed = results.iter().any(|r| r.status == "failed");
    let unfinished = results.iter().any(|r| r.status != "finished");
    Ok(if interrupted {
        130
    } else if failed || (unfinished && !args.report_only) {
        1
    } else {
        0
    })
}
