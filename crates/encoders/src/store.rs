//! Embeddings store: one safetensors file with the matrix, the ids and the model metadata.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::Pooling;
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};

/// The `format` value in the metadata of every store.
pub const STORE_FORMAT: &str = "latent-terms-embeddings";
/// The format version written and accepted.
pub const STORE_VERSION: &str = "1";
/// Largest header accepted on reading (as the safetensors reference implementation).
const MAX_HEADER: u64 = 100_000_000;

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
}

fn header_json(
    meta: &StoreMetadata,
    dtype: StoreDtype,
    rows: u64,
    emb_bytes: u64,
    ids_bytes: u64,
) -> Vec<u8> {
    let ids_end = emb_bytes.saturating_add(ids_bytes);
    let header = json!({
        "__metadata__": {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "model": meta.model,
            "pooling": meta.pooling.as_str(),
            "normalized": meta.normalized.to_string(),
            "dim": meta.dim.to_string(),
            "rows": rows.to_string(),
            "dtype": dtype.as_str(),
        },
        "embeddings": {"dtype": dtype.as_str(), "shape": [rows, meta.dim], "data_offsets": [0, emb_bytes]},
        "ids": {"dtype": "U8", "shape": [ids_bytes], "data_offsets": [emb_bytes, ids_end]},
    });
    header.to_string().into_bytes()
}

/// Writes an embeddings store by streaming appends; the format is described at
/// [`EmbeddingsStore`].
///
/// ```no_run
/// use latent_terms_encoders::{Embeddings, EmbeddingsStore, Pooling, StoreDtype, StoreMetadata, StoreWriter};
///
/// let meta = StoreMetadata { model: "demo".into(), pooling: Pooling::Mean, normalized: true, dim: 2 };
/// let mut w = StoreWriter::create("demo.safetensors", meta.clone(), StoreDtype::F32)?;
/// w.append(&Embeddings::new(vec!["a".into(), "b".into()], 2, vec![1.0, 0.0, 0.0, 1.0])?)?;
/// w.append_row("c", &[0.6, 0.8])?;
/// w.finish()?;
/// let store = EmbeddingsStore::open_expecting("demo.safetensors", &meta)?;
/// assert_eq!(store.rows(), 3);
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
#[derive(Debug)]
pub struct StoreWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    meta: StoreMetadata,
    dtype: StoreDtype,
    rows: u64,
    ids: Vec<u8>,
    reserved: usize,
}

