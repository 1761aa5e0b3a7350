//! Line-oriented input shared by the qrels, run and BEIR readers.

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
        Box::new(BufReader::with_capacity(1 << 20, file))
    })
}

/// Reads lines as UTF-8 `&str` into a reused buffer, counting line numbers
/// and stripping the line terminator (`\n` or `\r\n`).
pub(crate) struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    path: PathBuf,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R, path: impl Into<PathBuf>) -> Self {
        Lines {
            reader,
            buf: Vec::with_capacity(256),
            line: 0,
            path: path.into(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next line, or `None` at end of input.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut end = self.buf.len();
        if end > 0 && self.buf[end - 1] == b'\n' {
            end -= 1;
        }
        if end > 0 && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let text = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| Error::parse(&self.path, self.line, ParseErrorKind::InvalidUtf8))?;
        Ok(Some((self.line, text)))
    }
}

/// A reader over an in-memory byte slice, named for error messages.
pub(crate) fn memory_reader(bytes: &[u8]) -> impl BufRead + '_ {
    io::Cursor::new(bytes)
}

/// Splits on ASCII whitespace into at most `N` fields; returns the number found
/// (counting any beyond `N`).
pub(crate) fn split_fields<'a, const N: usize>(line: &'a str, out: &mut [&'a str; N]) -> usize {
    let mut count = 0;
    for field in line.split_ascii_whitespace() {
        if count < N {
            out[count] = field;
        }
        count += 1;
    }
    count
}

/// Reads everything from `reader` (used for stdin-like sources).
#[allow(dead_code)]
pub(crate) fn read_all(mut reader: impl Read, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}
