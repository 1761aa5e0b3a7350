//! Exact two-phase search over per-scorer impact codes, for long queries over dense
//! posting lists (token-level latent indexes: hundreds of query latents, each in a
//! sizeable share of the documents), where dynamic pruning over document-ordered blocks
//! has little to skip.
//!
//! Why not block-max pruning here: on SciFact's token-level index (1,923 latents per
//! document, 412 per query) the summed per-block maxima of a query stay at or above the
//! final top-10 score for 85 % of blocks of 4 consecutive documents and for every block
//! of 16 or more, so a BMP-style traversal would visit nearly every block
//! (docs/benchmarks.md, "Token-level search"). What is cheap is a bound per *document*:
//! a [`Searcher`] stores, for every posting, its scorer's document factor quantized upward
//! to 8 bits relative to the term's largest one (and, for segments of at most 65,536
//! documents, the doc ids as `u16` plus rank bitsets of the dense terms), and searches a
//! segment in two phases:
//!
//! 1. **Bounds, largest terms first.** Query terms are scanned in decreasing order of
//!    their largest contribution; each posting adds `s_t · code` to a per-document f32
//!    accumulator, `s_t = multiplier · max_factor / 255` inflated like every bound (terms
//!    with a non-positive multiplier add nothing). Only doc ids and codes are read;
//!    terms in a quarter of the segment's documents or more also keep one code per
//!    document (0 where absent), so their scan is a vectorised add over the segment
//!    rather than a scatter per posting, with the same bounds.
//!    At a few checkpoints the k-th largest *lower* bound (codes overstate a factor by
//!    less than one step; unscanned terms add at least 0) gives a score `θ` that k
//!    documents reach, raised to the top-k's k-th score from earlier segments. Once the
//!    unscanned terms' bounds sum below `θ`, a document's upper bound is its accumulator
//!    plus that sum, and phase 1 stops when rescoring the candidates (documents whose
//!    upper bound reaches `θ`) costs less than scanning the remaining postings.
//! 2. **Exact scores.** Candidates are scored exactly and offered to the top-k; every
//!    other document scores strictly below `θ`, which is at most the final k-th score.
//!
//! Indexes of at most 2²⁷ postings (SciFact's token index has 10M) also keep each
//! posting's exact document factor: the exhaustive path's contribution is
//! `multiplier · factor`, so with them rescoring needs no weight, length or division, and
//! when k is an eighth of a segment or more, or the query has at most 16 postings per
//! document of the segment (short lexical queries), the segment is scored in one exact
//! term-at-a-time pass over the factors instead of in two phases.
//!
//! Exact scores are computed per term in increasing term order, each contribution with
//! the same expression, so hits and scores are bit-identical to
//! [`Index::search_exhaustive`] (the conventions are in the module doc of `search.rs`;
//! bounds carry the same 2⁻¹⁶ slack and an f32 summation margin). A segment is scored
//! exhaustively when no positive `θ` separates untouched documents (fewer than k
//! documents with a positive bound, or scores that may be non-positive), when k is an
//! eighth of the segment or more, or when a scorer's document factor is negative or not
//! finite.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::codec::BLOCK_LEN;
use crate::error::{IndexError, Result};
use crate::index::{Index, SegmentEntry};
use crate::scorer::Scorer;
use crate::search::{
    Accumulator, BOUND_SLACK, Filter, Hit, PreparedQuery, SUM_MARGIN, SearchOptions, TopK,
    contribution, exhaustive_segment, filter_for,
};
use crate::segment::{BlockInfo, LengthColumn};
use crate::vector::Query;

/// Largest impact code: codes are `ceil(255 · factor / max_factor)`.
const CODE_MAX: f64 = 255.0;

/// Segments with at most this many documents keep their doc ids as `u16`.
const SHORT_DOCS: usize = 1 << 16;

/// Indexes with at most this many postings keep exact factors (4 bytes per posting).
const FACTOR_POSTINGS: u64 = 1 << 27;

/// Terms in at least 1/`RANK_DENSITY` of such a segment's documents get a rank bitset.
const RANK_DENSITY: usize = 16;

/// Terms in at least 1/`DENSE_SHARE` of a segment's documents also keep a code per
/// document: phase 1 adds a code per document in a vectorised loop instead of scattering
/// one per posting, which is cheaper once a fair share of the documents hold the term. It is
/// at most 4 bytes per posting of those terms, and where no exact factors are kept it
/// replaces their per-posting codes and `u16` ids (3 bytes per posting).
const DENSE_SHARE: usize = 4;

/// An index prepared for many searches with one scorer: the scorer, and for every posting
/// its document factor quantized upward to 8 bits, computed when the searcher is built and
/// never stored on disk (see the module doc for the `u16` doc ids, rank bitsets, exact
/// factors and per-document codes of dense terms kept alongside: 3.4 bytes per posting in
/// all on the 1M twin of SciFact's token index, 9.2 on SciFact's, which keeps factors).
/// Build it once and share it across threads; it borrows the index, so the index cannot
/// change (deletes, merges) while it exists.
///
/// ```
/// use latent_terms_sparse_index::{Bm25, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// b.add("x", &SparseVector::new([(0, 2.0), (1, 1.0)])?)?;
/// b.add("y", &SparseVector::new([(1, 3.0)])?)?;
/// let index = b.build()?;
/// let searcher = index.searcher(Bm25::default())?;
/// let query = Query::new([(0, 1.0), (1, 0.5)])?;
/// let options = SearchOptions::default();
/// assert_eq!(
///     searcher.search(&query, 10, &options)?,
///     index.search_exhaustive(&query, &Bm25::default(), 10, &options)?
/// );
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub struct Searcher<'a, S> {
    index: &'a Index,
    scorer: S,
    segments: Vec<ImpactSegment>,
    /// [`FACTOR_PASS_POSTINGS`]; tests lower it to reach the two phases on small segments.
    factor_pass_postings: usize,
}

impl<S> std::fmt::Debug for Searcher<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("segments", &self.segments.len())
            .field("impact_bytes", &self.impact_bytes())
            .finish()
    }
}

