//! CIFF, the Common Index File Format (Lin et al., SIGIR 2020): export of an index and import
//! of CIFF files written by Anserini, PISA or this crate.
//!
//! The messages below are the official schema (`proto/common-index-file-format.proto` in
//! this crate, package `io.osirrc.ciff`), derived with prost's macros field for field, so no
//! `protoc` binary or build script is involved.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read};
use std::path::Path;

use prost::Message;

use super::{Quantizer, TermNames, document_impacts, io_at, parse_latent_term_name, write_file};
use crate::builder::{IndexBuilder, IndexConfig};
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::scorer::Scorer;
use crate::vector::SparseVector;
use crate::vocabulary::Vocabulary;

/// The CIFF version this module reads and writes.
const CIFF_VERSION: i32 = 1;

/// CIFF `Header`: always the first message of a file.
#[derive(Clone, PartialEq, Message)]
pub struct CiffHeader {
    /// Format version (1).
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// Number of `PostingsList` messages that follow.
    #[prost(int32, tag = "2")]
    pub num_postings_lists: i32,
    /// Number of `DocRecord` messages that follow the postings lists.
    #[prost(int32, tag = "3")]
    pub num_docs: i32,
    /// Vocabulary size of the collection (may exceed `num_postings_lists`).
    #[prost(int32, tag = "4")]
    pub total_postings_lists: i32,
    /// Documents in the collection (may exceed `num_docs`).
    #[prost(int32, tag = "5")]
    pub total_docs: i32,
    /// Sum of all document lengths.
    #[prost(int64, tag = "6")]
    pub total_terms_in_collection: i64,
    /// Average document length.
    #[prost(double, tag = "7")]
    pub average_doclength: f64,
    /// Free text for humans.
    #[prost(string, tag = "8")]
    pub description: String,
}

/// CIFF `Posting`. `docid` is gap-encoded within its list: the first posting holds the
/// docid, each later one the difference from the previous docid.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct CiffPosting {
    /// Docid gap (absolute for the first posting of a list).
    #[prost(int32, tag = "1")]
    pub docid: i32,
    /// Term frequency, or an integer impact.
    #[prost(int32, tag = "2")]
    pub tf: i32,
}

/// CIFF `PostingsList`: one term's postings in increasing docid order.
#[derive(Clone, PartialEq, Message)]
pub struct CiffPostingsList {
    /// The term.
    #[prost(string, tag = "1")]
    pub term: String,
    /// Document frequency (number of postings).
    #[prost(int64, tag = "2")]
    pub df: i64,
    /// Collection frequency (sum of tfs).
    #[prost(int64, tag = "3")]
    pub cf: i64,
    /// The postings.
    #[prost(message, repeated, tag = "4")]
    pub postings: Vec<CiffPosting>,
}

/// CIFF `DocRecord`: maps a docid to the collection's document id.
#[derive(Clone, PartialEq, Message)]
pub struct CiffDocRecord {
    /// The docid used in the postings lists.
    #[prost(int32, tag = "1")]
    pub docid: i32,
    /// The document's id in the collection.
    #[prost(string, tag = "2")]
    pub collection_docid: String,
    /// The document's length.
    #[prost(int32, tag = "3")]
    pub doclength: i32,
}

/// A whole CIFF file: header, postings lists and document records, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CiffFile {
    /// The header.
    pub header: CiffHeader,
    /// The postings lists, in file order.
    pub postings_lists: Vec<CiffPostingsList>,
    /// The document records, in file order.
    pub doc_records: Vec<CiffDocRecord>,
}

/// What [`write_ciff`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CiffSummary {
    /// Document records.
    pub documents: u64,
    /// Postings lists (terms).
    pub postings_lists: u64,
    /// Postings.
    pub postings: u64,
    /// Postings whose value quantized to 0 (left out).
    pub dropped_postings: u64,
}

fn invalid(what: impl Into<String>) -> IndexError {
    IndexError::InvalidCiff { what: what.into() }
}

