//! Building segments: documents in, an immutable compressed [`Segment`] out.

use std::collections::{HashMap, HashSet};

use roaring::RoaringBitmap;

use crate::bytes::Bytes;
use crate::codec::{self, BLOCK_LEN, BlockWeights, MAX_CODE};
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::pruning::{StaticPruning, TermStatistics, pruning_idf};
use crate::segment::{MAX_DOCS, Segment, SegmentSections};
use crate::vector::SparseVector;

/// How posting weights are stored. Scores are always computed from the decoded weights,
/// so every search path and [`explain`](crate::Index::explain) agree whatever the choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightEncoding {
    /// Exact f32: 4 bytes per posting. The default.
    Float32,
    /// Exact whole numbers in `[1, 2^21]` (lexical term frequencies, activations already
    /// quantized to integers), bit packed: typically 1–4 bits per posting. Adding a
    /// non-integer weight is an error.
    Integer,
    /// Lossy: stores `round(weight × scale)` bit packed and decodes it as `code / scale`
    /// (absolute error at most `0.5 / scale`). Postings that round to 0 are dropped, exactly
    /// as when activations are turned into pseudo-term counts for stock BM25; pair it with
    /// [`TermFrequency::Quantized`](crate::TermFrequency::Quantized) of the same scale to get
    /// stock BM25's integer tfs back. Codes above `2^21` are an error (lower the scale).
    Quantized {
        /// Multiplier before rounding, finite and > 0.
        scale: f32,
    },
}

impl WeightEncoding {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WeightEncoding::Float32 => "Float32",
            WeightEncoding::Integer => "Integer",
            WeightEncoding::Quantized { .. } => "Quantized",
        }
    }

    /// The stored value of a weight: f32 bits, or an integer code; `None` if the posting
    /// is dropped (quantized to 0).
    fn encode(self, term: u32, weight: f32) -> Result<Option<u32>> {
        let unencodable = |reason| IndexError::UnencodableWeight {
            term,
            weight,
            encoding: self.name(),
            reason,
        };
        match self {
            WeightEncoding::Float32 => Ok(Some(weight.to_bits())),
            WeightEncoding::Integer => {
                if weight.fract() != 0.0 || weight > MAX_CODE as f32 {
                    Err(unencodable(
                        "weights must be whole numbers up to 2^21; use Float32 or Quantized",
                    ))
                } else {
                    Ok(Some(weight as u32))
                }
            }
            WeightEncoding::Quantized { scale } => {
                let code = (weight * scale).round();
                if code == 0.0 {
                    Ok(None)
                } else if code > MAX_CODE as f32 {
                    Err(unencodable(
                        "weight × scale exceeds 2^21; lower the quantization scale",
                    ))
                } else {
                    Ok(Some(code as u32))
                }
            }
        }
    }

    fn decode(self, value: u32) -> f32 {
        match self {
            WeightEncoding::Float32 => f32::from_bits(value),
            _ => codec::decode_code(value, self),
        }
    }

    fn validate(self) -> Result<()> {
        match self {
            WeightEncoding::Quantized { scale } if !(scale.is_finite() && scale > 0.0) => {
                Err(IndexError::InvalidParameter {
                    name: "scale",
                    value: f64::from(scale),
                    reason: "the quantization scale must be finite and > 0",
                })
            }
            _ => Ok(()),
        }
    }
}

/// Index-time settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexConfig {
    /// Keep only this many largest weights per document (ties keep the lower term id).
    /// The paper's "Efficient" setting keeps 24 latents, "Max" 65. `None` keeps all.
    pub max_terms_per_doc: Option<usize>,
    /// How weights are stored.
    pub weight_encoding: WeightEncoding,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            max_terms_per_doc: None,
            weight_encoding: WeightEncoding::Float32,
        }
    }
}

impl IndexConfig {
    /// For term-frequency vectors from an [`Analyzer`](crate::Analyzer): exact integer
    /// weights, bit packed.
    pub fn lexical() -> Self {
        Self {
            max_terms_per_doc: None,
            weight_encoding: WeightEncoding::Integer,
        }
    }
}

