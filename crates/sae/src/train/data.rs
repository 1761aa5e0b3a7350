//! Training data: embedding rows, optional query → documents pairs, and batching.

use crate::error::{Error, Result, check_rows};

/// Embedding rows to train on, with optional contrastive pairs for the KLD trainer.
#[derive(Clone, Debug)]
pub struct TrainSet<'a> {
    pub(crate) rows: &'a [f32],
    pub(crate) dim: usize,
    pub(crate) pairs: Vec<(usize, Vec<usize>)>,
}

impl<'a> TrainSet<'a> {
    /// Row-major `rows` of width `dim`. Errors on an empty set, a ragged length or NaN/Inf.
    pub fn new(rows: &'a [f32], dim: usize) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::EmptyTrainingSet);
        }
        check_rows("the training embeddings", rows, dim)?;
        Ok(TrainSet {
            rows,
            dim,
            pairs: Vec::new(),
        })
    }

    /// Adds query → document pairs, as row indices into the same set (from qrels or a
    /// dense nearest-neighbour run). Queries without documents are dropped.
    pub fn with_pairs(mut self, pairs: Vec<(usize, Vec<usize>)>) -> Result<Self> {
        let n = self.len();
        for (q, docs) in &pairs {
            if let Some(bad) = std::iter::once(q).chain(docs).find(|&&r| r >= n) {
                return Err(Error::Pairs(format!(
                    "row {bad} is out of range (the set has {n} rows)"
                )));
            }
        }
        self.pairs = pairs.into_iter().filter(|(_, d)| !d.is_empty()).collect();
        Ok(self)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    /// Always false: an empty set is refused by [`TrainSet::new`].
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// Copies the given rows into one row-major buffer.
    pub(crate) fn gather(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            out.extend_from_slice(self.row(i));
        }
        out
    }
}

/// SplitMix64: a small, fixed, seedable generator, so runs repeat exactly.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }

    /// Uniform in `[-1, 1)`.
    pub(crate) fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// The order of rows in epoch `epoch`: a permutation fixed by `(seed, epoch)`, so a resumed
/// run sees the same batches as an uninterrupted one.
pub(crate) fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed.wrapping_add(epoch.wrapping_mul(0xD1B5_4A32_D192_ED03))).shuffle(&mut order);
    order
}

/// Per-coordinate mean of the rows.
pub(crate) fn mean(set: &TrainSet<'_>, idx: &[usize]) -> Vec<f32> {
    let mut acc = vec![0f64; set.dim];
    for &i in idx {
        acc.iter_mut()
            .zip(set.row(i))
            .for_each(|(a, &x)| *a += f64::from(x));
    }
    acc.iter()
        .map(|a| (a / idx.len().max(1) as f64) as f32)
        .collect()
}

/// Sum over the rows of their squared L2 norms (for the input scale).
pub(crate) fn square_norm_total(set: &TrainSet<'_>, idx: &[usize]) -> f64 {
    idx.iter()
        .map(|&i| {
            set.row(i)
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
        })
        .sum()
}

/// Mean squared distance of the rows to `centre` (the data variance when `centre` is the
/// mean), the denominator of NMSE.
pub(crate) fn spread(set: &TrainSet<'_>, idx: &[usize], centre: &[f32]) -> f64 {
    let total: f64 = idx
        .iter()
        .map(|&i| {
            set.row(i)
                .iter()
                .zip(centre)
                .map(|(&x, &c)| f64::from(x - c).powi(2))
                .sum::<f64>()
        })
        .sum();
    total / idx.len().max(1) as f64
}

/// Geometric median by Weiszfeld's iterations, started at the mean.
pub(crate) fn geometric_median(set: &TrainSet<'_>, idx: &[usize], iterations: usize) -> Vec<f32> {
    let mut z: Vec<f64> = mean(set, idx).into_iter().map(f64::from).collect();
    for _ in 0..iterations {
        let mut num = vec![0f64; set.dim];
        let mut den = 0f64;
        for &i in idx {
            let row = set.row(i);
            let dist = row
                .iter()
                .zip(&z)
                .map(|(&x, &c)| (f64::from(x) - c).powi(2))
                .sum::<f64>()
                .sqrt();
            let w = 1.0 / dist.max(1e-8);
            num.iter_mut()
                .zip(row)
                .for_each(|(n, &x)| *n += w * f64::from(x));
            den += w;
        }
        z = num.into_iter().map(|n| n / den).collect();
    }
    z.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sets_are_refused() {
        assert!(matches!(
            TrainSet::new(&[], 4),
            Err(Error::EmptyTrainingSet)
        ));
        assert!(TrainSet::new(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(matches!(
            TrainSet::new(&[1.0, f32::INFINITY], 2),
            Err(Error::NonFinite { row: 0, col: 1, .. })
        ));
        let set = TrainSet::new(&[0.0; 8], 2).unwrap();
        assert!(set.clone().with_pairs(vec![(0, vec![1, 9])]).is_err());
        assert_eq!(
            set.with_pairs(vec![(0, vec![1]), (2, vec![])])
                .unwrap()
                .pairs
                .len(),
            1
        );
    }

    #[test]
    fn epoch_orders_are_permutations_fixed_by_seed() {
        let a = epoch_order(100, 7, 3);
        assert_eq!(a, epoch_order(100, 7, 3));
        assert_ne!(a, epoch_order(100, 7, 4));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn geometric_median_resists_an_outlier() {
        let rows = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 100.0, 100.0];
        let set = TrainSet::new(&rows, 2).unwrap();
        let idx: Vec<usize> = (0..5).collect();
        let gm = geometric_median(&set, &idx, 100);
        let mu = mean(&set, &idx);
        assert!(gm[0] < 1.5 && mu[0] > 20.0, "{gm:?} {mu:?}");
    }
}
