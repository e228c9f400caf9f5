//! `mbls data`: open a configured dataset with the reference's protocol and describe it; convert
//! image folders to the CIFAR binary format; download the official CIFAR archives.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use mbls_base::download::DownloadError;
use mbls_config::Config;
use mbls_data::{Cifar, CifarKind};
use mbls_data::{DataError, Dataset, Loader, write_cifar_binary_splits};
use mbls_data::{DataSpec, DatasetName, Pipelines, build, build_text, open_folder_splits};
use mbls_train::spec::data_spec;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `mbls data`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  mbls data data=cifar10 data.data_root=data/cifar10\n  \
    mbls data data=folder data.data_root=cifar10-jpg.tar.gz seed=1 --json\n  \
    mbls data data=folder data.data_root=imgs/ --bench 50\n  \
    mbls data data=mnist data.data_root=data/mnist\n  \
    mbls data convert --to cifar-binary cifar10-jpg.tar.gz data/cifar10\n  \
    mbls data download data=cifar10 data.data_root=data/cifar10"
)]
pub struct DataArgs {
    /// `convert` or `download`; without one, describe the configured dataset.
    #[command(subcommand)]
    pub command: Option<DataCommand>,
    /// Configuration overrides, as for training: `data=NAME`, `data.KEY=VALUE`, `seed=N`.
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also time this many batches of the training loader and report images per second.
    #[arg(long, value_name = "N")]
    pub bench: Option<usize>,
    /// How many of the first validation indices to print.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub show: usize,
}

/// Subcommands of `mbls data`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Convert an image-folder dataset (a folder or .tar.gz with train/ and test/ class
    /// sub-folders of 32x32 RGB images) into the official CIFAR-10 binary files, written to
    /// OUT/cifar-10-batches-bin/ (then usable as data=cifar10 data.data_root=OUT).
    Convert(ConvertArgs),
    /// Download and unpack the official archive of the configured dataset (CIFAR-10/100) into
    /// data.data_root, MD5-checked and resumable.
    Download(DownloadArgs),
}

/// Output formats of `mbls data convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConvertTarget {
    /// The official CIFAR-10 binary layout (data_batch_1..5.bin, test_batch.bin, batches.meta.txt).
    CifarBinary,
}

/// Arguments of `mbls data convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub to: ConvertTarget,
    /// Source: a folder or .tar.gz holding train/ and test/ with one sub-folder per class.
    pub src: PathBuf,
    /// Output folder (the files go to OUT/cifar-10-batches-bin/).
    pub out: PathBuf,
}

/// Arguments of `mbls data download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Configuration overrides: `data=NAME`, `data.data_root=DIR`.
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
}

/// Runs `mbls data`.
pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        Some(DataCommand::Convert(c)) => convert(c),
        Some(DataCommand::Download(d)) => download(d),
        None => describe(&args),
    }
}

fn compose(overrides: &[String]) -> Result<Config> {
    for o in overrides {
        let key = o.trim_start_matches('+').split('=').next().unwrap_or("");
        if key != "data" && !key.starts_with("data.") && key != "seed" {
            bail!("`{o}`: mbls data takes data overrides only (data=NAME, data.KEY=VALUE, seed=N)");
        }
    }
    Ok(Config::compose_args(overrides)?)
}

fn loader_json(l: &Loader) -> serde_json::Value {
    let o = l.options();
    serde_json::json!({
        "samples": l.len(), "batches": l.num_batches(), "batch_size": o.batch_size,
        "shuffle": o.shuffle, "drop_last": o.drop_last,
    })
}

fn loader_line(l: &Loader) -> String {
    let o = l.options();
    format!(
        "{} batches of {}{}, {}",
        l.num_batches(),
        o.batch_size,
        if o.drop_last { " (drop_last)" } else { "" },
        if o.shuffle {
            "random order"
        } else {
            "in order"
        }
    )
}

/// `f32` values as the shortest decimals that read back to them (0.4914, not 0.49140000343).
fn short(values: &[f32]) -> Vec<f64> {
    values
        .iter()
        .map(|v| v.to_string().parse().unwrap_or(f64::from(*v)))
        .collect()
}

fn pipeline_text(steps: &[String]) -> String {
    let mut all: Vec<&str> = steps.iter().map(String::as_str).collect();
    all.extend(["ToTensor", "Normalize"]);
    all.join(" -> ")
}

