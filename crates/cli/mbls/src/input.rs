//! Loading logits and labels from `.npz` or `.npy` files, with clear errors.

use anyhow::{Context, Result, bail};
use mbls_npy::{DType, NpyArray, NpyData, NpyError, NpyStream, Npz, ZipMember};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Scores and labels loaded from disk.
pub struct Loaded {
    /// Where they came from, for messages.
    pub source: String,
    /// Scores, row-major, float32.
    pub scores: Vec<f32>,
    /// Shape of the scores: `[N, C]` or `[N, C, spatial...]`.
    pub shape: Vec<usize>,
    /// Labels, `[N]` or `[N, spatial...]`.
    pub labels: Vec<i64>,
}

impl Loaded {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.shape[1]
    }
    /// Whether the scores are dense (`N x C x H x W ...`).
    pub fn is_dense(&self) -> bool {
        self.shape.len() > 2
    }
}

fn is_npz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

/// Loads `paths`: one `.npz` (keys `logits_key`, `labels_key`) or two `.npy` files
/// (scores, then labels).
pub fn load(paths: &[PathBuf], logits_key: &str, labels_key: &str) -> Result<Loaded> {
    let (scores, labels, source) = match paths {
        [p] if is_npz(p) => {
            let mut z = Npz::open(p)?;
            let s = z.get(logits_key)?;
            let l = z.get(labels_key)?;
            (s, l, p.display().to_string())
        }
        [p] => bail!(
            "{}: a single input must be an .npz archive with '{logits_key}' and '{labels_key}'; \
             for .npy files give two paths: LOGITS.npy LABELS.npy",
            p.display()
        ),
        [s, l] => (
            NpyArray::read(s)?,
            NpyArray::read(l)?,
            format!("{} + {}", s.display(), l.display()),
        ),
        _ => bail!(
            "expected one .npz file or two .npy files (logits, labels), got {}",
            paths.len()
        ),
    };
    check(scores, labels, source)
}

/// Checks the shape of logits read from `source`, for every command that takes logits
/// (`mbls eval`, `mbls loss`): `N x C` or `N x C x spatial...`, with at least one sample, at
/// least `min_classes` classes (and never 0) and no zero-sized spatial dimension, so that an
/// empty input is refused here rather than reaching a reshape or an empty report.
pub fn check_logits_shape(source: &str, shape: &[usize], min_classes: usize) -> Result<()> {
    if shape.len() < 2 {
        bail!(
            "{source}: logits must be N x C (or N x C x H x W), found shape {:?}",
            shape
        );
    }
    let min_classes = min_classes.max(1);
    if shape[1] < min_classes {
        bail!(
            "{source}: need at least {min_classes} class{}, logits have C = {}",
            if min_classes == 1 { "" } else { "es" },
            shape[1]
        );
    }
    if shape[0] == 0 {
        bail!("{source}: no samples (N = 0)");
    }
    if let Some(d) = shape[2..].iter().position(|&d| d == 0) {
        bail!(
            "{source}: no pixels: spatial dimension {} of the logits (shape {:?}) is 0",
            d + 2,
            shape
        );
    }
    Ok(())
}

/// Checks that labels (`what`: "labels", "targets") of shape `lshape`, read from `source`, fit
/// logits of shape `shape`: `N` for `N x C`, `N x spatial...` for `N x C x spatial...`.
pub fn check_labels_shape(
    source: &str,
    what: &str,
    shape: &[usize],
    lshape: &[usize],
) -> Result<()> {
    let [n, _, spatial @ ..] = shape else {
        bail!("{source}: logits must be N x C (or N x C x H x W), found shape {shape:?}");
    };
    let mut want = vec![*n];
    want.extend_from_slice(spatial);
    if lshape != want.as_slice() {
        bail!(
            "{source}: {what} have shape {:?} but logits of shape {:?} need {what} of shape {:?} \
             (mismatched N or spatial size)",
            lshape,
            shape,
            want
        );
    }
    Ok(())
}

