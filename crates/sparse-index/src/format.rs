//! Persistence: the versioned, checksummed single-file format of `docs/index-format.md`,
//! atomic saves, opens (read into memory by default, memory-mapped on request) and
//! in-memory loads.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use latent_terms_io::AtomicFile;
use roaring::RoaringBitmap;

use crate::bytes::{Bytes, Reader, Storage, u32_at};
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::pruning::TermStatistics;
use crate::segment::{Segment, SegmentSections};
use crate::vocabulary::Vocabulary;

/// First 8 bytes of every index file.
const MAGIC: [u8; 8] = *b"LTSPIDX\0";
/// The newest format version this build writes and reads. Version 2 is version 1 plus an
/// optional term statistics section (statically pruned indexes); an index without one is
/// still written as version 1, so older readers keep reading it.
pub const FORMAT_VERSION: u32 = 2;
/// The version of files without a term statistics section.
const VERSION_WITHOUT_STATISTICS: u32 = 1;
const HEADER_LEN: usize = 32;
const SECTION_ENTRY_LEN: usize = 32;
const ALIGN: usize = 8;

const KIND_INDEX_META: u32 = 1;
const KIND_VOCABULARY: u32 = 2;
const KIND_TERM_STATISTICS: u32 = 3;
const KIND_SEGMENT_META: u32 = 16;
const KIND_TERMS: u32 = 17;
const KIND_BLOCKS: u32 = 18;
const KIND_POSTINGS: u32 = 19;
const KIND_DOC_IDS: u32 = 20;
const KIND_DOC_LENGTHS: u32 = 21;
const KIND_DELETES: u32 = 22;
const SEGMENT_KINDS: [u32; 7] = [
    KIND_SEGMENT_META,
    KIND_TERMS,
    KIND_BLOCKS,
    KIND_POSTINGS,
    KIND_DOC_IDS,
    KIND_DOC_LENGTHS,
    KIND_DELETES,
];
const FLAG_VOCABULARY: u32 = 1;
const FLAG_TERM_STATISTICS: u32 = 2;
/// Length of one `(term, df)` entry of the term statistics section.
const TERM_STATISTICS_ENTRY_LEN: usize = 8;

fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_INDEX_META => "index header",
        KIND_VOCABULARY => "vocabulary",
        KIND_TERM_STATISTICS => "term statistics",
        KIND_SEGMENT_META => "segment header",
        KIND_TERMS => "term dictionary",
        KIND_BLOCKS => "block table",
        KIND_POSTINGS => "postings",
        KIND_DOC_IDS => "document ids",
        KIND_DOC_LENGTHS => "document lengths",
        KIND_DELETES => "deletes",
        _ => "unknown section",
    }
}

/// Where the bytes of an index opened from a file live.
///
/// Index files are write-once: [`Index::save`] writes a new file and renames it over the
/// old one, and nothing else should ever change an index file in place. The choice
/// between the two backings is about what happens when something does anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backing {
    /// Read the whole file into memory once (the default). Costs the file's size in RAM
    /// and one sequential read on open; afterwards the open index owns its bytes, so
    /// whatever happens to the file (copied over in place, truncated, deleted, replaced by
    /// rename) cannot affect it. A file changed *while* it is being read gives a typed
    /// error (length or checksum mismatch, with checksums verified) or, with
    /// checksums off, at worst wrong results; never a crash.
    #[default]
    Read,
    /// Memory-map the file (a shared, read-only map): opening costs no copy and postings
    /// are paged in on demand, which suits indexes larger than RAM. **Only for files that
    /// nothing modifies in place while the index is open.** A map shows later in-place
    /// writes by other processes (`cp` over the file), and when another process truncates
    /// the file, the next access to a page past the new end raises SIGBUS, which kills
    /// the whole process; no bounds check can catch that. A private (copy-on-write,
    /// `MAP_PRIVATE`) map would not help: it too faults with SIGBUS on truncation, and on
    /// Linux it still shows in-place writes to pages it has not copied. Replacing the
    /// file by rename (as [`Index::save`] does) is safe: the map keeps the old inode.
    Mmap,
}

/// How to load an index.
///
/// ```
/// use latent_terms_sparse_index::{Backing, LoadOptions};
///
/// let defaults = LoadOptions::default();
/// assert!(defaults.verify_checksums);
/// assert_eq!(defaults.backing, Backing::Read);
/// let mapped = LoadOptions::default().mmap(true).verify_checksums(false);
/// assert_eq!(mapped.backing, Backing::Mmap);
/// assert!(!mapped.verify_checksums);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Verify the CRC32 of the header and of every section (default `true`). Turning it
    /// off skips one pass over the file; structural validation still runs, so a damaged
    /// file still gives an error or wrong results, never a panic or out-of-bounds read.
    pub verify_checksums: bool,
    /// Where [`Index::open_with`] keeps the file's bytes (default [`Backing::Read`]: read
    /// into memory; see [`Backing::Mmap`] for the hazards of a map). Ignored by
    /// [`Index::from_bytes_with`], whose bytes are already in memory.
    pub backing: Backing,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            verify_checksums: true,
            backing: Backing::Read,
        }
    }
}

