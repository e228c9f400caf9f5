//! `mbls model`: show a configured model's layers, parameter count and state dict.

use anyhow::{Context, Result, bail};
use clap::Args;
use mbls_config::Config;
use mbls_engine::checkpoint::{LoadOptions, load_weights};
use mbls_engine::models::build_model;
use mbls_engine::pretrained;
use mbls_engine::tch::{Device, Kind, nn};

/// Arguments of `mbls model`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mbls model model=resnet50_cifar model.num_classes=100\n  \
    mbls model model=resnet50_tiny model.num_classes=200 --json"
)]
pub struct ModelArgs {
    /// Configuration overrides, as for training: `model=NAME`, `model.KEY=VALUE`.
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Load weights from this file (PyTorch .pth, zip or legacy, or safetensors) and report,
    /// by name, what was loaded, missing, unexpected or of another shape.
    #[arg(long, value_name = "FILE")]
    pub load: Option<std::path::PathBuf>,
    /// With --load: fail unless the file matches the model exactly.
    #[arg(long, requires = "load")]
    pub strict: bool,
    /// Load torchvision's ImageNet weights as `pretrained=true` does (ImageNet-style ResNets,
    /// DeepLabV3's encoder): from FILE if given, else from PyTorch's cache
    /// ($TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints), else downloaded there.
    #[arg(long, value_name = "FILE", num_args = 0..=1, conflicts_with = "load")]
    pub pretrained: Option<Option<std::path::PathBuf>>,
}

/// Runs `mbls model`.
pub fn run(args: ModelArgs) -> Result<()> {
    for o in &args.overrides {
        let key = o.trim_start_matches('+').split('=').next().unwrap_or("");
        if key != "model" && !key.starts_with("model.") {
            bail!("`{o}`: mbls model takes model overrides only (model=NAME, model.KEY=VALUE)");
        }
    }
    let cfg = Config::compose_args(&args.overrides)?;
    let spec = mbls_train::spec::model_spec(&cfg)?;
    let (name, num_classes, opts) = (spec.name, spec.num_classes, spec.options);
    let has_dropout = opts.has_dropout;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = build_model(&name, num_classes, &vs.root(), opts)
        .with_context(|| format!("model={name}"))?;
    let load_report = match &args.load {
        Some(path) => {
            let lo = LoadOptions {
                strict: args.strict,
                ..LoadOptions::default()
            };
            Some(load_weights(&vs, path, &lo)?)
        }
        None => None,
    };
    let (load_report, loaded_from) = match &args.pretrained {
        Some(given) => {
            let depth = match name.as_str() {
                "deeplabv3" => opts.encoder_depth,
                n => n
                    .strip_prefix("resnet")
                    .and_then(|d| d.parse().ok())
                    .with_context(|| {
                        format!(
                            "model {n} has no ImageNet-pretrained weights (only the ImageNet-style \
                             ResNets and DeepLabV3's encoder do)"
                        )
                    })?,
            };
            let file = pretrained::torchvision_resnet_file(depth).with_context(|| {
                format!("torchvision has no ImageNet weights for resnet{depth}")
            })?;
            let explicit = given.as_deref();
            let path = pretrained::locate(file, explicit, pretrained::TORCHVISION_BASE_URL, true)?;
            let report = pretrained::load_imagenet_resnet(&vs, &name, &path)?;
            (Some(report), Some(path))
        }
        None => (load_report, args.load.clone()),
    };
    let vars = vs.variables();
    let mut entries = Vec::with_capacity(model.state_dict_names().len());
    let (mut params, mut buffers) = (0i64, 0i64);
    for n in model.state_dict_names() {
        let t = vars
            .get(n)
            .with_context(|| format!("state-dict entry {n} is not in the variable store"))?;
        let numel = t.numel() as i64;
        let trainable = t.requires_grad();
        if trainable {
            params += numel;
        } else {
            buffers += numel;
        }
        entries.push((n.clone(), t.size(), t.kind(), trainable));
    }
    if args.json {
        let sd: Vec<serde_json::Value> = entries
            .iter()
            .map(|(n, s, k, tr)| {
                serde_json::json!({"name": n, "shape": s, "dtype": format!("{k:?}"), "trainable": tr})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": name, "num_classes": num_classes, "has_dropout": has_dropout,
                "num_parameters": params, "num_buffer_elements": buffers,
                "layers": model.layers().iter().map(|l| serde_json::json!({
                    "path": l.path, "type": l.kind, "settings": l.description,
                    "parameters": l.parameters})).collect::<Vec<_>>(),
                "state_dict": sd,
                "load": load_report.as_ref().map(|r| serde_json::json!({
                    "file": loaded_from.as_ref().map(|p| p.display().to_string()),
                    "loaded": r.loaded, "missing": r.missing, "unexpected": r.unexpected,
                    "defaulted": r.defaulted,
                    "mismatched": r.mismatched.iter().map(|m| serde_json::json!({
                        "name": m.name, "model": m.expected, "file": m.found})).collect::<Vec<_>>(),
                })),
            }))?
        );
        return Ok(());
    }
    println!("model {name}  classes {num_classes}  dropout {has_dropout}");
    println!(
        "parameters {params}  (buffers {buffers} elements, {} state-dict entries)",
        entries.len()
    );
    println!();
    println!("layers with parameters ({}):", model.layers().len());
    let lw = model
        .layers()
        .iter()
        .map(|l| l.path.len())
        .max()
        .unwrap_or(4);
    for l in model.layers() {
        println!(
            "  {:<lw$}  {:<11} {:>10}  {}",
            l.path, l.kind, l.parameters, l.description
        );
    }
    println!();
    println!("state dict:");
    let width = entries.iter().map(|e| e.0.len()).max().unwrap_or(4);
    for (n, s, k, tr) in &entries {
        let kind = if *k == Kind::Float {
            String::new()
        } else {
            format!(" {k:?}")
        };
        let line = format!(
            "{n:<width$}  {:<20}{}{kind}",
            format!("{s:?}"),
            if *tr { "" } else { " buffer" }
        );
        println!("{}", line.trim_end());
    }
    if let (Some(r), Some(path)) = (&load_report, &loaded_from) {
        println!();
        println!("weights {}: {r}", path.display());
    }
    Ok(())
}