/// Impact codes of one segment.
struct ImpactSegment {
    /// Per term of the segment's dictionary: the largest document factor of its postings.
    max_factor: Vec<f32>,
    /// Per term: index of its first posting in `codes` (one more entry at the end).
    start: Vec<usize>,
    /// Per posting, in term then doc order: `ceil(255 · factor / max_factor)`, 0 for a
    /// factor of 0.
    codes: Vec<u8>,
    /// Doc ids aligned with `codes`, kept for segments of at most 65,536 documents so
    /// phase 1 and rescoring read two bytes per posting instead of decoding blocks.
    docs: Option<Vec<u16>>,
    /// For the terms of such segments that hold at least 1/16 of the documents: a bitset
    /// of their documents with the number of postings before each 64-bit word, so
    /// rescoring finds a (term, doc) posting in O(1). `rank_start[ti]` is the term's first
    /// word, or `u32::MAX`.
    rank_start: Vec<u32>,
    bits: Vec<u64>,
    ranks: Vec<u32>,
    /// For such segments of indexes with at most [`FACTOR_POSTINGS`] postings: every
    /// posting's exact document factor, aligned with `codes`. A contribution is
    /// `multiplier · factor`, the very product the exhaustive path computes, so a term-at-
    /// a-time pass over these is exact and needs no pruning to be fast.
    factors: Option<Vec<f32>>,
    /// For the terms in at least 1/[`DENSE_SHARE`] of the segment's documents: their codes
    /// once more, one per document (0 where the term is absent), so that phase 1 adds
    /// them to the bounds in one vectorised pass instead of a scatter per posting.
    /// `dense_start[ti]` is the term's first code in `dense_codes`, or `usize::MAX`.
    dense_start: Vec<usize>,
    dense_codes: Vec<u8>,
    lengths: Arc<LengthColumn>,
    /// A document factor was negative or not finite (a scorer breaking its contract):
    /// no bound holds, so this segment is always scored exhaustively.
    unbounded: bool,
}

impl ImpactSegment {
    /// Adds the rank bitset of the next term, from its sorted local doc ids (segments with
    /// `u16` ids only; sparse terms get `u32::MAX`).
    fn add_rank(&mut self, num_docs: usize, term_docs: &[u32]) {
        if self.docs.is_none() {
            return;
        }
        if term_docs.len() * RANK_DENSITY < num_docs {
            self.rank_start.push(u32::MAX);
            return;
        }
        let words = num_docs.div_ceil(64);
        let first = self.bits.len();
        self.rank_start.push(first as u32);
        self.bits.resize(first + words, 0);
        for &d in term_docs {
            self.bits[first + d as usize / 64] |= 1 << (d % 64);
        }
        let mut before = 0u32;
        for w in &self.bits[first..] {
            self.ranks.push(before);
            before += w.count_ones();
        }
    }

    /// Position within the term's postings of local doc `d`, through the rank bitset of
    /// the term whose first word is `first`.
    #[inline]
    fn rank(&self, first: usize, d: usize) -> Option<usize> {
        let word = *self.bits.get(first + d / 64)?;
        let bit = 1u64 << (d % 64);
        (word & bit != 0)
            .then(|| self.ranks[first + d / 64] as usize + (word & (bit - 1)).count_ones() as usize)
    }
}

/// Knob of [`Searcher::search_approximate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApproximateOptions {
    /// Factor (`>= 1`) on the threshold every pruning decision compares bounds with: a
    /// BMP-style early cut. Phase 1 stops once the unscanned terms' bounds fall below
    /// `cut · θ`, and only documents whose bound reaches `cut · θ` are rescored, so
    /// documents scoring in `[θ, cut · θ)` can be missed. 1 is exact.
    pub cut: f32,
}

impl Default for ApproximateOptions {
    fn default() -> Self {
        Self { cut: 1.1 }
    }
}

impl Index {
    /// Prepares this index for many exact searches with `scorer` (see [`Searcher`]). Costs
    /// one pass over every posting and 1–9.2 bytes of memory per posting
    /// ([`Searcher::impact_bytes`]).
    pub fn searcher<S: Scorer>(&self, scorer: S) -> Result<Searcher<'_, S>> {
        let postings: u64 = self.segments.iter().map(|e| e.segment.num_postings()).sum();
        self.searcher_with(scorer, postings <= FACTOR_POSTINGS)
    }

    /// [`searcher`](Self::searcher), choosing whether segments with `u16` doc ids also
    /// keep every posting's exact document factor.
    pub(crate) fn searcher_with<S: Scorer>(
        &self,
        scorer: S,
        keep_factors: bool,
    ) -> Result<Searcher<'_, S>> {
        let stats = self.collection_stats(scorer.doc_length())?;
        let avg = stats.avg_doc_length;
        let mut segments = Vec::with_capacity(self.segments.len());
        let mut docs = [0u32; BLOCK_LEN];
        let mut weights = [0f32; BLOCK_LEN];
        let mut factors = Vec::new();
        let mut term_docs = Vec::new();
        for entry in &self.segments {
            let inner = &entry.segment.inner;
            let lengths = inner.length_column(scorer.doc_length())?;
            let total: usize = inner.terms.iter().map(|t| t.df as usize).sum();
            let mut seg = ImpactSegment {
                max_factor: Vec::with_capacity(inner.terms.len()),
                start: Vec::with_capacity(inner.terms.len() + 1),
                codes: Vec::with_capacity(total),
                docs: (inner.num_docs as usize <= SHORT_DOCS).then(|| Vec::with_capacity(total)),
                rank_start: Vec::new(),
                bits: Vec::new(),
                ranks: Vec::new(),
                factors: (keep_factors && inner.num_docs as usize <= SHORT_DOCS)
                    .then(|| Vec::with_capacity(total)),
                dense_start: Vec::with_capacity(inner.terms.len()),
                dense_codes: Vec::new(),
                lengths: Arc::clone(&lengths),
                unbounded: false,
            };
            let num_docs = inner.num_docs as usize;
            for t in &inner.terms {
                seg.start.push(seg.codes.len());
                factors.clear();
                term_docs.clear();
                let dense = num_docs > 0 && t.df as usize * DENSE_SHARE >= num_docs;
                // Without kept factors nothing reads a dense term's per-posting codes and
                // `u16` ids (phase 1 reads its codes per document, rescoring its rank
                // bitset), so they are left out: a code per document costs less memory
                // than three bytes per posting from a density of a third on.
                let per_posting = !dense || seg.factors.is_some();
                for block in t.first_block..t.first_block + t.num_blocks {
                    let n = inner.decode_block(block, &mut docs, &mut weights)?;
                    // Search buffers are sized to the segment: a doc id beyond it is an
                    // error here, never an out-of-bounds index in a search.
                    if docs[..n].iter().any(|&d| d >= inner.num_docs) {
                        return Err(IndexError::corrupted("doc id beyond the segment"));
                    }
                    for (&d, &w) in docs[..n].iter().zip(&weights[..n]) {
                        factors.push(scorer.doc_factor(w, lengths.per_doc[d as usize], avg));
                    }
                    term_docs.extend_from_slice(&docs[..n]);
                    if let Some(short) = seg.docs.as_mut().filter(|_| per_posting) {
                        // Lossless: every local id of this segment is below 65,536.
                        short.extend(docs[..n].iter().map(|&d| d as u16));
                    }
                }
                if term_docs.len() != t.df as usize {
                    return Err(IndexError::corrupted(
                        "a term's postings differ from its df",
                    ));
                }
                seg.add_rank(num_docs, &term_docs);
                let max = factors.iter().copied().fold(0f32, f32::max);
                seg.unbounded |= factors.iter().any(|f| !(f.is_finite() && *f >= 0.0));
                seg.max_factor.push(max);
                let codes = factors.iter().map(|&f| impact_code(f, max));
                if dense {
                    let base = seg.dense_codes.len();
                    seg.dense_start.push(base);
                    seg.dense_codes.resize(base + num_docs, 0);
                    for (&d, c) in term_docs.iter().zip(codes.clone()) {
                        seg.dense_codes[base + d as usize] = c;
                    }
                } else {
                    seg.dense_start.push(usize::MAX);
                }
                if per_posting {
                    seg.codes.extend(codes);
                }
                if let Some(exact) = &mut seg.factors {
                    exact.extend_from_slice(&factors);
                }
            }
            seg.start.push(seg.codes.len());
            segments.push(seg);
        }
        Ok(Searcher {
            index: self,
            scorer,
            segments,
            factor_pass_postings: FACTOR_PASS_POSTINGS,
        })
    }
}

