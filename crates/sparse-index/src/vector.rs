//! Sparse vectors (documents) and queries: validated, sorted `(term, weight)` lists.

use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};

fn check_weight(term: u32, weight: f32) -> Result<()> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(IndexError::InvalidWeight { term, weight })
    }
}

/// A document vector: strictly increasing term ids, each with a finite weight > 0.
///
/// Zero weights are dropped on construction because a zero activation or term frequency
/// means the term is absent; keeping it would inflate document frequencies.
///
/// ```
/// use latent_terms_sparse_index::SparseVector;
///
/// let v = SparseVector::new([(7, 0.5), (2, 1.25), (9, 0.0)])?;
/// assert_eq!(v.iter().collect::<Vec<_>>(), vec![(2, 1.25), (7, 0.5)]);
/// assert_eq!(v.top_k(1).terms(), &[2]);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u32, f32)>", into = "Vec<(u32, f32)>")]
pub struct SparseVector {
    terms: Vec<u32>,
    weights: Vec<f32>,
}

impl SparseVector {
    /// Builds a vector from `(term, weight)` pairs in any order.
    ///
    /// Errors on a negative or non-finite weight, or on a term given twice.
    pub fn new(pairs: impl IntoIterator<Item = (u32, f32)>) -> Result<Self> {
        let mut pairs: Vec<(u32, f32)> = pairs.into_iter().collect();
        for &(term, weight) in &pairs {
            check_weight(term, weight)?;
        }
        pairs.retain(|&(_, w)| w > 0.0);
        pairs.sort_unstable_by_key(|&(t, _)| t);
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(IndexError::DuplicateTerm { term: w[0].0 });
        }
        Ok(Self::from_sorted_unchecked(pairs))
    }

    /// Builds a vector from a dense slice: entry `i` becomes term `i`.
    pub fn from_dense(values: &[f32]) -> Result<Self> {
        let len = u32::try_from(values.len()).map_err(|_| IndexError::InvalidParameter {
            name: "dense vector length",
            value: values.len() as f64,
            reason: "term ids are u32; a dense vector can have at most 2^32 entries",
        })?;
        Self::new((0..len).zip(values.iter().copied()))
    }

    pub(crate) fn from_sorted_unchecked(pairs: Vec<(u32, f32)>) -> Self {
        let (terms, weights) = pairs.into_iter().unzip();
        Self { terms, weights }
    }

    /// Number of terms with a non-zero weight.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True if no term has a non-zero weight.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Term ids, strictly increasing.
    pub fn terms(&self) -> &[u32] {
        &self.terms
    }

    /// Weights, aligned with [`terms`](Self::terms).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// `(term, weight)` pairs in increasing term order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, f32)> + '_ {
        self.terms.iter().copied().zip(self.weights.iter().copied())
    }

    /// Weight of `term`, or 0 if absent.
    pub fn get(&self, term: u32) -> f32 {
        self.terms
            .binary_search(&term)
            .map_or(0.0, |i| self.weights[i])
    }

    /// Keeps the `n` largest weights (ties keep the lower term id), like the paper's
    /// per-document latent cap ("Efficient" = 24, "Max" = 65).
    pub fn top_k(&self, n: usize) -> SparseVector {
        if self.len() <= n {
            return self.clone();
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            self.weights[b]
                .total_cmp(&self.weights[a])
                .then(self.terms[a].cmp(&self.terms[b]))
        });
        order.truncate(n);
        order.sort_unstable();
        Self::from_sorted_unchecked(
            order
                .into_iter()
                .map(|i| (self.terms[i], self.weights[i]))
                .collect(),
        )
    }
}

impl TryFrom<Vec<(u32, f32)>> for SparseVector {
    type Error = IndexError;
    fn try_from(pairs: Vec<(u32, f32)>) -> Result<Self> {
        Self::new(pairs)
    }
}

impl From<SparseVector> for Vec<(u32, f32)> {
    fn from(v: SparseVector) -> Self {
        v.terms.into_iter().zip(v.weights).collect()
    }
}

/// A query: `(term, weight)` pairs. The weight is the raw query-side value (a query term
/// frequency for BM25, an activation for CL-SR); the [`Scorer`](crate::Scorer) turns it into
/// the factor it multiplies with.
///
/// Unlike [`SparseVector`], repeated terms are allowed and their weights are summed, so a
/// lexical query that says a word twice gives it query term frequency 2.
///
/// ```
/// use latent_terms_sparse_index::Query;
///
/// let q = Query::from_terms([4, 1, 4]);
/// assert_eq!(q.iter().collect::<Vec<_>>(), vec![(1, 1.0), (4, 2.0)]);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u32, f32)>", into = "Vec<(u32, f32)>")]
pub struct Query {
    terms: Vec<u32>,
    weights: Vec<f32>,
}

