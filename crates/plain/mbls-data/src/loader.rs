//! Parallel, seeded, prefetching batch loader.
//!
//! A [`Loader`] turns a [`Dataset`] (optionally restricted to a subset of its indices), a
//! [`Transform`] (augmentation) and a [`Normalize`] (ToTensor → Normalize) into batches of `f32`
//! NCHW images with their labels, like torch's `DataLoader` with a `SubsetRandomSampler`.
//!
//! # Determinism
//!
//! * **Epoch order.** With `shuffle`, epoch `e` visits the subset (or the whole dataset) in the
//!   order of a Fisher–Yates shuffle (from the last position down, `j` uniform in `0..=i` by
//!   [`uniform_below`]) driven by [`order_rng`]`(seed, e)`. Without `shuffle` the order is the
//!   subset's order. This is the project's own scheme: the reference's batch order comes from torch's
//!   RNG and cannot be reproduced (spec 5.7); the data *splits* use NumPy's generator elsewhere.
//! * **Augmentation.** Sample `i` of epoch `e` is transformed with [`sample_rng`]`(seed, e, i)`, a
//!   ChaCha8 stream that depends only on those three numbers, never on which thread builds it, so
//!   batches are bit-identical whatever `workers` is.
//!
//! # Threads and memory
//!
//! With `workers > 0`, that many threads build whole batches (decode, augment, normalise into the
//! batch buffer). The consumer hands out at most `prefetch` batch numbers ahead of the batch it
//! has delivered last, so at most `prefetch` finished or in-progress batches exist at a time
//! (each `batch_size × C × H × W × 4` bytes plus labels). Batches are delivered in order. Dropping
//! the iterator stops the workers (each finishes at most the sample it is decoding) and joins them.
//! With `workers == 0` batches are built on the calling thread when requested.
//!
//! # Errors
//!
//! A sample that cannot be read is reported as [`DataError::Sample`] naming its file
//! ([`Dataset::source`]); the iterator yields that error and then ends. With `skip_corrupt` such a
//! sample is left out of its batch instead (the batch is smaller; a batch whose samples all failed
//! is not yielded), counted in [`Loader::skipped`] and described in [`Loader::warnings`]. Errors of
//! the transform (e.g. a crop larger than the image) and images of different sizes within a batch
//! are never skipped.

use crate::augment::{Normalize, uniform_below};
use crate::{DataError, Dataset, Sample, Target, Transform};
use crossbeam_channel::{Receiver, Sender};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How a [`Loader`] batches, orders and parallelises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Samples per batch (> 0).
    pub batch_size: usize,
    /// Visit the samples in a new random order each epoch.
    pub shuffle: bool,
    /// Leave out the last batch when it would be smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the epoch orders and of the augmentations.
    pub seed: u64,
    /// Worker threads (0: build batches on the calling thread).
    pub workers: usize,
    /// Batches in flight (built or being built) ahead of the consumer; 0 counts as 1.
    pub prefetch: usize,
    /// Skip samples whose decoding fails instead of stopping with an error.
    pub skip_corrupt: bool,
}

impl Default for LoaderOptions {
    /// Batch 128, shuffled, last partial batch kept, seed 0, 2 workers, 4 batches of prefetch,
    /// errors stop the epoch.
    fn default() -> Self {
        LoaderOptions {
            batch_size: 128,
            shuffle: true,
            drop_last: false,
            seed: 0,
            workers: 2,
            prefetch: 4,
            skip_corrupt: false,
        }
    }
}

/// One batch: normalised images and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `N × C × H × W` floats (NCHW, row-major).
    pub images: Vec<f32>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// Class targets (`N` values), empty for segmentation batches.
    pub labels: Vec<i64>,
    /// Per-pixel targets (`N × H × W` values) of segmentation batches.
    pub masks: Option<Vec<i64>>,
    /// Dataset index of every sample, in batch order.
    pub indices: Vec<usize>,
    /// Dataset indices of this batch's slots that were skipped (`skip_corrupt`).
    pub skipped: Vec<usize>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// True when the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }
}

const ORDER_TAG: &[u8; 8] = b"mbls-ord";
const AUGMENT_TAG: &[u8; 8] = b"mbls-aug";

