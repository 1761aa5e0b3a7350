//! The crate's error type: every failure names the file and, for parse errors, the line.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading, writing or evaluating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or `<stdin>`, `<memory>`) being accessed.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A line of the file is not valid for its format.
    #[error("{}:{line}: {kind}", path.display())]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with the line.
        kind: ParseErrorKind,
    },
    /// The file holds no records at all.
    #[error("{}: the file is empty; expected {expected}", path.display())]
    Empty {
        /// The empty file.
        path: PathBuf,
        /// What the file should have contained.
        expected: &'static str,
    },
    /// Two files could each be the input (e.g. `queries.jsonl` and `queries.jsonl.gz`)
    /// and nothing says which one is meant.
    #[error(
        "both {} and {} exist; remove one of them so that it is clear which to read",
        first.display(), second.display()
    )]
    ConflictingFiles {
        /// One of the candidates.
        first: PathBuf,
        /// The other candidate.
        second: PathBuf,
    },
    /// A measure name that is not trec_eval's spelling of a supported measure.
    #[error("unknown measure {name:?}; supported: {supported}")]
    UnknownMeasure {
        /// The name as given.
        name: String,
        /// Comma-separated list of supported measure names.
        supported: String,
    },
    /// A measure's parameter list (the part after the dot) could not be parsed.
    #[error("invalid parameters {params:?} for measure {measure}: expected {expected}")]
    InvalidMeasureParams {
        /// The measure's base name.
        measure: String,
        /// The parameter text as given.
        params: String,
        /// What the measure accepts after the dot.
        expected: &'static str,
    },
    /// A statistic or fusion was asked of inputs that cannot support it.
    #[error("{0}")]
    InvalidInput(String),
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The line has the wrong number of whitespace-separated fields.
    #[error("expected {expected} fields ({format}), found {found}")]
    FieldCount {
        /// Number of fields the format requires.
        expected: usize,
        /// Number of fields found.
        found: usize,
        /// The format's field layout, e.g. `qid iter docno rel`.
        format: &'static str,
    },
    /// A numeric field does not hold a number.
    #[error("field {field} is {value:?}, which is not a valid {expected}")]
    InvalidNumber {
        /// Field name.
        field: &'static str,
        /// The text found.
        value: String,
        /// The kind of number expected (`integer`, `finite number`).
        expected: &'static str,
    },
    /// A document appears twice in one query's ranking (trec_eval refuses this too).
    #[error(
        "document {docno:?} appears twice in the ranking of query {qid:?} (first on line {first_line}); remove the duplicate"
    )]
    DuplicateDocument {
        /// Query id.
        qid: String,
        /// Repeated document id.
        docno: String,
        /// Line of the first occurrence.
        first_line: u64,
    },
    /// A query id appears twice in a queries file.
    #[error("duplicate query id {qid:?} (first on line {first_line}); query ids must be unique")]
    DuplicateQuery {
        /// The repeated query id.
        qid: String,
        /// Line of the first occurrence.
        first_line: u64,
    },
    /// A document is judged twice for one query (trec_eval refuses this too).
    #[error("document {docno:?} is judged twice for query {qid:?}; keep one judgment")]
    DuplicateJudgment {
        /// Query id.
        qid: String,
        /// Repeated document id.
        docno: String,
    },
    /// The line is not valid UTF-8.
    #[error("the line is not valid UTF-8")]
    InvalidUtf8,
    /// The line is longer than the reader's limit (a guard against decompression bombs).
    #[error(
        "the line is longer than {limit} bytes; if the file is trusted, raise the limit with the \
         environment variable {}",
        latent_terms_io::MAX_LINE_BYTES_ENV
    )]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A JSON line could not be decoded.
    #[error("invalid JSON record: {0}")]
    Json(String),
    /// A query's ranking exceeds what the in-memory representation can hold.
    #[error("{0}")]
    TooLarge(String),
    /// A TSV header line is missing or unexpected.
    #[error("expected a header line like {expected:?}, found {found:?}")]
    Header {
        /// Header expected.
        expected: &'static str,
        /// Text found.
        found: String,
    },
}

impl From<latent_terms_io::LineError> for Error {
    fn from(e: latent_terms_io::LineError) -> Self {
        use latent_terms_io::LineError as L;
        match e {
            L::Io { path, source } => Error::Io { path, source },
            L::InvalidUtf8 { path, line } => Error::parse(path, line, ParseErrorKind::InvalidUtf8),
            L::TooLong { path, line, limit } => {
                Error::parse(path, line, ParseErrorKind::LineTooLong { limit })
            }
            other => Error::InvalidInput(other.to_string()),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, line: u64, kind: ParseErrorKind) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            kind,
        }
    }
}
