//! Synthetic twins: indexes and queries of any size with the statistics of a real index
//! and its weighted queries, for benchmarking search at sizes no real collection here has.
//!
//! [`TwinProfile::measure`] reads, from an index and its queries:
//! * the document frequency of every term, by rank (as a share of the documents);
//! * how often each of those terms occurs in the queries (aligned with the df ranks, so
//!   queries favour the same head terms the real ones do);
//! * the number of terms per document and per query (every value, sorted);
//! * the distributions of document and query weights (1,001 quantiles each).
//!
//! A [`TwinSampler`] draws a document as one of 64 length levels (the real lengths'
//! quantiles, `s = L / L̄`), then each term of df rank `r` independently with probability
//! `1 − (1 − q_r)^s`, where `q_r` is solved (bisection) so that the mean over the levels is
//! the real `df_r / N`: document frequencies follow the real ones in expectation, longer
//! documents hold more terms, and head terms in nearly every document stay there.
//! Weights are drawn from the real weight quantiles. Queries are drawn the same way from
//! the query statistics. Term ids are the real index's ids of the same rank. Generation is
//! deterministic for a seed (SplitMix64).

use serde::{Deserialize, Serialize};

use crate::builder::{IndexBuilder, IndexConfig, WeightEncoding};
use crate::error::{IndexError, Result};
use crate::index::Index;
pub use crate::rng::SplitMix64;
use crate::vector::{Query, SparseVector};

/// Quantiles kept of each weight distribution.
const QUANTILES: usize = 1001;

/// Length levels of the sampler.
const LEVELS: usize = 64;

/// What a synthetic twin reproduces of a real index and its queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinProfile {
    /// Live documents of the measured index (with at least one term).
    pub num_docs: u64,
    /// Term ids by decreasing document frequency (ties by id).
    pub terms_by_rank: Vec<u32>,
    /// Document frequency share (`df / num_docs`) of the term at each rank.
    pub df_share: Vec<f32>,
    /// Share of the queries holding the term at each rank.
    pub query_share: Vec<f32>,
    /// Terms per document, sorted.
    pub doc_lengths: Vec<u32>,
    /// Terms per query, sorted.
    pub query_lengths: Vec<u32>,
    /// Quantiles `0, 0.001, …, 1` of the stored document weights.
    pub doc_weights: Vec<f32>,
    /// Quantiles of the query weights.
    pub query_weights: Vec<f32>,
}

impl TwinProfile {
    /// Measures an index (live documents only) and its queries.
    pub fn measure(index: &Index, queries: &[Query]) -> Result<Self> {
        let terms = index.term_ids();
        let mut dfs: Vec<(u32, u64)> = Vec::with_capacity(terms.len());
        let mut doc_len = vec![0u32; index.max_doc() as usize];
        let mut weights = Vec::new();
        for &t in &terms {
            let postings = index.postings(t)?;
            if postings.is_empty() {
                continue;
            }
            dfs.push((t, postings.len() as u64));
            for (d, w) in postings {
                doc_len[d as usize] += 1;
                weights.push(w);
            }
        }
        let mut doc_lengths: Vec<u32> = doc_len.into_iter().filter(|&l| l > 0).collect();
        if doc_lengths.is_empty() || queries.is_empty() {
            return Err(IndexError::InvalidParameter {
                name: "profile",
                value: 0.0,
                reason: "a twin needs an index with documents and at least one query",
            });
        }
        doc_lengths.sort_unstable();
        let num_docs = doc_lengths.len() as u64;
        dfs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rank_of: std::collections::HashMap<u32, usize> =
            dfs.iter().enumerate().map(|(r, &(t, _))| (t, r)).collect();
        let mut query_count = vec![0u64; dfs.len()];
        let mut query_lengths = Vec::with_capacity(queries.len());
        let mut query_weights = Vec::new();
        for q in queries {
            query_lengths.push(q.len() as u32);
            for (t, w) in q.iter() {
                if let Some(&r) = rank_of.get(&t) {
                    query_count[r] += 1;
                }
                query_weights.push(w);
            }
        }
        query_lengths.sort_unstable();
        Ok(Self {
            num_docs,
            terms_by_rank: dfs.iter().map(|&(t, _)| t).collect(),
            df_share: dfs
                .iter()
                .map(|&(_, df)| (df as f64 / num_docs as f64) as f32)
                .collect(),
            query_share: query_count
                .iter()
                .map(|&c| (c as f64 / queries.len() as f64) as f32)
                .collect(),
            doc_lengths,
            query_lengths,
            doc_weights: quantiles(weights),
            query_weights: quantiles(query_weights),
        })
    }

    /// Mean terms per document.
    pub fn mean_doc_length(&self) -> f64 {
        mean(&self.doc_lengths)
    }

    /// Mean terms per query.
    pub fn mean_query_length(&self) -> f64 {
        mean(&self.query_lengths)
    }

    /// The sampler that draws documents and queries with these statistics.
    pub fn sampler(&self) -> TwinSampler {
        TwinSampler {
            docs: Table::new(&self.doc_lengths, &self.df_share),
            queries: Table::new(&self.query_lengths, &self.query_share),
            terms_by_rank: self.terms_by_rank.clone(),
            doc_weights: self.doc_weights.clone(),
            query_weights: self.query_weights.clone(),
        }
    }

