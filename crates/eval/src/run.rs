//! TREC runs (`qid Q0 docno rank score tag`).

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::io::{BufRead, Write};
use std::path::Path;

use crate::error::{Error, ParseErrorKind, Result};
use crate::hash::{BuildDocnoHasher, FastMap, PrehashedMap};
use crate::text::{self, Lines};

/// A retrieval run: for each query, scored documents.
///
/// Documents are stored compactly (one string arena per query) so that runs
/// with millions of lines fit comfortably in memory.
///
/// ```
/// use latent_terms_eval::Run;
///
/// let mut run = Run::new("my-system");
/// run.push("q1", "d3", 0.5)?;
/// run.push("q1", "d1", 2.0)?;
/// let ranked: Vec<_> = run.get("q1").unwrap().ranked().map(|(d, _)| d).collect();
/// assert_eq!(ranked, ["d1", "d3"]);
/// # Ok::<(), latent_terms_eval::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Run {
    tag: String,
    queries: Vec<QueryRun>,
    index: FastMap<Box<str>, usize>,
}

/// The scored documents of one query, in insertion order.
#[derive(Debug, Clone)]
pub struct QueryRun {
    qid: Box<str>,
    arena: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f64,
    start: u32,
    len: u32,
}

impl QueryRun {
    fn new(qid: &str) -> Self {
        QueryRun {
            qid: qid.into(),
            arena: String::new(),
            entries: Vec::new(),
        }
    }

    /// The query id.
    pub fn qid(&self) -> &str {
        &self.qid
    }

    /// Number of documents retrieved for the query.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the query retrieved nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn docno(&self, e: &Entry) -> &str {
        &self.arena[e.start as usize..(e.start + e.len) as usize]
    }

    pub(crate) fn docno_at(&self, i: u32) -> &str {
        self.docno(&self.entries[i as usize])
    }

    /// Documents and scores in insertion (file) order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, f64)> {
        self.entries.iter().map(|e| (self.docno(e), e.score))
    }

    /// Documents in trec_eval's rank order: score descending, ties broken by
    /// docno descending in byte order (`strcmp`). The rank column of the
    /// input file is ignored, as trec_eval ignores it.
    pub fn ranked(&self) -> impl ExactSizeIterator<Item = (&str, f64)> {
        self.ranked_order().into_iter().map(|i| {
            (
                self.docno(&self.entries[i as usize]),
                self.entries[i as usize].score,
            )
        })
    }

    /// Entry indices in rank order. Scores are compared as `f32`, the type
    /// trec_eval reads them into, so that scores equal at that precision tie
    /// exactly as they do in trec_eval.
    pub(crate) fn ranked_order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.entries.len() as u32).collect();
        let cmp = |&a: &u32, &b: &u32| {
            let (ea, eb) = (&self.entries[a as usize], &self.entries[b as usize]);
            trec_order(ea.score, self.docno(ea), eb.score, self.docno(eb))
        };
        if !order.is_sorted_by(|a, b| cmp(a, b) != Ordering::Greater) {
            order.sort_unstable_by(cmp);
        }
        order
    }

    fn push_unchecked(&mut self, docno: &str, score: f64) -> Result<(), &'static str> {
        let start = u32::try_from(self.arena.len()).map_err(|_| "too many documents")?;
        let len = u32::try_from(docno.len()).map_err(|_| "document id too long")?;
        start.checked_add(len).ok_or("too many documents")?;
        self.arena.push_str(docno);
        self.entries.push(Entry { score, start, len });
        Ok(())
    }
}

/// trec_eval's ranking comparator: higher score first (as `f32`), then
/// larger docno first.
pub(crate) fn trec_order(score_a: f64, docno_a: &str, score_b: f64, docno_b: &str) -> Ordering {
    let (a, b) = (score_a as f32, score_b as f32);
    b.partial_cmp(&a)
        .unwrap_or(Ordering::Equal)
        .then_with(|| docno_b.as_bytes().cmp(docno_a.as_bytes()))
}

/// Detects documents repeated within one query.
///
/// Keyed by a 64-bit hash of the docno, storing the entry index; the rare
/// docno whose hash collides with a different docno goes to `spill`.
#[derive(Default)]
struct SeenDocnos {
    by_hash: PrehashedMap<(u32, u64)>,
    spill: FastMap<Box<str>, u64>,
}

