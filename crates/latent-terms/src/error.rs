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
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
