//! The loader on the real CIFAR-10 JPEG copy (`../shared/data/cifar10-jpg.tar.gz`, read from the
//! archive): the reference's training pipeline gives 128×3×32×32 batches of normalised values with
//! labels 0..10, identically for 1 and 2 workers. Skipped (with a message) when the file is absent.

use mbls_data::ImageFolder;
use mbls_data::{Compose, Normalize, RandomCrop, RandomHorizontalFlip};
use mbls_data::{Dataset, Transform};
use mbls_data::{Loader, LoaderOptions};
use std::path::PathBuf;
use std::sync::Arc;

fn archive() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/data/cifar10-jpg.tar.gz");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent", p.display());
        None
    }
}

#[test]
fn cifar10_jpg_training_batches() {
    let Some(path) = archive() else { return };
    let ds: Arc<dyn Dataset> = Arc::new(ImageFolder::from_tar_gz(&path, "test").unwrap());
    assert_eq!(ds.len(), 10_000);
    let transform: Arc<dyn Transform> = Arc::new(Compose::new(vec![
        Box::new(RandomCrop {
            size: 32,
            padding: 4,
        }),
        Box::new(RandomHorizontalFlip { p: 0.5 }),
    ]));
    let run = |workers: usize| {
        let o = LoaderOptions {
            batch_size: 128,
            shuffle: true,
            drop_last: true,
            seed: 1,
            workers,
            prefetch: 2,
            skip_corrupt: false,
        };
        let l = Loader::new(ds.clone(), None, transform.clone(), Normalize::CIFAR10, o).unwrap();
        assert_eq!(l.num_batches(), 78);
        l.epoch(0).take(3).map(|b| b.unwrap()).collect::<Vec<_>>()
    };
    let one = run(1);
    for b in &one {
        assert_eq!(b.shape, [128, 3, 32, 32]);
        assert!(b.labels.iter().all(|&y| (0..10).contains(&y)));
        let lo = (0.0 - 0.4914) / 0.2023 - 1e-4;
        let hi = (1.0 - 0.4465) / 0.2010 + 1e-4;
        assert!(b.images.iter().all(|&v| (lo..=hi).contains(&v)));
        // Zero padding appears as the normalised value of byte 0 somewhere in most batches.
        assert!(
            b.images
                .iter()
                .any(|&v| v == Normalize::CIFAR10.value(0, 0))
        );
    }
    assert_eq!(one, run(2));
}