/// The smallest code `c` with `c · max / 255 >= factor` (exactly, in f64), 0 for a factor
/// of 0.
fn impact_code(factor: f32, max: f32) -> u8 {
    if !(factor > 0.0 && max > 0.0) {
        return 0;
    }
    let (f, m) = (f64::from(factor), f64::from(max));
    let mut c = (f * CODE_MAX / m).ceil().clamp(1.0, CODE_MAX);
    while c < CODE_MAX && c * m / CODE_MAX < f {
        c += 1.0;
    }
    c as u8
}

impl<S> Searcher<'_, S> {
    /// Memory held by the impact codes, in bytes.
    pub fn impact_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| {
                s.codes.len()
                    + s.docs.as_ref().map_or(0, |d| 2 * d.len())
                    + 8 * s.bits.len()
                    + 4 * (s.ranks.len() + s.rank_start.len())
                    + s.factors.as_ref().map_or(0, |f| 4 * f.len())
                    + s.dense_codes.len()
                    + 8 * s.dense_start.len()
                    + 4 * s.max_factor.len()
                    + 8 * s.start.len()
            })
            .sum()
    }
}

impl<S: Scorer> Searcher<'_, S> {
    /// The scorer.
    pub fn scorer(&self) -> &S {
        &self.scorer
    }

    /// Exact top-`k`: the same hits with bit-identical scores as
    /// [`Index::search_exhaustive`] with this scorer, best first, ties broken by lower
    /// internal doc id.
    pub fn search(&self, query: &Query, k: usize, options: &SearchOptions) -> Result<Vec<Hit>> {
        let prepared = PreparedQuery::new(self.index, query, &self.scorer)?;
        let mut top = TopK::new(k);
        if k == 0 || prepared.terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut bounds = Vec::new();
        for (entry, seg) in self.index.segments.iter().zip(&self.segments) {
            let query = (&prepared, k, 1.0);
            self.search_segment(entry, seg, query, options, &mut bounds, &mut top)?;
        }
        Ok(top.into_hits())
    }

    /// Approximate top-`k` with a recall knob ([`ApproximateOptions::cut`]): the exact
    /// algorithm with every pruning threshold multiplied by `cut`. Returned scores are
    /// exact; some documents of the exact top-k may be missing. `cut` 1 (or below, or not
    /// finite) is [`search`](Self::search).
    pub fn search_approximate(
        &self,
        query: &Query,
        k: usize,
        options: &SearchOptions,
        approx: &ApproximateOptions,
    ) -> Result<Vec<Hit>> {
        let prepared = PreparedQuery::new(self.index, query, &self.scorer)?;
        let mut top = TopK::new(k);
        if k == 0 || prepared.terms.is_empty() {
            return Ok(Vec::new());
        }
        let cut = if approx.cut.is_finite() {
            f64::from(approx.cut.max(1.0))
        } else {
            1.0
        };
        let mut bounds = Vec::new();
        for (entry, seg) in self.index.segments.iter().zip(&self.segments) {
            let query = (&prepared, k, cut);
            self.search_segment(entry, seg, query, options, &mut bounds, &mut top)?;
        }
        Ok(top.into_hits())
    }

    /// One segment: `bounds` is phase 1's buffer, reused across segments.
    fn search_segment(
        &self,
        entry: &SegmentEntry,
        seg: &ImpactSegment,
        (prepared, k, cut): (&PreparedQuery, usize, f64),
        options: &SearchOptions,
        bounds: &mut Vec<f32>,
        top: &mut TopK,
    ) -> Result<()> {
        if seg.unbounded {
            return exhaustive_segment(entry, prepared, &self.scorer, options, &[], top);
        }
        let num_docs = entry.segment.inner.num_docs as usize;
        let large_k = k.saturating_mul(EXHAUSTIVE_SHARE) >= num_docs;
        if let (Some(short), Some(factors)) = (&seg.docs, &seg.factors)
            && (large_k
                || query_postings(entry, prepared)
                    <= self.factor_pass_postings.saturating_mul(num_docs))
        {
            // Every document is nearly a candidate, or the query's postings are too few
            // (short lexical queries) for phase 1's checkpoints, each a pass over the
            // segment's documents, to pay: one exact pass over the factors.
            return factor_segment(entry, seg, prepared, (short, factors), options, &[], top);
        }
        if large_k {
            // The top k holds an eighth of the segment or more: nearly every document
            // would be a candidate, and rescoring candidates costs more than scoring all.
            return exhaustive_segment(entry, prepared, &self.scorer, options, &[], top);
        }
        let filter = filter_for(entry, options);
        let mut pass = Pass::new(entry, seg, prepared, bounds);
        let total = pass.postings_left.max(1);
        let mut checkpoints = CHECKPOINTS.iter().map(|f| (f * total as f64) as usize);
        let mut next_check = checkpoints.next().unwrap_or(total);
        // Documents already scored exactly and offered (sorted local ids).
        let mut seeds: Vec<u32> = Vec::new();
        let mut threshold = f64::NEG_INFINITY;
        while pass.scan_next(entry, seg)? {
            let scanned = total - pass.postings_left;
            if scanned < next_check && pass.postings_left > 0 {
                continue;
            }
            while next_check <= scanned {
                next_check = checkpoints.next().unwrap_or(usize::MAX);
            }
            // No bound exceeds the scanned terms' bounds, so no estimate of one can stop
            // phase 1 before they outweigh the unscanned ones: skip the k-th largest (a
            // pass over the segment with a heap) until then.
            let hope = threshold
                .max(f64::from(top.threshold()))
                .max(pass.estimate_at_most())
                * cut;
            if hope <= 0.0 || pass.untouched_upper() >= hope {
                continue;
            }
            // The k-th largest lower bound is a score k documents reach: a valid threshold.
            let kth = pass.kth_largest(k, &filter);
            let lower = kth.map_or(f64::NEG_INFINITY, |acc| pass.lower(acc));
            threshold = threshold.max(lower).max(f64::from(top.threshold()));
            // Whether to stop is decided on an estimate (codes overstate a factor by half a
            // step on average); exactness rests only on the threshold used below.
            let estimate = kth.map_or(f64::NEG_INFINITY, |acc| pass.estimate(acc));
            let decision = threshold.max(estimate) * cut;
            if decision <= 0.0 || pass.untouched_upper() >= decision {
                continue;
            }
            let candidates = pass.count_candidates(decision);
            if pass.postings_left > 0
                && pass.rescore_cost(entry, seg, prepared, candidates) > pass.postings_left
            {
                continue;
            }
            if seeds.is_empty() {
                // The k best bounds scored exactly: their k-th score is usually well above
                // the k-th lower bound, which shrinks the candidates.
                let floor = pass.acc_floor(threshold);
                seeds = largest_bounds(entry, pass.bounds(), k, floor, options);
                self.score_and_offer(entry, seg, prepared, &seeds, top)?;
                threshold = threshold.max(f64::from(top.threshold()));
            }
            if threshold > 0.0 && pass.untouched_upper() < threshold * cut {
                break;
            }
        }
        if seeds.is_empty() {
            let floor = pass.acc_floor(threshold);
            seeds = largest_bounds(entry, pass.bounds(), k, floor, options);
            self.score_and_offer(entry, seg, prepared, &seeds, top)?;
            threshold = threshold.max(f64::from(top.threshold()));
        }
        let threshold = threshold * cut;
        if threshold <= 0.0 || pass.untouched_upper() >= threshold {
            // Documents no bound separates from the k-th score (k not reached, or scores
            // that may be non-positive): score the rest of the segment exhaustively.
            return match (&seg.docs, &seg.factors) {
                (Some(short), Some(factors)) => {
                    factor_segment(entry, seg, prepared, (short, factors), options, &seeds, top)
                }
                _ => exhaustive_segment(entry, prepared, &self.scorer, options, &seeds, top),
            };
        }
        let filtering = !filter.is_trivial();
        let mut next_seed = seeds.iter().copied().peekable();
        let mut candidates = Vec::new();
        for d in 0..pass.bounds().len() as u32 {
            if pass.acc[d as usize] > 0.0 && pass.upper(d as usize) >= threshold {
                while next_seed.next_if(|&s| s < d).is_some() {}
                if next_seed.next_if_eq(&d).is_none() && (!filtering || filter.accepts(d)) {
                    candidates.push(d);
                }
            }
        }
        self.score_and_offer(entry, seg, prepared, &candidates, top)
    }

    /// Scores the sorted local docs exactly and offers them to `top`.
    fn score_and_offer(
        &self,
        entry: &SegmentEntry,
        seg: &ImpactSegment,
        prepared: &PreparedQuery,
        docs: &[u32],
        top: &mut TopK,
    ) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let inner = &entry.segment.inner;
        let avg = prepared.stats.avg_doc_length;
        let lengths = &seg.lengths;
        let mut sums = vec![0f32; docs.len()];
        // Per term: (candidate index, position in the term's postings) of the candidates
        // it holds, then the headers of their blocks.
        let mut found: Vec<(usize, usize)> = Vec::with_capacity(docs.len());
        let mut heads: Vec<BlockInfo> = Vec::with_capacity(docs.len());
        let mut block_docs = [0u32; BLOCK_LEN];
        let mut block_weights = [0f32; BLOCK_LEN];
        // Term by term in increasing term order: each document's contributions are added
        // in the order the exhaustive path adds them.
        for qt in &prepared.terms {
            let Some(ti) = inner.term_index(qt.term) else {
                continue;
            };
            let t = inner.terms[ti];
            found.clear();
            if let Some(&first) = seg.rank_start.get(ti).filter(|&&f| f != u32::MAX) {
                found.extend(docs.iter().enumerate().filter_map(|(j, &d)| {
                    seg.rank(first as usize, d as usize).map(|pos| (j, pos))
                }));
            } else if let Some(short) = &seg.docs {
                gallop(&short[seg.start[ti]..seg.start[ti + 1]], docs, &mut found);
            } else {
                // Large segments: only the blocks whose doc range holds a candidate are
                // decoded, and merged with the candidates there.
                let mut next = 0usize;
                for block in t.first_block..t.first_block + t.num_blocks {
                    if next == docs.len() {
                        break;
                    }
                    let last = inner.blocks[block].last_doc;
                    let run = docs[next..].partition_point(|&d| d <= last);
                    if run == 0 {
                        continue;
                    }
                    let n = inner.decode_block(block, &mut block_docs, &mut block_weights)?;
                    let (mut i, mut j) = (0usize, next);
                    let end = next + run;
                    while i < n && j < end {
                        let (bd, cd) = (block_docs[i], docs[j]);
                        if bd < cd {
                            i += 1;
                        } else if cd < bd {
                            j += 1;
                        } else {
                            let len = lengths.per_doc[cd as usize];
                            sums[j] += contribution(
                                &self.scorer,
                                qt.multiplier,
                                block_weights[i],
                                len,
                                avg,
                            );
                            i += 1;
                            j += 1;
                        }
                    }
                    next = end;
                }
                continue;
            }
            if let Some(kept) = &seg.factors {
                // The product the exhaustive path computes, from the kept factor.
                let kept = &kept[seg.start[ti]..seg.start[ti + 1]];
                for &(j, pos) in &found {
                    let factor = kept.get(pos).ok_or_else(|| {
                        IndexError::corrupted("position beyond the term's postings")
                    })?;
                    sums[j] += qt.multiplier * factor;
                }
                continue;
            }
            // Weights read in place, in stages: every block header, then every weight.
            // Each stage's iterations are independent, so the CPU overlaps their cache
            // misses instead of waiting out two in a row per candidate.
            heads.clear();
            for &(_, pos) in &found {
                heads.push(inner.block_info(t.first_block + pos / BLOCK_LEN)?);
            }
            for (&(j, pos), head) in found.iter().zip(&heads) {
                let weight = inner.weight_in(head, pos % BLOCK_LEN)?;
                let len = lengths.per_doc[docs[j] as usize];
                sums[j] += contribution(&self.scorer, qt.multiplier, weight, len, avg);
            }
        }
        for (&sum, &d) in sums.iter().zip(docs) {
            top.push(sum, entry.base + d);
        }
        Ok(())
    }
}

