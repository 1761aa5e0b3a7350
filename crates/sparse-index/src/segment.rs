//! An immutable segment: postings, document ids and lengths for a contiguous range of
//! internal doc ids. Built segments and loaded ones share one representation: the byte
//! sections of the file format, validated once, plus small decoded tables.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::builder::WeightEncoding;
use crate::bytes::{Bytes, Reader, u32_at};
use crate::codec::{self, BLOCK_LEN, BlockLayout};
use crate::error::{IndexError, Result};
use crate::scorer::{DocLength, round_non_negative};

/// Raw sections of one segment, exactly as stored in the file.
#[derive(Clone, Debug)]
pub(crate) struct SegmentSections {
    pub(crate) meta: Bytes,
    pub(crate) terms: Bytes,
    pub(crate) blocks: Bytes,
    pub(crate) postings: Bytes,
    pub(crate) doc_ids: Bytes,
    pub(crate) doc_lengths: Bytes,
}

pub(crate) const SEGMENT_META_LEN: usize = 20;
pub(crate) const TERM_ENTRY_LEN: usize = 8;
pub(crate) const BLOCK_ENTRY_LEN: usize = 20;
pub(crate) const DOC_LENGTH_ENTRY_LEN: usize = 8;

/// Largest number of documents one segment (and one index) may hold. `u32::MAX` itself is
/// reserved as the "exhausted" sentinel of posting cursors.
pub(crate) const MAX_DOCS: u32 = u32::MAX - 1;

#[derive(Debug, Clone, Copy)]
pub(crate) struct TermInfo {
    pub(crate) term: u32,
    pub(crate) df: u32,
    pub(crate) first_block: usize,
    pub(crate) num_blocks: usize,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockInfo {
    pub(crate) last_doc: u32,
    pub(crate) prev_last: Option<u32>,
    pub(crate) count: usize,
    pub(crate) doc_bits: u8,
    pub(crate) weight_bits: u8,
    pub(crate) offset: usize,
    pub(crate) byte_len: usize,
    pub(crate) max_weight: f32,
}

/// A document length per doc, and its minimum per block, which is what block-max pruning
/// needs to bound length-normalised scores.
#[derive(Debug)]
pub(crate) struct LengthColumn {
    pub(crate) per_doc: Vec<f32>,
    pub(crate) block_min: Vec<f32>,
}

/// Document ids: offsets into UTF-8 bytes, plus the permutation that sorts them so
/// lookups by id are a binary search over the (possibly memory-mapped) table.
#[derive(Debug)]
pub(crate) struct DocIdTable {
    offsets: Bytes,
    order: Bytes,
    data: Bytes,
    len: u32,
}

impl DocIdTable {
    pub(crate) fn get(&self, local: u32) -> Option<&str> {
        if local >= self.len {
            return None;
        }
        let offsets = self.offsets.as_slice();
        let start = u32_at(offsets, local as usize)? as usize;
        let end = u32_at(offsets, local as usize + 1)? as usize;
        std::str::from_utf8(self.data.as_slice().get(start..end)?).ok()
    }

    pub(crate) fn find(&self, id: &str) -> Option<u32> {
        let order = self.order.as_slice();
        let (mut lo, mut hi) = (0usize, self.len as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let local = u32_at(order, mid)?;
            match self.get(local)?.cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(local),
            }
        }
        None
    }
}

pub(crate) struct SegmentInner {
    pub(crate) num_docs: u32,
    pub(crate) encoding: WeightEncoding,
    pub(crate) terms: Vec<TermInfo>,
    pub(crate) blocks: Vec<BlockInfo>,
    pub(crate) doc_ids: DocIdTable,
    pub(crate) sum_weights: Arc<LengthColumn>,
    pub(crate) term_counts: Arc<LengthColumn>,
    pub(crate) sections: SegmentSections,
    quantized: Mutex<Vec<(u32, Arc<LengthColumn>)>>,
}

/// An immutable batch of documents, made by an [`IndexBuilder`](crate::IndexBuilder) and
/// added to an [`Index`](crate::Index). Cloning is cheap (shared).
#[derive(Clone)]
pub struct Segment {
    pub(crate) inner: Arc<SegmentInner>,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("num_docs", &self.inner.num_docs)
            .field("num_terms", &self.inner.terms.len())
            .field("encoding", &self.inner.encoding)
            .finish()
    }
}

impl Segment {
    /// Number of documents, deleted or not.
    pub fn num_docs(&self) -> u32 {
        self.inner.num_docs
    }

    /// Number of distinct terms with postings.
    pub fn num_terms(&self) -> usize {
        self.inner.terms.len()
    }

