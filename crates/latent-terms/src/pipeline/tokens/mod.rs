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

use super::config::PipelineConfig;
use super::latent_index::LatentIndex;
use super::report::{SaeDraw, TokenReport};
use super::stages::{Context, LexicalStage};
use super::{CacheEntry, CacheKey, Clock, Progress, write_atomic};
use crate::error::{Error, Result};
use bags::{IndexMeta, bags, remove_latents, stop_latents, to_query};
use search::{SearchInputs, Tuning, choose_params, runs};
use train::{TokenSae, train};

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

/// One token SAE carried through its bags, index, queries and tuned scorers.
struct Draw {
    sae: TokenSae,
    sae_path: PathBuf,
    index: LatentIndex,
    index_path: PathBuf,
    meta: IndexMeta,
    test_queries: Vec<(String, Query)>,
    tune_queries: Vec<(String, Query)>,
    params: TokenParams,
}

/// The token representation's stages: token stores → token SAE → bags → index → runs.
/// With `tokens.sae_draws` > 1 the stages up to the tuned scorers run once per SAE draw,
/// and the draw with the best tuning-split nDCG@10 goes on to the test queries.
pub(crate) fn run(
    ctx: &Context<'_>,
    stores: &TokenStores,
    lexical: &LexicalStage,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<TokenOutcome> {
    let config = ctx.config;
    let t = &config.tokens;
    let draws = draws_to_train(ctx, progress);
    let mut chosen: Option<(usize, Draw)> = None;
    let mut summaries = Vec::new();
    for d in 0..draws {
        let mut draw_config = config.clone();
        draw_config.tokens.sae.seed = t.sae.seed.wrapping_add(d as u64);
        let draw = train_draw(ctx, &draw_config, stores, lexical, clock, progress)?;
        if draws > 1 {
            let (bm25, clsr) = draw.params.tuned_ndcg10.unwrap_or((f64::NAN, f64::NAN));
            progress.note(&format!(
                "token SAE draw {} of {draws} (seed {}): tuning nDCG@10 BM25 {bm25:.4}, CL-SR {clsr:.4}",
                d + 1,
                draw_config.tokens.sae.seed
            ));
        }
        summaries.push(SaeDraw {
            seed: draw_config.tokens.sae.seed,
            validation_nmse: draw.sae.summary.validation_nmse,
            tuned_ndcg10: draw.params.tuned_ndcg10,
            chosen: false,
        });
        // Ties keep the earlier draw, so one draw or equal scores change nothing.
        if chosen
            .as_ref()
            .is_none_or(|(_, c)| draw.params.tuned_mean() > c.params.tuned_mean())
        {
            chosen = Some((d, draw));
        }
    }
    let Some((at, draw)) = chosen else {
        return Err(Error::Invalid("tokens.sae_draws must be at least 1".into()));
    };
    if draws > 1 {
        summaries[at].chosen = true;
    } else {
        summaries.clear();
    }
    clock.keys.insert("token_sae".into(), draw.sae.key.clone());
    let inputs = search_inputs(
        ctx,
        lexical,
        &draw.index,
        &draw.test_queries,
        &draw.tune_queries,
    );
    let (runs, latency) = clock.time("token_search", |_| runs(&inputs, &draw.params, config))?;
    let index = &draw.index;
    let stats = index.index().statistics()?;
    let query_vectors: Vec<Query> = draw.test_queries.iter().map(|q| q.1.clone()).collect();
    let flops = index.index().flops(&query_vectors)?;
    let corpus_tokens = latent_terms_encoders::TokenStore::open(&stores.corpus)?.tokens();
    let sae = &draw.sae;
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
        mean_activation: draw.meta.mean_activation,
        stop_latents: draw.meta.stop_latents.len(),
        avg_latents_per_doc: stats.avg_terms_per_doc,
        avg_latents_per_query: average_len(&query_vectors),
        postings: stats.num_postings,
        index_bytes: stats.index_size_bytes,
        latents_used: stats.vocabulary_used,
        flops,
        latency,
        params: draw.params.clone(),
        draws: summaries,
    };
    Ok(TokenOutcome {
        runs,
        stats,
        report,
        test_queries: draw.test_queries,
        stores: stores.clone(),
        sae_path: draw.sae_path,
        index_path: draw.index_path,
    })
}

