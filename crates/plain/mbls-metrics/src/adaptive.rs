//! Adaptive (equal-mass) ECE, exactly as the reference computes it, plus a corrected variant.
//!
//! Reference (`AdaptiveECELoss`): the edges are
//! `np.interp(np.linspace(0, N, num_bins + 1), np.arange(N), np.sort(conf))` in float64, cast
//! to float32 for the comparison, and a confidence falls in bin `b` when
//! `edge[b] < conf <= edge[b + 1]`. The first edge is the minimum confidence, so the
//! sample(s) with the minimum confidence are in **no** bin and the bin weights
//! `count / N` sum to slightly less than 1 ([`AdaptiveVariant::Reference`]).
//! [`AdaptiveVariant::Corrected`] uses the same edges but closes the first bin on the left,
//! so every sample counts.

use rayon::prelude::*;

/// Which adaptive-ECE convention to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdaptiveVariant {
    /// The reference's: the minimum-confidence sample(s) are never counted.
    #[default]
    Reference,
    /// Every sample counts: the first bin is `[edge0, edge1]`.
    Corrected,
}

/// Confidences and correctness of every sample, 4 bytes each (the sign bit holds
/// "incorrect"), as needed for exact adaptive ECE.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfidenceStore {
    packed: Vec<u32>,
}

const SIGN: u32 = 0x8000_0000;

impl ConfidenceStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        ConfidenceStore {
            packed: Vec::with_capacity(n),
        }
    }

    /// Adds one sample (`conf` in [0, 1]).
    #[inline(always)]
    pub fn push(&mut self, conf: f32, correct: bool) {
        let bits = conf.to_bits() & !SIGN;
        self.packed.push(if correct { bits } else { bits | SIGN });
    }

    /// Appends the samples of `other`.
    pub fn extend_from(&mut self, other: &ConfidenceStore) {
        self.packed.extend_from_slice(&other.packed);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.packed.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Sample `i` as (confidence, correct).
    #[inline(always)]
    pub fn get(&self, i: usize) -> (f32, bool) {
        let v = self.packed[i];
        (f32::from_bits(v & !SIGN), v & SIGN == 0)
    }

    /// A store of the samples at `indices` (a bootstrap resample).
    pub fn resample(&self, indices: &[u32]) -> ConfidenceStore {
        ConfidenceStore {
            packed: indices.iter().map(|&i| self.packed[i as usize]).collect(),
        }
    }

    /// Adaptive ECE with `num_bins` equal-mass bins. 0 for an empty store.
    pub fn adaptive_ece(&self, num_bins: usize, variant: AdaptiveVariant) -> f64 {
        self.adaptive_bins(num_bins, variant).0
    }

    /// Adaptive ECE in both conventions (reference, corrected), from one pass.
    pub fn adaptive_ece_both(&self, num_bins: usize) -> (f64, f64) {
        let raw = self.reference_bins(num_bins);
        (
            self.adaptive_bins_from(raw.clone(), AdaptiveVariant::Reference)
                .0,
            self.adaptive_bins_from(raw, AdaptiveVariant::Corrected).0,
        )
    }

    /// Adaptive ECE and the per-bin statistics it was computed from.
    pub fn adaptive_bins(
        &self,
        num_bins: usize,
        variant: AdaptiveVariant,
    ) -> (f64, Vec<AdaptiveBin>) {
        self.adaptive_bins_from(self.reference_bins(num_bins), variant)
    }

    /// The reference's bins, plus the count and correct count of the samples at the first
    /// edge (which the reference leaves out and the corrected variant puts in bin 0).
    fn reference_bins(&self, num_bins: usize) -> RawBins {
        let n = self.packed.len();
        if n == 0 || num_bins == 0 {
            return RawBins::default();
        }
        let edges: Vec<f32> = equal_mass_edges(&self.packed, num_bins)
            .iter()
            .map(|&e| e as f32)
            .collect();
        let uppers = &edges[1..];
        // fixed-size chunks merged in order: the same sums whatever the thread count
        let parts: Vec<RawBins> = self
            .packed
            .par_chunks(1 << 16)
            .map(|chunk| {
                let mut r = RawBins::zeros(num_bins);
                for &v in chunk {
                    let c = f32::from_bits(v & !SIGN);
                    let b = uppers.partition_point(|&e| e < c);
                    if b >= num_bins {
                        continue;
                    }
                    let ok = (v & SIGN == 0) as u64;
                    if c > edges[b] {
                        r.count[b] += 1;
                        r.sum_conf[b] += c as f64;
                        r.correct[b] += ok;
                    } else if b == 0 && c >= edges[0] {
                        r.at_min += 1;
                        r.at_min_correct += ok;
                    }
                }
                r
            })
            .collect();
        let mut total = RawBins::zeros(num_bins);
        for p in parts {
            for i in 0..num_bins {
                total.count[i] += p.count[i];
                total.sum_conf[i] += p.sum_conf[i];
                total.correct[i] += p.correct[i];
            }
            total.at_min += p.at_min;
            total.at_min_correct += p.at_min_correct;
        }
        total.edges = edges;
        total.n = n;
        total
    }

    fn adaptive_bins_from(
        &self,
        mut r: RawBins,
        variant: AdaptiveVariant,
    ) -> (f64, Vec<AdaptiveBin>) {
        if r.n == 0 {
            return (0.0, Vec::new());
        }
        if variant == AdaptiveVariant::Corrected {
            r.count[0] += r.at_min;
            r.sum_conf[0] += r.at_min as f64 * r.edges[0] as f64;
            r.correct[0] += r.at_min_correct;
        }
        let (ece, _) =
            crate::bins::binned_calibration_error(&r.count, &r.sum_conf, &r.correct, r.n as f64);
        let bins = (0..r.count.len())
            .map(|b| AdaptiveBin {
                lower: r.edges[b] as f64,
                upper: r.edges[b + 1] as f64,
                count: r.count[b],
                sum_confidence: r.sum_conf[b],
                correct: r.correct[b],
            })
            .collect();
        (ece, bins)
    }
}

