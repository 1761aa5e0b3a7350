//! The evaluation stage: every row's measures and the report's analyses.

use std::collections::BTreeMap;

use latent_terms_eval::{Run, stats};
use latent_terms_sparse_index::{Analyzer, Bm25, Query};

use super::pooled::PooledOutcome;
use super::report::{Artifacts, ChosenParams, Latency, MethodRow, Report};
use super::stages::{Context, LexicalStage};
use super::tokens::{TokenOutcome, average_len};
use super::{evaluate_row, lt_bm25, mismatch_sets, zipf_report};
use crate::error::Result;

/// Stage: every row evaluated, and the analyses (Zipf, mismatch sets, efficiency).
pub(crate) fn evaluate_stage(
    ctx: &Context<'_>,
    docs: usize,
    runs: &[(String, Run)],
    dense_run: &Run,
    lexical: &LexicalStage,
    pooled: Option<&PooledOutcome>,
    tokens: Option<&TokenOutcome>,
) -> Result<Report> {
    let rows: Vec<MethodRow> = runs
        .iter()
        .map(|(m, r)| evaluate_row(m, &ctx.test_qrels, r))
        .collect();
    let lexical_stats = lexical.index.index().statistics()?;
    let analyzer = Analyzer::english();
    let lexical_queries: Vec<Query> = match lexical.index.index().vocabulary() {
        Some(v) => ctx
            .test_text
            .iter()
            .map(|q| v.query(&analyzer, &q.text))
            .collect(),
        None => Vec::new(),
    };
    let lexical_flops = lexical.index.index().flops(&lexical_queries)?;
    let lexical_latency = Latency::measure_searcher(
        lexical.index.index(),
        &ctx.test_ids
            .iter()
            .cloned()
            .zip(lexical_queries.iter().cloned())
            .collect::<Vec<_>>(),
        &Bm25::default(),
    )?;
    // The Zipf plot compares the lexical vocabulary with the latent one that ran (the
    // pooled one when both did).
    let latent_stats = match (pooled, tokens) {
        (Some(p), _) => Some(p.stats.clone()),
        (None, Some(t)) => Some(t.stats.clone()),
        (None, None) => None,
    };
    let zipf = zipf_report(
        &lexical_stats,
        latent_stats.as_ref().unwrap_or(&lexical_stats),
        Some(&ctx.inputs.out.join("zipf.png")),
    )?;
    let named: Vec<(String, &Run)> = runs.iter().map(|(m, r)| (m.clone(), r)).collect();
    let mismatch = mismatch_sets(&ctx.test_qrels, &lexical.test_run, &named, &[1000, 100, 10]);
    let recon = runs.iter().find(|r| r.0 == "dense-reconstructed");
    let spearman = match recon {
        Some((_, r)) => stats::spearman(dense_run, r, 100).map(|m| m.mean),
        None => None,
    };
    let mut report = Report {
        dataset: ctx.name.clone(),
        docs,
        queries: ctx.test_ids.len(),
        rows,
        nmse: f64::NAN,
        training_nmse: f64::NAN,
        validation_nmse: None,
        dead_fraction: f64::NAN,
        spearman_dense_vs_reconstructed: spearman,
        avg_latents_per_doc: 0.0,
        avg_latents_per_query: 0.0,
        flops: 0.0,
        lexical_flops,
        index_bytes: 0,
        lexical_index_bytes: lexical_stats.index_size_bytes,
        latents_used: 0,
        d_sae: 0,
        sae_kind: String::new(),
        sae_k: 0,
        stage_seconds: BTreeMap::new(),
        cached_stages: Vec::new(),
        sae_training_corpus: String::new(),
        sae_training_rows: 0,
        params: ChosenParams::not_run(),
        zipf,
        mismatch,
        config: ctx.config.clone(),
        cache_keys: BTreeMap::new(),
        artifacts: Artifacts::default(),
        tokens: tokens.map(|t| t.report.clone()),
        lexical_latency,
        pooled_latency: None,
    };
    if let Some(p) = pooled {
        let query_vectors: Vec<Query> = p.test_queries.iter().map(|q| q.1.clone()).collect();
        report.nmse = p.nmse;
        report.training_nmse = p.summary.training_nmse;
        report.validation_nmse = p.summary.validation_nmse;
        report.dead_fraction = p.summary.dead_fraction;
        report.avg_latents_per_doc = p.stats.avg_terms_per_doc;
        report.avg_latents_per_query = average_len(&query_vectors);
        report.flops = p.index.index().flops(&query_vectors)?;
        report.index_bytes = p.stats.index_size_bytes;
        report.latents_used = p.stats.vocabulary_used;
        report.d_sae = p.d_sae;
        report.sae_kind = p.sae_kind.clone();
        report.sae_k = p.sae_k;
        report.sae_training_corpus = p.summary.corpus.clone();
        report.sae_training_rows = p.summary.rows;
        report.params = p.params.clone();
        report.pooled_latency = Some(Latency::measure_searcher(
            p.index.index(),
            &p.test_queries,
            &lt_bm25(p.params.lt_bm25.0, p.params.lt_bm25.1)?,
        )?);
    }
    Ok(report)
}
