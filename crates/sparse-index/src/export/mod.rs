//! Serving latent terms from other engines: exports to Anserini/Lucene impact indexes,
//! Elasticsearch/OpenSearch `rank_features` fields and CIFF, and CIFF import.
//!
//! Every scorer of this crate factorises as
//! `s(q, d) = Σ_t (query_factor(q_t) · idf(t)) · doc_factor(w_td, len_d, avg)`, so a plain
//! dot-product engine reproduces it when documents carry the **impact**
//! `idf(t) · doc_factor(w_td, …)` and queries the **weight** `query_factor(q_t)`
//! ([`document_impacts`], [`query_weights`]). Engines that want integers get
//! `round(x × scale)` ([`Quantizer`]); that rounding is the only approximation.
//!
//! Term ids become stable names ([`TermNames`]): `l<id>` for latent terms (`l0`, `l12345`),
//! the vocabulary's own words for lexical indexes.
//!
//! ```
//! use latent_terms_sparse_index::export::{self, Quantizer, TermNames};
//! use latent_terms_sparse_index::{Bm25, IndexBuilder, IndexConfig, Query, SparseVector};
//!
//! let mut b = IndexBuilder::new(IndexConfig::default())?;
//! b.add("d1", &SparseVector::new([(17, 0.8), (42, 0.1)])?)?;
//! b.add("d2", &SparseVector::new([(42, 0.9)])?)?;
//! let index = b.build()?;
//! let docs = export::document_impacts(&index, &Bm25::default())?;
//! let q = Quantizer::new(100.0)?;
//! assert_eq!(docs[0].id, "d1");
//! assert!(q.quantize(docs[0].impacts[0].1)? > 0);
//! assert_eq!(TermNames::for_index(&index).name(17)?, "l17");
//! let weights = export::query_weights(&Query::new([(17, 1.0)])?, &Bm25::default());
//! assert_eq!(weights.len(), 1);
//! # Ok::<(), latent_terms_sparse_index::IndexError>(())
//! ```

mod anserini;
mod ciff;
mod opensearch;
mod queries;

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

pub use anserini::{AnseriniExport, anserini_topic_line, write_anserini};
pub use ciff::{
    CiffDocRecord, CiffFile, CiffHeader, CiffPosting, CiffPostingsList, CiffSummary, ciff_to_index,
    import_ciff, index_to_ciff, read_ciff, read_ciff_file, write_ciff,
};
pub use opensearch::{OpenSearchExport, OpenSearchOptions, write_opensearch};
pub use queries::{WeightedQuery, read_weighted_queries};

use crate::codec::BLOCK_LEN;
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::scorer::{Scorer, TermStats};
use crate::vector::Query;
use crate::vocabulary::Vocabulary;

/// The name of latent term `id`: `l` followed by the decimal id (`l0`, `l12345`).
///
/// ```
/// use latent_terms_sparse_index::export::{latent_term_name, parse_latent_term_name};
/// assert_eq!(latent_term_name(12345), "l12345");
/// assert_eq!(parse_latent_term_name("l12345"), Some(12345));
/// assert_eq!(parse_latent_term_name("l012"), None); // one spelling per id
/// ```
pub fn latent_term_name(id: u32) -> String {
    format!("l{id}")
}

/// The id of a latent term name made by [`latent_term_name`], or `None` for any other
/// string (leading zeros, signs, overflow, other prefixes).
pub fn parse_latent_term_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('l')?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// How term ids are named in exported files.
///
/// ```
/// use latent_terms_sparse_index::Vocabulary;
/// use latent_terms_sparse_index::export::TermNames;
///
/// assert_eq!(TermNames::Latent.name(7)?, "l7");
/// assert_eq!(TermNames::Latent.id("l7"), Some(7));
/// let vocab = Vocabulary::from_terms(["cat", "dog"])?;
/// let names = TermNames::Vocabulary(&vocab);
/// assert_eq!(names.name(1)?, "dog");
/// assert_eq!(names.id("cat"), Some(0));
/// assert!(names.name(9).is_err());
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub enum TermNames<'a> {
    /// Latent terms: `l<id>`.
    Latent,
    /// Lexical terms: the vocabulary's strings.
    Vocabulary(&'a Vocabulary),
}

impl<'a> TermNames<'a> {
    /// The vocabulary's names if the index has one attached, latent names otherwise.
    pub fn for_index(index: &'a Index) -> Self {
        match index.vocabulary() {
            Some(v) => TermNames::Vocabulary(v),
            None => TermNames::Latent,
        }
    }

