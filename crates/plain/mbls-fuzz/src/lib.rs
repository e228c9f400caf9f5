//! Structure-aware fuzzing of every parser `mbls` exposes to files and command lines:
//! `.npy`/`.npz`, `.pth` (zip and legacy), safetensors, CIFAR binary and pickle batches, MNIST
//! IDX files, configuration overrides, and JPEG image folders.
//!
//! Each case starts from a valid input generated from the run's seed ([`inputs`]), bent by one to
//! four edits that know the format ([`mutate`]), and is fed to the library readers in this
//! process ([`target::read_in_process`]) and, every few cases, to the real `mbls` binary
//! ([`target::mbls_args`]). A case passes when
//!
//! - in process: the reader returns (accepts or refuses) without panicking, and the peak of
//!   live heap bytes during the case stays within [`MEM_BASE`] + [`MEM_FACTOR`] x the case's
//!   input bytes (with [`alloc::PeakAlloc`] installed; [`IMAGE_MEM_FACTOR`] for JPEG files);
//! - through the binary: it exits with code 0 or 2 (no panic's 101, no signal, no hang past
//!   [`Options::timeout`]), and its peak RSS stays within the RSS of the same command on the
//!   format's unmutated seed + [`MEM_BASE`] + [`MEM_FACTOR`] x the input bytes.
//!
//! The same seed and budget give the same cases on every machine. Failing inputs are written
//! to a folder for reproduction.

#![warn(missing_docs)]

pub mod alloc;
pub mod hostile;
pub mod inputs;
pub mod mutate;
pub mod pickle;
pub mod process;
pub mod rng;
pub mod target;

use crate::inputs::{Case, Format};
use crate::rng::Rng;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Fixed memory allowance of a case, bytes (64 MiB).
pub const MEM_BASE: u64 = 64 << 20;
/// Memory allowance per input byte.
pub const MEM_FACTOR: u64 = 16;
/// Memory allowance per input byte of compressed images (JPEG), which decode into far more
/// bytes than they hold: the decoder's own bound (48 MiB + 256 bytes per file byte, pixels and
/// coefficients) fits in it.
pub const IMAGE_MEM_FACTOR: u64 = 256;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The run's seed: the same seed gives the same cases.
    pub seed: u64,
    /// The formats to fuzz, taken in turn.
    pub formats: Vec<Format>,
    /// Stop after this many cases per format.
    pub cases: Option<usize>,
    /// Stop after this much time (whichever of `cases` and `time` comes first).
    pub time: Option<Duration>,
    /// The `mbls` binary, for the cases run through it.
    pub mbls: Option<PathBuf>,
    /// Run every n-th case of a format through the binary as well (1: every case).
    pub binary_every: usize,
    /// Time limit of one binary run.
    pub timeout: Duration,
    /// Where failing inputs are written (one folder per case).
    pub failures: Option<PathBuf>,
}

/// One failed case.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The format.
    pub format: Format,
    /// The case's number within its format (reproduce with the same seed).
    pub case: usize,
    /// What went wrong.
    pub what: String,
}

/// Counts of one format.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Cases run in process.
    pub cases: usize,
    /// Of those, accepted by the reader (the rest were refused with an error).
    pub accepted: usize,
    /// Cases run through the binary.
    pub binary: usize,
    /// Of those, exit code 0.
    pub binary_ok: usize,
    /// Highest in-process peak over the case's allowance (fraction).
    pub worst_mem: f64,
    /// Highest binary peak RSS over the case's allowance (fraction).
    pub worst_rss: f64,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Counts per format, in the order of [`Options::formats`].
    pub tallies: Vec<(Format, Tally)>,
    /// Every failure.
    pub failures: Vec<Failure>,
}

/// The case `i` of `format` for `seed`: the unmutated seed input for `i = 0`, and for about
/// one case in eight; mutated otherwise.
pub fn case(seed: u64, format: Format, i: usize) -> Case {
    let f = Format::ALL.iter().position(|&x| x == format).unwrap_or(0) as u64;
    let mut rng = Rng::fork(seed, (f << 40) | i as u64);
    let base = inputs::seed_case(format, &mut rng);
    if i == 0 || rng.one_in(8) {
        base
    } else {
        mutate::mutate(format, &base, &mut rng)
    }
}

/// The allowance for a case of `bytes` input bytes.
pub fn allowance(bytes: usize) -> u64 {
    MEM_BASE + MEM_FACTOR * bytes as u64
}

/// The allowance for a case of `format` of `bytes` input bytes ([`allowance`], with
/// [`IMAGE_MEM_FACTOR`] for compressed images).
pub fn format_allowance(format: Format, bytes: usize) -> u64 {
    match format {
        Format::Jpeg => MEM_BASE + IMAGE_MEM_FACTOR * bytes as u64,
        _ => allowance(bytes),
    }
}

