//! The crate's error type.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading a model, encoding text, writing or
/// reading an embeddings store, or searching.
///
/// Messages name the file involved and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file the model needs is not there.
    #[error(
        "{}: missing {what}; run scripts/setup-assets (or point the encoder at a model directory that has it)",
        path.display()
    )]
    MissingModelFile {
        /// Where the file was expected.
        path: PathBuf,
        /// What the file is (`"ONNX graph"`, `"tokenizer"`, ...).
        what: &'static str,
    },

    /// A model file is there but cannot be used (bad JSON, unknown pooling, a
    /// tokenizer that does not fit the graph, ...).
    #[error("{}: {message}", path.display())]
    InvalidModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// No ONNX Runtime shared library was found.
    #[error(
        "ONNX Runtime library not found (looked for {looked_for}); run scripts/setup-assets, \
         or set ORT_DYLIB_PATH to a libonnxruntime.so of ONNX Runtime 1.31 or later"
    )]
    OrtLibraryNotFound {
        /// The places that were tried, for the message.
        looked_for: String,
    },

    /// The ONNX Runtime library exists but could not be loaded.
    #[error(
        "could not load ONNX Runtime from {}: {message}; run scripts/setup-assets, or set \
         ORT_DYLIB_PATH to a libonnxruntime.so of ONNX Runtime 1.31 or later",
        path.display()
    )]
    OrtLoad {
        /// The library file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },

    /// ONNX Runtime reported an error (session creation or inference).
    #[error("ONNX Runtime error while {context}: {message}")]
    Ort {
        /// What the encoder was doing.
        context: String,
        /// ONNX Runtime's message.
        message: String,
    },

    /// The tokenizer failed on an input.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    /// An option given to a builder is out of range or inconsistent with the model.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A text produced no tokens at all (possible only with tokenizers that add no
    /// special tokens), so it has no embedding.
    #[error("text {index} of the batch produced no tokens, so it has no embedding")]
    NoTokens {
        /// Position of the text in the caller's input.
        index: usize,
    },

    /// The model produced (or a store holds) a NaN or infinite value.
    #[error("non-finite value in embedding row {row} ({context})")]
    NonFinite {
        /// Row (position in the caller's input, or in the store).
        row: usize,
        /// Where the value came from.
        context: String,
    },

    /// Two matrices (or a matrix and a store) disagree on the embedding dimension.
    #[error("dimension mismatch: expected {expected}, found {found}")]
    Dimension {
        /// The dimension that was required.
        expected: usize,
        /// The dimension that was given.
        found: usize,
    },

    /// The number of ids differs from the number of rows, or a buffer does not
    /// hold `rows x dim` values.
    #[error("shape error: {0}")]
    Shape(String),

    /// A file is not a valid embeddings store.
    #[error("{}: not a valid embeddings store: {message}", path.display())]
    InvalidStore {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A file is not a valid token store (bad magic, version, header, sizes or tables).
    #[error("{}: not a valid token store: {message}", path.display())]
    InvalidTokenStore {
        /// The file (`<memory>` for a store read from bytes).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// An embeddings store's CRC-32 does not match its bytes: the file is corrupt.
    #[error(
        "{}: embeddings store checksum mismatch (stored crc32 {stored:#010x}, computed {computed:#010x}); the file is corrupt: restore it from a copy or re-encode the corpus",
        path.display()
    )]
    StoreChecksum {
        /// The file (`<memory>` for a store read from bytes).
        path: PathBuf,
        /// The CRC-32 recorded in the file.
        stored: u32,
        /// The CRC-32 of the bytes read.
        computed: u32,
    },

    /// An embeddings store of format version 1, written before stores carried a
    /// checksum, so its bytes cannot be verified.
    #[error(
        "{}: embeddings store of format version 1 has no checksum, so it cannot be verified; if you trust the file, rewrite it with a checksum with `latent-terms upgrade-store FILE` (or latent_terms_encoders::upgrade_store; it reads the whole file, then replaces it atomically), otherwise re-encode the corpus",
        path.display()
    )]
    LegacyStore {
        /// The file.
        path: PathBuf,
    },

    /// Two rows of an embeddings store have the same id.
    #[error(
        "{}: id {id:?} is on rows {first} and {second}; ids must be unique, re-encode the corpus with distinct ids",
        path.display()
    )]
    StoreDuplicateId {
        /// The file.
        path: PathBuf,
        /// The repeated id.
        id: String,
        /// The first row with the id.
        first: usize,
        /// The second row with the id.
        second: usize,
    },

    /// Queries and an embeddings store differ in dimension.
    #[error(
        "the queries have dimension {queries} but the embeddings store {} has dimension {store}; encode queries and corpus with the same model",
        path.display()
    )]
    QueryDimension {
        /// The store searched.
        path: PathBuf,
        /// The store's dimension.
        store: usize,
        /// The queries' dimension.
        queries: usize,
    },

    /// A query store and a corpus store were written by different models or settings.
    #[error(
        "query store {} has {field} {queries_value:?} but corpus store {} has {corpus_value:?}; encode queries and corpus with the same model and settings",
        queries.display(),
        corpus.display()
    )]
    StoresDisagree {
        /// The query store.
        queries: PathBuf,
        /// The corpus store.
        corpus: PathBuf,
        /// The metadata field that differs.
        field: &'static str,
        /// The value in the query store.
        queries_value: String,
        /// The value in the corpus store.
        corpus_value: String,
    },

    /// A token store's checksum does not match its bytes: the file is corrupt.
    #[error(
        "{}: token store checksum mismatch (stored crc32 {stored:#010x}, computed {computed:#010x}); the file is corrupt, re-encode it",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The CRC-32 recorded in the file.
        stored: u32,
        /// The CRC-32 of the bytes read.
        computed: u32,
    },

    /// A text id was appended twice to a token store or an embeddings store.
    #[error("{}: text id {id:?} appended twice; ids must be unique", path.display())]
    DuplicateId {
        /// The store being written.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },

    /// A store was written by a different model or configuration than expected.
    #[error(
        "{}: the store's {field} is {found:?} but {expected:?} was expected; re-encode the corpus with the same model and settings",
        path.display()
    )]
    MetadataMismatch {
        /// The store.
        path: PathBuf,
        /// The metadata field that differs.
        field: &'static str,
        /// The expected value.
        expected: String,
        /// The value in the store.
        found: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn ort(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Ort {
            context: context.into(),
            message: err.to_string(),
        }
    }

    pub(crate) fn invalid_model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::InvalidModelFile {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_token_store(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidTokenStore {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_store(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::InvalidStore {
            path: path.into(),
            message: message.into(),
        }
    }
}