impl SeenDocnos {
    /// Records `docno` (first seen on `line`) unless already present; returns
    /// the line of the earlier occurrence if it is a duplicate.
    fn insert(&mut self, query: &QueryRun, docno: &str, entry: u32, line: u64) -> Option<u64> {
        let hash = BuildDocnoHasher::default().hash_one(docno);
        match self.by_hash.get(&hash) {
            None => {
                self.by_hash.insert(hash, (entry, line));
                None
            }
            Some(&(other, other_line)) => {
                if query.docno(&query.entries[other as usize]) == docno {
                    Some(other_line)
                } else if let Some(&first) = self.spill.get(docno) {
                    Some(first)
                } else {
                    self.spill.insert(docno.into(), line);
                    None
                }
            }
        }
    }

    fn with_capacity(n: usize) -> Self {
        SeenDocnos {
            by_hash: PrehashedMap::with_capacity_and_hasher(n, Default::default()),
            spill: FastMap::default(),
        }
    }

    /// The detector of a query whose earlier lines were read before another query's;
    /// `spans` gives each entry's line back.
    fn rebuild(query: &QueryRun, spans: &LineSpans) -> Self {
        let mut seen = SeenDocnos::with_capacity(query.len());
        for i in 0..query.entries.len() as u32 {
            let docno = query.docno(&query.entries[i as usize]);
            seen.insert(query, docno, i, spans.line_of(i));
        }
        seen
    }
}

/// The line of every entry of one query without a line number per entry: the
/// `(entry, line)` where each run of consecutive lines starts. A query read in one block
/// of consecutive lines needs one pair; blank lines and interleaved queries add one each.
#[derive(Default)]
struct LineSpans(Vec<(u32, u64)>);

impl LineSpans {
    /// Records that `entry` (the next one, in order) was read from `line`.
    fn record(&mut self, entry: u32, line: u64) {
        match self.0.last() {
            Some(&(e, l)) if l + u64::from(entry - e) == line => {}
            _ => self.0.push((entry, line)),
        }
    }

    /// The line `entry` was read from (0 for an entry that was never recorded).
    fn line_of(&self, entry: u32) -> u64 {
        match self.0.partition_point(|&(e, _)| e <= entry).checked_sub(1) {
            Some(i) => {
                let (e, l) = self.0[i];
                l + u64::from(entry - e)
            }
            None => 0,
        }
    }
}

impl Run {
    /// An empty run with the given tag (the last column of a TREC run).
    pub fn new(tag: impl Into<String>) -> Self {
        Run {
            tag: tag.into(),
            ..Self::default()
        }
    }