/// Appends `(j, position in list)` for every `docs[j]` (sorted) that the sorted doc list
/// `list` holds, by galloping search from the previous position.
fn gallop(list: &[u16], docs: &[u32], found: &mut Vec<(usize, usize)>) {
    let mut pos = 0usize;
    for (j, &d) in docs.iter().enumerate() {
        // Lossless: every local id of a segment with a `u16` list is below 65,536.
        let d = d as u16;
        let mut step = 1usize;
        let mut hi = pos;
        while hi < list.len() && list[hi] < d {
            pos = hi + 1;
            hi += step;
            step *= 2;
        }
        let hi = hi.min(list.len());
        pos += list[pos..hi].partition_point(|&x| x < d);
        if pos == list.len() {
            break;
        }
        if list[pos] == d {
            found.push((j, pos));
        }
    }
}

/// Every matching document of a segment but those in `skip` (sorted local ids already
/// offered), scored term at a time from the exact factors:
/// the exhaustive path's sums (same products, same term order) without decoding weights,
/// reading lengths or dividing.
fn factor_segment(
    entry: &SegmentEntry,
    seg: &ImpactSegment,
    prepared: &PreparedQuery,
    (short, factors): (&[u16], &[f32]),
    options: &SearchOptions,
    skip: &[u32],
    top: &mut TopK,
) -> Result<()> {
    let inner = &entry.segment.inner;
    // Every doc id is below `num_docs` (checked when the searcher was built).
    let mut scores = Accumulator::new(inner.num_docs as usize);
    for qt in &prepared.terms {
        let Some(ti) = inner.term_index(qt.term) else {
            continue;
        };
        let range = seg.start[ti]..seg.start[ti + 1];
        let m = qt.multiplier;
        for (&d, &f) in short[range.clone()].iter().zip(&factors[range]) {
            scores.add(usize::from(d), m * f);
        }
    }
    scores.offer(entry, options, skip, top);
    Ok(())
}