fn to_i32(value: u64, what: &str) -> Result<i32> {
    i32::try_from(value).map_err(|_| IndexError::Export {
        what: format!("{what} is {value}, more than CIFF's int32 can hold"),
    })
}

/// Builds the CIFF messages of `index`: live documents get dense docids `0..n` in internal
/// id order; each posting's `tf` is `round(idf · doc_factor × scale)` under `scorer`, or,
/// without a quantizer, that value itself, which must then be a whole number (use
/// [`DotProduct`](crate::DotProduct) on an integer index, e.g. a lexical one, to export its
/// term frequencies exactly). Terms are named by [`TermNames::for_index`] and sorted
/// bytewise, as Lucene's term dictionary is; a document's length is the sum of its
/// exported `tf`s.
///
/// ```
/// use latent_terms_sparse_index::export::{Quantizer, index_to_ciff};
/// use latent_terms_sparse_index::{DotProduct, IndexBuilder, IndexConfig, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// b.add("a", &SparseVector::new([(5, 0.25), (40, 1.0)])?)?;
/// b.add("b", &SparseVector::new([(5, 0.5)])?)?;
/// let index = b.build()?;
/// let (file, _) = index_to_ciff(&index, &DotProduct, Some(Quantizer::new(100.0)?), "demo")?;
/// // "l40" < "l5" bytewise; docids are gaps: b is docid 0 + 1.
/// assert_eq!(file.postings_lists[0].term, "l40");
/// let l5 = &file.postings_lists[1];
/// assert_eq!(l5.postings.iter().map(|p| (p.docid, p.tf)).collect::<Vec<_>>(), [(0, 25), (1, 50)]);
/// assert_eq!(file.doc_records[0].doclength, 125);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn index_to_ciff(
    index: &Index,
    scorer: &dyn Scorer,
    quantizer: Option<Quantizer>,
    description: &str,
) -> Result<(CiffFile, CiffSummary)> {
    let names = TermNames::for_index(index);
    let docs = document_impacts(index, scorer)?;
    let mut lists: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    let mut name_cache: HashMap<u32, String> = HashMap::new();
    let mut records = Vec::with_capacity(docs.len());
    let mut summary = CiffSummary {
        documents: 0,
        postings_lists: 0,
        postings: 0,
        dropped_postings: 0,
    };
    let mut total_terms = 0u64;
    for (docid, doc) in docs.iter().enumerate() {
        let docid = u32::try_from(docid)
            .ok()
            .filter(|&d| d <= i32::MAX as u32)
            .ok_or_else(|| IndexError::Export {
                what: "more documents than CIFF's int32 docids can number".into(),
            })?;
        let mut length = 0u64;
        for &(term, impact) in &doc.impacts {
            let tf = match quantizer {
                Some(q) => q.quantize(impact)?,
                None if impact.fract() == 0.0 && impact <= super::MAX_QUANTIZED as f32 => {
                    impact as u32
                }
                None => {
                    return Err(IndexError::Export {
                        what: format!(
                            "term {term} of document {:?} has weight {impact}, which is not a whole number; give a quantization scale",
                            doc.id
                        ),
                    });
                }
            };
            if tf == 0 {
                summary.dropped_postings += 1;
                continue;
            }
            let name = match name_cache.get(&term) {
                Some(n) => n.clone(),
                None => {
                    let n = names.name(term)?.into_owned();
                    name_cache.insert(term, n.clone());
                    n
                }
            };
            lists.entry(name).or_default().push((docid, tf));
            length += u64::from(tf);
            summary.postings += 1;
        }
        total_terms += length;
        records.push(CiffDocRecord {
            docid: docid as i32,
            collection_docid: doc.id.clone(),
            doclength: to_i32(length, "a document length")?,
        });
        summary.documents += 1;
    }
    let mut postings_lists = Vec::with_capacity(lists.len());
    for (term, postings) in lists {
        let mut prev = None;
        let mut cf = 0i64;
        let postings: Vec<CiffPosting> = postings
            .into_iter()
            .map(|(doc, tf)| {
                let gap = match prev {
                    Some(p) => doc - p,
                    None => doc,
                };
                prev = Some(doc);
                cf += i64::from(tf);
                CiffPosting {
                    docid: gap as i32,
                    tf: tf as i32,
                }
            })
            .collect();
        postings_lists.push(CiffPostingsList {
            term,
            df: postings.len() as i64,
            cf,
            postings,
        });
    }
    summary.postings_lists = postings_lists.len() as u64;
    let num_docs = to_i32(records.len() as u64, "the number of documents")?;
    let num_lists = to_i32(postings_lists.len() as u64, "the number of postings lists")?;
    let header = CiffHeader {
        version: CIFF_VERSION,
        num_postings_lists: num_lists,
        num_docs,
        total_postings_lists: num_lists,
        total_docs: num_docs,
        total_terms_in_collection: i64::try_from(total_terms).unwrap_or(i64::MAX),
        average_doclength: if records.is_empty() {
            0.0
        } else {
            total_terms as f64 / records.len() as f64
        },
        description: description.to_owned(),
    };
    Ok((
        CiffFile {
            header,
            postings_lists,
            doc_records: records,
        },
        summary,
    ))
}

