//! Latent-term indexes: documents indexed by their active SAE latents, activations as
//! term weights, searched with BM25, CL-SR or the dot product.

use latent_terms_eval::Run;
use latent_terms_sae::SparseCode;
use latent_terms_sparse_index::{
    Index, IndexBuilder, IndexConfig, Query, Scorer, SearchOptions, SparseVector, StaticPruning,
    WeightEncoding,
};

use crate::error::{Error, Result};

/// The `top` largest activations of a code (all of them with `None`) as a sparse vector.
pub fn code_to_vector(code: &SparseCode, top: Option<usize>) -> Result<SparseVector> {
    let v = SparseVector::new(code.iter())?;
    Ok(match top {
        Some(n) => v.top_k(n),
        None => v,
    })
}

/// The `top` largest activations of a code as a query (activations are query weights).
pub fn code_to_query(code: &SparseCode, top: Option<usize>) -> Result<Query> {
    Ok(Query::from(code_to_vector(code, top)?))
}

/// An inverted index over latent terms (exact f32 activations).
///
/// ```
/// use latent_terms::pipeline::LatentIndex;
/// use latent_terms::sae::SparseCode;
/// use latent_terms::sparse_index::ClSr;
///
/// let ids = vec!["a".to_owned(), "b".to_owned()];
/// let codes = vec![
///     SparseCode { indices: vec![1, 5], values: vec![0.9, 0.2] },
///     SparseCode { indices: vec![2, 5], values: vec![0.7, 0.4] },
/// ];
/// let index = LatentIndex::build(&ids, &codes, None)?;
/// let query = SparseCode { indices: vec![1], values: vec![1.0] };
/// let hits = index.search(&LatentIndex::query(&query, None)?, &ClSr::default(), 10)?;
/// assert_eq!(hits[0].0, "a");
/// # Ok::<(), latent_terms::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LatentIndex {
    index: Index,
}

impl LatentIndex {
    /// Indexes `codes[i]` under `ids[i]`, keeping at most `cap` latents per document.
    pub fn build(ids: &[String], codes: &[SparseCode], cap: Option<usize>) -> Result<Self> {
        Ok(LatentIndex {
            index: Self::builder(ids, codes, cap)?.build()?,
        })
    }

    fn builder(ids: &[String], codes: &[SparseCode], cap: Option<usize>) -> Result<IndexBuilder> {
        if ids.len() != codes.len() {
            return Err(Error::Invalid(format!(
                "{} document ids but {} latent codes",
                ids.len(),
                codes.len()
            )));
        }
        let mut builder = IndexBuilder::new(IndexConfig {
            max_terms_per_doc: cap,
            weight_encoding: WeightEncoding::Float32,
        })?;
        for (id, code) in ids.iter().zip(codes) {
            builder.add(id.clone(), &code_to_vector(code, None)?)?;
        }
        Ok(builder)
    }

    /// Indexes `codes[i]` under `ids[i]`, keeping in each document only the latents
    /// `pruning` chooses, scored with the full documents' statistics
    /// ([`IndexBuilder::build_pruned`]).
    pub fn build_pruned(
        ids: &[String],
        codes: &[SparseCode],
        pruning: StaticPruning,
    ) -> Result<Self> {
        Ok(LatentIndex {
            index: Self::builder(ids, codes, None)?.build_pruned(pruning)?,
        })
    }

    /// Wraps an index built or loaded earlier.
    pub fn from_index(index: Index) -> Self {
        LatentIndex { index }
    }

    /// The underlying index (statistics, FLOPs, saving, explain).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// A query from a code's `top` largest activations.
    pub fn query(code: &SparseCode, top: Option<usize>) -> Result<Query> {
        code_to_query(code, top)
    }

    /// The top `k` documents: `(external id, score)`.
    pub fn search<S: Scorer + ?Sized>(
        &self,
        query: &Query,
        scorer: &S,
        k: usize,
    ) -> Result<Vec<(String, f32)>> {
        let hits = self
            .index
            .search(query, scorer, k, &SearchOptions::default())?;
        Ok(crate::lexical::named_hits(&self.index, hits))
    }

    /// Searches every `(query id, query)` and collects a TREC run tagged `tag`.
    ///
    /// Many queries with one scorer go through a [`latent_terms_sparse_index::Searcher`]
    /// (exact two-phase search over impact bounds, bit-identical to the exhaustive path and
    /// several times faster on token-level indexes; docs/benchmarks.md).
    pub fn run<S: Scorer + ?Sized>(
        &self,
        queries: &[(String, Query)],
        scorer: &S,
        k: usize,
        tag: &str,
    ) -> Result<Run> {
        let mut run = Run::new(tag);
        let searcher = self.index.searcher(scorer)?;
        let options = SearchOptions::default();
        for (qid, q) in queries {
            let hits = crate::lexical::named_hits(&self.index, searcher.search(q, k, &options)?);
            run.extend_query(qid, hits.iter().map(|(d, s)| (d.as_str(), f64::from(*s))))?;
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latent_terms_sparse_index::{Bm25, ClSr, DotProduct};

    #[test]
    fn scores_match_hand_computation_and_cap_applies() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let codes = [
            SparseCode::from_pairs(&[(0, 2.0), (1, 1.0)]),
            SparseCode::from_pairs(&[(1, 3.0), (2, 0.5)]),
            SparseCode::from_pairs(&[(2, 1.0), (3, 0.25), (4, 0.1)]),
        ];
        let index = LatentIndex::build(&ids, &codes, Some(2)).unwrap();
        let stats = index.index().statistics().unwrap();
        // "c" lost latent 4 to the cap.
        assert_eq!(stats.num_postings, 6);
        assert_eq!(stats.vocabulary_used, 4);
        let q = LatentIndex::query(&SparseCode::from_pairs(&[(1, 1.0), (2, 2.0)]), None).unwrap();
        let dot = index.search(&q, &DotProduct, 10).unwrap();
        // b: 1·3 + 2·0.5 = 4; c: 2·1 = 2; a: 1·1 = 1.
        assert_eq!(
            dot.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
        assert!((dot[0].1 - 4.0).abs() < 1e-6);
        for hits in [
            index.search(&q, &ClSr::default(), 10).unwrap(),
            index.search(&q, &Bm25::default(), 10).unwrap(),
        ] {
            assert_eq!(hits.len(), 3);
            assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
        }
        // The query top-1 keeps latent 2 only: a does not match.
        let q1 =
            LatentIndex::query(&SparseCode::from_pairs(&[(1, 1.0), (2, 2.0)]), Some(1)).unwrap();
        let hits = index.search(&q1, &DotProduct, 10).unwrap();
        assert_eq!(hits.len(), 2);
        let run = index
            .run(&[("q1".to_owned(), q)], &DotProduct, 2, "dot")
            .unwrap();
        assert_eq!(run.get("q1").unwrap().len(), 2);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = LatentIndex::build(&["a".to_owned()], &[], None).unwrap_err();
        assert!(err.to_string().contains("1 document ids"));
    }
}
