//! A dense row-major matrix of embeddings with one id per row.

use crate::error::{Error, Result};

/// Embeddings of `rows` texts: a contiguous row-major `rows x dim` matrix of `f32`
/// plus one id per row.
///
/// Row `i` is `data[i * dim .. (i + 1) * dim]` and belongs to `ids[i]`.
///
/// ```
/// use latent_terms_encoders::Embeddings;
///
/// let e = Embeddings::new(vec!["d1".into(), "d2".into()], 2, vec![1.0, 0.0, 0.6, 0.8])?;
/// assert_eq!(e.rows(), 2);
/// assert_eq!(e.row(1), Some(&[0.6, 0.8][..]));
/// assert_eq!(e.ids()[1], "d2");
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    ids: Vec<String>,
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Builds a matrix; `data.len()` must be `ids.len() * dim`.
    ///
    /// # Errors
    /// [`Error::Shape`] when the lengths disagree, or when `dim` is 0 while there are rows.
    pub fn new(ids: Vec<String>, dim: usize, data: Vec<f32>) -> Result<Self> {
        let expected = ids.len().checked_mul(dim);
        if expected != Some(data.len()) {
            return Err(Error::Shape(format!(
                "{} ids x dimension {dim} needs {} values, got {}",
                ids.len(),
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                data.len()
            )));
        }
        if dim == 0 && !ids.is_empty() {
            return Err(Error::Shape("dimension 0 with non-empty rows".into()));
        }
        Ok(Embeddings { ids, dim, data })
    }

    /// An empty matrix of the given dimension.
    pub fn empty(dim: usize) -> Self {
        Embeddings {
            ids: Vec::new(),
            dim,
            data: Vec::new(),
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Embedding dimension (columns).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The row ids, one per row.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The whole matrix, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Row `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        if i >= self.rows() {
            return None;
        }
        self.data.get(i * self.dim..(i + 1) * self.dim)
    }

    /// Iterates over `(id, row)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[f32])> {
        // `chunks_exact(0)` would panic; a zero dimension only occurs with no rows.
        let rows = self.data.chunks_exact(self.dim.max(1));
        self.ids.iter().map(String::as_str).zip(rows)
    }

    /// Appends the rows of `other` (same dimension).
    ///
    /// # Errors
    /// [`Error::Dimension`] when the dimensions differ.
    pub fn extend(&mut self, other: Embeddings) -> Result<()> {
        if other.dim != self.dim && !other.is_empty() {
            if self.is_empty() {
                self.dim = other.dim;
            } else {
                return Err(Error::Dimension {
                    expected: self.dim,
                    found: other.dim,
                });
            }
        }
        self.ids.extend(other.ids);
        self.data.extend(other.data);
        Ok(())
    }

    /// Takes the matrix apart: `(ids, dim, data)`.
    pub fn into_parts(self) -> (Vec<String>, usize, Vec<f32>) {
        (self.ids, self.dim, self.data)
    }

    /// L2 norms of the rows, accumulated in f64 so that no finite row overflows
    /// (a row of 1e30s has norm 1e30 × √dim, not infinity) or underflows to 0.
    pub fn norms(&self) -> Vec<f32> {
        self.iter()
            .map(|(_, r)| {
                let sq: f64 = r.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
                sq.sqrt() as f32
            })
            .collect()
    }
}

/// Dot product, written so that the compiler vectorises it (eight accumulators).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(Embeddings::new(vec!["a".into()], 3, vec![1.0, 2.0]).is_err());
        assert!(Embeddings::new(vec!["a".into()], 0, vec![]).is_err());
        let e = Embeddings::new(vec![], 0, vec![]).unwrap();
        assert_eq!(e.iter().count(), 0);
        assert_eq!(e.row(0), None);
    }

    #[test]
    fn rows_and_extend() {
        let mut a = Embeddings::new(vec!["a".into()], 2, vec![3.0, 4.0]).unwrap();
        let b = Embeddings::new(vec!["b".into()], 2, vec![0.0, 1.0]).unwrap();
        a.extend(b).unwrap();
        assert_eq!(a.rows(), 2);
        assert_eq!(a.row(1), Some(&[0.0, 1.0][..]));
        assert_eq!(a.norms(), vec![5.0, 1.0]);
        let big = Embeddings::new(
            vec!["x".into(), "y".into()],
            2,
            vec![3e30, 4e30, 3e-30, 4e-30],
        )
        .unwrap();
        let n = big.norms();
        assert!(
            (n[0] / 5e30 - 1.0).abs() < 1e-6 && (n[1] / 5e-30 - 1.0).abs() < 1e-6,
            "{n:?}"
        );
        let c = Embeddings::new(vec!["c".into()], 3, vec![0.0; 3]).unwrap();
        assert!(matches!(a.extend(c), Err(Error::Dimension { .. })));
        let mut empty = Embeddings::empty(7);
        empty.extend(a.clone()).unwrap();
        assert_eq!(empty, a);
    }

    #[test]
    fn dot_matches_naive() {
        for n in [0, 1, 7, 8, 9, 31, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-4, "n = {n}");
        }
    }
}
