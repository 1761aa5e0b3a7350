//! Dense retrieval with the backbone encoder: the "dense" row of every table.

use latent_terms_encoders::{EmbeddingsStore, Metric, SearchOptions, search_store};
use latent_terms_eval::Run;

use crate::error::{Error, Result};

/// Exact top-`k` of every query embedding in `queries` over the document
/// embeddings in `corpus`, by `metric`, as a TREC run tagged `tag`. Both
/// stores must come from the same model, pooling and normalisation.
///
/// ```no_run
/// use latent_terms::dense::dense_run;
/// use latent_terms::encoders::{EmbeddingsStore, Metric};
///
/// let corpus = EmbeddingsStore::open("scifact.corpus.safetensors")?;
/// let queries = EmbeddingsStore::open("scifact.queries.safetensors")?;
/// let run = dense_run(&queries, &corpus, 1000, Metric::Dot, "dense")?;
/// run.save("scifact-dense.run", None)?;
/// # Ok::<(), latent_terms::Error>(())
/// ```
pub fn dense_run(
    queries: &EmbeddingsStore,
    corpus: &EmbeddingsStore,
    k: usize,
    metric: Metric,
    tag: &str,
) -> Result<Run> {
    corpus.check_queries(queries)?;
    for (store, what) in [(corpus, "documents"), (queries, "queries")] {
        if store.rows() == 0 {
            return Err(Error::Invalid(format!(
                "{} holds no rows: there are no {what} to search; encode the collection again",
                store.path().display()
            )));
        }
    }
    let queries = queries.load()?;
    let hits = search_store(&queries, corpus, &SearchOptions::top(k).metric(metric))?;
    let mut run = Run::new(tag);
    for (qid, hits) in queries.ids().iter().zip(&hits) {
        run.extend_query(qid, hits.iter().map(|(d, s)| (d.as_str(), f64::from(*s))))?;
    }
    Ok(run)
}
