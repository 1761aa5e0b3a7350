//! The end-to-end Latent Terms pipeline: encode → SAE → latent-term index → evaluate,
//! with the paper-style report.
//!
//! [`run`] takes a BEIR dataset and a dense model directory and runs these stages, each
//! a function with typed inputs and outputs in its own module:
//!
//! | stage | module | output |
//! |---|---|---|
//! | context: dataset, queries, qrels, tuning split (never the test qrels) | `stages` | `Context` |
//! | dense embeddings of the corpus and queries (or given stores) | `stages` | `DenseStage` |
//! | lexical BM25 index and runs | `stages` | `LexicalStage` |
//! | exact dense search (the backbone's row) | `stages` | a run |
//! | **pooled** representation: SAE on embeddings → codes → tuning → index → runs | `pooled` | `PooledOutcome` |
//! | **tokens** representation: token stores → token SAE → bags → index → runs | [`tokens`] | `TokenOutcome` |
//! | evaluation and analyses | `evaluate` | [`Report`] |
//!
//! [`PipelineConfig::representation`] picks the representations (`pooled`, `tokens`,
//! `both`); the report writes `results.json`, `results.md`, a Zipf plot, the runs and
//! the test queries as weighted latent queries.
//!
//! Every stage's artefacts are cached under a key of its inputs ([`CacheKey`]), so a
//! second run with the same inputs only re-evaluates.

mod cache;
mod chunks;
mod config;
mod evaluate;
mod latent_index;
mod limit;
mod mismatch;
mod pooled;
mod report;
mod stages;
pub mod tokens;
mod training;
mod zipf;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use latent_terms_encoders::{Encoder, StoreDtype, StoreWriter, TextKind, TokenStoreWriter};
use latent_terms_eval::fusion::reciprocal_rank_fusion;
use latent_terms_eval::{Evaluator, Measure, Qrels, Run};
use latent_terms_sparse_index::{Bm25, Bm25Params, ClSr, ClSrParams};

pub use cache::check_seal_if_present;
pub use cache::{CACHE_FORMAT, CacheKey};
pub(crate) use cache::{CacheEntry, Lookup, check_report_file, write_report_file};
pub use chunks::{max_pool, strongest, window_id, window_owner, word_windows};
pub use config::{
    ActivationRule, ChunkSettings, EncoderSettings, InferenceSettings, KldSettings, PipelineConfig,
    Representation, SaeSettings, ScoringSettings, TokenSettings, TuningSettings,
};
pub use latent_index::{LatentIndex, code_to_query, code_to_vector};
pub use limit::{LimitCollection, LimitSpec, generate_limit, write_limit};
pub use mismatch::{MismatchSet, mismatch_sets, missed_queries, reciprocal_rank_at};
pub use report::{
    Artifacts, ChosenParams, Latency, MethodRow, Report, SaeDraw, TokenReport, write_atomic,
};
pub use zipf::{ZipfCurve, ZipfReport, curve as zipf_curve, fit_exponent, zipf_report};

use crate::error::{Error, Result};
use stages::{Context, check_inputs, dense_search_stage, dense_stage, encode_stage, lexical_stage};

/// Progress of the long stages, shown by the caller (the CLI draws indicatif bars).
pub trait Progress {
    /// A stage starts; `total` units when known.
    fn begin(&self, stage: &str, total: Option<u64>);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The stage is done.
    fn end(&self);
    /// A line of information.
    fn note(&self, line: &str);
}

/// Progress that shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
    fn note(&self, _: &str) {}
}

/// Where the pipeline reads and writes.
#[derive(Clone, Debug)]
pub struct PipelineInputs {
    /// BEIR-layout dataset directory.
    pub dataset: PathBuf,
    /// Dense model directory (ONNX graph, tokenizer, config).
    pub model: PathBuf,
    /// Report directory.
    pub out: PathBuf,
    /// Cache directory (shared between runs).
    pub cache: PathBuf,
    /// Corpus and query embeddings stores made earlier (e.g. by `scripts/encode-shared`);
    /// when both are given the encoding stage is skipped. They must cover the dataset.
    pub embeddings: Option<(PathBuf, PathBuf)>,
    /// An SAE trained earlier (e.g. by `latent-terms sae train` on several collections'
    /// texts): used instead of training one. Its `<stem>.log.json`, when present, supplies
    /// the training NMSE and dead fraction of the report.
    pub sae: Option<PathBuf>,
    /// A token-level SAE trained earlier (e.g. on several collections' token stores):
    /// used instead of training one for the `tokens` representation.
    pub token_sae: Option<PathBuf>,
    /// Corpus and query token stores made earlier (`latent-terms encode --tokens`):
    /// the token representation skips encoding. They must cover the dataset.
    pub token_stores: Option<(PathBuf, PathBuf)>,
}

