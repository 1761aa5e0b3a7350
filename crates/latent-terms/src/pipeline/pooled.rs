//! The `pooled` representation: one SAE code per pooled document embedding (optionally
//! max-pooled with its word windows' codes) and per query embedding.
//!
//! Stages: train the SAE on the embeddings → encode latents → tune on a training split
//! → index → search (lt-bm25, CL-SR, dot, dense over reconstructions, hybrids).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::pipeline::hybrids;
use latent_terms_encoders::{Embeddings, EmbeddingsStore};
use latent_terms_eval::Qrels;
use latent_terms_eval::Run;
use latent_terms_sae::{EncodeOptions, SaeEncoder, SaeWeights, SparseCode};
use latent_terms_sparse_index::{DotProduct, Index, IndexStats, Query, Scorer};

use super::report::ChosenParams;
use super::stages::{Context, DenseStage, LexicalStage, dense_run_rows, gather};
use super::training::{CachedSae, SaeRows, SaeSummary, dense_neighbour_pairs, given_sae_summary};
use super::{
    ActivationRule, CacheEntry, CacheKey, Clock, PipelineConfig, Progress, best_linear_weight,
    best_of, cached_run, clsr, clsr_grid, lt_bm25, max_pool, ndcg10, pairs, strongest,
    window_owner, write_atomic,
};
use crate::error::{Error, Result};
use crate::pipeline::latent_index::{LatentIndex, code_to_query};

/// Rows encoded into latents at a time.
const SAE_CHUNK: usize = 512;

/// What the pooled representation adds to a report.
pub(crate) struct PooledOutcome {
    /// `dense-reconstructed`, `lt-bm25`, `clsr`, `clsr-dot`, `hybrid-rrf`, `hybrid-linear`.
    pub(crate) runs: Vec<(String, Run)>,
    pub(crate) nmse: f64,
    pub(crate) summary: SaeSummary,
    pub(crate) d_sae: usize,
    /// The SAE's own kind and training k (a given SAE's, not the config's).
    pub(crate) sae_kind: String,
    pub(crate) sae_k: usize,
    pub(crate) params: ChosenParams,
    pub(crate) index: LatentIndex,
    pub(crate) stats: IndexStats,
    pub(crate) test_queries: Vec<(String, Query)>,
    pub(crate) sae_path: PathBuf,
    pub(crate) index_path: PathBuf,
}

