//! A fast, non-cryptographic hasher for short document ids.
//!
//! Evaluation looks up millions of short docnos; SipHash (std's default) is
//! needlessly slow for this and the inputs are not adversarial in a way that
//! matters for an offline evaluator.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over 8-byte words, finished with a multiply-xorshift mix.
#[derive(Default, Clone, Copy)]
pub(crate) struct DocnoHasher(u64);

impl Hasher for DocnoHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
            h ^= h >> 29;
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

pub(crate) type BuildDocnoHasher = BuildHasherDefault<DocnoHasher>;
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildDocnoHasher>;

/// For keys that already are well-mixed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are expected; other input still hashes correctly.
        let mut inner = DocnoHasher(self.0);
        inner.write(bytes);
        self.0 = inner.finish();
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type PrehashedMap<V> =
    std::collections::HashMap<u64, V, BuildHasherDefault<PrehashedHasher>>;
