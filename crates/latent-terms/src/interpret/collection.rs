//! A `latent-terms run` report reopened for the interpretability views: its dataset,
//! embeddings, SAE, latent-term index and chosen scorer parameters
//! (`results.json`'s `artifacts` and `params`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use latent_terms_encoders::{Embeddings, EmbeddingsStore};
use latent_terms_eval::Qrels;
use latent_terms_eval::beir::{BeirDataset, Document};
use latent_terms_sae::{EncodeOptions, SaeEncoder, SparseCode};
use latent_terms_sparse_index::{
    Bm25, Bm25Params, ClSr, ClSrParams, DotProduct, Index, Query, Scorer,
};

use super::describe::KeywordDescriber;
use crate::error::{Error, Result};
use crate::pipeline::{Report, code_to_query};

/// Which latent-term scorer to explain or search with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScorerKind {
    /// CL-SR with the report's parameters.
    ClSr,
    /// BM25 over latents (lt-bm25) with the report's parameters.
    Bm25,
    /// The latent dot product.
    Dot,
}

impl ScorerKind {
    /// The method name used in reports (`clsr`, `lt-bm25`, `clsr-dot`).
    pub fn name(self) -> &'static str {
        match self {
            ScorerKind::ClSr => "clsr",
            ScorerKind::Bm25 => "lt-bm25",
            ScorerKind::Dot => "clsr-dot",
        }
    }
}

impl FromStr for ScorerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "clsr" => Ok(ScorerKind::ClSr),
            "bm25" | "lt-bm25" => Ok(ScorerKind::Bm25),
            "dot" | "clsr-dot" => Ok(ScorerKind::Dot),
            _ => Err(Error::Invalid(format!(
                "scorer {s:?}: expected clsr, bm25 or dot"
            ))),
        }
    }
}

/// Everything a report's interpretability views need, loaded.
pub struct Collection {
    /// The report.
    pub report: Report,
    /// The latent-term index (documents at the report's `doc_k`).
    pub index: Index,
    /// The SAE.
    pub sae: SaeEncoder,
    /// Corpus embeddings.
    pub corpus: Embeddings,
    /// Query embeddings.
    pub queries: Embeddings,
    /// Corpus documents by id.
    pub docs: HashMap<String, Document>,
    /// Query texts by id.
    pub query_text: BTreeMap<String, String>,
    /// The test qrels the report evaluated on.
    pub qrels: Qrels,
    query_row: HashMap<String, usize>,
}

impl Collection {
    /// Opens `DIR/results.json` and what its `artifacts` point at.
    pub fn open(report_dir: &Path) -> Result<Self> {
        let report = Report::load(&report_dir.join("results.json"))?;
        let a = &report.artifacts;
        if a.latent_index.is_empty() || a.sae.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: the report has no artifacts section; re-run `latent-terms run`",
                report_dir.display()
            )));
        }
        let dataset = BeirDataset::open(&a.dataset)?;
        let mut docs = HashMap::new();
        for d in dataset.corpus()? {
            let d = d?;
            docs.insert(d.id.clone(), d);
        }
        let query_text = dataset
            .queries()?
            .into_iter()
            .map(|q| (q.id, q.text))
            .collect();
        let qrels = dataset.qrels(&report.config.test_split)?;
        let queries = EmbeddingsStore::open(&a.query_embeddings)?.load()?;
        let query_row = queries
            .ids()
            .iter()
            .enumerate()
            .map(|(i, q)| (q.clone(), i))
            .collect();
        Ok(Collection {
            index: Index::open(&a.latent_index)?,
            sae: SaeEncoder::load(&a.sae)?,
            corpus: EmbeddingsStore::open(&a.corpus_embeddings)?.load()?,
            queries,
            docs,
            query_text,
            qrels,
            query_row,
            report,
        })
    }

    /// A query's dense embedding.
    pub fn query_embedding(&self, qid: &str) -> Result<&[f32]> {
        let &row = self
            .query_row
            .get(qid)
            .ok_or_else(|| Error::Invalid(format!("query {qid:?} has no embedding")))?;
        let dim = self.queries.dim();
        Ok(&self.queries.data()[row * dim..(row + 1) * dim])
    }

    /// A query's SAE code at the report's `query_k`.
    pub fn query_code(&self, qid: &str) -> Result<SparseCode> {
        let k = self.report.params.query_k;
        self.sae
            .encode(self.query_embedding(qid)?, &EncodeOptions::top_k(k))?
            .pop()
            .ok_or_else(|| Error::Invalid("the SAE returned no code".into()))
    }

    /// A query as the latent-term query the report searched with.
    pub fn query(&self, qid: &str) -> Result<Query> {
        code_to_query(&self.query_code(qid)?, None)
    }

    /// A scorer with the report's parameters.
    pub fn scorer(&self, kind: ScorerKind) -> Result<Box<dyn Scorer>> {
        let p = &self.report.params;
        Ok(match kind {
            ScorerKind::ClSr => Box::new(ClSr::new(ClSrParams {
                k1: p.clsr.0,
                b: p.clsr.1,
                k2: p.clsr.2,
                ..Default::default()
            })?),
            ScorerKind::Bm25 => Box::new(Bm25::new(Bm25Params {
                k1: p.lt_bm25.0,
                b: p.lt_bm25.1,
                ..Default::default()
            })?),
            ScorerKind::Dot => Box::new(DotProduct),
        })
    }

    /// A document's title (or its opening words when it has none).
    pub fn title(&self, doc: &str) -> String {
        self.docs.get(doc).map_or_else(String::new, doc_title)
    }

    /// Titles of every document.
    pub fn titles(&self) -> HashMap<String, String> {
        self.docs
            .iter()
            .map(|(id, d)| (id.clone(), doc_title(d)))
            .collect()
    }

    /// The keyword describer over this corpus.
    pub fn keyword_describer(&self) -> KeywordDescriber {
        KeywordDescriber::new(self.docs.values().map(|d| (d.id.clone(), d.full_text())))
    }
}

/// A document's title, or its first 80 characters.
pub fn doc_title(d: &Document) -> String {
    if d.title.trim().is_empty() {
        super::snippet(&d.text, 80)
    } else {
        d.title.clone()
    }
}