/// Runs the fuzzer. `peak` is the allocator whose counters measure in-process memory
/// (`None`: memory is not checked in process).
pub fn run(opts: &Options, peak: Option<&alloc::PeakAlloc>) -> std::io::Result<Report> {
    let scratch = tempfile::Builder::new().prefix("mbls-fuzz").tempdir()?;
    let start = Instant::now();
    let mut report = Report {
        tallies: opts
            .formats
            .iter()
            .map(|&f| (f, Tally::default()))
            .collect(),
        failures: Vec::new(),
    };
    // baseline RSS of each format's command on its valid seed
    let mut baselines = vec![None::<u64>; opts.formats.len()];
    let out_of_time = || opts.time.is_some_and(|t| start.elapsed() >= t);
    let mut i = 0usize;
    'cases: loop {
        if opts.cases.is_some_and(|n| i >= n) {
            break;
        }
        for (fi, &format) in opts.formats.iter().enumerate() {
            if out_of_time() {
                break 'cases;
            }
            let case = case(opts.seed, format, i);
            let dir = scratch.path().join(format!("{}-{i}", format.name()));
            std::fs::create_dir_all(&dir)?;
            case.write_to(&dir)?;
            let tally = &mut report.tallies[fi].1;
            let mut fail = |what: String| {
                report.failures.push(Failure {
                    format,
                    case: i,
                    what,
                })
            };
            // in process
            tally.cases += 1;
            let before = peak.map(|p| {
                p.reset_peak();
                p.live()
            });
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                target::read_in_process(format, &case, &dir)
            }));
            match r {
                Ok(Ok(())) => tally.accepted += 1,
                Ok(Err(_)) => {}
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    fail(format!("panic in process: {msg}"));
                }
            }
            if let (Some(p), Some(b)) = (peak, before) {
                let used = p.peak().saturating_sub(b) as u64;
                let allowed = format_allowance(format, case.total_bytes());
                tally.worst_mem = tally.worst_mem.max(used as f64 / allowed as f64);
                if used > allowed {
                    fail(format!(
                        "in process: peak heap {used} bytes for {} input bytes (allowed {allowed})",
                        case.total_bytes()
                    ));
                }
            }
            // through the binary
            if let Some(mbls) = &opts.mbls {
                if i % opts.binary_every.max(1) == 0 {
                    if baselines[fi].is_none() {
                        let seed = self::case(opts.seed, format, 0);
                        let bdir = scratch.path().join(format!("{}-baseline", format.name()));
                        std::fs::create_dir_all(&bdir)?;
                        seed.write_to(&bdir)?;
                        let mut worst = 0;
                        for v in 0..2 {
                            let o = process::run(
                                mbls,
                                &target::mbls_args(format, &seed, &bdir, v),
                                opts.timeout,
                            )?;
                            worst = worst.max(o.max_rss);
                        }
                        baselines[fi] = Some(worst);
                    }
                    let base = baselines[fi].unwrap_or(0);
                    let args = target::mbls_args(format, &case, &dir, i / opts.binary_every.max(1));
                    let o = process::run(mbls, &args, opts.timeout)?;
                    tally.binary += 1;
                    let allowed = base + format_allowance(format, case.total_bytes());
                    tally.worst_rss = tally.worst_rss.max(o.max_rss as f64 / allowed as f64);
                    let what = if o.timed_out {
                        Some(format!("hang: killed after {:?}", opts.timeout))
                    } else if let Some(s) = o.signal {
                        Some(format!("killed by signal {s}"))
                    } else {
                        match o.code {
                            Some(0) => {
                                tally.binary_ok += 1;
                                None
                            }
                            Some(2) => None,
                            Some(c) => Some(format!("exit code {c}")),
                            None => Some("no exit status".into()),
                        }
                    };
                    let what = what.or_else(|| {
                        (o.max_rss > allowed).then(|| {
                            format!(
                                "peak RSS {} bytes for {} input bytes (allowed {allowed})",
                                o.max_rss,
                                case.total_bytes()
                            )
                        })
                    });
                    if let Some(w) = what {
                        fail(format!(
                            "mbls {}: {w}; stderr: {}",
                            short(&args),
                            o.stderr_tail.trim()
                        ));
                    }
                }
            }
            let failed = report
                .failures
                .last()
                .is_some_and(|f| f.case == i && f.format == format);
            if failed {
                if let Some(root) = &opts.failures {
                    let keep = root.join(format!("{}-seed{}-case{i}", format.name(), opts.seed));
                    std::fs::create_dir_all(&keep)?;
                    case.write_to(&keep)?;
                }
            }
            std::fs::remove_dir_all(&dir)?;
        }
        i += 1;
    }
    Ok(report)
}

/// The arguments shortened for a message.
fn short(args: &[String]) -> String {
    let s = args.join(" ");
    if s.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&c| s.is_char_boundary(c))
            .unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// Formats a report as a table.
pub fn summary(report: &Report) -> String {
    let mut s = String::from(
        "format        cases  accepted  via mbls  exit 0  worst heap/allowance  worst RSS/allowance\n",
    );
    for (f, t) in &report.tallies {
        s.push_str(&format!(
            "{:<12} {:>6}  {:>8}  {:>8}  {:>6}  {:>20.3}  {:>19.3}\n",
            f.name(),
            t.cases,
            t.accepted,
            t.binary,
            t.binary_ok,
            t.worst_mem,
            t.worst_rss
        ));
    }
    s.push_str(&format!("{} failures\n", report.failures.len()));
    for f in &report.failures {
        s.push_str(&format!(
            "  {} case {}: {}\n",
            f.format.name(),
            f.case,
            f.what
        ));
    }
    s
}

/// Where failing inputs go by default.
pub fn default_failures_dir() -> PathBuf {
    Path::new("target").join("fuzz-failures")
}