impl LoadOptions {
    /// Sets [`verify_checksums`](Self::verify_checksums).
    #[must_use]
    pub fn verify_checksums(mut self, verify: bool) -> Self {
        self.verify_checksums = verify;
        self
    }

    /// Sets [`backing`](Self::backing).
    #[must_use]
    pub fn backing(mut self, backing: Backing) -> Self {
        self.backing = backing;
        self
    }

    /// `true`: [`Backing::Mmap`] (read its hazards first); `false`: [`Backing::Read`].
    #[must_use]
    pub fn mmap(self, mmap: bool) -> Self {
        self.backing(if mmap { Backing::Mmap } else { Backing::Read })
    }
}

/// One section to write: its kind, segment number and bytes.
struct OutSection {
    kind: u32,
    segment: u32,
    data: SectionData,
}

impl OutSection {
    /// A section about the whole index (segment field 0).
    fn whole_index(kind: u32, data: Vec<u8>) -> Self {
        OutSection {
            kind,
            segment: 0,
            data: SectionData::Owned(data),
        }
    }
}

enum SectionData {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl SectionData {
    fn as_slice(&self) -> &[u8] {
        match self {
            SectionData::Shared(b) => b.as_slice(),
            SectionData::Owned(v) => v,
        }
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

impl Index {
    fn out_sections(&self) -> Result<Vec<OutSection>> {
        let mut out = Vec::new();
        let segment_count =
            u32::try_from(self.segments.len()).map_err(|_| IndexError::TooLarge {
                what: "the segment list",
                size: self.segments.len() as u64,
                limit: u64::from(u32::MAX),
            })?;
        let mut flags = 0;
        if self.vocabulary.is_some() {
            flags |= FLAG_VOCABULARY;
        }
        if self.term_statistics.is_some() {
            flags |= FLAG_TERM_STATISTICS;
        }
        let mut meta = Vec::with_capacity(8);
        meta.extend_from_slice(&segment_count.to_le_bytes());
        meta.extend_from_slice(&flags.to_le_bytes());
        out.push(OutSection::whole_index(KIND_INDEX_META, meta));
        if let Some(v) = &self.vocabulary {
            out.push(OutSection::whole_index(
                KIND_VOCABULARY,
                encode_vocabulary(v)?,
            ));
        }
        if let Some(t) = &self.term_statistics {
            out.push(OutSection::whole_index(
                KIND_TERM_STATISTICS,
                encode_term_statistics(t),
            ));
        }
        for (i, e) in self.segments.iter().enumerate() {
            let s = &e.segment.inner.sections;
            let mut deletes = Vec::with_capacity(e.deletes.serialized_size());
            e.deletes
                .serialize_into(&mut deletes)
                .map_err(|err| IndexError::io("<memory>", err))?;
            let i = i as u32;
            for (kind, data) in [
                (KIND_SEGMENT_META, SectionData::Shared(s.meta.clone())),
                (KIND_TERMS, SectionData::Shared(s.terms.clone())),
                (KIND_BLOCKS, SectionData::Shared(s.blocks.clone())),
                (KIND_POSTINGS, SectionData::Shared(s.postings.clone())),
                (KIND_DOC_IDS, SectionData::Shared(s.doc_ids.clone())),
                (KIND_DOC_LENGTHS, SectionData::Shared(s.doc_lengths.clone())),
                (KIND_DELETES, SectionData::Owned(deletes)),
            ] {
                out.push(OutSection {
                    kind,
                    segment: i,
                    data,
                });
            }
        }
        Ok(out)
    }

    /// Size in bytes of the file [`save`](Self::save) would write.
    pub fn serialized_size(&self) -> Result<u64> {
        let sections = self.out_sections()?;
        let mut size = padded(HEADER_LEN + sections.len() * SECTION_ENTRY_LEN) as u64;
        for s in &sections {
            size += padded(s.data.as_slice().len()) as u64;
        }
        Ok(size)
    }

    /// Writes the index in the file format to `writer`; returns the bytes written.
    pub fn write_to<W: Write>(&self, writer: &mut W) -> Result<u64> {
        self.write_inner(writer)
            .map_err(|e| IndexError::io("<writer>", e))?
    }

    fn write_inner<W: Write>(&self, writer: &mut W) -> io::Result<Result<u64>> {
        let sections = match self.out_sections() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let table_end = HEADER_LEN + sections.len() * SECTION_ENTRY_LEN;
        let mut offset = padded(table_end);
        let mut table = Vec::with_capacity(sections.len() * SECTION_ENTRY_LEN);
        for s in &sections {
            let data = s.data.as_slice();
            table.extend_from_slice(&s.kind.to_le_bytes());
            table.extend_from_slice(&s.segment.to_le_bytes());
            table.extend_from_slice(&(offset as u64).to_le_bytes());
            table.extend_from_slice(&(data.len() as u64).to_le_bytes());
            table.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            offset += padded(data.len());
        }
        let file_len = offset as u64;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&MAGIC);
        let version = if self.term_statistics.is_some() {
            FORMAT_VERSION
        } else {
            VERSION_WITHOUT_STATISTICS
        };
        header.extend_from_slice(&version.to_le_bytes());
        header.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        header.extend_from_slice(&file_len.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.update(&table);
        header.extend_from_slice(&crc.finalize().to_le_bytes());

        let zeros = [0u8; ALIGN];
        writer.write_all(&header)?;
        writer.write_all(&table)?;
        writer.write_all(&zeros[..padded(table_end) - table_end])?;
        for s in &sections {
            let data = s.data.as_slice();
            writer.write_all(data)?;
            writer.write_all(&zeros[..padded(data.len()) - data.len()])?;
        }
        Ok(Ok(file_len))
    }

    /// The index in the file format, in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Saves the index to `path` atomically (through [`latent_terms_io::AtomicFile`]): the
    /// bytes go to a new temporary file in the same directory, which is fsynced and renamed
    /// over `path`, then the directory is fsynced. A crash leaves either the old file or
    /// the new one, never a mix, and an index open on the old file (read or mapped) is
    /// not disturbed: the rename leaves the old inode as it was.
    ///
    /// Index files are write-once: replace one by writing a new file and renaming it over
    /// the old (as this does), never by writing into it in place (`cp new old`, an editor,
    /// truncation), which could crash a process that has the file mapped
    /// ([`Backing::Mmap`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        write_atomically(path, |w| self.write_inner(w))
    }

    /// Opens an index file by reading it into memory ([`Backing::Read`], the default of
    /// [`LoadOptions`]). Validates the whole structure (and the checksums) before
    /// returning. The open index owns its bytes: replacing, truncating or deleting the
    /// file afterwards does not affect it. To map the file instead, see
    /// [`open_with`](Self::open_with) and [`Backing::Mmap`].
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        Self::open_with(path, &LoadOptions::default())
    }

