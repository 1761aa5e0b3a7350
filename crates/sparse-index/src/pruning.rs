//! Static pruning that keeps the full collection's statistics.
//!
//! Token-level latent terms give documents hundreds to thousands of terms, most of them
//! weak. Dropping a document's weakest postings shrinks the index, but recomputing
//! document frequencies and lengths on what is left changes every score: a latent that
//! survives in few documents looks rare, and a document that lost half its terms looks
//! short. [`IndexBuilder::build_pruned`](crate::IndexBuilder::build_pruned) therefore
//! prunes postings but keeps each document's full length and every term's full document
//! frequency ([`TermStatistics`]), so the postings that remain score exactly as they would
//! in the full index.

use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};

/// Which postings of each document a statically pruned index keeps. Terms are ranked by
/// `weight × idf`, with the Lucene BM25 idf `ln(1 + (N − df + 0.5) / (df + 0.5))` of the
/// full collection; ties keep the lower term id.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticPruning {
    /// At most this many terms per document (at least 1).
    TopTerms(usize),
    /// The fewest top-ranked terms whose `weight × idf` sum reaches this share, in
    /// `(0, 1]`, of the document's total.
    Share(f64),
}

impl StaticPruning {
    /// Errors unless `TopTerms` keeps at least one term and `Share` is in `(0, 1]`.
    ///
    /// ```
    /// use latent_terms_sparse_index::StaticPruning;
    ///
    /// assert!(StaticPruning::Share(0.8).validate().is_ok());
    /// assert!(StaticPruning::TopTerms(0).validate().is_err());
    /// ```
    pub fn validate(self) -> Result<()> {
        match self {
            StaticPruning::TopTerms(0) => Err(IndexError::InvalidParameter {
                name: "top_terms",
                value: 0.0,
                reason: "static pruning must keep at least one term per document",
            }),
            StaticPruning::Share(s) if !(s > 0.0 && s <= 1.0) => {
                Err(IndexError::InvalidParameter {
                    name: "share",
                    value: s,
                    reason: "the share of weight × idf to keep must be in (0, 1]",
                })
            }
            _ => Ok(()),
        }
    }

    /// How many of a document's terms to keep, given their `weight × idf` sorted in
    /// decreasing order.
    pub(crate) fn keep(self, ranked: &[f64]) -> usize {
        match self {
            StaticPruning::TopTerms(n) => n.min(ranked.len()),
            StaticPruning::Share(share) => {
                let total: f64 = ranked.iter().sum();
                let goal = share * total;
                let mut sum = 0.0;
                for (i, &v) in ranked.iter().enumerate() {
                    sum += v;
                    // Relative slack: the running sum of the whole list may differ from
                    // `total` in the last bits.
                    if sum >= goal * (1.0 - 1e-12) {
                        return i + 1;
                    }
                }
                ranked.len()
            }
        }
    }
}