/// Times `n` batches of epoch 0 of `loader`: (batches, images, seconds).
fn bench(loader: &Loader, n: usize) -> Result<(usize, usize, f64)> {
    let start = Instant::now();
    let (mut batches, mut images) = (0, 0);
    for b in loader.epoch(0).take(n) {
        let b = b?;
        batches += 1;
        images += b.len();
    }
    Ok((batches, images, start.elapsed().as_secs_f64()))
}

fn describe(args: &DataArgs) -> Result<()> {
    let cfg = compose(&args.overrides)?;
    let spec = data_spec(&cfg)?;
    if !spec.name.is_image() {
        return describe_text(&spec, args);
    }
    let p = build(&spec).map_err(|e| match (&e, spec.name) {
        (DataError::Missing { .. }, DatasetName::Cifar10 | DatasetName::Cifar100) => {
            anyhow::anyhow!(
                "data={}: {e}; or run `mbls data download data={} data.data_root={}`",
                spec.name,
                spec.name,
                spec.root.display()
            )
        }
        _ => anyhow::Error::new(e).context(format!("data={}", spec.name)),
    })?;
    let head: Vec<usize> = p.val_indices.iter().take(args.show).copied().collect();
    let bench = match args.bench {
        Some(n) if n > 0 => Some(bench(&p.train, n)?),
        _ => None,
    };
    if args.json {
        let b = bench.map(|(batches, images, secs)| {
            serde_json::json!({"batches": batches, "images": images, "seconds": secs,
                "images_per_second": if secs > 0.0 { images as f64 / secs } else { 0.0 },
                "workers": spec.num_workers})
        });
        let v = serde_json::json!({
            "dataset": spec.name.as_str(), "format": p.format, "root": spec.root,
            "num_classes": p.num_classes, "classes": p.classes,
            "split_seed": spec.seed, "loader_seed": spec.loader_seed,
            "train": loader_json(&p.train), "val": loader_json(&p.val),
            "test": loader_json(&p.test),
            "val_is_test": p.val_is_test, "segmentation": p.segmentation,
            "train_transform": p.train_transform, "eval_transform": p.eval_transform,
            "normalize": {"mean": short(p.normalize.channel_mean()),
                "std": short(p.normalize.channel_std()), "channels": p.normalize.channels},
            "val_indices_head": head, "bench": b,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print_text(&spec, &p, &head);
    if let Some((batches, images, secs)) = bench {
        println!(
            "bench      {batches} training batches, {images} images in {secs:.2} s: {:.0} images/s \
             ({} workers)",
            if secs > 0.0 {
                images as f64 / secs
            } else {
                0.0
            },
            spec.num_workers
        );
    }
    Ok(())
}

fn print_text(spec: &DataSpec, p: &Pipelines, head: &[usize]) {
    println!("dataset    {}", spec.name);
    println!("format     {}", p.format);
    let shown: Vec<&str> = p.classes.iter().take(20).map(String::as_str).collect();
    println!(
        "classes    {}: {}{}",
        p.num_classes,
        shown.join(", "),
        if p.num_classes > shown.len() {
            ", ..."
        } else {
            ""
        }
    );
    let val_from = if p.val_is_test {
        "the test split (as the reference)".to_string()
    } else if spec.name == DatasetName::TinyImageNet {
        format!(
            "{} per class of the training set, NumPy seed {}",
            spec.val_samples_per_class, spec.seed
        )
    } else if matches!(spec.name, DatasetName::Mnist | DatasetName::FashionMnist) {
        let order = if spec.shuffle {
            format!("NumPy seed {}", spec.seed)
        } else {
            "no shuffle".to_string()
        };
        format!(
            "{} of the {} training images, {order}",
            p.val_indices.len(),
            p.train_indices.len() + p.val_indices.len()
        )
    } else if spec.shuffle {
        format!(
            "{} of the training set, NumPy seed {}",
            spec.val_split, spec.seed
        )
    } else {
        format!(
            "the first {} of the training set (no shuffle)",
            spec.val_split
        )
    };
    println!(
        "sizes      train {}  val {}  test {}  (val = {val_from})",
        p.train.len(),
        p.val.len(),
        p.test.len()
    );
    if let Some(n) = spec.train_subset {
        println!(
            "subset     train on {n} images of the training split (data.train_subset: \
             class-balanced, seed {})",
            spec.seed
        );
    }
    println!("train      {}", loader_line(&p.train));
    println!("val        {}", loader_line(&p.val));
    println!("test       {}", loader_line(&p.test));
    println!("transform  train: {}", pipeline_text(&p.train_transform));
    println!("           val/test: {}", pipeline_text(&p.eval_transform));
    println!(
        "normalize  mean {:?}  std {:?}",
        p.normalize.channel_mean(),
        p.normalize.channel_std()
    );
    if p.segmentation {
        println!("targets    per-pixel masks (255 = ignore)");
    }
    println!(
        "val index  first {}: {:?}{}",
        head.len(),
        head,
        if p.val_is_test {
            ""
        } else {
            " (dataset indices of the training set)"
        }
    );
}

fn describe_text(spec: &DataSpec, args: &DataArgs) -> Result<()> {
    if args.bench.is_some() {
        bail!("--bench times image loaders; 20 Newsgroups is a text dataset");
    }
    let d = build_text(spec).context("data=newgroups")?;
    if args.json {
        let v = serde_json::json!({
            "dataset": spec.name.as_str(), "root": spec.root, "num_classes": d.class_names.len(),
            "classes": d.class_names, "split_seed": spec.seed,
            "train": d.y_train.len(), "val": d.y_val.len(), "test": d.y_test.len(),
            "num_words": d.num_words, "embedding_dim": d.embedding_dim,
            "sequence_length": d.sequence_length,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("dataset    {} (20 Newsgroups, text)", spec.name);
    println!(
        "classes    {}: {}",
        d.class_names.len(),
        d.class_names.join(", ")
    );
    println!(
        "sizes      train {}  val {}  test {}  (NumPy seed {}, test_split {})",
        d.y_train.len(),
        d.y_val.len(),
        d.y_test.len(),
        spec.seed,
        spec.test_split
    );
    println!(
        "sequences  {} tokens, {} words, GloVe {}-d",
        d.sequence_length, d.num_words, d.embedding_dim
    );
    Ok(())
}

fn convert(args: ConvertArgs) -> Result<()> {
    match args.to {
        ConvertTarget::CifarBinary => {}
    }
    let (train, test, format) = open_folder_splits(&args.src)?;
    let out = args.out.join("cifar-10-batches-bin");
    let files = write_cifar_binary_splits(&train, &test, &out)?;
    println!("read       {format}");
    println!(
        "wrote      {} train + {} test images, {} classes, to {}",
        train.len(),
        test.len(),
        train.classes().len(),
        out.display()
    );
    for f in &files {
        println!("           {}", f.display());
    }
    if train.classes().len() == 10 {
        let back = Cifar::open(&args.out, CifarKind::Cifar10, true)?;
        let back_test = Cifar::open(&args.out, CifarKind::Cifar10, false)?;
        println!(
            "check      read back {} + {} images: use data=cifar10 data.data_root={}",
            back.len(),
            back_test.len(),
            args.out.display()
        );
    } else {
        println!(
            "note       {} classes: the files follow the CIFAR-10 record layout, but data=cifar10 \
             reads exactly 10 classes",
            train.classes().len()
        );
    }
    Ok(())
}

fn download(args: DownloadArgs) -> Result<()> {
    let cfg = compose(&args.overrides)?;
    let spec = data_spec(&cfg)?;
    let kind = match spec.name {
        DatasetName::Cifar10 => CifarKind::Cifar10,
        DatasetName::Cifar100 => CifarKind::Cifar100 { coarse: false },
        other => bail!(
            "no download for data={other}: only cifar10 and cifar100 have an official archive \
             mbls can fetch; place the {other} files under data.data_root by hand (see the \
             README's data section)"
        ),
    };
    let root = &spec.root;
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    match Cifar::download(root, kind) {
        Ok(dir) => {
            let train = Cifar::open(root, kind, true)?;
            let test = Cifar::open(root, kind, false)?;
            println!(
                "ready      {} ({} train + {} test images)",
                dir.display(),
                train.len(),
                test.len()
            );
            Ok(())
        }
        Err(e @ DataError::Fetch(DownloadError::Download { .. })) => {
            bail!("{e}; with the file in place this command verifies and unpacks it offline")
        }
        Err(e) => Err(e.into()),
    }
}
