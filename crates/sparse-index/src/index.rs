//! The index: segments, deletes, global collection statistics and document lookups.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use roaring::RoaringBitmap;

use crate::builder;
use crate::codec::BLOCK_LEN;
use crate::error::{IndexError, Result};
use crate::pruning::TermStatistics;
use crate::scorer::{CollectionStats, DocLength};
use crate::segment::{MAX_DOCS, Segment};
use crate::vocabulary::Vocabulary;

/// Internal document id: dense over all segments, in insertion order (segment after
/// segment). Ids stay valid until [`Index::merge_segments`] renumbers the live documents.
pub type DocId = u32;

/// Statistics of one segment's live documents, recomputed lazily after deletes.
#[derive(Debug)]
pub(crate) struct LiveStats {
    /// Per term (aligned with the term dictionary): postings in deleted documents.
    /// Empty when the segment has no deletes.
    pub(crate) deleted_df: Vec<u32>,
    /// Live documents with at least one term.
    pub(crate) docs_with_terms: u64,
    pub(crate) sum_weights: f64,
    pub(crate) sum_term_counts: f64,
}

pub(crate) struct SegmentEntry {
    pub(crate) segment: Segment,
    pub(crate) deletes: RoaringBitmap,
    pub(crate) base: DocId,
    live: OnceLock<Arc<LiveStats>>,
    quantized_sums: Mutex<Vec<(u32, f64)>>,
}

impl SegmentEntry {
    fn new(segment: Segment, deletes: RoaringBitmap, base: DocId) -> Self {
        Self {
            segment,
            deletes,
            base,
            live: OnceLock::new(),
            quantized_sums: Mutex::new(Vec::new()),
        }
    }

    fn invalidate(&mut self) {
        self.live = OnceLock::new();
        self.quantized_sums = Mutex::new(Vec::new());
    }

    pub(crate) fn live_stats(&self) -> Result<Arc<LiveStats>> {
        if let Some(s) = self.live.get() {
            return Ok(Arc::clone(s));
        }
        let stats = Arc::new(self.compute_live_stats()?);
        // Another thread may have won the race with an identical value; either is fine.
        let _ = self.live.set(Arc::clone(&stats));
        Ok(stats)
    }

    fn compute_live_stats(&self) -> Result<LiveStats> {
        let inner = &self.segment.inner;
        let mut deleted_df = Vec::new();
        if !self.deletes.is_empty() {
            // No forward index is stored, so one pass over the postings finds which terms
            // the deleted documents held. Only segments with deletes pay for it.
            deleted_df = vec![0u32; inner.terms.len()];
            let mut docs = [0u32; BLOCK_LEN];
            let mut weights = [0f32; BLOCK_LEN];
            for (ti, t) in inner.terms.iter().enumerate() {
                for block in t.first_block..t.first_block + t.num_blocks {
                    let n = inner.decode_block(block, &mut docs, &mut weights)?;
                    deleted_df[ti] += docs[..n]
                        .iter()
                        .filter(|&&d| self.deletes.contains(d))
                        .count() as u32;
                }
            }
        }
        let (mut docs_with_terms, mut sum_weights, mut sum_term_counts) = (0u64, 0f64, 0f64);
        for d in 0..inner.num_docs {
            let i = d as usize;
            let count = inner.term_counts.per_doc[i];
            if count > 0.0 && !self.deletes.contains(d) {
                docs_with_terms += 1;
                sum_weights += f64::from(inner.sum_weights.per_doc[i]);
                sum_term_counts += f64::from(count);
            }
        }
        Ok(LiveStats {
            deleted_df,
            docs_with_terms,
            sum_weights,
            sum_term_counts,
        })
    }

    fn length_sum(&self, kind: DocLength) -> Result<f64> {
        let live = self.live_stats()?;
        let scale = match kind {
            DocLength::SumOfWeights => return Ok(live.sum_weights),
            DocLength::TermCount => return Ok(live.sum_term_counts),
            DocLength::SumOfQuantizedWeights { scale } => scale,
        };
        let key = scale.to_bits();
        let mut cache = self
            .quantized_sums
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, s)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(s);
        }
        let col = self.segment.inner.length_column(kind)?;
        let counts = &self.segment.inner.term_counts.per_doc;
        let sum = (0..self.segment.inner.num_docs)
            .filter(|&d| counts[d as usize] > 0.0 && !self.deletes.contains(d))
            .map(|d| f64::from(col.per_doc[d as usize]))
            .sum();
        cache.push((key, sum));
        Ok(sum)
    }

    /// Live document frequency of the term at `ti` in this segment's dictionary.
    pub(crate) fn live_df(&self, ti: usize) -> Result<u32> {
        let df = self.segment.inner.terms[ti].df;
        if self.deletes.is_empty() {
            return Ok(df);
        }
        let live = self.live_stats()?;
        Ok(df - live.deleted_df.get(ti).copied().unwrap_or(0))
    }
}