/// Postings of the query's terms in one segment.
fn query_postings(entry: &SegmentEntry, prepared: &PreparedQuery) -> usize {
    let inner = &entry.segment.inner;
    prepared
        .terms
        .iter()
        .filter_map(|qt| inner.term_index(qt.term))
        .map(|ti| inner.terms[ti].df as usize)
        .sum()
}

/// Queries with at most this many postings per document of a segment score it in one
/// exact pass over the factors: phase 1 reads the segment's bounds at up to seven
/// checkpoints, twice each, so it cannot save more than that.
const FACTOR_PASS_POSTINGS: usize = 16;

/// When at least 1/8 of a segment's documents are candidates, it is scored exhaustively.
const EXHAUSTIVE_SHARE: usize = 8;

/// Cost of finding one posting of a candidate in a term's `u16` doc list (a galloping
/// search), in phase-1 postings.
const LOOKUP_COST: usize = 12;

/// The same when the contribution is computed from a weight read in place (a bitset word,
/// a block header, a packed-bit extraction, a length and the scorer's division, mostly
/// cache misses): on a 131,072-document twin, 48–96 ran top-10 about 20 % faster than 12;
/// once dense terms were scanned per document, phase 1 got cheaper against rescoring, and
/// the cost was doubled to match.
const LOOKUP_COST_IN_PLACE: usize = 128;

/// Fractions of a segment's query postings after which phase 1 checks whether it can stop.
const CHECKPOINTS: [f64; 7] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8];

/// Phase 1 of one segment for one query: bounds accumulated term by term, largest term
/// bound first, with what is needed to bound documents from above and below at any point.
struct Pass<'b> {
    /// Per local doc, its bound so far (a buffer reused across segments: a fresh one per
    /// segment cost page faults, 256 KiB at a time).
    acc: &'b mut [f32],
    /// Terms with a positive multiplier still to scan, smallest bound first (scanned from
    /// the end): `(dictionary index, multiplier, bound of the term's contributions)`.
    todo: Vec<(usize, f32, f64)>,
    /// Postings of the terms in `todo`.
    postings_left: usize,
    /// Σ of the bounds in `todo`.
    remaining: f64,
    /// Σ of the bounds of the scanned terms: no document's bound exceeds it.
    scanned: f64,
    /// Σ over scanned terms of `multiplier · max_factor / 255`: what quantizing upward can
    /// add to one document's bound.
    rounding: f64,
    /// Σ over terms with a non-positive multiplier of `|multiplier| · max_factor`.
    negative: f64,
    /// Relative f32 summation margin for the bound sums and the exact sums.
    margin: f64,
}

impl<'b> Pass<'b> {
    /// Phase 1 over `buffer`, resized to the segment and zeroed.
    fn new(
        entry: &SegmentEntry,
        seg: &ImpactSegment,
        prepared: &PreparedQuery,
        buffer: &'b mut Vec<f32>,
    ) -> Self {
        let inner = &entry.segment.inner;
        let mut todo = Vec::with_capacity(prepared.terms.len());
        let mut negative = 0f64;
        for qt in &prepared.terms {
            let Some(ti) = inner.term_index(qt.term) else {
                continue;
            };
            let max = f64::from(seg.max_factor[ti]) * f64::from(BOUND_SLACK);
            if qt.multiplier <= 0.0 {
                negative += f64::from(-qt.multiplier) * max;
            } else {
                todo.push((ti, qt.multiplier, f64::from(qt.multiplier) * max));
            }
        }
        todo.sort_by(|a, b| a.2.total_cmp(&b.2).then(b.0.cmp(&a.0)));
        let postings_left = todo.iter().map(|t| inner.terms[t.0].df as usize).sum();
        let remaining = todo.iter().map(|t| t.2).sum();
        // Bounds and exact sums each round at most n times by 2^-24 of the sum of
        // magnitudes; the factor covers both and the roundings of the bound products.
        let margin = 8.0 * (prepared.terms.len() as f64 + 1.0) / 16_777_216.0;
        debug_assert!(margin >= 2.0 * prepared.terms.len() as f64 * SUM_MARGIN);
        let num_docs = inner.num_docs as usize;
        if buffer.len() < num_docs {
            buffer.resize(num_docs, 0.0);
        }
        let acc = &mut buffer[..num_docs];
        acc.fill(0.0);
        Self {
            acc,
            todo,
            postings_left,
            remaining,
            scanned: 0.0,
            rounding: 0.0,
            negative,
            margin,
        }
    }

    /// Scans the term with the largest bound left; false when none is left.
    fn scan_next(&mut self, entry: &SegmentEntry, seg: &ImpactSegment) -> Result<bool> {
        let Some((ti, multiplier, bound)) = self.todo.pop() else {
            return Ok(false);
        };
        let inner = &entry.segment.inner;
        let max = seg.max_factor[ti];
        let step = multiplier * (max * BOUND_SLACK / CODE_MAX as f32);
        let t = inner.terms[ti];
        let range = seg.start[ti]..seg.start[ti + 1];
        if let Some(&base) = seg.dense_start.get(ti).filter(|&&b| b != usize::MAX) {
            // Where the term is absent its code is 0 and the bound gains exactly +0.0:
            // the same bounds as the scatter below, in a pass that vectorises.
            let dense = &seg.dense_codes[base..base + self.acc.len()];
            for (a, &c) in self.acc.iter_mut().zip(dense) {
                *a += step * f32::from(c);
            }
        } else if let Some(short) = &seg.docs {
            // Sized to the segment: every doc id is below `num_docs` (checked when the
            // searcher was built).
            let acc = &mut *self.acc;
            for (&d, &c) in short[range.clone()].iter().zip(&seg.codes[range]) {
                acc[usize::from(d)] += step * f32::from(c);
            }
        } else {
            self.scan_blocks(entry, seg, ti, step)?;
        }
        self.postings_left -= t.df as usize;
        self.remaining = (self.remaining - bound).max(0.0);
        self.scanned += bound;
        if self.todo.is_empty() {
            self.remaining = 0.0;
        }
        self.rounding += f64::from(multiplier) * f64::from(max) / CODE_MAX;
        Ok(true)
    }

