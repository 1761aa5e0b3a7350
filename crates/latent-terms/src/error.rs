//! The facade's error: one type over the crates it composes.

/// Errors of the end-to-end pipeline; each variant wraps a crate's own error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading datasets, qrels or runs, or evaluating.
    #[error(transparent)]
    Eval(#[from] latent_terms_eval::Error),
    /// Building, saving, loading or searching an index.
    #[error(transparent)]
    Index(#[from] latent_terms_sparse_index::IndexError),
    /// Loading or running a dense encoder, or reading an embeddings store.
    #[error(transparent)]
    Encoder(#[from] latent_terms_encoders::Error),
    /// Training, loading or running a sparse autoencoder.
    #[error(transparent)]
    Sae(#[from] latent_terms_sae::Error),
    /// Drawing a chart.
    #[error("plot: {0}")]
    Plot(String),
    /// A pipeline config file that does not parse or holds impossible values.
    #[error("pipeline config: {0}")]
    Config(String),
    /// Inputs that do not fit together (ids without embeddings, bad generator sizes, …).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file of the pipeline (cache, report).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
