//! BEIR-layout datasets: `corpus.jsonl[.gz]`, `queries.jsonl[.gz]`,
//! `qrels/<split>.tsv` (tab-separated with a header line). A directory holding
//! both `X.jsonl` and `X.jsonl.gz` is an error ([`Error::ConflictingFiles`]):
//! nothing says which one is meant.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ParseErrorKind, Result};
use crate::qrels::Qrels;
use crate::text::{self, Lines};

/// A corpus document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Document id (`_id`).
    #[serde(rename = "_id", deserialize_with = "string_or_number")]
    pub id: String,
    /// Title; empty when absent.
    #[serde(default)]
    pub title: String,
    /// Body text; empty when absent.
    #[serde(default)]
    pub text: String,
}

impl Document {
    /// Title and text joined by a space, the usual input to retrievers
    /// (just the text when there is no title).
    pub fn full_text(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{} {}", self.title, self.text)
        }
    }
}

/// A query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Query id (`_id`).
    #[serde(rename = "_id", deserialize_with = "string_or_number")]
    pub id: String,
    /// Query text.
    #[serde(default)]
    pub text: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(serde_json::Number),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => trec_safe_id(&s),
        Id::N(n) => n.to_string(),
    })
}

/// TREC run and qrels files separate fields by whitespace, so ids such as
/// LIMIT's "Geneva Durben" cannot be written there as they are. BEIR ids are
/// read with each run of whitespace replaced by `_` (and trimmed), the same
/// way in corpus, queries and qrels, so they stay consistent.
pub fn trec_safe_id(id: &str) -> String {
    if !id.bytes().any(|b| b.is_ascii_whitespace()) && !id.chars().any(char::is_whitespace) {
        return id.to_owned();
    }
    id.split_whitespace().collect::<Vec<_>>().join("_")
}

/// A dataset directory in BEIR layout.
///
/// ```no_run
/// use latent_terms_eval::beir::BeirDataset;
/// let data = BeirDataset::open("../shared/data/scifact")?;
/// let qrels = data.qrels("test")?;
/// let queries = data.queries_judged_in(&qrels)?;
/// for doc in data.corpus()? {
///     let doc = doc?;
///     println!("{} {}", doc.id, doc.title);
/// }
/// # Ok::<(), latent_terms_eval::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BeirDataset {
    root: PathBuf,
}

impl BeirDataset {
    /// Opens a dataset directory; fails if it has no corpus file.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dataset = BeirDataset { root: dir.into() };
        dataset.find("corpus")?;
        Ok(dataset)
    }

    /// The dataset directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory's name, e.g. `scifact`.
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".to_owned())
    }

    /// `<stem>.jsonl` or `<stem>.jsonl.gz`; both existing is
    /// [`Error::ConflictingFiles`] (they may differ, and silently preferring one hides it).
    fn find(&self, stem: &str) -> Result<PathBuf> {
        let plain = self.root.join(format!("{stem}.jsonl"));
        let gz = self.root.join(format!("{stem}.jsonl.gz"));
        match (plain.is_file(), gz.is_file()) {
            (true, true) => {
                return Err(Error::ConflictingFiles {
                    first: plain,
                    second: gz,
                });
            }
            (true, false) => return Ok(plain),
            (false, true) => return Ok(gz),
            (false, false) => {}
        }
        Err(Error::io(
            self.root.join(format!("{stem}.jsonl")),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {stem}.jsonl or {stem}.jsonl.gz in this BEIR dataset directory"),
            ),
        ))
    }

    /// Streams the corpus, one document at a time.
    pub fn corpus(&self) -> Result<JsonLines<Document>> {
        let path = self.find("corpus")?;
        Ok(JsonLines::new(text::open(&path)?, path))
    }

    /// Reads all queries, in file order. A query id given twice is a
    /// [`ParseErrorKind::DuplicateQuery`] error naming both lines.
    pub fn queries(&self) -> Result<Vec<Query>> {
        let path = self.find("queries")?;
        read_queries(JsonLines::new(text::open(&path)?, path))
    }

    /// Reads the queries that have judgments in `qrels` (the BEIR convention
    /// for which queries to evaluate), in file order.
    pub fn queries_judged_in(&self, qrels: &Qrels) -> Result<Vec<Query>> {
        let mut queries = self.queries()?;
        queries.retain(|q| qrels.get(&q.id).is_some());
        Ok(queries)
    }

    /// Reads `qrels/<split>.tsv`.
    pub fn qrels(&self, split: &str) -> Result<Qrels> {
        qrels_from_tsv_path(self.root.join("qrels").join(format!("{split}.tsv")))
    }
}

