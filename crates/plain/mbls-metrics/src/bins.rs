//! Equal-width confidence bins with the reference's conventions.
//!
//! The edges are `torch.linspace(0, 1, num_bins + 1)` in float32, computed the way
//! PyTorch's CPU kernel does (`start + step * i` for the first half, `end - step * (n - i)`
//! for the second, with a float32 `step`, each rounded once as a fused multiply-add rounds),
//! and a value `p` falls in bin `b` when
//! `edges[b] < p <= edges[b + 1]`: a confidence of exactly 0 is in no bin.

/// Float32 bin edges, `num_bins + 1` of them, increasing from 0 to 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinEdges {
    edges: Vec<f32>,
    scale: f32,
}

impl BinEdges {
    /// Equal-width edges as `torch.linspace(0, 1, num_bins + 1)` builds them.
    ///
    /// # Panics
    /// If `num_bins` is 0 (callers validate it first).
    pub fn equal_width(num_bins: usize) -> Self {
        assert!(num_bins > 0, "num_bins must be positive");
        let steps = num_bins + 1;
        let step: f32 = 1.0f32 / (num_bins as f32);
        let halfway = steps / 2;
        // Each edge is rounded to float32 once, as libtorch's kernel computes it with a fused
        // multiply-add (torch 2.11 gives 0.800000012 for the 13th of 16 edges, not the
        // 0.79999995 of two roundings); the f64 product and difference are exact.
        let step = step as f64;
        let edges = (0..steps)
            .map(|i| {
                if i < halfway {
                    (step * i as f64) as f32
                } else {
                    (1.0 - step * (steps - i - 1) as f64) as f32
                }
            })
            .collect();
        BinEdges {
            edges,
            scale: num_bins as f32,
        }
    }

    /// Number of bins.
    pub fn len(&self) -> usize {
        self.edges.len() - 1
    }

    /// Always false: there is at least one bin.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `num_bins + 1` edges.
    pub fn edges(&self) -> &[f32] {
        &self.edges
    }

    /// The bin of `p` under `(lower, upper]` membership, or `None` if `p <= 0`, `p > 1`
    /// or `p` is NaN.
    #[inline(always)]
    pub fn bin_of(&self, p: f32) -> Option<usize> {
        if p.is_nan() || p <= 0.0 || p > 1.0 {
            return None;
        }
        let n = self.edges.len() - 1;
        let mut b = ((p * self.scale) as usize).min(n - 1);
        // The estimate is exact or one off; fix it against the float32 edges.
        // SAFETY of indexing: b <= n - 1, so b + 1 <= n is in range.
        if p <= self.edges[b] {
            b -= 1; // b >= 1 here because edges[0] == 0 < p
        } else if p > self.edges[b + 1] {
            b += 1;
        }
        Some(b)
    }
}

/// ECE and MCE from per-bin statistics: `Σ_b |conf_b − acc_b| · count_b / n` and the
/// largest `|conf_b − acc_b|`, over non-empty bins (`sum_conf` and `correct` are per-bin sums).
pub fn binned_calibration_error(
    count: &[u64],
    sum_conf: &[f64],
    correct: &[u64],
    n: f64,
) -> (f64, f64) {
    let mut ece = 0.0;
    let mut mce = 0f64;
    for ((&cnt, &conf), &ok) in count.iter().zip(sum_conf).zip(correct) {
        if cnt == 0 {
            continue;
        }
        let c = cnt as f64;
        let gap = (conf / c - ok as f64 / c).abs();
        ece += gap * (c / n);
        mce = mce.max(gap);
    }
    (ece, mce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_match_torch_linspace() {
        let e = BinEdges::equal_width(15);
        assert_eq!(e.edges().len(), 16);
        assert_eq!(e.edges()[0], 0.0);
        assert_eq!(e.edges()[15], 1.0);
        // values torch.linspace(0, 1, 16) prints (float32)
        assert_eq!(e.edges()[1], 0.06666667f32);
        assert_eq!(e.edges()[8], 1.0f32 - (1.0f32 / 15.0) * 7.0);
    }

    #[test]
    fn membership_is_lower_open_upper_closed() {
        let e = BinEdges::equal_width(15);
        assert_eq!(e.bin_of(0.0), None);
        assert_eq!(e.bin_of(-0.1), None);
        assert_eq!(e.bin_of(f32::NAN), None);
        assert_eq!(e.bin_of(1.0), Some(14));
        assert_eq!(e.bin_of(1e-30), Some(0));
        for b in 0..15 {
            let lo = e.edges()[b];
            let hi = e.edges()[b + 1];
            assert_eq!(e.bin_of(hi), Some(b), "upper edge {hi} belongs to bin {b}");
            let above = f32::from_bits(lo.to_bits() + 1);
            assert_eq!(e.bin_of(above), Some(b));
        }
        // brute force against the definition on many values
        for i in 0..100_000u32 {
            let p = i as f32 / 99_999.0;
            let want = (0..15).find(|&b| p > e.edges()[b] && p <= e.edges()[b + 1]);
            assert_eq!(e.bin_of(p), want, "p = {p}");
        }
    }
}
