//! `mbls train` and `mbls test`: argument parsing only; the work is `mbls_train`'s.

use anyhow::{Result, bail};
use clap::Args;
use mbls_config::{Config, UserConfigs};
use mbls_train::{RunOptions, RunSpec};
use std::path::PathBuf;

/// Arguments of `mbls train` and `mbls test`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration overrides, as the reference's `tools/train_net.py` takes them:
    /// `group=option`, `dotted.key=value`, `+new.key=value`, and `hydra.run.dir=DIR`.
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
    /// Print the resolved configuration as YAML and exit.
    #[arg(long)]
    pub cfg: bool,
    /// The run folder (same as `hydra.run.dir=DIR`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// A folder of group option files (`DIR/<group>/<option>.yaml`, as the built-in ones)
    /// that replace built-in options of the same name or add new ones (Hydra's
    /// `--config-dir`); may be given more than once, a later folder winning.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
}

/// The user config folders of `dirs`, loaded in order.
fn user_configs(dirs: &[PathBuf]) -> Result<UserConfigs> {
    let mut user = UserConfigs::none();
    for d in dirs {
        user.load(d)?;
    }
    Ok(user)
}

/// The `--config-dir` folders of the process's command line (for the help text, which is
/// built before the arguments are parsed); unreadable ones are left out here and reported
/// when the command runs.
pub fn user_configs_of_argv() -> UserConfigs {
    let args: Vec<String> = std::env::args().collect();
    let mut user = UserConfigs::none();
    for (i, a) in args.iter().enumerate() {
        let dir = match a.strip_prefix("--config-dir=") {
            Some(d) => Some(d.to_string()),
            None if a == "--config-dir" => args.get(i + 1).cloned(),
            None => None,
        };
        if let Some(d) = dir {
            let _ = user.load(std::path::Path::new(&d));
        }
    }
    user
}

/// The overrides without the `hydra.*` ones, and the run folder they name.
fn split_hydra(args: &RunArgs) -> Result<(Vec<String>, Option<PathBuf>)> {
    let mut rest = Vec::new();
    let mut run_dir = args.run_dir.clone();
    for o in &args.overrides {
        let bare = o.trim_start_matches('+');
        if let Some(dir) = bare.strip_prefix("hydra.run.dir=") {
            if dir.is_empty() {
                bail!("`{o}`: hydra.run.dir needs a folder");
            }
            run_dir = Some(PathBuf::from(dir));
        } else if bare.starts_with("hydra.") || bare.starts_with("hydra/") {
            bail!(
                "`{o}`: mbls reads only hydra.run.dir of Hydra's own settings (its log format and \
                 working-directory change do not apply)"
            );
        } else {
            rest.push(o.clone());
        }
    }
    Ok((rest, run_dir))
}

fn prepare(args: &RunArgs) -> Result<Option<(RunSpec, RunOptions)>> {
    let (overrides, run_dir) = split_hydra(args)?;
    let user = user_configs(&args.config_dir)?;
    let cfg = Config::compose_with(&overrides, &user)?;
    if args.cfg {
        print!("{}", cfg.to_yaml());
        return Ok(None);
    }
    let spec = RunSpec::from_config(&cfg)?;
    let opts = RunOptions {
        run_dir,
        command_line: std::env::args().collect(),
    };
    Ok(Some((spec, opts)))
}

/// Runs `mbls train`.
pub fn train(args: RunArgs) -> Result<()> {
    if let Some((spec, opts)) = prepare(&args)? {
        mbls_train::train(&spec, &opts)?;
    }
    Ok(())
}

/// Runs `mbls test`.
pub fn test(args: RunArgs) -> Result<()> {
    if let Some((spec, opts)) = prepare(&args)? {
        mbls_train::test(&spec, &opts)?;
    }
    Ok(())
}

/// The text after `mbls train --help`: every group with its options (default marked) and the
/// top-level keys with their defaults, read from the built-in YAML files and the
/// `--config-dir` folders of `user`.
pub fn help_text(user: &UserConfigs) -> String {
    let mut s = String::from("Config groups (group=option; * = default):\n");
    let defaults = Config::compose_with::<&str>(&[], user).ok();
    for (group, _) in Config::groups() {
        let options = user.options(group);
        let chosen = defaults
            .as_ref()
            .and_then(|c| c.choice(group).map(str::to_string))
            .unwrap_or_default();
        let opts: Vec<String> = options
            .iter()
            .map(|o| {
                if *o == chosen {
                    format!("{o}*")
                } else {
                    o.to_string()
                }
            })
            .collect();
        s.push_str(&format!("  {group:<10} {}\n", opts.join(", ")));
    }
    s.push_str("\nTop-level keys and their defaults:\n");
    if let Some(c) = &defaults {
        if let mbls_config::Value::Map(entries) = c.value() {
            let groups: Vec<&str> = Config::groups().iter().map(|(g, _)| *g).collect();
            for (k, v) in entries {
                if groups.contains(&k.as_str()) {
                    continue;
                }
                match v {
                    mbls_config::Value::Map(sub) => {
                        for (sk, sv) in sub {
                            s.push_str(&format!("  {k}.{sk}={sv}\n"));
                        }
                    }
                    v => s.push_str(&format!("  {k}={v}\n")),
                }
            }
        }
    }
    s.push_str(
        "  hydra.run.dir=outputs/<data.name>/<model.name>-<loss.name>-<optim.name>/<UTC time>\n\n\
         Show a group option's keys with `--cfg`, e.g. `mbls train loss=logit_margin --cfg`.\n\n\
         Examples:\n  \
         mbls train data=folder data.data_root=examples/cifar10-mini.tar.gz model=resnet18_cifar \
         loss=logit_margin train.max_epoch=2\n  \
         mbls train log_period=100 data=tiny_imagenet data.data_root=DIR model=resnet50_tiny \
         model.num_classes=200 loss=logit_margin loss.margin=10.0 loss.alpha=0.1 optim=sgd \
         optim.lr=0.1 optim.momentum=0.9 scheduler=multi_step scheduler.milestones=\"[40, 60]\" \
         train.max_epoch=100\n  \
         mbls test data=tiny_imagenet data.data_root=DIR model=resnet50_tiny model.num_classes=200 \
         hydra.run.dir=RUN test.checkpoint=resnet50_tiny-ce-best.pth\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hydra_run_dir_is_taken_out() {
        let a = RunArgs {
            overrides: vec!["loss=ce".into(), "hydra.run.dir=/tmp/x".into()],
            cfg: false,
            run_dir: None,
            config_dir: Vec::new(),
        };
        let (rest, dir) = split_hydra(&a).unwrap();
        assert_eq!(rest, ["loss=ce"]);
        assert_eq!(dir, Some(PathBuf::from("/tmp/x")));
        let a = RunArgs {
            overrides: vec!["hydra.job.chdir=true".into()],
            cfg: false,
            run_dir: None,
            config_dir: Vec::new(),
        };
        assert!(split_hydra(&a).is_err());
    }

    #[test]
    fn help_lists_groups_and_keys() {
        let h = help_text(&UserConfigs::none());
        assert!(h.contains("loss ") && h.contains("logit_margin"), "{h}");
        assert!(h.contains("ce*"), "{h}");
        assert!(h.contains("train.max_epoch=200"), "{h}");
    }
}