    /// An index of `num_docs` documents from `seed`, in segments of `segment_docs`
    /// documents (at most 65,536 keeps a [`Searcher`](crate::Searcher)'s compact doc ids),
    /// with weights stored in `encoding` (rounded to whole numbers for `Integer`). Segments are generated on `threads` threads; a
    /// segment's builder holds about 20 bytes per posting until it is built.
    pub fn build_index(
        &self,
        num_docs: usize,
        seed: u64,
        segment_docs: usize,
        encoding: WeightEncoding,
        threads: usize,
    ) -> Result<Index> {
        let segment_docs = segment_docs.max(1);
        let segments = num_docs.div_ceil(segment_docs);
        let sampler = self.sampler();
        let sampler = &sampler;
        let build_one = |s: usize| -> Result<crate::Segment> {
            let mut rng = SplitMix64::new(seed.wrapping_add((s as u64) << 32));
            let mut builder = IndexBuilder::new(IndexConfig {
                weight_encoding: encoding,
                ..Default::default()
            })?;
            let first = s * segment_docs;
            for d in first..(first + segment_docs).min(num_docs) {
                let mut doc = sampler.document(&mut rng)?;
                if matches!(encoding, WeightEncoding::Integer) {
                    // Integer indexes store term counts: interpolated weights are rounded.
                    doc = SparseVector::new(doc.iter().map(|(t, w)| (t, w.round().max(1.0))))?;
                }
                builder.add(format!("t{d}"), &doc)?;
            }
            builder.build_segment()
        };
        let mut index = Index::new();
        let threads = threads.clamp(1, segments.max(1));
        let mut next = 0usize;
        while next < segments {
            let batch: Vec<usize> = (next..(next + threads).min(segments)).collect();
            next += batch.len();
            let built: Vec<Result<crate::Segment>> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&s| scope.spawn(move || build_one(s)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(IndexError::corrupted("a twin segment builder panicked"))
                        })
                    })
                    .collect()
            });
            for segment in built {
                index.add_segment(segment?)?;
            }
        }
        Ok(index)
    }
}

fn mean(values: &[u32]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64
}

/// [`QUANTILES`] evenly spaced quantiles of `values` (empty for no values).
fn quantiles(mut values: Vec<f32>) -> Vec<f32> {
    if values.is_empty() {
        return Vec::new();
    }
    values.sort_unstable_by(f32::total_cmp);
    let last = (values.len() - 1) as f64;
    (0..QUANTILES)
        .map(|i| values[(i as f64 / (QUANTILES - 1) as f64 * last).round() as usize])
        .collect()
}

/// A value drawn from a quantile table by linear interpolation.
fn from_quantiles(table: &[f32], u: f64) -> f32 {
    let pos = u * (table.len() - 1) as f64;
    let i = (pos as usize).min(table.len() - 2);
    let frac = (pos - i as f64) as f32;
    table[i] + (table[i + 1] - table[i]) * frac
}

/// Inclusion probabilities per length level and rank.
#[derive(Debug, Clone)]
struct Table {
    ranks: usize,
    /// `LEVELS × ranks`: `1 − (1 − q_r)^s_level`.
    probability: Vec<f32>,
}

impl Table {
    fn new(lengths: &[u32], share: &[f32]) -> Self {
        let ranks = share.len();
        if lengths.is_empty() {
            return Self {
                ranks,
                probability: Vec::new(),
            };
        }
        let levels: Vec<f64> = (0..LEVELS)
            .map(|i| {
                let at = ((i as f64 + 0.5) / LEVELS as f64 * lengths.len() as f64) as usize;
                f64::from(lengths[at.min(lengths.len() - 1)])
            })
            .collect();
        let mean = levels.iter().sum::<f64>() / LEVELS as f64;
        let scales: Vec<f64> = levels
            .iter()
            .map(|l| l / mean.max(f64::MIN_POSITIVE))
            .collect();
        let mean_inclusion = |q: f64, p: &mut Vec<f64>| {
            p.clear();
            p.extend(scales.iter().map(|&s| 1.0 - (1.0 - q).powf(s)));
            p.iter().sum::<f64>() / LEVELS as f64
        };
        let mut probability = vec![0f32; LEVELS * ranks];
        let mut p = Vec::with_capacity(LEVELS);
        for (r, &target) in share.iter().enumerate() {
            let target = f64::from(target).clamp(0.0, 1.0);
            let (mut lo, mut hi) = (0f64, 1f64);
            for _ in 0..40 {
                let mid = 0.5 * (lo + hi);
                if mean_inclusion(mid, &mut p) < target {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            mean_inclusion(hi, &mut p);
            for (level, &v) in p.iter().enumerate() {
                probability[level * ranks + r] = v as f32;
            }
        }
        Self { ranks, probability }
    }

    /// Ranks drawn for a random length level.
    fn draw(&self, rng: &mut SplitMix64) -> impl Iterator<Item = usize> + '_ {
        let level = if self.probability.is_empty() {
            None
        } else {
            // Float-based, as the twins in docs/ were drawn.
            Some(((rng.uniform() * LEVELS as f64) as usize).min(LEVELS - 1))
        };
        let row: &[f32] = match level {
            Some(l) => &self.probability[l * self.ranks..(l + 1) * self.ranks],
            None => &[],
        };
        let mut rng = SplitMix64::new(rng.next_u64());
        row.iter()
            .enumerate()
            .filter(move |&(_, &p)| (rng.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0) < p)
            .map(|(r, _)| r)
    }
}

/// Draws twin documents and queries (from [`TwinProfile::sampler`]).
#[derive(Debug, Clone)]
pub struct TwinSampler {
    docs: Table,
    queries: Table,
    terms_by_rank: Vec<u32>,
    doc_weights: Vec<f32>,
    query_weights: Vec<f32>,
}

impl TwinSampler {
    /// Draws one document.
    pub fn document(&self, rng: &mut SplitMix64) -> Result<SparseVector> {
        SparseVector::new(self.pairs(&self.docs, &self.doc_weights, rng))
    }