impl CiffFile {
    /// The file's bytes: every message length-delimited, header first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot run out of space.
        let _ = self.header.encode_length_delimited(&mut out);
        for l in &self.postings_lists {
            let _ = l.encode_length_delimited(&mut out);
        }
        for r in &self.doc_records {
            let _ = r.encode_length_delimited(&mut out);
        }
        out
    }
}

/// Exports `index` as a CIFF file at `path` (written atomically); see [`index_to_ciff`]
/// for the docids, terms and `tf` values.
///
/// ```
/// use latent_terms_sparse_index::export::{import_ciff, write_ciff};
/// use latent_terms_sparse_index::{DotProduct, IndexBuilder, IndexConfig, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::lexical())?;
/// b.add("d1", &SparseVector::new([(3, 2.0), (12, 1.0)])?)?;
/// b.add("d2", &SparseVector::new([(3, 5.0)])?)?;
/// let index = b.build()?;
/// let tmp = tempfile::tempdir().unwrap();
/// let path = tmp.path().join("doc.ciff");
/// let summary = write_ciff(&index, &DotProduct, None, "example", &path)?;
/// assert_eq!((summary.documents, summary.postings_lists, summary.postings), (2, 2, 3));
/// let back = import_ciff(&path)?;
/// assert_eq!(back.postings(3)?, index.postings(3)?);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn write_ciff(
    index: &Index,
    scorer: &dyn Scorer,
    quantizer: Option<Quantizer>,
    description: &str,
    path: &Path,
) -> Result<CiffSummary> {
    let (file, summary) = index_to_ciff(index, scorer, quantizer, description)?;
    let bytes = file.to_bytes();
    write_file(path, |w| w.write_all(&bytes).map_err(io_at(path)))?;
    Ok(summary)
}

/// Reads a varint length prefix; `None` at a clean end of input.
fn read_length<R: Read>(reader: &mut R) -> Result<Option<u64>> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        let n = reader
            .read(&mut byte)
            .map_err(|e| invalid(format!("read failed: {e}")))?;
        if n == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(invalid("truncated length prefix"))
            };
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(invalid("length prefix longer than 10 bytes"))
}

fn read_message<M: Message + Default, R: Read>(reader: &mut R, what: &str) -> Result<M> {
    let len =
        read_length(reader)?.ok_or_else(|| invalid(format!("the file ends before {what}")))?;
    let mut buf = Vec::new();
    // `take` bounds the read, so a huge claimed length only costs what the input holds.
    reader
        .take(len)
        .read_to_end(&mut buf)
        .map_err(|e| invalid(format!("read failed: {e}")))?;
    if buf.len() as u64 != len {
        return Err(invalid(format!("the file ends inside {what}")));
    }
    M::decode(buf.as_slice()).map_err(|e| invalid(format!("{what}: {e}")))
}