/// Reads a BEIR qrels TSV file (see [`read_qrels_tsv`]); an empty file is an error.
pub fn qrels_from_tsv_path(path: impl AsRef<Path>) -> Result<Qrels> {
    let path = path.as_ref();
    let qrels = read_qrels_tsv(text::open(path)?, path)?;
    if qrels.is_empty() {
        return Err(Error::Empty {
            path: path.into(),
            expected: "a header line and `query-id corpus-id score` lines",
        });
    }
    Ok(qrels)
}

/// Reads BEIR's qrels TSV: a header line (`query-id corpus-id score`), then
/// `qid<TAB>docid<TAB>score`.
pub fn read_qrels_tsv(reader: impl BufRead, name: impl AsRef<Path>) -> Result<Qrels> {
    let path = name.as_ref().to_path_buf();
    let mut lines = Lines::new(reader, &path);
    let mut qrels = Qrels::new();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() != 3 {
            return Err(Error::parse(
                &path,
                line_no,
                ParseErrorKind::FieldCount {
                    expected: 3,
                    found: fields.len(),
                    format: "query-id<TAB>corpus-id<TAB>score",
                },
            ));
        }
        // Some BEIR exports write integral scores as `1.0`; a headerless file may
        // start with such a judgment, so only a non-number marks line 1 as the header.
        let integral_float = || {
            fields[2]
                .parse::<f64>()
                .ok()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        };
        let rel = match fields[2].parse::<i64>().ok().or_else(integral_float) {
            Some(rel) => rel,
            // The header: its third column is a name, not a number.
            None if line_no == 1 && fields[2].parse::<f64>().is_err() => continue,
            None => {
                return Err(Error::parse(
                    &path,
                    line_no,
                    ParseErrorKind::InvalidNumber {
                        field: "score",
                        value: fields[2].to_owned(),
                        expected: "integer",
                    },
                ));
            }
        };
        if !qrels.insert(&trec_safe_id(fields[0]), &trec_safe_id(fields[1]), rel) {
            return Err(Error::parse(
                path,
                line_no,
                ParseErrorKind::DuplicateJudgment {
                    qid: fields[0].to_owned(),
                    docno: fields[1].to_owned(),
                },
            ));
        }
    }
    Ok(qrels)
}

/// Collects queries, refusing a query id given twice (ids are compared after
/// [`trec_safe_id`], as they appear in runs).
fn read_queries(mut lines: JsonLines<Query>) -> Result<Vec<Query>> {
    let mut first_lines: std::collections::HashMap<String, u64> = Default::default();
    let mut out = Vec::new();
    while let Some(next) = lines.next_with_line() {
        let (line_no, query) = next?;
        if let Some(&first_line) = first_lines.get(&query.id) {
            return Err(Error::parse(
                lines.lines.path(),
                line_no,
                ParseErrorKind::DuplicateQuery {
                    qid: query.id,
                    first_line,
                },
            ));
        }
        first_lines.insert(query.id.clone(), line_no);
        out.push(query);
    }
    Ok(out)
}

/// An iterator over the records of a JSON-lines file; blank lines are skipped.
pub struct JsonLines<T> {
    lines: Lines<Box<dyn BufRead>>,
    _record: std::marker::PhantomData<fn() -> T>,
}

impl<T> JsonLines<T> {
    fn new(reader: Box<dyn BufRead>, path: PathBuf) -> Self {
        JsonLines {
            lines: Lines::new(reader, path),
            _record: std::marker::PhantomData,
        }
    }

    /// Parses JSON lines from any reader (used by tests and fuzzing).
    pub fn from_reader(reader: Box<dyn BufRead>, name: impl Into<PathBuf>) -> Self {
        Self::new(reader, name.into())
    }
}

