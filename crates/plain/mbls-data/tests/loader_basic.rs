//! Loader behaviour on a synthetic in-memory dataset: order and determinism, worker-count
//! independence, drop_last, subsets, skip_corrupt, cancellation, bounded prefetch, errors and the
//! in-memory cache.

use mbls_data::{CachedDataset, Loader, LoaderOptions, sample_rng};
use mbls_data::{Compose, Identity, Normalize, RandomCrop, RandomHorizontalFlip};
use mbls_data::{DataError, Dataset, Image, Mask, Sample, Target, Transform};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Deterministic synthetic images: pixel bytes depend on the index; label = index % 10.
struct Synth {
    n: usize,
    h: usize,
    w: usize,
    corrupt: HashSet<usize>,
    delay: Option<Duration>,
    variable: bool,
    masks: bool,
    panic_at: Option<usize>,
    gets: AtomicUsize,
    classes: Vec<String>,
}

impl Synth {
    fn new(n: usize) -> Self {
        Synth {
            n,
            h: 8,
            w: 6,
            corrupt: HashSet::new(),
            delay: None,
            variable: false,
            masks: false,
            panic_at: None,
            gets: AtomicUsize::new(0),
            classes: (0..10).map(|c| format!("class{c}")).collect(),
        }
    }
}

impl Dataset for Synth {
    fn len(&self) -> usize {
        self.n
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if self.panic_at == Some(index) {
            panic!("synthetic panic");
        }
        if self.corrupt.contains(&index) {
            return Err(DataError::Image {
                path: self.source(index).into(),
                message: "truncated JPEG".into(),
            });
        }
        let w = if self.variable && index % 5 == 4 {
            self.w + 1
        } else {
            self.w
        };
        let data = (0..self.h * w * 3)
            .map(|k| ((index * 31 + k * 7) % 256) as u8)
            .collect();
        let image = Image {
            height: self.h,
            width: w,
            channels: 3,
            data,
        };
        let target = if self.masks {
            Target::Mask(Mask {
                height: self.h,
                width: w,
                data: (0..self.h * w).map(|k| ((index + k) % 21) as u8).collect(),
            })
        } else {
            Target::Class(index % 10)
        };
        Ok(Sample { image, target })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        format!("synth/{index:04}.jpg")
    }
}

fn opts(batch_size: usize, workers: usize) -> LoaderOptions {
    LoaderOptions {
        batch_size,
        shuffle: true,
        drop_last: false,
        seed: 7,
        workers,
        prefetch: 3,
        skip_corrupt: false,
    }
}

fn train_transform() -> Arc<dyn Transform> {
    Arc::new(Compose::new(vec![
        Box::new(RandomCrop {
            size: 6,
            padding: 2,
        }),
        Box::new(RandomHorizontalFlip { p: 0.5 }),
    ]))
}

fn loader(ds: Synth, subset: Option<Vec<usize>>, o: LoaderOptions) -> Loader {
    Loader::new(
        Arc::new(ds),
        subset,
        Arc::new(Identity),
        Normalize::CIFAR10,
        o,
    )
    .unwrap()
}

fn all_indices(l: &Loader, epoch: u64) -> Vec<usize> {
    l.epoch(epoch).flat_map(|b| b.unwrap().indices).collect()
}

#[test]
fn epoch_order_is_a_seeded_permutation() {
    let l = loader(Synth::new(100), None, opts(16, 2));
    let e0 = all_indices(&l, 0);
    let mut sorted = e0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_ne!(e0, sorted, "shuffle must change the order");
    assert_eq!(e0, all_indices(&l, 0), "same (seed, epoch) → same order");
    assert_eq!(e0, l.epoch_order(0));
    assert_ne!(e0, all_indices(&l, 1), "epochs differ");
    let other = loader(
        Synth::new(100),
        None,
        LoaderOptions {
            seed: 8,
            ..opts(16, 2)
        },
    );
    assert_ne!(e0, all_indices(&other, 0), "seeds differ");
    let ordered = loader(
        Synth::new(100),
        None,
        LoaderOptions {
            shuffle: false,
            ..opts(16, 2)
        },
    );
    assert_eq!(all_indices(&ordered, 3), sorted);
}

