//! Index statistics the papers report: document frequencies (Zipf analysis), terms per
//! document, vocabulary used, size on disk and the FLOPs efficiency measure.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::Result;
use crate::index::Index;
use crate::vector::Query;

/// Statistics over the live documents of an index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexStats {
    /// Live documents.
    pub num_docs: u64,
    /// Segments.
    pub num_segments: usize,
    /// Postings of live documents (Σ of live document frequencies).
    pub num_postings: u64,
    /// `num_postings / num_docs`: mean number of terms (latents) per document.
    pub avg_terms_per_doc: f64,
    /// Terms with live document frequency > 0.
    pub vocabulary_used: u64,
    /// Size of the saved file, in bytes.
    pub index_size_bytes: u64,
    /// Bytes of the postings sections (compressed doc ids and weights, without block
    /// metadata), divided by the postings they store (deleted ones included, as on disk).
    pub postings_bytes_per_posting: f64,
    /// `index_size_bytes` divided by stored postings.
    pub file_bytes_per_posting: f64,
    /// `(term, live document frequency)` for every used term, by term id.
    pub doc_freqs: Vec<(u32, u64)>,
}

impl IndexStats {
    /// Document frequencies sorted in decreasing order: the rank-frequency curve.
    pub fn rank_frequency(&self) -> Vec<u64> {
        let mut dfs: Vec<u64> = self.doc_freqs.iter().map(|&(_, df)| df).collect();
        dfs.sort_unstable_by(|a, b| b.cmp(a));
        dfs
    }

    /// Zipf exponent `s` of the least-squares fit `ln df(r) = c − s · ln r` over the
    /// rank-frequency curve; `None` with fewer than two used terms. A Zipfian vocabulary
    /// (as Latent Terms reports for SAE latents) has `s` near 1.
    pub fn zipf_exponent(&self) -> Option<f64> {
        let dfs = self.rank_frequency();
        if dfs.len() < 2 {
            return None;
        }
        let n = dfs.len() as f64;
        let (mut sx, mut sy, mut sxx, mut sxy) = (0f64, 0f64, 0f64, 0f64);
        for (r, &df) in dfs.iter().enumerate() {
            let x = ((r + 1) as f64).ln();
            let y = (df as f64).ln();
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        let denom = n * sxx - sx * sx;
        (denom > 0.0).then(|| -(n * sxy - sx * sy) / denom)
    }
}

impl Index {
    /// Computes [`IndexStats`]. Costs one pass over the postings of segments with deletes
    /// (cached until the next delete) and the file-size computation.
    ///
    /// ```
    /// use latent_terms_sparse_index::{IndexBuilder, IndexConfig, SparseVector};
    ///
    /// let mut b = IndexBuilder::new(IndexConfig::default())?;
    /// b.add("a", &SparseVector::new([(0, 1.0), (1, 1.0)])?)?;
    /// b.add("b", &SparseVector::new([(0, 2.0)])?)?;
    /// let stats = b.build()?.statistics()?;
    /// assert_eq!(stats.doc_freqs, vec![(0, 2), (1, 1)]);
    /// assert_eq!(stats.avg_terms_per_doc, 1.5);
    /// # Ok::<(), latent_terms_sparse_index::IndexError>(())
    /// ```
    pub fn statistics(&self) -> Result<IndexStats> {
        let mut dfs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut stored_postings = 0u64;
        let mut postings_bytes = 0u64;
        for e in &self.segments {
            let inner = &e.segment.inner;
            postings_bytes += inner.sections.postings.len() as u64;
            for (ti, t) in inner.terms.iter().enumerate() {
                stored_postings += u64::from(t.df);
                let live = u64::from(e.live_df(ti)?);
                if live > 0 {
                    *dfs.entry(t.term).or_insert(0) += live;
                }
            }
        }
        let num_docs = self.num_docs();
        let num_postings: u64 = dfs.values().sum();
        let index_size_bytes = self.serialized_size()?;
        let per = |bytes: u64| {
            if stored_postings > 0 {
                bytes as f64 / stored_postings as f64
            } else {
                0.0
            }
        };
        Ok(IndexStats {
            num_docs,
            num_segments: self.segments.len(),
            num_postings,
            avg_terms_per_doc: if num_docs > 0 {
                num_postings as f64 / num_docs as f64
            } else {
                0.0
            },
            vocabulary_used: dfs.len() as u64,
            index_size_bytes,
            postings_bytes_per_posting: per(postings_bytes),
            file_bytes_per_posting: per(index_size_bytes),
            doc_freqs: dfs.into_iter().collect(),
        })
    }

