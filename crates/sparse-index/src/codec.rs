//! Posting block compression: delta-encoded doc ids and weights, bit packed in blocks of
//! 128 with the SIMD `bitpacking` crate; the last, partial block of a list is bit packed by a
//! small scalar packer so rare terms do not pay for 128 slots. `docs/index-format.md`
//! documents the byte layout.

use bitpacking::{BitPacker, BitPacker4x};

use crate::builder::WeightEncoding;
use crate::error::{IndexError, Result};

/// Postings per block.
pub(crate) const BLOCK_LEN: usize = BitPacker4x::BLOCK_LEN;

/// Largest integer code a packed weight may have: f32 represents every integer up to
/// 2^24 exactly, so decoding never rounds.
pub(crate) const MAX_CODE: u32 = 1 << 24;

/// Weights of one block as the encoder receives them.
pub(crate) enum BlockWeights<'a> {
    /// Raw f32 weights (stored as 4 little-endian bytes each).
    Float(&'a [f32]),
    /// Integer codes `>= 1` (stored bit packed as `code - 1`).
    Codes(&'a [u32]),
}

fn bits_for(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

/// Bytes a block occupies, from its header fields. `None` on nonsensical bit widths.
pub(crate) fn block_byte_len(
    count: usize,
    doc_bits: u8,
    weight_bits: u8,
    encoding: WeightEncoding,
) -> Option<usize> {
    if doc_bits > 32 || weight_bits > 32 || count == 0 || count > BLOCK_LEN {
        return None;
    }
    let packed = |bits: u8| (count * bits as usize).div_ceil(8);
    let weights = match encoding {
        WeightEncoding::Float32 => {
            if weight_bits != 32 {
                return None;
            }
            count * 4
        }
        WeightEncoding::Integer | WeightEncoding::Quantized { .. } => packed(weight_bits),
    };
    Some(packed(doc_bits) + weights)
}

/// Appends one block and returns `(doc_bits, weight_bits)`.
///
/// `docs` must be strictly increasing and greater than `prev_last`; weights aligned.
pub(crate) fn encode_block(
    docs: &[u32],
    weights: BlockWeights<'_>,
    prev_last: Option<u32>,
    out: &mut Vec<u8>,
) -> (u8, u8) {
    // The first delta is taken from u32::MAX (wrapping) when there is no previous block,
    // exactly as `bitpacking`'s strictly sorted codec does, so both packers agree.
    let mut deltas = [0u32; BLOCK_LEN];
    let mut prev = prev_last.unwrap_or(u32::MAX);
    for (slot, &d) in deltas.iter_mut().zip(docs) {
        *slot = d.wrapping_sub(prev).wrapping_sub(1);
        prev = d;
    }
    let deltas = &deltas[..docs.len()];
    let doc_bits = bits_for(deltas.iter().copied().max().unwrap_or(0));
    let full = docs.len() == BLOCK_LEN;
    if full {
        let packer = BitPacker4x::new();
        let start = out.len();
        out.resize(start + BitPacker4x::compressed_block_size(doc_bits), 0);
        packer.compress(deltas, &mut out[start..], doc_bits);
    } else {
        pack_bits(deltas, doc_bits, out);
    }
    let weight_bits = match weights {
        BlockWeights::Float(ws) => {
            for w in ws {
                out.extend_from_slice(&w.to_le_bytes());
            }
            32
        }
        BlockWeights::Codes(codes) => {
            let mut minus_one = [0u32; BLOCK_LEN];
            for (slot, &c) in minus_one.iter_mut().zip(codes) {
                *slot = c.saturating_sub(1);
            }
            let values = &minus_one[..codes.len()];
            let bits = bits_for(values.iter().copied().max().unwrap_or(0));
            if full {
                let packer = BitPacker4x::new();
                let start = out.len();
                out.resize(start + BitPacker4x::compressed_block_size(bits), 0);
                packer.compress(values, &mut out[start..], bits);
            } else {
                pack_bits(values, bits, out);
            }
            bits
        }
    };
    (doc_bits, weight_bits)
}

/// Where a block is and how it was encoded; the segment validated all of it on open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockLayout {
    pub(crate) count: usize,
    pub(crate) doc_bits: u8,
    pub(crate) weight_bits: u8,
    pub(crate) prev_last: Option<u32>,
    pub(crate) last_doc: u32,
}

/// Decodes a block into `docs[..count]` and `weights[..count]`.
///
/// Verifies what the CRC cannot vouch for on a hand-crafted file: doc ids strictly
/// increase and end at the block header's last doc, and float weights are finite and
/// positive. A failure means the index is corrupt, not a bug, so it is an error.
pub(crate) fn decode_block(
    data: &[u8],
    layout: BlockLayout,
    encoding: WeightEncoding,
    docs: &mut [u32; BLOCK_LEN],
    weights: &mut [f32; BLOCK_LEN],
) -> Result<()> {
    let weight_data = decode_doc_part(data, layout, encoding, docs)?;
    let BlockLayout {
        count, weight_bits, ..
    } = layout;
    let corrupt = |what: &str| IndexError::corrupted(format!("posting block: {what}"));
    let full = count == BLOCK_LEN;
    match encoding {
        WeightEncoding::Float32 => {
            let mut valid = true;
            for (w, bytes) in weights[..count].iter_mut().zip(weight_data.chunks_exact(4)) {
                *w = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                valid &= w.is_finite() & (*w > 0.0);
            }
            if !valid {
                return Err(corrupt("weight is not finite and positive"));
            }
        }
        WeightEncoding::Integer | WeightEncoding::Quantized { .. } => {
            let mut codes = [0u32; BLOCK_LEN];
            if full {
                BitPacker4x::new().decompress(weight_data, &mut codes, weight_bits);
            } else {
                unpack_bits(weight_data, weight_bits, &mut codes[..count])?;
            }
            let max = codes[..count].iter().copied().fold(0, u32::max);
            if max >= MAX_CODE {
                return Err(corrupt("weight code out of range"));
            }
            for (w, &c) in weights[..count].iter_mut().zip(&codes[..count]) {
                *w = decode_code(c + 1, encoding);
            }
        }
    }
    Ok(())
}

/// Decodes only the doc ids of a block into `docs[..count]` (validated as in
/// [`decode_block`]); returns the block's undecoded weight part. Passes that need the doc
/// ids but not the weights (the impact scan of the two-phase search) skip the weights.
pub(crate) fn decode_doc_part<'d>(
    data: &'d [u8],
    layout: BlockLayout,
    encoding: WeightEncoding,
    docs: &mut [u32; BLOCK_LEN],
) -> Result<&'d [u8]> {
    let BlockLayout {
        count,
        doc_bits,
        weight_bits,
        prev_last,
        last_doc,
    } = layout;
    let corrupt = |what: &str| IndexError::corrupted(format!("posting block: {what}"));
    let expected = block_byte_len(count, doc_bits, weight_bits, encoding)
        .ok_or_else(|| corrupt("invalid header"))?;
    if data.len() != expected {
        return Err(corrupt("length does not match its bit widths"));
    }
    let full = count == BLOCK_LEN;
    let doc_bytes = (count * doc_bits as usize).div_ceil(8);
    let (doc_data, weight_data) = data.split_at(doc_bytes);
    if full {
        BitPacker4x::new().decompress_strictly_sorted(prev_last, doc_data, docs, doc_bits);
    } else {
        unpack_bits(doc_data, doc_bits, &mut docs[..count])?;
        let mut prev = prev_last.unwrap_or(u32::MAX);
        for d in &mut docs[..count] {
            prev = prev.wrapping_add(*d).wrapping_add(1);
            *d = prev;
        }
    }
    // Branch-free checks so the loops vectorise; one test at the end.
    let mut increasing = true;
    for i in 1..count {
        increasing &= docs[i - 1] < docs[i];
    }
    let docs_ok =
        increasing && prev_last.is_none_or(|p| docs[0] > p) && docs[count - 1] == last_doc;
    if !docs_ok {
        return Err(corrupt("doc ids are not strictly increasing"));
    }
    Ok(weight_data)
}