/// An inverted index over sparse vectors: a list of immutable segments, per-segment
/// deletes, and an optional [`Vocabulary`] for lexical indexes.
///
/// Collection statistics (live document count, document frequencies, average document
/// length) are global over all live documents of all segments, so scores do not depend on
/// how the collection is split into segments or whether deleted documents were merged away.
///
/// ```
/// use latent_terms_sparse_index::{ClSr, Index, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector};
///
/// let mut first = IndexBuilder::new(IndexConfig::default())?;
/// first.add("d1", &SparseVector::new([(3, 1.5), (8, 0.2)])?)?;
/// first.add("d2", &SparseVector::new([(3, 0.4)])?)?;
/// let mut index = first.build()?;
///
/// let mut second = IndexBuilder::new(IndexConfig::default())?;
/// second.add("d3", &SparseVector::new([(8, 2.0)])?)?;
/// index.add_segment(second.build_segment()?)?;
/// index.delete("d2");
///
/// let query = Query::new([(3, 1.0), (8, 0.5)])?;
/// let hits = index.search(&query, &ClSr::default(), 10, &SearchOptions::default())?;
/// assert_eq!(hits, index.search_exhaustive(&query, &ClSr::default(), 10, &SearchOptions::default())?);
/// assert_eq!(index.num_docs(), 2);
///
/// index.merge_segments()?;
/// assert_eq!(index.num_segments(), 1);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Default)]
pub struct Index {
    pub(crate) segments: Vec<SegmentEntry>,
    pub(crate) vocabulary: Option<Arc<Vocabulary>>,
    /// Fixed document frequencies of a statically pruned index.
    pub(crate) term_statistics: Option<Arc<TermStatistics>>,
}

