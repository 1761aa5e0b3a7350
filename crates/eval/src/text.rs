//! Line-oriented input shared by the qrels, run and BEIR readers.
//!
//! Runs reach millions of lines, so lines are cut out of a large read buffer
//! in place (no per-line copy) and fields are split on bytes.

use std::io::{self, BufRead};
use std::path::Path;

use crate::error::{Error, Result};

pub(crate) use latent_terms_io::Lines;

/// Opens a file for streaming, transparently decompressing `.gz` (every member).
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    Ok(latent_terms_io::open(path).map_err(|e| Error::io(path, e))?)
}

/// A reader over an in-memory byte slice.
pub(crate) fn memory_reader(bytes: &[u8]) -> impl BufRead + '_ {
    io::Cursor::new(bytes)
}

/// ASCII whitespace as `u8::is_ascii_whitespace` defines it, as a table: one
/// load per byte instead of five comparisons.
static IS_SPACE: [bool; 256] = {
    let mut table = [false; 256];
    table[b' ' as usize] = true;
    table[b'\t' as usize] = true;
    table[b'\n' as usize] = true;
    table[0x0C] = true;
    table[b'\r' as usize] = true;
    table
};

/// Splits on ASCII whitespace into at most `N` fields; returns the number of
/// fields found (counting any beyond `N`).
pub(crate) fn split_fields<'a, const N: usize>(line: &'a str, out: &mut [&'a str; N]) -> usize {
    let bytes = line.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && IS_SPACE[bytes[i] as usize] {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && !IS_SPACE[bytes[i] as usize] {
            i += 1;
        }
        if count < N {
            // Cutting at ASCII bytes keeps UTF-8 boundaries intact.
            out[count] = &line[start..i];
        }
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_any_ascii_whitespace() {
        let mut f = [""; 3];
        assert_eq!(split_fields(" a\tbé  c d ", &mut f), 4);
        assert_eq!(f, ["a", "bé", "c"]);
        assert_eq!(split_fields("   ", &mut f), 0);
    }
}