    /// [`open`](Self::open) with options; `options.backing` chooses between reading the
    /// file into memory and memory-mapping it (index files are write-once: a mapped file
    /// must not be modified or truncated in place while the index is open).
    ///
    /// ```
    /// use latent_terms_sparse_index::{Index, LoadOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("empty.ltsi");
    /// Index::new().save(&path)?;
    /// let read = Index::open(&path)?;
    /// let mapped = Index::open_with(&path, &LoadOptions::default().mmap(true))?;
    /// assert_eq!(read.num_docs(), mapped.num_docs());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Index> {
        let path = path.as_ref();
        let storage = match options.backing {
            Backing::Read => {
                Storage::Heap(std::fs::read(path).map_err(|e| IndexError::io(path, e))?)
            }
            Backing::Mmap => {
                let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
                // SAFETY: memmap2 requires that the mapped file is neither modified nor
                // truncated while the map lives, and this crate cannot enforce that. It
                // holds only as long as every writer follows the write-once contract of
                // `Backing::Mmap` (replace by rename, as `Index::save` does, which leaves
                // the mapped inode untouched). The caller opted into that contract by
                // choosing `Backing::Mmap`. If another process breaks it, the bounds checks
                // on every read do not help: an in-place write changes bytes under live
                // borrows, and a truncation makes the next access to a page past the new
                // end raise SIGBUS and kill the process.
                #[allow(unsafe_code)]
                let map =
                    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IndexError::io(path, e))?;
                Storage::Mmap(map)
            }
        };
        load(Bytes::from_backing(Arc::new(storage)), options)
    }

    /// Loads an index from bytes in the file format (e.g. read from object storage).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Index> {
        Self::from_bytes_with(bytes, &LoadOptions::default())
    }

    /// [`from_bytes`](Self::from_bytes) with options.
    pub fn from_bytes_with(bytes: Vec<u8>, options: &LoadOptions) -> Result<Index> {
        load(Bytes::from_vec(bytes), options)
    }
}

