//! Embeddings store: one safetensors file with the matrix, the ids, the model
//! metadata and a CRC-32 of every other byte.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use latent_terms_io::AtomicFile;
use serde_json::{Map, Value, json};

use crate::config::Pooling;
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};

/// The `format` value in the metadata of every store.
pub const STORE_FORMAT: &str = "latent-terms-embeddings";
/// The format version written and accepted (version 2: checksummed). Version 1
/// stores, written before the checksum, are refused with [`Error::LegacyStore`]
/// and can be rewritten with [`upgrade_store`].
pub const STORE_VERSION: &str = "2";
/// The version of stores written before the checksum.
const LEGACY_VERSION: &str = "1";
/// The `checksum` value in the metadata, and the name of the checksum tensor.
const CHECKSUM: &str = "crc32";
/// Bytes of the checksum tensor (one little-endian `u32`), the last of the file.
const CHECKSUM_LEN: u64 = 4;
/// Largest header accepted on reading; the writer's headers are a few hundred bytes.
const MAX_HEADER: u64 = 1 << 20;
/// Bytes read at a time while verifying the checksum.
const CHUNK: usize = 1 << 20;

/// Element type of the stored matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreDtype {
    /// 32-bit floats (exact).
    F32,
    /// 16-bit floats (half the size; about 3 significant digits).
    F16,
}

impl StoreDtype {
    /// The safetensors dtype name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreDtype::F32 => "F32",
            StoreDtype::F16 => "F16",
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            StoreDtype::F32 => 4,
            StoreDtype::F16 => 2,
        }
    }

    /// Appends the stored bytes of `values` to `out`; returns the position of the
    /// first value that is not finite *as stored* (70,000 is finite as f32 but
    /// overflows F16), in which case `out` is left as it was.
    fn encode(self, values: &[f32], out: &mut Vec<u8>) -> std::result::Result<(), usize> {
        let before = out.len();
        out.reserve(values.len() * self.size());
        let bad = match self {
            StoreDtype::F32 => values.iter().position(|x| {
                out.extend_from_slice(&x.to_le_bytes());
                !x.is_finite()
            }),
            StoreDtype::F16 => values.iter().position(|x| {
                let h = half::f16::from_f32(*x);
                out.extend_from_slice(&h.to_le_bytes());
                !h.is_finite()
            }),
        };
        match bad {
            Some(k) => {
                out.truncate(before);
                Err(k)
            }
            None => Ok(()),
        }
    }
}

/// What produced the embeddings in a store; checked on loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreMetadata {
    /// Model name.
    pub model: String,
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether rows are L2-normalised.
    pub normalized: bool,
    /// Embedding dimension.
    pub dim: usize,
    /// The prefix put in front of every text before encoding (`""`: none), e.g. e5's
    /// `"query: "`. A store of queries and a store of passages have their own.
    pub prefix: String,
}

fn header_json(
    meta: &StoreMetadata,
    dtype: StoreDtype,
    rows: u64,
    emb_bytes: u64,
    ids_bytes: u64,
) -> Vec<u8> {
    let ids_end = emb_bytes.saturating_add(ids_bytes);
    let crc_end = ids_end.saturating_add(CHECKSUM_LEN);
    let header = json!({
        "__metadata__": {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "checksum": CHECKSUM,
            "model": meta.model,
            "pooling": meta.pooling.as_str(),
            "normalized": meta.normalized.to_string(),
            "dim": meta.dim.to_string(),
            "prefix": meta.prefix,
            "rows": rows.to_string(),
            "dtype": dtype.as_str(),
        },
        "embeddings": {"dtype": dtype.as_str(), "shape": [rows, meta.dim], "data_offsets": [0, emb_bytes]},
        "ids": {"dtype": "U8", "shape": [ids_bytes], "data_offsets": [emb_bytes, ids_end]},
        CHECKSUM: {"dtype": "U32", "shape": [1], "data_offsets": [ids_end, crc_end]},
    });
    header.to_string().into_bytes()
}