#[test]
fn batches_are_identical_for_any_worker_count() {
    let collect = |workers: usize, prefetch: usize| -> Vec<_> {
        let o = LoaderOptions {
            prefetch,
            ..opts(12, workers)
        };
        let l = Loader::new(
            Arc::new(Synth::new(61)),
            None,
            train_transform(),
            Normalize::CIFAR10,
            o,
        )
        .unwrap();
        (0..2u64)
            .flat_map(|e| l.epoch(e).map(|b| b.unwrap()).collect::<Vec<_>>())
            .collect()
    };
    let reference = collect(1, 3);
    assert_eq!(reference.len(), 12); // 2 epochs × ceil(61 / 12)
    for (w, p) in [(0, 1), (3, 3), (3, 1), (5, 8)] {
        let other = collect(w, p);
        assert_eq!(reference.len(), other.len());
        for (a, b) in reference.iter().zip(&other) {
            assert_eq!(a.indices, b.indices);
            assert_eq!(a.labels, b.labels);
            assert_eq!(a.shape, b.shape);
            let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&a.images),
                bits(&b.images),
                "workers {w}, prefetch {p}"
            );
        }
    }
}

#[test]
fn batch_content_is_the_transformed_normalised_sample() {
    let ds = Arc::new(Synth::new(20));
    let t = train_transform();
    let o = opts(8, 2);
    let l = Loader::new(ds.clone(), None, t.clone(), Normalize::CIFAR10, o).unwrap();
    let mut seen = 0;
    for batch in l.epoch(4) {
        let batch = batch.unwrap();
        let [n, c, h, w] = batch.shape;
        assert_eq!((c, h, w), (3, 6, 6));
        assert_eq!(batch.images.len(), n * c * h * w);
        assert_eq!(batch.labels.len(), n);
        assert!(batch.masks.is_none());
        for (k, &idx) in batch.indices.iter().enumerate() {
            let mut rng = sample_rng(o.seed, 4, idx);
            let s = t.apply(ds.get(idx).unwrap(), &mut rng).unwrap();
            let want = Normalize::CIFAR10.to_chw(&s.image).unwrap();
            let got = &batch.images[k * c * h * w..(k + 1) * c * h * w];
            assert_eq!(got, &want[..]);
            assert_eq!(batch.labels[k], (idx % 10) as i64);
            seen += 1;
        }
    }
    assert_eq!(seen, 20);
}

#[test]
fn drop_last_controls_the_partial_batch() {
    let keep = loader(Synth::new(10), None, opts(4, 2));
    assert_eq!(keep.num_batches(), 3);
    let sizes: Vec<usize> = keep.epoch(0).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    let drop = loader(
        Synth::new(10),
        None,
        LoaderOptions {
            drop_last: true,
            ..opts(4, 2)
        },
    );
    assert_eq!(drop.num_batches(), 2);
    let batches: Vec<_> = drop.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![4, 4]
    );
    // The dropped samples are the last two of the epoch order.
    let order = drop.epoch_order(0);
    let used: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(used, order[..8]);
    // Fewer samples than a batch with drop_last: nothing.
    let tiny = loader(
        Synth::new(3),
        None,
        LoaderOptions {
            drop_last: true,
            ..opts(4, 2)
        },
    );
    assert_eq!(tiny.epoch(0).count(), 0);
    // Empty dataset: nothing, no error.
    let empty = loader(Synth::new(0), None, opts(4, 2));
    assert_eq!(empty.epoch(0).count(), 0);
}

#[test]
fn subset_restricts_and_orders() {
    let subset = vec![9, 2, 40, 17, 3, 33, 2];
    let ordered = loader(
        Synth::new(50),
        Some(subset.clone()),
        LoaderOptions {
            shuffle: false,
            ..opts(3, 2)
        },
    );
    assert_eq!(ordered.len(), 7);
    assert_eq!(all_indices(&ordered, 0), subset);
    let shuffled = loader(Synth::new(50), Some(subset.clone()), opts(3, 2));
    let mut got = all_indices(&shuffled, 5);
    got.sort_unstable();
    let mut want = subset.clone();
    want.sort_unstable();
    assert_eq!(got, want);
    let bad = Loader::new(
        Arc::new(Synth::new(50)),
        Some(vec![1, 50]),
        Arc::new(Identity),
        Normalize::CIFAR10,
        opts(3, 2),
    );
    assert!(matches!(bad, Err(DataError::Invalid(m)) if m.contains("50")));
    let zero = Loader::new(
        Arc::new(Synth::new(5)),
        None,
        Arc::new(Identity),
        Normalize::CIFAR10,
        opts(0, 2),
    );
    assert!(zero.is_err());
}

#[test]
fn corrupt_sample_is_an_error_naming_the_file() {
    for workers in [0, 2] {
        let mut ds = Synth::new(20);
        ds.corrupt.insert(6);
        let l = loader(
            ds,
            None,
            LoaderOptions {
                shuffle: false,
                ..opts(4, workers)
            },
        );
        let results: Vec<_> = l.epoch(0).collect();
        // Batch 0 is fine, batch 1 (samples 4..8) fails, then the iterator ends.
        assert_eq!(results.len(), 2, "workers {workers}");
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("synth/0006.jpg"), "{msg}");
        assert!(matches!(err, DataError::Sample { index: 6, .. }));
        assert_eq!(l.skipped(), 0);
    }
}