    /// FLOPs as the CL-SR paper defines it (after SPLADE): the expected number of
    /// multiplications per query–document pair, `Σ_j p_j(q) · p_j(d)`, where `p_j(d)` is the
    /// fraction of live documents with a posting of term `j` (in a statically pruned index,
    /// a kept posting) and `p_j(q)` the fraction of `queries` containing it. Returns 0 for
    /// an empty index or query set.
    ///
    /// ```
    /// use latent_terms_sparse_index::{IndexBuilder, IndexConfig, Query, SparseVector};
    ///
    /// let mut b = IndexBuilder::new(IndexConfig::default())?;
    /// b.add("a", &SparseVector::new([(0, 1.0), (1, 1.0)])?)?;
    /// b.add("b", &SparseVector::new([(0, 2.0)])?)?;
    /// let index = b.build()?;
    /// let queries = [Query::new([(0, 1.0)])?, Query::new([(1, 1.0)])?];
    /// // p_0(d) = 1, p_1(d) = 0.5, p_0(q) = p_1(q) = 0.5.
    /// assert_eq!(index.flops(&queries)?, 0.75);
    /// # Ok::<(), latent_terms_sparse_index::IndexError>(())
    /// ```
    pub fn flops(&self, queries: &[Query]) -> Result<f64> {
        let num_docs = self.num_docs();
        if num_docs == 0 || queries.is_empty() {
            return Ok(0.0);
        }
        let mut query_df: HashMap<u32, u64> = HashMap::new();
        for q in queries {
            for &t in q.terms() {
                *query_df.entry(t).or_insert(0) += 1;
            }
        }
        let mut terms: Vec<(u32, u64)> = query_df.into_iter().collect();
        // Fixed order so the floating-point sum is reproducible.
        terms.sort_unstable();
        let nq = queries.len() as f64;
        let nd = num_docs as f64;
        let mut total = 0f64;
        for (t, qdf) in terms {
            // Postings, not document frequencies: a statically pruned index scans only
            // the postings it kept.
            let ddf = self.live_postings(t)?;
            total += (qdf as f64 / nq) * (ddf as f64 / nd);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use crate::{IndexBuilder, IndexConfig, Query, SparseVector, WeightEncoding};

    #[test]
    fn statistics_follow_deletes_and_fit_zipf() {
        let mut b = IndexBuilder::new(IndexConfig {
            weight_encoding: WeightEncoding::Quantized { scale: 10.0 },
            ..Default::default()
        })
        .expect("valid");
        // Term t appears in every doc whose id is a multiple of t+1: df ≈ N / (t+1), Zipf s = 1.
        for d in 0..2000u32 {
            let pairs: Vec<(u32, f32)> = (0..50u32)
                .filter(|t| d % (t + 1) == 0)
                .map(|t| (t, 1.0))
                .collect();
            b.add(d.to_string(), &SparseVector::new(pairs).expect("valid"))
                .expect("add");
        }
        let mut index = b.build().expect("build");
        let stats = index.statistics().expect("stats");
        assert_eq!(stats.num_docs, 2000);
        assert_eq!(stats.vocabulary_used, 50);
        assert_eq!(stats.doc_freqs[0], (0, 2000));
        assert_eq!(stats.rank_frequency()[0], 2000);
        let s = stats.zipf_exponent().expect("fit");
        assert!((s - 1.0).abs() < 0.05, "zipf exponent {s}");
        assert_eq!(
            stats.index_size_bytes,
            index.to_bytes().expect("ok").len() as u64
        );
        assert!(stats.postings_bytes_per_posting < stats.file_bytes_per_posting);

        index.delete("0");
        let after = index.statistics().expect("stats");
        assert_eq!(after.num_docs, 1999);
        assert_eq!(after.doc_freqs[0], (0, 1999));
        assert_eq!(after.num_postings, stats.num_postings - 50);
    }

    #[test]
    fn flops_of_identical_queries_and_docs() {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for d in 0..4u32 {
            b.add(
                d.to_string(),
                &SparseVector::new([(d % 2, 1.0)]).expect("valid"),
            )
            .expect("add");
        }
        let index = b.build().expect("build");
        let q = [Query::new([(0, 1.0)]).expect("valid")];
        assert_eq!(index.flops(&q).expect("ok"), 0.5);
        assert_eq!(index.flops(&[]).expect("ok"), 0.0);
    }
}