/// Writes an embeddings store by streaming appends; the format is described at
/// [`EmbeddingsStore`].
///
/// ```no_run
/// use latent_terms_encoders::{Embeddings, EmbeddingsStore, Pooling, StoreDtype, StoreMetadata, StoreWriter};
///
/// let meta = StoreMetadata { model: "demo".into(), pooling: Pooling::Mean, normalized: true, dim: 2, prefix: String::new() };
/// let mut w = StoreWriter::create("demo.safetensors", meta.clone(), StoreDtype::F32)?;
/// w.append(&Embeddings::new(vec!["a".into(), "b".into()], 2, vec![1.0, 0.0, 0.0, 1.0])?)?;
/// w.append_row("c", &[0.6, 0.8])?;
/// w.finish()?;
/// let store = EmbeddingsStore::open_expecting("demo.safetensors", &meta)?;
/// assert_eq!(store.rows(), 3);
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
pub struct StoreWriter {
    path: PathBuf,
    file: Option<AtomicFile>,
    /// CRC-32 of every byte written after the header.
    crc: crc32fast::Hasher,
    meta: StoreMetadata,
    dtype: StoreDtype,
    rows: u64,
    ids: Vec<u8>,
    seen: HashSet<Box<str>>,
    reserved: usize,
    buf: Vec<u8>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl StoreWriter {
    /// Starts a store at `path`, written through [`latent_terms_io::AtomicFile`] (a
    /// new temporary file beside `path`) until [`StoreWriter::finish`]; dropping the
    /// writer before that removes the temporary file and leaves `path` as it was.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero dimension or a path without a file name,
    /// [`Error::Io`] if the temporary file cannot be created.
    pub fn create(path: impl AsRef<Path>, meta: StoreMetadata, dtype: StoreDtype) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if meta.dim == 0 {
            return Err(Error::Config("store dimension must be at least 1".into()));
        }
        if path.file_name().is_none() {
            return Err(Error::Config(format!(
                "{} is not a file path",
                path.display()
            )));
        }
        let upper = header_json(&meta, dtype, u64::MAX, u64::MAX, u64::MAX).len();
        // 8 + header is a multiple of 8, so the data is 8-byte aligned.
        let reserved = upper.div_ceil(8) * 8;
        let mut file = AtomicFile::create(&path).map_err(|e| Error::io(&path, e))?;
        file.write_all(&vec![0u8; 8 + reserved])
            .map_err(|e| Error::io(&path, e))?;
        Ok(StoreWriter {
            path,
            file: Some(file),
            crc: crc32fast::Hasher::new(),
            meta,
            dtype,
            rows: 0,
            ids: vec![b'['],
            seen: HashSet::new(),
            reserved,
            buf: Vec::new(),
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The metadata being written.
    pub fn metadata(&self) -> &StoreMetadata {
        &self.meta
    }

    /// Appends all rows of `embeddings`. Nothing of this call is written when an
    /// error other than [`Error::Io`] is returned.
    ///
    /// # Errors
    /// [`Error::Dimension`] if the dimension differs from the store's,
    /// [`Error::DuplicateId`] for an id already in the store or repeated in
    /// `embeddings`, [`Error::NonFinite`] for a value that is NaN or infinite as
    /// stored (checked after conversion: 70,000 overflows F16), with `row` its
    /// position in `embeddings`; [`Error::Io`] on write failure (the writer is then
    /// unusable).
    pub fn append(&mut self, embeddings: &Embeddings) -> Result<()> {
        if embeddings.is_empty() {
            return Ok(());
        }
        if embeddings.dim() != self.meta.dim {
            return Err(Error::Dimension {
                expected: self.meta.dim,
                found: embeddings.dim(),
            });
        }
        let mut batch: HashSet<&str> = HashSet::with_capacity(embeddings.rows());
        for id in embeddings.ids() {
            if self.seen.contains(id.as_str()) || !batch.insert(id) {
                return Err(self.duplicate(id));
            }
        }
        self.buf.clear();
        if let Err(k) = self.dtype.encode(embeddings.data(), &mut self.buf) {
            return Err(self.non_finite(k / self.meta.dim));
        }
        self.write_buf()?;
        for id in embeddings.ids() {
            self.push_id(id);
        }
        Ok(())
    }

    /// Appends one row.
    ///
    /// # Errors
    /// As [`StoreWriter::append`] (`row` of [`Error::NonFinite`] is then the
    /// row's position in the store).
    pub fn append_row(&mut self, id: &str, row: &[f32]) -> Result<()> {
        if row.len() != self.meta.dim {
            return Err(Error::Dimension {
                expected: self.meta.dim,
                found: row.len(),
            });
        }
        if self.seen.contains(id) {
            return Err(self.duplicate(id));
        }
        self.buf.clear();
        if self.dtype.encode(row, &mut self.buf).is_err() {
            return Err(self.non_finite(usize::try_from(self.rows).unwrap_or(usize::MAX)));
        }
        self.write_buf()?;
        self.push_id(id);
        Ok(())
    }

    fn duplicate(&self, id: &str) -> Error {
        Error::DuplicateId {
            path: self.path.clone(),
            id: id.to_string(),
        }
    }

    fn non_finite(&self, row: usize) -> Error {
        Error::NonFinite {
            row,
            context: format!(
                "not finite as {} while appending to {}",
                self.dtype.as_str(),
                self.path.display()
            ),
        }
    }

    fn write_buf(&mut self) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| {
            Error::Config("the store writer failed earlier and cannot be used".into())
        })?;
        if let Err(e) = file.write_all(&self.buf) {
            // Dropping the atomic file removes the temporary file.
            self.file = None;
            return Err(Error::io(&self.path, e));
        }
        self.crc.update(&self.buf);
        Ok(())
    }

    fn push_id(&mut self, id: &str) {
        if self.rows > 0 {
            self.ids.push(b',');
        }
        // Serialising a &str to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.ids, id);
        self.seen.insert(id.into());
        self.rows += 1;
    }

    /// Writes the ids, the checksum and the header, then commits the file
    /// atomically (sync, rename over `path`, sync of the directory). Returns the
    /// final path.
    ///
    /// # Errors
    /// [`Error::Io`] on write, sync or rename failure (the temporary file is
    /// removed and `path` is left as it was).
    pub fn finish(mut self) -> Result<PathBuf> {
        let mut file = self.file.take().ok_or_else(|| {
            Error::Config("the store writer failed earlier and cannot be used".into())
        })?;
        let path = self.path.clone();
        let io = |e| Error::io(&path, e);
        self.ids.push(b']');
        // JSON allows trailing spaces; they keep the checksum tensor 4-byte aligned.
        self.ids.resize(self.ids.len().next_multiple_of(4), b' ');
        file.write_all(&self.ids).map_err(io)?;
        self.crc.update(&self.ids);
        let emb_bytes = self.rows * (self.meta.dim * self.dtype.size()) as u64;
        let mut header = header_json(
            &self.meta,
            self.dtype,
            self.rows,
            emb_bytes,
            self.ids.len() as u64,
        );
        if header.len() > self.reserved {
            return Err(Error::Shape(format!(
                "store header of {} bytes exceeds the {} reserved",
                header.len(),
                self.reserved
            )));
        }
        header.resize(self.reserved, b' ');
        let mut head = Vec::with_capacity(8 + self.reserved);
        head.extend_from_slice(&(self.reserved as u64).to_le_bytes());
        head.extend_from_slice(&header);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.combine(&self.crc);
        file.write_all(&crc.finalize().to_le_bytes()).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&head).map_err(io)?;
        file.commit().map_err(io)?;
        Ok(self.path.clone())
    }
}

/// Where an opened store's bytes are.
#[derive(Clone)]
enum Backing {
    File,
    Memory(Arc<[u8]>),
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::File => f.write_str("File"),
            Backing::Memory(b) => write!(f, "Memory({} bytes)", b.len()),
        }
    }
}

trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

/// An embeddings store opened for reading: metadata and ids in memory, the matrix
/// read on demand (whole, or in blocks for corpora larger than memory).
///
/// # Format (version 2)
///
/// A standard [safetensors] file (little-endian `u64` header length, JSON header,
/// raw data), readable by any safetensors reader:
///
/// | tensor | dtype | shape | content |
/// |---|---|---|---|
/// | `embeddings` | `F32` or `F16` | `[rows, dim]` | the row-major matrix |
/// | `ids` | `U8` | `[bytes]` | the row ids as a UTF-8 JSON array of distinct strings, in row order, padded with spaces to a multiple of 4 bytes |
/// | `crc32` | `U32` | `[1]` | CRC-32 (IEEE, as `crc32fast` and Python's `zlib.crc32`) of every byte of the file before it |
///
/// The tensors are stored in this order, so the checksum is the last 4 bytes of
/// the file and covers the header length, the header (metadata included, padded
/// with spaces so the data starts 8-byte aligned), the matrix and the ids.
///
/// `__metadata__` holds `format` = `latent-terms-embeddings`, `version` = `2`,
/// `checksum` = `crc32`, `model`, `pooling` (`cls` / `mean` / `last_token`),
/// `normalized` (`true` / `false`), `dim`, `rows` and `dtype`. Python reads it
/// with `safetensors.numpy.load_file(path)` and `json.loads(bytes(t["ids"]))`,
/// and checks it with `zlib.crc32(data[:-4]) == t["crc32"][0]`.
///
/// The ids live in a tensor rather than in the metadata because the metadata is a
/// JSON string map read in one piece (readers cap the header at 100 MB), while a
/// large corpus has hundreds of megabytes of ids.
///
/// Version 1 stores (no `checksum`, no `crc32` tensor) are refused with
/// [`Error::LegacyStore`]; [`upgrade_store`] rewrites one with a checksum.
///
/// # Writing
///
/// [`StoreWriter`] streams rows to a temporary file next to the destination
/// ([`latent_terms_io::AtomicFile`]), leaving room for the header at the front;
/// [`StoreWriter::finish`] appends the ids and the checksum, writes the header into
/// the reserved space and commits the file, so readers never see a partial store.
/// Memory use is the ids (kept until `finish`, twice: as JSON and in a set for the
/// duplicate check) plus the write buffer; the vectors themselves are not kept.
///
/// [safetensors]: https://github.com/huggingface/safetensors
#[derive(Debug, Clone)]
pub struct EmbeddingsStore {
    path: PathBuf,
    backing: Backing,
    len: u64,
    meta: StoreMetadata,
    dtype: StoreDtype,
    rows: usize,
    data_start: u64,
    /// CRC-32 of the matrix bytes as verified on opening, checked again by the
    /// blocks reader.
    matrix_crc: u32,
    /// A version 1 store without checksum (opened only by [`upgrade_store`]).
    legacy: bool,
    ids: Vec<String>,
}

