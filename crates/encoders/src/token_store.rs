//! Token store: per-token vectors of many texts in one checksummed file, written by
//! streaming appends and read back block by block.
//!
//! # Format (version 1, all integers little-endian)
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `LTTOKST\0` |
//! | 4 | version `u32` = 1 |
//! | 4 | dtype `u32`: 1 = F32, 2 = F16 |
//! | 8 | `header_len` `u64` |
//! | `header_len` | header: UTF-8 JSON object (`format` = `latent-terms-tokens`, `model`, `dim`, `max_length`, `special_tokens`, `prefix`, `kind`) |
//! | 0–7 | zero padding, so the data starts 8-byte aligned at `data_start = align8(24 + header_len)` |
//! | `tokens × dim × size` | data: one row per token, texts one after another, row-major |
//! | `8 × (texts + 1)` | row offsets `u64`: text `i` is rows `[off[i], off[i+1])`; `off[0] = 0`, `off[texts] = tokens` |
//! | `4 × tokens` | token ids `u32` |
//! | `8 × tokens` | byte offsets `(start u32, end u32)` into each text |
//! | `4 × texts` | id lengths `u32` |
//! | `ids_bytes` | the ids, UTF-8, concatenated |
//! | 64 | trailer: `texts`, `tokens`, `data_start`, `tables_start`, `ids_bytes`, 0 (six `u64`), `crc32` `u32`, 0 `u32`, magic `LTTOKEND` |
//!
//! The CRC-32 (IEEE, as `crc32fast`) covers every byte of the file before the
//! `crc32` field. The trailer is at the end because the counts are only known when
//! the writer finishes; the header at the front is known from the start.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use latent_terms_io::AtomicFile;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::store::StoreDtype;
use crate::tokens::{SpecialTokens, TokenVectors};

/// The `format` value in the header of every token store.
pub const TOKEN_STORE_FORMAT: &str = "latent-terms-tokens";
/// The format version written and accepted.
pub const TOKEN_STORE_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"LTTOKST\0";
const END_MAGIC: &[u8; 8] = b"LTTOKEND";
const PREFIX_LEN: u64 = 24;
const TRAILER_LEN: u64 = 64;
/// Largest header accepted on reading.
const MAX_HEADER: u64 = 1 << 20;
/// Bytes read at a time while verifying the checksum.
const CHUNK: usize = 1 << 20;

/// What produced the token vectors of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenStoreMetadata {
    /// Model name.
    pub model: String,
    /// Vector dimension.
    pub dim: usize,
    /// Maximum tokens per text (special tokens included) the texts were truncated to.
    pub max_length: usize,
    /// Which tokens were kept.
    pub special_tokens: SpecialTokens,
    /// The prefix put in front of every text before tokenising.
    pub prefix: String,
    /// `"query"` or `"passage"`.
    pub kind: String,
}

fn dtype_code(d: StoreDtype) -> u32 {
    match d {
        StoreDtype::F32 => 1,
        StoreDtype::F16 => 2,
    }
}

fn header_json(meta: &TokenStoreMetadata) -> Vec<u8> {
    json!({
        "format": TOKEN_STORE_FORMAT,
        "model": meta.model,
        "dim": meta.dim,
        "max_length": meta.max_length,
        "special_tokens": meta.special_tokens.as_str(),
        "prefix": meta.prefix,
        "kind": meta.kind,
    })
    .to_string()
    .into_bytes()
}

fn align8(x: u64) -> Option<u64> {
    x.checked_add(7).map(|v| v / 8 * 8)
}

/// A writer that checksums what it writes.
struct CrcWriter {
    inner: AtomicFile,
    crc: crc32fast::Hasher,
    written: u64,
}

impl CrcWriter {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

/// Writes a token store by streaming appends; the format is described in the
/// module documentation and in `docs/encoders.md` ("Token store").
///
/// Vectors go to a temporary file next to the destination as they come; memory
/// holds only the tables (8 bytes per text plus the id, 12 bytes per token for its
/// id and offsets). [`TokenStoreWriter::finish`] appends the tables and the
/// trailer, fsyncs, renames into place and fsyncs the directory, so a store is
/// either complete or absent. Dropping an unfinished writer removes the temporary
/// file.
///
/// ```no_run
/// use latent_terms_encoders::{SpecialTokens, StoreDtype, TokenStore, TokenStoreMetadata, TokenStoreWriter, TokenVectors};
///
/// let meta = TokenStoreMetadata {
///     model: "demo".into(), dim: 2, max_length: 256, special_tokens: SpecialTokens::Drop,
///     prefix: String::new(), kind: "passage".into(),
/// };
/// let mut w = TokenStoreWriter::create("demo.tokens", meta, StoreDtype::F16)?;
/// w.append(&TokenVectors { id: "d1".into(), dim: 2, token_ids: vec![7, 8], offsets: vec![(0, 3), (4, 6)], data: vec![0.5, 1.0, -1.0, 2.0] })?;
/// w.finish()?;
/// let store = TokenStore::open("demo.tokens")?;
/// assert_eq!((store.texts(), store.tokens()), (1, 2));
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
pub struct TokenStoreWriter {
    path: PathBuf,
    file: Option<CrcWriter>,
    meta: TokenStoreMetadata,
    dtype: StoreDtype,
    data_start: u64,
    row_offsets: Vec<u64>,
    token_ids: Vec<u32>,
    offsets: Vec<(u32, u32)>,
    ids: Vec<Arc<str>>,
    seen: HashSet<Arc<str>>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for TokenStoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStoreWriter")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("dtype", &self.dtype)
            .field("texts", &self.texts())
            .field("tokens", &self.tokens())
            .finish_non_exhaustive()
    }
}