#[test]
fn skip_corrupt_leaves_samples_out_and_reports_them() {
    let mut ds = Synth::new(20);
    ds.corrupt.extend([3, 6, 12, 13, 14, 15]);
    let o = LoaderOptions {
        shuffle: false,
        skip_corrupt: true,
        ..opts(4, 2)
    };
    let l = loader(ds, None, o);
    let batches: Vec<_> = l.epoch(0).map(|b| b.unwrap()).collect();
    // Batch 3 (12..16) is entirely corrupt and is not yielded.
    assert_eq!(batches.len(), 4);
    let idx: Vec<Vec<usize>> = batches.iter().map(|b| b.indices.clone()).collect();
    assert_eq!(
        idx,
        vec![
            vec![0, 1, 2],
            vec![4, 5, 7],
            vec![8, 9, 10, 11],
            vec![16, 17, 18, 19]
        ]
    );
    assert_eq!(batches[0].skipped, vec![3]);
    assert_eq!(batches[0].shape[0], 3);
    assert_eq!(batches[0].images.len(), 3 * 3 * 8 * 6);
    assert_eq!(batches[0].labels, vec![0, 1, 2]);
    assert_eq!(l.skipped(), 6);
    let warnings = l.warnings();
    assert_eq!(warnings.len(), 6);
    assert!(warnings.iter().any(|w| w.contains("synth/0012.jpg")));
}

#[test]
fn variable_sizes_are_a_clear_error() {
    let mut ds = Synth::new(10);
    ds.variable = true;
    let l = loader(
        ds,
        None,
        LoaderOptions {
            shuffle: false,
            ..opts(10, 1)
        },
    );
    let r: Vec<_> = l.epoch(0).collect();
    assert_eq!(r.len(), 1);
    let msg = r[0].as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("variable-size") && msg.contains("synth/0004.jpg"),
        "{msg}"
    );
    // A transform that makes the sizes equal fixes it.
    let mut ds = Synth::new(10);
    ds.variable = true;
    let l = Loader::new(
        Arc::new(ds),
        None,
        Arc::new(mbls_data::CenterCrop::square(5)),
        Normalize::CIFAR10,
        opts(10, 1),
    )
    .unwrap();
    assert_eq!(l.epoch(0).next().unwrap().unwrap().shape, [10, 3, 5, 5]);
}

#[test]
fn masks_are_batched() {
    let mut ds = Synth::new(6);
    ds.masks = true;
    let ds = Arc::new(ds);
    let l = Loader::new(
        ds.clone(),
        None,
        train_transform(),
        Normalize::IMAGENET,
        opts(4, 2),
    )
    .unwrap();
    for b in l.epoch(0) {
        let b = b.unwrap();
        assert!(b.labels.is_empty());
        let masks = b.masks.as_ref().unwrap();
        assert_eq!(masks.len(), b.len() * 6 * 6);
        for (k, &idx) in b.indices.iter().enumerate() {
            let mut rng = sample_rng(7, 0, idx);
            let s = train_transform()
                .apply(ds.get(idx).unwrap(), &mut rng)
                .unwrap();
            let Target::Mask(m) = s.target else { panic!() };
            let want: Vec<i64> = m.data.iter().map(|&v| i64::from(v)).collect();
            assert_eq!(&masks[k * 36..(k + 1) * 36], &want[..]);
        }
    }
}

#[test]
fn dropping_the_iterator_stops_the_workers() {
    let mut ds = Synth::new(10_000);
    ds.delay = Some(Duration::from_millis(2));
    let ds = Arc::new(ds);
    let o = LoaderOptions {
        prefetch: 2,
        ..opts(8, 3)
    };
    let l = Loader::new(ds.clone(), None, Arc::new(Identity), Normalize::CIFAR10, o).unwrap();
    let mut it = l.epoch(0);
    it.next().unwrap().unwrap();
    it.next().unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Bounded prefetch: at most 2 delivered + 2 in flight batches were read (plus nothing more).
    let before_drop = ds.gets.load(Ordering::SeqCst);
    assert!(before_drop <= 4 * 8, "read {before_drop} samples ahead");
    let t = Instant::now();
    drop(it);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    let after = ds.gets.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        after,
        ds.gets.load(Ordering::SeqCst),
        "workers still running"
    );
    // The loader is still usable.
    assert_eq!(l.epoch(1).next().unwrap().unwrap().len(), 8);
}