fn meta_str<'a>(meta: &'a Map<String, Value>, key: &str, path: &Path) -> Result<&'a str> {
    meta.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_store(path, format!("metadata has no string {key:?}")))
}

fn offsets(entry: &Value, path: &Path, name: &str) -> Result<(u64, u64)> {
    let o = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_store(path, format!("tensor {name} has no data_offsets")))?;
    match o.as_slice() {
        [a, b] => match (a.as_u64(), b.as_u64()) {
            (Some(a), Some(b)) if a <= b => Ok((a, b)),
            _ => Err(Error::invalid_store(
                path,
                format!("tensor {name} has bad data_offsets"),
            )),
        },
        _ => Err(Error::invalid_store(
            path,
            format!("tensor {name} has bad data_offsets"),
        )),
    }
}

fn shape(entry: &Value, path: &Path, name: &str) -> Result<Vec<u64>> {
    entry
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
        .ok_or_else(|| Error::invalid_store(path, format!("tensor {name} has no valid shape")))
}

fn tensor<'a>(header: &'a Map<String, Value>, path: &Path, name: &str) -> Result<&'a Value> {
    header
        .get(name)
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::invalid_store(path, format!("no {name} tensor")))
}

/// Whether [`EmbeddingsStore::read`] accepts only checksummed stores or also
/// legacy ones (for [`upgrade_store`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accept {
    Checksummed,
    AlsoLegacy,
}

