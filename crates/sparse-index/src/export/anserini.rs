//! Anserini (Lucene) impact indexes: `JsonVectorCollection` documents and pretokenized
//! weighted topics.

use std::path::Path;

use super::{
    Quantizer, TermNames, WeightedQuery, document_impacts, ensure_dir, io_at, json_object,
    json_string, query_weights, write_file,
};
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::scorer::Scorer;

/// What [`write_anserini`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnseriniExport {
    /// Documents written to `corpus/docs.jsonl`.
    pub documents: u64,
    /// `(term, impact)` entries written.
    pub postings: u64,
    /// Postings whose impact quantized to 0 (left out).
    pub dropped_postings: u64,
    /// Topics written to `topics.tsv`.
    pub queries: u64,
    /// Queries left out of `topics.tsv` because no term kept a positive integer weight
    /// (Anserini's topic reader fails on an empty topic; such a query retrieves nothing).
    pub empty_queries: u64,
}

/// One line of Anserini's `TsvString` topics for `-impact -pretokenized` search: the query
/// id, a tab, then every term repeated as many times as its integer weight, separated by
/// spaces. Anserini counts the repeats back into a per-term weight, so its score is the
/// integer dot product `Σ_t weight_t · impact_td`.
///
/// Errors when the id or a term name contains whitespace (it would change the tokens), the
/// query has no token (Anserini 1.7.1's `TsvString` reader fails on an empty topic), or it
/// has more than 2^24 tokens.
///
/// ```
/// use latent_terms_sparse_index::export::{TermNames, anserini_topic_line};
/// let line = anserini_topic_line("q1", &[(17, 3), (4, 1)], TermNames::Latent)?;
/// assert_eq!(line, "q1\tl17 l17 l17 l4");
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn anserini_topic_line(
    id: &str,
    weights: &[(u32, u32)],
    names: TermNames<'_>,
) -> Result<String> {
    check_token("query id", id)?;
    let total: u64 = weights.iter().map(|&(_, w)| u64::from(w)).sum();
    if total == 0 {
        return Err(IndexError::Export {
            what: format!("query {id:?} has no term with a positive weight"),
        });
    }
    if total > 1 << 24 {
        return Err(IndexError::Export {
            what: format!(
                "query {id:?} would have {total} tokens; lower the query quantization scale"
            ),
        });
    }
    let mut line = String::with_capacity(id.len() + 1 + 8 * total as usize);
    line.push_str(id);
    line.push('\t');
    let mut first = true;
    for &(term, weight) in weights {
        let name = names.name(term)?;
        check_token("term", &name)?;
        for _ in 0..weight {
            if !first {
                line.push(' ');
            }
            first = false;
            line.push_str(&name);
        }
    }
    Ok(line)
}

fn check_token(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        Err(IndexError::Export {
            what: format!(
                "{what} {s:?} is empty or contains whitespace, which Anserini's pretokenized topics cannot carry"
            ),
        })
    } else {
        Ok(())
    }
}

/// Writes an Anserini impact collection of `index` into directory `out`:
///
/// * `out/corpus/docs.jsonl`: one `{"id", "contents": "", "vector": {term: impact}}` per
///   live document (Anserini counts a document without terms as "empty" and skips it),
///   impacts `round(idf · doc_factor × scale)` under `scorer`, for
///   `IndexCollection -collection JsonVectorCollection -impact -pretokenized`;
/// * `out/topics.tsv`: the queries, weights `round(query_factor × scale)`, in the format of
///   [`anserini_topic_line`], for `SearchCollection -topicReader TsvString -impact
///   -pretokenized`; queries left with no term are counted in
///   [`AnseriniExport::empty_queries`] and not written.
///
/// With [`DotProduct`](crate::DotProduct) the impacts are the stored weights themselves.
/// Files are written atomically; `out` is created if missing.
///
/// ```
/// use latent_terms_sparse_index::export::{Quantizer, WeightedQuery, write_anserini};
/// use latent_terms_sparse_index::{DotProduct, IndexBuilder, IndexConfig, Query, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// b.add("d1", &SparseVector::new([(17, 0.42)])?)?;
/// let index = b.build()?;
/// let queries = [WeightedQuery { id: "q1".into(), query: Query::new([(17, 0.03)])? }];
/// let tmp = tempfile::tempdir().unwrap();
/// let dir = tmp.path().join("anserini");
/// let q = Quantizer::new(100.0)?;
/// let summary = write_anserini(&index, &DotProduct, &queries, q, q, &dir)?;
/// assert_eq!(summary.documents, 1);
/// let docs = std::fs::read_to_string(dir.join("corpus/docs.jsonl")).unwrap();
/// assert_eq!(docs, "{\"id\":\"d1\",\"contents\":\"\",\"vector\":{\"l17\":42}}\n");
/// assert_eq!(std::fs::read_to_string(dir.join("topics.tsv")).unwrap(), "q1\tl17 l17 l17\n");
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn write_anserini<S: Scorer + ?Sized>(
    index: &Index,
    scorer: &S,
    queries: &[WeightedQuery],
    doc_quantizer: Quantizer,
    query_quantizer: Quantizer,
    out: &Path,
) -> Result<AnseriniExport> {
    let names = TermNames::for_index(index);
    let docs = document_impacts(index, scorer)?;
    let corpus_dir = out.join("corpus");
    ensure_dir(&corpus_dir)?;
    let corpus = corpus_dir.join("docs.jsonl");
    let mut summary = AnseriniExport {
        documents: 0,
        postings: 0,
        dropped_postings: 0,
        queries: 0,
        empty_queries: 0,
    };
    write_file(&corpus, |w| {
        let io = io_at(&corpus);
        for doc in &docs {
            let mut vector = Vec::with_capacity(doc.impacts.len());
            for &(term, impact) in &doc.impacts {
                let v = doc_quantizer.quantize(impact)?;
                if v == 0 {
                    summary.dropped_postings += 1;
                    continue;
                }
                vector.push((names.name(term)?, v.to_string()));
                summary.postings += 1;
            }
            let vector = json_object(vector.iter().map(|(k, v)| (k.as_ref(), v.clone())));
            let line = json_object([
                ("id", json_string(&doc.id)),
                ("contents", "\"\"".to_owned()),
                ("vector", vector),
            ]);
            w.write_all(line.as_bytes()).map_err(&io)?;
            w.write_all(b"\n").map_err(&io)?;
            summary.documents += 1;
        }
        Ok(())
    })?;
    let topics = out.join("topics.tsv");
    write_file(&topics, |w| {
        let io = io_at(&topics);
        for q in queries {
            let weights = query_quantizer.quantize_pairs(&query_weights(&q.query, scorer))?;
            if weights.is_empty() {
                summary.empty_queries += 1;
                continue;
            }
            let line = anserini_topic_line(&q.id, &weights, names)?;
            w.write_all(line.as_bytes()).map_err(&io)?;
            w.write_all(b"\n").map_err(&io)?;
            summary.queries += 1;
        }
        Ok(())
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_lines_refuse_whitespace_and_huge_queries() {
        assert!(anserini_topic_line("q 1", &[(1, 1)], TermNames::Latent).is_err());
        assert!(anserini_topic_line("q1", &[(1, 1 << 25)], TermNames::Latent).is_err());
        assert!(anserini_topic_line("q1", &[], TermNames::Latent).is_err());
        assert!(anserini_topic_line("q1", &[(3, 0)], TermNames::Latent).is_err());
    }
}