impl<T: serde::de::DeserializeOwned> JsonLines<T> {
    /// The next record and the line it is on.
    fn next_with_line(&mut self) -> Option<Result<(u64, T)>> {
        loop {
            let (line_no, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => return Some(Err(e.into())),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(line)
                    .map(|record| (line_no, record))
                    .map_err(|e| {
                        Error::parse(
                            self.lines.path(),
                            line_no,
                            ParseErrorKind::Json(e.to_string()),
                        )
                    }),
            );
        }
    }
}

impl<T: serde::de::DeserializeOwned> Iterator for JsonLines<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_line().map(|r| r.map(|(_, record)| record))
    }
}

/// Writes a dataset in BEIR layout into `dir` (created if needed): the
/// corpus, the queries and `qrels/<split>.tsv`. Each file is written atomically.
pub fn write_dataset(
    dir: &Path,
    corpus: &[Document],
    queries: &[Query],
    qrels: &Qrels,
    split: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir.join("qrels")).map_err(|e| Error::io(dir, e))?;
    crate::atomic::write_file(&dir.join("corpus.jsonl"), |w| write_jsonl(w, corpus))?;
    crate::atomic::write_file(&dir.join("queries.jsonl"), |w| write_jsonl(w, queries))?;
    crate::atomic::write_file(&dir.join("qrels").join(format!("{split}.tsv")), |w| {
        writeln!(w, "query-id\tcorpus-id\tscore")?;
        let mut rows: Vec<(&str, &str, i64)> = qrels
            .iter()
            .flat_map(|q| q.iter().map(move |(d, r)| (q.qid(), d, r)))
            .collect();
        rows.sort_unstable();
        for (q, d, r) in rows {
            writeln!(w, "{q}\t{d}\t{r}")?;
        }
        Ok(())
    })
}