impl EmbeddingsStore {
    /// Opens a store and verifies it: header (format tag, version, metadata,
    /// tensor names, dtypes, shapes and offsets against the file size), the CRC-32
    /// over every byte, and the ids (a JSON array of distinct strings, one per row).
    ///
    /// # Memory
    ///
    /// The file is streamed once in 1 MiB chunks. Memory is bounded by the header
    /// (at most 1 MiB), the 1 MiB read buffer and the ids: their JSON bytes
    /// while they are parsed, then the strings (kept), plus a hash set of
    /// references to them for the duplicate check (dropped before returning). The
    /// matrix is not held; [`EmbeddingsStore::blocks`] reads it later.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::InvalidStore`] if it is
    /// not a well-formed store, [`Error::StoreChecksum`] if its bytes do not match
    /// the stored CRC-32, [`Error::StoreDuplicateId`] for an id on two rows,
    /// [`Error::LegacyStore`] for a store written before checksums (see
    /// [`upgrade_store`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), Accept::Checksummed)
    }

    fn open_with(path: &Path, accept: Accept) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut src = file;
        Self::read(&mut src, len, path.to_path_buf(), Backing::File, accept)
    }

    /// Opens a store held in memory, with the checks of [`EmbeddingsStore::open`];
    /// errors name the path `<memory>`. Useful for tests and fuzzing.
    ///
    /// # Errors
    /// As [`EmbeddingsStore::open`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let bytes: Arc<[u8]> = bytes.into();
        let len = bytes.len() as u64;
        let mut src = Cursor::new(Arc::clone(&bytes));
        Self::read(
            &mut src,
            len,
            PathBuf::from("<memory>"),
            Backing::Memory(bytes),
            Accept::Checksummed,
        )
    }

    fn read(
        src: &mut dyn Source,
        len: u64,
        path: PathBuf,
        backing: Backing,
        accept: Accept,
    ) -> Result<Self> {
        let p = path.as_path();
        let io = |e| Error::io(p, e);
        if len < 8 {
            return Err(Error::invalid_store(p, "shorter than 8 bytes"));
        }
        let mut len8 = [0u8; 8];
        src.read_exact(&mut len8).map_err(io)?;
        let n = u64::from_le_bytes(len8);
        if n > MAX_HEADER || n > len - 8 {
            return Err(Error::invalid_store(
                p,
                format!("header length {n} is out of range"),
            ));
        }
        let mut header = vec![0u8; n as usize];
        src.read_exact(&mut header).map_err(io)?;
        let header: Value = serde_json::from_slice(&header)
            .map_err(|e| Error::invalid_store(p, format!("header is not JSON: {e}")))?;
        let header = header
            .as_object()
            .ok_or_else(|| Error::invalid_store(p, "header is not a JSON object"))?;
        let meta = header
            .get("__metadata__")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::invalid_store(p, "no __metadata__"))?;
        if meta.get("format").and_then(Value::as_str) != Some(STORE_FORMAT) {
            return Err(Error::invalid_store(
                p,
                format!("metadata format is not {STORE_FORMAT:?}"),
            ));
        }
        let version = meta_str(meta, "version", p)?;
        let checksummed = match version {
            STORE_VERSION => {
                if meta.get("checksum").and_then(Value::as_str) != Some(CHECKSUM) {
                    return Err(Error::invalid_store(
                        p,
                        format!("metadata checksum is not {CHECKSUM:?}"),
                    ));
                }
                true
            }
            LEGACY_VERSION if !meta.contains_key("checksum") && !header.contains_key(CHECKSUM) => {
                if accept == Accept::Checksummed {
                    return Err(Error::LegacyStore { path });
                }
                false
            }
            other => {
                return Err(Error::invalid_store(
                    p,
                    format!(
                        "format version {other:?} is not supported (this build reads {STORE_VERSION})"
                    ),
                ));
            }
        };
        let tensors: &[&str] = if checksummed {
            &["embeddings", "ids", CHECKSUM]
        } else {
            &["embeddings", "ids"]
        };
        if let Some(extra) = header
            .keys()
            .find(|k| *k != "__metadata__" && !tensors.contains(&k.as_str()))
        {
            return Err(Error::invalid_store(
                p,
                format!("unexpected header entry {extra:?}"),
            ));
        }
        let pooling: Pooling = meta_str(meta, "pooling", p)?
            .parse()
            .map_err(|e| Error::invalid_store(p, format!("{e}")))?;
        let normalized = match meta_str(meta, "normalized", p)? {
            "true" => true,
            "false" => false,
            other => return Err(Error::invalid_store(p, format!("normalized is {other:?}"))),
        };
        let num = |key: &str| -> Result<u64> {
            meta_str(meta, key, p)?
                .parse::<u64>()
                .map_err(|_| Error::invalid_store(p, format!("{key} is not a number")))
        };
        let dim = num("dim")?;
        let rows = num("rows")?;
        if dim == 0 {
            return Err(Error::invalid_store(p, "dimension 0"));
        }
        let model = meta_str(meta, "model", p)?.to_string();
        // Optional: stores written before prefixes were recorded had none.
        let prefix = meta
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();

        let emb = tensor(header, p, "embeddings")?;
        let dtype = match emb.get("dtype").and_then(Value::as_str) {
            Some("F32") => StoreDtype::F32,
            Some("F16") => StoreDtype::F16,
            other => {
                return Err(Error::invalid_store(
                    p,
                    format!("embeddings dtype {other:?} is not F32 or F16"),
                ));
            }
        };
        if meta_str(meta, "dtype", p)? != dtype.as_str() {
            return Err(Error::invalid_store(
                p,
                "metadata dtype disagrees with the embeddings tensor",
            ));
        }
        if shape(emb, p, "embeddings")? != [rows, dim] {
            return Err(Error::invalid_store(
                p,
                "embeddings shape disagrees with rows and dim",
            ));
        }
        let emb_bytes = rows
            .checked_mul(dim)
            .and_then(|x| x.checked_mul(dtype.size() as u64))
            .ok_or_else(|| Error::invalid_store(p, "embeddings size overflows"))?;
        if offsets(emb, p, "embeddings")? != (0, emb_bytes) {
            return Err(Error::invalid_store(
                p,
                "embeddings data_offsets disagree with the shape",
            ));
        }
        let ids_entry = tensor(header, p, "ids")?;
        if ids_entry.get("dtype").and_then(Value::as_str) != Some("U8") {
            return Err(Error::invalid_store(p, "ids tensor is not U8"));
        }
        let (ids_start, ids_end) = offsets(ids_entry, p, "ids")?;
        if ids_start != emb_bytes || shape(ids_entry, p, "ids")? != [ids_end - ids_start] {
            return Err(Error::invalid_store(
                p,
                "ids tensor does not follow the embeddings",
            ));
        }
        let data_end = if checksummed {
            let crc_entry = tensor(header, p, CHECKSUM)?;
            if crc_entry.get("dtype").and_then(Value::as_str) != Some("U32")
                || shape(crc_entry, p, CHECKSUM)? != [1]
                || offsets(crc_entry, p, CHECKSUM)?
                    != (ids_end, ids_end.saturating_add(CHECKSUM_LEN))
            {
                return Err(Error::invalid_store(
                    p,
                    "crc32 tensor is not one U32 after the ids",
                ));
            }
            ids_end.saturating_add(CHECKSUM_LEN)
        } else {
            ids_end
        };
        let data_start = 8 + n;
        if data_start.checked_add(data_end) != Some(len) {
            return Err(Error::invalid_store(
                p,
                format!(
                    "file is {len} bytes but the header describes {}",
                    data_start.saturating_add(data_end)
                ),
            ));
        }
        let rows = usize::try_from(rows).map_err(|_| Error::invalid_store(p, "too many rows"))?;
        let dim =
            usize::try_from(dim).map_err(|_| Error::invalid_store(p, "dimension too large"))?;
        let ids_len = usize::try_from(ids_end - ids_start)
            .map_err(|_| Error::invalid_store(p, "ids too large"))?;

        // One streaming pass over the whole file: the checksum of every byte
        // before the crc32 tensor, the checksum of the matrix alone (for the
        // blocks reader) and the ids bytes.
        let (ids_lo, ids_hi) = (data_start + ids_start, data_start + ids_end);
        let (emb_lo, emb_hi) = (data_start, data_start + emb_bytes);
        let crc_end = if checksummed { len - CHECKSUM_LEN } else { len };
        let mut all = crc32fast::Hasher::new();
        let mut matrix = crc32fast::Hasher::new();
        let mut ids_bytes = Vec::with_capacity(ids_len);
        let mut buf = vec![0u8; CHUNK];
        src.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut pos = 0u64;
        while pos < crc_end {
            let k = (crc_end - pos).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..k];
            src.read_exact(chunk).map_err(io)?;
            all.update(chunk);
            let end = pos + k as u64;
            let (lo, hi) = (pos.max(emb_lo), end.min(emb_hi));
            if lo < hi {
                matrix.update(&chunk[(lo - pos) as usize..(hi - pos) as usize]);
            }
            let (lo, hi) = (pos.max(ids_lo), end.min(ids_hi));
            if lo < hi {
                ids_bytes.extend_from_slice(&chunk[(lo - pos) as usize..(hi - pos) as usize]);
            }
            pos = end;
        }
        if checksummed {
            let mut stored = [0u8; 4];
            src.read_exact(&mut stored).map_err(io)?;
            let stored = u32::from_le_bytes(stored);
            let computed = all.finalize();
            if stored != computed {
                return Err(Error::StoreChecksum {
                    path,
                    stored,
                    computed,
                });
            }
        }
        drop(buf);
        let ids: Vec<String> = serde_json::from_slice(&ids_bytes).map_err(|e| {
            Error::invalid_store(p, format!("ids are not a JSON array of strings: {e}"))
        })?;
        drop(ids_bytes);
        if ids.len() != rows {
            return Err(Error::invalid_store(
                p,
                format!("{} ids for {rows} rows", ids.len()),
            ));
        }
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(rows);
        for (row, id) in ids.iter().enumerate() {
            if let Some(&earlier) = first.get(id.as_str()) {
                return Err(Error::StoreDuplicateId {
                    path: path.clone(),
                    id: id.clone(),
                    first: earlier,
                    second: row,
                });
            }
            first.insert(id, row);
        }
        drop(first);
        Ok(EmbeddingsStore {
            path,
            backing,
            len,
            meta: StoreMetadata {
                model,
                pooling,
                normalized,
                dim,
                prefix,
            },
            dtype,
            rows,
            data_start,
            matrix_crc: matrix.finalize(),
            legacy: !checksummed,
            ids,
        })
    }

    /// Opens a store and checks that it was written with `expected` (model, pooling,
    /// normalisation, dimension).
    ///
    /// # Errors
    /// As [`EmbeddingsStore::open`], plus [`Error::MetadataMismatch`] naming the first
    /// field that differs.
    pub fn open_expecting(path: impl AsRef<Path>, expected: &StoreMetadata) -> Result<Self> {
        let store = Self::open(path)?;
        store.check(expected)?;
        Ok(store)
    }

    /// Checks the store's metadata against `expected`.
    ///
    /// # Errors
    /// [`Error::MetadataMismatch`] naming the first field that differs.
    pub fn check(&self, expected: &StoreMetadata) -> Result<()> {
        let prefix = (expected.prefix != self.meta.prefix).then(|| {
            (
                "prefix",
                format!("{:?}", expected.prefix),
                format!("{:?}", self.meta.prefix),
            )
        });
        match first_difference(expected, &self.meta).or(prefix) {
            Some((field, e, f)) => Err(Error::MetadataMismatch {
                path: self.path.clone(),
                field,
                expected: e,
                found: f,
            }),
            None => Ok(()),
        }
    }

    /// Checks that `queries`, a store of encoded queries, was written with the same
    /// model, pooling, normalisation and dimension as this corpus store. Unlike
    /// `self.check(queries.metadata())`, the error names both files, so it does
    /// not blame the corpus when the query store is the odd one out.
    ///
    /// # Errors
    /// [`Error::StoresDisagree`] naming the first field that differs.
    pub fn check_queries(&self, queries: &EmbeddingsStore) -> Result<()> {
        match first_difference(&self.meta, &queries.meta) {
            Some((field, corpus_value, queries_value)) => Err(Error::StoresDisagree {
                queries: queries.path.clone(),
                corpus: self.path.clone(),
                field,
                queries_value,
                corpus_value,
            }),
            None => Ok(()),
        }
    }

    /// The store's file (`<memory>` for [`EmbeddingsStore::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The metadata.
    pub fn metadata(&self) -> &StoreMetadata {
        &self.meta
    }

    /// Stored element type.
    pub fn dtype(&self) -> StoreDtype {
        self.dtype
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.meta.dim
    }

    /// Row ids, in row order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Reads the whole matrix (F16 is widened to f32).
    ///
    /// # Errors
    /// As each block of [`EmbeddingsStore::blocks`].
    pub fn load(&self) -> Result<Embeddings> {
        let mut blocks = self.blocks(self.rows.max(1))?;
        match blocks.next() {
            Some(block) => block,
            None => Ok(Embeddings::empty(self.meta.dim)),
        }
    }

    /// Iterates over the matrix in blocks of at most `rows_per_block` rows, reading
    /// each block from disk when it is reached.
    ///
    /// The file is opened again; its size must be unchanged, and the CRC-32 of
    /// the matrix bytes read is compared with the one verified by
    /// [`EmbeddingsStore::open`] when the last block is read, so a file changed
    /// since it was opened fails at the last block at the latest.
    ///
    /// # Memory
    ///
    /// One block at a time: `rows_per_block × dim × (4 + dtype size)` bytes (the
    /// stored bytes and the f32 values) plus its ids, and a 1 MiB read buffer.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be reopened, [`Error::InvalidStore`] if its
    /// size changed. Each block may fail with [`Error::Io`] on a read failure,
    /// [`Error::NonFinite`] for a NaN or infinite value, or [`Error::InvalidStore`]
    /// when the matrix no longer matches the checksum verified on opening; the
    /// iterator ends after an error.
    pub fn blocks(&self, rows_per_block: usize) -> Result<StoreBlocks<'_>> {
        let reader: Box<dyn Read + Send> = match &self.backing {
            Backing::Memory(bytes) => {
                let mut c = Cursor::new(Arc::clone(bytes));
                c.set_position(self.data_start);
                Box::new(c)
            }
            Backing::File => {
                let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let len = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
                if len != self.len {
                    return Err(Error::invalid_store(
                        &self.path,
                        format!(
                            "the file is now {len} bytes but was {} when opened; open it again",
                            self.len
                        ),
                    ));
                }
                file.seek(SeekFrom::Start(self.data_start))
                    .map_err(|e| Error::io(&self.path, e))?;
                Box::new(BufReader::with_capacity(CHUNK, file))
            }
        };
        Ok(StoreBlocks {
            store: self,
            reader,
            next_row: 0,
            rows_per_block: rows_per_block.max(1),
            buf: Vec::new(),
            crc: crc32fast::Hasher::new(),
        })
    }
}