/// Runs every stage of the pooled representation.
pub(crate) fn run(
    ctx: &Context<'_>,
    dense: &DenseStage,
    lexical: &LexicalStage,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<PooledOutcome> {
    let (config, cache) = (ctx.config, &ctx.inputs.cache);
    let corpus = &dense.corpus;
    let dim = corpus.dim();

    // SAE.
    let given = ctx.inputs.sae.as_ref();
    let sae_key = match given {
        Some(path) => CacheKey::new("sae-given").file(path)?.finish(),
        None => {
            let mut key = CacheKey::new("sae")
                .key(&dense.key)
                .str(&serde_json::to_string(&config.sae).unwrap_or_default())
                .num(u64::from(config.train_on_queries));
            if let Some(w) = clock.keys.get("windows") {
                key = key.key(w);
            }
            for p in &config.extra_training_stores {
                key = key.file(p)?;
            }
            key.finish()
        }
    };
    clock.keys.insert("sae".into(), sae_key.clone());
    let entry = CachedSae::new(cache, &format!("sae-{sae_key}"), &sae_key);
    let sae_path = given.cloned().unwrap_or_else(|| entry.weights.clone());
    let (weights, summary) = clock.time("sae_train", |stage| {
        if let Some(given) = given {
            stage.cached = true;
            return Ok((SaeWeights::load(given)?, given_sae_summary(given)));
        }
        if let Some(hit) = entry.load(stage)? {
            stage.cached = true;
            return Ok(hit);
        }
        let mut rows: Vec<f32> = corpus.data().to_vec();
        let mut parts = vec![format!("{} corpus ({} passages)", ctx.name, corpus.rows())];
        // Row ranges of query texts, which the KLD trainer pairs with their dense neighbours.
        let mut query_rows = Vec::new();
        let here = |rows: &Vec<f32>| rows.len() / dim.max(1);
        if config.train_on_queries {
            let start = here(&rows);
            rows.extend_from_slice(dense.queries.data());
            query_rows.push(start..here(&rows));
            parts.push(format!(
                "{} queries ({}, all splits, text only)",
                ctx.name,
                dense.queries.rows()
            ));
        }
        let mut extra = |path: &PathBuf, label: String, queries: bool| -> Result<()> {
            let store = EmbeddingsStore::open(path)?;
            dense.store.check(store.metadata())?;
            let start = here(&rows);
            rows.extend_from_slice(store.load()?.data());
            if queries {
                query_rows.push(start..here(&rows));
            }
            parts.push(format!("{label} ({} rows)", store.rows()));
            Ok(())
        };
        if let Some(path) = &dense.windows {
            extra(path, format!("{} passage windows", ctx.name), false)?;
        }
        for p in &config.extra_training_stores {
            extra(p, p.display().to_string(), true)?;
        }
        let n = rows.len() / dim.max(1);
        progress.note(&format!(
            "training the SAE on {n} rows: {}",
            parts.join(" + ")
        ));
        let pairs = if config.sae.kind == "kld" {
            let k = config.sae.kld.clone().unwrap_or_default().neighbours;
            let pairs = dense_neighbour_pairs(&rows, dim, 0..corpus.rows(), &query_rows, k)?;
            progress.note(&format!(
                "KLD pairs: {} query rows, each with its {k} nearest passages by dense dot product",
                pairs.len()
            ));
            parts.push(format!(
                "KLD pairs: {} rows × {k} dense neighbours",
                pairs.len()
            ));
            pairs
        } else {
            Vec::new()
        };
        entry.train(
            SaeRows::Memory { rows: &rows, pairs },
            dim,
            &config.sae,
            false,
            parts.join(" + "),
            progress,
        )
    })?;
    let d_sae = weights.config.d_sae;
    let (sae_kind, sae_k) = (weights.config.kind.as_str().to_owned(), weights.config.k);
    let rule = config.inference.rule;
    if rule == ActivationRule::Threshold && weights.config.threshold.is_none() {
        return Err(Error::Invalid(format!(
            "inference.rule \"threshold\" needs an SAE with a stored threshold (a batchtopk \
             SAE); this one is {sae_kind}: set sae.kind to \"batchtopk\" or the rule to \"topk\""
        )));
    }
    let sae = SaeEncoder::new(weights)?;

    // Latent codes.
    let (max_dk, max_qk) = config.max_inference_k();
    let (max_dk, max_qk) = (max_dk.min(d_sae), max_qk.min(d_sae));
    let tune_ids: Vec<String> = ctx.tuning.as_ref().map(|t| t.2.clone()).unwrap_or_default();
    let test_rows = gather(&dense.queries, &dense.query_row, &ctx.test_ids)?;
    let tune_rows = gather(&dense.queries, &dense.query_row, &tune_ids)?;
    let (doc_codes, test_codes, tune_codes, recon_docs, recon_queries) =
        clock.time("sae_encode", |_| {
            let n = corpus.rows() * 2 + ctx.test_ids.len() * 2 + tune_ids.len();
            progress.begin("encoding latents", Some(n as u64));
            let doc_codes = encode_latents(&sae, corpus.data(), Some(max_dk), rule, progress)?;
            let test_codes = encode_latents(&sae, &test_rows, Some(max_qk), rule, progress)?;
            let tune_codes = encode_latents(&sae, &tune_rows, Some(max_qk), rule, progress)?;
            // Reconstructions with the SAE's own k (top-k) or its threshold, uncapped.
            let recon = |rows: &[f32]| -> Result<Vec<f32>> {
                Ok(sae.decode(&encode_latents(&sae, rows, None, rule, progress)?))
            };
            let (recon_docs, recon_queries) = (recon(corpus.data())?, recon(&test_rows)?);
            progress.end();
            Ok((doc_codes, test_codes, tune_codes, recon_docs, recon_queries))
        })?;
    let corpus_nmse = nmse(corpus.data(), &recon_docs, dim);
    let doc_ids = corpus.ids().to_vec();

    // Window-level document codes, max-pooled into the whole-text codes.
    let doc_codes = if let Some(path) = &dense.windows {
        let c = &config.chunking;
        clock.time("sae_encode_windows", |_| {
            let store = EmbeddingsStore::open(path)?;
            dense.store.check(store.metadata())?;
            let windows = store.load()?;
            progress.begin("encoding window latents", Some(windows.rows() as u64));
            let window_k = Some(c.window_k.min(d_sae));
            let codes = encode_latents(&sae, windows.data(), window_k, rule, progress)?;
            progress.end();
            let mut by_doc: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, id) in windows.ids().iter().enumerate() {
                by_doc.entry(window_owner(id)).or_default().push(i);
            }
            Ok(doc_codes
                .iter()
                .zip(&doc_ids)
                .map(|(whole, id)| {
                    let parts = by_doc.get(id.as_str()).map_or(&[][..], Vec::as_slice);
                    // The whole text counts as one more window (its top window_k), so
                    // its long tail of weak latents does not crowd out the windows'.
                    let whole = strongest(whole, c.window_k);
                    max_pool(std::iter::once(&whole).chain(parts.iter().map(|&i| &codes[i])))
                })
                .collect::<Vec<_>>())
        })?
    } else {
        doc_codes
    };

    // Tuning.
    let runs_key = CacheKey::new("runs")
        .key(&sae_key)
        .key(&lexical.key)
        .dir(&ctx.dataset.root().join("qrels"))?
        .str(&serde_json::to_string(&pooled_settings(config)).unwrap_or_default())
        .finish();
    clock.keys.insert("runs".into(), runs_key.clone());
    let runs_dir = cache.join(format!("runs-{runs_key}"));
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    let params_path = runs_dir.join("params.json");
    let params_entry = CacheEntry::new(&runs_key, [params_path.clone()]);
    let params = clock.time("tune", |stage| {
        if stage.lookup(&params_entry)
            && let Ok(text) = std::fs::read_to_string(&params_path)
            && let Ok(p) = serde_json::from_str::<ChosenParams>(&text)
        {
            stage.cached = true;
            return Ok(p);
        }
        let s = &config.scoring;
        let params = match (&ctx.tuning, &lexical.tune_run) {
            (Some((split, qrels, ids)), Some(bm25_tune)) => {
                let mut tuned_config = config.clone();
                tuned_config.tuning.doc_k.retain(|&k| k <= max_dk);
                tuned_config.tuning.query_k.retain(|&k| k <= max_qk);
                let t = TuneInputs {
                    qrels,
                    ids,
                    doc_ids: &doc_ids,
                    doc_codes: &doc_codes,
                    query_codes: &tune_codes,
                    lexical: bm25_tune,
                    depth: config.depth,
                };
                tune(&t, &tuned_config, split, progress)?
            }
            _ => ChosenParams {
                doc_k: config.inference.doc_k.min(d_sae),
                query_k: config.inference.query_k.min(d_sae),
                clsr: (s.clsr_k1, s.clsr_b, s.clsr_k2),
                lt_bm25: (s.lt_bm25_k1, s.lt_bm25_b),
                hybrid_latent: s.hybrid_latent.clone(),
                linear_weight: s.linear_weight,
                source: if config.tuning.enabled {
                    "config defaults: the dataset has no training/dev split to tune on, and the test qrels are never used for tuning".into()
                } else {
                    "config defaults (tuning turned off)".into()
                },
            },
        };
        write_atomic(
            &params_path,
            serde_json::to_string_pretty(&params)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        params_entry.seal()?;
        Ok(params)
    })?;

    // Index and runs.
    let index_path = runs_dir.join("latent.idx");
    let index_entry = CacheEntry::new(&runs_key, [index_path.clone()]);
    let index = clock.time("latent_index", |stage| {
        if stage.lookup(&index_entry) {
            stage.cached = true;
            return Ok(LatentIndex::from_index(Index::open(&index_path)?));
        }
        let index = LatentIndex::build(&doc_ids, &doc_codes, Some(params.doc_k))?;
        index.index().save(&index_path)?;
        index_entry.seal()?;
        Ok(index)
    })?;
    let test_queries = queries_at(&ctx.test_ids, &test_codes, params.query_k)?;
    let depth = config.depth;
    let methods = ["dense-reconstructed", "lt-bm25", "clsr", "clsr-dot"];
    let mut runs: Vec<(String, Run)> = Vec::new();
    clock.time("search", |stage| {
        let mut all_cached = true;
        progress.begin("searching", Some(methods.len() as u64));
        for m in methods {
            let run = cached_run(
                &runs_dir.join(format!("{m}.run")),
                &runs_key,
                stage,
                || match m {
                    "dense-reconstructed" => {
                        let docs = Embeddings::new(doc_ids.clone(), dim, recon_docs.clone())?;
                        dense_run_rows(&ctx.test_ids, recon_queries.clone(), &docs, depth, m)
                    }
                    "lt-bm25" => index.run(
                        &test_queries,
                        &lt_bm25(params.lt_bm25.0, params.lt_bm25.1)?,
                        depth,
                        m,
                    ),
                    "clsr" => index.run(
                        &test_queries,
                        &clsr(params.clsr.0, params.clsr.1, params.clsr.2)?,
                        depth,
                        m,
                    ),
                    _ => index.run(&test_queries, &DotProduct, depth, m),
                },
            )?;
            all_cached &= stage.cached;
            runs.push((m.to_owned(), run));
            progress.advance(1);
        }
        progress.end();
        stage.cached = all_cached;
        Ok(())
    })?;
    let best = runs
        .iter()
        .find(|r| r.0 == params.hybrid_latent)
        .map(|r| r.1.clone())
        .ok_or_else(|| Error::Invalid("no hybrid latent run".into()))?;
    let (rrf, linear) = hybrids(
        &lexical.test_run,
        &best,
        config.scoring.rrf_k,
        params.linear_weight,
        depth,
        ("hybrid-rrf", "hybrid-linear"),
    )?;
    runs.push(("hybrid-rrf".into(), rrf));
    runs.push(("hybrid-linear".into(), linear));
    let stats = index.index().statistics()?;
    Ok(PooledOutcome {
        runs,
        nmse: corpus_nmse,
        summary,
        d_sae,
        sae_kind,
        sae_k,
        params,
        index,
        stats,
        test_queries,
        sae_path,
        index_path,
    })
}

/// The settings the pooled runs depend on (not the token representation's), so a change
/// of token settings does not recompute the pooled runs.
fn pooled_settings(config: &PipelineConfig) -> serde_json::Value {
    serde_json::json!({
        "sae": config.sae,
        "inference": config.inference,
        "chunking": config.chunking,
        "scoring": config.scoring,
        "tuning": config.tuning,
        "train_on_queries": config.train_on_queries,
        "extra_training_stores": config.extra_training_stores,
        "test_split": config.test_split,
        "depth": config.depth,
    })
}

/// Encodes rows into latents in blocks, reporting progress.
/// `k` is the top-k, or the cap under the threshold rule (`None`: no cap).
fn encode_latents(
    sae: &SaeEncoder,
    rows: &[f32],
    k: Option<usize>,
    rule: ActivationRule,
    progress: &dyn Progress,
) -> Result<Vec<SparseCode>> {
    let dim = sae.d_in();
    let options = match rule {
        ActivationRule::TopK => EncodeOptions::top_k(k.unwrap_or(sae.weights().config.k)),
        ActivationRule::Threshold => EncodeOptions::stored_threshold(k),
    };
    let mut codes = Vec::with_capacity(rows.len() / dim.max(1));
    for block in rows.chunks(SAE_CHUNK * dim.max(1)) {
        codes.extend(sae.encode(block, &options)?);
        progress.advance((block.len() / dim.max(1)) as u64);
    }
    Ok(codes)
}

fn nmse(original: &[f32], reconstructed: &[f32], dim: usize) -> f64 {
    let rows = original.len() / dim.max(1);
    if rows == 0 {
        return 0.0;
    }
    let mut mean = vec![0f64; dim];
    for row in original.chunks(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let (mut err, mut spread) = (0f64, 0f64);
    for (i, (&x, &y)) in original.iter().zip(reconstructed).enumerate() {
        err += (f64::from(x) - f64::from(y)).powi(2);
        spread += (f64::from(x) - mean[i % dim]).powi(2);
    }
    if spread > 0.0 { err / spread } else { 0.0 }
}

fn queries_at(ids: &[String], codes: &[SparseCode], k: usize) -> Result<Vec<(String, Query)>> {
    ids.iter()
        .zip(codes)
        .map(|(id, c)| Ok((id.clone(), code_to_query(c, Some(k))?)))
        .collect()
}

/// Everything tuning needs.
struct TuneInputs<'a> {
    qrels: &'a Qrels,
    ids: &'a [String],
    doc_ids: &'a [String],
    doc_codes: &'a [SparseCode],
    query_codes: &'a [SparseCode],
    lexical: &'a Run,
    depth: usize,
}

fn tune(
    t: &TuneInputs<'_>,
    config: &PipelineConfig,
    split: &str,
    progress: &dyn Progress,
) -> Result<ChosenParams> {
    let s = &config.scoring;
    let g = &config.tuning;
    let score = |index: &LatentIndex, qs: &[(String, Query)], scorer: &dyn Scorer| -> Result<f64> {
        Ok(ndcg10(t.qrels, &index.run(qs, scorer, t.depth, "tune")?))
    };
    let doc_ks: Vec<usize> = if g.doc_k.is_empty() {
        vec![config.inference.doc_k]
    } else {
        g.doc_k.clone()
    };
    let query_ks: Vec<usize> = if g.query_k.is_empty() {
        vec![config.inference.query_k]
    } else {
        g.query_k.clone()
    };
    let total = doc_ks.len() * query_ks.len()
        + g.clsr_k1.len() * g.clsr_b.len() * g.clsr_k2.len()
        + g.lt_bm25_k1.len() * g.lt_bm25_b.len()
        + 1
        + g.linear_weight.len();
    progress.begin("tuning", Some(total as u64));
    let base = clsr(s.clsr_k1, s.clsr_b, s.clsr_k2)?;
    let mut best = (f64::NEG_INFINITY, doc_ks[0], query_ks[0]);
    let mut best_index = None;
    for &dk in &doc_ks {
        let index = LatentIndex::build(t.doc_ids, t.doc_codes, Some(dk))?;
        let mut improved = false;
        for &qk in &query_ks {
            let qs = queries_at(t.ids, t.query_codes, qk)?;
            let v = score(&index, &qs, &base)?;
            progress.advance(1);
            if v > best.0 {
                best = (v, dk, qk);
                improved = true;
            }
        }
        if improved {
            best_index = Some(index);
        }
    }
    let (_, doc_k, query_k) = best;
    let index = match best_index {
        Some(i) => i,
        None => LatentIndex::build(t.doc_ids, t.doc_codes, Some(doc_k))?,
    };
    let qs = queries_at(t.ids, t.query_codes, query_k)?;
    let best_clsr = best_of(
        clsr_grid(g),
        (s.clsr_k1, s.clsr_b, s.clsr_k2),
        progress,
        |(k1, b, k2)| score(&index, &qs, &clsr(k1, b, k2)?),
    )?;
    let best_bm25 = best_of(
        pairs(&g.lt_bm25_k1, &g.lt_bm25_b),
        (s.lt_bm25_k1, s.lt_bm25_b),
        progress,
        |(k1, b)| score(&index, &qs, &lt_bm25(k1, b)?),
    )?;
    let dot = score(&index, &qs, &DotProduct)?;
    progress.advance(1);
    let (c, l) = (best_clsr.1, best_bm25.1);
    let candidates = [
        ("clsr", best_clsr.0),
        ("lt-bm25", best_bm25.0),
        ("clsr-dot", dot),
    ];
    let hybrid_latent = candidates
        .iter()
        .fold(("clsr", f64::NEG_INFINITY), |a, &(m, v)| {
            if v > a.1 { (m, v) } else { a }
        })
        .0;
    let latent_run = match hybrid_latent {
        "lt-bm25" => index.run(&qs, &lt_bm25(l.0, l.1)?, t.depth, "lt")?,
        "clsr-dot" => index.run(&qs, &DotProduct, t.depth, "lt")?,
        _ => index.run(&qs, &clsr(c.0, c.1, c.2)?, t.depth, "lt")?,
    };
    let best_w = best_linear_weight(
        t.qrels,
        t.lexical,
        &latent_run,
        &g.linear_weight,
        s.linear_weight,
        t.depth,
        progress,
    )?;
    progress.end();
    progress.note(&format!(
        "tuned on qrels/{split}.tsv: doc_k {doc_k}, query_k {query_k} (CL-SR nDCG@10 {:.4}); CL-SR {c:?} {:.4}; lt-bm25 {l:?} {:.4}; dot {dot:.4}; hybrid with {hybrid_latent}, linear weight {} ({:.4})",
        best.0, best_clsr.0, best_bm25.0, best_w.1, best_w.0
    ));
    Ok(ChosenParams {
        doc_k,
        query_k,
        clsr: c,
        lt_bm25: l,
        hybrid_latent: hybrid_latent.to_owned(),
        linear_weight: best_w.1,
        source: format!(
            "tuned on qrels/{split}.tsv ({} queries, nDCG@10)",
            t.ids.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmse_is_zero_for_a_perfect_reconstruction_and_one_for_the_mean() {
        let x = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(nmse(&x, &x, 2), 0.0);
        let mean = [0.5, 0.5, 0.5, 0.5];
        assert!((nmse(&x, &mean, 2) - 1.0).abs() < 1e-12);
    }
}
