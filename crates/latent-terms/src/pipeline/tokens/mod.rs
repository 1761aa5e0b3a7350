//! The `tokens` representation: an SAE over every token's hidden state, documents and
//! queries as bags of latent terms with real term frequencies (see [`crate::bag`]).
//!
//! Stages, each with a typed output and a cache key:
//!
//! 1. `encode`: corpus and queries into token stores (one forward pass per text, shared
//!    with the pooled embeddings);
//! 2. `train`: a TopK SAE on a sample of the stores' token rows, inputs scaled to a
//!    mean squared norm of `d`;
//! 3. `bags`: every text's tokens encoded into latents and summed into its bag;
//! 4. `search`: the bags indexed, searched with BM25 and CL-SR, fused with lexical BM25.

mod bags;
mod encode;
mod search;
mod train;

use std::collections::HashMap;
use std::path::PathBuf;

use latent_terms_eval::Run;
use latent_terms_sparse_index::{Index, IndexStats, Query};

pub(crate) use encode::{encode_stores, store_paths};
pub use search::TokenParams;
pub(crate) use train::TokenBlocks;

use super::latent_index::LatentIndex;
use super::report::TokenReport;
use super::stages::{Context, LexicalStage};
use super::{CacheEntry, CacheKey, Clock, Progress, write_atomic};
use crate::error::{Error, Result};
use bags::{IndexMeta, bags, remove_latents, stop_latents, to_query};
use search::{SearchInputs, Tuning, choose_params, runs};
use train::train;

/// The token stores of a dataset (stage 1).
#[derive(Clone, Debug)]
pub(crate) struct TokenStores {
    pub(crate) corpus: PathBuf,
    pub(crate) queries: PathBuf,
    pub(crate) key: String,
    /// The stores as a cache entry; `None` when the user gave them.
    pub(crate) entry: Option<CacheEntry>,
}

/// Row ids of `ids` in a map, for lookups by id.
pub(crate) fn positions(ids: &[String]) -> HashMap<&str, usize> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect()
}

/// What the token representation adds to a run.
pub(crate) struct TokenOutcome {
    pub(crate) runs: Vec<(String, Run)>,
    pub(crate) stats: IndexStats,
    pub(crate) report: TokenReport,
    pub(crate) test_queries: Vec<(String, Query)>,
    pub(crate) stores: TokenStores,
    pub(crate) sae_path: PathBuf,
    pub(crate) index_path: PathBuf,
}