/// The Lucene BM25 idf, the ranking weight of [`StaticPruning`].
pub(crate) fn pruning_idf(df: u64, num_docs: u64) -> f64 {
    let (n, df) = (num_docs as f64, df as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// Document frequencies fixed when a statically pruned index was built: those of the
/// full documents, which [`Index::doc_freq`](crate::Index::doc_freq) returns in place of
/// counting postings. Like Lucene's before a merge, they still count documents deleted
/// later (their pruned postings are gone, so they cannot be subtracted).
///
/// ```
/// use latent_terms_sparse_index::{IndexBuilder, IndexConfig, SparseVector, StaticPruning};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// b.add("a", &SparseVector::new([(1, 3.0), (2, 0.1)])?)?;
/// b.add("b", &SparseVector::new([(2, 2.0)])?)?;
/// let index = b.build_pruned(StaticPruning::TopTerms(1))?;
/// // "a" lost term 2, but term 2 is still counted in two documents.
/// assert_eq!(index.postings(2)?.len(), 1);
/// assert_eq!(index.doc_freq(2)?, 2);
/// assert_eq!(index.term_statistics().map(|s| s.len()), Some(2));
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermStatistics {
    /// `(term, df)`, terms strictly increasing, every df > 0.
    dfs: Vec<(u32, u32)>,
}

impl TermStatistics {
    /// Statistics from `(term, df)` pairs; errors unless terms strictly increase and every
    /// df is positive.
    pub(crate) fn new(dfs: Vec<(u32, u32)>) -> Result<Self> {
        if dfs.windows(2).any(|w| w[0].0 >= w[1].0) || dfs.iter().any(|&(_, df)| df == 0) {
            return Err(IndexError::corrupted(
                "term statistics must list increasing terms with positive document frequencies",
            ));
        }
        Ok(TermStatistics { dfs })
    }

    /// The document frequency of `term` (0 for a term the collection never had).
    pub fn doc_freq(&self, term: u32) -> u32 {
        self.dfs
            .binary_search_by_key(&term, |&(t, _)| t)
            .map_or(0, |i| self.dfs[i].1)
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.dfs.len()
    }

    /// True when no term is listed.
    pub fn is_empty(&self) -> bool {
        self.dfs.is_empty()
    }

    /// `(term, df)` in increasing term order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, u32)> + '_ {
        self.dfs.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        Bm25, ClSr, DotProduct, Index, IndexBuilder, IndexConfig, Query, Scorer, SearchOptions,
        SparseVector,
    };

    fn docs(n: usize, vocab: u32, seed: u64) -> Vec<Vec<(u32, f32)>> {
        let mut rng = crate::SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let mut doc = Vec::new();
                for t in 0..vocab {
                    if rng.next_u64() % (3 + u64::from(t)) < 3 {
                        doc.push((t, 0.1 + (rng.next_u64() % 1000) as f32 / 100.0));
                    }
                }
                if doc.is_empty() {
                    doc.push((0, 1.0));
                }
                doc
            })
            .collect()
    }

    fn build(docs: &[Vec<(u32, f32)>], pruning: Option<StaticPruning>) -> Index {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for (i, d) in docs.iter().enumerate() {
            b.add(
                format!("d{i}"),
                &SparseVector::new(d.clone()).expect("valid"),
            )
            .expect("add");
        }
        match pruning {
            Some(p) => b.build_pruned(p).expect("build"),
            None => b.build().expect("build"),
        }
    }

    /// Every hit of the pruned index scores what the full index gives the same document
    /// for the query terms it kept: pruning removes postings, never changes one.
    fn check_scores<S: Scorer>(full: &Index, pruned: &Index, query: &Query, scorer: &S) {
        let all = pruned.num_docs() as usize;
        let opts = SearchOptions::default();
        let hits = pruned
            .search_exhaustive(query, scorer, all, &opts)
            .expect("search");
        let fast = pruned.search(query, scorer, 10, &opts).expect("search");
        assert_eq!(fast, hits[..hits.len().min(10)].to_vec());
        let searcher = pruned.searcher(scorer).expect("searcher");
        assert_eq!(searcher.search(query, 10, &opts).expect("search"), fast);
        for hit in hits {
            let kept: Vec<(u32, f32)> = query
                .iter()
                .filter(|&(t, _)| {
                    pruned
                        .postings(t)
                        .expect("postings")
                        .iter()
                        .any(|&(d, _)| d == hit.doc)
                })
                .collect();
            let expected = full
                .explain(&Query::new(kept).expect("valid"), scorer, hit.doc)
                .expect("explain")
                .score;
            assert!(
                (expected - hit.score).abs() <= 1e-5 * expected.abs().max(1.0),
                "doc {}: pruned {} vs full {expected}",
                hit.doc,
                hit.score
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pruned_postings_score_as_in_the_full_index(
            n in 1usize..300,
            vocab in 2u32..40,
            seed in any::<u64>(),
            top in 1usize..8,
            share in 0.05f64..1.0,
            query in prop::collection::vec((0u32..45, 0.1f32..3.0), 1..20),
        ) {
            let docs = docs(n, vocab, seed);
            let full = build(&docs, None);
            let mut query = query;
            query.sort_by_key(|p| p.0);
            query.dedup_by_key(|p| p.0);
            let query = Query::new(query).expect("valid");
            for rule in [StaticPruning::TopTerms(top), StaticPruning::Share(share)] {
                let pruned = build(&docs, Some(rule));
                // Statistics are the full index's, whatever was pruned.
                for t in 0..45 {
                    prop_assert_eq!(pruned.doc_freq(t).expect("df"), full.doc_freq(t).expect("df"));
                }
                prop_assert_eq!(
                    pruned.collection_stats(crate::DocLength::SumOfWeights).expect("stats"),
                    full.collection_stats(crate::DocLength::SumOfWeights).expect("stats")
                );
                check_scores(&full, &pruned, &query, &Bm25::default());
                check_scores(&full, &pruned, &query, &ClSr::default());
                check_scores(&full, &pruned, &query, &DotProduct);
            }
        }
    }

    #[test]
    fn top_terms_keep_the_largest_weight_times_idf() {
        // Term 0 is in every document (low idf), term 1 in one: a weaker term 1 beats a
        // stronger term 0.
        let docs = vec![vec![(0, 3.0), (1, 1.0)], vec![(0, 1.0)], vec![(0, 2.0)]];
        let pruned = build(&docs, Some(StaticPruning::TopTerms(1)));
        assert_eq!(pruned.postings(1).expect("postings"), vec![(0, 1.0)]);
        assert_eq!(
            pruned.postings(0).expect("postings"),
            vec![(1, 1.0), (2, 2.0)]
        );
        assert_eq!(pruned.doc_freq(0).expect("df"), 3);
        // Document 0 keeps its full length (4), so its one posting is normalised by it.
        let e = pruned
            .explain(&Query::new([(1, 1.0)]).expect("valid"), &Bm25::default(), 0)
            .expect("explain");
        assert_eq!(e.doc_length, 4.0);
    }

    #[test]
    fn pruned_indexes_round_trip_refuse_new_segments_and_keep_statistics_after_deletes() {
        let docs = docs(200, 30, 7);
        let mut pruned = build(&docs, Some(StaticPruning::TopTerms(3)));
        let bytes = pruned.to_bytes().expect("bytes");
        assert_eq!(bytes[8..12], 2u32.to_le_bytes());
        let loaded = Index::from_bytes(bytes).expect("load");
        assert_eq!(loaded.term_statistics(), pruned.term_statistics());
        let q = Query::new([(1, 1.0), (5, 2.0), (20, 0.5)]).expect("valid");
        let opts = SearchOptions::default();
        assert_eq!(
            loaded
                .search(&q, &Bm25::default(), 10, &opts)
                .expect("search"),
            pruned
                .search(&q, &Bm25::default(), 10, &opts)
                .expect("search")
        );
        // A full index is still written as version 1.
        let full = build(&docs, None);
        assert_eq!(full.to_bytes().expect("bytes")[8..12], 1u32.to_le_bytes());
        assert!(full.term_statistics().is_none());

        let mut more = IndexBuilder::new(IndexConfig::default()).expect("valid");
        more.add("new", &SparseVector::new([(1, 1.0)]).expect("valid"))
            .expect("add");
        assert!(matches!(
            pruned.add_segment(more.build_segment().expect("segment")),
            Err(IndexError::PrunedIndex)
        ));
        // FLOPs count the postings a search scans: fewer once pruned.
        let queries = [q.clone()];
        assert!(pruned.flops(&queries).expect("flops") < full.flops(&queries).expect("flops"));
        let df = pruned.doc_freq(1).expect("df");
        pruned.delete("d0");
        pruned.merge_segments().expect("merge");
        assert_eq!(pruned.doc_freq(1).expect("df"), df);
    }

    #[test]
    fn statistics_from_another_collection_are_refused() {
        let mut index = build(&docs(50, 10, 1), None);
        let err = index
            .set_term_statistics(TermStatistics::new(vec![(0, 1)]).expect("valid"))
            .expect_err("too small");
        assert!(matches!(
            err,
            IndexError::StatisticsMismatch { term: 0, .. }
        ));
        assert!(index.term_statistics().is_none());
    }

    #[test]
    fn share_keeps_the_fewest_terms_that_reach_it() {
        let ranked = [4.0, 3.0, 2.0, 1.0];
        assert_eq!(StaticPruning::Share(0.4).keep(&ranked), 1);
        assert_eq!(StaticPruning::Share(0.41).keep(&ranked), 2);
        assert_eq!(StaticPruning::Share(0.9).keep(&ranked), 3);
        assert_eq!(StaticPruning::Share(1.0).keep(&ranked), 4);
        assert_eq!(StaticPruning::TopTerms(2).keep(&ranked), 2);
        assert_eq!(StaticPruning::TopTerms(9).keep(&ranked), 4);
        assert_eq!(StaticPruning::Share(0.5).keep(&[]), 0);
    }

    #[test]
    fn bad_rules_and_statistics_are_refused() {
        assert!(StaticPruning::TopTerms(0).validate().is_err());
        assert!(StaticPruning::Share(0.0).validate().is_err());
        assert!(StaticPruning::Share(1.5).validate().is_err());
        assert!(StaticPruning::Share(f64::NAN).validate().is_err());
        assert!(StaticPruning::Share(0.5).validate().is_ok());
        assert!(TermStatistics::new(vec![(2, 1), (1, 1)]).is_err());
        assert!(TermStatistics::new(vec![(1, 1), (1, 1)]).is_err());
        assert!(TermStatistics::new(vec![(1, 0)]).is_err());
        let s = TermStatistics::new(vec![(1, 3), (7, 2)]).expect("valid");
        assert_eq!((s.doc_freq(7), s.doc_freq(4)), (2, 0));
    }
}
