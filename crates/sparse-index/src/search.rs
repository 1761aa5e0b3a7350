//! Exact top-k retrieval: an exhaustive reference path (term at a time over whole posting
//! lists) and a pruned path (block-max MaxScore over windows of documents, see
//! [`maxscore_segment`]).
//!
//! Both paths return the same hits with bit-identical scores. They compute every
//! contribution with the same expression, `(query_factor · idf) · doc_factor`, and sum a
//! document's contributions in increasing term-id order starting from `0.0f32`. Ties are
//! broken by internal doc id, lower first.
//!
//! Pruning decisions are conservative by construction: block and term upper bounds are
//! inflated by a relative 2⁻¹⁶ to cover f32 rounding inside the scorer, and a candidate is
//! dropped only if its bound plus a margin covering f32 summation error
//! (`n · 2⁻²² · Σ|terms|`) is strictly below the k-th score. Since documents are visited in
//! increasing id order, a later document with a score equal to the k-th never enters the
//! heap, so "strictly below" is exactly the condition for skipping. Terms whose
//! `query_factor · idf` is not positive (CL-SR's idf can be negative) get a bound of 0.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde::Serialize;

use crate::codec::BLOCK_LEN;
use crate::error::Result;
use crate::index::{DocId, Index, SegmentEntry};
use crate::postings::{END, PostingCursor};
use crate::scorer::{CollectionStats, DocLength, Scorer, TermStats};
use crate::segment::LengthColumn;
use crate::vector::Query;

/// Query-time document filters over internal doc ids. Deleted documents are always
/// excluded.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// If set, only these documents can be returned.
    pub allow: Option<RoaringBitmap>,
    /// These documents are never returned.
    pub deny: Option<RoaringBitmap>,
}

impl SearchOptions {
    /// Options restricting results to `allow`.
    pub fn allow(docs: RoaringBitmap) -> Self {
        Self {
            allow: Some(docs),
            deny: None,
        }
    }

    /// Options excluding `deny`.
    pub fn deny(docs: RoaringBitmap) -> Self {
        Self {
            allow: None,
            deny: Some(docs),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    /// Internal doc id; [`Index::external_id`] gives the external one.
    pub doc: DocId,
    /// Score.
    pub score: f32,
}

/// Relative slack added to every scorer-provided upper bound.
pub(crate) const BOUND_SLACK: f32 = 1.0 + 1.0 / 65536.0;
/// Per-term relative margin for f32 summation error, multiplied by the term count.
pub(crate) const SUM_MARGIN: f64 = 1.0 / 4_194_304.0; // 2^-22

/// One query term with its query-side factors fixed for this search.
#[derive(Debug, Clone)]
pub(crate) struct QueryTerm {
    pub(crate) term: u32,
    pub(crate) query_weight: f32,
    pub(crate) query_factor: f32,
    pub(crate) idf: f32,
    pub(crate) doc_freq: u64,
    /// `query_factor * idf`, the multiplier of every posting contribution.
    pub(crate) multiplier: f32,
}

/// A query resolved against the index's global statistics for one scorer.
#[derive(Debug)]
pub(crate) struct PreparedQuery {
    /// Terms present in live documents, in increasing term order (the summation order).
    pub(crate) terms: Vec<QueryTerm>,
    pub(crate) kind: DocLength,
    pub(crate) stats: CollectionStats,
}

impl PreparedQuery {
    pub(crate) fn new<S: Scorer + ?Sized>(
        index: &Index,
        query: &Query,
        scorer: &S,
    ) -> Result<Self> {
        let kind = scorer.doc_length();
        let stats = index.collection_stats(kind)?;
        let mut terms = Vec::with_capacity(query.len());
        for (term, query_weight) in query.iter() {
            let doc_freq = index.doc_freq(term)?;
            if doc_freq == 0 {
                continue;
            }
            let query_factor = scorer.query_factor(query_weight);
            let idf = scorer.idf(&TermStats { doc_freq }, &stats);
            terms.push(QueryTerm {
                term,
                query_weight,
                query_factor,
                idf,
                doc_freq,
                multiplier: query_factor * idf,
            });
        }
        Ok(Self { terms, kind, stats })
    }
}

/// The single expression every path uses for a posting's contribution.
#[inline(always)]
pub(crate) fn contribution<S: Scorer + ?Sized>(
    scorer: &S,
    multiplier: f32,
    weight: f32,
    doc_length: f32,
    avg_doc_length: f32,
) -> f32 {
    multiplier * scorer.doc_factor(weight, doc_length, avg_doc_length)
}

/// Upper bound of a contribution given a bound on `doc_factor`.
#[inline]
fn scaled_bound(multiplier: f32, doc_factor_bound: f32) -> f32 {
    if multiplier > 0.0 {
        multiplier * (doc_factor_bound * BOUND_SLACK)
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f32,
    doc: DocId,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// "Greater" means worse: lower score, then higher doc id. The max-heap's top is
    /// therefore the entry the next better hit evicts.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.doc.cmp(&other.doc))
    }
}

/// The k best hits so far.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
    /// The worst kept score once the heap is full: a strictly lower score is rejected
    /// without touching the heap (most offers, in a pass over every matching document).
    floor: f32,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// The score a new hit must beat, or -inf while the heap is not full: the worst kept
    /// score, so a strictly lower one (by `total_cmp`) cannot enter.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.is_full() {
            self.floor
        } else {
            f32::NEG_INFINITY
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, score: f32, doc: DocId) {
        let full = self.is_full();
        if full && score.total_cmp(&self.floor).is_lt() {
            return;
        }
        let e = Entry { score, doc };
        if !full {
            self.heap.push(e);
        } else if let Some(mut top) = self.heap.peek_mut()
            && e < *top
        {
            *top = e;
        } else {
            return;
        }
        if self.is_full()
            && let Some(top) = self.heap.peek()
        {
            self.floor = top.score;
        }
    }