/// Reads a whole CIFF file: the header, exactly `num_postings_lists` postings lists and
/// `num_docs` document records, and nothing after them. Structure only; [`ciff_to_index`]
/// checks the content. Memory grows with the messages actually present, never with the
/// counts a header claims.
///
/// ```
/// use latent_terms_sparse_index::export::{ciff_to_index, index_to_ciff, read_ciff};
/// use latent_terms_sparse_index::{DotProduct, IndexBuilder, IndexConfig, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::lexical())?;
/// b.add("a", &SparseVector::new([(7, 3.0)])?)?;
/// let (file, _) = index_to_ciff(&b.build()?, &DotProduct, None, "")?;
/// let bytes = file.to_bytes();
/// assert_eq!(read_ciff(bytes.as_slice())?, file);
/// assert!(read_ciff(&bytes[..bytes.len() - 1]).is_err());
/// let index = ciff_to_index(&file)?;
/// assert_eq!(index.postings(7)?, vec![(0, 3.0)]);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn read_ciff<R: Read>(reader: R) -> Result<CiffFile> {
    let mut reader = BufReader::new(reader);
    let header: CiffHeader = read_message(&mut reader, "the header")?;
    if header.version != CIFF_VERSION {
        return Err(invalid(format!(
            "version {} (this build reads version {CIFF_VERSION})",
            header.version
        )));
    }
    if header.num_postings_lists < 0 || header.num_docs < 0 {
        return Err(invalid("negative message counts in the header"));
    }
    // Vectors grow with what is actually read, never with what the header claims.
    let mut postings_lists = Vec::new();
    for i in 0..header.num_postings_lists {
        postings_lists.push(read_message(&mut reader, &format!("postings list {i}"))?);
    }
    let mut doc_records = Vec::new();
    for i in 0..header.num_docs {
        doc_records.push(read_message(&mut reader, &format!("document record {i}"))?);
    }
    if read_length(&mut reader)?.is_some() {
        return Err(invalid(
            "data after the last document record the header announces",
        ));
    }
    Ok(CiffFile {
        header,
        postings_lists,
        doc_records,
    })
}