#[test]
fn a_panicking_dataset_gives_an_error_not_a_hang() {
    let mut ds = Synth::new(30);
    ds.panic_at = Some(9);
    let l = loader(
        ds,
        None,
        LoaderOptions {
            shuffle: false,
            ..opts(5, 2)
        },
    );
    let r: Vec<_> = l.epoch(0).collect();
    assert!(r.last().unwrap().is_err());
    assert!(
        r.last()
            .unwrap()
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("panicked")
    );
}

#[test]
fn cached_dataset_serves_the_same_batches() {
    let mut ds = Synth::new(40);
    ds.corrupt.insert(5);
    let ds: Arc<dyn Dataset> = Arc::new(ds);
    let cached = Arc::new(CachedDataset::new(ds.clone()).unwrap());
    assert_eq!(cached.len(), 40);
    assert_eq!(cached.failures(), 1);
    assert!(cached.bytes() >= 39 * 8 * 6 * 3);
    assert_eq!(cached.classes(), ds.classes());
    assert_eq!(cached.get(7).unwrap(), ds.get(7).unwrap());
    let err = cached.get(5).unwrap_err().to_string();
    assert!(
        err.contains("synth/0005.jpg") && err.contains("truncated"),
        "{err}"
    );
    assert!(cached.get(40).is_err());
    let o = LoaderOptions {
        skip_corrupt: true,
        ..opts(8, 2)
    };
    let a = Loader::new(ds, None, train_transform(), Normalize::CIFAR10, o).unwrap();
    let b = Loader::new(cached, None, train_transform(), Normalize::CIFAR10, o).unwrap();
    let ba: Vec<_> = a.epoch(2).map(|x| x.unwrap()).collect();
    let bb: Vec<_> = b.epoch(2).map(|x| x.unwrap()).collect();
    assert_eq!(ba, bb);
    assert_eq!(b.skipped(), 1);
    assert!(b.warnings()[0].contains("synth/0005.jpg"));
}

#[test]
fn cache_limit_is_enforced() {
    let ds: Arc<dyn Dataset> = Arc::new(Synth::new(100));
    let r = CachedDataset::with_max_bytes(ds.clone(), 10 * 8 * 6 * 3);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("limit"), "{msg}");
    assert!(CachedDataset::with_max_bytes(ds, 1 << 20).is_ok());
}

#[test]
fn shards_split_an_epoch_between_ranks() {
    let whole = loader(Synth::new(10), None, opts(2, 2));
    let order = whole.epoch_order(4);
    let world = 3;
    let shards: Vec<Loader> = (0..world)
        .map(|r| {
            loader(Synth::new(10), None, opts(2, 2))
                .sharded(r, world)
                .unwrap()
        })
        .collect();
    // 10 samples over 3 ranks: 4 each, the epoch extended by its first two samples
    let mut seen = Vec::new();
    for (r, l) in shards.iter().enumerate() {
        assert_eq!(l.len(), 4);
        assert_eq!(l.num_batches(), 2);
        assert_eq!(l.shard(), (r, world));
        let got = all_indices(l, 4);
        let want: Vec<usize> = (r..12).step_by(world).map(|p| order[p % 10]).collect();
        assert_eq!(got, want, "rank {r}");
        // a sample's augmentation does not depend on the rank: same pixels as unsharded
        for b in l.epoch(4) {
            let b = b.unwrap();
            for (k, &i) in b.indices.iter().enumerate() {
                let pos = order.iter().position(|&x| x == i).unwrap();
                let wb = whole.epoch(4).nth(pos / 2).unwrap().unwrap();
                let per = b.images.len() / b.indices.len();
                let j = wb.indices.iter().position(|&x| x == i).unwrap();
                assert_eq!(
                    b.images[k * per..(k + 1) * per],
                    wb.images[j * per..(j + 1) * per]
                );
            }
        }
        seen.extend(got);
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (0..10).collect::<Vec<_>>(),
        "the ranks cover the epoch"
    );
    // world 1 is the whole epoch; bad shares are errors
    let one = loader(Synth::new(10), None, opts(2, 2))
        .sharded(0, 1)
        .unwrap();
    assert_eq!(all_indices(&one, 4), order);
    assert!(
        loader(Synth::new(10), None, opts(2, 2))
            .sharded(3, 3)
            .is_err()
    );
    assert!(
        loader(Synth::new(10), None, opts(2, 2))
            .sharded(0, 0)
            .is_err()
    );
    let l = loader(Synth::new(10), None, opts(2, 2));
    let _clone = l.clone();
    assert!(l.sharded(0, 2).is_err());
}