/// The weight a stored integer code stands for. Builder and decoder share this function,
/// so document lengths computed at build time match what searches decode.
pub(crate) fn decode_code(code: u32, encoding: WeightEncoding) -> f32 {
    match encoding {
        WeightEncoding::Quantized { scale } => code as f32 / scale,
        WeightEncoding::Integer | WeightEncoding::Float32 => code as f32,
    }
}

/// Value `i` of a full block packed by `BitPacker4x` with `bits` bits, read in place:
/// lane `i mod 4` holds it as its value `i / 4`, packed LSB-first into that lane's 32-bit
/// words, which are interleaved by lane (docs/index-format.md). `None` if `data` is short.
pub(crate) fn packed4x_at(data: &[u8], bits: u8, i: usize) -> Option<u32> {
    if bits == 0 {
        return Some(0);
    }
    let (lane, bit) = (i % 4, (i / 4) * bits as usize);
    let word = |w: usize| -> Option<u64> {
        let at = (w * 4 + lane) * 4;
        let b = data.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let (w, shift) = (bit / 32, bit % 32);
    let mut v = word(w)? >> shift;
    if shift + bits as usize > 32 {
        v |= word(w + 1)? << (32 - shift);
    }
    Some((v & mask(bits)) as u32)
}

/// Value `i` of plain LSB-first bit packing with `bits` bits, read in place.
pub(crate) fn packed_at(data: &[u8], bits: u8, i: usize) -> Option<u32> {
    if bits == 0 {
        return Some(0);
    }
    let bit = i * bits as usize;
    let (byte, shift) = (bit / 8, bit % 8);
    let needed = (shift + bits as usize).div_ceil(8);
    let mut v = 0u64;
    for (k, &b) in data.get(byte..byte + needed)?.iter().enumerate() {
        v |= u64::from(b) << (8 * k);
    }
    Some(((v >> shift) & mask(bits)) as u32)
}

fn mask(bits: u8) -> u64 {
    if bits >= 32 {
        u64::from(u32::MAX)
    } else {
        (1u64 << bits) - 1
    }
}

/// LSB-first bit packing of `values` into `ceil(len * bits / 8)` bytes.
fn pack_bits(values: &[u32], bits: u8, out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    for &v in values {
        acc |= u64::from(v) << filled;
        filled += u32::from(bits);
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
}

/// Inverse of [`pack_bits`] for `out.len()` values.
fn unpack_bits(data: &[u8], bits: u8, out: &mut [u32]) -> Result<()> {
    if bits > 32 || data.len() != (out.len() * bits as usize).div_ceil(8) {
        return Err(IndexError::corrupted(
            "posting block: packed length mismatch",
        ));
    }
    let mask: u64 = if bits == 32 {
        u64::from(u32::MAX)
    } else {
        (1u64 << bits) - 1
    };
    let mut bytes = data.iter();
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    for slot in out.iter_mut() {
        while filled < u32::from(bits) {
            let byte = bytes.next().copied().unwrap_or(0);
            acc |= u64::from(byte) << filled;
            filled += 8;
        }
        *slot = (acc & mask) as u32;
        acc >>= bits;
        filled -= u32::from(bits);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(docs: &[u32], codes: &[u32], prev: Option<u32>, enc: WeightEncoding) {
        let mut out = Vec::new();
        let floats: Vec<f32> = codes.iter().map(|&c| c as f32).collect();
        let weights = match enc {
            WeightEncoding::Float32 => BlockWeights::Float(&floats),
            _ => BlockWeights::Codes(codes),
        };
        let (db, wb) = encode_block(docs, weights, prev, &mut out);
        assert_eq!(
            Some(out.len()),
            block_byte_len(docs.len(), db, wb, enc),
            "declared length"
        );
        let mut d = [0u32; BLOCK_LEN];
        let mut w = [0f32; BLOCK_LEN];
        let layout = BlockLayout {
            count: docs.len(),
            doc_bits: db,
            weight_bits: wb,
            prev_last: prev,
            last_doc: docs[docs.len() - 1],
        };
        decode_block(&out, layout, enc, &mut d, &mut w).expect("decodes");
        assert_eq!(&d[..docs.len()], docs);
        for (got, &c) in w[..docs.len()].iter().zip(codes) {
            assert_eq!(*got, decode_code(c, enc));
        }
    }

    proptest! {
        #[test]
        fn blocks_round_trip(
            mut docs in proptest::collection::btree_set(0u32..u32::MAX - 1, 1..=128usize)
                .prop_map(|s| s.into_iter().collect::<Vec<_>>()),
            code in 1u32..MAX_CODE,
            full in any::<bool>(),
            enc in 0usize..3,
        ) {
            if full {
                // Force a full block to exercise the SIMD packer.
                docs = (0..128u32).map(|i| i * 7 + 3).collect();
            }
            let prev = docs[0].checked_sub(1).filter(|_| docs[0] % 2 == 0);
            let codes: Vec<u32> = (0..docs.len() as u32).map(|i| (code + i) % MAX_CODE + 1).collect();
            let codes: Vec<u32> = codes.into_iter().map(|c| c.min(MAX_CODE)).collect();
            let enc = [WeightEncoding::Float32, WeightEncoding::Integer, WeightEncoding::Quantized { scale: 8.0 }][enc];
            round_trip(&docs, &codes, prev, enc);
        }
    }

    /// `len` values spread over the whole range of a `bits`-wide field (all 0 at width 0).
    fn spread_values(len: usize, bits: u8) -> Vec<u32> {
        (0..len as u32)
            .map(|i| {
                if bits == 0 {
                    0
                } else {
                    i.wrapping_mul(2_654_435_761) >> (32 - bits)
                }
            })
            .collect()
    }

    #[test]
    fn values_are_read_in_place_at_every_width() {
        for bits in 0..=32u8 {
            for len in [128usize, 77, 1] {
                let values = spread_values(len, bits);
                let mut out = Vec::new();
                if len == BLOCK_LEN {
                    out.resize(BitPacker4x::compressed_block_size(bits), 0);
                    BitPacker4x::new().compress(&values, &mut out, bits);
                } else {
                    pack_bits(&values, bits, &mut out);
                }
                for (i, &v) in values.iter().enumerate() {
                    let got = if len == BLOCK_LEN {
                        packed4x_at(&out, bits, i)
                    } else {
                        packed_at(&out, bits, i)
                    };
                    assert_eq!(got, Some(v), "bits {bits} len {len} at {i}");
                }
            }
        }
    }

    #[test]
    fn corrupt_blocks_are_errors() {
        let docs: Vec<u32> = (0..128).map(|i| i * 3).collect();
        let codes: Vec<u32> = (1..=128).collect();
        let mut out = Vec::new();
        let (db, wb) = encode_block(&docs, BlockWeights::Codes(&codes), None, &mut out);
        let mut d = [0u32; BLOCK_LEN];
        let mut w = [0f32; BLOCK_LEN];
        let layout = BlockLayout {
            count: 128,
            doc_bits: db,
            weight_bits: wb,
            prev_last: None,
            last_doc: 382,
        };
        assert!(decode_block(&out, layout, WeightEncoding::Integer, &mut d, &mut w).is_err());
        let short = BlockLayout {
            last_doc: 381,
            ..layout
        };
        decode_block(&out, short, WeightEncoding::Integer, &mut d, &mut w).expect("valid");
        assert!(
            decode_block(
                &out[..out.len().saturating_sub(1)],
                short,
                WeightEncoding::Integer,
                &mut d,
                &mut w
            )
            .is_err()
        );
        assert!(block_byte_len(0, 1, 1, WeightEncoding::Integer).is_none());
        assert!(block_byte_len(5, 33, 1, WeightEncoding::Integer).is_none());
        assert!(block_byte_len(5, 3, 7, WeightEncoding::Float32).is_none());
    }

    #[test]
    fn scalar_packer_handles_every_width() {
        for bits in 0..=32u8 {
            let values = spread_values(37, bits);
            let mut out = Vec::new();
            pack_bits(&values, bits, &mut out);
            let mut back = vec![0u32; values.len()];
            unpack_bits(&out, bits, &mut back).expect("valid");
            assert_eq!(back, values, "bits {bits}");
        }
    }
}
