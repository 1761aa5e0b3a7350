//! Sparse autoencoders over dense retriever embeddings: the latent vocabulary of
//! Latent Terms retrieval.
//!
//! * [`SaeWeights`] and [`SaeConfig`]: parameters and their checkpoint file (safetensors
//!   with SAELens tensor names and a cfg JSON).
//! * [`SaeEncoder`]: burn-free, multi-threaded inference — embeddings to sparse codes by
//!   top-k or by the stored threshold, with an optional cap, and back.
//! * [`saelens`]: SAELens' directory layout (`cfg.json` + `sae_weights.safetensors`), read
//!   and written; [`SaeWeights::load`] and [`SaeEncoder::load`] take such a directory too.
//! * [`Latents`]: a collection's sparse codes with their ids, as one file.
//! * [`mean_square_norm_scale`]: the input scale `c` that makes rows' mean squared norm
//!   `d_in`; stored as [`SaeConfig::input_scale`] and applied by [`SaeEncoder`].
//! * `train` (cargo feature `train`, on by default through `flex`): TopK, BatchTopK and
//!   contrastive-KLD trainers on burn, on the `flex` or `ndarray` CPU backends or `cuda`;
//!   rows in memory, or streamed block by block with bounded memory
//!   (`Trainer::train_streamed`) for sets larger than memory.
//!
//! ```
//! use latent_terms_sae::{EncodeOptions, SaeConfig, SaeEncoder, SaeKind, SaeWeights};
//!
//! let config = SaeConfig::new(SaeKind::TopK, 2, 4, 1)?;
//! let sae = SaeEncoder::new(SaeWeights {
//!     config,
//!     w_enc: vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0],
//!     b_enc: vec![0.0; 4],
//!     w_dec: vec![1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0],
//!     b_dec: vec![0.0; 2],
//! })?;
//! let codes = sae.encode(&[0.0, -2.0], &EncodeOptions::top_k(1))?;
//! assert_eq!(codes[0].indices, vec![3]); // the "−y" latent
//! # Ok::<(), latent_terms_sae::Error>(())
//! ```

mod encoder;
mod error;
mod latents;
mod resume;
pub mod saelens;
mod scale;
mod seal;
mod weights;

#[cfg(feature = "train")]
pub mod train;

pub use encoder::{Activation, EncodeOptions, SaeEncoder, SparseCode};
pub use error::{Error, Result};
pub use latents::Latents;
pub use resume::TrainState;
pub use scale::mean_square_norm_scale;
pub use weights::{SaeConfig, SaeKind, SaeWeights, cfg_path};
