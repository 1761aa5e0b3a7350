//! Stage 4: the token index searched with BM25 and CL-SR, and fused with lexical BM25.

use crate::pipeline::hybrids;
use latent_terms_eval::Run;
use latent_terms_sparse_index::{Query, Scorer};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::latent_index::LatentIndex;
use crate::pipeline::report::Latency;
use crate::pipeline::{
    Progress, best_linear_weight, best_of, clsr, clsr_grid, lt_bm25, ndcg10, pairs,
};

/// Scorer parameters of the token rows and where they came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenParams {
    /// BM25 `(k1, b)` of `lt-tokens-bm25`.
    pub bm25: (f32, f32),
    /// CL-SR `(k1, b, k2)` of `lt-tokens-clsr`.
    pub clsr: (f32, f32, f32),
    /// Latent weight of `hybrid-tokens-linear`.
    pub linear_weight: f64,
    /// "tuned on qrels/train.tsv (N queries)" or "config defaults".
    pub source: String,
    /// nDCG@10 of the chosen BM25 and CL-SR on the tuning split (`None`: not tuned).
    #[serde(default)]
    pub tuned_ndcg10: Option<(f64, f64)>,
}

impl TokenParams {
    /// The mean tuning-split nDCG@10 of the two token scorers, by which SAE draws are
    /// compared (`None`: not tuned).
    pub fn tuned_mean(&self) -> Option<f64> {
        self.tuned_ndcg10.map(|(bm25, clsr)| (bm25 + clsr) / 2.0)
    }
}

/// A tuning split: its name, qrels, queries and lexical BM25's run on them.
pub(crate) struct Tuning<'a> {
    pub(crate) split: &'a str,
    pub(crate) qrels: &'a latent_terms_eval::Qrels,
    pub(crate) queries: &'a [(String, Query)],
    pub(crate) lexical: &'a Run,
}

/// The token rows' inputs: the index, the queries and lexical BM25's runs.
pub(crate) struct SearchInputs<'a> {
    pub(crate) index: &'a LatentIndex,
    pub(crate) test: &'a [(String, Query)],
    pub(crate) lexical_test: &'a Run,
    /// Tuning split: qrels, queries, lexical BM25's run on them.
    pub(crate) tuning: Option<Tuning<'a>>,
}

/// Stage 4 (parameters): BM25 and CL-SR of the token index, and the linear hybrid's
/// weight, chosen on the tuning split when there is one (never on the test qrels).
pub(crate) fn choose_params(
    s: &SearchInputs<'_>,
    config: &PipelineConfig,
    progress: &dyn Progress,
) -> Result<TokenParams> {
    let t = &config.tokens;
    let Some(Tuning {
        split,
        qrels,
        queries,
        lexical,
    }) = s.tuning
    else {
        return Ok(TokenParams {
            bm25: (t.bm25_k1, t.bm25_b),
            clsr: t.clsr,
            linear_weight: t.linear_weight,
            source: "config defaults (no training split to tune on)".into(),
            tuned_ndcg10: None,
        });
    };
    let g = &config.tuning;
    let depth = config.depth;
    let score = |scorer: &dyn Scorer| -> Result<f64> {
        Ok(ndcg10(qrels, &s.index.run(queries, scorer, depth, "tune")?))
    };
    let total = t.tune_bm25_k1.len() * t.tune_bm25_b.len()
        + g.clsr_k1.len() * g.clsr_b.len() * g.clsr_k2.len()
        + g.linear_weight.len();
    progress.begin("tuning token scorers", Some(total as u64));
    let bm25 = best_of(
        pairs(&t.tune_bm25_k1, &t.tune_bm25_b),
        (t.bm25_k1, t.bm25_b),
        progress,
        |(k1, b)| score(&lt_bm25(k1, b)?),
    )?;
    let best_clsr = best_of(clsr_grid(g), t.clsr, progress, |(k1, b, k2)| {
        score(&clsr(k1, b, k2)?)
    })?;
    let latent = s
        .index
        .run(queries, &lt_bm25(bm25.1.0, bm25.1.1)?, depth, "lt")?;
    let best_w = best_linear_weight(
        qrels,
        lexical,
        &latent,
        &g.linear_weight,
        t.linear_weight,
        depth,
        progress,
    )?;
    progress.end();
    progress.note(&format!(
        "token scorers tuned on qrels/{split}.tsv: BM25 {:?} {:.4}; CL-SR {:?} {:.4}; linear weight {} {:.4}",
        bm25.1, bm25.0, best_clsr.1, best_clsr.0, best_w.1, best_w.0
    ));
    Ok(TokenParams {
        bm25: bm25.1,
        clsr: best_clsr.1,
        linear_weight: best_w.1,
        source: format!(
            "tuned on qrels/{split}.tsv ({} queries, nDCG@10)",
            queries.len()
        ),
        tuned_ndcg10: Some((bm25.0, best_clsr.0)),
    })
}

/// Stage 4 (runs): `lt-tokens-bm25`, `lt-tokens-clsr`, `hybrid-tokens-rrf`,
/// `hybrid-tokens-linear`, with the exact top-10 and top-1000 latency of BM25.
pub(crate) fn runs(
    s: &SearchInputs<'_>,
    params: &TokenParams,
    config: &PipelineConfig,
) -> Result<(Vec<(String, Run)>, Latency)> {
    let depth = config.depth;
    let bm25 = lt_bm25(params.bm25.0, params.bm25.1)?;
    let (c1, cb, c2) = params.clsr;
    let tokens_bm25 = s.index.run(s.test, &bm25, depth, "lt-tokens-bm25")?;
    let tokens_clsr = s
        .index
        .run(s.test, &clsr(c1, cb, c2)?, depth, "lt-tokens-clsr")?;
    let (rrf, linear) = hybrids(
        s.lexical_test,
        &tokens_bm25,
        config.scoring.rrf_k,
        params.linear_weight,
        depth,
        ("hybrid-tokens-rrf", "hybrid-tokens-linear"),
    )?;
    let latency = Latency::measure_searcher(s.index.index(), s.test, &bm25)?;
    Ok((
        vec![
            ("lt-tokens-bm25".into(), tokens_bm25),
            ("lt-tokens-clsr".into(), tokens_clsr),
            ("hybrid-tokens-rrf".into(), rrf),
            ("hybrid-tokens-linear".into(), linear),
        ],
        latency,
    ))
}
