//! NumPy's legacy global RNG (MT19937 `init_genrand`) and its `shuffle`/`permutation`, bit-exact.
//!
//! The reference seeds NumPy with `np.random.seed(seed)` for an integer seed, which NumPy's
//! `RandomState._legacy_seeding` forwards to `mt19937_seed` — the classic `init_genrand` of
//! Matsumoto and Nishimura (not `init_by_array`). `np.random.shuffle` is a Fisher–Yates shuffle from
//! the end whose indices come from NumPy's masked rejection sampler `random_interval`.
//! [`NumpyRandomState`] reproduces all of these, so the reference's data splits can be recreated
//! exactly (checked against NumPy 2.x output in `tests/rng_numpy.rs`).

/// Number of 32-bit words of MT19937 state.
const N: usize = 624;
/// Middle word offset of MT19937.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// NumPy's legacy `RandomState` bit stream: MT19937 seeded like `np.random.seed(int)`.
///
/// ```
/// use mbls_data::NumpyRandomState;
/// let mut rs = NumpyRandomState::new(0);
/// // np.random.seed(0); np.random.MT19937 raw output
/// assert_eq!(rs.next_u32(), 2357136044);
/// ```
#[derive(Clone)]
pub struct NumpyRandomState {
    key: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for NumpyRandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumpyRandomState")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl NumpyRandomState {
    /// The state after `np.random.seed(seed)` (MT19937 `init_genrand(seed)`).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        let mut s = seed;
        for (pos, k) in key.iter_mut().enumerate() {
            *k = s;
            // `pos + 1 < 625`, so the cast cannot truncate.
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(pos as u32 + 1);
        }
        NumpyRandomState { key, pos: N }
    }

    /// Regenerates the 624 words of state (`mt19937_gen`).
    fn generate(&mut self) {
        let mag = |y: u32| if y & 1 == 1 { MATRIX_A } else { 0 };
        for i in 0..N - M {
            let y = (self.key[i] & UPPER_MASK) | (self.key[i + 1] & LOWER_MASK);
            self.key[i] = self.key[i + M] ^ (y >> 1) ^ mag(y);
        }
        for i in N - M..N - 1 {
            let y = (self.key[i] & UPPER_MASK) | (self.key[i + 1] & LOWER_MASK);
            self.key[i] = self.key[i + M - N] ^ (y >> 1) ^ mag(y);
        }
        let y = (self.key[N - 1] & UPPER_MASK) | (self.key[0] & LOWER_MASK);
        self.key[N - 1] = self.key[M - 1] ^ (y >> 1) ^ mag(y);
        self.pos = 0;
    }

    /// The next raw 32-bit output (NumPy's `next_uint32`, i.e. `MT19937.random_raw()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// The next 64-bit output: two 32-bit draws, the first one high (NumPy's `next_uint64` for MT19937).
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        let lo = u64::from(self.next_u32());
        (hi << 32) | lo
    }

    /// A uniform integer in `0..=max` by NumPy's `random_interval`: draws masked to the smallest
    /// all-ones bit mask `>= max`, rejecting values `> max`; 32-bit draws when `max <= 0xffff_ffff`,
    /// 64-bit draws otherwise. `max == 0` consumes nothing and returns 0.
    pub fn random_interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        mask |= mask >> 32;
        if max <= 0xffff_ffff {
            loop {
                let value = u64::from(self.next_u32()) & mask;
                if value <= max {
                    return value;
                }
            }
        } else {
            loop {
                let value = self.next_u64() & mask;
                if value <= max {
                    return value;
                }
            }
        }
    }

    /// Shuffles `x` in place exactly like `np.random.shuffle` (1-d array or list): for `i` from
    /// `len - 1` down to 1, swap `x[i]` with `x[random_interval(i)]`.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            // `j <= i < x.len()`, so it fits in a usize.
            let j = self.random_interval(i as u64) as usize;
            x.swap(i, j);
        }
    }

    /// `np.random.permutation(n)`: a shuffle of `0..n` on this stream.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }

    /// `np.random.random_sample()`: a double in `[0, 1)` from two draws (27 + 26 bits).
    pub fn random_sample(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_mt19937_output() {
        // First outputs of the reference mt19937ar.c with init_genrand(5489).
        let mut rs = NumpyRandomState::new(5489);
        assert_eq!(rs.next_u32(), 3_499_211_612);
        assert_eq!(rs.next_u32(), 581_869_302);
        assert_eq!(rs.next_u32(), 3_890_346_734);
    }

    #[test]
    fn interval_zero_consumes_nothing() {
        let mut a = NumpyRandomState::new(3);
        let mut b = NumpyRandomState::new(3);
        assert_eq!(a.random_interval(0), 0);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn interval_in_range() {
        let mut rs = NumpyRandomState::new(9);
        for max in [1u64, 2, 5, 1000, 0xffff_ffff, 0x1_0000_0005] {
            for _ in 0..50 {
                assert!(rs.random_interval(max) <= max);
            }
        }
    }

    #[test]
    fn permutation_is_permutation() {
        let mut rs = NumpyRandomState::new(1);
        let mut p = rs.permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
