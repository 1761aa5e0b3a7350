//! Sparse autoencoder trainers. Not yet implemented: this crate is reserved for the SAE work.