fn encode_vocabulary(v: &Vocabulary) -> Result<Vec<u8>> {
    let total: usize = v.iter().map(|(_, t)| t.len()).sum();
    if u32::try_from(total).is_err() || u32::try_from(v.len()).is_err() {
        return Err(IndexError::TooLarge {
            what: "the vocabulary",
            size: total as u64,
            limit: u64::from(u32::MAX),
        });
    }
    let mut out = Vec::with_capacity(4 + 4 * (v.len() + 1) + total);
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    out.extend_from_slice(&offset.to_le_bytes());
    for (_, t) in v.iter() {
        offset += t.len() as u32;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for (_, t) in v.iter() {
        out.extend_from_slice(t.as_bytes());
    }
    Ok(out)
}

fn decode_vocabulary(data: &[u8]) -> Result<Vocabulary> {
    let corrupt = || IndexError::corrupted("vocabulary table is inconsistent");
    let n = u32_at(data, 0).ok_or_else(corrupt)? as usize;
    let offsets_end = n
        .checked_add(2)
        .and_then(|k| k.checked_mul(4))
        .filter(|&e| e <= data.len())
        .ok_or_else(corrupt)?;
    let offsets = &data[4..offsets_end];
    let strings = &data[offsets_end..];
    if u32_at(offsets, 0) != Some(0)
        || u32_at(offsets, n).map(|v| v as usize) != Some(strings.len())
    {
        return Err(corrupt());
    }
    let mut terms = Vec::with_capacity(n);
    for i in 0..n {
        let start = u32_at(offsets, i).ok_or_else(corrupt)? as usize;
        let end = u32_at(offsets, i + 1).ok_or_else(corrupt)? as usize;
        let bytes = strings.get(start..end).ok_or_else(corrupt)?;
        terms.push(std::str::from_utf8(bytes).map_err(|_| corrupt())?);
    }
    Vocabulary::from_terms(terms).map_err(|e| match e {
        IndexError::DuplicateVocabularyTerm { term } => {
            IndexError::corrupted(format!("vocabulary term {term:?} appears twice"))
        }
        other => other,
    })
}

fn encode_term_statistics(t: &TermStatistics) -> Vec<u8> {
    let mut data = Vec::with_capacity(t.len() * TERM_STATISTICS_ENTRY_LEN);
    for (term, df) in t.iter() {
        data.extend_from_slice(&term.to_le_bytes());
        data.extend_from_slice(&df.to_le_bytes());
    }
    data
}

/// The next section, which the index header's `flag` says is there and must be of `kind`;
/// `None` when the flag is clear.
fn optional_section(
    rest: &mut Vec<SectionEntry>,
    flags: u32,
    flag: u32,
    kind: u32,
) -> Result<Option<SectionEntry>> {
    if flags & flag == 0 {
        return Ok(None);
    }
    if rest.first().is_none_or(|e| e.kind != kind) {
        return Err(IndexError::corrupted(format!(
            "{} section missing",
            kind_name(kind)
        )));
    }
    Ok(Some(rest.remove(0)))
}

fn decode_term_statistics(data: &[u8]) -> Result<TermStatistics> {
    if !data.len().is_multiple_of(TERM_STATISTICS_ENTRY_LEN) {
        return Err(IndexError::corrupted(
            "term statistics section length is not a multiple of 8",
        ));
    }
    let mut r = Reader::new(data, "term statistics");
    let mut dfs = Vec::with_capacity(data.len() / TERM_STATISTICS_ENTRY_LEN);
    for _ in 0..data.len() / TERM_STATISTICS_ENTRY_LEN {
        dfs.push((r.u32()?, r.u32()?));
    }
    r.finish()?;
    TermStatistics::new(dfs)
}

fn check_padding(data: &[u8], from: usize, to: usize) -> Result<()> {
    match data.get(from..to) {
        Some(pad) if pad.len() < ALIGN && pad.iter().all(|&b| b == 0) => Ok(()),
        _ => Err(IndexError::corrupted(
            "non-zero or oversized padding between sections",
        )),
    }
}

struct SectionEntry {
    kind: u32,
    segment: u32,
    bytes: Bytes,
}

fn load(file: Bytes, options: &LoadOptions) -> Result<Index> {
    let data = file.as_slice();
    let actual = data.len() as u64;
    if data.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(&data[..data.len().min(MAGIC.len())]) {
            IndexError::Truncated {
                expected: HEADER_LEN as u64,
                actual,
            }
        } else {
            IndexError::BadMagic
        });
    }
    let mut header = Reader::new(&data[..HEADER_LEN], "file header");
    if header.array::<8>()? != MAGIC {
        return Err(IndexError::BadMagic);
    }
    let version = header.u32()?;
    if !(VERSION_WITHOUT_STATISTICS..=FORMAT_VERSION).contains(&version) {
        return Err(IndexError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let section_count = header.u32()? as usize;
    let file_len = header.u64()?;
    let reserved = header.u32()?;
    let header_crc = header.u32()?;
    if file_len != actual {
        return Err(IndexError::Truncated {
            expected: file_len,
            actual,
        });
    }
    if reserved != 0 {
        return Err(IndexError::corrupted("reserved header field is not zero"));
    }
    let table_end = section_count
        .checked_mul(SECTION_ENTRY_LEN)
        .and_then(|t| t.checked_add(HEADER_LEN))
        .filter(|&e| e <= data.len())
        .ok_or_else(|| IndexError::corrupted("section table extends past the end of the file"))?;
    let table = &data[HEADER_LEN..table_end];
    if options.verify_checksums {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&data[..HEADER_LEN - 4]);
        crc.update(table);
        if crc.finalize() != header_crc {
            return Err(IndexError::ChecksumMismatch {
                section: "file header".to_owned(),
            });
        }
    }

    // Sections follow the table back to back, each starting at the next multiple of 8;
    // padding must be zero so that no byte of the file escapes validation.
    let mut entries = Vec::with_capacity(section_count);
    let mut r = Reader::new(table, "section table");
    let mut prev_end = table_end;
    for _ in 0..section_count {
        let kind = r.u32()?;
        let segment = r.u32()?;
        let offset = r.u64()?;
        let len = r.u64()?;
        let crc = r.u32()?;
        let reserved = r.u32()?;
        let misplaced = || {
            IndexError::corrupted(format!(
                "{} section is not where the layout puts it",
                kind_name(kind)
            ))
        };
        if reserved != 0 || offset != padded(prev_end) as u64 {
            return Err(misplaced());
        }
        // `offset` equals a position inside the slice, so it fits in usize.
        let start = offset as usize;
        let len = usize::try_from(len).map_err(|_| misplaced())?;
        check_padding(data, prev_end, start)?;
        let bytes = file.slice(start, len).ok_or_else(misplaced)?;
        if options.verify_checksums && crc32fast::hash(bytes.as_slice()) != crc {
            return Err(IndexError::ChecksumMismatch {
                section: format!("{} of segment {segment}", kind_name(kind)),
            });
        }
        prev_end = start + len;
        entries.push(SectionEntry {
            kind,
            segment,
            bytes,
        });
    }
    if padded(prev_end) != data.len() {
        return Err(IndexError::corrupted(
            "file length does not match its sections",
        ));
    }
    check_padding(data, prev_end, data.len())?;

    let mut it = entries.into_iter();
    let meta = it
        .next()
        .filter(|e| e.kind == KIND_INDEX_META)
        .ok_or_else(|| IndexError::corrupted("the first section is not the index header"))?;
    let mut r = Reader::new(meta.bytes.as_slice(), "index header");
    let segment_count = r.u32()?;
    let flags = r.u32()?;
    r.finish()?;
    let known = if version == VERSION_WITHOUT_STATISTICS {
        FLAG_VOCABULARY
    } else {
        FLAG_VOCABULARY | FLAG_TERM_STATISTICS
    };
    if flags & !known != 0 {
        return Err(IndexError::corrupted("unknown index flags"));
    }
    let mut rest: Vec<SectionEntry> = it.collect();
    let vocabulary = optional_section(&mut rest, flags, FLAG_VOCABULARY, KIND_VOCABULARY)?
        .map(|v| decode_vocabulary(v.bytes.as_slice()))
        .transpose()?;
    let term_statistics =
        optional_section(&mut rest, flags, FLAG_TERM_STATISTICS, KIND_TERM_STATISTICS)?
            .map(|t| decode_term_statistics(t.bytes.as_slice()))
            .transpose()?;
    if Some(rest.len()) != (segment_count as usize).checked_mul(SEGMENT_KINDS.len()) {
        return Err(IndexError::corrupted(
            "section count does not match the segment count",
        ));
    }
    let mut parts = Vec::with_capacity(segment_count as usize);
    for (i, group) in rest.chunks_exact(SEGMENT_KINDS.len()).enumerate() {
        for (e, &kind) in group.iter().zip(&SEGMENT_KINDS) {
            if e.kind != kind || e.segment as usize != i {
                return Err(IndexError::corrupted(format!(
                    "segment {i}: expected its {} section",
                    kind_name(kind)
                )));
            }
        }
        let segment = Segment::from_sections(SegmentSections {
            meta: group[0].bytes.clone(),
            terms: group[1].bytes.clone(),
            blocks: group[2].bytes.clone(),
            postings: group[3].bytes.clone(),
            doc_ids: group[4].bytes.clone(),
            doc_lengths: group[5].bytes.clone(),
        })?;
        let deletes = RoaringBitmap::deserialize_from(group[6].bytes.as_slice())
            .map_err(|e| IndexError::corrupted(format!("segment {i} deletes: {e}")))?;
        parts.push((segment, deletes));
    }
    Index::from_parts(parts, vocabulary, term_statistics)
}