    pub(crate) fn into_hits(self) -> Vec<Hit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| Hit {
                doc: e.doc,
                score: e.score,
            })
            .collect()
    }
}

/// Deletes plus the caller's allow/deny lists, checked per candidate.
pub(crate) struct Filter<'a> {
    deletes: &'a RoaringBitmap,
    allow: Option<&'a RoaringBitmap>,
    deny: Option<&'a RoaringBitmap>,
    base: DocId,
}

impl Filter<'_> {
    pub(crate) fn is_trivial(&self) -> bool {
        self.deletes.is_empty() && self.allow.is_none() && self.deny.is_none()
    }

    #[inline]
    pub(crate) fn accepts(&self, local: u32) -> bool {
        let global = self.base + local;
        !self.deletes.contains(local)
            && self.allow.is_none_or(|a| a.contains(global))
            && self.deny.is_none_or(|d| !d.contains(global))
    }
}

pub(crate) fn filter_for<'a>(entry: &'a SegmentEntry, options: &'a SearchOptions) -> Filter<'a> {
    Filter {
        deletes: &entry.deletes,
        allow: options.allow.as_ref(),
        deny: options.deny.as_ref(),
        base: entry.base,
    }
}

impl Index {
    /// Exact top-`k` with dynamic pruning (block-max MaxScore). Returns the same hits and
    /// bit-identical scores as [`search_exhaustive`](Self::search_exhaustive), best first,
    /// ties broken by lower internal doc id.
    ///
    /// Only documents containing at least one query term are candidates; scores may be
    /// negative with scorers whose idf can be negative.
    ///
    /// ```
    /// use latent_terms_sparse_index::{Bm25, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector};
    ///
    /// let mut b = IndexBuilder::new(IndexConfig::lexical())?;
    /// b.add("x", &SparseVector::new([(0, 2.0), (1, 1.0)])?)?;
    /// b.add("y", &SparseVector::new([(1, 3.0)])?)?;
    /// let index = b.build()?;
    /// let hits = index.search(&Query::from_terms([1]), &Bm25::default(), 1, &SearchOptions::default())?;
    /// assert_eq!(index.external_id(hits[0].doc), Some("y"));
    /// # Ok::<(), latent_terms_sparse_index::IndexError>(())
    /// ```
    pub fn search<S: Scorer + ?Sized>(
        &self,
        query: &Query,
        scorer: &S,
        k: usize,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        self.search_windowed(query, scorer, k, options, WINDOW)
    }

    /// [`search`](Self::search) with a given window size (a multiple of 64), so tests can
    /// run both the production window and small ones.
    pub(crate) fn search_windowed<S: Scorer + ?Sized>(
        &self,
        query: &Query,
        scorer: &S,
        k: usize,
        options: &SearchOptions,
        window: u32,
    ) -> Result<Vec<Hit>> {
        let prepared = PreparedQuery::new(self, query, scorer)?;
        let mut top = TopK::new(k);
        if k == 0 || prepared.terms.is_empty() {
            return Ok(Vec::new());
        }
        for entry in &self.segments {
            let lengths = entry.segment.inner.length_column(prepared.kind)?;
            maxscore_segment(
                entry, &prepared, scorer, &lengths, options, window, &mut top,
            )?;
        }
        Ok(top.into_hits())
    }

    /// Exact top-`k` by scoring every matching document (term at a time). The reference
    /// the pruned [`search`](Self::search) is tested against; use it to validate a custom
    /// [`Scorer`] whose upper bound you are unsure of.
    pub fn search_exhaustive<S: Scorer + ?Sized>(
        &self,
        query: &Query,
        scorer: &S,
        k: usize,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        let prepared = PreparedQuery::new(self, query, scorer)?;
        let mut top = TopK::new(k);
        if k == 0 || prepared.terms.is_empty() {
            return Ok(Vec::new());
        }
        for entry in &self.segments {
            exhaustive_segment(entry, &prepared, scorer, options, &[], &mut top)?;
        }
        Ok(top.into_hits())
    }
}

