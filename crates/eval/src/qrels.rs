//! TREC relevance judgments (`qid iter docno rel`).

use std::io::{BufRead, Write};
use std::path::Path;

use crate::error::{Error, ParseErrorKind, Result};
use crate::hash::FastMap;
use crate::text::{self, Lines};

/// Relevance judgments for a set of queries, as read from a TREC qrels file.
///
/// ```
/// use latent_terms_eval::Qrels;
///
/// let qrels = Qrels::from_str("q1 0 d1 2\nq1 0 d2 0\nq2 0 d7 1\n")?;
/// assert_eq!(qrels.get("q1").unwrap().relevance("d1"), Some(2));
/// assert_eq!(qrels.get("q1").unwrap().num_relevant(1), 1);
/// assert_eq!(qrels.len(), 2);
/// # Ok::<(), latent_terms_eval::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Qrels {
    queries: Vec<QueryJudgments>,
    index: FastMap<Box<str>, usize>,
}

/// The judged documents of one query.
#[derive(Debug, Clone)]
pub struct QueryJudgments {
    qid: Box<str>,
    judgments: FastMap<Box<str>, i64>,
}

impl QueryJudgments {
    fn insert(&mut self, docno: &str, relevance: i64) -> bool {
        match self.judgments.entry(docno.into()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(relevance);
                true
            }
        }
    }

    /// The query id.
    pub fn qid(&self) -> &str {
        &self.qid
    }

    /// The judgment of `docno`, or `None` if it was not judged.
    pub fn relevance(&self, docno: &str) -> Option<i64> {
        self.judgments.get(docno).copied()
    }

    /// Number of documents judged at or above `relevance_level`.
    pub fn num_relevant(&self, relevance_level: i64) -> usize {
        self.judgments
            .values()
            .filter(|&&rel| rel >= relevance_level)
            .count()
    }

    /// Number of judged documents.
    pub fn len(&self) -> usize {
        self.judgments.len()
    }

    /// True when nothing is judged (never the case for parsed files).
    pub fn is_empty(&self) -> bool {
        self.judgments.is_empty()
    }

    /// Judged documents and their relevance, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.judgments.iter().map(|(d, &r)| (&**d, r))
    }
}

