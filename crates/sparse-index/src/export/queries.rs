//! Weighted sparse queries read from JSON lines, the query input of the exporters.

use std::io::BufRead;

use serde::Deserialize;

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

#[derive(Deserialize)]
struct Line {
    #[serde(alias = "_id", alias = "qid")]
    id: String,
    #[serde(default)]
    vector: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    text: Option<String>,
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
/// error naming the line.
///
/// ```
/// use latent_terms_sparse_index::export::{TermNames, read_weighted_queries};
///
/// let input = "{\"id\": \"q1\", \"vector\": {\"l17\": 0.5, \"l3\": 2}}\n\n";
/// let queries = read_weighted_queries(input.as_bytes(), TermNames::Latent, None)?;
/// assert_eq!(queries[0].id, "q1");
/// assert_eq!(queries[0].query.iter().collect::<Vec<_>>(), vec![(3, 2.0), (17, 0.5)]);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn read_weighted_queries<R: BufRead>(
    reader: R,
    names: TermNames<'_>,
    analyzer: Option<&Analyzer>,
) -> Result<Vec<WeightedQuery>> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let bad = |what: String| IndexError::Export {
            what: format!("queries line {n}: {what}"),
        };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let query = match (parsed.vector, parsed.text) {
            (Some(vector), _) => {
                let mut pairs = Vec::with_capacity(vector.len());
                for (name, value) in vector {
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
        ] {
            let e = read_weighted_queries(bad.as_bytes(), TermNames::Latent, None)
                .expect_err(bad)
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