/// Checks dtypes and shapes of scores and labels (from headers or arrays).
fn check_meta(
    source: &str,
    sdt: DType,
    ldt: DType,
    shape: &[usize],
    lshape: &[usize],
) -> Result<()> {
    if !matches!(sdt, DType::F32 | DType::F64) {
        bail!(
            "{source}: logits must be float32 or float64, found {}",
            sdt.name()
        );
    }
    if matches!(ldt, DType::F32 | DType::F64 | DType::Bool) {
        bail!(
            "{source}: labels must be integers (int32/int64 or smaller), found {}",
            ldt.name()
        );
    }
    check_logits_shape(source, shape, 2)?;
    check_labels_shape(source, "labels", shape, lshape)
}

fn check(scores: NpyArray, labels: NpyArray, source: String) -> Result<Loaded> {
    let shape = scores.shape.clone();
    check_meta(
        &source,
        scores.dtype(),
        labels.dtype(),
        &shape,
        &labels.shape,
    )?;
    let labels_v = labels
        .to_i64()
        .with_context(|| format!("{source}: labels do not fit in int64"))?;
    let scores_v = scores
        .into_f32()
        .map_err(|_| anyhow::anyhow!("{source}: logits are not floating point"))?;
    Ok(Loaded {
        source,
        scores: scores_v,
        shape,
        labels: labels_v,
    })
}

/// Dense (`N x C x H x W ...`) scores read batch by batch: from two `.npy` files without
/// loading them whole, or from arrays already in memory (`.npz`).
// One value per command: the size of the streaming variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum DenseSource {
    /// Arrays in memory.
    Memory(Loaded),
    /// Two `.npy` files read in chunks.
    Stream {
        /// Where they came from, for messages.
        source: String,
        /// Shape of the logits.
        shape: Vec<usize>,
        /// The logits file.
        logits: NpyStream<BufReader<File>>,
        /// The labels file.
        labels: NpyStream<BufReader<File>>,
    },
}

impl DenseSource {
    /// Shape of the logits.
    pub fn shape(&self) -> &[usize] {
        match self {
            DenseSource::Memory(l) => &l.shape,
            DenseSource::Stream { shape, .. } => shape,
        }
    }

    /// Where the data comes from.
    pub fn source(&self) -> &str {
        match self {
            DenseSource::Memory(l) => &l.source,
            DenseSource::Stream { source, .. } => source,
        }
    }

    /// Logits and labels of images `start..end` (in order).
    pub fn batch(&mut self, start: usize, end: usize) -> Result<(Vec<f32>, Vec<i64>)> {
        let c = self.shape()[1];
        let hw: usize = self.shape()[2..].iter().product();
        match self {
            DenseSource::Memory(l) => Ok((
                l.scores[start * c * hw..end * c * hw].to_vec(),
                l.labels[start * hw..end * hw].to_vec(),
            )),
            DenseSource::Stream {
                logits,
                labels,
                source,
                ..
            } => {
                let x = NpyArray::new(
                    vec![(end - start) * c * hw],
                    logits.read_chunk((end - start) * c * hw)?,
                )?;
                let y = NpyArray::new(
                    vec![(end - start) * hw],
                    labels.read_chunk((end - start) * hw)?,
                )?;
                let y = y
                    .to_i64()
                    .with_context(|| format!("{source}: labels do not fit in int64"))?;
                let x = x
                    .into_f32()
                    .map_err(|_| anyhow::anyhow!("{source}: logits are not floating point"))?;
                Ok((x, y))
            }
        }
    }
}

/// Opens two `.npy` files as a streamed dense source when the logits are `N x C x ...` with
/// more than two dimensions; `None` for other inputs (loaded whole instead).
pub fn open_dense_stream(paths: &[PathBuf]) -> Result<Option<DenseSource>> {
    let [s, l] = paths else { return Ok(None) };
    if is_npz(s) || is_npz(l) {
        return Ok(None);
    }
    let logits = NpyStream::open(s)?;
    if logits.shape().len() <= 2 {
        return Ok(None);
    }
    let labels = NpyStream::open(l)?;
    let source = format!("{} + {}", s.display(), l.display());
    let shape = logits.shape().to_vec();
    check_meta(
        &source,
        logits.dtype(),
        labels.dtype(),
        &shape,
        labels.shape(),
    )?;
    Ok(Some(DenseSource::Stream {
        source,
        shape,
        logits,
        labels,
    }))
}

