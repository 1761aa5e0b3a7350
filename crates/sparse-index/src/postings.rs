//! A cursor over one term's posting list in one segment, decoding a block at a time.

use crate::codec::BLOCK_LEN;
use crate::error::Result;
use crate::segment::SegmentInner;

/// Doc id of an exhausted cursor; never a real doc (segments hold at most `u32::MAX - 1`).
pub(crate) const END: u32 = u32::MAX;

pub(crate) struct PostingCursor<'a> {
    seg: &'a SegmentInner,
    end_block: usize,
    /// Decoded block (global block index), `end_block` once exhausted.
    block: usize,
    pos: usize,
    len: usize,
    doc: u32,
    /// Block reached by [`shallow`](Self::shallow), never behind `block`.
    shallow: usize,
    /// Last doc of the decoded block.
    block_last: u32,
    docs: [u32; BLOCK_LEN],
    weights: [f32; BLOCK_LEN],
}

impl<'a> PostingCursor<'a> {
    /// A cursor on the term at `term_index` of the segment's dictionary.
    pub(crate) fn new(seg: &'a SegmentInner, term_index: usize) -> Result<Self> {
        let t = seg.terms[term_index];
        let mut c = Self {
            seg,
            end_block: t.first_block + t.num_blocks,
            block: t.first_block,
            pos: 0,
            len: 0,
            doc: END,
            shallow: t.first_block,
            block_last: END,
            docs: [0; BLOCK_LEN],
            weights: [0.0; BLOCK_LEN],
        };
        c.load(t.first_block)?;
        Ok(c)
    }

    fn load(&mut self, block: usize) -> Result<()> {
        self.block = block;
        self.shallow = self.shallow.max(block);
        self.pos = 0;
        if block >= self.end_block {
            self.len = 0;
            self.doc = END;
            self.block_last = END;
            return Ok(());
        }
        self.len = self
            .seg
            .decode_block(block, &mut self.docs, &mut self.weights)?;
        self.doc = self.docs[0];
        self.block_last = self.seg.blocks[block].last_doc;
        Ok(())
    }

    /// Current doc, or [`END`].
    #[inline]
    pub(crate) fn doc(&self) -> u32 {
        self.doc
    }

    /// Weight of the current posting (meaningless at [`END`]).
    #[inline]
    pub(crate) fn weight(&self) -> f32 {
        self.weights[self.pos.min(BLOCK_LEN - 1)]
    }

    /// Moves to the first posting with doc `>= target`.
    #[inline]
    pub(crate) fn seek(&mut self, target: u32) -> Result<()> {
        if self.doc >= target {
            return Ok(());
        }
        if self.block_last < target {
            self.seek_block(target)?;
            if self.doc >= target {
                return Ok(());
            }
        }
        // The block holds `target`'s successor. Candidates arrive in increasing order and
        // are usually close, so scan a few postings before falling back to bisection.
        let mut pos = self.pos + 1;
        let stop = (pos + 8).min(self.len);
        while pos < stop && self.docs[pos] < target {
            pos += 1;
        }
        if pos == stop && stop < self.len {
            pos += self.docs[pos..self.len].partition_point(|&d| d < target);
        }
        self.pos = pos.min(self.len - 1);
        self.doc = self.docs[self.pos];
        Ok(())
    }

    /// Decodes the first block whose last doc is `>= target`.
    fn seek_block(&mut self, target: u32) -> Result<()> {
        let mut b = self.shallow.max(self.block + 1);
        // `shallow` may point past blocks that end before `target`; the skip list of
        // block last-docs lets us jump without decoding.
        if b > self.block + 1 && self.seg.blocks[b - 1].last_doc >= target {
            b = self.block + 1;
        }
        while b < self.end_block && self.seg.blocks[b].last_doc < target {
            b += 1;
        }
        self.load(b)
    }

