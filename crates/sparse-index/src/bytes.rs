//! Shared, immutable byte storage (heap or memory map) and bounds-checked little-endian reads.
//!
//! Bounds checks protect against lengths inside the bytes, not against the bytes changing
//! underneath: a [`Storage::Mmap`] of a file that another process truncates faults (SIGBUS)
//! on the next access to a page past the new end, whatever the checks say. That is why
//! [`crate::Backing::Read`] (heap) is the default and the map an explicit opt-in.

use std::ops::Range;
use std::sync::Arc;

use crate::error::{IndexError, Result};

/// Who owns the bytes an index reads from.
pub(crate) enum Storage {
    Heap(Vec<u8>),
    Mmap(memmap2::Mmap),
}

impl Storage {
    fn as_slice(&self) -> &[u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Mmap(m) => m,
        }
    }
}

/// A cheap-to-clone view of a range of a [`Storage`].
#[derive(Clone)]
pub(crate) struct Bytes {
    owner: Arc<Storage>,
    range: Range<usize>,
}

impl Bytes {
    pub(crate) fn from_vec(v: Vec<u8>) -> Self {
        let len = v.len();
        Self {
            owner: Arc::new(Storage::Heap(v)),
            range: 0..len,
        }
    }

    pub(crate) fn from_backing(owner: Arc<Storage>) -> Self {
        let len = owner.as_slice().len();
        Self {
            owner,
            range: 0..len,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // The range was checked against the owner when the view was made.
        self.owner.as_slice().get(self.range.clone()).unwrap_or(&[])
    }

    pub(crate) fn len(&self) -> usize {
        self.range.len()
    }

    /// A sub-view; `None` if `start..start+len` is outside this view.
    pub(crate) fn slice(&self, start: usize, len: usize) -> Option<Bytes> {
        let end = start.checked_add(len)?;
        if end > self.range.len() {
            return None;
        }
        Some(Self {
            owner: Arc::clone(&self.owner),
            range: self.range.start + start..self.range.start + end,
        })
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

/// Sequential reader over a byte slice that turns every overrun into a typed error.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| IndexError::corrupted(format!("{} is too short", self.what)))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Errors if bytes are left over: a section longer than its content is corrupt too.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(IndexError::corrupted(format!(
                "{} has {} trailing bytes",
                self.what,
                self.remaining()
            )))
        }
    }
}

/// Reads the `i`-th little-endian u32 of a table; `None` when out of range.
pub(crate) fn u32_at(data: &[u8], i: usize) -> Option<u32> {
    let start = i.checked_mul(4)?;
    let bytes = data.get(start..start.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_overruns_and_leftovers() {
        let data = [1u8, 0, 0, 0, 2];
        let mut r = Reader::new(&data, "test");
        assert_eq!(r.u32().expect("fits"), 1);
        assert!(r.finish().is_err());
        assert!(r.u16().is_err());
        assert_eq!(r.u8().expect("fits"), 2);
        assert!(r.finish().is_ok());
        assert!(r.take(usize::MAX).is_err());
    }

    #[test]
    fn views_check_their_bounds() {
        let b = Bytes::from_vec(vec![1, 2, 3, 4]);
        let s = b.slice(1, 2).expect("inside");
        assert_eq!(s.as_slice(), &[2, 3]);
        assert!(s.slice(1, 2).is_none());
        assert!(b.slice(usize::MAX, 2).is_none());
        assert_eq!(u32_at(&[1, 0, 0, 0, 9], 0), Some(1));
        assert_eq!(u32_at(&[1, 0, 0, 0, 9], 1), None);
    }
}