/// Scores every matching document of one segment term at a time (the reference path) and
/// offers the accepted ones to `top`, except the documents in `skip` (sorted local ids that
/// the caller already offered).
pub(crate) fn exhaustive_segment<S: Scorer + ?Sized>(
    entry: &SegmentEntry,
    prepared: &PreparedQuery,
    scorer: &S,
    options: &SearchOptions,
    skip: &[u32],
    top: &mut TopK,
) -> Result<()> {
    let avg = prepared.stats.avg_doc_length;
    let mut docs = [0u32; BLOCK_LEN];
    let mut weights = [0f32; BLOCK_LEN];
    let inner = &entry.segment.inner;
    let lengths = inner.length_column(prepared.kind)?;
    let mut scores = Accumulator::new(inner.num_docs as usize);
    for qt in &prepared.terms {
        let Some(ti) = inner.term_index(qt.term) else {
            continue;
        };
        let t = inner.terms[ti];
        for block in t.first_block..t.first_block + t.num_blocks {
            let count = inner.decode_block(block, &mut docs, &mut weights)?;
            for (&d, &w) in docs[..count].iter().zip(&weights[..count]) {
                let d = d as usize;
                let c = contribution(scorer, qt.multiplier, w, lengths.per_doc[d], avg);
                scores.add(d, c);
            }
        }
    }
    scores.offer(entry, options, skip, top);
    Ok(())
}

/// Per-document score sums of one segment, term at a time, and which documents matched.
pub(crate) struct Accumulator {
    /// Padded to a multiple of 64 documents (the padding never matches).
    sums: Vec<f32>,
    matched: Vec<u64>,
}

impl Accumulator {
    pub(crate) fn new(num_docs: usize) -> Self {
        let words = num_docs.div_ceil(64);
        Self {
            sums: vec![0f32; words * 64],
            matched: vec![0u64; words],
        }
    }

    /// Adds a contribution to local doc `d` (below the segment's size).
    #[inline]
    pub(crate) fn add(&mut self, d: usize, contribution: f32) {
        self.sums[d] += contribution;
        self.matched[d / 64] |= 1 << (d % 64);
    }

    /// Offers every matched document the options accept to `top`, except those in `skip`
    /// (local ids already offered). Most matching documents score below the k-th score so
    /// far: they are dropped 64 at a time with one vectorisable comparison. Only a score
    /// IEEE-below the threshold is dropped (never a NaN); `push` decides the rest.
    pub(crate) fn offer(
        mut self,
        entry: &SegmentEntry,
        options: &SearchOptions,
        skip: &[u32],
        top: &mut TopK,
    ) {
        for &d in skip {
            if let Some(word) = self.matched.get_mut(d as usize / 64) {
                *word &= !(1 << (d % 64));
            }
        }
        let filter = filter_for(entry, options);
        for ((w, &word), sums) in self
            .matched
            .iter()
            .enumerate()
            .zip(self.sums.chunks_exact(64))
        {
            if word == 0 {
                continue;
            }
            let floor = top.threshold();
            let mut keep = 0u64;
            for (i, &score) in sums.iter().enumerate() {
                keep |= (u64::from(score < floor) ^ 1) << i;
            }
            let mut bits = word & keep;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let d = w * 64 + i;
                if filter.accepts(d as u32) {
                    top.push(sums[i], entry.base + d as u32);
                }
            }
        }
    }
}

/// Documents per scoring window of the pruned path (a multiple of 64). Unit tests use
/// small windows so their small indexes still span many windows, and the production one
/// (`Index::search_windowed`, `searcher::tests`) on indexes that span several.
pub(crate) const PRODUCTION_WINDOW: u32 = 4096;
#[cfg(not(test))]
const WINDOW: u32 = PRODUCTION_WINDOW;
#[cfg(test)]
const WINDOW: u32 = 64;

/// A query term's cursor in one segment, with its bound for the current window and, when
/// essential, its postings inside the window.
struct TermCursor<'a> {
    cursor: PostingCursor<'a>,
    /// Position in the prepared query (summation order).
    qidx: usize,
    multiplier: f32,
    window_bound: f32,
    /// Blocks overlapping the window: a cost estimate for a sequential pass.
    window_blocks: usize,
    window_docs: Vec<u32>,
    window_contrib: Vec<f32>,
    window_pos: usize,
}

impl TermCursor<'_> {
    /// Largest block bound over the blocks that may hold docs in `[start, end]`, and how
    /// many such blocks there are.
    fn bound_over<S: Scorer + ?Sized>(
        &mut self,
        start: u32,
        end: u32,
        scorer: &S,
        lengths: &LengthColumn,
        avg: f32,
    ) -> (f32, usize) {
        let Some(mut b) = self.cursor.shallow(start) else {
            return (0.0, 0);
        };
        let blocks = self.cursor.blocks();
        let mut bound = 0f32;
        let first = b;
        loop {
            let block = &blocks[b];
            let ub = scaled_bound(
                self.multiplier,
                scorer.doc_factor_upper_bound(block.max_weight, lengths.block_min[b], avg),
            );
            bound = bound.max(ub);
            if block.last_doc >= end || b + 1 >= self.cursor.end_block() {
                return (bound, b + 1 - first);
            }
            b += 1;
        }
    }
}

/// Number of leading terms (by increasing bound) that are non-essential: a document
/// matching only them cannot beat `threshold`.
fn non_essential_prefix(bounds: impl Iterator<Item = f32>, threshold: f32, margin: f64) -> usize {
    if threshold == f32::NEG_INFINITY {
        return 0;
    }
    let mut sum = 0f64;
    let mut prefix = 0;
    for b in bounds {
        let s = sum + f64::from(b);
        if s * (1.0 + margin) < f64::from(threshold) {
            sum = s;
            prefix += 1;
        } else {
            break;
        }
    }
    prefix
}