    /// Calls `f(doc, weight)` for each posting from the current one up to doc `end`
    /// inclusive, a block at a time, and leaves the cursor on the first posting `> end`.
    #[inline]
    pub(crate) fn for_each_until(&mut self, end: u32, mut f: impl FnMut(u32, f32)) -> Result<()> {
        while self.doc <= end {
            let docs = &self.docs[self.pos..self.len];
            let weights = &self.weights[self.pos..self.len];
            let n = if self.block_last <= end {
                docs.len()
            } else {
                docs.partition_point(|&d| d <= end)
            };
            for (&d, &w) in docs[..n].iter().zip(&weights[..n]) {
                f(d, w);
            }
            self.pos += n;
            if self.pos < self.len {
                self.doc = self.docs[self.pos];
            } else {
                self.load(self.block + 1)?;
            }
        }
        Ok(())
    }

    /// Block table of the segment.
    pub(crate) fn blocks(&self) -> &'a [crate::segment::BlockInfo] {
        &self.seg.blocks
    }

    /// One past the term's last block.
    pub(crate) fn end_block(&self) -> usize {
        self.end_block
    }

    /// A doc `<=` the first posting `>= target`, found without decoding: the current doc
    /// if it is already there, else the first doc the block holding `target` could start
    /// with. [`END`] if no posting `>= target` exists.
    pub(crate) fn lower_bound(&mut self, target: u32) -> u32 {
        if self.doc >= target {
            return self.doc;
        }
        match self.shallow(target) {
            None => END,
            Some(b) => match self.seg.blocks[b].prev_last {
                Some(p) => target.max(p + 1),
                None => target,
            },
        }
    }

    /// The block that would hold `target` (the first with last doc `>= target`), without
    /// decoding it; `None` if the list ends before `target`. Targets must not decrease
    /// between calls.
    pub(crate) fn shallow(&mut self, target: u32) -> Option<usize> {
        if self.doc == END {
            return None;
        }
        let mut b = self.shallow.max(self.block);
        while b < self.end_block && self.seg.blocks[b].last_doc < target {
            b += 1;
        }
        self.shallow = b;
        (b < self.end_block).then_some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexBuilder, IndexConfig, SparseVector};

    #[test]
    fn next_seek_and_shallow_agree_with_the_list() {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        let mut expected = Vec::new();
        for d in 0..1000u32 {
            let pairs = if d % 3 == 0 {
                expected.push(d);
                vec![(1, 1.0 + d as f32), (2, 1.0)]
            } else {
                vec![(2, 1.0)]
            };
            b.add(d.to_string(), &SparseVector::new(pairs).expect("valid"))
                .expect("add");
        }
        let seg = b.build_segment().expect("build");
        let inner = &seg.inner;
        let ti = inner.term_index(1).expect("present");

        let mut c = PostingCursor::new(inner, ti).expect("cursor");
        let mut seen = Vec::new();
        while c.doc() != END {
            assert_eq!(c.weight(), 1.0 + c.doc() as f32);
            seen.push(c.doc());
            c.seek(c.doc() + 1).expect("next");
        }
        assert_eq!(seen, expected);

        for target in [0u32, 1, 2, 3, 383, 384, 385, 700, 998, 999, 1000] {
            let mut c = PostingCursor::new(inner, ti).expect("cursor");
            let want = expected
                .iter()
                .copied()
                .find(|&d| d >= target)
                .unwrap_or(END);
            let shallow = c.shallow(target);
            c.seek(target).expect("seek");
            assert_eq!(c.doc(), want, "seek {target}");
            if want != END {
                assert_eq!(shallow, Some(c.block));
                assert!(c.block_last >= want);
            } else {
                assert_eq!(shallow, None);
            }
        }

        // Shallow moves ahead, then seek to an earlier target inside the current block.
        let mut c = PostingCursor::new(inner, ti).expect("cursor");
        assert!(c.shallow(900).is_some());
        c.seek(10).expect("seek");
        assert_eq!(c.doc(), 12);
        c.seek(901).expect("seek");
        assert_eq!(c.doc(), 903);
    }
}
