//! Content hashes: XXH3-128 over every byte, for cache keys and content ids.
//!
//! Not cryptographic: it detects change and corruption, not an adversary who
//! crafts collisions. XXH3 hashes at memory speed, so hashing a whole input on
//! every run costs little next to the work it guards.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

/// A streaming content hasher.
///
/// ```
/// use latent_terms_io::ContentHasher;
///
/// let mut a = ContentHasher::new();
/// a.update(b"hello ");
/// a.update(b"world");
/// let mut b = ContentHasher::new();
/// b.update(b"hello world");
/// assert_eq!(a.finish(), b.finish());
/// ```
#[derive(Clone, Default)]
pub struct ContentHasher(Xxh3);

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentHasher")
    }
}

impl ContentHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self(Xxh3::new())
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Feeds every byte `reader` yields; returns how many there were.
    pub fn update_reader(&mut self, mut reader: impl Read) -> io::Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    self.0.update(&buf[..n]);
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The 128-bit digest.
    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// The hash of a file's whole content.
pub fn hash_file(path: &Path) -> io::Result<u128> {
    let mut h = ContentHasher::new();
    h.update_reader(File::open(path)?)?;
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_change_changes_the_file_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let h0 = hash_file(&p).unwrap();
        for pos in [0, 1 << 20, 1_500_000, bytes.len() - 1] {
            bytes[pos] ^= 1;
            std::fs::write(&p, &bytes).unwrap();
            assert_ne!(hash_file(&p).unwrap(), h0, "flip at {pos}");
            bytes[pos] ^= 1;
        }
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(hash_file(&p).unwrap(), h0);
    }
}