fn keyed_rng(tag: &[u8; 8], seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(tag);
    key[8..16].copy_from_slice(&seed.to_le_bytes());
    key[16..24].copy_from_slice(&epoch.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// The generator of epoch `epoch`'s order: ChaCha8 keyed by the bytes
/// `"mbls-ord" ‖ seed (LE) ‖ epoch (LE) ‖ 0⁸`, stream 0.
pub fn order_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    keyed_rng(ORDER_TAG, seed, epoch)
}

/// The augmentation generator of dataset sample `index` in epoch `epoch`: ChaCha8 keyed by
/// `"mbls-aug" ‖ seed (LE) ‖ epoch (LE) ‖ 0⁸`, stream `index`.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> ChaCha8Rng {
    let mut rng = keyed_rng(AUGMENT_TAG, seed, epoch);
    rng.set_stream(index as u64);
    rng
}

/// Shuffles `items` in place: Fisher–Yates from the last position down, `j = uniform_below(i + 1)`.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = uniform_below(rng, i + 1);
        items.swap(i, j);
    }
}

struct Shared {
    dataset: Arc<dyn Dataset>,
    subset: Option<Vec<usize>>,
    transform: Arc<dyn Transform>,
    normalize: Normalize,
    table: [[f32; 256]; 3],
    options: LoaderOptions,
    skipped: AtomicUsize,
    warnings: Mutex<Vec<String>>,
    /// `(rank, world)`: this process's share of every epoch (see [`Loader::sharded`]).
    shard: (usize, usize),
}

/// A seeded, parallel batch loader (see the module documentation). Cloning is cheap and shares
/// the skip counters.
#[derive(Clone)]
pub struct Loader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("samples", &self.len())
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// A loader over `dataset`, or over the dataset indices `subset` when given (in that order
    /// without `shuffle`; indices may repeat, and a repeated index gets the same augmentation
    /// within an epoch). Fails on `batch_size == 0` or an index out of range.
    pub fn new(
        dataset: Arc<dyn Dataset>,
        subset: Option<Vec<usize>>,
        transform: Arc<dyn Transform>,
        normalize: Normalize,
        options: LoaderOptions,
    ) -> Result<Self, DataError> {
        if options.batch_size == 0 {
            return Err(DataError::Invalid("batch_size must be positive".into()));
        }
        if let Some(s) = &subset {
            let n = dataset.len();
            if let Some(bad) = s.iter().find(|&&i| i >= n) {
                return Err(DataError::Invalid(format!(
                    "subset index {bad} is outside the dataset of {n} samples"
                )));
            }
        }
        Ok(Loader {
            shared: Arc::new(Shared {
                dataset,
                subset,
                transform,
                table: normalize.table(),
                normalize,
                options,
                skipped: AtomicUsize::new(0),
                warnings: Mutex::new(Vec::new()),
                shard: (0, 1),
            }),
        })
    }

    /// This loader restricted to the share of process `rank` of `world` data-parallel
    /// processes, as torch's `DistributedSampler` (drop_last off) shares an epoch: the epoch's
    /// order (the same on every rank: seed and epoch) is extended by repeating its first
    /// samples up to a multiple of `world`, and rank `r` takes positions `r, r + world, ...`,
    /// so that every rank has `ceil(n / world)` samples and the ranks together visit every
    /// sample. Augmentations depend on the dataset index, not on the rank. `world = 1` is the
    /// whole epoch.
    ///
    /// # Errors
    /// `world == 0`, `rank >= world`, or a loader already cloned (the share is set once, on
    /// a new loader).
    pub fn sharded(mut self, rank: usize, world: usize) -> Result<Self, DataError> {
        if world == 0 || rank >= world {
            return Err(DataError::Invalid(format!(
                "data shard {rank} of {world}: the rank must be below the world size (> 0)"
            )));
        }
        let shared = Arc::get_mut(&mut self.shared).ok_or_else(|| {
            DataError::Invalid("a loader's shard is set before it is cloned".into())
        })?;
        shared.shard = (rank, world);
        Ok(self)
    }

    /// `(rank, world)` of [`Loader::sharded`] (`(0, 1)`: the whole epoch).
    pub fn shard(&self) -> (usize, usize) {
        self.shared.shard
    }

    /// Samples per epoch (subset size, or dataset size; this rank's share when sharded).
    pub fn len(&self) -> usize {
        let n = self.total_len();
        n.div_ceil(self.shared.shard.1)
    }

    /// Samples per epoch over all ranks.
    fn total_len(&self) -> usize {
        match &self.shared.subset {
            Some(s) => s.len(),
            None => self.shared.dataset.len(),
        }
    }

    /// True when an epoch has no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batches per epoch (before any skipping).
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.len(), self.shared.options.batch_size);
        if self.shared.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The options.
    pub fn options(&self) -> &LoaderOptions {
        &self.shared.options
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.shared.dataset
    }

    /// The normalisation.
    pub fn normalize(&self) -> Normalize {
        self.shared.normalize
    }

    /// The dataset indices of epoch `epoch`, in visiting order (before dropping the last
    /// batch; this rank's share when sharded).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order = match &self.shared.subset {
            Some(s) => s.clone(),
            None => (0..self.shared.dataset.len()).collect(),
        };
        if self.shared.options.shuffle {
            shuffle(&mut order, &mut order_rng(self.shared.options.seed, epoch));
        }
        let (rank, world) = self.shared.shard;
        if world > 1 && !order.is_empty() {
            let padded = order.len().div_ceil(world) * world;
            let n = order.len();
            order = (rank..padded)
                .step_by(world)
                .map(|p| order[p % n])
                .collect();
        }
        order
    }

    /// Samples skipped so far (all epochs) because their decoding failed (`skip_corrupt`).
    pub fn skipped(&self) -> usize {
        self.shared.skipped.load(Ordering::Relaxed)
    }

    /// One line per skipped sample, naming its file and the error.
    pub fn warnings(&self) -> Vec<String> {
        self.shared
            .warnings
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// The batches of epoch `epoch`, in order. Workers start immediately; dropping the iterator
    /// stops them.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch number `start` on (0-based), in order: the same
    /// batches, bit for bit, as [`Loader::epoch`] yields from there, without decoding the ones
    /// before it (to resume an interrupted epoch). A `start` past the last batch gives none.
    pub fn epoch_from(&self, epoch: u64, start: usize) -> EpochIter {
        let order = Arc::new(self.epoch_order(epoch));
        let num_batches = self.num_batches();
        let stop = Arc::new(AtomicBool::new(false));
        let mut it = EpochIter {
            shared: Arc::clone(&self.shared),
            epoch,
            order,
            num_batches,
            next: start.min(num_batches),
            done: start >= num_batches,
            stop,
            pool: None,
        };
        if self.shared.options.workers > 0 && !it.done {
            it.start_workers();
        }
        it
    }
}