/// Bytes of scores read per chunk by [`with_rows`]: small beside any input worth streaming,
/// large enough that per-chunk work is amortised.
const CHUNK_BYTES: usize = 4 << 20;

/// An `.npy` stream over a file or over an `.npz` member.
enum ArrayStream<'a> {
    File(NpyStream<BufReader<File>>),
    Member(NpyStream<BufReader<ZipMember<'a>>>),
}

impl ArrayStream<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            ArrayStream::File(s) => s.shape(),
            ArrayStream::Member(s) => s.shape(),
        }
    }
    fn dtype(&self) -> DType {
        match self {
            ArrayStream::File(s) => s.dtype(),
            ArrayStream::Member(s) => s.dtype(),
        }
    }
    fn read_chunk(&mut self, n: usize) -> Result<NpyData, NpyError> {
        match self {
            ArrayStream::File(s) => s.read_chunk(n),
            ArrayStream::Member(s) => s.read_chunk(n),
        }
    }
    fn read_f32_into(&mut self, n: usize, out: &mut Vec<f32>) -> Result<bool, NpyError> {
        match self {
            ArrayStream::File(s) => s.read_f32_into(n, out),
            ArrayStream::Member(s) => s.read_f32_into(n, out),
        }
    }
    fn finish(self) -> Result<(), NpyError> {
        match self {
            ArrayStream::File(s) => s.finish(),
            ArrayStream::Member(s) => s.finish(),
        }
    }
}

/// Labels of streamed rows: read whole from an `.npz` (8 bytes a sample) or streamed from
/// their own `.npy` file.
enum RowLabels {
    Memory(Vec<i64>, usize),
    Stream(NpyStream<BufReader<File>>),
}

/// `N x C` classification scores (and their labels, when asked for) read a chunk of rows at
/// a time, so that memory does not grow with the input.
pub struct Rows<'a> {
    source: String,
    rows: usize,
    classes: usize,
    done: usize,
    logits: ArrayStream<'a>,
    labels: Option<RowLabels>,
}

impl Rows<'_> {
    /// Where the rows come from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of classes (C).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Rows read per chunk: about 4 MiB of scores.
    pub fn chunk_rows(&self) -> usize {
        (CHUNK_BYTES / (4 * self.classes)).max(1)
    }

    /// The next rows (at most [`Rows::chunk_rows`]) into `scores` (row-major float32, its
    /// allocation reused), and their labels (empty when the rows were opened without labels);
    /// `None` after the last.
    fn next_chunk_into(&mut self, scores: &mut Vec<f32>) -> Result<Option<Vec<i64>>> {
        let n = self.chunk_rows().min(self.rows - self.done);
        if n == 0 {
            return Ok(None);
        }
        let source = &self.source;
        if !self.logits.read_f32_into(n * self.classes, scores)? {
            let x = self.logits.read_chunk(n * self.classes)?;
            *scores = NpyArray::new(vec![n * self.classes], x)?
                .into_f32()
                .map_err(|_| anyhow::anyhow!("{source}: logits are not floating point"))?;
        }
        let labels = match &mut self.labels {
            None => Vec::new(),
            Some(RowLabels::Memory(all, at)) => {
                let y = all[*at..*at + n].to_vec();
                *at += n;
                y
            }
            Some(RowLabels::Stream(st)) => NpyArray::new(vec![n], st.read_chunk(n)?)?
                .to_i64()
                .with_context(|| format!("{source}: labels do not fit in int64"))?,
        };
        self.done += n;
        Ok(Some(labels))
    }

    /// Calls `f` on every remaining chunk of rows (scores, labels), in order, while the
    /// next chunk is being read: `f` runs on a thread of its own, this one reads ahead by one
    /// chunk, and the score buffers go round (no fresh allocation, page faults or zeroing
    /// per chunk). Stops at the first error, of `f` or of the reading (`f`'s first, as it
    /// concerns earlier rows).
    pub fn for_each_chunk(
        &mut self,
        mut f: impl FnMut(&mut Vec<f32>, &mut Vec<i64>) -> Result<()> + Send,
    ) -> Result<()> {
        type Chunk = (Vec<f32>, Vec<i64>);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(1);
        let (back, returned) = std::sync::mpsc::channel::<Vec<f32>>();
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || -> Result<()> {
                for (mut s, mut y) in rx {
                    f(&mut s, &mut y)?;
                    let _ = back.send(s); // the reader may be done: then the buffer goes
                }
                Ok(())
            });
            let read = (|| -> Result<()> {
                loop {
                    let mut s = returned.try_recv().unwrap_or_default();
                    let Some(y) = self.next_chunk_into(&mut s)? else {
                        return Ok(());
                    };
                    if tx.send((s, y)).is_err() {
                        return Ok(()); // `f` failed: its error is reported
                    }
                }
            })();
            drop(tx);
            let done = worker
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            done.and(read)
        })
    }

    /// Checks what follows the data (an `.npz` member's CRC-32 among it).
    fn finish(self) -> Result<()> {
        self.logits.finish()?;
        if let Some(RowLabels::Stream(st)) = self.labels {
            st.finish()?;
        }
        Ok(())
    }
}

