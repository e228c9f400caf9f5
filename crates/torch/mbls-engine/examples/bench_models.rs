//! Training-step and inference throughput of the reference's networks, for side-by-side runs
//! with PyTorch (bench/torch_models.py, bench/compare_models.sh), and the data-feed check:
//! is a training step fed by the plain-Rust loader as fast as one on a fixed tensor?
//!
//! ```text
//! bench_models MODEL [--steps N] [--batch B] [--threads T] [--channels-last] [--only train|inference]
//!              [--loss NAME] [--clip MAX]
//! bench_models MODEL --feed DATA [--steps N]   # DATA: cifar10-jpg.tar.gz or its train/ folder
//! ```
//! A step is forward (train mode) + loss (CE, or `--loss NAME` with the built-in config's
//! parameters of that loss group) + backward (+ clipping of the gradients' 2-norm at `--clip
//! MAX`, as the trainer does) + SGD (momentum 0.9, weight decay 5e-4).
//! Prints one JSON line per measurement (median seconds and images per second).

use mbls_data::ImageFolder;
use mbls_data::{Compose, Normalize, RandomCrop, RandomHorizontalFlip};
use mbls_data::{Dataset, Transform};
use mbls_data::{Loader, LoaderOptions};
use mbls_engine::batch::to_tensors;
use mbls_engine::losses::{LossSpec, build_loss};
use mbls_engine::models::{ModelOptions, build_model, channels_last, vars_to_channels_last};
use mbls_engine::optim::{Optimizer, Sgd, SgdConfig, trainable_variables};
use mbls_engine::tch::nn::{ModuleT, VarStore};
use mbls_engine::tch::{Device, Kind, Tensor};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_name = args.next().ok_or("usage: bench_models MODEL [options]")?;
    let (mut steps, mut batch, mut threads, mut cl, mut feed) = (5usize, 128i64, 2i32, false, None);
    let mut only: Option<String> = None;
    let (mut loss_name, mut clip) = ("ce".to_string(), None::<f64>);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--steps" => steps = args.next().ok_or("--steps N")?.parse()?,
            "--batch" => batch = args.next().ok_or("--batch B")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads T")?.parse()?,
            "--channels-last" => cl = true,
            "--only" => {
                only = Some(
                    args.next()
                        .ok_or("--only train|inference")?
                        .replace("train_step", "train"),
                )
            }
            "--loss" => loss_name = args.next().ok_or("--loss NAME")?,
            "--clip" => clip = Some(args.next().ok_or("--clip MAX")?.parse()?),
            "--feed" => feed = Some(PathBuf::from(args.next().ok_or("--feed DATA")?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    mbls_engine::tch::set_num_threads(threads);
    mbls_engine::tch::manual_seed(0);
    let classes = 10;
    let vs = VarStore::new(Device::Cpu);
    let model = build_model(&model_name, classes, &vs.root(), ModelOptions::default())?;
    if cl {
        vars_to_channels_last(&vs);
    }
    let mut opt = Sgd::new(
        trainable_variables(&vs),
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..SgdConfig::default()
        },
    )?;
    let loss_fn = build_loss(&LossSpec::from_params(
        &loss_name,
        &mbls_testkit::loss_params(&loss_name, &serde_json::Value::Null),
    )?)?;
    let mut step = |x: &Tensor, y: &Tensor| -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        let out = model.forward_t(x, true);
        let loss = loss_fn.forward(&out, y)?;
        opt.zero_grad();
        loss.total().backward();
        if let Some(max) = clip {
            opt.clip_grad_norm(max, 2.0)?;
        }
        opt.step()?;
        let _ = loss.total().double_value(&[]);
        Ok(t.elapsed().as_secs_f64())
    };
    let fixed_x = {
        let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
        if cl { channels_last(&x) } else { x }
    };
    let fixed_y = Tensor::randint(classes, [batch], (Kind::Int64, Device::Cpu));
    let tag = json!({"impl": "mbls", "model": model_name, "batch": batch, "threads": threads,
                     "channels_last": cl, "loss": loss_name, "clip": clip});
    let report = |what: &str, times: Vec<f64>| {
        let m = median(times);
        let mut r = tag.clone();
        r["measure"] = json!(what);
        r["median_s"] = json!(m);
        r["images_per_s"] = json!(batch as f64 / m);
        println!("{r}");
        m
    };

    if let Some(data) = feed {
        // Interleave fixed-tensor steps and loader-fed steps so that drift affects both alike.
        let folder: Arc<dyn Dataset> = if data.is_dir() {
            Arc::new(ImageFolder::open(&data)?)
        } else {
            Arc::new(ImageFolder::from_tar_gz(&data, "train")?)
        };
        let transform: Arc<dyn Transform> = Arc::new(Compose::new(vec![
            Box::new(RandomCrop {
                size: 32,
                padding: 4,
            }),
            Box::new(RandomHorizontalFlip { p: 0.5 }),
        ]));
        let loader = Loader::new(
            folder,
            None,
            transform,
            Normalize::CIFAR10,
            LoaderOptions {
                batch_size: batch as usize,
                drop_last: true,
                ..LoaderOptions::default()
            },
        )?;
        let mut it = loader.epoch(0);
        step(&fixed_x, &fixed_y)?; // warm-up
        let (mut fixed, mut fed) = (Vec::new(), Vec::new());
        for i in 0..steps * 2 {
            if i % 2 == 0 {
                fixed.push(step(&fixed_x, &fixed_y)?);
            } else {
                // The wait for the batch and its conversion count as part of the fed step.
                let t = Instant::now();
                let b = it.next().ok_or("epoch ended")??;
                let bt = to_tensors(&b, Device::Cpu)?;
                let images = if cl {
                    channels_last(&bt.images)
                } else {
                    bt.images
                };
                let wait = t.elapsed().as_secs_f64();
                fed.push(wait + step(&images, &bt.targets)?);
            }
        }
        let a = report("train_step_fixed_tensor", fixed);
        let b = report("train_step_loader_fed", fed);
        println!("{}", json!({"model": model_name, "fed_over_fixed": b / a}));
        return Ok(());
    }

    if only.as_deref() != Some("inference") {
        step(&fixed_x, &fixed_y)?; // warm-up (allocator, first-call dispatch)
        let times: Vec<f64> = (0..steps)
            .map(|_| step(&fixed_x, &fixed_y))
            .collect::<Result<_, _>>()?;
        report("train_step", times);
    }
    if only.as_deref() == Some("train") {
        return Ok(());
    }
    let infer = || {
        let t = Instant::now();
        let out = mbls_engine::tch::no_grad(|| model.forward_t(&fixed_x, false));
        let _ = out.sum(Kind::Float).double_value(&[]);
        t.elapsed().as_secs_f64()
    };
    infer();
    report("inference", (0..steps).map(|_| infer()).collect());
    Ok(())
}