    /// Number of postings.
    pub fn num_postings(&self) -> u64 {
        self.inner.terms.iter().map(|t| u64::from(t.df)).sum()
    }

    /// How weights are stored.
    pub fn weight_encoding(&self) -> WeightEncoding {
        self.inner.encoding
    }

    /// Validates sections and decodes the small tables. Every offset and length is checked
    /// here, so later reads index only into ranges proven to exist.
    pub(crate) fn from_sections(sections: SegmentSections) -> Result<Segment> {
        let corrupt = IndexError::corrupted;
        let mut meta = Reader::new(sections.meta.as_slice(), "segment header");
        let num_docs = meta.u32()?;
        let num_terms = meta.u32()? as usize;
        let num_blocks = meta.u32()? as usize;
        let encoding_tag = meta.u32()?;
        let scale = meta.f32()?;
        meta.finish()?;
        if num_docs > MAX_DOCS {
            return Err(corrupt("segment document count out of range"));
        }
        let encoding = match encoding_tag {
            0 => WeightEncoding::Float32,
            1 => WeightEncoding::Integer,
            2 if scale.is_finite() && scale > 0.0 => WeightEncoding::Quantized { scale },
            _ => return Err(corrupt("unknown weight encoding")),
        };

        // Doc lengths.
        let lengths = sections.doc_lengths.as_slice();
        if Some(lengths.len()) != (num_docs as usize).checked_mul(DOC_LENGTH_ENTRY_LEN) {
            return Err(corrupt(
                "doc length table size does not match document count",
            ));
        }
        let mut sum_per_doc = Vec::with_capacity(num_docs as usize);
        let mut count_per_doc = Vec::with_capacity(num_docs as usize);
        let mut r = Reader::new(lengths, "doc length table");
        for _ in 0..num_docs {
            let sum = r.f32()?;
            let count = r.u32()?;
            if !(sum.is_finite() && sum >= 0.0) {
                return Err(corrupt("document length is not finite and non-negative"));
            }
            sum_per_doc.push(sum);
            count_per_doc.push(count as f32);
        }

        // Term dictionary.
        if Some(sections.terms.len()) != num_terms.checked_mul(TERM_ENTRY_LEN) {
            return Err(corrupt("term dictionary size does not match term count"));
        }
        if Some(sections.blocks.len()) != num_blocks.checked_mul(BLOCK_ENTRY_LEN) {
            return Err(corrupt("block table size does not match block count"));
        }
        let mut terms = Vec::with_capacity(num_terms);
        let mut r = Reader::new(sections.terms.as_slice(), "term dictionary");
        let mut first_block = 0usize;
        for _ in 0..num_terms {
            let term = r.u32()?;
            let df = r.u32()?;
            if df == 0 || df > num_docs {
                return Err(corrupt("term document frequency out of range"));
            }
            if terms.last().is_some_and(|t: &TermInfo| t.term >= term) {
                return Err(corrupt("term dictionary is not strictly increasing"));
            }
            let nb = (df as usize).div_ceil(BLOCK_LEN);
            terms.push(TermInfo {
                term,
                df,
                first_block,
                num_blocks: nb,
            });
            first_block = first_block
                .checked_add(nb)
                .ok_or_else(|| corrupt("block count overflow"))?;
        }
        if first_block != num_blocks {
            return Err(corrupt("block count does not match the term dictionary"));
        }

        // Block table.
        let mut blocks = Vec::with_capacity(num_blocks);
        let mut sum_block_min = Vec::with_capacity(num_blocks);
        let mut count_block_min = Vec::with_capacity(num_blocks);
        let mut r = Reader::new(sections.blocks.as_slice(), "block table");
        let mut offset = 0usize;
        for t in &terms {
            let mut prev_last: Option<u32> = None;
            for b in 0..t.num_blocks {
                let last_doc = r.u32()?;
                let doc_bits = r.u8()?;
                let weight_bits = r.u8()?;
                let reserved = r.u16()?;
                let max_weight = r.f32()?;
                let min_sum = r.f32()?;
                let min_count = r.u32()?;
                let count = if b + 1 == t.num_blocks {
                    t.df as usize - BLOCK_LEN * b
                } else {
                    BLOCK_LEN
                };
                if reserved != 0 {
                    return Err(corrupt("reserved block field is not zero"));
                }
                if last_doc >= num_docs || prev_last.is_some_and(|p| last_doc <= p) {
                    return Err(corrupt("block doc ids out of order or out of range"));
                }
                // Strictly increasing ids need at least `count` distinct values.
                let first_possible = prev_last.map_or(0, |p| u64::from(p) + 1);
                if u64::from(last_doc) + 1 < first_possible + count as u64 {
                    return Err(corrupt("block has fewer doc ids than postings"));
                }
                let bounds_ok = max_weight.is_finite()
                    && max_weight > 0.0
                    && min_sum.is_finite()
                    && min_sum >= 0.0;
                if !bounds_ok {
                    return Err(corrupt("block bounds are not finite"));
                }
                let byte_len = codec::block_byte_len(count, doc_bits, weight_bits, encoding)
                    .ok_or_else(|| corrupt("block bit widths out of range"))?;
                blocks.push(BlockInfo {
                    last_doc,
                    prev_last,
                    count,
                    doc_bits,
                    weight_bits,
                    offset,
                    byte_len,
                    max_weight,
                });
                offset = offset
                    .checked_add(byte_len)
                    .ok_or_else(|| corrupt("postings size overflow"))?;
                sum_block_min.push(min_sum);
                count_block_min.push(min_count as f32);
                prev_last = Some(last_doc);
            }
        }
        r.finish()?;
        if offset != sections.postings.len() {
            return Err(corrupt("postings size does not match the block table"));
        }

        let doc_ids = parse_doc_ids(&sections.doc_ids, num_docs)?;
        Ok(Segment {
            inner: Arc::new(SegmentInner {
                num_docs,
                encoding,
                terms,
                blocks,
                doc_ids,
                sum_weights: Arc::new(LengthColumn {
                    per_doc: sum_per_doc,
                    block_min: sum_block_min,
                }),
                term_counts: Arc::new(LengthColumn {
                    per_doc: count_per_doc,
                    block_min: count_block_min,
                }),
                sections,
                quantized: Mutex::new(Vec::new()),
            }),
        })
    }
}