impl TokenStoreWriter {
    /// Starts a store at `path`, written through [`latent_terms_io::AtomicFile`]
    /// (a new temporary file in the same directory) until
    /// [`TokenStoreWriter::finish`].
    ///
    /// # Errors
    /// [`Error::Config`] for a zero dimension or a path without a file name,
    /// [`Error::Io`] if the temporary file cannot be created or written.
    pub fn create(
        path: impl AsRef<Path>,
        meta: TokenStoreMetadata,
        dtype: StoreDtype,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if meta.dim == 0 {
            return Err(Error::Config(
                "token store dimension must be at least 1".into(),
            ));
        }
        if path.file_name().is_none() {
            return Err(Error::Config(format!(
                "{} is not a file path",
                path.display()
            )));
        }
        let file = AtomicFile::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = CrcWriter {
            inner: file,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        let header = header_json(&meta);
        let data_start = align8(PREFIX_LEN + header.len() as u64).unwrap_or(u64::MAX);
        let pad = (data_start - PREFIX_LEN - header.len() as u64) as usize;
        let res = w
            .put(MAGIC)
            .and_then(|()| w.put(&TOKEN_STORE_VERSION.to_le_bytes()))
            .and_then(|()| w.put(&dtype_code(dtype).to_le_bytes()))
            .and_then(|()| w.put(&(header.len() as u64).to_le_bytes()))
            .and_then(|()| w.put(&header))
            .and_then(|()| w.put(&[0u8; 8][..pad]));
        if let Err(e) = res {
            // Dropping the atomic file removes the temporary file.
            return Err(Error::io(&path, e));
        }
        Ok(TokenStoreWriter {
            path,
            file: Some(w),
            meta,
            dtype,
            data_start,
            row_offsets: vec![0],
            token_ids: Vec::new(),
            offsets: Vec::new(),
            ids: Vec::new(),
            seen: HashSet::new(),
            buf: Vec::new(),
        })
    }

    /// Texts appended so far.
    pub fn texts(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Token rows appended so far.
    pub fn tokens(&self) -> u64 {
        self.token_ids.len() as u64
    }

    /// The metadata being written.
    pub fn metadata(&self) -> &TokenStoreMetadata {
        &self.meta
    }

    /// The element type of the stored vectors.
    pub fn dtype(&self) -> StoreDtype {
        self.dtype
    }

    /// Appends one text's token vectors (an empty `TokenVectors` is a text with no
    /// rows). Nothing is written when an error is returned.
    ///
    /// # Errors
    /// [`Error::Dimension`] if `t.dim` differs from the store's, [`Error::Shape`]
    /// if its tables and data disagree, [`Error::DuplicateId`] for an id already
    /// appended, [`Error::NonFinite`] for a NaN or infinite value, checked after
    /// conversion to the stored type (70,000 overflows F16), with `row` the text's
    /// position in the store; [`Error::Io`] on write failure (the writer is then
    /// unusable).
    pub fn append(&mut self, t: &TokenVectors) -> Result<()> {
        if self.file.is_none() {
            return Err(Error::Config(
                "the token store writer failed earlier and cannot be used".into(),
            ));
        }
        if t.dim != self.meta.dim {
            return Err(Error::Dimension {
                expected: self.meta.dim,
                found: t.dim,
            });
        }
        t.check_shape()?;
        if u32::try_from(t.id.len()).is_err() {
            return Err(Error::Shape(format!(
                "text id of {} bytes is too long",
                t.id.len()
            )));
        }
        if self.seen.contains(t.id.as_str()) {
            return Err(Error::DuplicateId {
                path: self.path.clone(),
                id: t.id.clone(),
            });
        }
        let text = self.ids.len();
        let non_finite = |k: usize| Error::NonFinite {
            row: text,
            context: format!(
                "token {} of text {:?} is not finite as {} in {}",
                k / t.dim,
                t.id,
                self.dtype.as_str(),
                self.path.display()
            ),
        };
        self.buf.clear();
        self.buf.reserve(t.data.len() * self.dtype.size());
        match self.dtype {
            StoreDtype::F32 => {
                for (k, x) in t.data.iter().enumerate() {
                    if !x.is_finite() {
                        return Err(non_finite(k));
                    }
                    self.buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            StoreDtype::F16 => {
                for (k, x) in t.data.iter().enumerate() {
                    let h = half::f16::from_f32(*x);
                    if !h.is_finite() {
                        return Err(non_finite(k));
                    }
                    self.buf.extend_from_slice(&h.to_le_bytes());
                }
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Err(Error::Config(
                "the token store writer failed earlier and cannot be used".into(),
            ));
        };
        if let Err(e) = file.put(&self.buf) {
            // Dropping the atomic file removes the temporary file.
            self.file = None;
            return Err(Error::io(&self.path, e));
        }
        let id: Arc<str> = Arc::from(t.id.as_str());
        self.seen.insert(Arc::clone(&id));
        self.ids.push(id);
        self.token_ids.extend_from_slice(&t.token_ids);
        self.offsets.extend_from_slice(&t.offsets);
        self.row_offsets.push(self.token_ids.len() as u64);
        Ok(())
    }

    /// Writes the tables and the trailer, then commits the file atomically (fsync,
    /// rename into place, fsync of the directory). Returns the final path.
    ///
    /// # Errors
    /// [`Error::Io`] on write, sync or rename failure (the temporary file is
    /// removed and `path` is left as it was).
    pub fn finish(mut self) -> Result<PathBuf> {
        let path = self.path.clone();
        let mut w = self.file.take().ok_or_else(|| {
            Error::Config("the token store writer failed earlier and cannot be used".into())
        })?;
        let io = |e| Error::io(&path, e);
        let tables_start = w.written;
        let mut table = Vec::with_capacity(1 << 16);
        let flush = |w: &mut CrcWriter, table: &mut Vec<u8>, force: bool| {
            if force || table.len() >= 1 << 16 {
                w.put(table)?;
                table.clear();
            }
            Ok::<(), std::io::Error>(())
        };
        for o in &self.row_offsets {
            table.extend_from_slice(&o.to_le_bytes());
            flush(&mut w, &mut table, false).map_err(io)?;
        }
        for t in &self.token_ids {
            table.extend_from_slice(&t.to_le_bytes());
            flush(&mut w, &mut table, false).map_err(io)?;
        }
        for (s, e) in &self.offsets {
            table.extend_from_slice(&s.to_le_bytes());
            table.extend_from_slice(&e.to_le_bytes());
            flush(&mut w, &mut table, false).map_err(io)?;
        }
        let mut ids_bytes = 0u64;
        for id in &self.ids {
            table.extend_from_slice(&(id.len() as u32).to_le_bytes());
            ids_bytes += id.len() as u64;
            flush(&mut w, &mut table, false).map_err(io)?;
        }
        for id in &self.ids {
            table.extend_from_slice(id.as_bytes());
            flush(&mut w, &mut table, false).map_err(io)?;
        }
        flush(&mut w, &mut table, true).map_err(io)?;
        let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
        for v in [
            self.texts(),
            self.tokens(),
            self.data_start,
            tables_start,
            ids_bytes,
            0,
        ] {
            trailer.extend_from_slice(&v.to_le_bytes());
        }
        w.put(&trailer).map_err(io)?;
        let crc = w.crc.clone().finalize();
        let mut end = Vec::with_capacity(16);
        end.extend_from_slice(&crc.to_le_bytes());
        end.extend_from_slice(&0u32.to_le_bytes());
        end.extend_from_slice(END_MAGIC);
        w.inner.write_all(&end).map_err(io)?;
        w.inner.commit().map_err(io)?;
        Ok(path)
    }
}

trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

/// A token store opened for reading: metadata and tables in memory, vectors read
/// from disk on demand.
///
/// [`TokenStore::open`] checks the structure (magic, version, header, every size
/// against the file size before anything is allocated, the tables) and the CRC-32
/// of every byte, streaming over the file in 1 MiB chunks. Memory afterwards is the
/// tables: 8 bytes per text plus its id, 12 bytes per token. [`TokenStore::read_rows`]
/// and [`TokenStore::blocks`] read only the rows asked for, so a corpus larger
/// than memory is processed with one block of vectors in memory at a time.
///
/// Every malformed input gives a typed error ([`Error::InvalidTokenStore`],
/// [`Error::Checksum`], [`Error::NonFinite`], [`Error::Io`]), never a panic.
///
/// ```no_run
/// use latent_terms_encoders::TokenStore;
///
/// let store = TokenStore::open("corpus.tokens")?;
/// for block in store.blocks(1024) {
///     for text in block? {
///         println!("{}: {} tokens", text.id, text.len());
///     }
/// }
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
pub struct TokenStore {
    path: PathBuf,
    source: Mutex<Box<dyn Source>>,
    meta: TokenStoreMetadata,
    dtype: StoreDtype,
    data_start: u64,
    row_offsets: Vec<u64>,
    token_ids: Vec<u32>,
    offsets: Vec<(u32, u32)>,
    ids: Vec<String>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("dtype", &self.dtype)
            .field("texts", &self.texts())
            .field("tokens", &self.tokens())
            .finish_non_exhaustive()
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

impl TokenStore {
    /// Opens and fully verifies a token store.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::InvalidTokenStore`] for
    /// any structural problem, [`Error::Checksum`] when the bytes do not match the
    /// stored CRC-32.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Self::from_source(Box::new(file), len, path)
    }

    /// Opens a token store held in memory (the same checks as [`TokenStore::open`];
    /// errors name the path `<memory>`). Useful for tests and fuzzing.
    ///
    /// # Errors
    /// As [`TokenStore::open`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let len = bytes.len() as u64;
        Self::from_source(Box::new(Cursor::new(bytes)), len, PathBuf::from("<memory>"))
    }

    fn from_source(mut src: Box<dyn Source>, len: u64, path: PathBuf) -> Result<Self> {
        let bad = |m: String| Error::invalid_token_store(&path, m);
        let io = |e| Error::io(&path, e);
        if len < PREFIX_LEN + TRAILER_LEN {
            return Err(bad(format!("{len} bytes is too short for a token store")));
        }
        let mut prefix = [0u8; PREFIX_LEN as usize];
        src.seek(SeekFrom::Start(0)).map_err(io)?;
        src.read_exact(&mut prefix).map_err(io)?;
        if &prefix[..8] != MAGIC {
            return Err(bad("bad magic (not a latent-terms token store)".into()));
        }
        let version = u32_at(&prefix, 8);
        if version != TOKEN_STORE_VERSION {
            return Err(bad(format!(
                "format version {version}; this build reads version {TOKEN_STORE_VERSION}"
            )));
        }
        let dtype = match u32_at(&prefix, 12) {
            1 => StoreDtype::F32,
            2 => StoreDtype::F16,
            other => return Err(bad(format!("unknown dtype code {other}"))),
        };
        let header_len = u64_at(&prefix, 16);
        if header_len > MAX_HEADER || PREFIX_LEN + header_len > len - TRAILER_LEN {
            return Err(bad(format!(
                "header length {header_len} does not fit the file ({len} bytes)"
            )));
        }
        let mut trailer = [0u8; TRAILER_LEN as usize];
        src.seek(SeekFrom::Start(len - TRAILER_LEN)).map_err(io)?;
        src.read_exact(&mut trailer).map_err(io)?;
        if &trailer[56..] != END_MAGIC {
            return Err(bad(
                "bad trailer magic (truncated or unfinished file)".into()
            ));
        }
        let texts = u64_at(&trailer, 0);
        let tokens = u64_at(&trailer, 8);
        let data_start = u64_at(&trailer, 16);
        let tables_start = u64_at(&trailer, 24);
        let ids_bytes = u64_at(&trailer, 32);
        let stored_crc = u32_at(&trailer, 48);
        if u64_at(&trailer, 40) != 0 || u32_at(&trailer, 52) != 0 {
            return Err(bad("reserved trailer fields are not zero".into()));
        }
        if align8(PREFIX_LEN + header_len) != Some(data_start) {
            return Err(bad(format!(
                "data start {data_start} does not follow the {header_len}-byte header"
            )));
        }

        // Header (bounded by MAX_HEADER above).
        let mut header = vec![0u8; header_len as usize];
        src.seek(SeekFrom::Start(PREFIX_LEN)).map_err(io)?;
        src.read_exact(&mut header).map_err(io)?;
        let meta = parse_header(&header).map_err(bad)?;
        let dim = meta.dim as u64;

        // Sizes, checked against the file size before any allocation.
        let tables_end = len - TRAILER_LEN;
        let data_len = tokens
            .checked_mul(dim)
            .and_then(|v| v.checked_mul(dtype.size() as u64));
        let tables_len = texts
            .checked_add(1)
            .and_then(|t| t.checked_mul(8))
            .and_then(|v| v.checked_add(tokens.checked_mul(12)?))
            .and_then(|v| v.checked_add(texts.checked_mul(4)?))
            .and_then(|v| v.checked_add(ids_bytes));
        match (data_len, tables_len) {
            (Some(d), Some(t))
                if data_start.checked_add(d) == Some(tables_start)
                    && tables_start.checked_add(t) == Some(tables_end) => {}
            _ => {
                return Err(bad(format!(
                    "{texts} texts, {tokens} tokens of dimension {dim} and {ids_bytes} id bytes do not match the file size {len}"
                )));
            }
        }
        let (Ok(n_texts), Ok(n_tokens), Ok(ids_len)) = (
            usize::try_from(texts),
            usize::try_from(tokens),
            usize::try_from(ids_bytes),
        ) else {
            return Err(bad("counts do not fit in memory on this platform".into()));
        };

        // One streaming pass: checksum every byte before the crc field, keeping the tables.
        let crc_end = len - 16;
        let mut tables = Vec::with_capacity((tables_end - tables_start) as usize);
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        src.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut pos = 0u64;
        while pos < crc_end {
            let n = (crc_end - pos).min(CHUNK as u64) as usize;
            src.read_exact(&mut buf[..n]).map_err(io)?;
            hasher.update(&buf[..n]);
            let lo = pos.max(tables_start);
            let hi = (pos + n as u64).min(tables_end);
            if lo < hi {
                tables.extend_from_slice(&buf[(lo - pos) as usize..(hi - pos) as usize]);
            }
            pos += n as u64;
        }
        let computed = hasher.finalize();
        if computed != stored_crc {
            return Err(Error::Checksum {
                path,
                stored: stored_crc,
                computed,
            });
        }
        let mut padding = vec![0u8; (data_start - PREFIX_LEN - header_len) as usize];
        src.seek(SeekFrom::Start(PREFIX_LEN + header_len))
            .map_err(io)?;
        src.read_exact(&mut padding).map_err(io)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(bad("header padding is not zero".into()));
        }

        // Tables.
        let mut at = 0usize;
        let mut row_offsets = Vec::with_capacity(n_texts + 1);
        for _ in 0..=n_texts {
            row_offsets.push(u64_at(&tables, at));
            at += 8;
        }
        if row_offsets.first() != Some(&0)
            || row_offsets.last() != Some(&tokens)
            || row_offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad(
                "row offsets are not increasing from 0 to the token count".into(),
            ));
        }
        let mut token_ids = Vec::with_capacity(n_tokens);
        for _ in 0..n_tokens {
            token_ids.push(u32_at(&tables, at));
            at += 4;
        }
        let mut offsets = Vec::with_capacity(n_tokens);
        for k in 0..n_tokens {
            let (s, e) = (u32_at(&tables, at), u32_at(&tables, at + 4));
            if s > e {
                return Err(bad(format!("token {k} has byte offsets ({s}, {e})")));
            }
            offsets.push((s, e));
            at += 8;
        }
        let mut id_lens = Vec::with_capacity(n_texts);
        let mut sum = 0u64;
        for _ in 0..n_texts {
            let l = u32_at(&tables, at);
            sum += u64::from(l);
            id_lens.push(l as usize);
            at += 4;
        }
        if sum != ids_bytes {
            return Err(bad(format!(
                "id lengths add up to {sum} bytes, not {ids_bytes}"
            )));
        }
        let id_blob = &tables[at..at + ids_len];
        let mut ids = Vec::with_capacity(n_texts);
        let mut seen = HashSet::with_capacity(n_texts);
        let mut p = 0usize;
        for (i, l) in id_lens.into_iter().enumerate() {
            let s = std::str::from_utf8(&id_blob[p..p + l])
                .map_err(|_| bad(format!("id of text {i} is not UTF-8")))?;
            if !seen.insert(s) {
                return Err(bad(format!("text id {s:?} appears twice")));
            }
            ids.push(s.to_string());
            p += l;
        }
        drop(seen);
        Ok(TokenStore {
            path,
            source: Mutex::new(src),
            meta,
            dtype,
            data_start,
            row_offsets,
            token_ids,
            offsets,
            ids,
        })
    }

    /// The file (`<memory>` for [`TokenStore::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What produced the vectors.
    pub fn metadata(&self) -> &TokenStoreMetadata {
        &self.meta
    }

    /// Element type on disk (reads always return `f32`).
    pub fn dtype(&self) -> StoreDtype {
        self.dtype
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.meta.dim
    }

    /// Number of texts.
    pub fn texts(&self) -> usize {
        self.ids.len()
    }

    /// Total number of token rows.
    pub fn tokens(&self) -> usize {
        self.token_ids.len()
    }

    /// Text ids, in store order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The rows of text `i`.
    ///
    /// # Panics
    /// If `i >= self.texts()`.
    pub fn text_range(&self, i: usize) -> Range<usize> {
        // Validated on opening: increasing and at most `tokens`, which fits in usize.
        self.row_offsets[i] as usize..self.row_offsets[i + 1] as usize
    }

    /// Token ids of text `i`.
    ///
    /// # Panics
    /// If `i >= self.texts()`.
    pub fn token_ids(&self, i: usize) -> &[u32] {
        &self.token_ids[self.text_range(i)]
    }

    /// Byte offsets of the tokens of text `i` into that text.
    ///
    /// # Panics
    /// If `i >= self.texts()`.
    pub fn offsets(&self, i: usize) -> &[(u32, u32)] {
        &self.offsets[self.text_range(i)]
    }

    /// Reads rows `range` (row-major, `range.len() x dim`) from the file,
    /// converting F16 to `f32`. Memory is the rows asked for.
    ///
    /// # Errors
    /// [`Error::Shape`] for a range outside `0..tokens()`, [`Error::Io`] on read
    /// failure, [`Error::NonFinite`] (`row` = the token row) for a NaN or infinite
    /// stored value.
    pub fn read_rows(&self, range: Range<usize>) -> Result<Vec<f32>> {
        if range.start > range.end || range.end > self.tokens() {
            return Err(Error::Shape(format!(
                "rows {range:?} outside the store's 0..{}",
                self.tokens()
            )));
        }
        let dim = self.meta.dim;
        let size = self.dtype.size();
        let mut bytes = vec![0u8; range.len() * dim * size];
        {
            let mut src = self.source.lock().unwrap_or_else(|e| e.into_inner());
            let at = self.data_start + (range.start * dim * size) as u64;
            src.seek(SeekFrom::Start(at))
                .and_then(|_| src.read_exact(&mut bytes))
                .map_err(|e| Error::io(&self.path, e))?;
        }
        let out: Vec<f32> = match self.dtype {
            StoreDtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            StoreDtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        };
        if let Some(bad) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                row: range.start + bad / dim,
                context: format!("token row in {}", self.path.display()),
            });
        }
        Ok(out)
    }

    /// Reads text `i` whole.
    ///
    /// # Errors
    /// [`Error::Shape`] if `i >= self.texts()`, else as [`TokenStore::read_rows`].
    pub fn read_text(&self, i: usize) -> Result<TokenVectors> {
        if i >= self.texts() {
            return Err(Error::Shape(format!(
                "text {i} outside the store's {} texts",
                self.texts()
            )));
        }
        let range = self.text_range(i);
        Ok(TokenVectors {
            id: self.ids[i].clone(),
            dim: self.meta.dim,
            token_ids: self.token_ids[range.clone()].to_vec(),
            offsets: self.offsets[range.clone()].to_vec(),
            data: self.read_rows(range)?,
        })
    }

    /// Iterates over the texts in blocks of `texts_per_block` (at least 1), each
    /// block read from disk with one read; memory is one block of vectors.
    pub fn blocks(&self, texts_per_block: usize) -> TokenStoreBlocks<'_> {
        TokenStoreBlocks {
            store: self,
            next: 0,
            per_block: texts_per_block.max(1),
        }
    }
}

