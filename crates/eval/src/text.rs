//! Line-oriented input shared by the qrels, run and BEIR readers.
//!
//! Runs reach millions of lines, so lines are cut out of a large read buffer
//! in place (no per-line copy) and fields are split on bytes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, ParseErrorKind, Result};

/// Opens a file for streaming, transparently decompressing `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let is_gzip = path.extension().is_some_and(|ext| ext == "gz");
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(file),
        ))
    } else {
        // `Lines` does its own large-block buffering.
        Box::new(BufReader::with_capacity(1 << 12, file))
    })
}

/// Buffers start small so that parsing short inputs stays cheap, and double
/// up to `BLOCK` while reads keep filling them.
const FIRST_BLOCK: usize = 1 << 14;
const BLOCK: usize = 1 << 20;

/// Reads lines as UTF-8 `&str`, counting line numbers and stripping the line
/// terminator (`\n` or `\r\n`).
pub(crate) struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    path: PathBuf,
}

impl<R: Read> Lines<R> {
    pub(crate) fn new(reader: R, path: impl Into<PathBuf>) -> Self {
        Lines {
            reader,
            buf: vec![0; FIRST_BLOCK],
            start: 0,
            end: 0,
            eof: false,
            line: 0,
            path: path.into(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the unread tail to the front of the buffer (growing it when one
    /// line fills it) and reads more; returns false at end of input.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() || self.buf.len() < BLOCK {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(self.end > 0);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
    }

    /// Calls `f` with every line, in order. Whole blocks are validated as
    /// UTF-8 at once and lines are cut out of them in place, which is what
    /// makes multi-million-line runs cheap to read.
    pub(crate) fn for_each_line(
        &mut self,
        mut f: impl FnMut(u64, &str) -> Result<()>,
    ) -> Result<()> {
        loop {
            let available = &self.buf[self.start..self.end];
            let region_len = match memchr::memrchr(b'\n', available) {
                Some(p) => p + 1,
                None if self.eof => available.len(),
                None => {
                    if !self.refill()? {
                        return Ok(());
                    }
                    continue;
                }
            };
            if region_len == 0 {
                return Ok(());
            }
            let region = &self.buf[self.start..self.start + region_len];
            let text = std::str::from_utf8(region).map_err(|e| {
                let before = &region[..e.valid_up_to()];
                let line = self.line + 1 + memchr::memchr_iter(b'\n', before).count() as u64;
                Error::parse(&self.path, line, ParseErrorKind::InvalidUtf8)
            })?;
            let mut line_start = 0;
            // memchr's AVX2 search; `str::split` uses a slower generic one.
            let ends = memchr::memchr_iter(b'\n', region)
                .chain((!region.ends_with(b"\n")).then_some(region.len()));
            for end in ends {
                // Cutting at ASCII newlines keeps UTF-8 boundaries intact.
                let line = &text[line_start..end];
                line_start = end + 1;
                self.line += 1;
                f(self.line, line.strip_suffix('\r').unwrap_or(line))?;
            }
            self.start += region_len;
            if self.eof && self.start == self.end {
                return Ok(());
            }
        }
    }

    /// The next line, or `None` at end of input.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        let (from, to) = loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let from = self.start;
                self.start += pos + 1;
                break (from, from + pos);
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let from = self.start;
                self.start = self.end;
                break (from, self.end);
            }
            self.refill()?;
        };
        self.line += 1;
        let mut bytes = &self.buf[from..to];
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::parse(&self.path, self.line, ParseErrorKind::InvalidUtf8))?;
        Ok(Some((self.line, text)))
    }
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
    fn lines_across_refills_and_long_lines() {
        let long = "x".repeat(3 * BLOCK);
        let text = format!("a b\r\n{long}\n\nlast");
        let mut lines = Lines::new(text.as_bytes(), "m");
        assert_eq!(lines.next_line().unwrap(), Some((1, "a b")));
        assert_eq!(lines.next_line().unwrap().unwrap().1.len(), 3 * BLOCK);
        assert_eq!(lines.next_line().unwrap(), Some((3, "")));
        assert_eq!(lines.next_line().unwrap(), Some((4, "last")));
        assert_eq!(lines.next_line().unwrap(), None);
    }

    #[test]
    fn for_each_line_matches_next_line_and_locates_bad_utf8() {
        let long = "y".repeat(2 * BLOCK + 7);
        let text = format!("a b\r\n{long}\n\nlast");
        let mut seen = Vec::new();
        Lines::new(text.as_bytes(), "m")
            .for_each_line(|n, l| {
                seen.push((n, l.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [(1, 3), (2, 2 * BLOCK + 7), (3, 0), (4, 4)]);
        let err = Lines::new(&b"ok\nok\nbad \xff\n"[..], "m")
            .for_each_line(|_, _| Ok(()))
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                line: 3,
                kind: ParseErrorKind::InvalidUtf8,
                ..
            }
        ));
    }

    #[test]
    fn splits_on_any_ascii_whitespace() {
        let mut f = [""; 3];
        assert_eq!(split_fields(" a\tbé  c d ", &mut f), 4);
        assert_eq!(f, ["a", "bé", "c"]);
        assert_eq!(split_fields("   ", &mut f), 0);
    }
}