    /// Phase 1 for one term of a large segment: decodes the doc ids block by block.
    fn scan_blocks(
        &mut self,
        entry: &SegmentEntry,
        seg: &ImpactSegment,
        ti: usize,
        step: f32,
    ) -> Result<()> {
        let inner = &entry.segment.inner;
        let t = inner.terms[ti];
        let mut docs = [0u32; BLOCK_LEN];
        let mut pos = seg.start[ti];
        for block in t.first_block..t.first_block + t.num_blocks {
            let n = inner.decode_block_docs(block, &mut docs)?;
            let codes = &seg.codes[pos..pos + n];
            for (&d, &c) in docs[..n].iter().zip(codes) {
                self.acc[d as usize] += step * f32::from(c);
            }
            pos += n;
        }
        Ok(())
    }

    /// The bounds of the segment's documents.
    fn bounds(&self) -> &[f32] {
        self.acc
    }

    /// Upper bound of the exact score of local doc `d`.
    #[inline]
    fn upper(&self, d: usize) -> f64 {
        (f64::from(self.acc[d]) + self.remaining) * (1.0 + self.margin)
            + self.negative * self.margin
    }

    /// Upper bound of the exact score of a document no scanned term holds.
    fn untouched_upper(&self) -> f64 {
        self.remaining * (1.0 + self.margin) + self.negative * self.margin
    }

    /// Lower bound of the exact score of a document whose accumulated bound is `acc`:
    /// every code overstates its factor by less than one step, terms not scanned add at
    /// least 0 and terms with a negative multiplier at least their negated bound.
    fn lower(&self, acc: f32) -> f64 {
        f64::from(acc) * (1.0 - self.margin) / f64::from(BOUND_SLACK)
            - self.rounding * (1.0 + self.margin)
            - self.negative * (1.0 + self.margin)
            - self.remaining * self.margin
    }

    /// A guess at the exact score of a document whose accumulated bound is `acc`, for
    /// deciding when to stop (not a bound).
    fn estimate(&self, acc: f32) -> f64 {
        f64::from(acc) / f64::from(BOUND_SLACK) - 0.5 * self.rounding
    }

    /// At least [`estimate`](Self::estimate) of any document's bound, without reading them.
    fn estimate_at_most(&self) -> f64 {
        self.scanned * (1.0 + self.margin) / f64::from(BOUND_SLACK)
    }

    /// The k-th largest positive bound among accepted documents.
    fn kth_largest(&self, k: usize, filter: &Filter<'_>) -> Option<f32> {
        let filtering = !filter.is_trivial();
        let bounds = self.bounds();
        // k chunks each hold a bound at least as large as their k-th largest maximum, so
        // no bound below it is the k-th largest: one branch-free pass over the chunks
        // spares the heap test of most bounds (with a filter, a chunk's maximum may be a
        // rejected document's, so there is no such floor).
        let mut floor = f32::MIN_POSITIVE;
        if !filtering && k > 0 && bounds.len() >= KTH_CHUNK * k {
            let mut maxima: Vec<f32> = bounds.chunks(KTH_CHUNK).map(largest).collect();
            let at = maxima.len() - k;
            floor = floor.max(*maxima.select_nth_unstable_by(at, f32::total_cmp).1);
        }
        let mut heap: BinaryHeap<Reverse<OrdF32>> = BinaryHeap::with_capacity(k.min(1 << 16) + 1);
        for (d, &ub) in bounds.iter().enumerate() {
            if ub < floor || (heap.len() >= k && heap.peek().is_some_and(|m| ub <= m.0.0)) {
                continue;
            }
            if filtering && !filter.accepts(d as u32) {
                continue;
            }
            heap.push(Reverse(OrdF32(ub)));
            if heap.len() > k {
                heap.pop();
            }
        }
        (heap.len() >= k).then(|| heap.peek().map_or(0.0, |m| m.0.0))
    }

    /// The accumulated bound below which a document's upper bound cannot reach
    /// `threshold` (about: the comparison is in f32, so use it only to choose, not to prune).
    fn acc_floor(&self, threshold: f64) -> f32 {
        ((threshold - self.negative * self.margin) / (1.0 + self.margin) - self.remaining) as f32
    }

    /// Documents whose upper bound reaches `threshold`, about (filters not applied).
    fn count_candidates(&self, threshold: f64) -> usize {
        let need = self.acc_floor(threshold);
        self.bounds()
            .iter()
            .filter(|&&a| a > 0.0 && a >= need)
            .count()
    }

    /// Postings that rescoring `candidates` documents decodes, at most: each query term
    /// decodes at most one block per candidate.
    fn rescore_cost(
        &self,
        entry: &SegmentEntry,
        seg: &ImpactSegment,
        prepared: &PreparedQuery,
        candidates: usize,
    ) -> usize {
        let inner = &entry.segment.inner;
        if seg.docs.is_some() {
            let lookup = if seg.factors.is_some() {
                LOOKUP_COST
            } else {
                LOOKUP_COST_IN_PLACE
            };
            return candidates * prepared.terms.len() * lookup;
        }
        prepared
            .terms
            .iter()
            .filter_map(|qt| inner.term_index(qt.term))
            .map(|ti| {
                let t = inner.terms[ti];
                (t.num_blocks.min(candidates) * BLOCK_LEN).min(t.df as usize)
            })
            .sum()
    }
}

/// Documents per chunk whose largest bound [`Pass::kth_largest`] takes first.
const KTH_CHUNK: usize = 64;

/// The largest of `values` and 0, in eight lanes so that it compiles to vector maxima.
fn largest(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = if v > *lane { v } else { *lane };
        }
    }
    lanes
        .into_iter()
        .chain(chunks.remainder().iter().copied())
        .fold(0f32, |m, v| if v > m { v } else { m })
}