    /// The name of term `id`. Errors for an id the vocabulary does not have.
    pub fn name(&self, id: u32) -> Result<Cow<'a, str>> {
        match self {
            TermNames::Latent => Ok(Cow::Owned(latent_term_name(id))),
            TermNames::Vocabulary(v) => {
                v.term(id)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| IndexError::VocabularyMismatch {
                        term: id,
                        len: v.len(),
                    })
            }
        }
    }

    /// The id of a term name, if it names one.
    pub fn id(&self, name: &str) -> Option<u32> {
        match self {
            TermNames::Latent => parse_latent_term_name(name),
            TermNames::Vocabulary(v) => v.id(name),
        }
    }
}

/// Turns real-valued weights into the positive integers impact indexes store:
/// `round(weight × scale)` (halves away from zero), as Pyserini does for SPLADE with
/// scale 100. A weight that rounds to 0 is dropped by the exporters.
///
/// ```
/// use latent_terms_sparse_index::export::Quantizer;
/// let q = Quantizer::new(100.0)?;
/// assert_eq!(q.quantize(0.4242)?, 42);
/// assert_eq!(q.quantize(0.004)?, 0);
/// assert!(q.quantize(f32::NAN).is_err());
/// assert!(Quantizer::new(0.0).is_err());
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantizer {
    scale: f32,
}

/// Largest quantized value: CIFF stores `int32`, Lucene term frequencies are `int`.
pub const MAX_QUANTIZED: u32 = i32::MAX as u32;

impl Quantizer {
    /// A quantizer with multiplier `scale` (finite, > 0).
    pub fn new(scale: f32) -> Result<Self> {
        if scale.is_finite() && scale > 0.0 {
            Ok(Self { scale })
        } else {
            Err(IndexError::InvalidParameter {
                name: "scale",
                value: f64::from(scale),
                reason: "the quantization scale must be finite and > 0",
            })
        }
    }

    /// The multiplier.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `round(weight × scale)`; errors for a negative or non-finite weight or a result above
    /// [`MAX_QUANTIZED`] (lower the scale).
    pub fn quantize(&self, weight: f32) -> Result<u32> {
        let x = f64::from(weight) * f64::from(self.scale);
        if !(x.is_finite() && x >= 0.0) {
            return Err(IndexError::Export {
                what: format!("weight {weight} cannot be quantized (it must be finite and >= 0)"),
            });
        }
        let r = x.round();
        if r > f64::from(MAX_QUANTIZED) {
            return Err(IndexError::Export {
                what: format!(
                    "weight {weight} × scale {} exceeds 2^31 − 1; lower the scale",
                    self.scale
                ),
            });
        }
        Ok(r as u32)
    }

    /// Quantizes `(term, weight)` pairs, dropping those that round to 0.
    pub fn quantize_pairs(&self, pairs: &[(u32, f32)]) -> Result<Vec<(u32, u32)>> {
        let mut out = Vec::with_capacity(pairs.len());
        for &(t, w) in pairs {
            let v = self.quantize(w)?;
            if v > 0 {
                out.push((t, v));
            }
        }
        Ok(out)
    }
}

/// One live document with its impacts: `(term, idf(term) · doc_factor)` in increasing term
/// order, only positive finite values.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpactDocument {
    /// External document id.
    pub id: String,
    /// `(term id, impact)`, increasing term id.
    pub impacts: Vec<(u32, f32)>,
}

/// Calls `f(term, doc, weight, doc_length)` for every posting of a live document, term by
/// term within each segment, segments in order. `doc` is the internal id.
pub(crate) fn for_each_live_posting<S: Scorer + ?Sized>(
    index: &Index,
    scorer: &S,
    mut f: impl FnMut(u32, u32, f32, f32) -> Result<()>,
) -> Result<()> {
    let kind = scorer.doc_length();
    let mut docs = [0u32; BLOCK_LEN];
    let mut weights = [0f32; BLOCK_LEN];
    for entry in &index.segments {
        let inner = &entry.segment.inner;
        let lengths = inner.length_column(kind)?;
        for t in &inner.terms {
            for block in t.first_block..t.first_block + t.num_blocks {
                let n = inner.decode_block(block, &mut docs, &mut weights)?;
                for (&d, &w) in docs[..n].iter().zip(&weights[..n]) {
                    if entry.deletes.contains(d) {
                        continue;
                    }
                    let len =
                        lengths.per_doc.get(d as usize).copied().ok_or_else(|| {
                            IndexError::corrupted("document length column too short")
                        })?;
                    f(t.term, entry.base + d, w, len)?;
                }
            }
        }
    }
    Ok(())
}

