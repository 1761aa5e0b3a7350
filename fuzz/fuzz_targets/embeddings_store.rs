//! Arbitrary bytes into the embeddings store reader (`EmbeddingsStore::from_bytes`):
//! it must return an error or a store, never panic or allocate beyond the input, and
//! a store that opens must have one distinct id per row and read back every row,
//! whole and in blocks, with the same values.
#![no_main]

use std::collections::HashSet;

use latent_terms_encoders::EmbeddingsStore;

/// Rewrites the trailing CRC-32 (the last 4 bytes, over everything before them) so
/// the fuzzer also reaches the id and size checks behind the checksum.
fn with_valid_crc(data: &[u8]) -> Option<Vec<u8>> {
    let n = data.len().checked_sub(4)?;
    let mut fixed = data.to_vec();
    let crc = crc32fast::hash(&fixed[..n]);
    fixed[n..].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

fn exercise(bytes: Vec<u8>) {
    let len = bytes.len();
    let Ok(store) = EmbeddingsStore::from_bytes(bytes) else {
        return;
    };
    let (rows, dim) = (store.rows(), store.dim());
    assert!(dim > 0);
    assert_eq!(store.ids().len(), rows);
    assert!(rows.saturating_mul(dim).saturating_mul(store.dtype().size()) <= len);
    let distinct: HashSet<&str> = store.ids().iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), rows);
    let Ok(all) = store.load() else {
        // Only non-finite values can fail here: the bytes were verified on opening.
        return;
    };
    assert_eq!((all.rows(), all.dim()), (rows, dim));
    assert_eq!(all.ids(), store.ids());
    assert!(all.data().iter().all(|x| x.is_finite()));
    let mut joined = Vec::with_capacity(all.data().len());
    let mut blocks = store.blocks(3).expect("an in-memory store reopens");
    loop {
        let at = blocks.next_row();
        let Some(block) = blocks.next() else { break };
        let block = block.expect("blocks of a store that loads");
        assert_eq!(block.ids(), &store.ids()[at..at + block.rows()]);
        joined.extend_from_slice(block.data());
    }
    assert_eq!(joined.as_slice(), all.data());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exercise(data.to_vec());
    if let Some(fixed) = with_valid_crc(data) {
        exercise(fixed);
    }
});
