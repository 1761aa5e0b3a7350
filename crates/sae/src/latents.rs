//! The latents file: sparse codes of a collection, with their ids, in one safetensors file.
//!
//! | tensor    | dtype | shape     | meaning                                              |
//! |-----------|-------|-----------|------------------------------------------------------|
//! | `indptr`  | `U64` | [n + 1]   | row `r`'s entries are `indptr[r]..indptr[r + 1]`     |
//! | `indices` | `U32` | [nnz]     | latent ids, ascending within a row                   |
//! | `values`  | `F32` | [nnz]     | activations                                          |
//! | `ids`     | `U8`  | [bytes]   | the row ids as a UTF-8 JSON array of strings         |
//!
//! `__metadata__`: `format` = `latent-terms-latents`, `version` = `2`, `d_sae`, and
//! `crc32` sealing the four tensors' bytes in the order above and the metadata
//! (`crate::seal`; version 1 files, whose CRC left `d_sae` out, are refused). In Python:
//! `scipy.sparse.csr_matrix((t["values"], t["indices"], t["indptr"]))`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::encoder::SparseCode;
use crate::error::{Error, Result};
use crate::seal;
use crate::weights::{bytes_f32, f32_bytes, write_atomic};

const FORMAT: &str = "latent-terms-latents";
const VERSION: &str = "2";

/// Sparse latent codes with their row ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latents {
    /// Number of latents of the SAE that made the codes.
    pub d_sae: usize,
    /// Row ids (document or query ids).
    pub ids: Vec<String>,
    /// One code per id.
    pub codes: Vec<SparseCode>,
}

impl Latents {
    /// Writes the file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if self.ids.len() != self.codes.len() {
            return Err(Error::InvalidConfig(format!(
                "{} ids for {} codes",
                self.ids.len(),
                self.codes.len()
            )));
        }
        let mut indptr = Vec::with_capacity(self.codes.len() + 1);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        indptr.push(0u64);
        for code in &self.codes {
            indices.extend(code.indices.iter().flat_map(|i| i.to_le_bytes()));
            values.extend_from_slice(&code.values);
            indptr.push((values.len()) as u64);
        }
        let indptr: Vec<u8> = indptr.iter().flat_map(|i| i.to_le_bytes()).collect();
        let values = f32_bytes(&values);
        let ids = serde_json::to_vec(&self.ids).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let nnz = values.len() / 4;
        let parts = [
            ("indptr", Dtype::U64, vec![self.codes.len() + 1], &indptr),
            ("indices", Dtype::U32, vec![nnz], &indices),
            ("values", Dtype::F32, vec![nnz], &values),
            ("ids", Dtype::U8, vec![ids.len()], &ids),
        ];
        let mut views = Vec::new();
        for (name, dtype, shape, data) in parts {
            let view = TensorView::new(dtype, shape, data)
                .map_err(|e| Error::checkpoint(path, e.to_string()))?;
            views.push((name, view));
        }
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("d_sae".to_string(), self.d_sae.to_string()),
        ]);
        let sealed = seal::seal([&indptr[..], &indices, &values, &ids], &metadata);
        metadata.insert(seal::CRC_KEY.to_string(), sealed);
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
        write_atomic(path, &bytes)
    }

    /// Reads and verifies a latents file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|reason| Error::checkpoint(path, reason))
    }

    /// Parses a latents file from memory; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let meta = header.metadata().as_ref().ok_or("no __metadata__")?;
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(format!("not a {FORMAT} file"));
        }
        match meta.get("version").map(String::as_str) {
            Some(VERSION) => {}
            Some("1") => {
                return Err("a version 1 latents file (its checksum leaves d_sae out): \
                            write it again with this version"
                    .into());
            }
            other => return Err(format!("unknown latents file version {other:?}")),
        }
        let d_sae: usize = meta
            .get("d_sae")
            .and_then(|s| s.parse().ok())
            .ok_or("no numeric d_sae in __metadata__")?;
        let t = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let get = |name: &str, dtype: Dtype| -> std::result::Result<Vec<u8>, String> {
            let view = t.tensor(name).map_err(|e| format!("{name}: {e}"))?;
            if view.dtype() != dtype {
                return Err(format!("{name} is {:?}, expected {dtype:?}", view.dtype()));
            }
            Ok(view.data().to_vec())
        };
        let indptr = get("indptr", Dtype::U64)?;
        let indices = get("indices", Dtype::U32)?;
        let values = get("values", Dtype::F32)?;
        let ids = get("ids", Dtype::U8)?;
        seal::check([&indptr[..], &indices, &values, &ids], meta)?;
        let ids: Vec<String> = serde_json::from_slice(&ids).map_err(|e| format!("ids: {e}"))?;
        let indptr: Vec<usize> = indptr
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) as usize)
            .collect();
        let indices: Vec<u32> = indices
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let values = bytes_f32(&values);
        if indptr.len() != ids.len() + 1 || indices.len() != values.len() {
            return Err("indptr, ids, indices and values disagree in length".into());
        }
        let mut codes = Vec::with_capacity(ids.len());
        for w in indptr.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a > b || b > values.len() {
                return Err(format!(
                    "indptr is not monotone within 0..={}",
                    values.len()
                ));
            }
            let code = SparseCode {
                indices: indices[a..b].to_vec(),
                values: values[a..b].to_vec(),
            };
            if code.indices.windows(2).any(|p| p[0] >= p[1])
                || code.indices.iter().any(|&i| i as usize >= d_sae)
            {
                return Err(format!(
                    "a row's latent ids are not ascending below d_sae {d_sae}"
                ));
            }
            codes.push(code);
        }
        if indptr.first() != Some(&0) || indptr.last() != Some(&values.len()) {
            return Err("indptr does not span the entries".into());
        }
        Ok(Latents { d_sae, ids, codes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.safetensors");
        let latents = Latents {
            d_sae: 10,
            ids: vec!["a".into(), "b b".into(), "c".into()],
            codes: vec![
                SparseCode {
                    indices: vec![1, 7],
                    values: vec![0.5, 1.5],
                },
                SparseCode::default(),
                SparseCode {
                    indices: vec![9],
                    values: vec![2.0],
                },
            ],
        };
        latents.save(&path).unwrap();
        assert_eq!(Latents::load(&path).unwrap(), latents);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 1;
        assert!(Latents::from_bytes(&bytes).is_err());
        assert!(Latents::from_bytes(&bytes[..n / 2]).is_err());
        // d_sae 10 -> 90 in the metadata: every row still fits, only the seal notices.
        let mut bytes = std::fs::read(&path).unwrap();
        let pos = bytes
            .windows(10)
            .position(|w| w == b"\"d_sae\":\"1")
            .unwrap()
            + 9;
        bytes[pos] = b'9';
        let err = Latents::from_bytes(&bytes).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }
}
