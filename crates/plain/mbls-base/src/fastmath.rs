//! A float32 `exp` that the compiler vectorises (no libm call in the loop), and its float64
//! counterpart [`exp64`] for the calibrators' fits.
//!
//! Range reduction `x = n ln2 + r` with `|r| <= ln2 / 2` (ln2 split in two parts), a
//! degree-6 polynomial for `e^r` (Cephes' `expf` coefficients), and `2^n` applied as two
//! float factors so that results down to the subnormal range are produced rather than
//! flushed to zero. Error: within 2 ulp of the correctly rounded result over the range the
//! metrics use (checked against f64 in the tests); 0 below `-104`, `+inf` above `88.72`.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer

/// `e^x` for float32, branch-free so that loops over slices vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // max/min instead of clamp: NaN-tolerant and vectorisable
    #[allow(clippy::manual_clamp)]
    let x = x.max(-104.0).min(88.72);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // the integer n sits in the low mantissa bits of t (|n| < 2^22): no float-to-int cast
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = (p * r) * r + r + 1.0;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    y * s1 * s2
}

const LOG2E64: f64 = std::f64::consts::LOG2_E;
// ln 2 split so that n * LN2_HI64 is exact for |n| < 2^11 (Cephes' `exp` constants)
const LN2_HI64: f64 = 6.931_457_519_531_25e-1;
const LN2_LO64: f64 = 1.428_606_820_309_417_3e-6;
const ROUND64: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52

/// `e^x` for float64, branch-free so that loops over slices vectorise (the libm call that
/// `f64::exp` makes cannot be).
///
/// Range reduction `x = n ln2 + r`, `|r| <= ln2 / 2`, then the Taylor polynomial of `e^r` to
/// degree 13 (truncation below 5e-18 relative) by Horner's rule, and `2^n` as two factors
/// so that results in the subnormal range are produced. Within 2 ulp of `f64::exp` over
/// `[-708, 709]` (checked in the tests); 0 below `-745.2`, `+inf` above `709.79`, NaN for NaN.
#[inline(always)]
pub fn exp64(x: f64) -> f64 {
    #[allow(clippy::manual_clamp)]
    let xc = x.max(-745.2).min(709.79);
    let t = xc * LOG2E64 + ROUND64;
    let n = t - ROUND64;
    let ni = (t.to_bits() as i64).wrapping_sub(ROUND64.to_bits() as i64);
    let r = (xc - n * LN2_HI64) - n * LN2_LO64;
    let mut p = 1.0 / 6_227_020_800.0; // 1/13!
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    let y = (p * r) * r + r + 1.0;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f64::from_bits(((n1 + 1023) as u64) << 52);
    let s2 = f64::from_bits(((n2 + 1023) as u64) << 52);
    // NaN propagates through max/min as the other operand: keep it NaN
    if x.is_nan() { x } else { y * s1 * s2 }
}