fn parse_doc_ids(bytes: &Bytes, num_docs: u32) -> Result<DocIdTable> {
    let corrupt = || IndexError::corrupted("document id table is inconsistent");
    let n = num_docs as usize;
    let offsets_len = (n + 1).checked_mul(4).ok_or_else(corrupt)?;
    let order_len = n.checked_mul(4).ok_or_else(corrupt)?;
    let offsets = bytes.slice(0, offsets_len).ok_or_else(corrupt)?;
    let order = bytes.slice(offsets_len, order_len).ok_or_else(corrupt)?;
    let data_start = offsets_len + order_len;
    let data = bytes
        .slice(
            data_start,
            bytes.len().checked_sub(data_start).ok_or_else(corrupt)?,
        )
        .ok_or_else(corrupt)?;
    let offs = offsets.as_slice();
    if u32_at(offs, 0) != Some(0) || u32_at(offs, n).map(|v| v as usize) != Some(data.len()) {
        return Err(corrupt());
    }
    for i in 0..n {
        let (a, b) = (u32_at(offs, i), u32_at(offs, i + 1));
        if a > b {
            return Err(corrupt());
        }
    }
    let table = DocIdTable {
        offsets,
        order,
        data,
        len: num_docs,
    };
    // Every id must be UTF-8, and the sort order strictly increasing, which also proves the
    // ids unique and the order a permutation.
    let ord = table.order.as_slice();
    let mut prev: Option<&str> = None;
    for i in 0..n {
        let local = u32_at(ord, i).ok_or_else(corrupt)?;
        let id = table.get(local).ok_or_else(corrupt)?;
        if prev.is_some_and(|p| p >= id) {
            return Err(corrupt());
        }
        prev = Some(id);
    }
    for local in 0..num_docs {
        table.get(local).ok_or_else(corrupt)?;
    }
    Ok(table)
}

impl SegmentInner {
    pub(crate) fn term_index(&self, term: u32) -> Option<usize> {
        self.terms.binary_search_by_key(&term, |t| t.term).ok()
    }

    /// Block `block`'s bytes and layout, checked against the postings section.
    fn block_bytes(&self, block: usize) -> Result<(&[u8], BlockLayout)> {
        let info = self.block_info(block)?;
        let data = self
            .sections
            .postings
            .as_slice()
            .get(info.offset..info.offset + info.byte_len)
            .ok_or_else(|| IndexError::corrupted("block outside the postings section"))?;
        let layout = BlockLayout {
            count: info.count,
            doc_bits: info.doc_bits,
            weight_bits: info.weight_bits,
            prev_last: info.prev_last,
            last_doc: info.last_doc,
        };
        Ok((data, layout))
    }