/// The impacts of every live document under `scorer`, in internal id order:
/// `impact(t, d) = idf(t) · doc_factor(w_td, len_d, avg_len)`, so that
/// `score(q, d) = Σ_t query_factor(q_t) · impact(t, d)` (up to f32 rounding of the
/// reassociated product). Non-positive impacts (negative idf of CL-SR's released-code
/// variant) are left out: a dot-product engine cannot store them.
///
/// Needs memory for all postings at once (8 bytes each), since the index is term-major
/// and documents are written one by one.
pub fn document_impacts<S: Scorer + ?Sized>(
    index: &Index,
    scorer: &S,
) -> Result<Vec<ImpactDocument>> {
    let stats = index.collection_stats(scorer.doc_length())?;
    let avg = stats.avg_doc_length;
    let mut per_doc: Vec<Vec<(u32, f32)>> = vec![Vec::new(); index.max_doc() as usize];
    let mut current: Option<(u32, f32)> = None;
    for_each_live_posting(index, scorer, |term, doc, weight, len| {
        let idf = match current {
            Some((t, idf)) if t == term => idf,
            _ => {
                let doc_freq = index.doc_freq(term)?;
                let idf = scorer.idf(&TermStats { doc_freq }, &stats);
                current = Some((term, idf));
                idf
            }
        };
        let impact = idf * scorer.doc_factor(weight, len, avg);
        if impact.is_finite() && impact > 0.0 {
            per_doc[doc as usize].push((term, impact));
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(index.num_docs() as usize);
    for (doc, mut impacts) in per_doc.into_iter().enumerate() {
        let doc = doc as u32;
        if index.is_deleted(doc) {
            continue;
        }
        // Segments are visited in order and terms increase within a segment, and every
        // document lives in exactly one segment, so this is already sorted; keep it cheap
        // but certain.
        impacts.sort_unstable_by_key(|&(t, _)| t);
        let id = index
            .external_id(doc)
            .ok_or_else(|| IndexError::corrupted("document id missing"))?;
        out.push(ImpactDocument {
            id: id.to_owned(),
            impacts,
        });
    }
    Ok(out)
}

/// The query side of the factorisation: `(term, query_factor(weight))` for every term whose
/// factor is positive and finite.
pub fn query_weights<S: Scorer + ?Sized>(query: &Query, scorer: &S) -> Vec<(u32, f32)> {
    query
        .iter()
        .map(|(t, w)| (t, scorer.query_factor(w)))
        .filter(|&(_, f)| f.is_finite() && f > 0.0)
        .collect()
}

/// The index a dot-product engine holds after an export: every live document with its
/// impacts under `scorer` quantized by `quantizer` as exact integer weights
/// ([`WeightEncoding::Integer`](crate::WeightEncoding::Integer), so at most 2^21), same
/// external ids, same term ids, the vocabulary kept. Searching it with
/// [`DotProduct`](crate::DotProduct) and [`quantized_query`] computes exactly the integer
/// scores Anserini's `-impact` search and CIFF-fed engines compute over the exported files.
///
/// ```
/// use latent_terms_sparse_index::export::{Quantizer, quantized_impact_index, quantized_query};
/// use latent_terms_sparse_index::{ClSr, DotProduct, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// for (i, w) in [0.9f32, 0.5, 0.1, 0.7].iter().enumerate() {
///     b.add(format!("d{i}"), &SparseVector::new([(3, *w), (10 + i as u32, 1.0)])?)?;
/// }
/// // CL-SR's idf ln(|D| / (1 + df)) needs the term to be rare: add documents without it.
/// for i in 0..8 {
///     b.add(format!("other{i}"), &SparseVector::new([(20 + i, 1.0)])?)?;
/// }
/// let index = b.build()?;
/// let q = Quantizer::new(100.0)?;
/// let served = quantized_impact_index(&index, &ClSr::default(), q)?;
/// let query = quantized_query(&Query::new([(3, 1.0)])?, &ClSr::default(), q)?;
/// let hits = served.search(&query, &DotProduct, 1, &SearchOptions::default())?;
/// assert_eq!(served.external_id(hits[0].doc), Some("d0"));
/// assert_eq!(hits[0].score.fract(), 0.0);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn quantized_impact_index<S: Scorer + ?Sized>(
    index: &Index,
    scorer: &S,
    quantizer: Quantizer,
) -> Result<Index> {
    let docs = document_impacts(index, scorer)?;
    let mut builder = crate::IndexBuilder::new(crate::IndexConfig::lexical())?;
    for doc in docs {
        let pairs = quantizer.quantize_pairs(&doc.impacts)?;
        let vector = crate::SparseVector::new(pairs.into_iter().map(|(t, v)| (t, v as f32)))?;
        builder.add(doc.id, &vector)?;
    }
    let mut out = builder.build()?;
    if let Some(v) = index.vocabulary() {
        out.set_vocabulary(v.clone())?;
    }
    Ok(out)
}

/// The value Lucene's `FeatureField` (the `rank_features` field of Elasticsearch and
/// OpenSearch) stores for `x > 0`: the float's top 17 bits, i.e. 9 significant bits,
/// truncated. Integers up to 512 survive exactly; other values lose less than 2^-8
/// relative. Checked against Lucene itself with `scripts/FeatureFieldPrecision.java`.
///
/// ```
/// use latent_terms_sparse_index::export::lucene_feature_value;
/// assert_eq!(lucene_feature_value(512.0), 512.0);
/// assert_eq!(lucene_feature_value(513.0), 512.0);
/// assert_eq!(lucene_feature_value(1475.0), 1472.0);
/// ```
pub fn lucene_feature_value(x: f32) -> f32 {
    f32::from_bits((x.to_bits() >> 15) << 15)
}

/// What an Elasticsearch/OpenSearch `rank_features` field holds after
/// [`write_opensearch`] with the same settings: impacts under `scorer`, quantized by
/// `quantizer` if given, then truncated by [`lucene_feature_value`], as f32 weights. Search
/// it with [`DotProduct`](crate::DotProduct) and [`quantized_query`] (or
/// [`query_weights`] for float boosts) to see the ranking the engine's linear
/// `rank_feature` clauses compute, up to f32 summation order.
pub fn feature_field_index<S: Scorer + ?Sized>(
    index: &Index,
    scorer: &S,
    quantizer: Option<Quantizer>,
) -> Result<Index> {
    let docs = document_impacts(index, scorer)?;
    let mut builder = crate::IndexBuilder::new(crate::IndexConfig::default())?;
    for doc in docs {
        let mut pairs = Vec::with_capacity(doc.impacts.len());
        for (t, x) in doc.impacts {
            let v = match quantizer {
                Some(q) => q.quantize(x)? as f32,
                None => x,
            };
            if v > 0.0 && v.is_normal() {
                pairs.push((t, lucene_feature_value(v)));
            }
        }
        builder.add(doc.id, &crate::SparseVector::new(pairs)?)?;
    }
    let mut out = builder.build()?;
    if let Some(v) = index.vocabulary() {
        out.set_vocabulary(v.clone())?;
    }
    Ok(out)
}

/// The query an engine receives for `query`: `round(query_factor(w) × scale)` per term,
/// zeros dropped, as integer weights.
pub fn quantized_query<S: Scorer + ?Sized>(
    query: &Query,
    scorer: &S,
    quantizer: Quantizer,
) -> Result<Query> {
    let pairs = quantizer.quantize_pairs(&query_weights(query, scorer))?;
    Query::new(pairs.into_iter().map(|(t, v)| (t, v as f32)))
}

/// Writes a file atomically: `fill` writes into a buffered temporary file in the same
/// directory, which is fsynced and renamed over `path`.
pub(crate) fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    crate::format::write_atomically(path, |w| Ok(fill(w).map(|()| 0)))
}

/// `io::Error` → `IndexError::Io` for `path`, for `?` inside writers.
pub(crate) fn io_at(path: &Path) -> impl Fn(io::Error) -> IndexError + '_ {
    move |e| IndexError::io(path, e)
}