impl Query {
    /// Builds a query; weights of repeated terms are added, zero weights dropped.
    ///
    /// Errors on a negative or non-finite weight.
    pub fn new(pairs: impl IntoIterator<Item = (u32, f32)>) -> Result<Self> {
        let mut pairs: Vec<(u32, f32)> = pairs.into_iter().collect();
        for &(term, weight) in &pairs {
            check_weight(term, weight)?;
        }
        // Stable sort keeps the caller's order among duplicates, so their sum is deterministic.
        pairs.sort_by_key(|&(t, _)| t);
        let mut terms: Vec<u32> = Vec::with_capacity(pairs.len());
        let mut weights: Vec<f32> = Vec::with_capacity(pairs.len());
        for (t, w) in pairs {
            match (terms.last(), weights.last_mut()) {
                (Some(&last), Some(acc)) if last == t => *acc += w,
                _ => {
                    terms.push(t);
                    weights.push(w);
                }
            }
        }
        for (&t, &w) in terms.iter().zip(&weights) {
            // A sum of finite weights can overflow to infinity.
            check_weight(t, w)?;
        }
        let (terms, weights) = terms
            .into_iter()
            .zip(weights)
            .filter(|&(_, w)| w > 0.0)
            .unzip();
        Ok(Self { terms, weights })
    }

    /// A query where every occurrence of a term adds 1 to its weight (lexical BM25 queries).
    pub fn from_terms(terms: impl IntoIterator<Item = u32>) -> Self {
        let mut terms: Vec<u32> = terms.into_iter().collect();
        terms.sort_unstable();
        let mut out = Self::default();
        for t in terms {
            if out.terms.last() == Some(&t) {
                if let Some(w) = out.weights.last_mut() {
                    *w += 1.0;
                }
            } else {
                out.terms.push(t);
                out.weights.push(1.0);
            }
        }
        out
    }

    /// Number of distinct terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True if the query has no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Distinct term ids, strictly increasing. This is also the order in which a document's
    /// per-term contributions are summed, so every search path adds them identically.
    pub fn terms(&self) -> &[u32] {
        &self.terms
    }

    /// Weights aligned with [`terms`](Self::terms).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// `(term, weight)` pairs in increasing term order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, f32)> + '_ {
        self.terms.iter().copied().zip(self.weights.iter().copied())
    }
}

impl From<SparseVector> for Query {
    fn from(v: SparseVector) -> Self {
        Self {
            terms: v.terms,
            weights: v.weights,
        }
    }
}

impl TryFrom<Vec<(u32, f32)>> for Query {
    type Error = IndexError;
    fn try_from(pairs: Vec<(u32, f32)>) -> Result<Self> {
        Self::new(pairs)
    }
}

impl From<Query> for Vec<(u32, f32)> {
    fn from(q: Query) -> Self {
        q.terms.into_iter().zip(q.weights).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_sorts_drops_zeros_and_rejects_bad_input() {
        let v = SparseVector::new([(3, 1.0), (1, 0.0), (2, 2.0)]).expect("valid");
        assert_eq!(v.terms(), &[2, 3]);
        assert_eq!(v.get(3), 1.0);
        assert_eq!(v.get(1), 0.0);
        assert!(matches!(
            SparseVector::new([(1, 1.0), (1, 2.0)]),
            Err(IndexError::DuplicateTerm { term: 1 })
        ));
        for bad in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                SparseVector::new([(5, bad)]),
                Err(IndexError::InvalidWeight { term: 5, .. })
            ));
        }
    }

    #[test]
    fn top_k_keeps_largest_with_lower_term_on_ties() {
        let v = SparseVector::new([(1, 0.5), (2, 3.0), (3, 0.5), (4, 1.0)]).expect("valid");
        assert_eq!(v.top_k(3).terms(), &[1, 2, 4]);
        assert_eq!(v.top_k(10), v);
        assert!(v.top_k(0).is_empty());
    }

    #[test]
    fn query_sums_repeats_and_dense_vectors_map_indexes() {
        let q = Query::new([(2, 0.5), (1, 1.0), (2, 0.25), (3, 0.0)]).expect("valid");
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![(1, 1.0), (2, 0.75)]);
        assert!(Query::new([(1, f32::MAX), (1, f32::MAX)]).is_err());
        let d = SparseVector::from_dense(&[0.0, 2.0, 0.0, 1.0]).expect("valid");
        assert_eq!(d.terms(), &[1, 3]);
    }

    #[test]
    fn serde_round_trip_validates() {
        let v = SparseVector::new([(1, 1.0), (9, 2.0)]).expect("valid");
        let pairs: Vec<(u32, f32)> = v.clone().into();
        assert_eq!(SparseVector::try_from(pairs).expect("valid"), v);
        assert!(SparseVector::try_from(vec![(1, -1.0)]).is_err());
    }
}