/// Opens `paths` as streamed classification rows and runs `f` on them: one `.npz` (members
/// `logits_key` and, when given, `labels_key`; stored or deflated), two `.npy` files
/// (scores, labels), or with `labels_key` `None` one `.npy` or `.npz` of scores alone.
/// Returns `None` without calling `f` when the scores are dense (`N x C x ...`) and labels
/// were asked for (dense inputs have their own path); without labels they are refused.
/// After `f`, the rest of each input is read, so that a corrupt `.npz` member is reported
/// even when its data parsed.
pub fn with_rows<T>(
    paths: &[PathBuf],
    logits_key: &str,
    labels_key: Option<&str>,
    f: impl FnOnce(&mut Rows<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut npz;
    let (logits, labels, source) = match (paths, labels_key) {
        ([p], _) if is_npz(p) => {
            npz = Npz::open(p)?;
            let labels = match labels_key {
                Some(key) => Some(npz.get(key)?),
                None => None,
            };
            let logits = ArrayStream::Member(npz.stream(logits_key)?);
            (logits, labels.map(Ok), p.display().to_string())
        }
        ([p], None) => (
            ArrayStream::File(NpyStream::open(p)?),
            None,
            p.display().to_string(),
        ),
        ([p], Some(labels_key)) => bail!(
            "{}: a single input must be an .npz archive with '{logits_key}' and '{labels_key}'; \
             for .npy files give two paths: LOGITS.npy LABELS.npy",
            p.display()
        ),
        ([s, l], Some(_)) => (
            ArrayStream::File(NpyStream::open(s)?),
            Some(Err(NpyStream::open(l)?)),
            format!("{} + {}", s.display(), l.display()),
        ),
        _ => bail!(
            "expected one .npz file or two .npy files (logits, labels), got {}",
            paths.len()
        ),
    };
    let shape = logits.shape().to_vec();
    let labels = match labels {
        Some(l) => {
            let (ldt, lshape) = match &l {
                Ok(a) => (a.dtype(), a.shape.clone()),
                Err(st) => (st.dtype(), st.shape().to_vec()),
            };
            if shape.len() > 2 {
                return Ok(None);
            }
            check_meta(&source, logits.dtype(), ldt, &shape, &lshape)?;
            Some(match l {
                Ok(a) => RowLabels::Memory(
                    a.to_i64()
                        .with_context(|| format!("{source}: labels do not fit in int64"))?,
                    0,
                ),
                Err(st) => RowLabels::Stream(st),
            })
        }
        None => {
            if !matches!(logits.dtype(), DType::F32 | DType::F64) {
                bail!(
                    "{source}: logits must be float32 or float64, found {}",
                    logits.dtype().name()
                );
            }
            check_logits_shape(&source, &shape, 2)?;
            if shape.len() != 2 {
                bail!("{source}: expected N x C classification logits, found shape {shape:?}");
            }
            None
        }
    };
    let mut rows = Rows {
        source,
        rows: shape[0],
        classes: shape[1],
        done: 0,
        logits,
        labels,
    };
    let out = f(&mut rows)?;
    rows.finish()?;
    Ok(Some(out))
}
