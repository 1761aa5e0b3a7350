//! The crate's error type. Every variant says what was wrong and what to do about it.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// Everything that can go wrong while building, searching, saving or opening an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A document or query weight is negative, NaN or infinite.
    #[error(
        "term {term} has weight {weight}; weights must be finite and >= 0 (drop the term or clamp it)"
    )]
    InvalidWeight {
        /// The term carrying the weight.
        term: u32,
        /// The rejected weight.
        weight: f32,
    },
    /// The same term appears twice in one document vector.
    #[error(
        "term {term} appears more than once in a document; sum or deduplicate the weights first"
    )]
    DuplicateTerm {
        /// The repeated term.
        term: u32,
    },
    /// A vocabulary was given the same term twice.
    #[error("vocabulary term {term:?} is given twice; term ids must map to distinct terms")]
    DuplicateVocabularyTerm {
        /// The repeated term.
        term: String,
    },
    /// An external document id is already used by a live document.
    #[error(
        "document id {id:?} is already in the index; delete the old document first to replace it"
    )]
    DuplicateExternalId {
        /// The repeated id.
        id: String,
    },
    /// A weight cannot be stored with the configured [`WeightEncoding`](crate::WeightEncoding).
    #[error(
        "term {term} has weight {weight}, which the {encoding} encoding cannot store: {reason}"
    )]
    UnencodableWeight {
        /// The term carrying the weight.
        term: u32,
        /// The rejected weight.
        weight: f32,
        /// Name of the encoding.
        encoding: &'static str,
        /// Why, and what to change.
        reason: &'static str,
    },
    /// A configuration or scorer parameter is out of its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name, e.g. `k1`.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The valid range or the fix.
        reason: &'static str,
    },
    /// The index would hold more documents than internal ids can address.
    #[error(
        "the index would hold {requested} documents, more than the {limit} an index can address; split the collection into several indexes"
    )]
    TooManyDocuments {
        /// Documents that were requested.
        requested: u64,
        /// The maximum.
        limit: u64,
    },
    /// A segment section grew past what the format can address.
    #[error(
        "{what} is {size} bytes, more than the format's limit of {limit}; split the collection into several segments"
    )]
    TooLarge {
        /// Which part of the index.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An internal document id does not exist in the index.
    #[error("document {doc} does not exist; the index has internal ids 0..{max_doc}")]
    UnknownDocument {
        /// The requested id.
        doc: u32,
        /// One past the largest internal id.
        max_doc: u32,
    },
    /// The document has been deleted.
    #[error("document {doc} has been deleted")]
    DeletedDocument {
        /// The deleted id.
        doc: u32,
    },
    /// A vocabulary does not cover the term ids used by the index.
    #[error(
        "the index uses term id {term} but the vocabulary has only {len} terms; attach the vocabulary the documents were vectorised with"
    )]
    VocabularyMismatch {
        /// The uncovered term id.
        term: u32,
        /// The vocabulary's size.
        len: usize,
    },
    /// A new segment was added to a statically pruned index, whose document frequencies
    /// are fixed to the collection it was built from.
    #[error(
        "the index is statically pruned: its document frequencies describe the collection it was built from, so it cannot take new documents; rebuild it from the full documents with the new ones"
    )]
    PrunedIndex,
    /// Term statistics do not describe the index they were given to.
    #[error(
        "term {term} has {postings} postings but its fixed document frequency is {df}; the statistics belong to another collection"
    )]
    StatisticsMismatch {
        /// The term.
        term: u32,
        /// Its live postings.
        postings: u64,
        /// Its fixed document frequency.
        df: u64,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being accessed.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The bytes do not start with the index magic number.
    #[error("not a latent-terms sparse index (bad magic number); check the path")]
    BadMagic,
    /// The file was written by an incompatible version of the format.
    #[error(
        "index format version {found} is not supported (this build reads version {supported}); rebuild the index with this version"
    )]
    UnsupportedVersion {
        /// Version found in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The file is shorter (or longer) than its header says.
    #[error(
        "index file is {actual} bytes but its header says {expected}; it was truncated or appended to, restore it from a backup or rebuild it"
    )]
    Truncated {
        /// Length recorded in the header.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A section's CRC32 does not match its content.
    #[error(
        "checksum mismatch in {section}; the index file is corrupted, restore it from a backup or rebuild it"
    )]
    ChecksumMismatch {
        /// The damaged section.
        section: String,
    },
    /// A CIFF file (Common Index File Format) is malformed or cannot be imported.
    #[error("invalid CIFF data ({what}); check that the file is a complete CIFF export")]
    InvalidCiff {
        /// What is wrong.
        what: String,
    },
    /// A weighted query names the same term twice (e.g. `{"vector": {"l3": 1, "l3": 2}}`).
    #[error(
        "queries line {line}: term {key:?} is given more than once in one query; \
         give each term once (add up its weights)"
    )]
    DuplicateQueryTerm {
        /// 1-based line of the query.
        line: u64,
        /// The repeated key, as written.
        key: String,
    },
    /// An export cannot be written as asked.
    #[error("cannot export: {what}")]
    Export {
        /// What is wrong, and what to change.
        what: String,
    },
    /// The file is structurally invalid.
    #[error("index data is corrupted ({what}); restore it from a backup or rebuild it")]
    Corrupted {
        /// What is inconsistent.
        what: String,
    },
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>) -> Self {
        IndexError::Corrupted { what: what.into() }
    }
}
