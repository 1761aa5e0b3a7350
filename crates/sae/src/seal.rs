//! The CRC-32 that seals our safetensors files (resume state, latents): every tensor's
//! bytes in the format's fixed order, then every `__metadata__` entry except `crc32`
//! itself, in key order, each key and value preceded by its length as a little-endian
//! `u64`. Editing a tensor, a metadata value or the format tag breaks the seal.
//!
//! In Python: `crc = zlib.crc32(blob, crc)` over the tensors, then for each
//! `k, v` in `sorted(meta.items())` with `k != "crc32"`:
//! `struct.pack("<Q", len(k)) + k + struct.pack("<Q", len(v)) + v`.

use std::collections::HashMap;

/// The metadata key holding the seal.
pub(crate) const CRC_KEY: &str = "crc32";

/// The seal of `tensors` (in order) and `meta`, as 8 hex digits.
pub(crate) fn seal<'a>(
    tensors: impl IntoIterator<Item = &'a [u8]>,
    meta: &HashMap<String, String>,
) -> String {
    let mut crc = crc32fast::Hasher::new();
    for t in tensors {
        crc.update(t);
    }
    let mut entries: Vec<(&String, &String)> =
        meta.iter().filter(|(k, _)| k.as_str() != CRC_KEY).collect();
    entries.sort();
    for (k, v) in entries {
        for field in [k.as_bytes(), v.as_bytes()] {
            crc.update(&(field.len() as u64).to_le_bytes());
            crc.update(field);
        }
    }
    format!("{:08x}", crc.finalize())
}

/// Checks the stored seal; the reason on failure.
pub(crate) fn check<'a>(
    tensors: impl IntoIterator<Item = &'a [u8]>,
    meta: &HashMap<String, String>,
) -> Result<(), String> {
    let stored = meta.get(CRC_KEY).ok_or("no crc32 in __metadata__")?;
    let computed = seal(tensors, meta);
    if *stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored}, computed {computed}): the file is corrupt or was edited"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_values_and_keys_are_sealed() {
        let meta = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        let base = seal([&b"abc"[..]], &meta("step", "5"));
        assert_ne!(base, seal([&b"abc"[..]], &meta("step", "6")));
        assert_ne!(base, seal([&b"abd"[..]], &meta("step", "5")));
        assert_ne!(base, seal([&b"abc"[..]], &meta("stepx", "5")));
        // Fields cannot run into each other.
        assert_ne!(seal([], &meta("ab", "c")), seal([], &meta("a", "bc")));
        let mut with_crc = meta("step", "5");
        with_crc.insert(CRC_KEY.into(), base.clone());
        assert!(check([&b"abc"[..]], &with_crc).is_ok());
        assert!(check([&b"abc"[..]], &meta("step", "5")).is_err());
    }
}