fn parse_header(bytes: &[u8]) -> std::result::Result<TokenStoreMetadata, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("header is not JSON: {e}"))?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("header field {k:?} missing or not a string"))
    };
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| format!("header field {k:?} missing or not a count"))
    };
    let format = s("format")?;
    if format != TOKEN_STORE_FORMAT {
        return Err(format!(
            "format {format:?}, expected {TOKEN_STORE_FORMAT:?}"
        ));
    }
    let dim = n("dim")?;
    if dim == 0 || dim > 1 << 20 {
        return Err(format!("dimension {dim} out of range"));
    }
    let special_tokens = s("special_tokens")?
        .parse::<SpecialTokens>()
        .map_err(|e| e.to_string())?;
    Ok(TokenStoreMetadata {
        model: s("model")?.to_string(),
        dim,
        max_length: n("max_length")?,
        special_tokens,
        prefix: s("prefix")?.to_string(),
        kind: s("kind")?.to_string(),
    })
}

/// Iterator over a [`TokenStore`] in blocks of texts; see [`TokenStore::blocks`].
#[derive(Debug)]
pub struct TokenStoreBlocks<'a> {
    store: &'a TokenStore,
    next: usize,
    per_block: usize,
}

impl TokenStoreBlocks<'_> {
    /// Index of the first text of the next block.
    pub fn next_text(&self) -> usize {
        self.next
    }
}

