//! Weighted sparse queries read from JSON lines, the query input of the exporters.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Read};

use latent_terms_io::{LineError, Lines};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::TermNames;
use crate::analyzer::Analyzer;
use crate::error::{IndexError, Result};
use crate::vector::Query;

/// A query with an id, as the exporters take it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedQuery {
    /// Query id (the TREC run's first column).
    pub id: String,
    /// Term weights (raw: the scorer's query factor is applied on export).
    pub query: Query,
}

#[derive(serde::Deserialize)]
struct Line {
    #[serde(alias = "_id", alias = "qid")]
    id: String,
    #[serde(default)]
    vector: Option<Entries>,
    #[serde(default)]
    text: Option<String>,
}

/// A JSON object's entries in file order, duplicates kept (a map would keep the last).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of term weights")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Reads weighted queries, one JSON object per line:
///
/// * `{"id": "q1", "vector": {"l17": 0.5, "l3": 1.25}}`: term names (see [`TermNames`]) with
///   non-negative weights;
/// * `{"_id": "q1", "text": "..."}` (a BEIR `queries.jsonl` line): analysed with `analyzer`
///   and looked up in the vocabulary, each occurrence adding 1 (lexical indexes only).
///
/// `id` may also be spelled `_id` or `qid`. Blank lines are skipped. A vocabulary word that
/// the index does not have is dropped (it matches nothing); a name that is not a latent
/// term name for a latent index, a bad weight or a text query without a vocabulary is an
/// error naming the line, and a term given twice in one `vector` is
/// [`IndexError::DuplicateQueryTerm`] (line and key). Lines are read through
/// [`latent_terms_io::Lines`]: one longer than
/// [`max_line_bytes`](latent_terms_io::max_line_bytes) (16 MiB unless
/// `LATENT_TERMS_MAX_LINE_BYTES` says otherwise) or not UTF-8 is an error, not an
/// unbounded allocation.
///
/// ```
/// use latent_terms_sparse_index::IndexError;
/// use latent_terms_sparse_index::export::{TermNames, read_weighted_queries};
///
/// let input = "{\"id\": \"q1\", \"vector\": {\"l17\": 0.5, \"l3\": 2}}\n\n";
/// let queries = read_weighted_queries(input.as_bytes(), TermNames::Latent, None)?;
/// assert_eq!(queries[0].id, "q1");
/// assert_eq!(queries[0].query.iter().collect::<Vec<_>>(), vec![(3, 2.0), (17, 0.5)]);
///
/// let twice = "{\"id\": \"q1\", \"vector\": {\"l3\": 1, \"l3\": 2}}";
/// let err = read_weighted_queries(twice.as_bytes(), TermNames::Latent, None).unwrap_err();
/// assert!(matches!(err, IndexError::DuplicateQueryTerm { line: 1, ref key } if key == "l3"));
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn read_weighted_queries<R: BufRead>(
    reader: R,
    names: TermNames<'_>,
    analyzer: Option<&Analyzer>,
) -> Result<Vec<WeightedQuery>> {
    read_lines(Lines::new(reader, "queries"), names, analyzer)
}

