//! Elasticsearch / OpenSearch: a `rank_features` field, bulk NDJSON and `rank_feature`
//! queries with linear boosts (both engines accept the same bodies).

use std::path::Path;

use serde_json::{Value, json};

use super::{
    Quantizer, TermNames, WeightedQuery, document_impacts, ensure_dir, io_at, json_object,
    json_string, query_weights, write_file,
};
use crate::error::Result;
use crate::index::Index;
use crate::scorer::Scorer;

/// Settings of [`write_opensearch`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSearchOptions {
    /// Index name used in the bulk actions and the multi-search headers.
    pub index_name: String,
    /// The `rank_features` field holding the terms.
    pub field: String,
    /// `Some`: document impacts are `round(impact × scale)`; `None`: the f32 impacts.
    pub doc_quantizer: Option<Quantizer>,
    /// `Some`: query boosts are `round(query_factor × scale)`; `None`: the f32 factors.
    pub query_quantizer: Option<Quantizer>,
    /// Hits requested per query (`size`).
    pub size: usize,
}

impl Default for OpenSearchOptions {
    fn default() -> Self {
        Self {
            index_name: "latent-terms".into(),
            field: "latent_terms".into(),
            doc_quantizer: None,
            query_quantizer: None,
            size: 1000,
        }
    }
}

/// What [`write_opensearch`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenSearchExport {
    /// Documents in `bulk.ndjson`.
    pub documents: u64,
    /// Features written.
    pub postings: u64,
    /// Postings whose impact quantized to 0 (left out).
    pub dropped_postings: u64,
    /// Queries in `queries.msearch.ndjson`.
    pub queries: u64,
}

/// A feature name for the `rank_features` field: dots would be read as object paths, so
/// `%` and `.` are percent-encoded (`%25`, `%2E`). Latent names (`l17`) never change.
fn feature_name(name: &str) -> String {
    if name.contains(['.', '%']) {
        name.replace('%', "%25").replace('.', "%2E")
    } else {
        name.to_owned()
    }
}

/// A feature value or boost as a JSON number (f32 printed shortest-round-trip), or `None`
/// when it quantizes to 0.
fn number(x: f32, quantizer: Option<Quantizer>) -> Result<Option<String>> {
    match quantizer {
        Some(q) => {
            let v = q.quantize(x)?;
            Ok((v > 0).then(|| v.to_string()))
        }
        // rank_features needs positive normal floats; impacts are positive already.
        None => Ok((x.is_normal() && x > 0.0).then(|| format!("{x}"))),
    }
}

