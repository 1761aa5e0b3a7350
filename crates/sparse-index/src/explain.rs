//! Per-term explanations of a document's score.

use std::fmt;

use serde::Serialize;

use crate::error::{IndexError, Result};
use crate::index::{DocId, Index};
use crate::postings::PostingCursor;
use crate::scorer::Scorer;
use crate::search::{PreparedQuery, contribution};
use crate::vector::Query;

/// How one matching query term contributed to a document's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TermContribution {
    /// Term id ([`Vocabulary::term`](crate::Vocabulary::term) names lexical ones).
    pub term: u32,
    /// Raw query weight (query tf or activation).
    pub query_weight: f32,
    /// The scorer's transform of it (BM25: unchanged; CL-SR: f_q).
    pub query_factor: f32,
    /// Stored (decoded) document weight.
    pub doc_weight: f32,
    /// The document-side factor (BM25's saturated tf; CL-SR's f_d).
    pub doc_factor: f32,
    /// The term's idf (1 for scorers without one).
    pub idf: f32,
    /// Document frequency used for the idf (the full collection's in a statically pruned
    /// index).
    pub doc_freq: u64,
    /// `(query_factor · idf) · doc_factor`.
    pub contribution: f32,
}

/// A document's score broken down by query term.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Internal doc id.
    pub doc: DocId,
    /// External doc id.
    pub external_id: String,
    /// The score; equal (bit for bit) to the one [`Index::search`] returns.
    pub score: f32,
    /// Document length the scorer normalised by.
    pub doc_length: f32,
    /// Average document length over live documents.
    pub avg_doc_length: f32,
    /// Live documents with at least one term.
    pub num_docs: u64,
    /// Matching terms in increasing term order, the order the score sums them in.
    pub terms: Vec<TermContribution>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "doc {} ({}): score {} (length {}, avg {}, N {})",
            self.external_id,
            self.doc,
            self.score,
            self.doc_length,
            self.avg_doc_length,
            self.num_docs
        )?;
        for t in &self.terms {
            writeln!(
                f,
                "  term {:>8}: {:>10.6} = query factor {} × idf {} × doc factor {}  (query weight {}, doc weight {}, df {})",
                t.term,
                t.contribution,
                t.query_factor,
                t.idf,
                t.doc_factor,
                t.query_weight,
                t.doc_weight,
                t.doc_freq
            )?;
        }
        Ok(())
    }
}

impl Index {
    /// Explains the score `scorer` gives `doc` for `query`: every matching term with its
    /// query weight, document weight, idf and contribution. The contributions, summed in
    /// the listed order in f32, are exactly the score the searches return.
    ///
    /// Errors if `doc` does not exist or is deleted. A document that matches no query term
    /// gets score 0 and no terms.
    ///
    /// ```
    /// use latent_terms_sparse_index::{ClSr, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector};
    ///
    /// let mut b = IndexBuilder::new(IndexConfig::default())?;
    /// b.add("a", &SparseVector::new([(1, 0.7), (2, 0.2)])?)?;
    /// b.add("b", &SparseVector::new([(2, 0.9)])?)?;
    /// let index = b.build()?;
    /// let q = Query::new([(1, 0.5), (2, 1.0)])?;
    /// let hit = index.search(&q, &ClSr::default(), 1, &SearchOptions::default())?[0];
    /// let why = index.explain(&q, &ClSr::default(), hit.doc)?;
    /// assert_eq!(why.score, hit.score);
    /// assert_eq!(why.terms.iter().map(|t| t.contribution).sum::<f32>(), hit.score);
    /// # Ok::<(), latent_terms_sparse_index::IndexError>(())
    /// ```
    pub fn explain<S: Scorer + ?Sized>(
        &self,
        query: &Query,
        scorer: &S,
        doc: DocId,
    ) -> Result<Explanation> {
        let (si, local) = self.locate(doc)?;
        let entry = &self.segments[si];
        if entry.deletes.contains(local) {
            return Err(IndexError::DeletedDocument { doc });
        }
        let inner = &entry.segment.inner;
        let prepared = PreparedQuery::new(self, query, scorer)?;
        let lengths = inner.length_column(prepared.kind)?;
        let doc_length = lengths.per_doc[local as usize];
        let avg = prepared.stats.avg_doc_length;
        let mut terms = Vec::new();
        let mut score = 0f32;
        for qt in &prepared.terms {
            let Some(ti) = inner.term_index(qt.term) else {
                continue;
            };
            let mut cursor = PostingCursor::new(inner, ti)?;
            cursor.seek(local)?;
            if cursor.doc() != local {
                continue;
            }
            let w = cursor.weight();
            let c = contribution(scorer, qt.multiplier, w, doc_length, avg);
            score += c;
            terms.push(TermContribution {
                term: qt.term,
                query_weight: qt.query_weight,
                query_factor: qt.query_factor,
                doc_weight: w,
                doc_factor: scorer.doc_factor(w, doc_length, avg),
                idf: qt.idf,
                doc_freq: qt.doc_freq,
                contribution: c,
            });
        }
        Ok(Explanation {
            doc,
            external_id: inner.doc_ids.get(local).unwrap_or_default().to_owned(),
            score,
            doc_length,
            avg_doc_length: avg,
            num_docs: prepared.stats.num_docs,
            terms,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Bm25, IndexBuilder, IndexConfig, IndexError, Query, SearchOptions, SparseVector};

    #[test]
    fn explanation_matches_search_and_rejects_deleted_docs() {
        let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
        b.add(
            "a",
            &SparseVector::new([(0, 3.0), (1, 1.0), (4, 2.0)]).expect("valid"),
        )
        .expect("add");
        b.add("b", &SparseVector::new([(1, 5.0)]).expect("valid"))
            .expect("add");
        let mut index = b.build().expect("build");
        let q = Query::from_terms([0, 1, 1, 4, 9]);
        let scorer = Bm25::default();
        for hit in index
            .search(&q, &scorer, 10, &SearchOptions::default())
            .expect("search")
        {
            let e = index.explain(&q, &scorer, hit.doc).expect("explain");
            assert_eq!(e.score, hit.score);
            let mut sum = 0f32;
            for t in &e.terms {
                sum += t.contribution;
                assert_eq!(t.contribution, (t.query_factor * t.idf) * t.doc_factor);
            }
            assert_eq!(sum, hit.score);
            assert!(e.to_string().contains("score"));
        }
        let e = index.explain(&q, &scorer, 0).expect("explain");
        assert_eq!(
            e.terms.iter().map(|t| t.term).collect::<Vec<_>>(),
            vec![0, 1, 4]
        );
        assert_eq!(e.terms[1].query_weight, 2.0);
        index.delete("a");
        assert!(matches!(
            index.explain(&q, &scorer, 0),
            Err(IndexError::DeletedDocument { doc: 0 })
        ));
        assert!(index.explain(&q, &scorer, 7).is_err());
    }
}