/// Builds an index from CIFF content, so indexes made by Anserini or PISA can be scored by
/// this crate's scorers. Documents keep the file's docid order and their
/// `collection_docid`s; `tf`s become exact integer weights
/// ([`WeightEncoding::Integer`](crate::WeightEncoding::Integer), at most 2^21). If every
/// term is a latent term name (`l<id>`), term ids are those ids and no vocabulary is
/// attached; otherwise term `i` of the file gets id `i` and the terms become the attached
/// [`Vocabulary`]. Document lengths are recomputed from the postings (CIFF's `doclength` is
/// not used), so BM25 normalises by the sum of the exported `tf`s.
///
/// Errors (never panics) on duplicate terms or docids, docids out of range or not
/// increasing, `df` disagreeing with the postings, non-positive `tf`s, and duplicate
/// collection ids.
pub fn ciff_to_index(file: &CiffFile) -> Result<Index> {
    let num_docs = file.doc_records.len();
    // Document records: docid → collection id.
    let mut ids: Vec<Option<&str>> = vec![None; num_docs];
    for r in &file.doc_records {
        let slot = usize::try_from(r.docid)
            .ok()
            .and_then(|d| ids.get_mut(d))
            .ok_or_else(|| invalid(format!("document record docid {} out of range", r.docid)))?;
        if slot.is_some() {
            return Err(invalid(format!(
                "docid {} has two document records",
                r.docid
            )));
        }
        *slot = Some(r.collection_docid.as_str());
    }
    let latent = file
        .postings_lists
        .iter()
        .all(|l| parse_latent_term_name(&l.term).is_some());
    let mut vocabulary = Vocabulary::new();
    let mut per_doc: Vec<Vec<(u32, f32)>> = vec![Vec::new(); num_docs];
    let mut seen_latent = std::collections::HashSet::new();
    for (i, list) in file.postings_lists.iter().enumerate() {
        let term = if latent {
            let id = parse_latent_term_name(&list.term).unwrap_or_default();
            if !seen_latent.insert(id) {
                return Err(invalid(format!("term {:?} is given twice", list.term)));
            }
            id
        } else {
            if vocabulary.id(&list.term).is_some() {
                return Err(invalid(format!("term {:?} is given twice", list.term)));
            }
            vocabulary.get_or_insert(&list.term)?
        };
        if list.df != list.postings.len() as i64 {
            return Err(invalid(format!(
                "postings list {i} ({:?}) has df {} but {} postings",
                list.term,
                list.df,
                list.postings.len()
            )));
        }
        let mut doc: i64 = -1;
        for (j, p) in list.postings.iter().enumerate() {
            if p.docid < 0 || (j > 0 && p.docid == 0) {
                return Err(invalid(format!(
                    "postings list {:?}: docids must increase (gap {} at posting {j})",
                    list.term, p.docid
                )));
            }
            doc = if j == 0 {
                i64::from(p.docid)
            } else {
                doc + i64::from(p.docid)
            };
            let slot = usize::try_from(doc)
                .ok()
                .and_then(|d| per_doc.get_mut(d))
                .ok_or_else(|| {
                    invalid(format!(
                        "postings list {:?}: docid {doc} has no document record",
                        list.term
                    ))
                })?;
            if p.tf <= 0 {
                return Err(invalid(format!(
                    "postings list {:?}: tf {} at docid {doc} (must be > 0)",
                    list.term, p.tf
                )));
            }
            slot.push((term, p.tf as f32));
        }
    }
    let mut builder = IndexBuilder::new(IndexConfig::lexical())?;
    for (docid, (id, terms)) in ids.into_iter().zip(per_doc).enumerate() {
        let id = id.ok_or_else(|| invalid(format!("docid {docid} has no document record")))?;
        let vector = SparseVector::new(terms)?;
        builder.add(id, &vector)?;
    }
    let mut index = builder.build()?;
    if !latent {
        index.set_vocabulary(vocabulary)?;
    }
    Ok(index)
}

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the CIFF file at `path` ([`read_ciff`]), plain or gzip-compressed. A file that
/// starts with the gzip magic bytes is decompressed whatever its name, through
/// [`flate2::read::MultiGzDecoder`], so every member of a multi-member `.gz` (as written by
/// `pigz`, or by concatenating `.gz` files) is read, not just the first. No plain CIFF file
/// starts with those bytes: its first byte is the header's length and the second a field
/// tag.
///
/// ```
/// use std::io::Write;
/// use latent_terms_sparse_index::export::{index_to_ciff, read_ciff_file};
/// use latent_terms_sparse_index::{DotProduct, IndexBuilder, IndexConfig, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// b.add("a", &SparseVector::new([(7, 3.0)])?)?;
/// let (file, _) = index_to_ciff(&b.build()?, &DotProduct, None, "")?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("index.ciff.gz");
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
/// gz.write_all(&file.to_bytes())?;
/// std::fs::write(&path, gz.finish()?)?;
/// assert_eq!(read_ciff_file(&path)?, file);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_ciff_file(path: impl AsRef<Path>) -> Result<CiffFile> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path).map_err(|e| IndexError::io(path, e))?;
    let mut magic = [0u8; 2];
    let mut have = 0;
    while have < magic.len() {
        match file.read(&mut magic[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IndexError::io(path, e)),
        }
    }
    let reader = std::io::Cursor::new(magic[..have].to_vec()).chain(file);
    if magic[..have] == GZIP_MAGIC {
        read_ciff(flate2::read::MultiGzDecoder::new(reader))
    } else {
        read_ciff(reader)
    }
}