impl Qrels {
    /// An empty set of judgments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a TREC qrels file (plain or `.gz`).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let qrels = Self::from_reader(text::open(path)?, path)?;
        if qrels.is_empty() {
            return Err(Error::Empty {
                path: path.into(),
                expected: "qrels lines `qid iter docno rel`",
            });
        }
        Ok(qrels)
    }

    /// Parses qrels text held in memory. Blank lines are skipped.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Self> {
        Self::from_reader(text::memory_reader(text.as_bytes()), "<memory>")
    }

    /// Reads TREC qrels from any buffered reader; `name` is used in error messages.
    pub fn from_reader(reader: impl BufRead, name: impl AsRef<Path>) -> Result<Self> {
        let path = name.as_ref().to_path_buf();
        let mut lines = Lines::new(reader, &path);
        let mut qrels = Qrels::new();
        // Qrels are usually grouped by query: remember the last one.
        let mut current: Option<usize> = None;
        lines.for_each_line(|line_no, line| {
            let mut fields = [""; 4];
            match text::split_fields(line, &mut fields) {
                0 => return Ok(()),
                4 => {}
                found => {
                    return Err(Error::parse(
                        &path,
                        line_no,
                        ParseErrorKind::FieldCount {
                            expected: 4,
                            found,
                            format: "qid iter docno rel",
                        },
                    ));
                }
            }
            let [qid, _iter, docno, rel] = fields;
            let rel: i64 = rel.parse().map_err(|_| {
                Error::parse(
                    &path,
                    line_no,
                    ParseErrorKind::InvalidNumber {
                        field: "rel",
                        value: rel.to_owned(),
                        expected: "integer",
                    },
                )
            })?;
            let idx = match current {
                Some(i) if &*qrels.queries[i].qid == qid => i,
                _ => qrels.query_index(qid),
            };
            current = Some(idx);
            if !qrels.queries[idx].insert(docno, rel) {
                return Err(Error::parse(
                    &path,
                    line_no,
                    ParseErrorKind::DuplicateJudgment {
                        qid: qid.to_owned(),
                        docno: docno.to_owned(),
                    },
                ));
            }
            Ok(())
        })?;
        Ok(qrels)
    }

    /// Adds a judgment. Returns false (and changes nothing) if `docno` is
    /// already judged for `qid`.
    pub fn insert(&mut self, qid: &str, docno: &str, relevance: i64) -> bool {
        let idx = self.query_index(qid);
        self.queries[idx].insert(docno, relevance)
    }

    fn query_index(&mut self, qid: &str) -> usize {
        if let Some(&idx) = self.index.get(qid) {
            return idx;
        }
        self.index.insert(qid.into(), self.queries.len());
        self.queries.push(QueryJudgments {
            qid: qid.into(),
            judgments: FastMap::default(),
        });
        self.queries.len() - 1
    }

    /// The judgments of one query.
    pub fn get(&self, qid: &str) -> Option<&QueryJudgments> {
        self.index.get(qid).map(|&i| &self.queries[i])
    }

    /// Number of queries with at least one judgment.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// True when no query is judged.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Queries in the order they were first seen.
    pub fn iter(&self) -> impl Iterator<Item = &QueryJudgments> {
        self.queries.iter()
    }

    /// Writes TREC qrels, queries in byte order of qid and documents in byte order of docno.
    pub fn write_to(&self, mut out: impl Write) -> std::io::Result<()> {
        let mut queries: Vec<&QueryJudgments> = self.queries.iter().collect();
        queries.sort_unstable_by(|a, b| a.qid.cmp(&b.qid));
        for q in queries {
            let mut docs: Vec<(&str, i64)> = q.iter().collect();
            docs.sort_unstable();
            for (docno, rel) in docs {
                writeln!(out, "{} 0 {} {}", q.qid, docno, rel)?;
            }
        }
        out.flush()
    }

    /// Writes a TREC qrels file atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::atomic::write_file(path.as_ref(), |w| self.write_to(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let q = Qrels::from_str("1 0 a 1\n1 0 b 0\n\n2 Q0 c -1\r\n").unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.get("1").unwrap().relevance("a"), Some(1));
        assert_eq!(q.get("1").unwrap().relevance("z"), None);
        assert_eq!(q.get("2").unwrap().relevance("c"), Some(-1));
        assert_eq!(q.get("1").unwrap().num_relevant(1), 1);
    }

    #[test]
    fn rejects_bad_lines_with_line_numbers() {
        let err = Qrels::from_str("1 0 a 1\n1 0 b x\n").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                line: 2,
                kind: ParseErrorKind::InvalidNumber { .. },
                ..
            }
        ));
        let err = Qrels::from_str("1 0 a\n").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                line: 1,
                kind: ParseErrorKind::FieldCount { found: 3, .. },
                ..
            }
        ));
        let err = Qrels::from_str("1 0 a 1\n1 0 a 2\n").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                line: 2,
                kind: ParseErrorKind::DuplicateJudgment { .. },
                ..
            }
        ));
    }

    #[test]
    fn rejects_invalid_utf8() {
        let err = Qrels::from_reader(&b"1 0 \xff 1\n"[..], "x").unwrap_err();
        assert!(matches!(
            err,
            Error::Parse {
                kind: ParseErrorKind::InvalidUtf8,
                ..
            }
        ));
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.qrels");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(Qrels::from_path(&empty), Err(Error::Empty { .. })));
        assert!(matches!(
            Qrels::from_path(dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.txt");
        let q = Qrels::from_str("b 0 d2 1\na 0 d1 3\n").unwrap();
        q.save(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a 0 d1 3\nb 0 d2 1\n"
        );
        let back = Qrels::from_path(&path).unwrap();
        assert_eq!(back.get("a").unwrap().relevance("d1"), Some(3));
    }
}