/// A non-essential term is scored term-at-a-time over the window when its postings there
/// number at most this many per live candidate; otherwise each candidate is probed with a
/// seek. A sequential pass costs a few ns per posting, a probe a few tens.
const PROBE_COST_RATIO: usize = 4;

/// When essential terms hold at least this share (2/5) of a window's blocks, the window is
/// scored exhaustively.
const ESSENTIAL_SHARE_NUM: usize = 2;
const ESSENTIAL_SHARE_DEN: usize = 5;

/// Block-max MaxScore over one segment, a window of `window_len` documents at a time (the
/// window scheme of Lucene's `MaxScoreBulkScorer`), with candidates filtered in stages:
///
/// 1. Each term's bound over the window is the largest bound of its blocks that overlap
///    the window. Sorting by it, the longest prefix whose bounds sum below the current
///    k-th score is *non-essential*: a document matching only those terms cannot enter
///    the top k. If every term is non-essential the window is skipped undecoded. If the
///    essential terms hold most of the window's postings (always so until k hits are
///    found), the window is scored term at a time like the exhaustive path instead.
/// 2. Essential terms are scored term at a time into a window accumulator; the documents
///    they hit are the candidates.
/// 3. Candidates whose partial score plus the bounds of the terms not yet scored cannot
///    beat the k-th score are dropped. Then non-essential terms, highest bound first, add
///    their contributions to the surviving candidates (a sequential pass over the term's
///    window postings, or a seek per candidate when few remain), and the filter runs again.
/// 4. Candidates left after all terms get their exact score: the sum of their recorded
///    contributions in term order, exactly as the exhaustive path adds them.
fn maxscore_segment<S: Scorer + ?Sized>(
    entry: &SegmentEntry,
    prepared: &PreparedQuery,
    scorer: &S,
    lengths: &Arc<LengthColumn>,
    options: &SearchOptions,
    window_len: u32,
    top: &mut TopK,
) -> Result<()> {
    let inner = &entry.segment.inner;
    let avg = prepared.stats.avg_doc_length;
    let mut cursors: Vec<TermCursor<'_>> = Vec::with_capacity(prepared.terms.len());
    for (qidx, qt) in prepared.terms.iter().enumerate() {
        if let Some(ti) = inner.term_index(qt.term) {
            cursors.push(TermCursor {
                cursor: PostingCursor::new(inner, ti)?,
                qidx,
                multiplier: qt.multiplier,
                window_bound: 0.0,
                window_blocks: 0,
                window_docs: Vec::new(),
                window_contrib: Vec::new(),
                window_pos: 0,
            });
        }
    }
    if cursors.is_empty() || inner.num_docs == 0 {
        return Ok(());
    }
    let n_terms = prepared.terms.len();
    let margin = n_terms as f64 * SUM_MARGIN;
    let filter = filter_for(entry, options);
    let filtering = !filter.is_trivial();
    let last_doc = inner.num_docs - 1;

    let mut window = Window::new(window_len);
    let mut order: Vec<usize> = (0..cursors.len()).collect();
    let mut ne_prefix = vec![0f64; cursors.len() + 1];
    let mut values = vec![0f32; n_terms];

    let mut next_start = 0u32;
    loop {
        // Skip to the first doc any list may still hold.
        let mut start = END;
        for c in &mut cursors {
            start = start.min(c.cursor.lower_bound(next_start));
        }
        if start == END || start > last_doc {
            break;
        }
        let end = start.saturating_add(window_len - 1).min(last_doc);
        next_start = end + 1;

        let threshold = top.threshold();
        for c in &mut cursors {
            (c.window_bound, c.window_blocks) = c.bound_over(start, end, scorer, lengths, avg);
            c.window_docs.clear();
            c.window_contrib.clear();
            c.window_pos = 0;
        }
        order.sort_by(|&a, &b| {
            cursors[a]
                .window_bound
                .total_cmp(&cursors[b].window_bound)
                .then(cursors[a].qidx.cmp(&cursors[b].qidx))
        });
        let ne = non_essential_prefix(
            order.iter().map(|&i| cursors[i].window_bound),
            threshold,
            margin,
        );
        if ne == cursors.len() {
            continue;
        }
        // When the essential terms hold most of the window's postings (always the case
        // until k hits are found, and with weak bounds such as the dot product's), pruning
        // cannot pay for its bookkeeping: score the window term at a time in term order,
        // exactly as the exhaustive path does.
        let total_blocks: usize = cursors.iter().map(|c| c.window_blocks).sum();
        let essential_blocks: usize = order[ne..].iter().map(|&i| cursors[i].window_blocks).sum();
        if ne == 0 || essential_blocks * ESSENTIAL_SHARE_DEN >= total_blocks * ESSENTIAL_SHARE_NUM {
            for c in cursors.iter_mut() {
                c.cursor.seek(start)?;
                let multiplier = c.multiplier;
                c.cursor.for_each_until(end, |d, w| {
                    let len = lengths.per_doc[d as usize];
                    window.add_exact(
                        (d - start) as usize,
                        contribution(scorer, multiplier, w, len, avg),
                    );
                })?;
            }
            for slot in window.live_slots() {
                let d = start + slot as u32;
                let score = window.exact[slot];
                if !filtering || filter.accepts(d) {
                    top.push(score, entry.base + d);
                }
            }
            window.clear();
            continue;
        }
        for (j, &i) in order[..ne].iter().enumerate() {
            ne_prefix[j + 1] = ne_prefix[j] + f64::from(cursors[i].window_bound);
        }

        // Essential terms: every document they hit becomes a candidate.
        for &i in &order[ne..] {
            let c = &mut cursors[i];
            c.cursor.seek(start)?;
            let (multiplier, docs, contribs) =
                (c.multiplier, &mut c.window_docs, &mut c.window_contrib);
            c.cursor.for_each_until(end, |d, w| {
                let v = contribution(scorer, multiplier, w, lengths.per_doc[d as usize], avg);
                docs.push(d);
                contribs.push(v);
                window.add((d - start) as usize, v);
            })?;
        }
        let threshold = f64::from(threshold);
        let mut live = window.retain(|slot, partial, abs| {
            let rest = ne_prefix[ne];
            partial + rest + (abs + rest) * margin >= threshold
                && (!filtering || filter.accepts(start + slot as u32))
        });

        // Non-essential terms, most promising first, while candidates remain.
        for j in (0..ne).rev() {
            if live == 0 {
                break;
            }
            let c = &mut cursors[order[j]];
            let multiplier = c.multiplier;
            if c.window_blocks * BLOCK_LEN <= PROBE_COST_RATIO * live {
                c.cursor.seek(start)?;
                let (docs, contribs) = (&mut c.window_docs, &mut c.window_contrib);
                c.cursor.for_each_until(end, |d, w| {
                    let slot = (d - start) as usize;
                    if window.is_live(slot) {
                        let len = lengths.per_doc[d as usize];
                        let v = contribution(scorer, multiplier, w, len, avg);
                        docs.push(d);
                        contribs.push(v);
                        window.add(slot, v);
                    }
                })?;
            } else {
                for slot in window.live_slots() {
                    let d = start + slot as u32;
                    c.cursor.seek(d)?;
                    if c.cursor.doc() == d {
                        let len = lengths.per_doc[d as usize];
                        let v = contribution(scorer, multiplier, c.cursor.weight(), len, avg);
                        c.window_docs.push(d);
                        c.window_contrib.push(v);
                        window.add(slot, v);
                    }
                }
            }
            let rest = ne_prefix[j];
            live = window
                .retain(|_, partial, abs| partial + rest + (abs + rest) * margin >= threshold);
        }

        // Exact scores of the remaining candidates, in increasing doc order.
        for slot in window.live_slots() {
            let d = start + slot as u32;
            for c in cursors.iter_mut() {
                let rest = &c.window_docs[c.window_pos..];
                c.window_pos += rest.partition_point(|&x| x < d);
                if c.window_docs.get(c.window_pos) == Some(&d) {
                    values[c.qidx] = c.window_contrib[c.window_pos];
                }
            }
            // Terms a document lacks hold 0, and adding ±0 to a sum that starts at +0
            // never changes it, so this equals the sum over the terms it matches.
            let mut score = 0f32;
            for v in &mut values {
                score += std::mem::take(v);
            }
            top.push(score, entry.base + d);
        }
        window.clear();
    }
    Ok(())
}

