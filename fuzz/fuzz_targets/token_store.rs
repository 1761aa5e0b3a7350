//! Arbitrary bytes into the token store reader (`TokenStore::from_bytes`): it must
//! return an error or a store, never panic or allocate beyond the input, and a store
//! that opens must read back every text, every block and every row range.
#![no_main]

use latent_terms_encoders::TokenStore;

/// Rewrites the CRC-32 field (bytes `len-16..len-12`, over everything before it) so
/// the fuzzer also reaches the table validation behind the checksum.
fn with_valid_crc(data: &[u8]) -> Option<Vec<u8>> {
    let n = data.len().checked_sub(16)?;
    let mut fixed = data.to_vec();
    let crc = crc32fast::hash(&fixed[..n]);
    fixed[n..n + 4].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

fn exercise(bytes: Vec<u8>) {
    let Ok(store) = TokenStore::from_bytes(bytes) else {
        return;
    };
    let (texts, tokens, dim) = (store.texts(), store.tokens(), store.dim());
    assert_eq!(store.ids().len(), texts);
    let mut rows = 0;
    for i in 0..texts {
        let range = store.text_range(i);
        assert_eq!(range.start, rows);
        rows = range.end;
        assert_eq!(store.token_ids(i).len(), range.len());
        assert_eq!(store.offsets(i).len(), range.len());
        if let Ok(t) = store.read_text(i) {
            assert_eq!(t.data.len(), t.len() * dim);
        }
    }
    assert_eq!(rows, tokens);
    let mut seen = 0;
    for block in store.blocks(3) {
        match block {
            Ok(b) => seen += b.len(),
            Err(_) => break,
        }
    }
    assert!(seen <= texts);
    let _ = store.read_rows(0..tokens);
    assert!(store.read_rows(tokens..tokens + 1).is_err());
    assert!(store.read_text(texts).is_err());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exercise(data.to_vec());
    if let Some(fixed) = with_valid_crc(data) {
        exercise(fixed);
    }
});
