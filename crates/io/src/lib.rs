//! Safe file I/O shared by every latent-terms crate, so that each concern lives in one place:
//!
//! - [`AtomicFile`], [`write_file`], [`write_bytes`]: a reader sees the old file or
//!   the complete new one; crashed writers' temporary files are cleaned up.
//! - [`Lines`], [`open`]: line reading from plain or multi-member gzip files with a
//!   bound on line length ([`max_line_bytes`]) and so on memory.
//! - [`ContentHasher`], [`hash_file`]: XXH3-128 over every byte, for cache keys.
//!
//! - [`missing_asset`]: the one skip-or-fail rule for tests that need installed assets.
//!
//! It depends on no other latent-terms crate.

mod assets;
mod atomic;
mod hash;
mod lines;

pub use assets::missing_asset;
pub use atomic::{AtomicFile, write_bytes, write_file};
pub use hash::{ContentHasher, hash_file};
pub use lines::{
    DEFAULT_MAX_LINE_BYTES, LineError, Lines, MAX_LINE_BYTES_ENV, max_line_bytes, open,
};
