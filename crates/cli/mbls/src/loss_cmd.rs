//! `mbls loss`: evaluate a configured loss on saved logits and targets.

use crate::input::{check_labels_shape, check_logits_shape};
use anyhow::{Context, Result, bail};
use clap::Args;
use mbls_config::Config;
use mbls_engine::losses::{LossError, build_loss};
use mbls_engine::tch::{Kind, Tensor};
use mbls_npy::{NpyArray, NpyData};
use std::path::PathBuf;

/// Arguments of `mbls loss`.
#[derive(Debug, Args)]
#[command(after_help = loss_help())]
pub struct LossArgs {
    /// Logits .npy (float32/float64; N x C or N x C x H x W).
    #[arg(value_name = "LOGITS")]
    pub logits: PathBuf,
    /// Targets .npy (integers; N or N x H x W).
    #[arg(value_name = "TARGETS")]
    pub targets: PathBuf,
    /// Configuration overrides, as for training: `loss=NAME`, `loss.KEY=VALUE`.
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the gradient of the total loss with respect to the logits (float32 .npy).
    #[arg(long, value_name = "FILE")]
    pub grad_out: Option<PathBuf>,
}

fn to_tensor(a: &NpyArray, what: &str, path: &std::path::Path) -> Result<Tensor> {
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Ok(match &a.data {
        NpyData::F32(v) => Tensor::from_slice(v).view(shape.as_slice()),
        NpyData::F64(v) => Tensor::from_slice(v).view(shape.as_slice()),
        _ if what == "targets" => Tensor::from_slice(
            &a.to_i64()
                .with_context(|| format!("{}: targets must be integers", path.display()))?,
        )
        .view(shape.as_slice()),
        other => bail!(
            "{}: {what} must be float32 or float64, found {}",
            path.display(),
            other.dtype().name()
        ),
    })
}

/// The examples and the loss names (from the engine's one list).
fn loss_help() -> String {
    format!(
        "Examples:\n  mbls loss logits.npy targets.npy loss=logit_margin loss.margin=10 loss.alpha=0.1\n  \
         mbls loss seg_logits.npy seg_targets.npy loss=focal loss.ignore_index=255 --json --grad-out grad.npy\n\n\
         Losses (loss=NAME): {}",
        mbls_engine::losses::LOSS_NAMES.join(", ")
    )
}

/// Runs `mbls loss`.
pub fn run(args: LossArgs) -> Result<()> {
    for o in &args.overrides {
        let key = o.trim_start_matches('+').split('=').next().unwrap_or("");
        if key != "loss" && !key.starts_with("loss.") {
            bail!("`{o}`: mbls loss takes loss overrides only (loss=NAME, loss.KEY=VALUE)");
        }
    }
    let cfg = Config::compose_args(&args.overrides)?;
    let spec = mbls_train::spec::loss_spec(&cfg)?;
    let name = spec.name();
    let params = serde_json::to_value(cfg.subtree("loss")?.value())?;
    let mut loss = build_loss(&spec)?;

    let logits_src = args.logits.display().to_string();
    let targets_src = args.targets.display().to_string();
    let la = NpyArray::read(&args.logits)?;
    if !matches!(la.data, NpyData::F32(_) | NpyData::F64(_)) {
        bail!(
            "{logits_src}: logits must be float32 or float64, found {}",
            la.dtype().name()
        );
    }
    // the shape checks of `mbls eval`: no empty dimension reaches a reshape
    check_logits_shape(&logits_src, &la.shape, 1)?;
    if let Some(bad) = la
        .to_f32()
        .unwrap_or_default()
        .iter()
        .position(|v| !v.is_finite())
    {
        bail!(
            "{}: non-finite logit at flat index {bad}",
            args.logits.display()
        );
    }
    let ta = NpyArray::read(&args.targets)?;
    if matches!(
        ta.data,
        NpyData::F32(_) | NpyData::F64(_) | NpyData::Bool(_)
    ) {
        bail!(
            "{targets_src}: targets must be integers, found {}",
            ta.dtype().name()
        );
    }
    check_labels_shape(&targets_src, "targets", &la.shape, &ta.shape)?;
    let logits = to_tensor(&la, "logits", &args.logits)?.set_requires_grad(true);
    let targets = to_tensor(&ta, "targets", &args.targets)?;
    let terms = loss.forward(&logits, &targets).map_err(|e| {
        // a bad target is the targets file's fault, anything else the logits'
        let file = match &e {
            LossError::TargetOutOfRange { .. } => &targets_src,
            _ => &logits_src,
        };
        anyhow::Error::new(e).context(format!("{name} with {file}"))
    })?;
    let values = terms.values()?;
    // finite logits and parameters can still overflow float32 inside the loss (logits near
    // ±3.4e38, a huge alpha): refuse rather than print inf or null
    let overflow = |what: &str, v: f64| {
        let big = la
            .to_f32()
            .unwrap_or_default()
            .iter()
            .fold(0f32, |m, x| m.max(x.abs()));
        anyhow::anyhow!(
            "{name} on {logits_src}: {what} is {v} although the logits and parameters are finite: \
             the computation overflows float32 (largest |logit| {big:e}); scale the logits or the parameters down"
        )
    };
    if let Some((n, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
        return Err(overflow(&format!("the term {n}"), *v));
    }
    terms.total().backward();
    let grad = logits.grad();
    if let Some(path) = &args.grad_out {
        let g = Vec::<f32>::try_from(grad.to_kind(Kind::Float).reshape([-1]))?;
        if let Some(v) = g.iter().find(|v| !v.is_finite()) {
            return Err(overflow("the gradient", f64::from(*v)));
        }
        NpyArray::new(la.shape.clone(), NpyData::F32(g))?.write(path)?;
    }
    loss.epoch_end(0);
    if args.json {
        let terms: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "loss": name,
                "params": params,
                "terms": terms,
                "grad_out": args.grad_out,
            }))?
        );
    } else {
        println!("loss {name} on {} ({:?})", args.logits.display(), la.shape);
        for (n, v) in &values {
            println!("{n:<16} {v:.7}");
        }
        if let Some(p) = &args.grad_out {
            println!("wrote gradient to {}", p.display());
        }
    }
    Ok(())
}