fn read_lines<R: Read>(
    mut lines: Lines<R>,
    names: TermNames<'_>,
    analyzer: Option<&Analyzer>,
) -> Result<Vec<WeightedQuery>> {
    let line_error = |e: LineError| IndexError::Export {
        what: e.to_string(),
    };
    let mut out = Vec::new();
    while let Some((n, line)) = lines.next_line().map_err(line_error)? {
        let bad = |what: String| IndexError::Export {
            what: format!("queries line {n}: {what}"),
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let query = match (parsed.vector, parsed.text) {
            (Some(Entries(vector)), _) => {
                let mut seen = HashSet::with_capacity(vector.len());
                let mut pairs = Vec::with_capacity(vector.len());
                for (name, value) in vector {
                    if !seen.insert(name.clone()) {
                        return Err(IndexError::DuplicateQueryTerm { line: n, key: name });
                    }
                    let weight = value
                        .as_f64()
                        .ok_or_else(|| bad(format!("weight of {name:?} is not a number")))?;
                    match names.id(&name) {
                        Some(id) => pairs.push((id, weight as f32)),
                        None if matches!(names, TermNames::Vocabulary(_)) => {}
                        None => {
                            return Err(bad(format!(
                                "{name:?} is not a latent term name (l<id>, e.g. l17)"
                            )));
                        }
                    }
                }
                Query::new(pairs).map_err(|e| bad(e.to_string()))?
            }
            (None, Some(text)) => match (names, analyzer) {
                (TermNames::Vocabulary(v), Some(a)) => v.query(a, &text),
                _ => {
                    return Err(bad(
                        "a text query needs a lexical index (with a vocabulary) and an analyzer"
                            .into(),
                    ));
                }
            },
            (None, None) => return Err(bad("neither \"vector\" nor \"text\" is given".into())),
        };
        out.push(WeightedQuery {
            id: parsed.id,
            query,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vocabulary;

    #[test]
    fn reads_vectors_and_texts_and_names_bad_lines() {
        let vocab = Vocabulary::from_terms(["cat", "dog"]).expect("unique");
        let analyzer = Analyzer::english();
        let input = "{\"_id\": \"1\", \"text\": \"cats and dogs and cats\"}\n{\"qid\": \"2\", \"vector\": {\"dog\": 1.5, \"zebra\": 1}}\n";
        let qs = read_weighted_queries(
            input.as_bytes(),
            TermNames::Vocabulary(&vocab),
            Some(&analyzer),
        )
        .expect("valid");
        assert_eq!(
            qs[0].query.iter().collect::<Vec<_>>(),
            vec![(0, 2.0), (1, 1.0)]
        );
        assert_eq!(qs[1].query.iter().collect::<Vec<_>>(), vec![(1, 1.5)]);

        for (bad, needle) in [
            ("{\"id\": \"1\", \"vector\": {\"x1\": 1}}", "line 1"),
            ("{\"id\": \"1\", \"vector\": {\"l1\": -1}}", "line 1"),
            (
                "{\"id\": \"1\", \"vector\": {\"l1\": \"a\"}}",
                "not a number",
            ),
            ("{\"id\": \"1\", \"text\": \"a\"}", "vocabulary"),
            ("{\"id\": \"1\"}", "neither"),
            ("\n{nope", "line 2"),
            (
                "{\"id\": \"1\", \"id\": \"2\", \"vector\": {}}",
                "duplicate field",
            ),
        ] {
            let e = read_weighted_queries(bad.as_bytes(), TermNames::Latent, None)
                .expect_err(bad)
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn a_term_given_twice_in_one_query_is_a_typed_error_naming_line_and_key() {
        let vocab = Vocabulary::from_terms(["cat", "dog"]).expect("unique");
        let input = "{\"id\": \"1\", \"vector\": {\"dog\": 1}}\n\n{\"id\": \"2\", \"vector\": {\"dog\": 1.5, \"cat\": 1, \"dog\": 2}}\n";
        let err = read_weighted_queries(input.as_bytes(), TermNames::Vocabulary(&vocab), None)
            .expect_err("duplicate");
        assert!(
            matches!(&err, IndexError::DuplicateQueryTerm { line: 3, key } if key == "dog"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("line 3") && message.contains("\"dog\""),
            "{message}"
        );
        // Also for names the index does not have (they would be dropped otherwise).
        let input = "{\"id\": \"1\", \"vector\": {\"zebra\": 1, \"zebra\": 1}}";
        let err = read_weighted_queries(input.as_bytes(), TermNames::Vocabulary(&vocab), None)
            .expect_err("duplicate");
        assert!(matches!(&err, IndexError::DuplicateQueryTerm { line: 1, key } if key == "zebra"));
        // Latent names; the same weights once each are fine.
        let input = "{\"id\": \"q\", \"vector\": {\"l3\": 1, \"l4\": 2, \"l3\": 1}}";
        assert!(matches!(
            read_weighted_queries(input.as_bytes(), TermNames::Latent, None),
            Err(IndexError::DuplicateQueryTerm { line: 1, .. })
        ));
        let input = "{\"id\": \"q\", \"vector\": {\"l3\": 1, \"l4\": 2}}";
        assert_eq!(
            read_weighted_queries(input.as_bytes(), TermNames::Latent, None).expect("ok")[0]
                .query
                .iter()
                .collect::<Vec<_>>(),
            vec![(3, 1.0), (4, 2.0)]
        );
    }

    #[test]
    fn lines_are_bounded() {
        let long = format!(
            "{{\"id\": \"q\", \"vector\": {{\"l1\": 1}}, \"text\": \"{}\"}}",
            "x".repeat(100)
        );
        let input = format!("{{\"id\": \"a\", \"vector\": {{\"l2\": 1}}}}\n{long}\n");
        let err = read_lines(
            Lines::with_limit(input.as_bytes(), "queries", 64),
            TermNames::Latent,
            None,
        )
        .expect_err("too long");
        let message = err.to_string();
        assert!(
            message.contains("queries:2") && message.contains("longer than 64 bytes"),
            "{message}"
        );
        let ok = read_lines(
            Lines::with_limit(input.as_bytes(), "queries", 256),
            TermNames::Latent,
            None,
        )
        .expect("fits");
        assert_eq!(ok.len(), 2);
        let err = read_weighted_queries(
            &b"{\"id\": \"a\", \"vector\": {}}\n\xff\n"[..],
            TermNames::Latent,
            None,
        )
        .expect_err("not UTF-8");
        assert!(
            err.to_string()
                .contains("queries:2: the line is not valid UTF-8"),
            "{err}"
        );
    }
}
