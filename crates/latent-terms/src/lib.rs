//! Latent Terms retrieval: one dependency that re-exports the workspace's
//! crates and composes them into the pipeline.
//!
//! | module | crate | job |
//! |---|---|---|
//! | [`eval`] | `latent-terms-eval` | qrels, runs, BEIR datasets, trec_eval-exact metrics |
//! | [`sparse_index`] | `latent-terms-sparse-index` | inverted lists, BM25, CL-SR |
//! | [`encoders`] | `latent-terms-encoders` | dense retrievers through ONNX Runtime |
//! | [`sae`] | `latent-terms-sae` | sparse autoencoder trainers |
//! | [`lexical`] | this crate | lexical BM25 over a BEIR dataset, as a TREC run |
//! | [`dense`] | this crate | dense retrieval over embeddings stores, as a TREC run |
//! | [`plot`] | this crate | PNG line charts (loss curves, Zipf plots) |
//! | [`bag`] | this crate | bags of token-level latent terms (term frequencies from token codes) |
//! | [`pipeline`] | this crate | encode → SAE → latent-term index → evaluate, with the report |
//! | [`interpret`] | this crate | latent cards, descriptions, explanations, steering, intrusion test, HTML explorer |

pub mod bag;
pub mod dense;
mod error;
pub mod interpret;
pub mod lexical;
pub mod pipeline;
pub mod plot;

pub use error::{Error, Result};
pub use latent_terms_encoders as encoders;
pub use latent_terms_eval as eval;
pub use latent_terms_sae as sae;
pub use latent_terms_sparse_index as sparse_index;
