//! Seeded bootstrap percentile intervals for ECE, adaptive ECE, NLL and accuracy.
//!
//! Each replicate draws N samples with replacement from a ChaCha8 stream seeded with
//! `seed` and numbered by the replicate, so results are identical whatever the number of
//! threads. The interval is the `(1 − level) / 2` and `(1 + level) / 2` percentiles of the
//! replicate values (linear interpolation, as `numpy.percentile`).

use crate::adaptive::AdaptiveVariant;
use crate::classify::ClassificationAccumulator;
use crate::error::MetricError;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

/// The most replicates [`bootstrap`] draws (a bound on time and memory from one option value).
pub const MAX_REPLICATES: usize = 1_000_000;

/// Bootstrap settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapOptions {
    /// Number of replicates (e.g. 1000).
    pub replicates: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Confidence level of the interval, e.g. 0.95.
    pub level: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            replicates: 1000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A point estimate with its bootstrap percentile interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interval {
    /// The metric on the full sample.
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// Intervals of the bootstrapped metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootstrapResult {
    /// Replicates drawn.
    pub replicates: usize,
    /// Confidence level.
    pub level: f64,
    /// Seed used.
    pub seed: u64,
    /// ECE.
    pub ece: Interval,
    /// Adaptive ECE (reference convention).
    pub aece: Interval,
    /// NLL.
    pub nll: Interval,
    /// Top-1 accuracy.
    pub acc: Interval,
}

/// Percentile with linear interpolation (numpy's default) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Bootstrap intervals from an accumulator that kept per-sample data
/// (`keep_samples` and `keep_confidences`).
pub fn bootstrap(
    acc: &ClassificationAccumulator,
    opts: &BootstrapOptions,
) -> Result<BootstrapResult, MetricError> {
    let n = acc.samples() as usize;
    if n == 0 {
        return Err(MetricError::Empty);
    }
    if opts.replicates < 2 {
        return Err(MetricError::Invalid(format!(
            "bootstrap needs at least 2 replicates, got {}",
            opts.replicates
        )));
    }
    if opts.replicates > MAX_REPLICATES {
        return Err(MetricError::Invalid(format!(
            "bootstrap supports at most {MAX_REPLICATES} replicates, got {}",
            opts.replicates
        )));
    }
    if !(opts.level > 0.0 && opts.level < 1.0) {
        return Err(MetricError::Invalid(format!(
            "bootstrap level must be in (0, 1), got {}",
            opts.level
        )));
    }
    let store = acc.confidences();
    if store.len() != n || acc.sample_nll().len() != n {
        return Err(MetricError::Invalid(
            "bootstrap needs an accumulator with keep_samples and keep_confidences".into(),
        ));
    }
    if n > u32::MAX as usize {
        return Err(MetricError::Invalid(
            "bootstrap supports at most 2^32 samples".into(),
        ));
    }
    let nb = acc.options().num_bins;
    let edges = acc.edges();
    let bin: Vec<u32> = (0..n)
        .map(|i| edges.bin_of(store.get(i).0).map_or(u32::MAX, |b| b as u32))
        .collect();
    let nll = acc.sample_nll();
    let top1 = acc.sample_top1();
    let full = acc.finish()?;

    let reps: Vec<[f64; 4]> = (0..opts.replicates)
        .into_par_iter()
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream(r as u64);
            let idx: Vec<u32> = (0..n)
                .map(|_| ((rng.next_u64() as u128 * n as u128) >> 64) as u32)
                .collect();
            let mut cnt = vec![0u64; nb];
            let mut sconf = vec![0f64; nb];
            let mut scorr = vec![0u64; nb];
            let mut nll_sum = 0f64;
            let mut hits = 0u64;
            for &i in &idx {
                let i = i as usize;
                nll_sum += nll[i] as f64;
                hits += top1[i] as u64;
                let b = bin[i];
                if b != u32::MAX {
                    let (c, ok) = store.get(i);
                    let b = b as usize;
                    cnt[b] += 1;
                    sconf[b] += c as f64;
                    scorr[b] += ok as u64;
                }
            }
            let (ece, _) = crate::bins::binned_calibration_error(&cnt, &sconf, &scorr, n as f64);
            let aece = store
                .resample(&idx)
                .adaptive_ece(nb, AdaptiveVariant::Reference);
            [ece, aece, nll_sum / n as f64, hits as f64 / n as f64]
        })
        .collect();
    let lo_q = (1.0 - opts.level) / 2.0;
    let hi_q = (1.0 + opts.level) / 2.0;
    let interval = |k: usize, estimate: f64| {
        let mut v: Vec<f64> = reps.iter().map(|r| r[k]).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        Interval {
            estimate,
            lower: percentile(&v, lo_q),
            upper: percentile(&v, hi_q),
        }
    };
    Ok(BootstrapResult {
        replicates: opts.replicates,
        level: opts.level,
        seed: opts.seed,
        ece: interval(0, full.ece),
        aece: interval(1, full.aece.unwrap_or(f64::NAN)),
        nll: interval(2, full.nll),
        acc: interval(3, full.acc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ClassificationOptions;

    fn acc() -> ClassificationAccumulator {
        let mut s = 3u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
        };
        let logits: Vec<f32> = (0..500 * 4).map(|_| next()).collect();
        let labels: Vec<i64> = (0..500).map(|i| (i % 4) as i64).collect();
        let mut a = ClassificationAccumulator::new(
            4,
            ClassificationOptions {
                keep_samples: true,
                ..Default::default()
            },
        )
        .unwrap();
        a.update(&logits, &labels).unwrap();
        a
    }

    #[test]
    fn seeded_and_bracketing() {
        let a = acc();
        let o = BootstrapOptions {
            replicates: 200,
            seed: 42,
            level: 0.9,
        };
        let r1 = bootstrap(&a, &o).unwrap();
        let r2 = bootstrap(&a, &o).unwrap();
        assert_eq!(r1, r2);
        for iv in [&r1.ece, &r1.nll, &r1.acc, &r1.aece] {
            assert!(iv.lower <= iv.upper);
            assert!(
                iv.lower <= iv.estimate + 0.05 && iv.estimate - 0.05 <= iv.upper,
                "{iv:?}"
            );
        }
        let r3 = bootstrap(&a, &BootstrapOptions { seed: 43, ..o }).unwrap();
        assert_ne!(r1.ece, r3.ece);
    }

    #[test]
    fn percentile_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }

    #[test]
    fn replicates_are_bounded() {
        let a = acc();
        let e = bootstrap(
            &a,
            &BootstrapOptions {
                replicates: usize::MAX,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("at most 1000000 replicates"), "{e}");
    }

    #[test]
    fn needs_samples() {
        let mut a = ClassificationAccumulator::new(2, ClassificationOptions::default()).unwrap();
        a.update(&[0.0, 1.0], &[1]).unwrap();
        assert!(bootstrap(&a, &BootstrapOptions::default()).is_err());
    }
}