/// Writes an Elasticsearch/OpenSearch export of `index` into directory `out`:
///
/// * `mapping.json`: the index body, `{"mappings": {"properties": {FIELD: {"type":
///   "rank_features"}}}}` (`PUT /NAME` with it);
/// * `bulk.ndjson`: `{"index": {"_index", "_id"}}` action lines, each followed by
///   `{FIELD: {term: impact}}` (`POST /_bulk` with it);
/// * `queries.msearch.ndjson`: per query a header `{"index": NAME}` and a body whose
///   `bool.should` holds one `{"rank_feature": {"field": "FIELD.term", "boost": w,
///   "linear": {}}}` per query term (`POST /_msearch`); `queries.ids` lists the query ids
///   in the same order (responses come back in request order).
///
/// A linear `rank_feature` clause scores `boost × feature`, and `should` clauses add up,
/// so the engine computes the same dot product as [`write_anserini`](super::write_anserini)'s
/// files, subject to Lucene storing feature values with 9 significant bits
/// (`FeatureField`): integer impacts up to 512 are exact, larger or real values are rounded
/// to about 0.4 % relative error.
///
/// ```
/// use latent_terms_sparse_index::export::{OpenSearchOptions, WeightedQuery, write_opensearch};
/// use latent_terms_sparse_index::{DotProduct, IndexBuilder, IndexConfig, Query, SparseVector};
///
/// let mut b = IndexBuilder::new(IndexConfig::default())?;
/// b.add("d1", &SparseVector::new([(17, 0.5)])?)?;
/// let index = b.build()?;
/// let queries = [WeightedQuery { id: "q1".into(), query: Query::new([(17, 2.0)])? }];
/// let tmp = tempfile::tempdir().unwrap();
/// let dir = tmp.path().join("opensearch");
/// write_opensearch(&index, &DotProduct, &queries, &OpenSearchOptions::default(), &dir)?;
/// let bulk = std::fs::read_to_string(dir.join("bulk.ndjson")).unwrap();
/// assert_eq!(bulk, "{\"index\":{\"_index\":\"latent-terms\",\"_id\":\"d1\"}}\n{\"latent_terms\":{\"l17\":0.5}}\n");
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
pub fn write_opensearch<S: Scorer + ?Sized>(
    index: &Index,
    scorer: &S,
    queries: &[WeightedQuery],
    options: &OpenSearchOptions,
    out: &Path,
) -> Result<OpenSearchExport> {
    let names = TermNames::for_index(index);
    ensure_dir(out)?;
    let field = &options.field;
    let mut summary = OpenSearchExport {
        documents: 0,
        postings: 0,
        dropped_postings: 0,
        queries: 0,
    };

    let mapping_path = out.join("mapping.json");
    let mapping = json!({"mappings": {"properties": {field.as_str(): {"type": "rank_features"}}}});
    write_file(&mapping_path, |w| {
        let io = io_at(&mapping_path);
        serde_json::to_writer_pretty(&mut *w, &mapping).map_err(|e| io(e.into()))?;
        w.write_all(b"\n").map_err(&io)
    })?;

    let docs = document_impacts(index, scorer)?;
    let bulk_path = out.join("bulk.ndjson");
    write_file(&bulk_path, |w| {
        let io = io_at(&bulk_path);
        for doc in &docs {
            let mut features = Vec::with_capacity(doc.impacts.len());
            for &(term, impact) in &doc.impacts {
                match number(impact, options.doc_quantizer)? {
                    Some(v) => {
                        features.push((feature_name(&names.name(term)?), v));
                        summary.postings += 1;
                    }
                    None => summary.dropped_postings += 1,
                }
            }
            let action = json_object([(
                "index",
                json_object([
                    ("_index", json_string(&options.index_name)),
                    ("_id", json_string(&doc.id)),
                ]),
            )]);
            let source = json_object([(
                field.as_str(),
                json_object(features.iter().map(|(k, v)| (k.as_str(), v.clone()))),
            )]);
            for line in [action, source] {
                w.write_all(line.as_bytes()).map_err(&io)?;
                w.write_all(b"\n").map_err(&io)?;
            }
            summary.documents += 1;
        }
        Ok(())
    })?;

    let msearch_path = out.join("queries.msearch.ndjson");
    let mut ids = String::new();
    write_file(&msearch_path, |w| {
        let io = io_at(&msearch_path);
        for q in queries {
            let mut should = Vec::new();
            for (term, factor) in query_weights(&q.query, scorer) {
                let Some(boost) = number(factor, options.query_quantizer)? else {
                    continue;
                };
                let boost: Value = serde_json::from_str(&boost).map_err(|e| io(e.into()))?;
                let feature = format!("{field}.{}", feature_name(&names.name(term)?));
                should.push(
                    json!({"rank_feature": {"field": feature, "boost": boost, "linear": {}}}),
                );
            }
            let header = json!({"index": options.index_name});
            let body = json!({
                "size": options.size,
                "_source": false,
                "query": {"bool": {"should": should}},
            });
            for v in [&header, &body] {
                serde_json::to_writer(&mut *w, v).map_err(|e| io(e.into()))?;
                w.write_all(b"\n").map_err(&io)?;
            }
            ids.push_str(&q.id);
            ids.push('\n');
            summary.queries += 1;
        }
        Ok(())
    })?;
    let ids_path = out.join("queries.ids");
    write_file(&ids_path, |w| {
        w.write_all(ids.as_bytes()).map_err(io_at(&ids_path))
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexBuilder, IndexConfig, Query, SparseVector, Vocabulary};

    #[test]
    fn feature_names_escape_dots_and_queries_use_linear_boosts() {
        assert_eq!(feature_name("l17"), "l17");
        assert_eq!(feature_name("3.5%"), "3%2E5%25");

        let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("valid");
        b.add(
            "d1",
            &SparseVector::new([(0, 2.0), (1, 1.0)]).expect("valid"),
        )
        .expect("added");
        let mut index = b.build().expect("built");
        index
            .set_vocabulary(Vocabulary::from_terms(["a.b", "c"]).expect("unique"))
            .expect("covers");
        let dir = tempfile::tempdir().expect("tempdir");
        let queries = [WeightedQuery {
            id: "q".into(),
            query: Query::new([(0, 1.0), (1, 0.004)]).expect("valid"),
        }];
        let options = OpenSearchOptions {
            doc_quantizer: Some(Quantizer::new(10.0).expect("valid")),
            query_quantizer: Some(Quantizer::new(100.0).expect("valid")),
            ..Default::default()
        };
        let s = write_opensearch(&index, &crate::DotProduct, &queries, &options, dir.path())
            .expect("written");
        assert_eq!((s.documents, s.postings, s.queries), (1, 2, 1));
        let msearch =
            std::fs::read_to_string(dir.path().join("queries.msearch.ndjson")).expect("read");
        let body: Value =
            serde_json::from_str(msearch.lines().nth(1).expect("body")).expect("json");
        // 0.004 × 100 rounds to 0: only one clause.
        assert_eq!(
            body["query"]["bool"]["should"],
            json!([{"rank_feature": {"field": "latent_terms.a%2Eb", "boost": 100, "linear": {}}}])
        );
        let bulk = std::fs::read_to_string(dir.path().join("bulk.ndjson")).expect("read");
        assert!(
            bulk.contains("{\"latent_terms\":{\"a%2Eb\":20,\"c\":10}}"),
            "{bulk}"
        );
        let mapping: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("mapping.json")).expect("read"),
        )
        .expect("json");
        assert_eq!(
            mapping["mappings"]["properties"]["latent_terms"]["type"],
            "rank_features"
        );
    }
}