fn wrap(shared: &Shared, index: usize, e: DataError) -> DataError {
    match e {
        e @ DataError::Sample { .. } => e,
        e => DataError::Sample {
            index,
            file: shared.dataset.source(index),
            message: e.to_string(),
        },
    }
}

/// Builds batch `b` of the epoch; `Ok(None)` when every sample of it was skipped.
fn build_batch(
    shared: &Shared,
    epoch: u64,
    order: &[usize],
    b: usize,
    stop: &AtomicBool,
) -> Result<Option<Batch>, DataError> {
    let bs = shared.options.batch_size;
    let start = b * bs;
    let end = (start + bs).min(order.len());
    let ids = &order[start..end];
    let mut images: Vec<f32> = Vec::new();
    let mut dims: Option<(usize, usize, usize, usize)> = None; // (c, h, w, first index)
    let mut labels = Vec::new();
    let mut masks: Option<Vec<i64>> = None;
    let mut indices = Vec::with_capacity(ids.len());
    let mut skipped = Vec::new();
    for &idx in ids {
        if stop.load(Ordering::Relaxed) {
            return Err(DataError::Invalid("loading cancelled".into()));
        }
        let sample = match shared.dataset.get(idx) {
            Ok(s) => s,
            Err(e) => {
                let e = wrap(shared, idx, e);
                if shared.options.skip_corrupt {
                    shared.skipped.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut w) = shared.warnings.lock() {
                        w.push(format!("epoch {epoch}: skipped {e}"));
                    }
                    skipped.push(idx);
                    continue;
                }
                return Err(e);
            }
        };
        let mut rng = sample_rng(shared.options.seed, epoch, idx);
        let Sample { image, target } = shared
            .transform
            .apply(sample, &mut rng)
            .map_err(|e| wrap(shared, idx, e))?;
        let (c, h, w) = (image.channels, image.height, image.width);
        match dims {
            None => {
                dims = Some((c, h, w, idx));
                images.reserve_exact(ids.len() * c * h * w);
            }
            Some((c0, h0, w0, first)) if (c0, h0, w0) != (c, h, w) => {
                return Err(DataError::Invalid(format!(
                    "variable-size images in one batch: sample {idx} ({}) is {h}x{w}x{c} but sample \
                     {first} ({}) is {h0}x{w0}x{c0}; the transform must give every sample the same \
                     size (add a Resize/CenterCrop/RandomCrop)",
                    shared.dataset.source(idx),
                    shared.dataset.source(first)
                )));
            }
            Some(_) => {}
        }
        let off = images.len();
        images.resize(off + c * h * w, 0.0);
        shared
            .normalize
            .write_chw_with(&shared.table, &image, &mut images[off..])
            .map_err(|e| wrap(shared, idx, e))?;
        let segmentation = masks.is_some();
        match target {
            Target::Class(k) if !segmentation => labels.push(k as i64),
            Target::Mask(m) if labels.is_empty() => {
                if (m.height, m.width) != (h, w) || m.data.len() != h * w {
                    return Err(wrap(
                        shared,
                        idx,
                        DataError::Invalid(format!(
                            "mask {}x{} does not match its {h}x{w} image",
                            m.height, m.width
                        )),
                    ));
                }
                masks
                    .get_or_insert_with(|| Vec::with_capacity(ids.len() * h * w))
                    .extend(m.data.iter().map(|&v| i64::from(v)));
            }
            _ => {
                return Err(wrap(
                    shared,
                    idx,
                    DataError::Invalid("a batch mixes class targets and mask targets".to_string()),
                ));
            }
        }
        indices.push(idx);
    }
    let Some((c, h, w, _)) = dims else {
        return Ok(None);
    };
    Ok(Some(Batch {
        images,
        shape: [indices.len(), c, h, w],
        labels,
        masks,
        indices,
        skipped,
    }))
}

