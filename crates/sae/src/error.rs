//! The crate's error type: every failure on user data is one of these, never a panic.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file is not a valid SAE checkpoint (truncated, corrupted, wrong shapes).
    #[error("{path}: not a valid SAE checkpoint: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A value is NaN or infinite where finite numbers are required.
    #[error(
        "{what} holds a non-finite value (NaN or Inf) at row {row}, column {col}; clean the input first"
    )]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Row of the first offending value.
        row: usize,
        /// Column of the first offending value.
        col: usize,
    },
    /// Vectors of the wrong width for this SAE.
    #[error("dimension mismatch: the SAE expects {expected}-dimensional vectors, got {got}")]
    DimensionMismatch {
        /// The SAE's input width.
        expected: usize,
        /// The width given.
        got: usize,
    },
    /// A setting is out of range or inconsistent with another.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
    /// There is nothing to train on.
    #[error("the training set is empty: give at least one embedding")]
    EmptyTrainingSet,
    /// A pairs file (qrels or run) does not fit the embeddings.
    #[error("pairs: {0}")]
    Pairs(String),
    /// The burn backend failed to produce a tensor's data.
    #[error("backend: {0}")]
    Backend(String),
    /// A block of a streamed row source is not a whole number of rows.
    #[error(
        "block {block} of the training rows holds {len} values, not a whole number of {dim}-wide rows"
    )]
    RaggedBlock {
        /// The block.
        block: usize,
        /// Values it holds.
        len: usize,
        /// The source's row width.
        dim: usize,
    },
    /// A streamed row source read different rows on a later pass than on the first: the
    /// trainer counts rows once and relies on every pass reading the same ones.
    #[error(
        "block {block} of the training rows held {expected} rows on the first pass and {got} now; \
         a streamed source must read the same rows on every pass"
    )]
    SourceChanged {
        /// The block.
        block: usize,
        /// Rows it held on the planning pass.
        expected: usize,
        /// Rows it holds now.
        got: usize,
    },
    /// A streamed row source failed to read a block.
    #[error("reading the training rows: {0}")]
    RowSource(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The training diverged (loss became NaN or infinite).
    #[error("training diverged at step {step} (loss is not finite); lower the learning rate")]
    Diverged {
        /// The step where it happened.
        step: u64,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Checks that `data` holds rows of width `dim` with only finite values.
pub(crate) fn check_rows(what: &'static str, data: &[f32], dim: usize) -> Result<()> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: if dim == 0 { 0 } else { data.len() % dim },
        });
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what,
            row: i / dim,
            col: i % dim,
        });
    }
    Ok(())
}
