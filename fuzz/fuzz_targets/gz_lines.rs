//! Arbitrary bytes through `flate2::read::MultiGzDecoder` into the bounded
//! `latent_terms_io::Lines` reader (small limit), and the same bytes as plain text:
//! every input gives lines or a typed `LineError`, never a panic, and no line handed
//! out exceeds the limit. Decoded text that reads also goes to the eval qrels and
//! run parsers.
#![no_main]

use std::io::Read;

use latent_terms_eval::{Qrels, Run};
use latent_terms_io::{LineError, Lines};

/// Small, so that both the in-buffer and the refill paths of the limit are exercised.
const LIMIT: usize = 64;

/// Reads every line of `reader` both ways (`next_line` and `for_each_line` on a second
/// copy of the bytes) and checks they agree; returns the text when every line read.
fn read_all(bytes: &[u8]) -> Option<String> {
    let mut by_next = Vec::new();
    let mut lines = Lines::with_limit(bytes, "fuzz", LIMIT);
    let next_ok = loop {
        match lines.next_line() {
            Ok(Some((n, line))) => {
                assert!(line.len() <= LIMIT, "line {n} is {} bytes", line.len());
                by_next.push((n, line.to_owned()));
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    let mut by_each = Vec::new();
    let each = Lines::with_limit(bytes, "fuzz", LIMIT).for_each_line(|n, line| {
        assert!(line.len() <= LIMIT, "line {n} is {} bytes", line.len());
        by_each.push((n, line.to_owned()));
        Ok::<_, LineError>(())
    });
    assert_eq!(next_ok, each.is_ok(), "both readers agree on failure");
    if next_ok {
        assert_eq!(by_next, by_each, "both readers give the same lines");
        let mut text = String::new();
        for (_, line) in by_next {
            text.push_str(&line);
            text.push('\n');
        }
        Some(text)
    } else {
        None
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Plain text.
    let _ = read_all(data);
    // Gzip (every member); stop decoding at 64 KiB so a bomb costs nothing.
    let mut decoded = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(64 << 10);
    if decoder.read_to_end(&mut decoded).is_err() {
        return;
    }
    let Some(text) = read_all(&decoded) else {
        return;
    };
    let _ = Qrels::from_reader(text.as_bytes(), "fuzz.qrels.gz");
    let _ = Run::from_reader(text.as_bytes(), "fuzz.run.gz");
});