/// Writes `path` through [`AtomicFile`]: `fill` writes into a temporary file beside it
/// (unique name, `create_new`), which replaces `path` only when `fill` succeeds; on any
/// error the temporary file is removed and `path` is left as it was.
pub(crate) fn write_atomically<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut AtomicFile) -> io::Result<Result<u64>>,
{
    let io_err = |e| IndexError::io(path, e);
    let mut file = AtomicFile::create(path).map_err(io_err)?;
    // Dropping `file` without committing removes the temporary file.
    fill(&mut file).map_err(io_err)??;
    file.commit().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};

    use super::*;
    use crate::{
        Analyzer, Bm25, ClSr, IndexBuilder, IndexConfig, Query, SearchOptions, SparseVector,
        WeightEncoding,
    };

    fn small_index() -> Index {
        let mut b = IndexBuilder::new(IndexConfig {
            weight_encoding: WeightEncoding::Quantized { scale: 16.0 },
            ..Default::default()
        })
        .expect("valid");
        for d in 0..40u32 {
            let pairs: Vec<(u32, f32)> = (0..4)
                .map(|j| ((d * 7 + j * 13) % 50, 0.25 + ((d + j) % 5) as f32))
                .collect();
            b.add(
                format!("doc-{d}"),
                &SparseVector::new(pairs).expect("valid"),
            )
            .expect("add");
        }
        let mut index = b.build().expect("build");
        let mut b2 = IndexBuilder::new(IndexConfig::default()).expect("valid");
        b2.add(
            "extra",
            &SparseVector::new([(3, 1.5), (49, 0.5)]).expect("valid"),
        )
        .expect("add");
        index
            .add_segment(b2.build_segment().expect("build"))
            .expect("add");
        index.delete("doc-3");
        index
            .set_vocabulary(Vocabulary::from_terms((0..50).map(|i| format!("t{i}"))).expect("ok"))
            .expect("covers");
        index
    }

    /// A statically pruned index: the version 2 layout, with a term statistics section.
    fn pruned_index() -> Index {
        let mut b = IndexBuilder::new(IndexConfig::default()).expect("valid");
        for d in 0..30u32 {
            let pairs: Vec<(u32, f32)> = (0..5)
                .map(|j| ((d * 3 + j * 11) % 40, 0.5 + ((d + j) % 4) as f32))
                .collect();
            b.add(format!("p{d}"), &SparseVector::new(pairs).expect("valid"))
                .expect("add");
        }
        b.build_pruned(crate::StaticPruning::TopTerms(2))
            .expect("build")
    }

    fn assert_same(a: &Index, b: &Index) {
        let q = Query::new([(3, 1.0), (10, 0.5), (17, 2.0), (49, 1.0)]).expect("valid");
        let opts = SearchOptions::default();
        assert_eq!(
            a.search(&q, &Bm25::default(), 20, &opts).expect("search"),
            b.search(&q, &Bm25::default(), 20, &opts).expect("search")
        );
        assert_eq!(
            a.search(&q, &ClSr::default(), 20, &opts).expect("search"),
            b.search(&q, &ClSr::default(), 20, &opts).expect("search")
        );
        assert_eq!(a.num_docs(), b.num_docs());
        assert_eq!(a.deleted_docs(), b.deleted_docs());
        assert_eq!(a.vocabulary(), b.vocabulary());
        for d in 0..a.max_doc() {
            assert_eq!(a.external_id(d), b.external_id(d));
        }
    }

    #[test]
    fn round_trip_in_memory_and_through_a_file() {
        let index = small_index();
        let bytes = index.to_bytes().expect("serialise");
        assert_eq!(bytes.len() as u64, index.serialized_size().expect("size"));
        let loaded = Index::from_bytes(bytes.clone()).expect("load");
        assert_same(&index, &loaded);
        assert_eq!(loaded.to_bytes().expect("serialise"), bytes);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.ltsi");
        index.save(&path).expect("save");
        let opened = Index::open(&path).expect("open");
        assert_same(&index, &opened);
        // Saving over an open, mapped file replaces it without disturbing the open index.
        let mut changed = opened.clone();
        changed.delete("doc-5");
        changed.save(&path).expect("save again");
        assert_same(&index, &opened);
        assert_eq!(
            Index::open(&path).expect("open").num_docs(),
            index.num_docs() - 1
        );
        // The same through a map: a save renames a new file over the mapped one.
        let mapped = Index::open_with(&path, &LoadOptions::default().mmap(true)).expect("map");
        assert_eq!(mapped.num_docs(), index.num_docs() - 1);
        index.save(&path).expect("save over the mapped file");
        assert_eq!(mapped.num_docs(), index.num_docs() - 1);
        assert_same(&index, &Index::open(&path).expect("open"));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }

    #[test]
    fn a_failed_save_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.ltsi");
        let index = small_index();
        index.save(&path).expect("save");
        let before = fs::read(&path).expect("read");
        let err = write_atomically(&path, |w| {
            w.write_all(b"half an index")?;
            Ok(Err(IndexError::corrupted("the writer gave up")))
        })
        .expect_err("fails");
        assert!(err.to_string().contains("gave up"), "{err}");
        let err = write_atomically(&path, |w| {
            w.write_all(b"half an index")?;
            Err(io::Error::other("disk full"))
        })
        .expect_err("fails");
        assert!(matches!(err, IndexError::Io { .. }), "{err}");
        assert_eq!(fs::read(&path).expect("read"), before);
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["index.ltsi"]);
    }

    /// The default backing reads the file: copying another index over it in place
    /// (`cp`: truncate, then write) and truncating it while searches run must leave
    /// every search on the open index with the old results, and every reopen with the
    /// old results, the new results or a typed error. With a shared map this test
    /// dies of SIGBUS.
    #[test]
    fn in_place_replacement_and_truncation_never_disturb_an_open_index() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.ltsi");
        let old = small_index();
        let mut new = small_index();
        for d in 0..20 {
            new.delete(&format!("doc-{d}"));
        }
        old.save(&path).expect("save");
        let old_bytes = fs::read(&path).expect("read");
        let new_bytes = new.to_bytes().expect("bytes");
        let q = Query::new([(3, 1.0), (10, 0.5), (17, 2.0), (49, 1.0)]).expect("valid");
        let opts = SearchOptions::default();
        let old_hits = old.search(&q, &Bm25::default(), 20, &opts).expect("search");
        let new_hits = new.search(&q, &Bm25::default(), 20, &opts).expect("search");
        assert_ne!(old_hits, new_hits);

        let opened = Index::open(&path).expect("open");
        let stop = AtomicBool::new(false);
        let (searches, reopens) = std::thread::scope(|scope| {
            let searcher = scope.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let hits = opened
                        .search(&q, &Bm25::default(), 20, &opts)
                        .expect("search");
                    assert_eq!(hits, old_hits, "an open index changed under a search");
                    n += 1;
                }
                n
            });
            let reopener = scope.spawn(|| {
                let mut counts = [0u64; 3]; // old, new, typed error
                while !stop.load(Ordering::Relaxed) {
                    match Index::open(&path) {
                        Ok(index) => {
                            let hits = index.search(&q, &Bm25::default(), 20, &opts);
                            match hits {
                                Ok(h) if h == old_hits => counts[0] += 1,
                                Ok(h) if h == new_hits => counts[1] += 1,
                                other => panic!("a reopened index gave {other:?}"),
                            }
                        }
                        // A read racing the writer sees any mix of old, new and
                        // missing bytes: a length, magic, version or checksum error.
                        Err(IndexError::Io { source, .. }) => panic!("I/O error: {source}"),
                        Err(_) => counts[2] += 1,
                    }
                }
                counts
            });
            for round in 0..150 {
                // `cp new old`: truncate to zero, then write, in place.
                fs::write(&path, &new_bytes).expect("copy over");
                let file = OpenOptions::new().write(true).open(&path).expect("open");
                file.set_len(new_bytes.len() as u64 / 2).expect("truncate");
                file.set_len(if round % 2 == 0 { 0 } else { 7 })
                    .expect("truncate");
                drop(file);
                fs::write(&path, &old_bytes).expect("copy back");
            }
            stop.store(true, Ordering::Relaxed);
            (
                searcher.join().expect("searcher"),
                reopener.join().expect("reopener"),
            )
        });
        assert!(searches > 0 && reopens.iter().sum::<u64>() > 0);
        eprintln!("{searches} searches; reopens (old, new, error): {reopens:?}");
        assert_eq!(
            opened
                .search(&q, &Bm25::default(), 20, &opts)
                .expect("search"),
            old_hits
        );
    }

    /// Run by [`a_truncated_map_kills_the_process_a_read_index_survives`] in a child
    /// process: opens the index named by the environment with the backing it names,
    /// truncates the file and searches.
    #[test]
    #[ignore = "run as a child process by a_truncated_map_kills_the_process_a_read_index_survives"]
    fn truncation_child() {
        let (Ok(path), Ok(backing)) = (
            std::env::var("LT_TRUNCATION_CHILD_PATH"),
            std::env::var("LT_TRUNCATION_CHILD_BACKING"),
        ) else {
            return;
        };
        let index =
            Index::open_with(&path, &LoadOptions::default().mmap(backing == "mmap")).expect("open");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(0)
            .expect("truncate");
        let q = Query::new([(3, 1.0), (10, 0.5), (17, 2.0), (49, 1.0)]).expect("valid");
        let hits = index
            .search(&q, &Bm25::default(), 20, &SearchOptions::default())
            .expect("search");
        assert!(!hits.is_empty());
    }

    /// Documents why [`Backing::Read`] is the default: a map of a file truncated by another
    /// party raises SIGBUS on the next access.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_truncated_map_kills_the_process_a_read_index_survives() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |backing: &str| {
            let path = dir.path().join(format!("{backing}.ltsi"));
            small_index().save(&path).expect("save");
            std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "format::tests::truncation_child",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env("LT_TRUNCATION_CHILD_PATH", &path)
                .env("LT_TRUNCATION_CHILD_BACKING", backing)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("run the child")
        };
        let read = run("read");
        assert!(read.success(), "read backing: {read:?}");
        let mapped = run("mmap");
        assert_eq!(
            mapped.signal(),
            Some(7),
            "mmap backing: {mapped:?} (SIGBUS is 7)"
        );
    }

    #[test]
    fn empty_index_round_trips() {
        let index = Index::new();
        let loaded = Index::from_bytes(index.to_bytes().expect("ok")).expect("load");
        assert_eq!(loaded.num_segments(), 0);
        let q = Query::new([(1, 1.0)]).expect("valid");
        assert!(
            loaded
                .search(&q, &Bm25::default(), 3, &SearchOptions::default())
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for index in [small_index(), pruned_index()] {
            truncations_are_errors(&index);
        }
    }

    fn truncations_are_errors(index: &Index) {
        let bytes = index.to_bytes().expect("ok");
        for len in 0..bytes.len() {
            let err = Index::from_bytes(bytes[..len].to_vec()).expect_err("truncated");
            assert!(
                matches!(err, IndexError::Truncated { .. }),
                "len {len}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Index::from_bytes(longer),
            Err(IndexError::Truncated { .. })
        ));
    }

    #[test]
    fn every_bit_flip_is_an_error() {
        for index in [small_index(), pruned_index()] {
            let bytes = index.to_bytes().expect("ok");
            bit_flips_are_errors(&bytes);
        }
    }

    fn bit_flips_are_errors(bytes: &[u8]) {
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.to_vec();
                damaged[i] ^= 1 << bit;
                assert!(
                    Index::from_bytes(damaged).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn unchecked_loads_of_damaged_files_never_panic() {
        for index in [small_index(), pruned_index()] {
            damaged_loads_never_panic(&index.to_bytes().expect("ok"));
        }
    }

    fn damaged_loads_never_panic(bytes: &[u8]) {
        let opts = LoadOptions::default().verify_checksums(false);
        let q = Query::new([(3, 1.0), (10, 0.5), (17, 2.0), (49, 1.0)]).expect("valid");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut damaged = bytes.to_vec();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state % damaged.len() as u64) as usize;
                damaged[i] ^= (state >> 32) as u8 | 1;
            }
            if let Ok(index) = Index::from_bytes_with(damaged, &opts) {
                let _ = index.search(&q, &Bm25::default(), 5, &SearchOptions::default());
                let _ = index
                    .searcher(Bm25::default())
                    .and_then(|s| s.search(&q, 5, &SearchOptions::default()));
                let _ = index.search_exhaustive(&q, &ClSr::default(), 5, &SearchOptions::default());
                for d in 0..index.max_doc().min(64) {
                    let _ = index.explain(&q, &Bm25::default(), d);
                }
            }
        }
    }

    #[test]
    fn foreign_and_future_files_are_rejected_with_clear_errors() {
        assert!(matches!(
            Index::from_bytes(b"PK\x03\x04 definitely a zip file, not an index".to_vec()),
            Err(IndexError::BadMagic)
        ));
        let mut bytes = Index::new().to_bytes().expect("ok");
        bytes[8] = 3;
        assert!(matches!(
            Index::from_bytes(bytes),
            Err(IndexError::UnsupportedVersion {
                found: 3,
                supported: 2
            })
        ));
        let missing = Index::open("/nonexistent/dir/index.ltsi");
        assert!(matches!(missing, Err(IndexError::Io { .. })));
    }

    #[test]
    fn lexical_index_with_vocabulary_round_trips() {
        let analyzer = Analyzer::english();
        let mut vocab = Vocabulary::new();
        let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
        for (id, text) in [("a", "the quick brown fox"), ("b", "quick quick thinking")] {
            b.add(id, &vocab.add_document(&analyzer, text).expect("ok"))
                .expect("add");
        }
        let mut index = b.build().expect("build");
        index.set_vocabulary(vocab).expect("covers");
        let loaded = Index::from_bytes(index.to_bytes().expect("ok")).expect("load");
        let v = loaded.vocabulary().expect("stored");
        let q = v.query(&analyzer, "quick");
        let hits = loaded
            .search(&q, &Bm25::default(), 2, &SearchOptions::default())
            .expect("search");
        assert_eq!(loaded.external_id(hits[0].doc), Some("b"));
    }
}