impl StoreWriter {
    /// Starts a store at `path` (written to `path` + `.tmp-PID` until [`StoreWriter::finish`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a zero dimension, [`Error::Io`] if the temporary file
    /// cannot be created.
    pub fn create(path: impl AsRef<Path>, meta: StoreMetadata, dtype: StoreDtype) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if meta.dim == 0 {
            return Err(Error::Config("store dimension must be at least 1".into()));
        }
        let mut name = path
            .file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| Error::Config(format!("{} is not a file path", path.display())))?;
        name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(name);
        let upper = header_json(&meta, dtype, u64::MAX, u64::MAX, u64::MAX).len();
        // 8 + header is a multiple of 8, so the data is 8-byte aligned.
        let reserved = upper.div_ceil(8) * 8;
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(&vec![0u8; 8 + reserved])
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(StoreWriter {
            path,
            tmp,
            file: Some(file),
            meta,
            dtype,
            rows: 0,
            ids: vec![b'['],
            reserved,
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

    /// Appends all rows of `embeddings`.
    ///
    /// # Errors
    /// [`Error::Dimension`] if the dimension differs from the store's,
    /// [`Error::NonFinite`] for NaN or infinite values (nothing of this call is
    /// written then), [`Error::Io`] on write failure.
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
        if let Some(bad) = embeddings.data().iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                row: bad / self.meta.dim,
                context: format!("appending to {}", self.path.display()),
            });
        }
        for (id, row) in embeddings.iter() {
            self.write_row(id, row)?;
        }
        Ok(())
    }

    /// Appends one row.
    ///
    /// # Errors
    /// As [`StoreWriter::append`].
    pub fn append_row(&mut self, id: &str, row: &[f32]) -> Result<()> {
        if row.len() != self.meta.dim {
            return Err(Error::Dimension {
                expected: self.meta.dim,
                found: row.len(),
            });
        }
        if !row.iter().all(|x| x.is_finite()) {
            return Err(Error::NonFinite {
                row: usize::try_from(self.rows).unwrap_or(usize::MAX),
                context: format!("appending to {}", self.path.display()),
            });
        }
        self.write_row(id, row)
    }

    fn write_row(&mut self, id: &str, row: &[f32]) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| {
            Error::Config("the store writer failed earlier and cannot be used".into())
        })?;
        let res = match self.dtype {
            StoreDtype::F32 => row
                .iter()
                .try_for_each(|x| file.write_all(&x.to_le_bytes())),
            StoreDtype::F16 => row
                .iter()
                .try_for_each(|x| file.write_all(&half::f16::from_f32(*x).to_le_bytes())),
        };
        if let Err(e) = res {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.tmp, e));
        }
        if self.rows > 0 {
            self.ids.push(b',');
        }
        // Serialising a &str to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.ids, id);
        self.rows += 1;
        Ok(())
    }

    /// Writes the ids and the header, syncs, and renames the file into place.
    /// Returns the final path.
    ///
    /// # Errors
    /// [`Error::Io`] on write, sync or rename failure (the temporary file is removed).
    pub fn finish(mut self) -> Result<PathBuf> {
        let res = self.finish_inner();
        if res.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        res
    }

    fn finish_inner(&mut self) -> Result<PathBuf> {
        let tmp = self.tmp.clone();
        let mut file = self.file.take().ok_or_else(|| {
            Error::Config("the store writer failed earlier and cannot be used".into())
        })?;
        self.ids.push(b']');
        file.write_all(&self.ids).map_err(|e| Error::io(&tmp, e))?;
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
        let mut file = file
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&(self.reserved as u64).to_le_bytes())
            .and_then(|()| file.write_all(&header))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        if let Some(parent) = self.path.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(self.path.clone())
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// An embeddings store opened for reading: metadata and ids in memory, the matrix
/// read on demand (whole, or in blocks for corpora larger than memory).
///
/// # Format
///
/// A standard [safetensors] file (little-endian `u64` header length, JSON header,
/// raw data), readable by any safetensors reader:
///
/// | tensor | dtype | shape | content |
/// |---|---|---|---|
/// | `embeddings` | `F32` or `F16` | `[rows, dim]` | the row-major matrix |
/// | `ids` | `U8` | `[bytes]` | the row ids as a UTF-8 JSON array of strings, in row order |
///
/// `__metadata__` holds `format` = `latent-terms-embeddings`, `version` = `1`,
/// `model`, `pooling` (`cls` / `mean` / `last_token`), `normalized` (`true` /
/// `false`), `dim`, `rows` and `dtype`. Python reads it with
/// `safetensors.numpy.load_file(path)` and `json.loads(bytes(t["ids"]))`.
///
/// The ids live in a tensor rather than in the metadata because the metadata is a
/// JSON string map read in one piece (readers cap the header at 100 MB), while a
/// large corpus has hundreds of megabytes of ids.
///
/// # Writing
///
/// [`StoreWriter`] streams rows to a temporary file next to the destination,
/// leaving room for the header at the front; [`StoreWriter::finish`] appends the
/// ids, writes the header into the reserved space, syncs and renames the file into
/// place, so readers never see a partial store. Memory use is the ids (kept until
/// `finish`) plus the write buffer; the vectors themselves are not kept.
///
/// [safetensors]: https://github.com/huggingface/safetensors
#[derive(Debug, Clone)]
pub struct EmbeddingsStore {
    path: PathBuf,
    meta: StoreMetadata,
    dtype: StoreDtype,
    rows: usize,
    data_start: u64,
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

impl EmbeddingsStore {
    /// Opens a store and checks its structure (format, version, shapes, offsets,
    /// file size, ids).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::InvalidStore`] if it is not
    /// a well-formed store.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let p = path.as_path();
        let mut file = File::open(p).map_err(|e| Error::io(p, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(p, e))?.len();
        let mut len8 = [0u8; 8];
        file.read_exact(&mut len8)
            .map_err(|_| Error::invalid_store(p, "shorter than 8 bytes"))?;
        let n = u64::from_le_bytes(len8);
        if n > MAX_HEADER || n > file_len.saturating_sub(8) {
            return Err(Error::invalid_store(
                p,
                format!("header length {n} is out of range"),
            ));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(|e| Error::io(p, e))?;
        let header: Value = serde_json::from_slice(&header)
            .map_err(|e| Error::invalid_store(p, format!("header is not JSON: {e}")))?;
        let meta = header
            .get("__metadata__")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::invalid_store(p, "no __metadata__"))?;
        let format = meta_str(meta, "format", p)?;
        if format != STORE_FORMAT {
            return Err(Error::invalid_store(
                p,
                format!("format is {format:?}, not {STORE_FORMAT:?}"),
            ));
        }
        let version = meta_str(meta, "version", p)?;
        if version != STORE_VERSION {
            return Err(Error::invalid_store(
                p,
                format!(
                    "format version {version} is not supported (this build reads {STORE_VERSION})"
                ),
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
        let model = meta_str(meta, "model", p)?.to_string();

        let emb = header
            .get("embeddings")
            .ok_or_else(|| Error::invalid_store(p, "no embeddings tensor"))?;
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
        let ids_entry = header
            .get("ids")
            .ok_or_else(|| Error::invalid_store(p, "no ids tensor"))?;
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
        let data_start = 8 + n;
        if data_start.checked_add(ids_end) != Some(file_len) {
            return Err(Error::invalid_store(
                p,
                format!(
                    "file is {file_len} bytes but the header describes {}",
                    data_start.saturating_add(ids_end)
                ),
            ));
        }
        file.seek(SeekFrom::Start(data_start + ids_start))
            .map_err(|e| Error::io(p, e))?;
        let mut ids_bytes = vec![0u8; (ids_end - ids_start) as usize];
        file.read_exact(&mut ids_bytes)
            .map_err(|e| Error::io(p, e))?;
        let ids: Vec<String> = serde_json::from_slice(&ids_bytes).map_err(|e| {
            Error::invalid_store(p, format!("ids are not a JSON array of strings: {e}"))
        })?;
        let rows = usize::try_from(rows).map_err(|_| Error::invalid_store(p, "too many rows"))?;
        if ids.len() != rows {
            return Err(Error::invalid_store(
                p,
                format!("{} ids for {rows} rows", ids.len()),
            ));
        }
        let dim =
            usize::try_from(dim).map_err(|_| Error::invalid_store(p, "dimension too large"))?;
        if dim == 0 {
            return Err(Error::invalid_store(p, "dimension 0"));
        }
        Ok(EmbeddingsStore {
            path,
            meta: StoreMetadata {
                model,
                pooling,
                normalized,
                dim,
            },
            dtype,
            rows,
            data_start,
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
        let m = &self.meta;
        let mismatch = |field: &'static str, e: String, f: String| Error::MetadataMismatch {
            path: self.path.clone(),
            field,
            expected: e,
            found: f,
        };
        if m.model != expected.model {
            return Err(mismatch("model", expected.model.clone(), m.model.clone()));
        }
        if m.pooling != expected.pooling {
            return Err(mismatch(
                "pooling",
                expected.pooling.to_string(),
                m.pooling.to_string(),
            ));
        }
        if m.normalized != expected.normalized {
            return Err(mismatch(
                "normalized",
                expected.normalized.to_string(),
                m.normalized.to_string(),
            ));
        }
        if m.dim != expected.dim {
            return Err(mismatch("dim", expected.dim.to_string(), m.dim.to_string()));
        }
        Ok(())
    }

    /// The store's file.
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
    /// [`Error::Io`] on read failure, [`Error::NonFinite`] for NaN or infinite values.
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
    /// # Errors
    /// [`Error::Io`] if the file cannot be reopened; each block may fail as
    /// [`EmbeddingsStore::load`].
    pub fn blocks(&self, rows_per_block: usize) -> Result<StoreBlocks<'_>> {
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.data_start))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(StoreBlocks {
            store: self,
            reader: BufReader::with_capacity(1 << 20, file),
            next_row: 0,
            rows_per_block: rows_per_block.max(1),
            buf: Vec::new(),
        })
    }
}

/// Blocks of rows of an [`EmbeddingsStore`], in order; see [`EmbeddingsStore::blocks`].
#[derive(Debug)]
pub struct StoreBlocks<'a> {
    store: &'a EmbeddingsStore,
    reader: BufReader<File>,
    next_row: usize,
    rows_per_block: usize,
    buf: Vec<u8>,
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
        self.buf.resize(n * dim * s.dtype.size(), 0);
        if let Err(e) = self.reader.read_exact(&mut self.buf) {
            self.next_row = s.rows;
            return Some(Err(Error::io(&s.path, e)));
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
        self.next_row += n;
        if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
            self.next_row = s.rows;
            return Some(Err(Error::NonFinite {
                row: start + bad / dim,
                context: format!("reading {}", s.path.display()),
            }));
        }
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
    }