/// `v[i] = e^v[i]` for every entry ([`exp64`] over a slice; the loop vectorises, 4 lanes
/// where the CPU has AVX2, 2 otherwise, with the same result bit for bit: the operations per
/// entry are the same and no multiply-add is fused).
#[inline]
pub fn exp64_in_place(v: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { exp64_in_place_avx2(v) };
        return;
    }
    for x in v.iter_mut() {
        *x = exp64(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp64_in_place_avx2(v: &mut [f64]) {
    for x in v.iter_mut() {
        *x = exp64(*x);
    }
}

/// The sum of a slice in 4 lanes (lane `i` adds the elements `i mod 4`), folded as
/// `(l0 + l2) + (l1 + l3)`: a fixed order that vectorises, unlike a sequential sum.
#[inline]
pub fn sum64(v: &[f64]) -> f64 {
    let mut l = [0f64; 4];
    let mut it = v.chunks_exact(4);
    for c in &mut it {
        for i in 0..4 {
            l[i] += c[i];
        }
    }
    for (i, &x) in it.remainder().iter().enumerate() {
        l[i] += x;
    }
    (l[0] + l[2]) + (l[1] + l[3])
}

/// `Σ a[i] b[i]` in the 4-lane order of [`sum64`].
#[inline]
pub fn dot64(a: &[f64], b: &[f64]) -> f64 {
    let mut l = [0f64; 4];
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ia = a.chunks_exact(4);
    let mut ib = b.chunks_exact(4);
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for i in 0..4 {
            l[i] += ca[i] * cb[i];
        }
    }
    for (i, (&x, &y)) in ia.remainder().iter().zip(ib.remainder()).enumerate() {
        l[i] += x * y;
    }
    (l[0] + l[2]) + (l[1] + l[3])
}

/// Maximum, minimum and sum of a slice (8 lanes, vectorised). Empty: (-inf, inf, 0).
#[inline(always)]
pub fn max_min_sum(v: &[f32]) -> (f32, f32, f32) {
    let mut mx = [f32::NEG_INFINITY; 8];
    let mut mn = [f32::INFINITY; 8];
    let mut sm = [0f32; 8];
    let mut it = v.chunks_exact(8);
    // selects rather than f32::max/min (whose NaN rules block plain maxps/minps); a NaN is
    // skipped by max and min but still poisons the sum, which callers check
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 (always there on x86_64) by hand, lane i holding elements i mod 8 as in the
        // portable loop: LLVM's vectorisation of that loop shuffled and blended every chunk.
        // `maxps(c, m)` is `c > m ? c : m` and `minps(c, m)` is `c < m ? c : m`: the selects.
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the unaligned loads and stores stay inside the
        // 8-element chunks and arrays.
        unsafe {
            let (mut m0, mut m1) = (_mm_loadu_ps(mx.as_ptr()), _mm_loadu_ps(mx.as_ptr().add(4)));
            let (mut n0, mut n1) = (_mm_loadu_ps(mn.as_ptr()), _mm_loadu_ps(mn.as_ptr().add(4)));
            let (mut s0, mut s1) = (_mm_setzero_ps(), _mm_setzero_ps());
            for c in &mut it {
                let a = _mm_loadu_ps(c.as_ptr());
                let b = _mm_loadu_ps(c.as_ptr().add(4));
                m0 = _mm_max_ps(a, m0);
                m1 = _mm_max_ps(b, m1);
                n0 = _mm_min_ps(a, n0);
                n1 = _mm_min_ps(b, n1);
                s0 = _mm_add_ps(s0, a);
                s1 = _mm_add_ps(s1, b);
            }
            _mm_storeu_ps(mx.as_mut_ptr(), m0);
            _mm_storeu_ps(mx.as_mut_ptr().add(4), m1);
            _mm_storeu_ps(mn.as_mut_ptr(), n0);
            _mm_storeu_ps(mn.as_mut_ptr().add(4), n1);
            _mm_storeu_ps(sm.as_mut_ptr(), s0);
            _mm_storeu_ps(sm.as_mut_ptr().add(4), s1);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for c in &mut it {
        for i in 0..8 {
            mx[i] = if c[i] > mx[i] { c[i] } else { mx[i] };
            mn[i] = if c[i] < mn[i] { c[i] } else { mn[i] };
            sm[i] += c[i];
        }
    }
    for (i, &x) in it.remainder().iter().enumerate() {
        mx[i] = if x > mx[i] { x } else { mx[i] };
        mn[i] = if x < mn[i] { x } else { mn[i] };
        sm[i] += x;
    }
    let m = mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let n = mn.iter().fold(f32::INFINITY, |a, &b| a.min(b));
    (m, n, fold8(&sm))
}

/// What one pass over a row gives: [`row_stats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    /// The maximum (`-inf` for an empty row; NaN skipped).
    pub max: f32,
    /// The minimum (`+inf` for an empty row; NaN skipped).
    pub min: f32,
    /// The sum, in the 8-lane order of [`max_min_sum`] (NaN poisons it).
    pub sum: f32,
    /// The largest value once one occurrence of the maximum is left out (`max` itself when
    /// it occurs twice; `-inf` for a row of one).
    pub second: f32,
    /// The index of the first occurrence of the maximum (0 if there is none).
    pub argmax: usize,
}

/// Maximum, minimum, sum, second largest value and first index of the maximum of `v`, in
/// one pass of 8 lanes (lane `i` takes the elements `i mod 8`, as [`max_min_sum`], whose
/// three values these are bit for bit). Rows longer than 2^24 take two passes.
#[inline(always)]
pub fn row_stats(v: &[f32]) -> RowStats {
    row_stats_impl::<false>(v)
}

/// [`row_stats`] in 8-lane AVX2 registers (the same result bit for bit).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn row_stats_avx2(v: &[f32]) -> RowStats {
    row_stats_impl::<true>(v)
}

