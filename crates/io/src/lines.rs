//! Line-oriented input with a bound on line length, plain or gzip.
//!
//! Runs reach millions of lines, so lines are cut out of a large read buffer in
//! place (no per-line copy). A line longer than the limit is a typed error
//! rather than an unbounded allocation: a 1 MB `.gz` can inflate to a 1 GiB line.
//!
//! **Memory bound:** the buffer holds at most the unread part of one block plus
//! one line, so it never grows past `2 × max(limit, 1 MiB)` bytes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The default longest line, in bytes: far above any real corpus document.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;

/// The environment variable that overrides [`DEFAULT_MAX_LINE_BYTES`] for every reader.
pub const MAX_LINE_BYTES_ENV: &str = "LATENT_TERMS_MAX_LINE_BYTES";

/// The line limit in force: `LATENT_TERMS_MAX_LINE_BYTES` if set to a positive
/// integer, else [`DEFAULT_MAX_LINE_BYTES`]. Read once per process.
pub fn max_line_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(MAX_LINE_BYTES_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_MAX_LINE_BYTES)
    })
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Reading (or decompressing) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The operating system's (or the decoder's) error.
        source: io::Error,
    },
    /// The line is not UTF-8.
    #[error("{}:{line}: the line is not valid UTF-8", path.display())]
    InvalidUtf8 {
        /// The file being read.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
    },
    /// The line is longer than the limit.
    #[error(
        "{}:{line}: the line is longer than {limit} bytes; if the file is trusted, raise the limit \
         with the environment variable {MAX_LINE_BYTES_ENV}", path.display()
    )]
    TooLong {
        /// The file being read.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
}

/// Opens a file for streaming, decompressing every member of a `.gz` file.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
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
///
/// ```
/// use latent_terms_io::Lines;
///
/// let mut lines = Lines::new(&b"a b\r\nc\n"[..], "<memory>");
/// assert_eq!(lines.next_line()?, Some((1, "a b")));
/// assert_eq!(lines.next_line()?, Some((2, "c")));
/// assert_eq!(lines.next_line()?, None);
///
/// let mut bounded = Lines::with_limit(&b"short\nmuch too long\n"[..], "<memory>", 8);
/// assert!(bounded.next_line().is_ok());
/// assert!(bounded.next_line().is_err());
/// # Ok::<(), latent_terms_io::LineError>(())
/// ```
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    limit: usize,
    path: PathBuf,
}

impl<R: Read> Lines<R> {
    /// Reads `reader` (named `path` in errors) with the limit of [`max_line_bytes`].
    pub fn new(reader: R, path: impl Into<PathBuf>) -> Self {
        Self::with_limit(reader, path, max_line_bytes())
    }

    /// Reads `reader` with lines of at most `limit` bytes (terminator excluded).
    pub fn with_limit(reader: R, path: impl Into<PathBuf>, limit: usize) -> Self {
        Lines {
            reader,
            buf: vec![0; FIRST_BLOCK],
            start: 0,
            end: 0,
            eof: false,
            line: 0,
            limit,
            path: path.into(),
        }
    }

    /// The name used in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn too_long(&self, line: u64) -> LineError {
        LineError::TooLong {
            path: self.path.clone(),
            line,
            limit: self.limit,
        }
    }

    /// Moves the unread tail to the front of the buffer (growing it when one
    /// line fills it) and reads more; returns false at end of input.
    fn refill(&mut self) -> Result<bool, LineError> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        // The unread tail holds no newline here: it is the start of one line.
        // `+ 2` leaves room for a "\r\n" terminator right at the limit.
        if self.end > self.limit.saturating_add(2) {
            return Err(self.too_long(self.line + 1));
        }
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
                Err(e) => {
                    return Err(LineError::Io {
                        path: self.path.clone(),
                        source: e,
                    });
                }
            }
        }
    }

    /// Calls `f` with every line, in order. Whole blocks are validated as
    /// UTF-8 at once and lines are cut out of them in place, which is what
    /// makes multi-million-line runs cheap to read.
    pub fn for_each_line<E: From<LineError>>(
        &mut self,
        mut f: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E> {
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
                LineError::InvalidUtf8 {
                    path: self.path.clone(),
                    line,
                }
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
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.len() > self.limit {
                    return Err(self.too_long(self.line).into());
                }
                f(self.line, line)?;
            }
            self.start += region_len;
            if self.eof && self.start == self.end {
                return Ok(());
            }
        }
    }

    /// The next line, or `None` at end of input.
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>, LineError> {
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
        if bytes.len() > self.limit {
            return Err(self.too_long(self.line));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| LineError::InvalidUtf8 {
            path: self.path.clone(),
            line: self.line,
        })?;
        Ok(Some((self.line, text)))
    }
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
                Ok::<_, LineError>(())
            })
            .unwrap();
        assert_eq!(seen, [(1, 3), (2, 2 * BLOCK + 7), (3, 0), (4, 4)]);
        let err = Lines::new(&b"ok\nok\nbad \xff\n"[..], "m")
            .for_each_line(|_, _| Ok::<_, LineError>(()))
            .unwrap_err();
        assert!(matches!(err, LineError::InvalidUtf8 { line: 3, .. }));
    }

    /// A reader that yields `len` bytes of `b'x'` without ever holding them.
    struct Endless(u64);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(b'x');
            self.0 -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn an_endless_line_stops_at_the_limit_with_bounded_memory() {
        let limit = 3 * BLOCK;
        let mut lines = Lines::with_limit(Endless(1 << 40), "bomb", limit);
        let err = lines.next_line().unwrap_err();
        assert!(matches!(err, LineError::TooLong { line: 1, .. }), "{err}");
        assert!(
            lines.buf.len() <= 2 * limit.max(BLOCK) + BLOCK,
            "{}",
            lines.buf.len()
        );
        let mut lines = Lines::with_limit(Endless(1 << 40), "bomb", limit);
        let err = lines
            .for_each_line(|_, _| Ok::<_, LineError>(()))
            .unwrap_err();
        assert!(matches!(err, LineError::TooLong { line: 1, .. }), "{err}");
        assert!(lines.buf.len() <= 2 * limit.max(BLOCK) + BLOCK);
    }

    #[test]
    fn the_limit_is_inclusive_and_ignores_the_terminator() {
        for (text, ok) in [
            ("12345678\r\n", true),
            ("12345678\n", true),
            ("12345678", true),
            ("123456789\n", false),
            ("ok\n123456789", false),
        ] {
            let mut a = Lines::with_limit(text.as_bytes(), "m", 8);
            let mut got = Ok(());
            while let Some(r) = a.next_line().transpose() {
                if let Err(e) = r {
                    got = Err(e);
                    break;
                }
            }
            assert_eq!(got.is_ok(), ok, "next_line {text:?}");
            let r = Lines::with_limit(text.as_bytes(), "m", 8)
                .for_each_line(|_, _| Ok::<_, LineError>(()));
            assert_eq!(r.is_ok(), ok, "for_each_line {text:?}");
        }
    }

    #[test]
    fn every_gzip_member_is_read() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.gz");
        let mut bytes = Vec::new();
        for part in ["a\n", "b\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part.as_bytes()).unwrap();
            bytes.extend(enc.finish().unwrap());
        }
        std::fs::write(&path, bytes).unwrap();
        let mut lines = Lines::new(open(&path).unwrap(), &path);
        assert_eq!(lines.next_line().unwrap(), Some((1, "a")));
        assert_eq!(lines.next_line().unwrap(), Some((2, "b")));
    }
}
