//! Lexical BM25 over a BEIR dataset: the baseline row of every table.

use latent_terms_eval::Run;
use latent_terms_eval::beir::{BeirDataset, Document, Query};
use latent_terms_sparse_index::{
    Analyzer, Index, IndexBuilder, IndexConfig, Scorer, SearchOptions, Vocabulary,
};

use crate::error::{Error, Result};

/// An inverted index over analysed words of `title + " " + text`, with the
/// analyzer that made it (Unicode words, lowercase, Lucene's English
/// stopwords, Snowball stemming).
///
/// ```
/// use latent_terms::eval::beir::Document;
/// use latent_terms::lexical::LexicalIndex;
/// use latent_terms::sparse_index::Bm25;
///
/// let docs = [
///     Document { id: "a".into(), title: "Otters".into(), text: "River otters swim.".into() },
///     Document { id: "b".into(), title: "Tapirs".into(), text: "Tapirs browse leaves.".into() },
/// ];
/// let index = LexicalIndex::from_documents(docs.into_iter().map(Ok))?;
/// let hits = index.search("who swims in rivers?", &Bm25::default(), 10)?;
/// assert_eq!(hits[0].0, "a");
/// # Ok::<(), latent_terms::Error>(())
/// ```
pub struct LexicalIndex {
    index: Index,
    analyzer: Analyzer,
}

impl LexicalIndex {
    /// Indexes every document of a BEIR dataset's corpus.
    pub fn build(dataset: &BeirDataset) -> Result<Self> {
        Self::from_documents(dataset.corpus()?)
    }

    /// Indexes documents with the English analyzer.
    pub fn from_documents(
        docs: impl IntoIterator<Item = latent_terms_eval::Result<Document>>,
    ) -> Result<Self> {
        let analyzer = Analyzer::english();
        let mut vocabulary = Vocabulary::new();
        let mut builder = IndexBuilder::new(IndexConfig::lexical())?;
        for doc in docs {
            let doc = doc?;
            let vector = vocabulary.add_document(&analyzer, &doc.full_text())?;
            builder.add(doc.id, &vector)?;
        }
        let mut index = builder.build()?;
        if index.num_docs() == 0 {
            return Err(Error::Invalid(
                "the corpus holds no documents: there is nothing to index".into(),
            ));
        }
        index.set_vocabulary(vocabulary)?;
        Ok(LexicalIndex { index, analyzer })
    }

    /// Wraps an index saved earlier (it must carry its vocabulary).
    pub fn from_index(index: Index) -> Self {
        LexicalIndex {
            index,
            analyzer: Analyzer::english(),
        }
    }

    /// The underlying index (statistics, saving, explain).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The top `k` documents for a text query: `(external id, score)`.
    pub fn search<S: Scorer + ?Sized>(
        &self,
        text: &str,
        scorer: &S,
        k: usize,
    ) -> Result<Vec<(String, f32)>> {
        let Some(vocabulary) = self.index.vocabulary() else {
            return Ok(Vec::new());
        };
        let query = vocabulary.query(&self.analyzer, text);
        let hits = self
            .index
            .search(&query, scorer, k, &SearchOptions::default())?;
        Ok(crate::lexical::named_hits(&self.index, hits))
    }

    /// Searches every query and collects a TREC run tagged `tag`: the hits of
    /// [`search`](Self::search), through a [`Searcher`](latent_terms_sparse_index::Searcher)
    /// prepared once for `scorer` (its exact pass over precomputed document factors is
    /// the fastest path for short queries, docs/benchmarks.md).
    pub fn run<S: Scorer + ?Sized>(
        &self,
        queries: &[Query],
        scorer: &S,
        k: usize,
        tag: &str,
    ) -> Result<Run> {
        let mut run = Run::new(tag);
        let Some(vocabulary) = self.index.vocabulary() else {
            return Ok(run);
        };
        let searcher = self.index.searcher(scorer)?;
        let options = SearchOptions::default();
        for q in queries {
            let query = vocabulary.query(&self.analyzer, &q.text);
            let hits = named_hits(&self.index, searcher.search(&query, k, &options)?);
            run.extend_query(&q.id, hits.iter().map(|(d, s)| (d.as_str(), f64::from(*s))))?;
        }
        Ok(run)
    }
}

/// Search hits as `(external id, score)`, dropping any without an id.
pub(crate) fn named_hits(
    index: &Index,
    hits: Vec<latent_terms_sparse_index::Hit>,
) -> Vec<(String, f32)> {
    hits.into_iter()
        .filter_map(|h| index.external_id(h.doc).map(|id| (id.to_owned(), h.score)))
        .collect()
}