/// The (at most) `k` accepted documents with the largest positive bounds of at least
/// `floor` (a seed whose bound cannot reach the threshold cannot enter the top k), as
/// sorted local ids; ties go to the lower id.
fn largest_bounds(
    entry: &SegmentEntry,
    acc: &[f32],
    k: usize,
    floor: f32,
    options: &SearchOptions,
) -> Vec<u32> {
    let filter = filter_for(entry, options);
    let filtering = !filter.is_trivial();
    // Min-heap on (bound, Reverse(doc)): its top is the entry a better one evicts.
    let mut heap: BinaryHeap<Reverse<(OrdF32, Reverse<u32>)>> =
        BinaryHeap::with_capacity(k.min(1 << 16) + 1);
    for (d, &ub) in acc.iter().enumerate() {
        if ub <= 0.0 || ub < floor {
            continue;
        }
        if heap.len() >= k && heap.peek().is_some_and(|Reverse((b, _))| ub <= b.0) {
            continue;
        }
        let d = d as u32;
        if filtering && !filter.accepts(d) {
            continue;
        }
        heap.push(Reverse((OrdF32(ub), Reverse(d))));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut seeds: Vec<u32> = heap.into_iter().map(|Reverse((_, Reverse(d)))| d).collect();
    seeds.sort_unstable();
    seeds
}

/// An f32 ordered by `total_cmp` (bounds are finite and positive here).
#[derive(Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Bm25, Bm25Params, ClSr, ClSrParams, ClSrVariant, DotProduct, IndexBuilder, IndexConfig,
        RoaringBitmap, SparseVector, TermFrequency, WeightEncoding,
    };
    use proptest::prelude::*;

    fn scorers() -> Vec<(&'static str, Box<dyn Scorer>)> {
        let bm25q = Bm25::new(Bm25Params {
            tf: TermFrequency::Quantized { scale: 2.0 },
            ..Default::default()
        });
        let code = ClSr::new(ClSrParams {
            variant: ClSrVariant::ReleasedCode,
            ..Default::default()
        });
        let steep = ClSr::new(ClSrParams {
            b: 3.0,
            length_norm_floor: Some(0.1),
            ..Default::default()
        });
        vec![
            ("bm25", Box::new(Bm25::default())),
            ("bm25-quantized", Box::new(bm25q.expect("valid"))),
            ("clsr", Box::new(ClSr::default())),
            ("clsr-code", Box::new(code.expect("valid"))),
            ("clsr-b3", Box::new(steep.expect("valid"))),
            ("dot", Box::new(DotProduct)),
        ]
    }

    #[test]
    fn codes_bound_the_factor_from_above_by_less_than_one_step() {
        let mut x = 1e-7f32;
        for max in [1e-6f32, 0.3, 1.0, 2.9, 1e6] {
            while x <= max {
                let c = impact_code(x, max);
                let (f, m) = (f64::from(x), f64::from(max));
                assert!(f64::from(c) * m / CODE_MAX >= f, "{x} {max} {c}");
                assert!(
                    c >= 1 && (f64::from(c) - 1.0) * m / CODE_MAX < f,
                    "{x} {max} {c}"
                );
                x *= 1.37;
            }
            x = 1e-7;
        }
        assert_eq!(impact_code(0.0, 1.0), 0);
        assert_eq!(impact_code(1.0, 1.0), 255);
    }

    /// A deterministic "random" generator, so the large fixtures need no strategy.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    /// Documents over a dense head of `vocab` terms: term `t` is in a document with
    /// probability about `1 / (1 + t / 4)`, weights from a few values so scores tie.
    fn dense_docs(n: usize, vocab: u32, seed: u64, tied: bool) -> Vec<Vec<(u32, f32)>> {
        let mut state = seed;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut doc = Vec::new();
            for t in 0..vocab {
                if lcg(&mut state) % (4 + u64::from(t)) >= 4 {
                    continue;
                }
                let r = lcg(&mut state);
                let w = if tied {
                    [0.5f32, 1.0, 2.0, 3.0][(r % 4) as usize]
                } else {
                    0.05 + (r % 10_000) as f32 / 2_000.0
                };
                doc.push((t, w));
            }
            out.push(doc);
        }
        out
    }

    fn build(segments: &[Vec<Vec<(u32, f32)>>], encoding: WeightEncoding) -> Index {
        let mut index = Index::new();
        for (si, docs) in segments.iter().enumerate() {
            let mut b = IndexBuilder::new(IndexConfig {
                weight_encoding: encoding,
                ..Default::default()
            })
            .expect("valid");
            for (di, d) in docs.iter().enumerate() {
                let d: Vec<(u32, f32)> = match encoding {
                    WeightEncoding::Integer => d.iter().map(|&(t, w)| (t, w.ceil())).collect(),
                    _ => d.clone(),
                };
                b.add(format!("s{si}d{di}"), &SparseVector::new(d).expect("valid"))
                    .expect("add");
            }
            index
                .add_segment(b.build_segment().expect("build"))
                .expect("add");
        }
        index
    }

    fn check_all(index: &Index, queries: &[Query], ks: &[usize], options: &SearchOptions) {
        for (name, scorer) in scorers() {
            // The block-max MaxScore path at its production window (4,096 documents).
            for q in queries {
                for &k in ks {
                    let exact = index
                        .search_exhaustive(q, scorer.as_ref(), k, options)
                        .expect("search");
                    let window = crate::search::PRODUCTION_WINDOW;
                    let got = index
                        .search_windowed(q, scorer.as_ref(), k, options, window)
                        .expect("search");
                    assert_eq!(got, exact, "MaxScore, scorer {name}, k {k}, {q:?}");
                }
            }
            // Every way a short segment is searched: one pass over exact factors (short
            // queries), two phases rescoring from exact factors (the pass turned off), and
            // two phases rescoring from weights read in place (no factors kept).
            for (factors, factor_pass) in [(true, true), (true, false), (false, false)] {
                let mut searcher = index
                    .searcher_with(scorer.as_ref(), factors)
                    .expect("searcher");
                if !factor_pass {
                    searcher.factor_pass_postings = 0;
                }
                for q in queries {
                    for &k in ks {
                        let exact = index
                            .search_exhaustive(q, scorer.as_ref(), k, options)
                            .expect("search");
                        let got = searcher.search(q, k, options).expect("search");
                        assert_eq!(
                            got, exact,
                            "scorer {name}, factors {factors}, factor pass {factor_pass}, k {k}, {q:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_segment_too_large_for_u16_ids_decodes_blocks_and_stays_exact() {
        // 70,000 documents: over the 65,536 of the u16 path, with 128-posting blocks.
        let docs = dense_docs(70_000, 6, 7, false);
        let index = build(&[docs], WeightEncoding::Float32);
        let queries = [
            Query::new([(0, 1.0), (1, 0.5), (2, 2.0), (3, 1.0), (5, 0.7)]).expect("valid"),
            Query::new([(1, 1.0), (4, 3.0)]).expect("valid"),
        ];
        check_all(&index, &queries, &[1, 10, 1000], &SearchOptions::default());
    }

    #[test]
    fn dense_terms_keep_each_posting_code_at_its_document_and_zero_elsewhere() {
        // Term 0 is in every document, term 1 in one in ten: only term 0 is dense.
        let docs: Vec<Vec<(u32, f32)>> = (0..200)
            .map(|d| {
                let mut v = vec![(0, 1.0 + (d % 7) as f32)];
                if d % 10 == 0 {
                    v.push((1, 2.0));
                }
                v
            })
            .collect();
        let index = build(&[docs], WeightEncoding::Float32);
        let with_factors = index.searcher(Bm25::default()).expect("searcher");
        let seg = &with_factors.segments[0];
        let short = seg.docs.as_ref().expect("u16 ids");
        assert_eq!(seg.dense_start[1], usize::MAX, "term 1 is sparse");
        let base = seg.dense_start[0];
        let dense = &seg.dense_codes[base..base + 200];
        let mut expected = [0u8; 200];
        for p in seg.start[0]..seg.start[1] {
            expected[usize::from(short[p])] = seg.codes[p];
        }
        assert_eq!(dense, &expected[..]);
        assert!(dense.iter().all(|&c| c > 0));
        // Without kept factors the dense term keeps only its codes per document.
        let compact = index
            .searcher_with(Bm25::default(), false)
            .expect("searcher");
        let seg = &compact.segments[0];
        assert_eq!(
            seg.start[0], seg.start[1],
            "no per-posting codes for term 0"
        );
        assert_eq!(
            seg.start[2] - seg.start[1],
            20,
            "term 1 keeps its 20 postings"
        );
        let base = seg.dense_start[0];
        assert_eq!(&seg.dense_codes[base..base + 200], &expected[..]);
    }

    #[test]
    fn approximate_search_returns_exact_scores_and_with_no_cut_the_exact_hits() {
        let docs = dense_docs(3_000, 40, 3, false);
        let index = build(&[docs], WeightEncoding::Float32);
        let searcher = index
            .searcher_with(Bm25::default(), false)
            .expect("searcher");
        let q = Query::new((0..40).map(|t| (t, 1.0 + (t % 3) as f32))).expect("valid");
        let opts = SearchOptions::default();
        let exact = searcher.search(&q, 10, &opts).expect("search");
        let all = ApproximateOptions { cut: 1.0 };
        let got = searcher
            .search_approximate(&q, 10, &opts, &all)
            .expect("search");
        assert_eq!(got, exact);
        let cut = ApproximateOptions { cut: 2.0 };
        for hit in searcher
            .search_approximate(&q, 10, &opts, &cut)
            .expect("search")
        {
            let e = index
                .explain(&q, &Bm25::default(), hit.doc)
                .expect("explain");
            assert_eq!(e.score.to_bits(), hit.score.to_bits());
        }
    }

    /// The invariant exactness rests on: after every scanned term, each document's exact
    /// score lies between its lower and upper bound. Tied weights make codes exact
    /// multiples of the step, so bounds sit within rounding of the scores.
    #[test]
    fn bounds_enclose_exact_scores_after_every_term() {
        for tied in [true, false] {
            let docs = dense_docs(2_000, 30, 11, tied);
            let index = build(&[docs], WeightEncoding::Float32);
            let q = Query::new((0..30).map(|t| (t, [0.5f32, 1.0, 2.0][t as usize % 3])))
                .expect("valid");
            let opts = SearchOptions::default();
            for (name, scorer) in scorers() {
                let searcher = index.searcher(scorer.as_ref()).expect("searcher");
                let exact: Vec<Hit> = index
                    .search_exhaustive(&q, scorer.as_ref(), 2_000, &opts)
                    .expect("search");
                let prepared = PreparedQuery::new(&index, &q, &scorer.as_ref()).expect("prepare");
                let (entry, seg) = (&index.segments[0], &searcher.segments[0]);
                let mut buffer = Vec::new();
                let mut pass = Pass::new(entry, seg, &prepared, &mut buffer);
                while pass.scan_next(entry, seg).expect("scan") {
                    for hit in &exact {
                        let d = hit.doc as usize;
                        let score = f64::from(hit.score);
                        assert!(
                            pass.upper(d) >= score,
                            "{name} tied {tied}: upper {} < {score}",
                            pass.upper(d)
                        );
                        assert!(
                            pass.lower(pass.acc[d]) <= score,
                            "{name} tied {tied}: lower {} > {score}",
                            pass.lower(pass.acc[d])
                        );
                    }
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    struct Case {
        segments: Vec<usize>,
        vocab: u32,
        seed: u64,
        tied: bool,
        encoding: usize,
        deleted: Vec<u32>,
        allow: Option<u64>,
        query: Vec<(u32, f32)>,
        k: usize,
    }

    fn case_strategy() -> impl Strategy<Value = Case> {
        (
            prop::collection::vec(1usize..2_500, 1..4),
            2u32..60,
            any::<u64>(),
            any::<bool>(),
            0usize..3,
            prop::collection::vec(0u32..3_000, 0..40),
            prop::option::of(2u64..5),
            prop::collection::vec(
                (
                    0u32..64,
                    prop::sample::select(vec![0.3f32, 0.5, 1.0, 2.0, 4.5]),
                ),
                1..60,
            ),
            prop::sample::select(vec![1usize, 3, 10, 10, 50, 100, 1000]),
        )
            .prop_map(
                |(segments, vocab, seed, tied, encoding, deleted, allow, query, k)| Case {
                    segments,
                    vocab,
                    seed,
                    tied,
                    encoding,
                    deleted,
                    allow,
                    query,
                    k,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Production sizes: up to 7,500 documents over up to three segments, 128-posting
        /// blocks, queries of up to 60 terms over a dense head, deletes and filters.
        #[test]
        fn searcher_equals_exhaustive(case in case_strategy()) {
            let encoding = [
                WeightEncoding::Float32,
                WeightEncoding::Integer,
                WeightEncoding::Quantized { scale: 4.0 },
            ][case.encoding];
            let segments: Vec<Vec<Vec<(u32, f32)>>> = case
                .segments
                .iter()
                .enumerate()
                .map(|(i, &n)| dense_docs(n, case.vocab, case.seed.wrapping_add(i as u64), case.tied || case.encoding != 0))
                .collect();
            let mut index = build(&segments, encoding);
            for &d in &case.deleted {
                if d < index.max_doc() {
                    index.delete_doc(d).expect("exists");
                }
            }
            let options = SearchOptions {
                allow: case.allow.map(|m| (0..index.max_doc()).filter(|d| u64::from(*d) % m != 0).collect::<RoaringBitmap>()),
                deny: None,
            };
            let mut query: Vec<(u32, f32)> = case.query.clone();
            query.sort_by_key(|p| p.0);
            query.dedup_by_key(|p| p.0);
            let query = Query::new(query).expect("valid");
            check_all(&index, &[query], &[case.k], &options);
        }
    }
}