impl Clone for Index {
    /// Cheap: segments are shared; only deletes bitmaps are copied.
    fn clone(&self) -> Self {
        Self {
            segments: self
                .segments
                .iter()
                .map(|e| SegmentEntry::new(e.segment.clone(), e.deletes.clone(), e.base))
                .collect(),
            vocabulary: self.vocabulary.clone(),
            term_statistics: self.term_statistics.clone(),
        }
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("segments", &self.segments.len())
            .field("max_doc", &self.max_doc())
            .field("num_docs", &self.num_docs())
            .field("vocabulary", &self.vocabulary.as_ref().map(|v| v.len()))
            .field(
                "term_statistics",
                &self.term_statistics.as_ref().map(|s| s.len()),
            )
            .finish()
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn from_parts(
        parts: Vec<(Segment, RoaringBitmap)>,
        vocabulary: Option<Vocabulary>,
        term_statistics: Option<TermStatistics>,
    ) -> Result<Self> {
        let mut index = Index::new();
        for (segment, deletes) in parts {
            if deletes.max().is_some_and(|m| m >= segment.num_docs()) {
                return Err(IndexError::corrupted("deleted document id out of range"));
            }
            index.push_segment(segment, deletes)?;
        }
        if let Some(v) = vocabulary {
            index.set_vocabulary(v)?;
        }
        if let Some(t) = term_statistics {
            index.set_term_statistics(t)?;
        }
        Ok(index)
    }

    fn push_segment(&mut self, segment: Segment, deletes: RoaringBitmap) -> Result<()> {
        let base = self.max_doc();
        let total = u64::from(base) + u64::from(segment.num_docs());
        if total > u64::from(MAX_DOCS) {
            return Err(IndexError::TooManyDocuments {
                requested: total,
                limit: u64::from(MAX_DOCS),
            });
        }
        self.segments
            .push(SegmentEntry::new(segment, deletes, base));
        Ok(())
    }

    /// Appends a segment. Its documents get the next internal ids.
    ///
    /// Errors if one of its external ids belongs to a live document already in the index
    /// (delete the old document first to replace it), if an attached vocabulary does not
    /// cover its term ids, or if the index is statically pruned
    /// ([`IndexBuilder::build_pruned`](crate::IndexBuilder::build_pruned)).
    pub fn add_segment(&mut self, segment: Segment) -> Result<()> {
        if self.term_statistics.is_some() {
            return Err(IndexError::PrunedIndex);
        }
        for local in 0..segment.num_docs() {
            let Some(id) = segment.inner.doc_ids.get(local) else {
                continue;
            };
            if self.doc_id(id).is_some() {
                return Err(IndexError::DuplicateExternalId { id: id.to_owned() });
            }
        }
        if let Some(v) = &self.vocabulary {
            check_vocabulary(&segment, v)?;
        }
        self.push_segment(segment, RoaringBitmap::new())
    }

    /// Merges all segments into one, dropping deleted documents. Live documents keep their
    /// relative order but get new, dense internal ids.
    pub fn merge_segments(&mut self) -> Result<()> {
        if self.segments.is_empty()
            || (self.segments.len() == 1 && self.segments[0].deletes.is_empty())
        {
            return Ok(());
        }
        let parts: Vec<(&Segment, &RoaringBitmap)> = self
            .segments
            .iter()
            .map(|e| (&e.segment, &e.deletes))
            .collect();
        let merged = builder::merge(&parts)?;
        self.segments = vec![SegmentEntry::new(merged, RoaringBitmap::new(), 0)];
        Ok(())
    }

    /// Attaches the vocabulary lexical documents were vectorised with; it is saved with the
    /// index. Errors if a segment uses a term id the vocabulary does not have.
    pub fn set_vocabulary(&mut self, vocabulary: Vocabulary) -> Result<()> {
        for e in &self.segments {
            check_vocabulary(&e.segment, &vocabulary)?;
        }
        self.vocabulary = Some(Arc::new(vocabulary));
        Ok(())
    }

    /// The attached vocabulary, if any.
    pub fn vocabulary(&self) -> Option<&Vocabulary> {
        self.vocabulary.as_deref()
    }

    /// Fixes the document frequencies to `statistics` (a statically pruned index's, made by
    /// [`IndexBuilder::build_pruned`](crate::IndexBuilder::build_pruned)). Errors if a term
    /// has more live postings than its fixed frequency.
    pub(crate) fn set_term_statistics(&mut self, statistics: TermStatistics) -> Result<()> {
        for term in self.term_ids() {
            let (postings, df) = (
                self.live_postings(term)?,
                u64::from(statistics.doc_freq(term)),
            );
            if postings > df {
                return Err(IndexError::StatisticsMismatch { term, postings, df });
            }
        }
        self.term_statistics = Some(Arc::new(statistics));
        Ok(())
    }

    /// The fixed document frequencies of a statically pruned index; `None` for an index
    /// whose frequencies are counted from its postings.
    pub fn term_statistics(&self) -> Option<&TermStatistics> {
        self.term_statistics.as_deref()
    }

    /// Deletes the live document with this external id; returns whether one was found.
    pub fn delete(&mut self, external_id: &str) -> bool {
        match self.doc_id(external_id) {
            Some(doc) => self.delete_doc(doc).unwrap_or(false),
            None => false,
        }
    }

    /// Deletes a document by internal id; returns `false` if it was already deleted.
    pub fn delete_doc(&mut self, doc: DocId) -> Result<bool> {
        let (si, local) = self.locate(doc)?;
        let entry = &mut self.segments[si];
        let inserted = entry.deletes.insert(local);
        if inserted {
            entry.invalidate();
        }
        Ok(inserted)
    }

    /// Internal id of the live document with this external id.
    pub fn doc_id(&self, external_id: &str) -> Option<DocId> {
        self.segments.iter().find_map(|e| {
            let local = e.segment.inner.doc_ids.find(external_id)?;
            (!e.deletes.contains(local)).then_some(e.base + local)
        })
    }

    /// External id of a document (deleted documents keep theirs until a merge).
    pub fn external_id(&self, doc: DocId) -> Option<&str> {
        let (si, local) = self.locate(doc).ok()?;
        self.segments[si].segment.inner.doc_ids.get(local)
    }

    /// True if `doc` exists and is deleted.
    pub fn is_deleted(&self, doc: DocId) -> bool {
        self.locate(doc)
            .is_ok_and(|(si, local)| self.segments[si].deletes.contains(local))
    }

    /// Internal ids of all deleted documents.
    pub fn deleted_docs(&self) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for e in &self.segments {
            out.extend(e.deletes.iter().map(|d| e.base + d));
        }
        out
    }