/// How many token SAEs to train: `tokens.sae_draws`, or one where there is nothing to
/// choose with (no tuning split) or nothing to train (a given `--token-sae`).
fn draws_to_train(ctx: &Context<'_>, progress: &dyn Progress) -> usize {
    let wanted = ctx.config.tokens.sae_draws.max(1);
    if wanted == 1 || ctx.inputs.token_sae.is_some() {
        return 1;
    }
    if ctx.tuning.is_none() {
        progress.note(&format!(
            "tokens.sae_draws = {wanted}, but the dataset has no training split \
             (qrels/train.tsv or qrels/dev.tsv) to choose among draws with: training one \
             token SAE"
        ));
        return 1;
    }
    wanted
}

/// The search stage's inputs: a draw's index and queries, lexical BM25's runs.
fn search_inputs<'a>(
    ctx: &'a Context<'_>,
    lexical: &'a LexicalStage,
    index: &'a LatentIndex,
    test: &'a [(String, Query)],
    tune: &'a [(String, Query)],
) -> SearchInputs<'a> {
    SearchInputs {
        index,
        test,
        lexical_test: &lexical.test_run,
        tuning: match (&ctx.tuning, &lexical.tune_run) {
            (Some((split, qrels, _)), Some(run)) => Some(Tuning {
                split: split.as_str(),
                qrels,
                queries: tune,
                lexical: run,
            }),
            _ => None,
        },
    }
}

/// Stages 2–4 (up to the tuned scorers) for the SAE of `config.tokens.sae`.
fn train_draw(
    ctx: &Context<'_>,
    config: &PipelineConfig,
    stores: &TokenStores,
    lexical: &LexicalStage,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<Draw> {
    let cache = &ctx.inputs.cache;
    let t = &config.tokens;
    let sae = clock.time("token_sae_train", |stage| {
        train(
            stores,
            ctx.inputs.token_sae.as_deref(),
            config,
            cache,
            stage,
            progress,
        )
    })?;
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
    let wanted: std::collections::HashSet<&str> = ctx
        .test_ids
        .iter()
        .chain(ctx.tune_ids())
        .map(String::as_str)
        .collect();
    let mut query_bags = clock.time("token_queries", |_| {
        bags(
            &sae.encoder,
            &stores.queries,
            Some(&wanted),
            t,
            Some(meta.mean_activation),
            progress,
        )
    })?;
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
    let params_key = CacheKey::new("token-params")
        .key(&bags_key)
        .dir(&ctx.dataset.root().join("qrels"))?
        .str(&serde_json::to_string(&(t, &config.tuning, config.depth)).unwrap_or_default())
        .finish();
    let params_path = runs_dir.join(format!("params-{params_key}.json"));
    let params_entry = CacheEntry::new(&params_key, [params_path.clone()]);
    let inputs = search_inputs(ctx, lexical, &index, &test_queries, &tune_queries);
    let params = clock.time("token_tune", |stage| {
        // A cached choice without its tuning scores (written before they were kept)
        // cannot rank draws: it is chosen again.
        if stage.lookup(&params_entry)
            && let Ok(text) = std::fs::read_to_string(&params_path)
            && let Ok(p) = serde_json::from_str::<TokenParams>(&text)
            && (p.tuned_ndcg10.is_some() || inputs.tuning.is_none())
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
    Ok(Draw {
        sae,
        sae_path,
        index,
        index_path,
        meta,
        test_queries,
        tune_queries,
        params,
    })
}

pub(crate) fn average_len(queries: &[Query]) -> f64 {
    if queries.is_empty() {
        0.0
    } else {
        queries.iter().map(Query::len).sum::<usize>() as f64 / queries.len() as f64
    }
}