    /// The run's tag: the one given to [`Run::new`], or, as trec_eval reports it,
    /// the last line's tag when read from a file.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Reads a TREC run file (plain or `.gz`).
    ///
    /// Fails with a typed error naming the line for malformed lines, scores
    /// that are not finite numbers, invalid UTF-8 and a document repeated
    /// within one query's ranking; an empty file is [`Error::Empty`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let run = Self::from_reader(text::open(path)?, path)?;
        if run.queries.is_empty() {
            return Err(Error::Empty {
                path: path.into(),
                expected: "run lines `qid Q0 docno rank score tag`",
            });
        }
        Ok(run)
    }

    /// Parses a run held in memory. Blank lines are skipped.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Self> {
        Self::from_reader(text::memory_reader(text.as_bytes()), "<memory>")
    }

    /// Reads a TREC run from any buffered reader; `name` is used in error messages.
    pub fn from_reader(reader: impl BufRead, name: impl AsRef<Path>) -> Result<Self> {
        let path = name.as_ref().to_path_buf();
        let mut lines = Lines::new(reader, &path);
        let mut run = Run::default();
        // The query currently being appended to and its duplicate detector;
        // queries that resume after another query keep theirs in `resumed`.
        let mut current: Option<usize> = None;
        let mut seen = SeenDocnos::default();
        let mut resumed: FastMap<usize, SeenDocnos> = FastMap::default();
        // Per query (same index as `run.queries`), so a rebuilt detector knows its lines.
        let mut spans: Vec<LineSpans> = Vec::new();
        lines.for_each_line(|line_no, line| {
            let mut f = [""; 6];
            match text::split_fields(line, &mut f) {
                0 => return Ok(()),
                6 => {}
                found => {
                    return Err(Error::parse(
                        &path,
                        line_no,
                        ParseErrorKind::FieldCount {
                            expected: 6,
                            found,
                            format: "qid Q0 docno rank score tag",
                        },
                    ));
                }
            }
            let [qid, _q0, docno, _rank, score, tag] = f;
            let score = parse_score(score).ok_or_else(|| {
                Error::parse(
                    &path,
                    line_no,
                    ParseErrorKind::InvalidNumber {
                        field: "score",
                        value: score.to_owned(),
                        expected: "finite number",
                    },
                )
            })?;
            // trec_eval reports the tag of the last line.
            if run.tag != tag {
                tag.clone_into(&mut run.tag);
            }
            let idx = match current {
                Some(i) if &*run.queries[i].qid == qid => i,
                _ => {
                    let idx = run.query_index(qid);
                    if spans.len() < run.queries.len() {
                        spans.resize_with(run.queries.len(), LineSpans::default);
                    }
                    if let Some(prev) = current
                        && resumed.contains_key(&prev)
                    {
                        resumed.insert(prev, std::mem::take(&mut seen));
                    }
                    seen = match resumed.remove(&idx) {
                        Some(s) => s,
                        None if run.queries[idx].is_empty() => {
                            // Queries tend to have equal depths: size for the previous one.
                            let capacity = current.map_or(0, |p| run.queries[p].len());
                            SeenDocnos::with_capacity(capacity)
                        }
                        None => SeenDocnos::rebuild(&run.queries[idx], &spans[idx]),
                    };
                    if !run.queries[idx].is_empty() {
                        // Mark as interleaved so its detector is kept when we move on.
                        resumed.insert(idx, SeenDocnos::default());
                    }
                    current = Some(idx);
                    idx
                }
            };
            let query = &mut run.queries[idx];
            let entry = query.entries.len() as u32;
            if let Some(first_line) = seen.insert(query, docno, entry, line_no) {
                return Err(Error::parse(
                    &path,
                    line_no,
                    ParseErrorKind::DuplicateDocument {
                        qid: qid.to_owned(),
                        docno: docno.to_owned(),
                        first_line,
                    },
                ));
            }
            query.push_unchecked(docno, score).map_err(|msg| {
                Error::parse(
                    &path,
                    line_no,
                    ParseErrorKind::TooLarge(format!("query {qid}: {msg}")),
                )
            })?;
            spans[idx].record(entry, line_no);
            Ok(())
        })?;
        Ok(run)
    }

    fn query_index(&mut self, qid: &str) -> usize {
        if let Some(&i) = self.index.get(qid) {
            return i;
        }
        self.index.insert(qid.into(), self.queries.len());
        self.queries.push(QueryRun::new(qid));
        self.queries.len() - 1
    }

    /// Adds a scored document. Fails if the document is already in the
    /// query's ranking or the score is not finite.
    pub fn push(&mut self, qid: &str, docno: &str, score: f64) -> Result<()> {
        if !score.is_finite() {
            return Err(Error::InvalidInput(format!(
                "score {score} for document {docno:?} of query {qid:?} is not finite"
            )));
        }
        let idx = self.query_index(qid);
        let query = &mut self.queries[idx];
        if query.iter().any(|(d, _)| d == docno) {
            return Err(Error::InvalidInput(format!(
                "document {docno:?} is already in the ranking of query {qid:?}"
            )));
        }
        query
            .push_unchecked(docno, score)
            .map_err(|msg| Error::InvalidInput(format!("query {qid}: {msg}")))
    }

    /// Adds a whole ranking for one query from `(docno, score)` pairs,
    /// checking for duplicates in one pass.
    pub fn extend_query<'a>(
        &mut self,
        qid: &str,
        docs: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Result<()> {
        let idx = self.query_index(qid);
        // No lines here: the duplicate message does not name any.
        let mut seen = SeenDocnos::rebuild(&self.queries[idx], &LineSpans::default());
        let query = &mut self.queries[idx];
        for (docno, score) in docs {
            if !score.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "score {score} for document {docno:?} of query {qid:?} is not finite"
                )));
            }
            let entry = query.entries.len() as u32;
            if seen.insert(query, docno, entry, 0).is_some() {
                return Err(Error::InvalidInput(format!(
                    "document {docno:?} appears twice in the ranking of query {qid:?}"
                )));
            }
            query
                .push_unchecked(docno, score)
                .map_err(|msg| Error::InvalidInput(format!("query {qid}: {msg}")))?;
        }
        Ok(())
    }

    /// The ranking of one query.
    pub fn get(&self, qid: &str) -> Option<&QueryRun> {
        self.index.get(qid).map(|&i| &self.queries[i])
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// True when the run has no query.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Queries in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = &QueryRun> {
        self.queries.iter()
    }

    /// Writes the run in TREC format: queries in byte order of qid, documents
    /// in rank order with ranks from 1, at most `depth` per query.
    ///
    /// Fails with [`std::io::ErrorKind::InvalidData`] if an id contains
    /// whitespace, which the format cannot represent (see [`crate::beir::trec_safe_id`]).
    pub fn write_to(&self, mut out: impl Write, depth: Option<usize>) -> std::io::Result<()> {
        let unsafe_id = |id: &str| id.is_empty() || id.chars().any(char::is_whitespace);
        if unsafe_id(&self.tag) && !self.tag.is_empty() {
            return Err(invalid_id("run tag", &self.tag));
        }
        for q in &self.queries {
            if unsafe_id(&q.qid) {
                return Err(invalid_id("query id", &q.qid));
            }
            if let Some((d, _)) = q.iter().find(|(d, _)| unsafe_id(d)) {
                return Err(invalid_id("document id", d));
            }
        }
        let mut queries: Vec<&QueryRun> = self.queries.iter().collect();
        queries.sort_unstable_by(|a, b| a.qid.cmp(&b.qid));
        let tag = if self.tag.is_empty() {
            "run"
        } else {
            &self.tag
        };
        for q in queries {
            for (rank, (docno, score)) in q.ranked().take(depth.unwrap_or(usize::MAX)).enumerate() {
                writeln!(out, "{} Q0 {} {} {} {}", q.qid, docno, rank + 1, score, tag)?;
            }
        }
        out.flush()
    }

    /// Writes a TREC run file atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>, depth: Option<usize>) -> Result<()> {
        crate::atomic::write_file(path.as_ref(), |w| self.write_to(w, depth))
    }
}

