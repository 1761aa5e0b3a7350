//! Cache keys: a stable 64-bit hash of a stage's inputs (files and settings), so a
//! second run with the same inputs reuses the stage's artefacts.
//!
//! Files are hashed by name, length and content; files larger than
//! [`FULL_HASH_LIMIT`] by length plus their first and last MiB (an ONNX model or a
//! large embeddings store is identified well enough by that, and hashing it whole on
//! every run would cost seconds).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Files up to this size are hashed whole.
pub const FULL_HASH_LIMIT: u64 = 8 << 20;
const EDGE: u64 = 1 << 20;

/// FNV-1a (64-bit) over a sequence of tagged fields.
///
/// ```
/// use latent_terms::pipeline::CacheKey;
///
/// let a = CacheKey::new("sae").str("topk").num(4096).finish();
/// let b = CacheKey::new("sae").str("topk").num(4096).finish();
/// let c = CacheKey::new("sae").str("topk").num(2048).finish();
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// assert_eq!(a.len(), 16);
/// ```
#[derive(Clone, Debug)]
pub struct CacheKey {
    state: u64,
}

impl CacheKey {
    /// A key for the stage `stage`.
    pub fn new(stage: &str) -> Self {
        CacheKey {
            state: 0xcbf2_9ce4_8422_2325,
        }
        .str(stage)
    }

    fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.state ^= u64::from(b);
            self.state = self.state.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Adds a string field (length-prefixed, so fields cannot run into each other).
    pub fn str(self, s: &str) -> Self {
        self.num(s.len() as u64).bytes(s.as_bytes())
    }

    /// Adds a number field.
    pub fn num(self, n: u64) -> Self {
        self.bytes(&n.to_le_bytes())
    }

    /// Adds another key (a stage this one depends on).
    pub fn key(self, key: &str) -> Self {
        self.str(key)
    }

    /// Adds a file: its name, length and content (or edges, above [`FULL_HASH_LIMIT`]).
    pub fn file(self, path: &Path) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut key = self.str(&name).num(len);
        if len <= FULL_HASH_LIMIT {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).map_err(io)?;
            key = key.bytes(&buf);
        } else {
            let mut buf = vec![0u8; EDGE as usize];
            file.read_exact(&mut buf).map_err(io)?;
            key = key.bytes(&buf);
            file.seek(SeekFrom::Start(len - EDGE)).map_err(io)?;
            file.read_exact(&mut buf).map_err(io)?;
            key = key.bytes(&buf);
        }
        Ok(key)
    }

    /// Adds every regular file of a directory (not recursive), in name order.
    pub fn dir(self, dir: &Path) -> Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut key = self.num(files.len() as u64);
        for f in &files {
            key = key.file(f)?;
        }
        Ok(key)
    }

    /// The key as 16 hex digits.
    pub fn finish(&self) -> String {
        format!("{:016x}", self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "one").unwrap();
        let k1 = CacheKey::new("x").file(&p).unwrap().finish();
        let k1b = CacheKey::new("x").dir(dir.path()).unwrap().finish();
        std::fs::write(&p, "two").unwrap();
        let k2 = CacheKey::new("x").file(&p).unwrap().finish();
        let k2b = CacheKey::new("x").dir(dir.path()).unwrap().finish();
        assert_ne!(k1, k2);
        assert_ne!(k1b, k2b);
        assert!(
            CacheKey::new("x")
                .file(&dir.path().join("missing"))
                .is_err()
        );
    }

    #[test]
    fn fields_do_not_run_together() {
        let a = CacheKey::new("s").str("ab").str("c").finish();
        let b = CacheKey::new("s").str("a").str("bc").finish();
        assert_ne!(a, b);
    }
}