/// The first field (name, `a`'s value, `b`'s value) in which `a` and `b` differ.
fn first_difference(
    a: &StoreMetadata,
    b: &StoreMetadata,
) -> Option<(&'static str, String, String)> {
    if a.model != b.model {
        return Some(("model", a.model.clone(), b.model.clone()));
    }
    if a.pooling != b.pooling {
        return Some(("pooling", a.pooling.to_string(), b.pooling.to_string()));
    }
    if a.normalized != b.normalized {
        return Some((
            "normalized",
            a.normalized.to_string(),
            b.normalized.to_string(),
        ));
    }
    if a.dim != b.dim {
        return Some(("dim", a.dim.to_string(), b.dim.to_string()));
    }
    None
}

/// Rewrites a store written before checksums (format version 1) as a current,
/// checksummed store, in place and atomically, and returns it opened.
///
/// For a file you trust: a version 1 store has no checksum, so corruption that
/// happened before the upgrade cannot be detected; it is only checked for
/// structure (format, shapes, sizes), distinct ids and finite values. The old
/// file is read completely, block by block, into a new temporary file, which
/// replaces it only when every row was read and written; on any error the old
/// file is left as it was. Memory is that of [`EmbeddingsStore::blocks`] with
/// blocks of 4,096 rows, plus the ids twice (reader and writer). A store that
/// already has a checksum is verified and returned unchanged.
///
/// ```no_run
/// let store = latent_terms_encoders::upgrade_store("old-corpus.safetensors")?;
/// println!("{} rows now checksummed", store.rows());
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
///
/// # Errors
/// The errors of [`EmbeddingsStore::open`] other than [`Error::LegacyStore`],
/// [`Error::NonFinite`] for a value that is not finite (older writers could store
/// values beyond the F16 range as infinity), and the errors of [`StoreWriter`].
pub fn upgrade_store(path: impl AsRef<Path>) -> Result<EmbeddingsStore> {
    let path = path.as_ref();
    let old = EmbeddingsStore::open_with(path, Accept::AlsoLegacy)?;
    if old.legacy {
        let mut w = StoreWriter::create(path, old.meta.clone(), old.dtype)?;
        for block in old.blocks(4096)? {
            w.append(&block?)?;
        }
        w.finish()?;
    }
    EmbeddingsStore::open(path)
}

/// Blocks of rows of an [`EmbeddingsStore`], in order; see [`EmbeddingsStore::blocks`].
pub struct StoreBlocks<'a> {
    store: &'a EmbeddingsStore,
    reader: Box<dyn Read + Send>,
    next_row: usize,
    rows_per_block: usize,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl std::fmt::Debug for StoreBlocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBlocks")
            .field("path", &self.store.path)
            .field("next_row", &self.next_row)
            .field("rows_per_block", &self.rows_per_block)
            .finish_non_exhaustive()
    }
}

impl StoreBlocks<'_> {
    /// Index of the first row of the next block.
    pub fn next_row(&self) -> usize {
        self.next_row
    }
}