    /// Decodes block `block` into the buffers; returns the number of postings.
    pub(crate) fn decode_block(
        &self,
        block: usize,
        docs: &mut [u32; BLOCK_LEN],
        weights: &mut [f32; BLOCK_LEN],
    ) -> Result<usize> {
        let (data, layout) = self.block_bytes(block)?;
        let count = layout.count;
        codec::decode_block(data, layout, self.encoding, docs, weights)?;
        Ok(count)
    }

    /// Decodes only the doc ids of block `block`; returns the number of postings.
    pub(crate) fn decode_block_docs(
        &self,
        block: usize,
        docs: &mut [u32; BLOCK_LEN],
    ) -> Result<usize> {
        let (data, layout) = self.block_bytes(block)?;
        let count = layout.count;
        codec::decode_doc_part(data, layout, self.encoding, docs)?;
        Ok(count)
    }

    /// The header of block `block`, for [`weight_in`](Self::weight_in).
    pub(crate) fn block_info(&self, block: usize) -> Result<BlockInfo> {
        self.blocks
            .get(block)
            .copied()
            .ok_or_else(|| IndexError::corrupted("posting block: block index out of range"))
    }

    /// The weight of posting `i` of the block whose header is `info`, read in place
    /// without decoding the block, and validated as [`decode_block`](Self::decode_block)
    /// validates it. Apart from [`block_info`](Self::block_info) so that a caller reading
    /// many postings can fetch all their headers first.
    pub(crate) fn weight_in(&self, info: &BlockInfo, i: usize) -> Result<f32> {
        let corrupt = |what: &str| IndexError::corrupted(format!("posting block: {what}"));
        if i >= info.count {
            return Err(corrupt("posting outside its block"));
        }
        let start = info.offset + (info.count * info.doc_bits as usize).div_ceil(8);
        let data = self
            .sections
            .postings
            .as_slice()
            .get(start..info.offset + info.byte_len)
            .ok_or_else(|| corrupt("block outside the postings section"))?;
        let short = || corrupt("weight part too short");
        match self.encoding {
            WeightEncoding::Float32 => {
                let b = data.get(4 * i..4 * i + 4).ok_or_else(short)?;
                let w = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if w.is_finite() && w > 0.0 {
                    Ok(w)
                } else {
                    Err(corrupt("weight is not finite and positive"))
                }
            }
            WeightEncoding::Integer | WeightEncoding::Quantized { .. } => {
                let code = if info.count == BLOCK_LEN {
                    codec::packed4x_at(data, info.weight_bits, i)
                } else {
                    codec::packed_at(data, info.weight_bits, i)
                }
                .ok_or_else(short)?;
                if code >= codec::MAX_CODE {
                    return Err(corrupt("weight code out of range"));
                }
                Ok(codec::decode_code(code + 1, self.encoding))
            }
        }
    }

    /// The length column a scorer asks for; quantized lengths are computed from the
    /// postings on first use and cached per scale.
    pub(crate) fn length_column(&self, kind: DocLength) -> Result<Arc<LengthColumn>> {
        let scale = match kind {
            DocLength::SumOfWeights => return Ok(Arc::clone(&self.sum_weights)),
            DocLength::TermCount => return Ok(Arc::clone(&self.term_counts)),
            DocLength::SumOfQuantizedWeights { scale } => scale,
        };
        let key = scale.to_bits();
        // A poisoned lock only means another thread panicked while filling the cache;
        // the cached columns themselves are immutable, so keep using them.
        let mut cache = self.quantized.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, col)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(col));
        }
        let col = Arc::new(self.quantized_lengths(scale)?);
        cache.push((key, Arc::clone(&col)));
        Ok(col)
    }

    fn quantized_lengths(&self, scale: f32) -> Result<LengthColumn> {
        let mut docs = [0u32; BLOCK_LEN];
        let mut weights = [0f32; BLOCK_LEN];
        // Integer sums are exact in f64; converting once at the end matches summing the
        // rounded tfs of a document in any order.
        let mut per_doc = vec![0f64; self.num_docs as usize];
        for block in 0..self.blocks.len() {
            let n = self.decode_block(block, &mut docs, &mut weights)?;
            for (&d, &w) in docs[..n].iter().zip(&weights[..n]) {
                per_doc[d as usize] += f64::from(round_non_negative(w * scale));
            }
        }
        let per_doc: Vec<f32> = per_doc.into_iter().map(|v| v as f32).collect();
        let mut block_min = Vec::with_capacity(self.blocks.len());
        for block in 0..self.blocks.len() {
            let n = self.decode_block(block, &mut docs, &mut weights)?;
            let min = docs[..n]
                .iter()
                .map(|&d| per_doc[d as usize])
                .fold(f32::INFINITY, f32::min);
            block_min.push(min);
        }
        Ok(LengthColumn { per_doc, block_min })
    }
}
