//! Throughput of the CIFAR-10 training pipeline: image folder → RandomCrop(32, padding 4) →
//! RandomHorizontalFlip → ToTensor → Normalize(CIFAR-10), batch 128, shuffle, drop_last.
//!
//! ```text
//! cargo run --release -p mbls-data --example bench_loader -- <train folder> [--epochs N]
//!     [--workers N] [--prefetch N] [--warmup-batches N] [--cached]
//! ```
//!
//! Without `--cached` every image is read and decoded every time (as torchvision's `ImageFolder`
//! does); with it the folder is decoded once into a `CachedDataset` first (that time is printed
//! separately). Prints one `RESULT` line with images per second over the timed epochs.

use mbls_data::ImageFolder;
use mbls_data::{CachedDataset, Loader, LoaderOptions};
use mbls_data::{Compose, Normalize, RandomCrop, RandomHorizontalFlip};
use mbls_data::{Dataset, Transform};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    root: PathBuf,
    epochs: u64,
    workers: usize,
    prefetch: usize,
    warmup_batches: usize,
    cached: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        root: PathBuf::new(),
        epochs: 1,
        workers: 2,
        prefetch: 4,
        warmup_batches: 20,
        cached: false,
    };
    let mut root = None;
    while let Some(s) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match s.as_str() {
            "--epochs" => a.epochs = num("--epochs")?,
            "--workers" => a.workers = num("--workers")? as usize,
            "--prefetch" => a.prefetch = num("--prefetch")? as usize,
            "--warmup-batches" => a.warmup_batches = num("--warmup-batches")? as usize,
            "--cached" => a.cached = true,
            other if !other.starts_with("--") && root.is_none() => {
                root = Some(PathBuf::from(other))
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.root =
        root.ok_or("usage: bench_loader <train folder> [--epochs N] [--workers N] [--cached]")?;
    Ok(a)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let t0 = Instant::now();
    let folder: Arc<dyn Dataset> = Arc::new(ImageFolder::open(&args.root)?);
    eprintln!(
        "indexed {} images of {} classes in {:.2} s",
        folder.len(),
        folder.classes().len(),
        t0.elapsed().as_secs_f64()
    );
    let dataset: Arc<dyn Dataset> = if args.cached {
        let t = Instant::now();
        let c = CachedDataset::new(folder)?;
        eprintln!(
            "cached {} images ({:.1} MB) in {:.2} s",
            c.len(),
            c.bytes() as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        Arc::new(c)
    } else {
        folder
    };
    let transform: Arc<dyn Transform> = Arc::new(Compose::new(vec![
        Box::new(RandomCrop {
            size: 32,
            padding: 4,
        }),
        Box::new(RandomHorizontalFlip { p: 0.5 }),
    ]));
    let options = LoaderOptions {
        batch_size: 128,
        shuffle: true,
        drop_last: true,
        seed: 1,
        workers: args.workers,
        prefetch: args.prefetch,
        skip_corrupt: false,
    };
    let loader = Loader::new(dataset, None, transform, Normalize::CIFAR10, options)?;
    // Warm-up (page cache, allocator, threads): a few batches of a separate epoch.
    let mut checksum = 0f64;
    for b in loader.epoch(u64::MAX).take(args.warmup_batches) {
        checksum += f64::from(b?.images[0]);
    }
    let t = Instant::now();
    let mut images = 0usize;
    for epoch in 0..args.epochs {
        for b in loader.epoch(epoch) {
            let b = b?;
            images += b.len();
            checksum += f64::from(b.images[b.images.len() - 1]);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "RESULT impl=rust mode={} workers={} epochs={} images={images} seconds={secs:.3} \
         images_per_s={:.1} checksum={checksum:.3}",
        if args.cached { "cached" } else { "decode" },
        args.workers,
        args.epochs,
        images as f64 / secs
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_loader: {e}");
        std::process::exit(1);
    }
}