impl Iterator for StoreBlocks<'_> {
    type Item = Result<Embeddings>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.store;
        if self.next_row >= s.rows {
            return None;
        }
        let start = self.next_row;
        let n = self.rows_per_block.min(s.rows - start);
        let dim = s.meta.dim;
        // Ends the iteration after an error.
        self.next_row = s.rows;
        self.buf.resize(n * dim * s.dtype.size(), 0);
        if let Err(e) = self.reader.read_exact(&mut self.buf) {
            return Some(Err(Error::io(&s.path, e)));
        }
        self.crc.update(&self.buf);
        if start + n == s.rows {
            let now = self.crc.clone().finalize();
            if now != s.matrix_crc {
                return Some(Err(Error::invalid_store(
                    &s.path,
                    format!(
                        "the matrix changed since the store was opened (crc32 {:#010x} then, {now:#010x} now); open it again",
                        s.matrix_crc
                    ),
                )));
            }
        }
        let data: Vec<f32> = match s.dtype {
            StoreDtype::F32 => self
                .buf
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            StoreDtype::F16 => self
                .buf
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
            return Some(Err(Error::NonFinite {
                row: start + bad / dim,
                context: format!("reading {}", s.path.display()),
            }));
        }
        self.next_row = start + n;
        let ids = s.ids[start..start + n].to_vec();
        Some(Embeddings::new(ids, dim, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(dim: usize) -> StoreMetadata {
        StoreMetadata {
            model: "test-model".into(),
            pooling: Pooling::Mean,
            normalized: true,
            dim,
            prefix: String::new(),
        }
    }

    fn sample(rows: usize, dim: usize, offset: usize) -> Embeddings {
        let ids = (0..rows)
            .map(|i| format!("doc \"{}\"\n", i + offset))
            .collect();
        let data = (0..rows * dim)
            .map(|i| ((i + offset * dim) as f32 * 0.01).sin())
            .collect();
        Embeddings::new(ids, dim, data).unwrap()
    }

    fn write(path: &Path, dtype: StoreDtype, e: &Embeddings) -> Vec<u8> {
        let mut w = StoreWriter::create(path, meta(e.dim()), dtype).unwrap();
        w.append(e).unwrap();
        w.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    fn store_bytes(dtype: StoreDtype, e: &Embeddings) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("e.safetensors"), dtype, e)
    }

    /// Rewrites the trailing CRC-32 so that a deliberate change reaches the checks
    /// behind the checksum.
    fn fix_crc(bytes: &mut [u8]) {
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }

    /// A version 1 store, byte for byte as the writer before checksums made it.
    fn legacy_bytes(dtype: StoreDtype, e: &Embeddings) -> Vec<u8> {
        let m = meta(e.dim());
        let rows = e.rows() as u64;
        let mut data = Vec::new();
        for x in e.data() {
            match dtype {
                StoreDtype::F32 => data.extend_from_slice(&x.to_le_bytes()),
                StoreDtype::F16 => data.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes()),
            }
        }
        let ids = serde_json::to_vec(e.ids()).unwrap();
        let emb_bytes = data.len() as u64;
        let ids_end = emb_bytes + ids.len() as u64;
        let header = json!({
            "__metadata__": {
                "format": STORE_FORMAT, "version": "1", "model": m.model,
                "pooling": m.pooling.as_str(), "normalized": m.normalized.to_string(),
                "dim": m.dim.to_string(), "rows": rows.to_string(), "dtype": dtype.as_str(),
            },
            "embeddings": {"dtype": dtype.as_str(), "shape": [rows, m.dim], "data_offsets": [0, emb_bytes]},
            "ids": {"dtype": "U8", "shape": [ids.len()], "data_offsets": [emb_bytes, ids_end]},
        });
        let mut header = header.to_string().into_bytes();
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        out.extend_from_slice(&ids);
        out
    }

    fn is_corruption_error(e: &Error) -> bool {
        matches!(e, Error::InvalidStore { .. } | Error::StoreChecksum { .. })
    }

    #[test]
    fn round_trip_f32_in_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let mut w = StoreWriter::create(&path, meta(5), StoreDtype::F32).unwrap();
        let a = sample(7, 5, 0);
        let b = sample(4, 5, 7);
        w.append(&a).unwrap();
        w.append(&b).unwrap();
        assert_eq!(w.rows(), 11);
        w.finish().unwrap();

        let store = EmbeddingsStore::open_expecting(&path, &meta(5)).unwrap();
        assert_eq!(store.rows(), 11);
        let mut all = a.clone();
        all.extend(b).unwrap();
        assert_eq!(store.load().unwrap(), all);
        let blocks: Vec<Embeddings> = store.blocks(3).unwrap().map(Result::unwrap).collect();
        assert_eq!(blocks.len(), 4);
        let mut joined = Embeddings::empty(5);
        for bl in blocks {
            joined.extend(bl).unwrap();
        }
        assert_eq!(joined, all);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // The same bytes read from memory give the same store.
        let mem = EmbeddingsStore::from_bytes(std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(mem.path(), Path::new("<memory>"));
        assert_eq!(mem.ids(), store.ids());
        assert_eq!(mem.load().unwrap(), all);
    }

    #[test]
    fn readable_by_the_safetensors_crate_with_a_crc_of_every_byte_before_it() {
        let bytes = store_bytes(StoreDtype::F16, &sample(4, 3, 0));
        let (n, md) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!((8 + n) % 8, 0);
        let m = md.metadata().as_ref().unwrap();
        assert_eq!(m["format"], STORE_FORMAT);
        assert_eq!(m["version"], STORE_VERSION);
        assert_eq!(m["checksum"], "crc32");
        assert_eq!(m["pooling"], "mean");
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let emb = st.tensor("embeddings").unwrap();
        assert_eq!(emb.dtype(), safetensors::Dtype::F16);
        assert_eq!(emb.shape(), &[4, 3]);
        let ids: Vec<String> = serde_json::from_slice(st.tensor("ids").unwrap().data()).unwrap();
        assert_eq!(ids[3], "doc \"3\"\n");
        let crc = st.tensor("crc32").unwrap();
        assert_eq!(crc.dtype(), safetensors::Dtype::U32);
        assert_eq!(crc.shape(), &[1]);
        let stored = u32::from_le_bytes(crc.data().try_into().unwrap());
        assert_eq!(stored, crc32fast::hash(&bytes[..bytes.len() - 4]));
        // F16 round trip is close.
        let store = EmbeddingsStore::from_bytes(bytes).unwrap();
        let got = store.load().unwrap();
        for (x, y) in got.data().iter().zip(sample(4, 3, 0).data()) {
            assert!((x - y).abs() < 1e-3);
        }
    }

    #[test]
    fn empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        StoreWriter::create(&path, meta(4), StoreDtype::F32)
            .unwrap()
            .finish()
            .unwrap();
        let store = EmbeddingsStore::open(&path).unwrap();
        assert_eq!(store.rows(), 0);
        assert!(store.load().unwrap().is_empty());
        let bytes = std::fs::read(&path).unwrap();
        safetensors::SafeTensors::deserialize(&bytes).unwrap();
    }

    #[test]
    fn metadata_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let mut w = StoreWriter::create(&path, meta(2), StoreDtype::F32).unwrap();
        w.append_row("a", &[1.0, 0.0]).unwrap();
        w.finish().unwrap();
        let mut other = meta(2);
        other.model = "another".into();
        let err = EmbeddingsStore::open_expecting(&path, &other).unwrap_err();
        assert!(
            matches!(err, Error::MetadataMismatch { field: "model", .. }),
            "{err}"
        );
        let mut other = meta(2);
        other.pooling = Pooling::Cls;
        assert!(matches!(
            EmbeddingsStore::open_expecting(&path, &other),
            Err(Error::MetadataMismatch {
                field: "pooling",
                ..
            })
        ));
        let mut other = meta(2);
        other.normalized = false;
        assert!(matches!(
            EmbeddingsStore::open_expecting(&path, &other),
            Err(Error::MetadataMismatch {
                field: "normalized",
                ..
            })
        ));
        assert!(matches!(
            EmbeddingsStore::open_expecting(&path, &meta(3)),
            Err(Error::MetadataMismatch { field: "dim", .. })
        ));
    }

    #[test]
    fn a_wrong_query_store_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus.safetensors");
        let queries = dir.path().join("queries.safetensors");
        write(&corpus, StoreDtype::F32, &sample(3, 4, 0));
        write(&queries, StoreDtype::F32, &sample(2, 6, 0));
        let c = EmbeddingsStore::open(&corpus).unwrap();
        let q = EmbeddingsStore::open(&queries).unwrap();
        let err = c.check_queries(&q).unwrap_err();
        match &err {
            Error::StoresDisagree {
                queries: qp,
                corpus: cp,
                field,
                queries_value,
                corpus_value,
            } => {
                assert_eq!((qp, cp), (&queries, &corpus));
                assert_eq!(*field, "dim");
                assert_eq!((queries_value.as_str(), corpus_value.as_str()), ("6", "4"));
            }
            other => panic!("{other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "query store {} has dim \"6\" but corpus store {} has \"4\"",
                queries.display(),
                corpus.display()
            )),
            "{msg}"
        );
        c.check_queries(&c).unwrap();
    }

    #[test]
    fn bad_rows_are_rejected_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let mut w = StoreWriter::create(&path, meta(2), StoreDtype::F32).unwrap();
        assert!(matches!(
            w.append_row("a", &[1.0]),
            Err(Error::Dimension { .. })
        ));
        assert!(matches!(
            w.append_row("a", &[f32::NAN, 0.0]),
            Err(Error::NonFinite { .. })
        ));
        let bad = Embeddings::new(vec!["x".into()], 2, vec![0.0, f32::INFINITY]).unwrap();
        assert!(matches!(w.append(&bad), Err(Error::NonFinite { .. })));
        assert!(matches!(
            w.append(&sample(1, 3, 0)),
            Err(Error::Dimension { .. })
        ));
        assert_eq!(w.rows(), 0);
        w.append_row("ok", &[1.0, 2.0]).unwrap();
        w.finish().unwrap();
        let store = EmbeddingsStore::open(&path).unwrap();
        assert_eq!(store.ids(), ["ok"]);
        assert_eq!(store.load().unwrap().data(), [1.0, 2.0]);
        assert!(StoreWriter::create(dir.path().join("z"), meta(0), StoreDtype::F32).is_err());
    }

    #[test]
    fn values_beyond_f16_are_typed_errors_after_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.safetensors");
        let mut w = StoreWriter::create(&path, meta(2), StoreDtype::F16).unwrap();
        // 65,504 is the largest F16; 70,000 is finite as f32 but Inf as F16.
        w.append_row("max", &[65_504.0, -65_504.0]).unwrap();
        for v in [70_000.0, -70_000.0, 1e10] {
            let err = w.append_row("big", &[0.5, v]).unwrap_err();
            match err {
                Error::NonFinite { row, context } => {
                    assert_eq!(row, 1);
                    assert!(context.contains("F16"), "{context}");
                }
                other => panic!("{other}"),
            }
        }
        let batch = Embeddings::new(
            vec!["p".into(), "q".into(), "r".into()],
            2,
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 70_000.0],
        )
        .unwrap();
        assert!(matches!(
            w.append(&batch),
            Err(Error::NonFinite { row: 2, .. })
        ));
        assert_eq!(w.rows(), 1);
        w.finish().unwrap();
        let got = EmbeddingsStore::open(&path).unwrap().load().unwrap();
        assert_eq!(got.ids(), ["max"]);
        assert_eq!(got.data(), [65_504.0, -65_504.0]);
        // F32 stores 70,000 as it is.
        let p32 = dir.path().join("f.safetensors");
        let mut w = StoreWriter::create(&p32, meta(2), StoreDtype::F32).unwrap();
        w.append_row("big", &[0.5, 70_000.0]).unwrap();
        w.finish().unwrap();
        let got = EmbeddingsStore::open(&p32).unwrap().load().unwrap();
        assert_eq!(got.data(), [0.5, 70_000.0]);
    }

    #[test]
    fn duplicate_ids_are_typed_errors_in_the_writer_and_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.safetensors");
        let mut w = StoreWriter::create(&path, meta(1), StoreDtype::F32).unwrap();
        w.append_row("a", &[1.0]).unwrap();
        let err = w.append_row("a", &[2.0]).unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateId { id, path: p } if id == "a" && *p == path),
            "{err}"
        );
        // Against an earlier row, and within one batch: nothing of the batch is written.
        for ids in [["b", "a"], ["c", "c"]] {
            let batch = Embeddings::new(
                ids.iter().map(|s| s.to_string()).collect(),
                1,
                vec![3.0, 4.0],
            )
            .unwrap();
            assert!(matches!(w.append(&batch), Err(Error::DuplicateId { .. })));
        }
        assert_eq!(w.rows(), 1);
        w.append_row("b", &[5.0]).unwrap();
        w.finish().unwrap();
        let store = EmbeddingsStore::open(&path).unwrap();
        assert_eq!(store.ids(), ["a", "b"]);
        assert_eq!(store.load().unwrap().data(), [1.0, 5.0]);

        // A store whose ids were made equal (with a matching checksum) is refused.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(9)
            .position(|w| w == b"[\"a\",\"b\"]")
            .unwrap();
        bytes[at + 6] = b'a';
        fix_crc(&mut bytes);
        let err = EmbeddingsStore::from_bytes(bytes).unwrap_err();
        assert!(
            matches!(&err, Error::StoreDuplicateId { id, first: 0, second: 1, .. } if id == "a"),
            "{err}"
        );
        assert!(err.to_string().contains("rows 0 and 1"), "{err}");
    }

    /// Every single-byte change at every position of a small store (all 255 other
    /// values) is a typed error: the store never opens with different data.
    #[test]
    fn every_single_byte_corruption_of_a_small_store_is_detected() {
        for dtype in [StoreDtype::F32, StoreDtype::F16] {
            let good = store_bytes(dtype, &sample(3, 4, 0));
            EmbeddingsStore::from_bytes(good.clone()).unwrap();
            let mut bytes = good.clone();
            for i in 0..good.len() {
                for x in 1..=255u8 {
                    bytes[i] = good[i] ^ x;
                    match EmbeddingsStore::from_bytes(bytes.clone()) {
                        Ok(_) => panic!("{dtype:?}: byte {i} ^ {x:#04x} went undetected"),
                        Err(e) => assert!(is_corruption_error(&e), "byte {i}: {e}"),
                    }
                }
                bytes[i] = good[i];
            }
        }
    }

    /// 1,000 rows × 384: single-byte changes at 3,000 positions spread over the
    /// whole file (header, matrix, ids, checksum) are detected by `open`, which
    /// is what a search opens the store with.
    #[test]
    fn spread_corruption_of_a_large_store_is_detected() {
        let e = sample(1000, 384, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.safetensors");
        let good = write(&path, StoreDtype::F32, &e);
        assert_eq!(EmbeddingsStore::open(&path).unwrap().load().unwrap(), e);
        let len = good.len();
        let step = len / 3000;
        let positions: Vec<usize> = (0..3000)
            .map(|k| k * step + k % step.max(1))
            .chain(len - 8..len)
            .collect();
        let mut bytes = good.clone();
        for (k, &i) in positions.iter().enumerate() {
            let x = [0x01u8, 0x80, 0xff, 0x10][k % 4];
            bytes[i] ^= x;
            let err = EmbeddingsStore::from_bytes(bytes.clone()).unwrap_err();
            assert!(is_corruption_error(&err), "byte {i}: {err}");
            bytes[i] = good[i];
        }
        // Through the file, as `dense` does: 40 flips in the float data.
        let data_start = EmbeddingsStore::open(&path).unwrap().data_start as usize;
        for k in 0..40 {
            let i = data_start + k * (1000 * 384 * 4 / 40) + 3;
            let mut bytes = good.clone();
            bytes[i] ^= 0x04;
            std::fs::write(&path, &bytes).unwrap();
            let err = EmbeddingsStore::open(&path).unwrap_err();
            assert!(matches!(err, Error::StoreChecksum { .. }), "{err}");
            assert!(err.to_string().contains(&path.display().to_string()));
        }
    }

    #[test]
    fn truncation_and_appended_bytes_are_detected() {
        let good = store_bytes(StoreDtype::F16, &sample(5, 3, 0));
        for cut in 0..good.len() {
            let err = EmbeddingsStore::from_bytes(good[..cut].to_vec()).unwrap_err();
            assert!(is_corruption_error(&err), "cut at {cut}: {err}");
        }
        for extra in [&b"\0"[..], b"1234", &[0u8; 100]] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(extra);
            let err = EmbeddingsStore::from_bytes(bytes.clone()).unwrap_err();
            assert!(is_corruption_error(&err), "{err}");
            // Even with the checksum recomputed, the sizes no longer add up.
            fix_crc(&mut bytes);
            assert!(EmbeddingsStore::from_bytes(bytes).is_err());
        }
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let good = store_bytes(StoreDtype::F32, &sample(3, 2, 0));
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 2, 3],
            {
                let mut v = good.clone();
                v[0] = 0xff;
                v[7] = 0x7f;
                v
            },
            {
                let mut v = good.clone();
                v[8] = b'[';
                v
            },
        ];
        for (i, bytes) in cases.into_iter().enumerate() {
            let err = EmbeddingsStore::from_bytes(bytes).unwrap_err();
            assert!(matches!(err, Error::InvalidStore { .. }), "case {i}: {err}");
        }
        // Header edits, each with the checksum recomputed, so that they reach the
        // header validation: another format tag, another version, no checksum
        // entry, an extra tensor name, a metadata dtype that disagrees.
        let edits: [(&str, &str); 5] = [
            (STORE_FORMAT, "latent-terms-embeddingX"),
            ("\"version\":\"2\"", "\"version\":\"3\""),
            ("\"checksum\":\"crc32\"", "\"checksum\":\"crc33\""),
            ("\"ids\":{", "\"idz\":{"),
            (
                "\"dtype\":\"F32\",\"format\"",
                "\"dtype\":\"F16\",\"format\"",
            ),
        ];
        for (from, to) in edits {
            assert_eq!(from.len(), to.len());
            let mut bytes = good.clone();
            let at = bytes
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap_or_else(|| panic!("{from} not in the header"));
            bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
            fix_crc(&mut bytes);
            let err = EmbeddingsStore::from_bytes(bytes).unwrap_err();
            assert!(matches!(err, Error::InvalidStore { .. }), "{from}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            EmbeddingsStore::open(dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn legacy_stores_are_refused_and_upgrade_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in [StoreDtype::F32, StoreDtype::F16] {
            let e = sample(9, 5, 0);
            let path = dir
                .path()
                .join(format!("old-{}.safetensors", dtype.as_str()));
            let legacy = legacy_bytes(dtype, &e);
            // A well-formed safetensors file.
            safetensors::SafeTensors::deserialize(&legacy).unwrap();
            std::fs::write(&path, &legacy).unwrap();
            let err = EmbeddingsStore::open(&path).unwrap_err();
            assert!(
                matches!(&err, Error::LegacyStore { path: p } if *p == path),
                "{err}"
            );
            assert!(err.to_string().contains("upgrade_store"), "{err}");
            assert!(matches!(
                EmbeddingsStore::from_bytes(legacy.clone()),
                Err(Error::LegacyStore { .. })
            ));
            let old = EmbeddingsStore::open_with(&path, Accept::AlsoLegacy)
                .unwrap()
                .load()
                .unwrap();

            let upgraded = upgrade_store(&path).unwrap();
            assert_eq!(upgraded.dtype(), dtype);
            assert_eq!(upgraded.metadata(), &meta(5));
            assert_eq!(upgraded.load().unwrap(), old);
            let reopened = EmbeddingsStore::open(&path).unwrap();
            assert_eq!(reopened.load().unwrap(), old);
            // Upgrading a current store changes nothing.
            let bytes = std::fs::read(&path).unwrap();
            upgrade_store(&path).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        // Only the two stores: no temporary file left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn upgrade_refuses_what_the_current_format_forbids_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.safetensors");
        // The old F16 writer checked finiteness before conversion: 70,000 became Inf.
        let inf = Embeddings::new(
            vec!["a".into(), "b".into()],
            2,
            vec![1.0, 2.0, 70_000.0, 3.0],
        )
        .unwrap();
        let legacy = legacy_bytes(StoreDtype::F16, &inf);
        std::fs::write(&path, &legacy).unwrap();
        assert!(matches!(
            upgrade_store(&path),
            Err(Error::NonFinite { row: 1, .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), legacy);
        // Duplicate ids.
        let dup = Embeddings::new(vec!["a".into(), "a".into()], 1, vec![1.0, 2.0]).unwrap();
        let legacy = legacy_bytes(StoreDtype::F32, &dup);
        std::fs::write(&path, &legacy).unwrap();
        assert!(matches!(
            upgrade_store(&path),
            Err(Error::StoreDuplicateId { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), legacy);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A writer dropped midway (as when the process is interrupted between
    /// appends) leaves the previous store intact and no temporary file.
    #[test]
    fn a_writer_dropped_midway_leaves_the_previous_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let before = write(&path, StoreDtype::F32, &sample(4, 3, 0));
        {
            let mut w = StoreWriter::create(&path, meta(3), StoreDtype::F32).unwrap();
            w.append(&sample(100, 3, 50)).unwrap();
            w.append_row("x", &[1.0, 2.0, 3.0]).unwrap();
            // A temporary file exists beside the store while writing.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            EmbeddingsStore::open(&path).unwrap().load().unwrap(),
            sample(4, 3, 0)
        );
        // A failed writer (error on append) is also dropped without trace.
        let mut w = StoreWriter::create(&path, meta(3), StoreDtype::F32).unwrap();
        assert!(w.append_row("nan", &[f32::NAN, 0.0, 0.0]).is_err());
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_changed_after_opening_fails_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let mut bytes = write(&path, StoreDtype::F32, &sample(10, 4, 0));
        let store = EmbeddingsStore::open(&path).unwrap();
        let at = store.data_start as usize + 17;
        bytes[at] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, Error::InvalidStore { .. }), "{err}");
        assert!(err.to_string().contains("changed since"), "{err}");
        // The last of several blocks fails, and the iteration ends there.
        let results: Vec<Result<Embeddings>> = store.blocks(4).unwrap().collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_ok() && results[2].is_err());
        bytes.push(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(store.blocks(4), Err(Error::InvalidStore { .. })));
    }
}