/// Collects documents and builds an immutable [`Segment`] or a one-segment [`Index`].
///
/// Internal doc ids are assigned in insertion order, starting at 0 in each segment.
///
/// ```
/// use latent_terms_sparse_index::{Bm25, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector};
///
/// let mut builder = IndexBuilder::new(IndexConfig { max_terms_per_doc: Some(2), ..Default::default() })?;
/// builder.add("a", &SparseVector::new([(1, 0.9), (2, 0.1), (3, 0.5)])?)?;
/// builder.add("b", &SparseVector::new([(2, 0.8)])?)?;
/// let index = builder.build()?;
/// let hits = index.search(&Query::new([(2, 1.0)])?, &Bm25::default(), 10, &SearchOptions::default())?;
/// // "a" kept only its two largest latents (1 and 3), so only "b" matches term 2.
/// assert_eq!(hits.len(), 1);
/// assert_eq!(index.external_id(hits[0].doc), Some("b"));
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug)]
pub struct IndexBuilder {
    config: IndexConfig,
    ids: Vec<String>,
    seen: HashSet<String>,
    doc_ends: Vec<usize>,
    terms: Vec<u32>,
    values: Vec<u32>,
    lengths: Vec<(f32, u32)>,
    max_term: u32,
}

impl IndexBuilder {
    /// A builder; errors on an invalid configuration.
    pub fn new(config: IndexConfig) -> Result<Self> {
        config.weight_encoding.validate()?;
        Ok(Self {
            config,
            ids: Vec::new(),
            seen: HashSet::new(),
            doc_ends: Vec::new(),
            terms: Vec::new(),
            values: Vec::new(),
            lengths: Vec::new(),
            max_term: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> IndexConfig {
        self.config
    }

    /// Number of documents added.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if no document was added.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a document and returns its internal id within the segment. On error nothing
    /// is added.
    ///
    /// A document whose vector is empty is kept (it can be looked up by id) but matches no
    /// query and does not count in collection statistics.
    pub fn add(&mut self, external_id: impl Into<String>, vector: &SparseVector) -> Result<u32> {
        let id = external_id.into();
        if self.seen.contains(&id) {
            return Err(IndexError::DuplicateExternalId { id });
        }
        let local = u32::try_from(self.ids.len())
            .ok()
            .filter(|&n| n < MAX_DOCS)
            .ok_or(IndexError::TooManyDocuments {
                requested: self.ids.len() as u64 + 1,
                limit: u64::from(MAX_DOCS),
            })?;
        let capped;
        let vector = match self.config.max_terms_per_doc {
            Some(n) if vector.len() > n => {
                capped = vector.top_k(n);
                &capped
            }
            _ => vector,
        };
        let encoding = self.config.weight_encoding;
        let mut encoded = Vec::with_capacity(vector.len());
        for (term, weight) in vector.iter() {
            if let Some(v) = encoding.encode(term, weight)? {
                encoded.push((term, v));
            }
        }
        // The length is the sum of what searches decode, added in term order in f64.
        let sum: f64 = encoded
            .iter()
            .map(|&(_, v)| f64::from(encoding.decode(v)))
            .sum();
        for &(term, v) in &encoded {
            self.terms.push(term);
            self.values.push(v);
            self.max_term = self.max_term.max(term);
        }
        self.doc_ends.push(self.terms.len());
        self.lengths.push((sum as f32, encoded.len() as u32));
        self.seen.insert(id.clone());
        self.ids.push(id);
        Ok(local)
    }

    /// Builds the segment.
    pub fn build_segment(self) -> Result<Segment> {
        let num_postings = self.terms.len();
        // Group postings by term with a counting sort; term ids are usually dense
        // (vocabulary ids, SAE latents), so a direct table is cheapest, with a hash map
        // fallback for sparse id spaces such as hashed features.
        let dense = (self.max_term as usize) < num_postings.max(1 << 16).saturating_mul(4);
        let mut slot_of: HashMap<u32, u32> = HashMap::new();
        let mut term_of_slot: Vec<u32>;
        let slots: Vec<u32> = if dense {
            let mut present = vec![false; self.max_term as usize + 1];
            for &t in &self.terms {
                present[t as usize] = true;
            }
            let mut table = vec![u32::MAX; present.len()];
            term_of_slot = Vec::new();
            for (t, _) in present.iter().enumerate().filter(|(_, p)| **p) {
                table[t] = term_of_slot.len() as u32;
                term_of_slot.push(t as u32);
            }
            self.terms.iter().map(|&t| table[t as usize]).collect()
        } else {
            term_of_slot = self.terms.clone();
            term_of_slot.sort_unstable();
            term_of_slot.dedup();
            for (i, &t) in term_of_slot.iter().enumerate() {
                slot_of.insert(t, i as u32);
            }
            self.terms
                .iter()
                .map(|t| slot_of.get(t).copied().unwrap_or(u32::MAX))
                .collect()
        };
        let mut starts = vec![0usize; term_of_slot.len() + 1];
        for &s in &slots {
            starts[s as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut post_docs = vec![0u32; num_postings];
        let mut post_values = vec![0u32; num_postings];
        let mut begin = 0usize;
        for (doc, &end) in self.doc_ends.iter().enumerate() {
            for (&s, &value) in slots[begin..end].iter().zip(&self.values[begin..end]) {
                let s = s as usize;
                post_docs[fill[s]] = doc as u32;
                post_values[fill[s]] = value;
                fill[s] += 1;
            }
            begin = end;
        }
        let mut writer = SegmentWriter::new(self.config.weight_encoding, self.lengths);
        for (slot, &term) in term_of_slot.iter().enumerate() {
            let range = starts[slot]..starts[slot + 1];
            writer.add_term(term, &post_docs[range.clone()], &post_values[range])?;
        }
        writer.finish(&self.ids)
    }

    /// Builds a one-segment index.
    pub fn build(self) -> Result<Index> {
        let mut index = Index::new();
        index.add_segment(self.build_segment()?)?;
        Ok(index)
    }

    /// Builds a one-segment index that keeps only the postings `pruning` chooses in each
    /// document, but scores them with the full documents' statistics: every document keeps
    /// the length of everything it was added with, and the index keeps every term's
    /// document frequency over the full documents ([`TermStatistics`]). Such an index
    /// cannot take more segments ([`Index::add_segment`] refuses); rebuild it instead.
    ///
    /// ```
    /// use latent_terms_sparse_index::{Bm25, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector, StaticPruning};
    ///
    /// let docs = [("a", vec![(1, 2.0), (2, 0.1), (3, 1.0)]), ("b", vec![(2, 1.0), (3, 0.5)])];
    /// let build = |pruning: Option<StaticPruning>| {
    ///     let mut b = IndexBuilder::new(IndexConfig::default())?;
    ///     for (id, terms) in &docs {
    ///         b.add(*id, &SparseVector::new(terms.iter().copied())?)?;
    ///     }
    ///     match pruning {
    ///         Some(p) => b.build_pruned(p),
    ///         None => b.build(),
    ///     }
    /// };
    /// let (full, pruned) = (build(None)?, build(Some(StaticPruning::TopTerms(1)))?);
    /// assert_eq!(pruned.segments().map(|s| s.num_postings()).sum::<u64>(), 2);
    /// // A kept posting scores exactly as in the full index.
    /// let query = Query::new([(1, 1.0)])?;
    /// let opts = SearchOptions::default();
    /// assert_eq!(pruned.search(&query, &Bm25::default(), 10, &opts)?, full.search(&query, &Bm25::default(), 10, &opts)?);
    /// # Ok::<(), latent_terms_sparse_index::IndexError>(())
    /// ```
    pub fn build_pruned(mut self, pruning: StaticPruning) -> Result<Index> {
        pruning.validate()?;
        let mut df: HashMap<u32, u32> = HashMap::new();
        for &t in &self.terms {
            *df.entry(t).or_default() += 1;
        }
        let num_docs = self.lengths.iter().filter(|&&(_, n)| n > 0).count() as u64;
        let encoding = self.config.weight_encoding;
        let (mut terms, mut values, mut doc_ends) = (Vec::new(), Vec::new(), Vec::new());
        let mut ranked: Vec<(f64, usize)> = Vec::new();
        let mut scores: Vec<f64> = Vec::new();
        let mut begin = 0;
        for &end in &self.doc_ends {
            ranked.clear();
            for i in begin..end {
                let idf = pruning_idf(u64::from(df[&self.terms[i]]), num_docs);
                ranked.push((f64::from(encoding.decode(self.values[i])) * idf, i));
            }
            // Postings are in term order, so a stable sort keeps the lower term on ties.
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            scores.clear();
            scores.extend(ranked.iter().map(|r| r.0));
            let keep = pruning.keep(&scores);
            let mut kept: Vec<usize> = ranked[..keep].iter().map(|r| r.1).collect();
            kept.sort_unstable();
            for i in kept {
                terms.push(self.terms[i]);
                values.push(self.values[i]);
            }
            doc_ends.push(terms.len());
            begin = end;
        }
        let mut statistics: Vec<(u32, u32)> = df.into_iter().collect();
        statistics.sort_unstable();
        (self.terms, self.values, self.doc_ends) = (terms, values, doc_ends);
        let mut index = self.build()?;
        index.set_term_statistics(TermStatistics::new(statistics)?)?;
        Ok(index)
    }
}

/// Serialises postings term by term into the segment sections of the file format.
pub(crate) struct SegmentWriter {
    encoding: WeightEncoding,
    lengths: Vec<(f32, u32)>,
    terms: Vec<u8>,
    blocks: Vec<u8>,
    postings: Vec<u8>,
    num_terms: u32,
    num_blocks: u32,
}

impl SegmentWriter {
    pub(crate) fn new(encoding: WeightEncoding, lengths: Vec<(f32, u32)>) -> Self {
        Self {
            encoding,
            lengths,
            terms: Vec::new(),
            blocks: Vec::new(),
            postings: Vec::new(),
            num_terms: 0,
            num_blocks: 0,
        }
    }

    /// Adds one term's postings: strictly increasing docs, stored values aligned.
    pub(crate) fn add_term(&mut self, term: u32, docs: &[u32], values: &[u32]) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let mut prev_last = None;
        for (d, v) in docs.chunks(BLOCK_LEN).zip(values.chunks(BLOCK_LEN)) {
            let mut weights = [0f32; BLOCK_LEN];
            for (w, &val) in weights.iter_mut().zip(v) {
                *w = self.encoding.decode(val);
            }
            let weights = &weights[..v.len()];
            let block_weights = match self.encoding {
                WeightEncoding::Float32 => BlockWeights::Float(weights),
                _ => BlockWeights::Codes(v),
            };
            let (doc_bits, weight_bits) =
                codec::encode_block(d, block_weights, prev_last, &mut self.postings);
            let max_weight = weights.iter().copied().fold(0.0f32, f32::max);
            let (mut min_sum, mut min_count) = (f32::INFINITY, u32::MAX);
            for &doc in d {
                let (s, c) = self.lengths[doc as usize];
                min_sum = min_sum.min(s);
                min_count = min_count.min(c);
            }
            let last = d[d.len() - 1];
            self.blocks.extend_from_slice(&last.to_le_bytes());
            self.blocks.push(doc_bits);
            self.blocks.push(weight_bits);
            self.blocks.extend_from_slice(&0u16.to_le_bytes());
            self.blocks.extend_from_slice(&max_weight.to_le_bytes());
            self.blocks.extend_from_slice(&min_sum.to_le_bytes());
            self.blocks.extend_from_slice(&min_count.to_le_bytes());
            self.num_blocks = self
                .num_blocks
                .checked_add(1)
                .ok_or_else(|| too_large("the block table", u64::MAX))?;
            prev_last = Some(last);
        }
        let df = u32::try_from(docs.len()).map_err(|_| too_large("a posting list", u64::MAX))?;
        self.terms.extend_from_slice(&term.to_le_bytes());
        self.terms.extend_from_slice(&df.to_le_bytes());
        self.num_terms += 1;
        Ok(())
    }

    pub(crate) fn finish<S: AsRef<str>>(self, ids: &[S]) -> Result<Segment> {
        let num_docs = self.lengths.len() as u32;
        let mut meta = Vec::with_capacity(crate::segment::SEGMENT_META_LEN);
        let (tag, scale) = match self.encoding {
            WeightEncoding::Float32 => (0u32, 0f32),
            WeightEncoding::Integer => (1, 0.0),
            WeightEncoding::Quantized { scale } => (2, scale),
        };
        for v in [num_docs, self.num_terms, self.num_blocks, tag] {
            meta.extend_from_slice(&v.to_le_bytes());
        }
        meta.extend_from_slice(&scale.to_le_bytes());

        let mut lengths = Vec::with_capacity(self.lengths.len() * 8);
        for &(s, c) in &self.lengths {
            lengths.extend_from_slice(&s.to_le_bytes());
            lengths.extend_from_slice(&c.to_le_bytes());
        }

        let total: usize = ids.iter().map(|s| s.as_ref().len()).sum();
        if u32::try_from(total).is_err() {
            return Err(too_large("the document id table", total as u64));
        }
        let mut doc_ids = Vec::with_capacity(ids.len() * 8 + 4 + total);
        let mut offset = 0u32;
        doc_ids.extend_from_slice(&0u32.to_le_bytes());
        for id in ids {
            offset += id.as_ref().len() as u32;
            doc_ids.extend_from_slice(&offset.to_le_bytes());
        }
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| ids[a as usize].as_ref().cmp(ids[b as usize].as_ref()));
        for o in order {
            doc_ids.extend_from_slice(&o.to_le_bytes());
        }
        for id in ids {
            doc_ids.extend_from_slice(id.as_ref().as_bytes());
        }

        Segment::from_sections(SegmentSections {
            meta: Bytes::from_vec(meta),
            terms: Bytes::from_vec(self.terms),
            blocks: Bytes::from_vec(self.blocks),
            postings: Bytes::from_vec(self.postings),
            doc_ids: Bytes::from_vec(doc_ids),
            doc_lengths: Bytes::from_vec(lengths),
        })
    }
}

fn too_large(what: &'static str, size: u64) -> IndexError {
    IndexError::TooLarge {
        what,
        size,
        limit: u64::from(u32::MAX),
    }
}

/// Merges segments into one, dropping deleted documents and renumbering the rest in
/// order. Weights are carried over exactly: segments that share an encoding keep it,
/// mixed encodings merge into `Float32`, which represents every decoded weight.
pub(crate) fn merge(parts: &[(&Segment, &RoaringBitmap)]) -> Result<Segment> {
    let encoding = match parts.first() {
        Some((s, _))
            if parts
                .iter()
                .all(|(o, _)| o.inner.encoding == s.inner.encoding) =>
        {
            s.inner.encoding
        }
        _ => WeightEncoding::Float32,
    };
    let mut remap: Vec<Vec<u32>> = Vec::with_capacity(parts.len());
    let mut ids: Vec<&str> = Vec::new();
    let mut lengths = Vec::new();
    for (seg, deletes) in parts {
        let inner = &seg.inner;
        let mut map = vec![u32::MAX; inner.num_docs as usize];
        for local in 0..inner.num_docs {
            if deletes.contains(local) {
                continue;
            }
            let new_id = u32::try_from(ids.len())
                .ok()
                .filter(|&n| n < MAX_DOCS)
                .ok_or(IndexError::TooManyDocuments {
                    requested: ids.len() as u64 + 1,
                    limit: u64::from(MAX_DOCS),
                })?;
            map[local as usize] = new_id;
            ids.push(
                inner
                    .doc_ids
                    .get(local)
                    .ok_or_else(|| IndexError::corrupted("document id missing"))?,
            );
            let i = local as usize;
            lengths.push((
                inner.sum_weights.per_doc[i],
                inner.term_counts.per_doc[i] as u32,
            ));
        }
        remap.push(map);
    }
    let mut all_terms: Vec<u32> = parts
        .iter()
        .flat_map(|(s, _)| s.inner.terms.iter().map(|t| t.term))
        .collect();
    all_terms.sort_unstable();
    all_terms.dedup();

    let mut writer = SegmentWriter::new(encoding, lengths);
    let mut docs_buf = [0u32; BLOCK_LEN];
    let mut weights_buf = [0f32; BLOCK_LEN];
    let (mut docs, mut values) = (Vec::new(), Vec::new());
    for term in all_terms {
        docs.clear();
        values.clear();
        for ((seg, _), map) in parts.iter().zip(&remap) {
            let inner = &seg.inner;
            let Some(ti) = inner.term_index(term) else {
                continue;
            };
            let t = inner.terms[ti];
            for block in t.first_block..t.first_block + t.num_blocks {
                let n = inner.decode_block(block, &mut docs_buf, &mut weights_buf)?;
                for (&d, &w) in docs_buf[..n].iter().zip(&weights_buf[..n]) {
                    let new_id = map[d as usize];
                    if new_id == u32::MAX {
                        continue;
                    }
                    let value = encoding
                        .encode(term, w)?
                        .ok_or_else(|| IndexError::corrupted("stored weight quantizes to 0"))?;
                    docs.push(new_id);
                    values.push(value);
                }
            }
        }
        writer.add_term(term, &docs, &values)?;
    }
    writer.finish(&ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec_of(pairs: &[(u32, f32)]) -> SparseVector {
        SparseVector::new(pairs.iter().copied()).expect("valid")
    }

    #[test]
    fn builder_rejects_duplicates_and_unencodable_weights() {
        let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
        b.add("x", &vec_of(&[(1, 2.0)])).expect("integer");
        assert!(matches!(
            b.add("x", &vec_of(&[(1, 1.0)])),
            Err(IndexError::DuplicateExternalId { .. })
        ));
        assert!(matches!(
            b.add("y", &vec_of(&[(1, 1.5)])),
            Err(IndexError::UnencodableWeight { .. })
        ));
        assert_eq!(b.len(), 1);
        assert!(
            IndexBuilder::new(IndexConfig {
                weight_encoding: WeightEncoding::Quantized { scale: -1.0 },
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn quantized_encoding_drops_zero_codes_and_rounds() {
        let enc = WeightEncoding::Quantized { scale: 10.0 };
        assert_eq!(enc.encode(1, 0.04).expect("fits"), None);
        assert_eq!(enc.encode(1, 0.26).expect("fits"), Some(3));
        assert!(enc.encode(1, 1e9).is_err());
        // Re-encoding a decoded code gives the code back, so merges are lossless.
        for code in [1u32, 7, 12345, MAX_CODE] {
            for scale in [0.3f32, 1.0, 7.0, 100.0, 1000.0] {
                let e = WeightEncoding::Quantized { scale };
                assert_eq!(e.encode(0, e.decode(code)).expect("fits"), Some(code));
            }
        }
    }

    #[test]
    fn segment_round_trips_postings() {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for d in 0..300u32 {
            let mut pairs = vec![(5, 1.0 + d as f32)];
            if d % 3 == 0 {
                pairs.push((1_000_000_000, 0.5));
            }
            b.add(format!("d{d}"), &vec_of(&pairs)).expect("add");
        }
        let seg = b.build_segment().expect("build");
        let inner = &seg.inner;
        assert_eq!(inner.num_docs, 300);
        assert_eq!(inner.terms.len(), 2);
        assert_eq!(inner.terms[0].df, 300);
        assert_eq!(inner.terms[1].df, 100);
        assert_eq!(inner.terms[0].num_blocks, 3);
        let mut docs = [0u32; BLOCK_LEN];
        let mut ws = [0f32; BLOCK_LEN];
        let n = inner.decode_block(2, &mut docs, &mut ws).expect("decodes");
        assert_eq!(n, 300 - 256);
        assert_eq!(docs[0], 256);
        assert_eq!(ws[0], 257.0);
        assert_eq!(inner.doc_ids.get(7), Some("d7"));
        assert_eq!(inner.doc_ids.find("d299"), Some(299));
        assert_eq!(inner.doc_ids.find("nope"), None);
        assert_eq!(inner.sum_weights.per_doc[3], 4.5);
        assert_eq!(inner.term_counts.per_doc[3], 2.0);
    }
}