/// A JSON string literal (quotes and escapes included).
pub(crate) fn json_string(s: &str) -> String {
    // Serialising a str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// A JSON object from already-encoded values, keys in the given order (independent of
/// serde_json's map ordering features).
pub(crate) fn json_object<'a>(entries: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&v);
    }
    out.push('}');
    out
}

/// Creates `dir` (and parents) if missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bm25, ClSr, DotProduct, IndexBuilder, IndexConfig, SearchOptions, SparseVector};

    fn index() -> Index {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        b.add(
            "a",
            &SparseVector::new([(1, 0.5), (3, 1.5)]).expect("valid"),
        )
        .expect("added");
        b.add(
            "b",
            &SparseVector::new([(3, 0.25), (9, 2.0)]).expect("valid"),
        )
        .expect("added");
        b.add("c", &SparseVector::new([(1, 1.0)]).expect("valid"))
            .expect("added");
        // Filler documents keep every idf positive (CL-SR's paper idf is ln(N / (1 + df))).
        for i in 0..6 {
            b.add(
                format!("f{i}"),
                &SparseVector::new([(50 + i, 1.0)]).expect("valid"),
            )
            .expect("added");
        }
        let mut index = b.build().expect("built");
        index.delete("c");
        index
    }

    #[test]
    fn latent_names_round_trip_and_reject_other_spellings() {
        for id in [0, 1, 9, 10, 12345, u32::MAX] {
            assert_eq!(parse_latent_term_name(&latent_term_name(id)), Some(id));
        }
        for bad in [
            "",
            "l",
            "l-1",
            "l+1",
            "L1",
            "l01",
            "l4294967296",
            "x1",
            "l1 ",
        ] {
            assert_eq!(parse_latent_term_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn impacts_reproduce_every_scorer_as_a_dot_product() {
        let index = index();
        let query = Query::new([(1, 0.7), (3, 1.0), (9, 0.2)]).expect("valid");
        let check = |scorer: &dyn Scorer| {
            let docs = document_impacts(&index, scorer).expect("impacts");
            assert_eq!(docs.len(), 8, "deleted documents are left out");
            let q = query_weights(&query, scorer);
            let hits = index
                .search(&query, scorer, 10, &SearchOptions::default())
                .expect("search");
            for hit in hits {
                let id = index.external_id(hit.doc).expect("id");
                let doc = docs.iter().find(|d| d.id == id).expect("exported");
                let dot: f32 = q
                    .iter()
                    .filter_map(|&(t, qw)| {
                        doc.impacts
                            .iter()
                            .find(|&&(dt, _)| dt == t)
                            .map(|&(_, i)| qw * i)
                    })
                    .sum();
                assert!(
                    (dot - hit.score).abs() <= 1e-5 * hit.score.abs().max(1.0),
                    "{id}: {dot} vs {} ({doc:?}, {q:?})",
                    hit.score
                );
            }
        };
        check(&Bm25::default());
        check(&ClSr::default());
        check(&DotProduct);
    }

    #[test]
    fn non_positive_impacts_are_left_out() {
        // Two documents: CL-SR's paper idf ln(2 / (1 + df)) is 0 or negative for every term.
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        b.add("a", &SparseVector::new([(1, 0.5)]).expect("valid"))
            .expect("added");
        b.add(
            "b",
            &SparseVector::new([(1, 0.5), (2, 1.0)]).expect("valid"),
        )
        .expect("added");
        let index = b.build().expect("built");
        let docs = document_impacts(&index, &ClSr::default()).expect("impacts");
        assert!(docs.iter().all(|d| d.impacts.is_empty()));
        let docs = document_impacts(&index, &Bm25::default()).expect("impacts");
        assert_eq!(docs[1].impacts.len(), 2);
    }

    #[test]
    fn feature_values_match_lucene() {
        // Printed by scripts/FeatureFieldPrecision.java with Anserini 1.7.1's Lucene.
        for (x, lucene) in [
            (1.0f32, 1.0f32),
            (42.0, 42.0),
            (511.0, 511.0),
            (512.0, 512.0),
            (513.0, 512.0),
            (803.0, 802.0),
            (1249.0, 1248.0),
            (1475.0, 1472.0),
            (0.42, 0.41992188),
            (0.1, 0.099853516),
        ] {
            assert_eq!(lucene_feature_value(x), lucene, "{x}");
        }
    }

    #[test]
    fn quantizer_rounds_half_away_and_refuses_overflow() {
        let q = Quantizer::new(10.0).expect("valid");
        assert_eq!(q.quantize(0.25).expect("ok"), 3);
        assert_eq!(q.quantize(0.0).expect("ok"), 0);
        assert!(q.quantize(-1.0).is_err());
        assert!(q.quantize(f32::MAX).is_err());
        assert_eq!(
            q.quantize_pairs(&[(1, 0.01), (2, 0.5)]).expect("ok"),
            vec![(2, 5)]
        );
    }
}
