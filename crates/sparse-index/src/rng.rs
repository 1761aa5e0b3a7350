//! SplitMix64, the one seeded generator of the workspace: synthetic indexes, generated
//! LIMIT-style collections and the intrusion test must repeat exactly for a seed, and
//! none of them needs more than a small, fast, well-mixed stream.

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast, deterministic generator.
///
/// ```
/// use latent_terms_sparse_index::SplitMix64;
///
/// let mut rng = SplitMix64::new(7);
/// let mut items = [1, 2, 3, 4];
/// rng.shuffle(&mut items);
/// assert!(rng.below(10) < 10);
/// assert_eq!(SplitMix64::new(7).next_u64(), SplitMix64::new(7).next_u64());
/// ```
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` by Lemire's multiply-shift (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle with [`below`](Self::below).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}