/// The token representation's stages: token stores → token SAE → bags → index → runs.
pub(crate) fn run(
    ctx: &Context<'_>,
    stores: &TokenStores,
    lexical: &LexicalStage,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<TokenOutcome> {
    let (config, cache) = (ctx.config, &ctx.inputs.cache);
    let t = &config.tokens;
    let stores = stores.clone();
    let sae = clock.time("token_sae_train", |stage| {
        train(
            &stores,
            ctx.inputs.token_sae.as_deref(),
            config,
            cache,
            stage,
            progress,
        )
    })?;
    clock.keys.insert("token_sae".into(), sae.key.clone());
    let sae_path = ctx
        .inputs
        .token_sae
        .clone()
        .unwrap_or_else(|| cache.join(format!("token-sae-{}.safetensors", sae.key)));
    // The bags depend on the SAE and on the texts' token stores (one SAE serves many
    // collections).
    let mut bags_key = CacheKey::new("token-bags")
        .key(&sae.key)
        .key(&stores.key)
        .str(&serde_json::to_string(&(t.k, t.tf, t.query_weights, t.stop_df)).unwrap_or_default());
    // Only a pruned index adds to the key, so unpruned indexes keep the keys they had.
    if let Some(pruning) = t.prune {
        bags_key = bags_key.str(&serde_json::to_string(&pruning).unwrap_or_default());
    }
    let bags_key = bags_key.finish();
    let runs_dir = cache.join(format!("token-runs-{bags_key}"));
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    let index_path = runs_dir.join("token.idx");
    let meta_path = runs_dir.join("token-index.json");
    let index_entry = CacheEntry::new(&bags_key, [index_path.clone(), meta_path.clone()]);
    let (index, meta) = clock.time("token_index", |stage| {
        if stage.lookup(&index_entry) {
            let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
            let meta = serde_json::from_str::<IndexMeta>(&text)
                .map_err(|e| Error::Invalid(format!("{}: {e}", meta_path.display())))?;
            stage.cached = true;
            return Ok((LatentIndex::from_index(Index::open(&index_path)?), meta));
        }
        let mut docs = bags(&sae.encoder, &stores.corpus, None, t, None, progress)?;
        let stop_latents = match t.stop_df {
            Some(fraction) => stop_latents(&docs.bags, fraction),
            None => Vec::new(),
        };
        remove_latents(&mut docs.bags, &stop_latents);
        let index = match t.prune {
            Some(pruning) => LatentIndex::build_pruned(&docs.ids, &docs.bags, pruning)?,
            None => LatentIndex::build(&docs.ids, &docs.bags, None)?,
        };
        index.index().save(&index_path)?;
        let meta = IndexMeta {
            mean_activation: docs.mean_activation,
            stop_latents,
        };
        write_atomic(
            &meta_path,
            serde_json::to_string(&meta).unwrap_or_default().as_bytes(),
        )?;
        index_entry.seal()?;
        Ok((index, meta))
    })?;
    let mean_activation = meta.mean_activation;
    let wanted: std::collections::HashSet<&str> = ctx
        .test_ids
        .iter()
        .chain(ctx.tune_ids())
        .map(String::as_str)
        .collect();
    let query_bags = clock.time("token_queries", |_| {
        bags(
            &sae.encoder,
            &stores.queries,
            Some(&wanted),
            t,
            Some(mean_activation),
            progress,
        )
    })?;
    let mut query_bags = query_bags;
    remove_latents(&mut query_bags.bags, &meta.stop_latents);
    let by_id = positions(&query_bags.ids);
    let queries_of = |ids: &[String]| -> Result<Vec<(String, Query)>> {
        ids.iter()
            .map(|id| {
                let &i = by_id.get(id.as_str()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "query {id:?} is missing from the query token store"
                    ))
                })?;
                Ok((id.clone(), to_query(&query_bags.bags[i], t.query_weights)?))
            })
            .collect()
    };
    let test_queries = queries_of(&ctx.test_ids)?;
    let tune_queries = queries_of(ctx.tune_ids())?;
    let inputs = SearchInputs {
        index: &index,
        test: &test_queries,
        lexical_test: &lexical.test_run,
        tuning: match (&ctx.tuning, &lexical.tune_run) {
            (Some((split, qrels, _)), Some(run)) => Some(Tuning {
                split: split.as_str(),
                qrels,
                queries: tune_queries.as_slice(),
                lexical: run,
            }),
            _ => None,
        },
    };
    let params_key = CacheKey::new("token-params")
        .key(&bags_key)
        .dir(&ctx.dataset.root().join("qrels"))?
        .str(&serde_json::to_string(&(t, &config.tuning, config.depth)).unwrap_or_default())
        .finish();
    let params_path = runs_dir.join(format!("params-{params_key}.json"));
    let params_entry = CacheEntry::new(&params_key, [params_path.clone()]);
    let params = clock.time("token_tune", |stage| {
        if stage.lookup(&params_entry)
            && let Ok(text) = std::fs::read_to_string(&params_path)
            && let Ok(p) = serde_json::from_str::<TokenParams>(&text)
        {
            stage.cached = true;
            return Ok(p);
        }
        let p = choose_params(&inputs, config, progress)?;
        write_atomic(
            &params_path,
            serde_json::to_string_pretty(&p)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        params_entry.seal()?;
        Ok(p)
    })?;
    let (runs, latency) = clock.time("token_search", |_| runs(&inputs, &params, config))?;
    let stats = index.index().statistics()?;
    let query_vectors: Vec<Query> = test_queries.iter().map(|q| q.1.clone()).collect();
    let flops = index.index().flops(&query_vectors)?;
    let corpus_tokens = latent_terms_encoders::TokenStore::open(&stores.corpus)?.tokens();
    let report = TokenReport {
        d_sae: sae.encoder.d_sae(),
        k: t.k.unwrap_or(sae.encoder.weights().config.k),
        input_scale: f64::from(sae.encoder.input_scale()),
        training_nmse: sae.summary.training_nmse,
        validation_nmse: sae.summary.validation_nmse,
        dead_fraction: sae.summary.dead_fraction,
        training_rows: sae.summary.rows,
        training_corpus: sae.summary.corpus.clone(),
        corpus_tokens,
        mean_activation,
        stop_latents: meta.stop_latents.len(),
        avg_latents_per_doc: stats.avg_terms_per_doc,
        avg_latents_per_query: average_len(&query_vectors),
        postings: stats.num_postings,
        index_bytes: stats.index_size_bytes,
        latents_used: stats.vocabulary_used,
        flops,
        latency,
        params,
    };
    Ok(TokenOutcome {
        runs,
        stats,
        report,
        test_queries,
        stores,
        sae_path,
        index_path,
    })
}

pub(crate) fn average_len(queries: &[Query]) -> f64 {
    if queries.is_empty() {
        0.0
    } else {
        queries.iter().map(Query::len).sum::<usize>() as f64 / queries.len() as f64
    }
}