#[derive(Default, Clone)]
struct RawBins {
    n: usize,
    edges: Vec<f32>,
    count: Vec<u64>,
    sum_conf: Vec<f64>,
    correct: Vec<u64>,
    at_min: u64,
    at_min_correct: u64,
}

impl RawBins {
    fn zeros(num_bins: usize) -> Self {
        RawBins {
            count: vec![0; num_bins],
            sum_conf: vec![0.0; num_bins],
            correct: vec![0; num_bins],
            ..Default::default()
        }
    }
}

/// Statistics of one adaptive bin.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveBin {
    /// Lower edge (float32 value, as compared).
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Samples in the bin.
    pub count: u64,
    /// Sum of their confidences.
    pub sum_confidence: f64,
    /// How many are correct.
    pub correct: u64,
}

/// `np.interp(np.linspace(0, N, num_bins + 1), np.arange(N), np.sort(conf))`, computed with
/// order statistics instead of a full sort.
fn equal_mass_edges(packed: &[u32], num_bins: usize) -> Vec<f64> {
    let n = packed.len();
    // np.linspace(0, N, num_bins + 1): i * step, the last one exactly N.
    let step = n as f64 / num_bins as f64;
    let xs: Vec<f64> = (0..=num_bins)
        .map(|i| {
            if i == num_bins {
                n as f64
            } else {
                i as f64 * step
            }
        })
        .collect();
    let last = (n - 1) as f64;
    let mut positions: Vec<usize> = Vec::with_capacity(2 * xs.len());
    for &x in &xs {
        if x >= last {
            positions.push(n - 1);
        } else {
            let j = x.floor() as usize;
            positions.push(j);
            positions.push(j + 1);
        }
    }
    positions.sort_unstable();
    positions.dedup();
    let mut keys: Vec<u32> = packed.iter().map(|&v| v & !SIGN).collect();
    let mut found: Vec<(usize, u32)> = Vec::with_capacity(positions.len());
    select_many(&mut keys, &positions, 0, &mut found);
    found.sort_unstable();
    let value_at = |pos: usize| -> f64 {
        let k = found
            .binary_search_by_key(&pos, |&(p, _)| p)
            .expect("selected position");
        f32::from_bits(found[k].1) as f64
    };
    xs.iter()
        .map(|&x| {
            if x >= last {
                // x == N-1 gives fp[N-1]; x > N-1 is clamped to the right value fp[N-1].
                value_at(n - 1)
            } else {
                let j = x.floor() as usize;
                let (y0, y1) = (value_at(j), value_at(j + 1));
                if x == j as f64 {
                    y0
                } else {
                    let slope = (y1 - y0) / 1.0;
                    slope * (x - j as f64) + y0
                }
            }
        })
        .collect()
}

/// Finds the values at the sorted `positions` of `v` (offset by `offset`) by recursive
/// selection: O(n log k) for k positions.
fn select_many(v: &mut [u32], positions: &[usize], offset: usize, out: &mut Vec<(usize, u32)>) {
    if positions.is_empty() || v.is_empty() {
        return;
    }
    let mid = positions.len() / 2;
    let pos = positions[mid];
    let (left, val, right) = v.select_nth_unstable(pos - offset);
    out.push((pos, *val));
    select_many(left, &positions[..mid], offset, out);
    select_many(right, &positions[mid + 1..], pos + 1, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_edges(conf: &[f32], num_bins: usize) -> Vec<f64> {
        let mut s: Vec<f64> = conf.iter().map(|&c| c as f64).collect();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = s.len();
        (0..=num_bins)
            .map(|i| {
                let x = if i == num_bins {
                    n as f64
                } else {
                    i as f64 * (n as f64 / num_bins as f64)
                };
                if x >= (n - 1) as f64 {
                    s[n - 1]
                } else {
                    let j = x.floor() as usize;
                    (s[j + 1] - s[j]) * (x - j as f64) + s[j]
                }
            })
            .collect()
    }

    #[test]
    fn edges_match_a_full_sort() {
        let mut state = 12345u64;
        for n in [1usize, 2, 3, 7, 15, 16, 100, 1001] {
            let conf: Vec<f32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32).max(0.05)
                })
                .collect();
            let packed: Vec<u32> = conf.iter().map(|c| c.to_bits()).collect();
            assert_eq!(
                equal_mass_edges(&packed, 15),
                naive_edges(&conf, 15),
                "n = {n}"
            );
        }
    }

    #[test]
    fn minimum_sample_is_dropped_in_reference_variant() {
        let mut s = ConfidenceStore::new();
        for (i, c) in [0.3f32, 0.5, 0.7, 0.9].iter().enumerate() {
            s.push(*c, i % 2 == 0);
        }
        let (_, bins) = s.adaptive_bins(2, AdaptiveVariant::Reference);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 3);
        let (_, bins) = s.adaptive_bins(2, AdaptiveVariant::Corrected);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 4);
    }

    #[test]
    fn packing_roundtrip() {
        let mut s = ConfidenceStore::new();
        s.push(0.25, false);
        s.push(1.0, true);
        assert_eq!(s.get(0), (0.25, false));
        assert_eq!(s.get(1), (1.0, true));
    }
}