fn write_jsonl<T: Serialize>(w: &mut impl Write, records: &[T]) -> std::io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut *w, r)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_a_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = vec![Document {
            id: "d1".into(),
            title: "T".into(),
            text: "body".into(),
        }];
        let queries = vec![
            Query {
                id: "q1".into(),
                text: "who?".into(),
            },
            Query {
                id: "q2".into(),
                text: "unjudged".into(),
            },
        ];
        let mut qrels = Qrels::new();
        qrels.insert("q1", "d1", 1);
        write_dataset(dir.path(), &corpus, &queries, &qrels, "test").unwrap();
        let data = BeirDataset::open(dir.path()).unwrap();
        let docs: Vec<Document> = data.corpus().unwrap().collect::<Result<_>>().unwrap();
        assert_eq!(docs, corpus);
        assert_eq!(docs[0].full_text(), "T body");
        let q = data.qrels("test").unwrap();
        assert_eq!(q.get("q1").unwrap().relevance("d1"), Some(1));
        assert_eq!(data.queries_judged_in(&q).unwrap().len(), 1);
    }

    #[test]
    fn numeric_ids_and_bad_json() {
        let mut it: JsonLines<Query> = JsonLines::from_reader(
            Box::new(&b"{\"_id\": 7, \"text\": \"x\"}\n{oops\n"[..]),
            "m",
        );
        assert_eq!(it.next().unwrap().unwrap().id, "7");
        assert!(matches!(
            it.next().unwrap(),
            Err(Error::Parse {
                line: 2,
                kind: ParseErrorKind::Json(_),
                ..
            })
        ));
    }

    #[test]
    fn ids_with_spaces_become_trec_safe_everywhere() {
        let mut it: JsonLines<Document> = JsonLines::from_reader(
            Box::new(&b"{\"_id\": \"Geneva  Durben\", \"text\": \"x\"}\n"[..]),
            "m",
        );
        assert_eq!(it.next().unwrap().unwrap().id, "Geneva_Durben");
        let q = read_qrels_tsv(
            &b"query-id\tcorpus-id\tscore\nquery 1\tGeneva Durben\t1\n"[..],
            "t",
        )
        .unwrap();
        assert_eq!(
            q.get("query_1").unwrap().relevance("Geneva_Durben"),
            Some(1)
        );
    }

    #[test]
    fn qrels_tsv_needs_numbers_after_the_header() {
        let ok = read_qrels_tsv(&b"query-id\tcorpus-id\tscore\nq\td\t2\n"[..], "t").unwrap();
        assert_eq!(ok.get("q").unwrap().relevance("d"), Some(2));
        let err = read_qrels_tsv(&b"query-id\tcorpus-id\tscore\nq\td\tx\n"[..], "t").unwrap_err();
        assert!(matches!(err, Error::Parse { line: 2, .. }));
    }

    #[test]
    fn a_headerless_first_judgment_scored_1_0_is_kept() {
        let q = read_qrels_tsv(&b"q1\td1\t1.0\nq1\td2\t2\n"[..], "t").unwrap();
        assert_eq!(q.get("q1").unwrap().relevance("d1"), Some(1));
        assert_eq!(q.get("q1").unwrap().relevance("d2"), Some(2));
        let err = read_qrels_tsv(&b"q1\td1\t0.5\n"[..], "t").unwrap_err();
        assert!(matches!(err, Error::Parse { line: 1, .. }), "{err}");
    }

    #[test]
    fn a_gzip_bomb_line_is_a_typed_error() {
        let limit = latent_terms_io::max_line_bytes();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qrels.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(limit >> 20) + 2 {
            std::io::Write::write_all(&mut enc, &chunk).unwrap();
        }
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let err = qrels_from_tsv_path(&path).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Parse {
                    line: 1,
                    kind: ParseErrorKind::LineTooLong { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_plain_and_a_gzip_file_of_the_same_name_conflict() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let corpus = [Document {
            id: "d1".into(),
            title: String::new(),
            text: "body".into(),
        }];
        let queries = [Query {
            id: "q1".into(),
            text: "plain".into(),
        }];
        write_dataset(dir.path(), &corpus, &queries, &Qrels::new(), "test").unwrap();
        let data = BeirDataset::open(dir.path()).unwrap();
        assert_eq!(data.queries().unwrap()[0].text, "plain");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"_id\": \"q1\", \"text\": \"compressed\"}\n")
            .unwrap();
        let gz = dir.path().join("queries.jsonl.gz");
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let err = data.queries().unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(&err, Error::ConflictingFiles { first, second }
                if first.ends_with("queries.jsonl") && second == &gz),
            "{err:?}"
        );
        assert!(
            message.contains("queries.jsonl and ") && message.contains("remove one"),
            "{message}"
        );
        // The gzip file alone is read.
        std::fs::remove_file(dir.path().join("queries.jsonl")).unwrap();
        assert_eq!(data.queries().unwrap()[0].text, "compressed");
        // The same rule for the corpus, also when opening the dataset.
        std::fs::copy(
            dir.path().join("corpus.jsonl"),
            dir.path().join("corpus.jsonl.gz"),
        )
        .unwrap();
        assert!(matches!(
            BeirDataset::open(dir.path()),
            Err(Error::ConflictingFiles { .. })
        ));
        assert!(matches!(data.corpus(), Err(Error::ConflictingFiles { .. })));
    }

    #[test]
    fn a_duplicate_query_id_is_reported_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = [Document {
            id: "d1".into(),
            title: String::new(),
            text: "body".into(),
        }];
        write_dataset(dir.path(), &corpus, &[], &Qrels::new(), "test").unwrap();
        std::fs::write(
            dir.path().join("queries.jsonl"),
            "{\"_id\": \"q1\", \"text\": \"a\"}\n\n{\"_id\": \"q2\", \"text\": \"b\"}\n{\"_id\": \"q1\", \"text\": \"c\"}\n",
        )
        .unwrap();
        let data = BeirDataset::open(dir.path()).unwrap();
        let err = data.queries().unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Parse {
                    line: 4,
                    kind: ParseErrorKind::DuplicateQuery { qid, first_line: 1 },
                    ..
                } if qid == "q1"
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("duplicate query id \"q1\""), "{message}");
        assert!(!message.contains("document"), "{message}");
        // Ids equal once made TREC-safe are the same query in a run.
        std::fs::write(
            dir.path().join("queries.jsonl"),
            "{\"_id\": \"q 1\", \"text\": \"a\"}\n{\"_id\": \"q_1\", \"text\": \"b\"}\n",
        )
        .unwrap();
        assert!(matches!(
            data.queries_judged_in(&Qrels::new()),
            Err(Error::Parse {
                line: 2,
                kind: ParseErrorKind::DuplicateQuery { .. },
                ..
            })
        ));
    }
}