/// Per-window candidate state: partial scores (f64, with the sum of absolute values for
/// the rounding margin) and a bitset of live candidates; or, when every term is scored,
/// exact f32 sums in term order.
struct Window {
    partial: Vec<f64>,
    abs: Vec<f64>,
    exact: Vec<f32>,
    live: Vec<u64>,
}

impl Window {
    fn new(len: u32) -> Self {
        let len = len as usize;
        Self {
            partial: vec![0.0; len],
            abs: vec![0.0; len],
            exact: vec![0.0; len],
            live: vec![0; len.div_ceil(64)],
        }
    }

    /// Adds a contribution to the exact sum (terms must come in term order).
    #[inline]
    fn add_exact(&mut self, slot: usize, v: f32) {
        self.exact[slot] += v;
        self.live[slot / 64] |= 1 << (slot % 64);
    }

    #[inline]
    fn add(&mut self, slot: usize, v: f32) {
        self.partial[slot] += f64::from(v);
        self.abs[slot] += f64::from(v.abs());
        self.live[slot / 64] |= 1 << (slot % 64);
    }

    #[inline]
    fn is_live(&self, slot: usize) -> bool {
        self.live[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Live slots in increasing order (a snapshot).
    fn live_slots(&self) -> impl Iterator<Item = usize> + use<> {
        let words = self.live.clone();
        words.into_iter().enumerate().flat_map(|(w, mut bits)| {
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let slot = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    slot
                })
            })
        })
    }

    /// Keeps the live slots for which `keep(slot, partial, abs)` holds; returns how many.
    fn retain(&mut self, mut keep: impl FnMut(usize, f64, f64) -> bool) -> usize {
        let mut count = 0;
        for w in 0..self.live.len() {
            let mut bits = self.live[w];
            let mut kept = 0u64;
            while bits != 0 {
                let bit = bits & bits.wrapping_neg();
                bits ^= bit;
                let slot = w * 64 + bit.trailing_zeros() as usize;
                if keep(slot, self.partial[slot], self.abs[slot]) {
                    kept |= bit;
                } else {
                    self.partial[slot] = 0.0;
                    self.abs[slot] = 0.0;
                    self.exact[slot] = 0.0;
                }
            }
            self.live[w] = kept;
            count += kept.count_ones() as usize;
        }
        count
    }

    /// Resets every live slot.
    fn clear(&mut self) {
        self.retain(|_, _, _| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bm25, ClSr, DotProduct, IndexBuilder, IndexConfig, SparseVector};

    fn index_of(docs: &[&[(u32, f32)]]) -> Index {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for (i, d) in docs.iter().enumerate() {
            b.add(
                format!("d{i}"),
                &SparseVector::new(d.iter().copied()).expect("valid"),
            )
            .expect("add");
        }
        b.build().expect("build")
    }

    #[test]
    fn dot_product_scores_and_orders_with_ties_by_doc_id() {
        let index = index_of(&[&[(1, 1.0)], &[(1, 2.0), (2, 1.0)], &[(2, 3.0)], &[(1, 1.0)]]);
        let q = Query::new([(1, 1.0), (2, 1.0)]).expect("valid");
        let opts = SearchOptions::default();
        for hits in [
            index.search(&q, &DotProduct, 10, &opts).expect("search"),
            index
                .search_exhaustive(&q, &DotProduct, 10, &opts)
                .expect("search"),
        ] {
            let got: Vec<(u32, f32)> = hits.iter().map(|h| (h.doc, h.score)).collect();
            assert_eq!(got, vec![(1, 3.0), (2, 3.0), (0, 1.0), (3, 1.0)]);
        }
        let top1 = index.search(&q, &DotProduct, 1, &opts).expect("search");
        assert_eq!(top1, vec![Hit { doc: 1, score: 3.0 }]);
        assert!(
            index
                .search(&q, &DotProduct, 0, &opts)
                .expect("ok")
                .is_empty()
        );
        let none = Query::new([(9, 1.0)]).expect("valid");
        assert!(
            index
                .search(&none, &DotProduct, 5, &opts)
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn filters_and_deletes_apply_to_both_paths() {
        let mut index = index_of(&[&[(1, 1.0)], &[(1, 2.0)], &[(1, 3.0)], &[(1, 4.0)]]);
        index.delete("d3");
        let q = Query::new([(1, 1.0)]).expect("valid");
        let opts = SearchOptions {
            allow: Some([0u32, 1, 3].into_iter().collect()),
            deny: Some([1u32].into_iter().collect()),
        };
        for hits in [
            index.search(&q, &DotProduct, 10, &opts).expect("search"),
            index
                .search_exhaustive(&q, &DotProduct, 10, &opts)
                .expect("search"),
        ] {
            assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), vec![0]);
        }
    }

    #[test]
    fn bm25_hand_computed_score() {
        // N = 2, df(1) = 1, avgdl = (3 + 1) / 2 = 2.
        let index = index_of(&[&[(1, 2.0), (2, 1.0)], &[(2, 1.0)]]);
        let hits = index
            .search(
                &Query::new([(1, 2.0)]).expect("valid"),
                &Bm25::default(),
                5,
                &SearchOptions::default(),
            )
            .expect("search");
        let idf = (1.0f64 + (2.0 - 1.0 + 0.5) / 1.5).ln() as f32;
        let tf = 2.0f32;
        let norm = 0.9 * (1.0 - 0.4 + 0.4 * (3.0 / 2.0));
        let want = (2.0 * idf) * (tf * 1.9 / (tf + norm));
        assert_eq!(
            hits,
            vec![Hit {
                doc: 0,
                score: want
            }]
        );
    }

    #[test]
    fn negative_idf_documents_are_still_returned_when_k_allows() {
        // Released-code CL-SR idf is negative for a term in every document.
        let scorer = ClSr::new(crate::ClSrParams {
            variant: crate::ClSrVariant::ReleasedCode,
            ..Default::default()
        })
        .expect("valid");
        let index = index_of(&[&[(1, 1.0), (2, 1.0)], &[(1, 1.0)], &[(1, 2.0)]]);
        let q = Query::new([(1, 1.0), (2, 1.0)]).expect("valid");
        let opts = SearchOptions::default();
        let pruned = index.search(&q, &scorer, 3, &opts).expect("search");
        let exhaustive = index
            .search_exhaustive(&q, &scorer, 3, &opts)
            .expect("search");
        assert_eq!(pruned, exhaustive);
        assert_eq!(pruned.len(), 3);
        assert!(pruned[2].score < 0.0);
        assert_eq!(pruned[0].doc, 0);
    }

    mod equivalence {
        use super::*;
        use crate::{
            Bm25Params, ClSrParams, ClSrVariant, DotProduct, TermFrequency, WeightEncoding,
        };
        use proptest::prelude::*;
        use std::collections::HashMap;

        #[derive(Debug, Clone)]
        struct Case {
            segments: Vec<Vec<Vec<(u32, f32)>>>,
            encoding: usize,
            deletes: Vec<bool>,
            allow: Option<Vec<bool>>,
            deny: Option<Vec<bool>>,
            query: Vec<(u32, f32)>,
            k: usize,
        }

        /// Skewed term ids (small ids frequent) and weights from a small set, so documents
        /// share terms and scores tie.
        fn doc_strategy(vocab: u32, tied: bool) -> impl Strategy<Value = Vec<(u32, f32)>> {
            let weight = if tied {
                prop::sample::select(vec![0.5f32, 1.0, 2.0, 3.0]).boxed()
            } else {
                (0.01f32..4.0).boxed()
            };
            prop::collection::vec(((0u32..vocab), (0u32..vocab), weight), 0..8).prop_map(|raw| {
                let mut seen = std::collections::BTreeMap::new();
                for (a, b, w) in raw {
                    seen.insert(a.min(b), w);
                }
                seen.into_iter().collect()
            })
        }

        fn case_strategy() -> impl Strategy<Value = Case> {
            (1u32..24, any::<bool>(), 0usize..3).prop_flat_map(|(vocab, tied, encoding)| {
                let tied = tied || encoding != 0;
                let segs = prop::collection::vec(
                    prop::collection::vec(doc_strategy(vocab, tied), 0..70),
                    1..4,
                );
                (segs, Just(encoding), Just(vocab)).prop_flat_map(|(segments, encoding, vocab)| {
                    let n: usize = segments.iter().map(Vec::len).sum();
                    let mask = move || prop::collection::vec(any::<bool>(), n);
                    (
                        Just(segments),
                        Just(encoding),
                        prop::collection::vec(prop::bool::weighted(0.15), n),
                        prop::option::of(mask()),
                        prop::option::of(prop::collection::vec(prop::bool::weighted(0.2), n)),
                        prop::collection::vec(
                            (
                                0u32..vocab + 2,
                                prop::sample::select(vec![0.5f32, 1.0, 1.0, 2.0, 0.3]),
                            ),
                            1..9,
                        ),
                        1usize..=50,
                    )
                        .prop_map(
                            |(segments, encoding, deletes, allow, deny, query, k)| Case {
                                segments,
                                encoding,
                                deletes,
                                allow,
                                deny,
                                query,
                                k,
                            },
                        )
                })
            })
        }

        fn encoding_of(i: usize) -> WeightEncoding {
            [
                WeightEncoding::Float32,
                WeightEncoding::Integer,
                WeightEncoding::Quantized { scale: 4.0 },
            ][i]
        }

        fn stored(w: f32, enc: WeightEncoding) -> Option<f32> {
            match enc {
                WeightEncoding::Float32 => Some(w),
                WeightEncoding::Integer => Some(w.ceil()),
                WeightEncoding::Quantized { scale } => {
                    let code = (w * scale).round();
                    (code > 0.0).then_some(code / scale)
                }
            }
        }

        fn build(case: &Case) -> (Index, Vec<Vec<(u32, f32)>>) {
            let enc = encoding_of(case.encoding);
            let mut index = Index::new();
            let mut docs = Vec::new();
            for (si, seg) in case.segments.iter().enumerate() {
                let mut b = IndexBuilder::new(IndexConfig {
                    weight_encoding: enc,
                    ..Default::default()
                })
                .expect("valid");
                for (di, d) in seg.iter().enumerate() {
                    let d: Vec<(u32, f32)> = d
                        .iter()
                        .map(|&(t, w)| match enc {
                            WeightEncoding::Integer => (t, w.ceil()),
                            _ => (t, w),
                        })
                        .collect();
                    b.add(
                        format!("s{si}d{di}"),
                        &SparseVector::new(d.iter().copied()).expect("valid"),
                    )
                    .expect("add");
                    docs.push(
                        d.iter()
                            .filter_map(|&(t, w)| stored(w, enc).map(|s| (t, s)))
                            .collect(),
                    );
                }
                index
                    .add_segment(b.build_segment().expect("build"))
                    .expect("add");
            }
            for (doc, &del) in case.deletes.iter().enumerate() {
                if del {
                    index.delete_doc(doc as u32).expect("exists");
                }
            }
            (index, docs)
        }

        fn scorers() -> Vec<(&'static str, Box<dyn Scorer>)> {
            vec![
                ("bm25", Box::new(Bm25::default())),
                (
                    "bm25-quantized",
                    Box::new(
                        Bm25::new(Bm25Params {
                            tf: TermFrequency::Quantized { scale: 2.0 },
                            ..Default::default()
                        })
                        .expect("valid"),
                    ),
                ),
                ("clsr", Box::new(ClSr::default())),
                (
                    "clsr-code",
                    Box::new(
                        ClSr::new(ClSrParams {
                            variant: ClSrVariant::ReleasedCode,
                            ..Default::default()
                        })
                        .expect("valid"),
                    ),
                ),
                (
                    "clsr-b3",
                    Box::new(
                        ClSr::new(ClSrParams {
                            b: 3.0,
                            length_norm_floor: Some(0.1),
                            ..Default::default()
                        })
                        .expect("valid"),
                    ),
                ),
                ("dot", Box::new(DotProduct)),
            ]
        }

        fn bitmap(mask: &Option<Vec<bool>>) -> Option<RoaringBitmap> {
            mask.as_ref().map(|m| {
                m.iter()
                    .enumerate()
                    .filter(|(_, b)| **b)
                    .map(|(i, _)| i as u32)
                    .collect()
            })
        }

        /// Scores computed straight from the input vectors, independent of the index.
        fn naive(
            case: &Case,
            docs: &[Vec<(u32, f32)>],
            scorer: &dyn Scorer,
            query: &Query,
        ) -> HashMap<u32, f32> {
            let live: Vec<usize> = (0..docs.len())
                .filter(|&d| !case.deletes[d] && !docs[d].is_empty())
                .collect();
            let length = |d: usize| -> f32 {
                match scorer.doc_length() {
                    DocLength::SumOfWeights => {
                        docs[d].iter().map(|&(_, w)| f64::from(w)).sum::<f64>() as f32
                    }
                    DocLength::TermCount => docs[d].len() as f32,
                    DocLength::SumOfQuantizedWeights { scale } => docs[d]
                        .iter()
                        .map(|&(_, w)| f64::from((w * scale).round()))
                        .sum::<f64>()
                        as f32,
                }
            };
            let n = live.len() as u64;
            let avg = if n > 0 {
                (live.iter().map(|&d| f64::from(length(d))).sum::<f64>() / n as f64) as f32
            } else {
                0.0
            };
            let stats = CollectionStats {
                num_docs: n,
                avg_doc_length: avg,
            };
            let mut out = HashMap::new();
            let allow = case.allow.clone();
            let deny = case.deny.clone();
            for &d in &live {
                if allow.as_ref().is_some_and(|a| !a[d]) || deny.as_ref().is_some_and(|x| x[d]) {
                    continue;
                }
                let mut score = 0f32;
                let mut any = false;
                for (t, qw) in query.iter() {
                    let Some(&(_, w)) = docs[d].iter().find(|&&(dt, _)| dt == t) else {
                        continue;
                    };
                    let df = live
                        .iter()
                        .filter(|&&o| docs[o].iter().any(|&(dt, _)| dt == t))
                        .count() as u64;
                    let idf = scorer.idf(&TermStats { doc_freq: df }, &stats);
                    score += (scorer.query_factor(qw) * idf) * scorer.doc_factor(w, length(d), avg);
                    any = true;
                }
                if any {
                    out.insert(d as u32, score);
                }
            }
            out
        }

        fn close(a: f32, b: f32) -> bool {
            (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]
            #[test]
            fn pruned_equals_exhaustive_and_naive(case in case_strategy()) {
                let (index, docs) = build(&case);
                let opts = SearchOptions { allow: bitmap(&case.allow), deny: bitmap(&case.deny) };
                let query = Query::new(case.query.iter().copied()).expect("valid");
                for (name, scorer) in scorers() {
                    let scorer: &dyn Scorer = scorer.as_ref();
                    let pruned = index.search(&query, scorer, case.k, &opts).expect("search");
                    let exhaustive = index.search_exhaustive(&query, scorer, case.k, &opts).expect("search");
                    prop_assert_eq!(&pruned, &exhaustive, "scorer {}", name);
                    for hit in &pruned {
                        let e = index.explain(&query, scorer, hit.doc).expect("explain");
                        prop_assert_eq!(e.score.to_bits(), hit.score.to_bits(), "explain, scorer {}", name);
                    }
                    let expected = naive(&case, &docs, scorer, &query);
                    prop_assert_eq!(pruned.len(), expected.len().min(case.k), "hit count, scorer {}", name);
                    for hit in &pruned {
                        let want = expected.get(&hit.doc).copied();
                        prop_assert!(want.is_some_and(|w| close(w, hit.score)),
                            "scorer {}: doc {} scored {} vs naive {:?}", name, hit.doc, hit.score, want);
                    }
                    if let Some(last) = pruned.last() {
                        for (doc, &s) in &expected {
                            if !pruned.iter().any(|h| h.doc == *doc) {
                                prop_assert!(s <= last.score || close(s, last.score),
                                    "scorer {}: doc {} ({}) beats the last hit ({})", name, doc, s, last.score);
                            }
                        }
                    }
                }
            }

            #[test]
            fn merging_keeps_scores(case in case_strategy()) {
                let (mut index, _) = build(&case);
                let query = Query::new(case.query.iter().copied()).expect("valid");
                let before: Vec<Vec<(String, f32)>> = scorers().iter().map(|(_, s)| {
                    index.search(&query, s.as_ref(), case.k, &SearchOptions::default()).expect("search")
                        .into_iter().map(|h| (index.external_id(h.doc).unwrap_or("").to_owned(), h.score)).collect()
                }).collect();
                index.merge_segments().expect("merge");
                prop_assert!(index.deleted_docs().is_empty());
                for ((name, s), want) in scorers().iter().zip(before) {
                    let got = index.search(&query, s.as_ref(), case.k, &SearchOptions::default()).expect("search");
                    prop_assert_eq!(got.len(), want.len());
                    for (h, (id, score)) in got.iter().zip(&want) {
                        prop_assert!(close(h.score, *score), "scorer {}: {} vs {}", name, h.score, score);
                        if got.iter().filter(|o| o.score == h.score).count() == 1 {
                            prop_assert_eq!(index.external_id(h.doc), Some(id.as_str()));
                        }
                    }
                }
            }
        }
    }
}
