//! Dense text encoders through ONNX Runtime, a streaming embeddings store, and
//! exact dense search.
//!
//! - [`Encoder`]: tokenizer (Hugging Face `tokenizers`) + ONNX graph (ONNX Runtime,
//!   loaded at run time) + pooling ([`Pooling`]: CLS, mean, last token) + optional
//!   L2 normalisation. Build it with [`Encoder::builder`], then call
//!   [`Encoder::encode_queries`] / [`Encoder::encode_passages`] (or
//!   [`Encoder::encode`] with ids).
//! - [`Embeddings`]: the output, a contiguous row-major `f32` matrix with one id per row.
//! - [`StoreWriter`] / [`EmbeddingsStore`]: embeddings on disk as a safetensors file
//!   with the ids, the model metadata and a CRC-32 of every byte, written by
//!   streaming appends and verified on opening ([`upgrade_store`] rewrites a store
//!   written before checksums).
//! - [`Encoder::encode_tokens`]: per-token vectors ([`TokenVectors`]: the raw
//!   `last_hidden_state` rows with token ids and byte offsets), special tokens
//!   dropped or kept ([`SpecialTokens`]).
//! - [`TokenStoreWriter`] / [`TokenStore`]: token vectors on disk (F16 or F32) in a
//!   checksummed file, written by streaming appends and read back block by block.
//! - [`search`] / [`search_store`]: exact top-k by dot product or cosine, returning
//!   `(doc id, score)` lists per query, ready to become a TREC run.
//!
//! The assets (ONNX Runtime library, all-MiniLM-L6-v2 as ONNX) are prepared by
//! `scripts/setup-assets`; see `docs/encoders.md`.
//!
//! ```no_run
//! use latent_terms_encoders::{search, Encoder, SearchOptions};
//!
//! let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2")
//!     .batch_size(32)
//!     .intra_threads(2)
//!     .build()?;
//! let docs = encoder.encode(
//!     latent_terms_encoders::TextKind::Passage,
//!     &[("d1", "Vitamin C deficiency causes scurvy."), ("d2", "The Eiffel Tower is in Paris.")],
//! )?;
//! let queries = encoder.encode_queries(&["what causes scurvy"])?;
//! let hits = search(&queries, &docs, &SearchOptions::top(10))?;
//! assert_eq!(hits[0][0].0, "d1");
//! # Ok::<(), latent_terms_encoders::Error>(())
//! ```

mod config;
mod embeddings;
mod encoder;
mod error;
mod runtime;
mod search;
mod store;
mod token_store;
mod tokens;

pub use config::Pooling;
pub use embeddings::Embeddings;
pub use encoder::{DEFAULT_BATCH_SIZE, EncodeStats, Encoder, EncoderBuilder, ModelInfo, TextKind};
pub use error::{Error, Result};
pub use runtime::{ORT_DYLIB_ENV, ORT_LIBRARY_NAME};
pub use search::{DOC_TILE, Hits, Metric, SearchOptions, search, search_store};
pub use store::{
    EmbeddingsStore, STORE_FORMAT, STORE_VERSION, StoreBlocks, StoreDtype, StoreMetadata,
    StoreWriter, upgrade_store,
};
pub use token_store::{
    TOKEN_STORE_FORMAT, TOKEN_STORE_VERSION, TokenStore, TokenStoreBlocks, TokenStoreMetadata,
    TokenStoreWriter,
};
pub use tokens::{SpecialTokens, TokenVectors};