    #[test]
    fn readable_by_the_safetensors_crate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let mut w = StoreWriter::create(&path, meta(3), StoreDtype::F16).unwrap();
        w.append(&sample(4, 3, 0)).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (n, md) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!((8 + n) % 8, 0);
        let m = md.metadata().as_ref().unwrap();
        assert_eq!(m["format"], STORE_FORMAT);
        assert_eq!(m["pooling"], "mean");
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let emb = st.tensor("embeddings").unwrap();
        assert_eq!(emb.dtype(), safetensors::Dtype::F16);
        assert_eq!(emb.shape(), &[4, 3]);
        let ids: Vec<String> = serde_json::from_slice(st.tensor("ids").unwrap().data()).unwrap();
        assert_eq!(ids[3], "doc \"3\"\n");
        // F16 round trip is close.
        let store = EmbeddingsStore::open(&path).unwrap();
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
    fn bad_rows_are_rejected_and_unfinished_writers_clean_up() {
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
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(StoreWriter::create(&path, meta(0), StoreDtype::F32).is_err());
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        let mut w = StoreWriter::create(&path, meta(2), StoreDtype::F32).unwrap();
        w.append(&sample(3, 2, 0)).unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&path).unwrap();

        let bad = dir.path().join("bad.safetensors");
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 2, 3],
            good[..good.len() - 1].to_vec(),
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
            {
                let mut v = good.clone();
                v.extend_from_slice(b"extra");
                v
            },
        ];
        for (i, bytes) in cases.into_iter().enumerate() {
            std::fs::write(&bad, &bytes).unwrap();
            let err = EmbeddingsStore::open(&bad).unwrap_err();
            assert!(matches!(err, Error::InvalidStore { .. }), "case {i}: {err}");
        }
        // A plain safetensors file that is not a store.
        let mut other = good.clone();
        let at = other
            .windows(STORE_FORMAT.len())
            .position(|w| w == STORE_FORMAT.as_bytes())
            .unwrap();
        other[at + STORE_FORMAT.len() - 1] = b'X';
        std::fs::write(&bad, &other).unwrap();
        assert!(matches!(
            EmbeddingsStore::open(&bad),
            Err(Error::InvalidStore { .. })
        ));
        assert!(matches!(
            EmbeddingsStore::open(dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }
}