fn invalid_id(what: &str, id: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "{what} {id:?} is empty or contains whitespace, which a TREC run cannot hold; replace it (e.g. with beir::trec_safe_id)"
        ),
    )
}

fn parse_score(text: &str) -> Option<f64> {
    plain_decimal(text.as_bytes())
        .or_else(|| text.parse::<f64>().ok())
        .filter(|s| s.is_finite())
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path for the common score spelling `[+-]digits[.digits]`:
/// with at most 15 significant digits the mantissa and the power of ten are
/// exact f64s, so one IEEE division gives the correctly rounded value, equal
/// to `str::parse`'s. Anything else returns `None` for the general parser.
fn plain_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mut mantissa, mut count, mut fraction) = (0u64, 0usize, 0usize);
    let mut seen_dot = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                if count == 15 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
                fraction += usize::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction];
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_score_then_docno_descending() {
        let run = Run::from_str("q Q0 d1 1 1.0 t\nq Q0 d2 2 1.0 t\nq Q0 d10 3 2 t\n").unwrap();
        let order: Vec<&str> = run.get("q").unwrap().ranked().map(|(d, _)| d).collect();
        assert_eq!(order, ["d10", "d2", "d1"]);
        assert_eq!(run.tag(), "t");
    }

    #[test]
    fn fast_score_parsing_equals_the_standard_parser() {
        for text in [
            "0",
            "-0",
            "1",
            "0.1",
            "-12.3456",
            "3.",
            ".5",
            "+7.25",
            "123456789012345",
            "0.000000000000001",
            "99999.9999999999",
            "1e5",
            "1234567890123456",
            "inf",
            "-",
        ] {
            let fast = parse_score(text);
            let std = text.parse::<f64>().ok().filter(|s| s.is_finite());
            assert_eq!(fast.map(f64::to_bits), std.map(f64::to_bits), "{text}");
        }
    }

    #[test]
    fn scores_equal_as_f32_tie() {
        let run = Run::from_str("q Q0 a 1 0.1 t\nq Q0 b 2 0.1000000001 t\n").unwrap();
        let order: Vec<&str> = run.get("q").unwrap().ranked().map(|(d, _)| d).collect();
        assert_eq!(order, ["b", "a"]);
    }

    #[test]
    fn duplicate_documents_are_refused_even_when_interleaved() {
        let err = Run::from_str("q Q0 a 1 1 t\nq Q0 b 2 1 t\nq Q0 a 3 1 t\n").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                line: 3,
                kind: ParseErrorKind::DuplicateDocument { first_line: 1, .. },
                ..
            }
        ));
        let err = Run::from_str("q Q0 a 1 1 t\nr Q0 a 1 1 t\nq Q0 a 3 1 t\n").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                line: 3,
                kind: ParseErrorKind::DuplicateDocument { first_line: 1, .. },
                ..
            }
        ));
        // Same docno for different queries is fine, also when interleaved.
        let ok = Run::from_str("q Q0 a 1 1 t\nr Q0 a 1 1 t\nq Q0 b 3 1 t\nr Q0 b 1 1 t\n");
        assert_eq!(ok.unwrap().get("q").unwrap().len(), 2);
    }

    #[test]
    fn a_duplicate_in_a_resumed_query_names_the_real_first_line() {
        // Blank lines and other queries between the two occurrences; the query resumes
        // after another one, so its duplicate detector is rebuilt from its entries.
        let text = "q Q0 a 1 1 t\n\nq Q0 b 2 1 t\nq Q0 c 3 1 t\nr Q0 x 1 1 t\n\n\nq Q0 d 4 1 t\nr Q0 y 2 1 t\nq Q0 c 5 1 t\n";
        let err = Run::from_str(text).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Parse {
                    line: 10,
                    kind: ParseErrorKind::DuplicateDocument { first_line: 4, .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("first on line 4"), "{err}");
        for (dup, first) in [("a", 1), ("b", 3), ("d", 8)] {
            let text = format!("{}q Q0 {dup} 9 1 t\n", &text[..text.len() - 13]);
            match Run::from_str(&text).unwrap_err() {
                Error::Parse {
                    kind: ParseErrorKind::DuplicateDocument { first_line, .. },
                    ..
                } => assert_eq!(first_line, first, "{dup}"),
                other => panic!("{other}"),
            }
        }
        let spans = {
            let mut s = LineSpans::default();
            for (entry, line) in [(0, 5), (1, 6), (2, 9), (3, 10), (4, 40)] {
                s.record(entry, line);
            }
            s
        };
        assert_eq!(spans.0, [(0, 5), (2, 9), (4, 40)]);
        let lines: Vec<u64> = (0..5).map(|e| spans.line_of(e)).collect();
        assert_eq!(lines, [5, 6, 9, 10, 40]);
    }

    #[test]
    fn rejects_bad_scores_and_field_counts() {
        for bad in ["q Q0 a 1 x t\n", "q Q0 a 1 nan t\n", "q Q0 a 1 inf t\n"] {
            let err = Run::from_str(bad).unwrap_err();
            assert!(matches!(
                err,
                Error::Parse {
                    line: 1,
                    kind: ParseErrorKind::InvalidNumber { .. },
                    ..
                }
            ));
        }
        let err = Run::from_str("q Q0 a 1 1\n").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                kind: ParseErrorKind::FieldCount { .. },
                ..
            }
        ));
    }

    #[test]
    fn write_then_read_round_trips() {
        let mut run = Run::new("sys");
        run.extend_query("2", [("x", 0.25), ("y", 3.5)]).unwrap();
        run.push("10", "z", -1.0).unwrap();
        assert!(run.push("10", "z", 2.0).is_err());
        let mut out = Vec::new();
        run.write_to(&mut out, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "10 Q0 z 1 -1 sys\n2 Q0 y 1 3.5 sys\n2 Q0 x 2 0.25 sys\n"
        );
        let back = Run::from_str(&text).unwrap();
        assert_eq!(back.get("2").unwrap().len(), 2);
    }
}