/// Reads the CIFF file at `path`, plain or gzip-compressed, and builds an index from it
/// ([`read_ciff_file`] + [`ciff_to_index`]).
pub fn import_ciff(path: impl AsRef<Path>) -> Result<Index> {
    ciff_to_index(&read_ciff_file(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Analyzer, DotProduct, Vocabulary};
    use proptest::prelude::*;
    use std::fs;

    /// Every live posting by (term name, external id) → weight.
    fn postings_by_name(index: &Index) -> BTreeMap<(String, String), f32> {
        let names = TermNames::for_index(index);
        let mut out = BTreeMap::new();
        for term in index.term_ids() {
            for (doc, w) in index.postings(term).expect("postings") {
                let id = index.external_id(doc).expect("id").to_owned();
                out.insert((names.name(term).expect("named").into_owned(), id), w);
            }
        }
        out
    }

    fn live_ids(index: &Index) -> Vec<String> {
        (0..index.max_doc())
            .filter(|&d| !index.is_deleted(d))
            .filter_map(|d| index.external_id(d).map(str::to_owned))
            .collect()
    }

    proptest! {
        #[test]
        fn latent_round_trip_keeps_every_posting(
            docs in proptest::collection::vec(
                proptest::collection::btree_map(0u32..300, 1u32..5000, 0..12), 1..40),
            deleted in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
            for (i, d) in docs.iter().enumerate() {
                let v = SparseVector::new(d.iter().map(|(&t, &w)| (t, w as f32))).expect("valid");
                b.add(format!("doc-{i}"), &v).expect("added");
            }
            let mut index = b.build().expect("built");
            for (i, &del) in deleted.iter().enumerate().take(docs.len()) {
                if del {
                    index.delete(&format!("doc-{i}"));
                }
            }
            let (file, summary) = index_to_ciff(&index, &DotProduct, None, "t").expect("export");
            let parsed = read_ciff(file.to_bytes().as_slice()).expect("read");
            prop_assert_eq!(&parsed, &file);
            let back = ciff_to_index(&parsed).expect("import");
            prop_assert!(back.vocabulary().is_none());
            prop_assert_eq!(postings_by_name(&back), postings_by_name(&index));
            prop_assert_eq!(live_ids(&back), live_ids(&index));
            prop_assert_eq!(summary.postings, index.statistics().expect("stats").num_postings);
            // Same term ids, so same scores for the same query.
            let q = crate::Query::new([(1, 1.0), (7, 2.0), (250, 0.5)]).expect("valid");
            let score = |ix: &Index| -> Vec<(String, f32)> {
                ix.search(&q, &crate::Bm25::default(), 10, &crate::SearchOptions::default())
                    .expect("search")
                    .into_iter()
                    .map(|h| (ix.external_id(h.doc).expect("id").to_owned(), h.score))
                    .collect()
            };
            prop_assert_eq!(score(&back), score(&index));
        }
    }

    #[test]
    fn lexical_round_trip_uses_the_words_and_sorts_terms() {
        let analyzer = Analyzer::english();
        let mut vocab = Vocabulary::new();
        let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
        for (id, text) in [("a", "zebras run and zebras graze"), ("b", "ants run")] {
            b.add(id, &vocab.add_document(&analyzer, text).expect("fits"))
                .expect("added");
        }
        let mut index = b.build().expect("built");
        index.set_vocabulary(vocab).expect("covers");
        let (file, _) = index_to_ciff(&index, &DotProduct, None, "").expect("export");
        let terms: Vec<&str> = file
            .postings_lists
            .iter()
            .map(|l| l.term.as_str())
            .collect();
        assert_eq!(terms, ["ant", "graze", "run", "zebra"]);
        assert_eq!(
            file.postings_lists[2].postings,
            [
                CiffPosting { docid: 0, tf: 1 },
                CiffPosting { docid: 1, tf: 1 }
            ]
        );
        assert_eq!(file.doc_records[0].doclength, 4);
        let back =
            ciff_to_index(&read_ciff(file.to_bytes().as_slice()).expect("read")).expect("import");
        assert!(back.vocabulary().is_some());
        assert_eq!(postings_by_name(&back), postings_by_name(&index));
    }

    #[test]
    fn float_weights_need_a_quantizer() {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        b.add("a", &SparseVector::new([(1, 0.25)]).expect("valid"))
            .expect("added");
        let index = b.build().expect("built");
        assert!(index_to_ciff(&index, &DotProduct, None, "").is_err());
        let q = Quantizer::new(100.0).expect("valid");
        let (file, _) = index_to_ciff(&index, &DotProduct, Some(q), "").expect("export");
        assert_eq!(file.postings_lists[0].postings[0].tf, 25);
    }

    #[test]
    fn malformed_files_are_errors() {
        let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
        b.add("a", &SparseVector::new([(1, 2.0)]).expect("valid"))
            .expect("added");
        b.add(
            "b",
            &SparseVector::new([(1, 1.0), (2, 1.0)]).expect("valid"),
        )
        .expect("added");
        let index = b.build().expect("built");
        let (good, _) = index_to_ciff(&index, &DotProduct, None, "").expect("export");
        let bytes = good.to_bytes();
        for cut in 0..bytes.len() {
            assert!(read_ciff(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(read_ciff(extra.as_slice()).is_err());

        let broken = |f: &dyn Fn(&mut CiffFile)| {
            let mut file = good.clone();
            f(&mut file);
            ciff_to_index(&file).expect_err("invalid")
        };
        broken(&|f| f.postings_lists[0].df = 5);
        broken(&|f| f.postings_lists[0].postings[1].docid = 0);
        broken(&|f| f.postings_lists[0].postings[0].docid = -1);
        broken(&|f| f.postings_lists[0].postings[1].docid = 9);
        broken(&|f| f.postings_lists[0].postings[0].tf = 0);
        broken(&|f| f.postings_lists[1].term = "l1".into());
        broken(&|f| f.doc_records[1].docid = 0);
        broken(&|f| f.doc_records[1].docid = 7);
        broken(&|f| f.doc_records[1].collection_docid = "a".into());
        let mut v2 = good.clone();
        v2.header.version = 2;
        assert!(read_ciff(v2.to_bytes().as_slice()).is_err());
    }

    /// Compresses `parts` as one gzip member each, concatenated.
    fn multi_member_gzip(parts: &[&[u8]]) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::new();
        for part in parts {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).expect("in memory");
            out.extend(enc.finish().expect("in memory"));
        }
        out
    }

    #[test]
    fn every_member_of_a_multi_member_gzip_is_read() {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for d in 0..30u32 {
            let v = SparseVector::new([(d % 7, 1.0 + d as f32), (7 + d % 5, 2.0)]).expect("valid");
            b.add(format!("doc-{d}"), &v).expect("added");
        }
        let index = b.build().expect("built");
        let (file, _) = index_to_ciff(&index, &DotProduct, None, "two members").expect("export");
        let bytes = file.to_bytes();
        let dir = tempfile::tempdir().expect("tempdir");
        // Split inside a message: the first member alone is not a complete file.
        let (first, second) = bytes.split_at(bytes.len() / 2);
        assert!(read_ciff(first).is_err());
        let two = multi_member_gzip(&[first, second]);
        assert!(
            read_ciff(flate2::read::GzDecoder::new(two.as_slice())).is_err(),
            "a single-member decoder stops after the first member"
        );
        for name in ["index.ciff.gz", "no-extension"] {
            let path = dir.path().join(name);
            fs::write(&path, &two).expect("write");
            assert_eq!(read_ciff_file(&path).expect("both members"), file, "{name}");
            assert_eq!(
                postings_by_name(&import_ciff(&path).expect("import")),
                postings_by_name(&index)
            );
        }
        // Plain files still read, and a damaged second member is an error.
        let plain = dir.path().join("index.ciff");
        fs::write(&plain, &bytes).expect("write");
        assert_eq!(read_ciff_file(&plain).expect("plain"), file);
        let mut damaged = two.clone();
        damaged.truncate(two.len() - 3);
        let path = dir.path().join("damaged.ciff.gz");
        fs::write(&path, &damaged).expect("write");
        assert!(read_ciff_file(&path).is_err());
        for tiny in [&b""[..], &[0x1f][..]] {
            fs::write(&path, tiny).expect("write");
            assert!(read_ciff_file(&path).is_err());
        }
    }
}