impl Iterator for TokenStoreBlocks<'_> {
    type Item = Result<Vec<TokenVectors>>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.store;
        if self.next >= s.texts() {
            return None;
        }
        let texts = self.next..(self.next + self.per_block).min(s.texts());
        self.next = texts.end;
        let rows = s.text_range(texts.start).start..s.text_range(texts.end - 1).end;
        let data = match s.read_rows(rows.clone()) {
            Ok(d) => d,
            Err(e) => {
                self.next = s.texts();
                return Some(Err(e));
            }
        };
        let dim = s.dim();
        let block = texts
            .map(|i| {
                let r = s.text_range(i);
                let local = (r.start - rows.start) * dim..(r.end - rows.start) * dim;
                TokenVectors {
                    id: s.ids[i].clone(),
                    dim,
                    token_ids: s.token_ids[r.clone()].to_vec(),
                    offsets: s.offsets[r].to_vec(),
                    data: data[local].to_vec(),
                }
            })
            .collect();
        Some(Ok(block))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self
            .store
            .texts()
            .saturating_sub(self.next)
            .div_ceil(self.per_block);
        (n, Some(n))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn meta(dim: usize) -> TokenStoreMetadata {
        TokenStoreMetadata {
            model: "test-model".into(),
            dim,
            max_length: 256,
            special_tokens: SpecialTokens::Drop,
            prefix: "passage: ".into(),
            kind: "passage".into(),
        }
    }

    fn text(id: &str, tokens: usize, dim: usize, seed: f32) -> TokenVectors {
        TokenVectors {
            id: id.into(),
            dim,
            token_ids: (0..tokens as u32).map(|k| 100 + k).collect(),
            offsets: (0..tokens as u32).map(|k| (3 * k, 3 * k + 2)).collect(),
            data: (0..tokens * dim)
                .map(|k| seed + (k as f32 * 0.37).sin() * 3.0)
                .collect(),
        }
    }

    fn sample(dim: usize) -> Vec<TokenVectors> {
        vec![
            text("a", 3, dim, 0.0),
            text("empty", 0, dim, 1.0),
            text("b", 1, dim, 2.0),
            text("ünïcödé id", 5, dim, -1.5),
            text("", 2, dim, 0.25),
        ]
    }

    fn write(path: &Path, dtype: StoreDtype, texts: &[TokenVectors]) -> PathBuf {
        let dim = texts.first().map_or(4, |t| t.dim);
        let mut w = TokenStoreWriter::create(path, meta(dim), dtype).unwrap();
        for t in texts {
            w.append(t).unwrap();
        }
        assert_eq!(w.texts(), texts.len() as u64);
        assert_eq!(
            w.tokens(),
            texts.iter().map(|t| t.len() as u64).sum::<u64>()
        );
        w.finish().unwrap()
    }

    #[test]
    fn round_trip_f32_exact() {
        let dir = tempfile::tempdir().unwrap();
        let texts = sample(4);
        let path = write(&dir.path().join("t.tokens"), StoreDtype::F32, &texts);
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.metadata(), &meta(4));
        assert_eq!(store.dtype(), StoreDtype::F32);
        assert_eq!(store.texts(), 5);
        assert_eq!(store.tokens(), 11);
        assert_eq!(store.ids(), ["a", "empty", "b", "ünïcödé id", ""]);
        assert_eq!(store.text_range(1), 3..3);
        assert_eq!(store.text_range(2), 3..4);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(&store.read_text(i).unwrap(), t);
            assert_eq!(store.token_ids(i), &t.token_ids[..]);
            assert_eq!(store.offsets(i), &t.offsets[..]);
        }
        assert_eq!(store.read_rows(1..4).unwrap().len(), 3 * 4);
        assert!(matches!(store.read_rows(10..12), Err(Error::Shape(_))));
        assert!(matches!(store.read_text(5), Err(Error::Shape(_))));
        // Only the final file is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn round_trip_f16_within_1e3_relative() {
        let dir = tempfile::tempdir().unwrap();
        let texts = sample(8);
        let path = write(&dir.path().join("t.tokens"), StoreDtype::F16, &texts);
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.dtype(), StoreDtype::F16);
        for (i, t) in texts.iter().enumerate() {
            let got = store.read_text(i).unwrap();
            assert_eq!(got.token_ids, t.token_ids);
            assert_eq!(got.offsets, t.offsets);
            for (a, b) in got.data.iter().zip(&t.data) {
                assert!((a - b).abs() <= 1e-3 * b.abs().max(1e-2), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn blocks_cover_every_text_once() {
        let dir = tempfile::tempdir().unwrap();
        let texts: Vec<TokenVectors> = (0..23)
            .map(|i| text(&format!("t{i}"), i % 4, 3, i as f32))
            .collect();
        let path = write(&dir.path().join("t.tokens"), StoreDtype::F32, &texts);
        let store = TokenStore::open(&path).unwrap();
        for per in [0, 1, 4, 7, 23, 100] {
            let blocks = store.blocks(per);
            let n = blocks.size_hint().0;
            let got: Vec<TokenVectors> = blocks
                .map(Result::unwrap)
                .inspect(|b| assert!(b.len() <= per.max(1)))
                .flatten()
                .collect();
            assert_eq!(got, texts, "block size {per}");
            assert_eq!(n, 23usize.div_ceil(per.max(1)));
        }
    }

    #[test]
    fn empty_store_and_empty_texts() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir.path().join("none.tokens"), StoreDtype::F16, &[]);
        let store = TokenStore::open(&path).unwrap();
        assert_eq!((store.texts(), store.tokens()), (0, 0));
        assert_eq!(store.blocks(10).count(), 0);
        assert!(store.read_rows(0..0).unwrap().is_empty());

        let only_empty = vec![TokenVectors::empty("x", 4), TokenVectors::empty("y", 4)];
        let path = write(&dir.path().join("e.tokens"), StoreDtype::F32, &only_empty);
        let store = TokenStore::open(&path).unwrap();
        assert_eq!((store.texts(), store.tokens()), (2, 0));
        assert_eq!(store.read_text(1).unwrap(), only_empty[1]);
    }

    #[test]
    fn bad_appends_are_typed_errors_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tokens");
        let mut w = TokenStoreWriter::create(&path, meta(2), StoreDtype::F16).unwrap();
        w.append(&text("a", 2, 2, 0.0)).unwrap();
        let err = w.append(&text("a", 1, 2, 0.0)).unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateId { id, .. } if id == "a"),
            "{err}"
        );
        let mut big = text("big", 2, 2, 0.0);
        big.data[3] = 70_000.0; // finite as f32, infinite as f16
        let err = w.append(&big).unwrap_err();
        assert!(matches!(err, Error::NonFinite { row: 1, .. }), "{err}");
        let mut nan = text("nan", 1, 2, 0.0);
        nan.data[0] = f32::NAN;
        assert!(matches!(w.append(&nan), Err(Error::NonFinite { .. })));
        assert!(matches!(
            w.append(&text("d3", 1, 3, 0.0)),
            Err(Error::Dimension {
                expected: 2,
                found: 3
            })
        ));
        let mut short = text("short", 2, 2, 0.0);
        short.offsets.pop();
        assert!(matches!(w.append(&short), Err(Error::Shape(_))));
        // 70,000 is fine in F32.
        w.append(&text("b", 1, 2, 0.0)).unwrap();
        assert_eq!((w.texts(), w.tokens()), (2, 3));
        w.finish().unwrap();
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.ids(), ["a", "b"]);

        let mut w32 =
            TokenStoreWriter::create(dir.path().join("f32.tokens"), meta(2), StoreDtype::F32)
                .unwrap();
        big.id = "big".into();
        w32.append(&big).unwrap();
        assert!(matches!(
            TokenStoreWriter::create(dir.path().join("z"), meta(0), StoreDtype::F32),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut w =
                TokenStoreWriter::create(dir.path().join("t.tokens"), meta(2), StoreDtype::F32)
                    .unwrap();
            w.append(&text("a", 2, 2, 0.0)).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn two_writers_to_one_path_use_distinct_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tokens");
        let a = TokenStoreWriter::create(&path, meta(2), StoreDtype::F32).unwrap();
        let b = TokenStoreWriter::create(&path, meta(2), StoreDtype::F32).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        a.finish().unwrap();
        b.finish().unwrap();
        TokenStore::open(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_writer_dropped_midway_leaves_the_previous_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir.path().join("t.tokens"), StoreDtype::F16, &sample(2));
        let before = std::fs::read(&path).unwrap();
        {
            let mut w = TokenStoreWriter::create(&path, meta(2), StoreDtype::F32).unwrap();
            w.append(&text("new", 5, 2, 1.0)).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        TokenStore::open(&path).unwrap();
    }

    fn valid_bytes() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir.path().join("t.tokens"), StoreDtype::F16, &sample(4));
        std::fs::read(path).unwrap()
    }

    #[test]
    fn from_bytes_matches_open() {
        let bytes = valid_bytes();
        let store = TokenStore::from_bytes(bytes).unwrap();
        assert_eq!(store.texts(), 5);
        assert_eq!(store.read_text(3).unwrap().len(), 5);
        assert_eq!(store.path(), Path::new("<memory>"));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = valid_bytes();
        for n in 0..bytes.len() {
            let err = TokenStore::from_bytes(bytes[..n].to_vec()).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidTokenStore { .. } | Error::Checksum { .. }
                ),
                "truncated to {n}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TokenStore::from_bytes(longer).is_err());
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let bytes = valid_bytes();
        for i in 0..bytes.len() {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let err = TokenStore::from_bytes(b).unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::InvalidTokenStore { .. } | Error::Checksum { .. }
                    ),
                    "byte {i} bit {bit}: {err}"
                );
            }
        }
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        // A valid prefix and header with a trailer claiming 2^60 tokens.
        let mut bytes = valid_bytes();
        let n = bytes.len();
        bytes[n - 56..n - 48].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let err = TokenStore::from_bytes(bytes).unwrap_err();
        assert!(matches!(err, Error::InvalidTokenStore { .. }), "{err}");
        assert!(TokenStore::from_bytes(b"garbage".to_vec()).is_err());
        assert!(TokenStore::from_bytes(vec![0; 200]).is_err());
    }
}