/// The measures of every row.
pub const MEASURES: [Measure; 7] = [
    Measure::NdcgCut(10),
    Measure::Map,
    Measure::Recall(2),
    Measure::Recall(10),
    Measure::Recall(20),
    Measure::Recall(100),
    Measure::Recall(1000),
];

const ENCODE_CHUNK: usize = 256;

#[derive(Default)]
pub(crate) struct Clock {
    pub(crate) seconds: BTreeMap<String, f64>,
    pub(crate) cached: Vec<String>,
    pub(crate) keys: BTreeMap<String, String>,
    /// Cache entries found stale or damaged (and recomputed), with the reason.
    pub(crate) stale: Vec<String>,
}

/// What a stage tells the clock: whether it was served from the cache, and the cache
/// entries it found stale or damaged (removed and recomputed).
#[derive(Default)]
pub(crate) struct Stage {
    pub(crate) cached: bool,
    stale: Vec<String>,
}

impl Stage {
    /// Whether `entry` can be used. A stale or damaged entry is removed and noted.
    pub(crate) fn lookup(&mut self, entry: &CacheEntry) -> bool {
        match entry.lookup() {
            Lookup::Hit => true,
            Lookup::Miss => false,
            Lookup::Stale(reason) => {
                self.stale
                    .push(format!("cache entry not used, recomputed: {reason}"));
                false
            }
        }
    }
}

impl Clock {
    pub(crate) fn time<T>(
        &mut self,
        stage: &str,
        f: impl FnOnce(&mut Stage) -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut state = Stage::default();
        let out = f(&mut state)?;
        // A stage run once per SAE draw adds up its times.
        *self.seconds.entry(stage.to_owned()).or_default() += start.elapsed().as_secs_f64();
        self.stale.append(&mut state.stale);
        if state.cached && !self.cached.iter().any(|s| s == stage) {
            self.cached.push(stage.to_owned());
        }
        Ok(out)
    }
}

fn mean_measure(eval: &latent_terms_eval::Evaluation, m: Measure) -> f64 {
    eval.mean(m).unwrap_or(0.0)
}

/// nDCG@10 of a run over `qrels`, every judged query counted.
pub fn ndcg10(qrels: &Qrels, run: &Run) -> f64 {
    let eval = Evaluator::new([Measure::NdcgCut(10)])
        .average_complete(true)
        .evaluate(qrels, run);
    mean_measure(&eval, Measure::NdcgCut(10))
}

/// Every measure of a report row, plus `recip_rank@10` (MRR@10).
pub fn evaluate_row(method: &str, qrels: &Qrels, run: &Run) -> MethodRow {
    let eval = Evaluator::new(MEASURES)
        .average_complete(true)
        .evaluate(qrels, run);
    let mut measures: BTreeMap<String, f64> = MEASURES
        .iter()
        .map(|&m| (m.to_string(), mean_measure(&eval, m)))
        .collect();
    let rr = reciprocal_rank_at(qrels, run, 10);
    let mrr = if rr.is_empty() {
        0.0
    } else {
        rr.values().sum::<f64>() / rr.len() as f64
    };
    measures.insert("recip_rank@10".into(), mrr);
    MethodRow {
        method: method.to_owned(),
        measures,
    }
}

/// Where [`encode_texts`] writes: a pooled embeddings store, a token store, or both
/// (then from one forward pass per text).
#[derive(Clone, Copy, Debug)]
pub struct EncodeTargets<'a> {
    /// Pooled embeddings store, and its element type.
    pub pooled: Option<(&'a Path, StoreDtype)>,
    /// Token store (f16).
    pub tokens: Option<&'a Path>,
}