    /// Draws one query.
    pub fn query(&self, rng: &mut SplitMix64) -> Result<Query> {
        Query::new(self.pairs(&self.queries, &self.query_weights, rng))
    }

    /// `count` queries from `seed`.
    pub fn queries(&self, count: usize, seed: u64) -> Result<Vec<Query>> {
        let mut rng = SplitMix64::new(seed ^ 0x7175_6572_7973);
        (0..count).map(|_| self.query(&mut rng)).collect()
    }

    fn pairs(&self, table: &Table, weights: &[f32], rng: &mut SplitMix64) -> Vec<(u32, f32)> {
        if weights.len() < 2 {
            return Vec::new();
        }
        let mut pairs: Vec<(u32, f32)> = table
            .draw(rng)
            .map(|r| (self.terms_by_rank[r], 0.0))
            .collect();
        for p in &mut pairs {
            // Weights are positive: a drawn 0 (the real minimum can be tiny) is nudged up.
            p.1 = from_quantiles(weights, rng.uniform()).max(f32::MIN_POSITIVE);
        }
        pairs.sort_unstable_by_key(|p| p.0);
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small "real" index: 2,000 documents over 300 terms with a Zipf-like head.
    fn real() -> (Index, Vec<Query>) {
        let mut rng = SplitMix64::new(5);
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for d in 0..2_000 {
            let len = 20 + rng.below(60);
            let mut pairs: Vec<(u32, f32)> = (0..len)
                .map(|_| {
                    let r = (rng.uniform().powi(3) * 300.0) as u32;
                    (r, 0.1 + rng.uniform() as f32 * 3.0)
                })
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            b.add(format!("d{d}"), &SparseVector::new(pairs).expect("valid"))
                .expect("add");
        }
        let queries = (0..50)
            .map(|_| {
                let mut pairs: Vec<(u32, f32)> = (0..15)
                    .map(|_| {
                        (
                            (rng.uniform().powi(2) * 300.0) as u32,
                            0.5 + rng.uniform() as f32,
                        )
                    })
                    .collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                Query::new(pairs).expect("valid")
            })
            .collect();
        (b.build().expect("build"), queries)
    }

    #[test]
    fn a_twin_reproduces_lengths_document_frequencies_and_weights() {
        let (index, queries) = real();
        let profile = TwinProfile::measure(&index, &queries).expect("measure");
        assert_eq!(profile.num_docs, 2_000);
        let twin = profile
            .build_index(8_000, 1, 3_000, WeightEncoding::Float32, 2)
            .expect("build");
        assert_eq!(twin.num_segments(), 3);
        let queries = profile.sampler().queries(400, 2).expect("queries");
        let measured = TwinProfile::measure(&twin, &queries).expect("measure");
        let rel = |a: f64, b: f64| (a - b).abs() / b;
        assert!(rel(measured.mean_doc_length(), profile.mean_doc_length()) < 0.03);
        assert!(rel(measured.mean_query_length(), profile.mean_query_length()) < 0.08);
        // df share by rank: the head within a few percent.
        for r in [0, 5, 20, 50] {
            let (a, b) = (
                f64::from(measured.df_share[r]),
                f64::from(profile.df_share[r]),
            );
            assert!(rel(a, b) < 0.1, "rank {r}: {a} vs {b}");
        }
        for q in [100, 500, 900] {
            let (a, b) = (measured.doc_weights[q], profile.doc_weights[q]);
            assert!((a - b).abs() < 0.05, "weight quantile {q}: {a} vs {b}");
        }
        // Same seed, same twin.
        let again = profile
            .build_index(100, 1, 3_000, WeightEncoding::Float32, 1)
            .expect("build");
        let first = profile
            .build_index(100, 1, 3_000, WeightEncoding::Float32, 2)
            .expect("build");
        assert_eq!(
            again.postings(profile.terms_by_rank[0]).expect("ok"),
            first.postings(profile.terms_by_rank[0]).expect("ok")
        );
    }
}
