//! Atomic file writes (through `latent-terms-io`), with this crate's error type.

use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes through `fill` into a temporary file next to `path`, syncs it, then
/// renames it over `path`. On any error the previous content of `path`, if any,
/// is untouched.
pub(crate) fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut latent_terms_io::AtomicFile) -> io::Result<()>,
) -> Result<()> {
    latent_terms_io::write_file(path, fill).map_err(|e| Error::io(path, e))
}