#[inline(always)]
fn row_stats_impl<const AVX2: bool>(v: &[f32]) -> RowStats {
    if v.len() >= 1 << 24 {
        let (max, min, sum) = max_min_sum(v);
        let argmax = first_index_of(v, max).unwrap_or(0);
        return RowStats {
            max,
            min,
            sum,
            second: max_except(v, argmax),
            argmax,
        };
    }
    let mut l = Lanes8::new();
    let mut it = v.chunks_exact(8);
    #[cfg(target_arch = "x86_64")]
    {
        if AVX2 {
            // SAFETY: `AVX2` only from `row_stats_avx2`, whose caller checked the CPU.
            unsafe { l.chunks_avx2(&mut it) };
        } else {
            // SAFETY: SSE2 is part of x86_64; the loads stay inside the 8-element chunks.
            unsafe { l.chunks_sse2(&mut it) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut base = 0;
        for c in &mut it {
            for i in 0..8 {
                l.push(i, c[i], (base + i) as f32);
            }
            base += 8;
        }
    }
    let base = v.len() - it.remainder().len();
    for (i, &x) in it.remainder().iter().enumerate() {
        l.push(i, x, (base + i) as f32);
    }
    l.finish()
}

/// The per-lane state of [`row_stats`]: top two values, the first index of the top one, the
/// minimum and the sum. The updates are selects (`x > m ? x : m`), as `maxps`/`minps` do.
struct Lanes8 {
    m1: [f32; 8],
    m2: [f32; 8],
    idx: [f32; 8],
    mn: [f32; 8],
    sm: [f32; 8],
}

impl Lanes8 {
    #[inline(always)]
    fn new() -> Self {
        Lanes8 {
            m1: [f32::NEG_INFINITY; 8],
            m2: [f32::NEG_INFINITY; 8],
            idx: [-1.0; 8],
            mn: [f32::INFINITY; 8],
            sm: [0.0; 8],
        }
    }

    #[inline(always)]
    fn push(&mut self, i: usize, x: f32, k: f32) {
        let lo = if self.m1[i] < x { self.m1[i] } else { x }; // min(m1, x)
        self.m2[i] = if lo > self.m2[i] { lo } else { self.m2[i] };
        if x > self.m1[i] {
            self.idx[i] = k;
            self.m1[i] = x;
        }
        self.mn[i] = if x < self.mn[i] { x } else { self.mn[i] };
        self.sm[i] += x;
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn chunks_sse2(&mut self, it: &mut std::slice::ChunksExact<'_, f32>) {
        use std::arch::x86_64::*;
        // SAFETY (whole body): unaligned loads and stores inside the chunks and the arrays.
        unsafe {
            let ld = |a: &[f32; 8], h: usize| _mm_loadu_ps(a.as_ptr().add(4 * h));
            let (mut a0, mut a1) = (ld(&self.m1, 0), ld(&self.m1, 1));
            let (mut b0, mut b1) = (ld(&self.m2, 0), ld(&self.m2, 1));
            let (mut i0, mut i1) = (ld(&self.idx, 0), ld(&self.idx, 1));
            let (mut n0, mut n1) = (ld(&self.mn, 0), ld(&self.mn, 1));
            let (mut s0, mut s1) = (ld(&self.sm, 0), ld(&self.sm, 1));
            let mut k0 = _mm_setr_ps(0.0, 1.0, 2.0, 3.0);
            let mut k1 = _mm_setr_ps(4.0, 5.0, 6.0, 7.0);
            let eight = _mm_set1_ps(8.0);
            for c in it {
                let x0 = _mm_loadu_ps(c.as_ptr());
                let x1 = _mm_loadu_ps(c.as_ptr().add(4));
                // m2 = max(m2, min(m1, x)); then m1 = max(x, m1), idx where x > m1
                b0 = _mm_max_ps(_mm_min_ps(a0, x0), b0);
                b1 = _mm_max_ps(_mm_min_ps(a1, x1), b1);
                let g0 = _mm_cmpgt_ps(x0, a0);
                let g1 = _mm_cmpgt_ps(x1, a1);
                i0 = _mm_or_ps(_mm_and_ps(g0, k0), _mm_andnot_ps(g0, i0));
                i1 = _mm_or_ps(_mm_and_ps(g1, k1), _mm_andnot_ps(g1, i1));
                a0 = _mm_max_ps(x0, a0);
                a1 = _mm_max_ps(x1, a1);
                n0 = _mm_min_ps(x0, n0);
                n1 = _mm_min_ps(x1, n1);
                s0 = _mm_add_ps(s0, x0);
                s1 = _mm_add_ps(s1, x1);
                k0 = _mm_add_ps(k0, eight);
                k1 = _mm_add_ps(k1, eight);
            }
            let st = |a: &mut [f32; 8], v0, v1| {
                _mm_storeu_ps(a.as_mut_ptr(), v0);
                _mm_storeu_ps(a.as_mut_ptr().add(4), v1);
            };
            st(&mut self.m1, a0, a1);
            st(&mut self.m2, b0, b1);
            st(&mut self.idx, i0, i1);
            st(&mut self.mn, n0, n1);
            st(&mut self.sm, s0, s1);
        }
    }

    /// [`Lanes8::chunks_sse2`] in one 8-lane register.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn chunks_avx2(&mut self, it: &mut std::slice::ChunksExact<'_, f32>) {
        use std::arch::x86_64::*;
        // SAFETY (whole body): unaligned loads and stores inside the chunks and the arrays.
        unsafe {
            let mut a = _mm256_loadu_ps(self.m1.as_ptr());
            let mut b = _mm256_loadu_ps(self.m2.as_ptr());
            let mut ix = _mm256_loadu_ps(self.idx.as_ptr());
            let mut n = _mm256_loadu_ps(self.mn.as_ptr());
            let mut sm = _mm256_loadu_ps(self.sm.as_ptr());
            let mut k = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
            let eight = _mm256_set1_ps(8.0);
            for c in it {
                let x = _mm256_loadu_ps(c.as_ptr());
                b = _mm256_max_ps(_mm256_min_ps(a, x), b);
                let g = _mm256_cmp_ps::<_CMP_GT_OQ>(x, a);
                ix = _mm256_blendv_ps(ix, k, g);
                a = _mm256_max_ps(x, a);
                n = _mm256_min_ps(x, n);
                sm = _mm256_add_ps(sm, x);
                k = _mm256_add_ps(k, eight);
            }
            _mm256_storeu_ps(self.m1.as_mut_ptr(), a);
            _mm256_storeu_ps(self.m2.as_mut_ptr(), b);
            _mm256_storeu_ps(self.idx.as_mut_ptr(), ix);
            _mm256_storeu_ps(self.mn.as_mut_ptr(), n);
            _mm256_storeu_ps(self.sm.as_mut_ptr(), sm);
        }
    }

    #[inline(always)]
    fn finish(&self) -> RowStats {
        let max = self.m1.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let min = self.mn.iter().fold(f32::INFINITY, |a, &b| a.min(b));
        // the first index: the smallest lane index among the lanes holding the maximum
        let argmax = (0..8)
            .filter(|&i| self.m1[i] == max && self.idx[i] >= 0.0)
            .map(|i| self.idx[i] as usize)
            .min()
            .unwrap_or(0);
        // the second largest of the lanes' top two values (a multiset)
        let (mut t1, mut t2) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for &x in self.m1.iter().chain(&self.m2) {
            let lo = if t1 < x { t1 } else { x };
            t2 = if lo > t2 { lo } else { t2 };
            t1 = if x > t1 { x } else { t1 };
        }
        RowStats {
            max,
            min,
            sum: fold8(&self.sm),
            second: t2,
            argmax,
        }
    }
}

/// The sum of `v` in the 8-lane order of [`max_min_sum`] (its third value, bit for bit).
#[inline(always)]
pub fn sum8(v: &[f32]) -> f32 {
    max_min_sum(v).2
}

/// [`sum8`] in one AVX2 register (the same result bit for bit).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn sum8_avx2(v: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut sm = [0f32; 8];
    let mut it = v.chunks_exact(8);
    // SAFETY: loads inside the 8-element chunks, a store into the 8-float array.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for c in &mut it {
            acc = _mm256_add_ps(acc, _mm256_loadu_ps(c.as_ptr()));
        }
        _mm256_storeu_ps(sm.as_mut_ptr(), acc);
    }
    for (i, &x) in it.remainder().iter().enumerate() {
        sm[i] += x;
    }
    fold8(&sm)
}