/// Encodes a stream of `(id, text)` items, a chunk at a time (memory bounded by one
/// chunk), into the stores of `targets`; returns the number of texts.
pub fn encode_texts(
    encoder: &Encoder,
    kind: TextKind,
    items: impl Iterator<Item = latent_terms_eval::Result<(String, String)>>,
    targets: EncodeTargets<'_>,
    progress: &dyn Progress,
) -> Result<usize> {
    let mut pooled = match targets.pooled {
        Some((path, dtype)) => Some(StoreWriter::create(
            path,
            encoder.store_metadata_for(kind),
            dtype,
        )?),
        None => None,
    };
    let mut tokens = match targets.tokens {
        Some(path) => Some(TokenStoreWriter::create(
            path,
            encoder.token_store_metadata(kind),
            StoreDtype::F16,
        )?),
        None => None,
    };
    let mut chunk: Vec<(String, String)> = Vec::with_capacity(ENCODE_CHUNK);
    let mut total = 0;
    let mut flush = |chunk: &mut Vec<(String, String)>| -> Result<usize> {
        match tokens.as_mut() {
            Some(t) => {
                let (embeddings, vectors) = encoder.encode_with_tokens(kind, chunk)?;
                for v in &vectors {
                    t.append(v)?;
                }
                if let Some(p) = pooled.as_mut() {
                    p.append(&embeddings)?;
                }
            }
            None => {
                if let Some(p) = pooled.as_mut() {
                    p.append(&encoder.encode(kind, chunk)?)?;
                }
            }
        }
        let n = chunk.len();
        progress.advance(n as u64);
        chunk.clear();
        Ok(n)
    };
    for item in items {
        chunk.push(item?);
        if chunk.len() == ENCODE_CHUNK {
            total += flush(&mut chunk)?;
        }
    }
    if !chunk.is_empty() {
        total += flush(&mut chunk)?;
    }
    if let Some(p) = pooled {
        p.finish()?;
    }
    if let Some(t) = tokens {
        t.finish()?;
    }
    Ok(total)
}