type BatchResult = Result<Option<Batch>, DataError>;

struct Pool {
    tickets: Option<Sender<usize>>,
    results: Receiver<(usize, BatchResult)>,
    pending: HashMap<usize, BatchResult>,
    next_ticket: usize,
    handles: Vec<JoinHandle<()>>,
}

/// The batches of one epoch, in order (see [`Loader::epoch`]). Ends after the last batch or after
/// the first error.
pub struct EpochIter {
    shared: Arc<Shared>,
    epoch: u64,
    order: Arc<Vec<usize>>,
    num_batches: usize,
    next: usize,
    done: bool,
    stop: Arc<AtomicBool>,
    pool: Option<Pool>,
}

impl std::fmt::Debug for EpochIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochIter")
            .field("epoch", &self.epoch)
            .field("next", &self.next)
            .field("num_batches", &self.num_batches)
            .finish_non_exhaustive()
    }
}

impl EpochIter {
    fn start_workers(&mut self) {
        let (ticket_tx, ticket_rx) = crossbeam_channel::unbounded::<usize>();
        let (result_tx, result_rx) = crossbeam_channel::unbounded::<(usize, BatchResult)>();
        let first = self.next;
        let prefetch = self
            .shared
            .options
            .prefetch
            .max(1)
            .min(self.num_batches - first);
        for b in first..first + prefetch {
            // The receiver is alive (held here), so sending cannot fail.
            let _ = ticket_tx.send(b);
        }
        let mut handles = Vec::with_capacity(self.shared.options.workers);
        for w in 0..self.shared.options.workers {
            let shared = Arc::clone(&self.shared);
            let order = Arc::clone(&self.order);
            let stop = Arc::clone(&self.stop);
            let tickets = ticket_rx.clone();
            let results = result_tx.clone();
            let epoch = self.epoch;
            let spawned = std::thread::Builder::new()
                .name(format!("mbls-loader-{w}"))
                .spawn(move || {
                    while let Ok(b) = tickets.recv() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            build_batch(&shared, epoch, &order, b, &stop)
                        }))
                        .unwrap_or_else(|_| {
                            Err(DataError::Invalid(format!(
                                "a loader worker panicked while building batch {b}"
                            )))
                        });
                        if results.send((b, r)).is_err() {
                            break;
                        }
                    }
                });
            if let Ok(h) = spawned {
                handles.push(h);
            }
        }
        if handles.is_empty() {
            // No thread could be started: fall back to building on the calling thread.
            return;
        }
        self.pool = Some(Pool {
            tickets: Some(ticket_tx),
            results: result_rx,
            pending: HashMap::new(),
            next_ticket: first + prefetch,
            handles,
        });
    }

    fn shutdown(&mut self) {
        self.done = true;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut pool) = self.pool.take() {
            pool.tickets = None; // closes the ticket channel: idle workers return
            for h in pool.handles.drain(..) {
                let _ = h.join();
            }
        }
    }

    fn fetch(&mut self, b: usize) -> BatchResult {
        let Some(pool) = self.pool.as_mut() else {
            return build_batch(&self.shared, self.epoch, &self.order, b, &self.stop);
        };
        loop {
            if let Some(r) = pool.pending.remove(&b) {
                if pool.next_ticket < self.num_batches {
                    if let Some(t) = &pool.tickets {
                        let _ = t.send(pool.next_ticket);
                    }
                    pool.next_ticket += 1;
                }
                return r;
            }
            match pool.results.recv() {
                Ok((k, r)) => {
                    pool.pending.insert(k, r);
                }
                Err(_) => {
                    return Err(DataError::Invalid(
                        "the loader's worker threads stopped unexpectedly".into(),
                    ));
                }
            }
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && self.next < self.num_batches {
            let b = self.next;
            self.next += 1;
            match self.fetch(b) {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => continue,
                Err(e) => {
                    self.shutdown();
                    return Some(Err(e));
                }
            }
        }
        if !self.done {
            self.shutdown();
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(self.num_batches - self.next))
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Default memory limit of a [`CachedDataset`]: 4 GiB.
pub const DEFAULT_CACHE_LIMIT: usize = 4 << 30;

/// A dataset decoded once, in parallel, and served from memory.
///
/// Memory: every sample is kept as its decoded 8-bit image (`H × W × C` bytes) plus its mask
/// (`H × W` bytes) if any, plus about 100 bytes of bookkeeping; e.g. the 50,000 CIFAR-10 training
/// images take about 160 MB, Tiny-ImageNet's 100,000 64×64 images about 1.2 GB. Construction fails
/// when the total would exceed `max_bytes`. Samples whose decoding failed are remembered and
/// return the same [`DataError::Sample`] from [`Dataset::get`] every time (so a loader's
/// `skip_corrupt` works as without the cache). `get` returns a copy; augmentation still runs in
/// the loader for every epoch.
pub struct CachedDataset {
    inner: Arc<dyn Dataset>,
    samples: Vec<Result<Sample, String>>,
    bytes: usize,
}

impl std::fmt::Debug for CachedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDataset")
            .field("samples", &self.samples.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

fn sample_bytes(s: &Sample) -> usize {
    let mask = match &s.target {
        Target::Mask(m) => m.data.len(),
        Target::Class(_) => 0,
    };
    s.image.data.len() + mask + std::mem::size_of::<Sample>()
}

impl CachedDataset {
    /// Decodes all of `inner` with rayon's global pool, within [`DEFAULT_CACHE_LIMIT`].
    pub fn new(inner: Arc<dyn Dataset>) -> Result<Self, DataError> {
        Self::with_max_bytes(inner, DEFAULT_CACHE_LIMIT)
    }

    /// Decodes all of `inner`, failing as soon as the cache would exceed `max_bytes`.
    pub fn with_max_bytes(inner: Arc<dyn Dataset>, max_bytes: usize) -> Result<Self, DataError> {
        let total = AtomicUsize::new(0);
        let n = inner.len();
        let samples: Vec<Result<Sample, String>> = (0..n)
            .into_par_iter()
            .map(|i| {
                if total.load(Ordering::Relaxed) > max_bytes {
                    return Err(());
                }
                let r = inner.get(i).map_err(|e| e.to_string());
                let size = match &r {
                    Ok(s) => sample_bytes(s),
                    Err(m) => m.len() + std::mem::size_of::<Sample>(),
                };
                if total.fetch_add(size, Ordering::Relaxed) + size > max_bytes {
                    return Err(());
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>, ()>>()
            .map_err(|()| {
                DataError::Invalid(format!(
                    "caching {n} samples needs more than the limit of {max_bytes} bytes \
                     (first sample: {}); raise max_bytes or load without a cache",
                    if n > 0 {
                        inner.source(0)
                    } else {
                        String::new()
                    }
                ))
            })?;
        let bytes = total.into_inner();
        Ok(CachedDataset {
            inner,
            samples,
            bytes,
        })
    }

    /// Bytes held (the estimate compared with `max_bytes`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of samples whose decoding failed.
    pub fn failures(&self) -> usize {
        self.samples.iter().filter(|s| s.is_err()).count()
    }
}

impl Dataset for CachedDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        match self.samples.get(index) {
            Some(Ok(s)) => Ok(s.clone()),
            Some(Err(message)) => Err(DataError::Sample {
                index,
                file: self.inner.source(index),
                message: message.clone(),
            }),
            None => Err(DataError::Invalid(format!(
                "index {index} is outside the cached dataset of {} samples",
                self.samples.len()
            ))),
        }
    }

    fn classes(&self) -> &[String] {
        self.inner.classes()
    }

    fn label_of(&self, index: usize) -> Option<usize> {
        self.inner.label_of(index)
    }

    fn source(&self, index: usize) -> String {
        self.inner.source(index)
    }
}