/// The fixed-order sum of 8 float lanes, `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`
/// (the fold of two 4-lane halves, as a vector reduction does it).
#[inline(always)]
pub fn fold8(l: &[f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

/// Maximum of `v` leaving out index `skip` (NaN skipped, `-inf` if nothing is left).
#[inline(always)]
pub fn max_except(v: &[f32], skip: usize) -> f32 {
    if skip >= v.len() {
        return max_min_sum(v).0;
    }
    let a = max_min_sum(&v[..skip]).0;
    let b = max_min_sum(&v[skip + 1..]).0;
    if b > a { b } else { a }
}

/// The index of the first element of `v` equal to `x` (`None` if there is none), four
/// elements per comparison.
#[inline(always)]
pub fn first_index_of(v: &[f32], x: f32) -> Option<usize> {
    let mut it = v.chunks_exact(4);
    let mut base = 0;
    for c in &mut it {
        let m = lanes_where(c, |a| a == x);
        if m != 0 {
            return Some(base + m.trailing_zeros() as usize);
        }
        base += 4;
    }
    it.remainder()
        .iter()
        .position(|&a| a == x)
        .map(|i| base + i)
}

/// Bit `i` set where `pred(c[i])`, for a chunk of 4 (compare and movemask on x86_64).
#[inline(always)]
fn lanes_where(c: &[f32], pred: impl Fn(f32) -> bool) -> u32 {
    let mut m = 0u32;
    for (i, &a) in c[..4].iter().enumerate() {
        m |= (pred(a) as u32) << i;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i64 - b.to_bits() as i64).abs()
    }

    #[test]
    fn close_to_correctly_rounded() {
        let mut worst = 0;
        let mut x = -103.0f32;
        while x < 88.0 {
            let want = (x as f64).exp() as f32;
            let got = exp(x);
            if want > f32::MIN_POSITIVE {
                worst = worst.max(ulps(got, want));
            } else {
                assert!(
                    (got - want).abs() <= f32::from_bits(2),
                    "{x}: {got} vs {want}"
                );
            }
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-200.0), 0.0);
        assert!(exp(-100.0) > 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn exp64_is_within_2_ulp_of_libm() {
        let ulps64 = |a: f64, b: f64| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut worst = 0;
        let mut x = -708.0f64;
        while x < 709.0 {
            worst = worst.max(ulps64(exp64(x), x.exp()));
            x += 0.000_937_1;
        }
        // fine steps around 0, where softmax arguments live
        for i in -100_000..100_000 {
            let x = i as f64 * 1.3e-5;
            worst = worst.max(ulps64(exp64(x), x.exp()));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp64(0.0), 1.0);
        assert_eq!(exp64(-800.0), 0.0);
        assert_eq!(exp64(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp64(800.0), f64::INFINITY);
        assert!(exp64(-740.0) > 0.0 && exp64(-740.0) < 1e-320);
        assert!(exp64(f64::NAN).is_nan());
    }

    #[test]
    fn exp64_in_place_is_exp64_on_every_path() {
        let v: Vec<f64> = (0..1003).map(|i| (i as f64 - 700.0) * 0.731).collect();
        let mut a = v.clone();
        exp64_in_place(&mut a);
        for (x, y) in v.iter().zip(&a) {
            assert_eq!(exp64(*x).to_bits(), y.to_bits(), "{x}");
        }
    }

    #[test]
    fn row_stats_is_the_separate_passes() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        for len in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 100, 1000] {
            for coarse in [false, true] {
                // coarse values: many ties, the maximum several times
                let v: Vec<f32> = (0..len)
                    .map(|_| {
                        let x = next() * 8.0 - 4.0;
                        if coarse { x.round() } else { x }
                    })
                    .collect();
                let (max, min, sum) = max_min_sum(&v);
                let argmax = v.iter().position(|&x| x == max).unwrap();
                let mut rest = v.clone();
                rest.remove(argmax);
                let second = rest.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let r = row_stats(&v);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    let (ra, sa) = unsafe { (row_stats_avx2(&v), sum8_avx2(&v)) };
                    assert_eq!(format!("{ra:?}"), format!("{r:?}"), "{len}");
                    assert_eq!(sa.to_bits(), sum.to_bits(), "{len}");
                }
                assert_eq!(sum8(&v).to_bits(), sum.to_bits());
                assert_eq!(r.max.to_bits(), max.to_bits(), "{len}");
                assert_eq!(r.min.to_bits(), min.to_bits(), "{len}");
                assert_eq!(r.sum.to_bits(), sum.to_bits(), "{len}");
                assert_eq!(r.argmax, argmax, "{len} {coarse}");
                assert_eq!(r.second, second, "{len} {coarse}");
                assert_eq!(max_except(&v, argmax), second);
            }
        }
        let e = row_stats(&[]);
        assert_eq!((e.max, e.argmax, e.sum), (f32::NEG_INFINITY, 0, 0.0));
    }

    #[test]
    fn index_scans() {
        let v: Vec<f32> = (0..23).map(|i| ((i * 7) % 11) as f32 * 0.1).collect();
        for x in [0.0f32, 0.3, 0.7, 1.0, 5.0] {
            assert_eq!(first_index_of(&v, x), v.iter().position(|&a| a == x), "{x}");
        }
        assert_eq!(first_index_of(&[], 1.0), None);
    }

    #[test]
    fn reductions() {
        let v: Vec<f32> = (0..21).map(|i| ((i * 7) % 11) as f32 - 3.0).collect();
        let (m, n, s) = max_min_sum(&v);
        assert_eq!(m, 7.0);
        assert_eq!(n, -3.0);
        assert_eq!(s, v.iter().sum::<f32>());
        let am = v.iter().position(|&x| x == m).unwrap();
        let want = v
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != am)
            .map(|(_, &x)| x)
            .fold(f32::MIN, f32::max);
        assert_eq!(max_except(&v, am), want);
        assert_eq!(max_except(&[1.0, 1.0], 0), 1.0);
    }

    /// The 8-lane definition `max_min_sum` must keep (the SSE path on x86_64): lane `i`
    /// takes elements `i mod 8` with the selects, then the fixed fold.
    fn lanes_reference(v: &[f32]) -> (f32, f32, f32) {
        let mut mx = [f32::NEG_INFINITY; 8];
        let mut mn = [f32::INFINITY; 8];
        let mut sm = [0f32; 8];
        for (k, &x) in v.iter().enumerate() {
            let i = k % 8;
            mx[i] = if x > mx[i] { x } else { mx[i] };
            mn[i] = if x < mn[i] { x } else { mn[i] };
            sm[i] += x;
        }
        let m = mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let n = mn.iter().fold(f32::INFINITY, |a, &b| a.min(b));
        let s = ((sm[0] + sm[4]) + (sm[1] + sm[5])) + ((sm[2] + sm[6]) + (sm[3] + sm[7]));
        (m, n, s)
    }

    #[test]
    fn reductions_are_the_8_lane_definition_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in [0usize, 1, 7, 8, 9, 21, 64, 200, 1003] {
            for trial in 0..20 {
                let v: Vec<f32> = (0..len)
                    .map(|_| match next() % 50 {
                        0 if trial % 4 == 1 => f32::NAN,
                        1 => -0.0,
                        2 => f32::INFINITY,
                        3 => f32::NEG_INFINITY,
                        r => (r as f32 - 25.0) * 0.37 + (next() % 1000) as f32 * 1e-3,
                    })
                    .collect();
                let (a, b) = (max_min_sum(&v), lanes_reference(&v));
                assert_eq!(a.0.to_bits(), b.0.to_bits(), "max, len {len}");
                assert_eq!(a.1.to_bits(), b.1.to_bits(), "min, len {len}");
                assert!(
                    a.2.to_bits() == b.2.to_bits() || (a.2.is_nan() && b.2.is_nan()),
                    "sum, len {len}: {} vs {}",
                    a.2,
                    b.2
                );
            }
        }
    }
}