/// Encodes `(id, text)` items into an f32 embeddings store at `path`.
pub fn encode_to_store(
    encoder: &Encoder,
    kind: TextKind,
    items: impl Iterator<Item = latent_terms_eval::Result<(String, String)>>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<usize> {
    let targets = EncodeTargets {
        pooled: Some((path, StoreDtype::F32)),
        tokens: None,
    };
    encode_texts(encoder, kind, items, targets, progress)
}

/// The candidate with the highest score (the first on ties; `default` with score −∞ when
/// there are none), advancing `progress` once per candidate.
pub(crate) fn best_of<P: Copy>(
    candidates: impl IntoIterator<Item = P>,
    default: P,
    progress: &dyn Progress,
    mut score: impl FnMut(P) -> Result<f64>,
) -> Result<(f64, P)> {
    let mut best = (f64::NEG_INFINITY, default);
    for p in candidates {
        let v = score(p)?;
        progress.advance(1);
        if v > best.0 {
            best = (v, p);
        }
    }
    Ok(best)
}

/// Every `(k1, b, k2)` of the tuning grid.
pub(crate) fn clsr_grid(t: &TuningSettings) -> Vec<(f32, f32, f32)> {
    let mut grid = Vec::new();
    for &k1 in &t.clsr_k1 {
        for &b in &t.clsr_b {
            for &k2 in &t.clsr_k2 {
                grid.push((k1, b, k2));
            }
        }
    }
    grid
}

/// Every `(k1, b)` of two candidate lists.
pub(crate) fn pairs(k1s: &[f32], bs: &[f32]) -> Vec<(f32, f32)> {
    k1s.iter()
        .flat_map(|&k1| bs.iter().map(move |&b| (k1, b)))
        .collect()
}

/// The linear-fusion weight of `latent` (against `lexical`) with the best nDCG@10.
pub(crate) fn best_linear_weight(
    qrels: &Qrels,
    lexical: &Run,
    latent: &Run,
    weights: &[f64],
    default: f64,
    depth: usize,
    progress: &dyn Progress,
) -> Result<(f64, f64)> {
    best_of(weights.iter().copied(), default, progress, |w| {
        let fused = latent_terms_eval::fusion::linear_fusion(
            &[lexical, latent],
            &[1.0 - w, w],
            latent_terms_eval::fusion::Normalization::MinMax,
            depth,
            "lin",
        )?;
        Ok(ndcg10(qrels, &fused))
    })
}

pub(crate) fn clsr(k1: f32, b: f32, k2: f32) -> Result<ClSr> {
    Ok(ClSr::new(ClSrParams {
        k1,
        b,
        k2,
        ..Default::default()
    })?)
}

pub(crate) fn lt_bm25(k1: f32, b: f32) -> Result<Bm25> {
    Ok(Bm25::new(Bm25Params {
        k1,
        b,
        ..Default::default()
    })?)
}

/// The two hybrids of lexical BM25 and a latent run: RRF with `rrf_k`, and min-max
/// linear fusion with `weight` on the latent run; tagged `tags`.
pub(crate) fn hybrids(
    lexical: &Run,
    latent: &Run,
    rrf_k: f64,
    weight: f64,
    depth: usize,
    tags: (&str, &str),
) -> Result<(Run, Run)> {
    use latent_terms_eval::fusion::{Normalization, linear_fusion, reciprocal_rank_fusion};
    let rrf = reciprocal_rank_fusion(&[lexical, latent], rrf_k, depth, tags.0)?;
    let linear = linear_fusion(
        &[lexical, latent],
        &[1.0 - weight, weight],
        Normalization::MinMax,
        depth,
        tags.1,
    )?;
    Ok((rrf, linear))
}

/// The run cached at `path` for the stage keyed `key`, or `f`'s run, saved and sealed there.
pub(crate) fn cached_run(
    path: &Path,
    key: &str,
    stage: &mut Stage,
    f: impl FnOnce() -> Result<Run>,
) -> Result<Run> {
    let entry = CacheEntry::new(key, [path.to_path_buf()]);
    if stage.lookup(&entry) {
        stage.cached = true;
        return Ok(Run::from_path(path)?);
    }
    stage.cached = false;
    let run = f()?;
    run.save(path, None)?;
    entry.seal()?;
    Ok(run)
}

/// Runs the whole pipeline and writes the report into `inputs.out`.
///
/// Stages: context (dataset, queries, qrels, tuning split) → dense embeddings → lexical
/// BM25 → dense search → each latent representation of `config.representation`
/// ([`PipelineConfig::representation`]: pooled codes, token-level bags, or both) →
/// evaluation → report.
pub fn run(
    inputs: &PipelineInputs,
    config: &PipelineConfig,
    progress: &dyn Progress,
) -> Result<Report> {
    config.validate()?;
    cache::take_hashing_time();
    let mut clock = Clock::default();
    let cache = &inputs.cache;
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    std::fs::create_dir_all(&inputs.out).map_err(|e| Error::io(&inputs.out, e))?;
    let ctx = Context::open(inputs, config)?;
    let encoded = encode_stage(&ctx, &mut clock, progress)?;
    check_inputs(&ctx, &encoded)?;
    let dense = dense_stage(&ctx, &encoded, &mut clock, progress)?;
    let lexical = lexical_stage(&ctx, &mut clock)?;
    let (dense_run, _) = dense_search_stage(&ctx, &dense, &mut clock)?;
    let pooled = if config.representation.pooled() {
        Some(pooled::run(&ctx, &dense, &lexical, &mut clock, progress)?)
    } else {
        None
    };
    let tokens = match &encoded.tokens {
        Some(stores) => Some(tokens::run(&ctx, stores, &lexical, &mut clock, progress)?),
        None => None,
    };

    let mut runs: Vec<(String, Run)> = vec![
        ("bm25".into(), lexical.test_run.clone()),
        ("dense".into(), dense_run.clone()),
    ];
    if let Some(p) = &pooled {
        runs.extend(p.runs.iter().cloned());
    }
    if let Some(t) = &tokens {
        runs.extend(t.runs.iter().cloned());
    }
    runs.push((
        "rrf-bm25-dense".into(),
        reciprocal_rank_fusion(
            &[&lexical.test_run, &dense_run],
            config.scoring.rrf_k,
            config.depth,
            "rrf-bm25-dense",
        )?,
    ));
    // Token-level terms and dense come from one forward pass of the same model, so a
    // user of the token index has the dense run too: this row asks whether the latent
    // terms add to the lexical–dense fusion, not only to lexical BM25.
    if let Some(tokens_bm25) = tokens
        .as_ref()
        .and_then(|t| t.runs.iter().find(|(m, _)| m == "lt-tokens-bm25"))
    {
        runs.push((
            "hybrid-tokens-dense-rrf".into(),
            reciprocal_rank_fusion(
                &[&lexical.test_run, &dense_run, &tokens_bm25.1],
                config.scoring.rrf_k,
                config.depth,
                "hybrid-tokens-dense-rrf",
            )?,
        ));
    }

    for warning in &clock.stale {
        progress.note(&format!("warning: {warning}"));
    }
    let report = clock.time("evaluate", |_| {
        evaluate::evaluate_stage(
            &ctx,
            dense.corpus.rows(),
            &runs,
            &dense_run,
            &lexical,
            pooled.as_ref(),
            tokens.as_ref(),
        )
    })?;
    let mut report = report;
    let runs_out = inputs.out.join("runs");
    std::fs::create_dir_all(&runs_out).map_err(|e| Error::io(&runs_out, e))?;
    for (m, r) in &runs {
        r.save(runs_out.join(format!("{m}.run")), None)?;
    }
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut artifacts = Artifacts {
        dataset: absolute(&inputs.dataset),
        corpus_embeddings: absolute(&dense.corpus_path),
        query_embeddings: absolute(&dense.query_path),
        lexical_index: absolute(&lexical.path),
        runs: absolute(&runs_out),
        ..Artifacts::default()
    };
    if let Some(p) = &pooled {
        let queries = inputs.out.join("latent-queries.jsonl");
        report::write_weighted_queries(&queries, &p.test_queries)?;
        artifacts.sae = absolute(&p.sae_path);
        artifacts.latent_index = absolute(&p.index_path);
        artifacts.latent_queries = absolute(&queries);
    }
    if let Some(t) = &tokens {
        let queries = inputs.out.join("token-queries.jsonl");
        report::write_weighted_queries(&queries, &t.test_queries)?;
        artifacts.token_sae = absolute(&t.sae_path);
        artifacts.token_index = absolute(&t.index_path);
        artifacts.token_queries = absolute(&queries);
        artifacts.corpus_tokens = absolute(&t.stores.corpus);
        artifacts.query_tokens = absolute(&t.stores.queries);
    }
    clock.seconds.insert(
        "cache_hashing".into(),
        cache::take_hashing_time().as_secs_f64(),
    );
    report.stage_seconds = clock.seconds;
    report.cached_stages = clock.cached;
    report.cache_keys = clock.keys;
    report.artifacts = artifacts;
    report.write(&inputs.out)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_search_keeps_the_first_best_and_the_default_without_candidates() {
        let (v, p) = best_of([1, 2, 3, 4], 0, &Quiet, |p| Ok(f64::from(p % 3))).unwrap();
        assert_eq!((v, p), (2.0, 2));
        let (v, p) = best_of(Vec::<i32>::new(), 7, &Quiet, |_| Ok(1.0)).unwrap();
        assert_eq!((v, p), (f64::NEG_INFINITY, 7));
        assert_eq!(pairs(&[1.0, 2.0], &[0.5]), vec![(1.0, 0.5), (2.0, 0.5)]);
        let grid = clsr_grid(&TuningSettings::default());
        assert_eq!(grid.len(), 27);
        assert_eq!(grid[1], (0.3, 0.5, 1.5));
    }

    #[test]
    fn evaluate_row_has_the_report_keys() {
        let qrels = Qrels::from_str("q 0 a 1\n").unwrap();
        let run = Run::from_str("q Q0 b 1 2 t\nq Q0 a 2 1 t\n").unwrap();
        let row = evaluate_row("m", &qrels, &run);
        assert_eq!(row.get("recip_rank@10"), Some(0.5));
        assert_eq!(row.get("recall_2"), Some(1.0));
        assert!(row.get("ndcg_cut_10").is_some() && row.get("recall_1000").is_some());
    }
}