    /// Number of live documents.
    pub fn num_docs(&self) -> u64 {
        self.segments
            .iter()
            .map(|e| u64::from(e.segment.num_docs()) - e.deletes.len())
            .sum()
    }

    /// One past the largest internal id (live or deleted).
    pub fn max_doc(&self) -> DocId {
        self.segments
            .last()
            .map_or(0, |e| e.base + e.segment.num_docs())
    }

    /// Number of segments.
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// The segments, in internal id order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &Segment> + '_ {
        self.segments.iter().map(|e| &e.segment)
    }

    /// Collection statistics for a document length kind, over live documents.
    pub fn collection_stats(&self, kind: DocLength) -> Result<CollectionStats> {
        let mut num_docs = 0u64;
        let mut sum = 0f64;
        for e in &self.segments {
            num_docs += e.live_stats()?.docs_with_terms;
            sum += e.length_sum(kind)?;
        }
        let avg_doc_length = if num_docs > 0 {
            (sum / num_docs as f64) as f32
        } else {
            0.0
        };
        Ok(CollectionStats {
            num_docs,
            avg_doc_length,
        })
    }

    /// Number of live documents containing `term`; in a statically pruned index, its
    /// fixed frequency over the full documents ([`Index::term_statistics`]).
    pub fn doc_freq(&self, term: u32) -> Result<u64> {
        if let Some(s) = &self.term_statistics {
            return Ok(u64::from(s.doc_freq(term)));
        }
        self.live_postings(term)
    }

    /// Number of live postings of `term`: its document frequency unless the index is
    /// statically pruned.
    pub(crate) fn live_postings(&self, term: u32) -> Result<u64> {
        let mut df = 0u64;
        for e in &self.segments {
            if let Some(ti) = e.segment.inner.term_index(term) {
                df += u64::from(e.live_df(ti)?);
            }
        }
        Ok(df)
    }

    /// Distinct term ids with at least one posting in some segment, increasing (terms whose
    /// every document is deleted are included until a merge).
    pub fn term_ids(&self) -> Vec<u32> {
        let mut terms: Vec<u32> = self
            .segments
            .iter()
            .flat_map(|e| e.segment.inner.terms.iter().map(|t| t.term))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        terms
    }

    /// The live postings of `term`: `(internal doc id, decoded weight)` in increasing doc id
    /// order; empty for an unknown term.
    ///
    /// ```
    /// use latent_terms_sparse_index::{IndexBuilder, IndexConfig, SparseVector};
    ///
    /// let mut b = IndexBuilder::new(IndexConfig::default())?;
    /// b.add("a", &SparseVector::new([(4, 0.5)])?)?;
    /// b.add("b", &SparseVector::new([(4, 1.5), (9, 1.0)])?)?;
    /// let mut index = b.build()?;
    /// index.delete("a");
    /// assert_eq!(index.postings(4)?, vec![(1, 1.5)]);
    /// assert_eq!(index.term_ids(), vec![4, 9]);
    /// # Ok::<(), latent_terms_sparse_index::IndexError>(())
    /// ```
    pub fn postings(&self, term: u32) -> Result<Vec<(DocId, f32)>> {
        let mut out = Vec::new();
        let mut docs = [0u32; BLOCK_LEN];
        let mut weights = [0f32; BLOCK_LEN];
        for e in &self.segments {
            let inner = &e.segment.inner;
            let Some(ti) = inner.term_index(term) else {
                continue;
            };
            let t = inner.terms[ti];
            for block in t.first_block..t.first_block + t.num_blocks {
                let n = inner.decode_block(block, &mut docs, &mut weights)?;
                for (&d, &w) in docs[..n].iter().zip(&weights[..n]) {
                    if !e.deletes.contains(d) {
                        out.push((e.base + d, w));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Segment index and local id of an internal id.
    pub(crate) fn locate(&self, doc: DocId) -> Result<(usize, u32)> {
        let si = self.segments.partition_point(|e| e.base <= doc);
        let unknown = IndexError::UnknownDocument {
            doc,
            max_doc: self.max_doc(),
        };
        let si = si.checked_sub(1).ok_or(unknown)?;
        let entry = &self.segments[si];
        let local = doc - entry.base;
        if local >= entry.segment.num_docs() {
            return Err(IndexError::UnknownDocument {
                doc,
                max_doc: self.max_doc(),
            });
        }
        Ok((si, local))
    }
}

fn check_vocabulary(segment: &Segment, vocabulary: &Vocabulary) -> Result<()> {
    match segment.inner.terms.last() {
        Some(t) if t.term as usize >= vocabulary.len() => Err(IndexError::VocabularyMismatch {
            term: t.term,
            len: vocabulary.len(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexBuilder, IndexConfig, SparseVector};

    fn segment(ids: &[&str], term: u32) -> Segment {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for (i, id) in ids.iter().enumerate() {
            b.add(
                *id,
                &SparseVector::new([(term, 1.0 + i as f32)]).expect("valid"),
            )
            .expect("add");
        }
        b.build_segment().expect("build")
    }

    #[test]
    fn index_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Index>();
        assert_send_sync::<Segment>();
    }

    #[test]
    fn ids_span_segments_and_deletes_update_stats() {
        let mut index = Index::new();
        index.add_segment(segment(&["a", "b"], 1)).expect("add");
        index.add_segment(segment(&["c"], 1)).expect("add");
        assert_eq!(index.max_doc(), 3);
        assert_eq!(index.doc_id("c"), Some(2));
        assert_eq!(index.external_id(1), Some("b"));
        assert_eq!(index.doc_freq(1).expect("ok"), 3);
        let stats = index.collection_stats(DocLength::SumOfWeights).expect("ok");
        assert_eq!(stats.num_docs, 3);
        assert_eq!(stats.avg_doc_length, (1.0 + 2.0 + 1.0) / 3.0);

        assert!(index.delete("b"));
        assert!(!index.delete("b"));
        assert!(index.is_deleted(1));
        assert_eq!(index.doc_id("b"), None);
        assert_eq!(index.num_docs(), 2);
        assert_eq!(index.doc_freq(1).expect("ok"), 2);
        assert_eq!(
            index
                .collection_stats(DocLength::SumOfWeights)
                .expect("ok")
                .avg_doc_length,
            1.0
        );
        assert!(matches!(
            index.delete_doc(3),
            Err(IndexError::UnknownDocument { doc: 3, max_doc: 3 })
        ));
    }

    #[test]
    fn duplicate_ids_across_segments_need_a_delete_first() {
        let mut index = Index::new();
        index.add_segment(segment(&["a"], 1)).expect("add");
        assert!(matches!(
            index.add_segment(segment(&["a"], 2)),
            Err(IndexError::DuplicateExternalId { .. })
        ));
        index.delete("a");
        index.add_segment(segment(&["a"], 2)).expect("replacement");
        assert_eq!(index.doc_id("a"), Some(1));
    }

    #[test]
    fn merge_drops_deleted_and_keeps_order() {
        let mut index = Index::new();
        index.add_segment(segment(&["a", "b"], 1)).expect("add");
        index.add_segment(segment(&["c", "d"], 2)).expect("add");
        index.delete("a");
        index.delete("d");
        index.merge_segments().expect("merge");
        assert_eq!(index.num_segments(), 1);
        assert_eq!(index.max_doc(), 2);
        assert_eq!(index.external_id(0), Some("b"));
        assert_eq!(index.external_id(1), Some("c"));
        assert_eq!(index.doc_freq(1).expect("ok"), 1);
        assert_eq!(index.doc_freq(2).expect("ok"), 1);
        assert!(index.deleted_docs().is_empty());
    }

    #[test]
    fn vocabulary_must_cover_term_ids() {
        let mut index = Index::new();
        index.add_segment(segment(&["a"], 3)).expect("add");
        let small = Vocabulary::from_terms(["x"]).expect("valid");
        assert!(matches!(
            index.set_vocabulary(small),
            Err(IndexError::VocabularyMismatch { term: 3, len: 1 })
        ));
        let ok = Vocabulary::from_terms(["a", "b", "c", "d"]).expect("valid");
        index.set_vocabulary(ok).expect("covers");
        assert!(index.add_segment(segment(&["z"], 9)).is_err());
    }
}
