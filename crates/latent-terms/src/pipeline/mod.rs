//! The end-to-end Latent Terms pipeline: encode → SAE → latent-term index → evaluate,
//! with the paper-style report.
//!
//! [`run`] takes a BEIR dataset and a dense model directory and
//!
//! 1. encodes the corpus and queries with the dense backbone (or reuses given stores),
//! 2. trains a sparse autoencoder on the corpus (and query) embeddings, optionally
//!    pooled with further stores ([`PipelineConfig::extra_training_stores`]),
//! 3. encodes documents and queries into latents (top-k, a larger k than trained with
//!    is allowed) and indexes documents by their latent terms,
//! 4. tunes inference k and the scorers' parameters on a training split when the
//!    dataset has one (never on the test qrels),
//! 5. runs lexical BM25, dense, dense over SAE reconstructions, BM25 over latents,
//!    CL-SR, the latent dot product and two hybrids, and evaluates them on the judged
//!    test queries,
//! 6. writes `results.json`, `results.md`, a Zipf plot and the runs.
//!
//! Every stage's artefacts are cached under a key of its inputs ([`CacheKey`]), so a
//! second run with the same inputs only re-evaluates.

mod cache;
mod chunks;
mod config;
mod latent_index;
mod limit;
mod mismatch;
mod report;
mod zipf;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use latent_terms_encoders::{
    Embeddings, EmbeddingsStore, Encoder, Metric, SearchOptions as DenseOptions, StoreDtype,
    StoreWriter, TextKind, search as dense_search,
};
use latent_terms_eval::beir::{BeirDataset, Query as TextQuery};
use latent_terms_eval::fusion::{Normalization, linear_fusion, reciprocal_rank_fusion};
use latent_terms_eval::{Evaluator, Measure, Qrels, Run, stats};
use latent_terms_sae::{EncodeOptions, SaeEncoder, SaeWeights, SparseCode};
use latent_terms_sparse_index::{
    Analyzer, Bm25, Bm25Params, ClSr, ClSrParams, DotProduct, Index, Query, Scorer,
};
use serde::{Deserialize, Serialize};

pub use cache::{CacheKey, FULL_HASH_LIMIT};
pub use chunks::{max_pool, strongest, window_id, window_owner, word_windows};
pub use config::{
    ChunkSettings, EncoderSettings, InferenceSettings, PipelineConfig, SaeSettings,
    ScoringSettings, TuningSettings,
};
pub use latent_index::{LatentIndex, code_to_query, code_to_vector};
pub use limit::{LimitCollection, LimitSpec, generate_limit, write_limit};
pub use mismatch::{MismatchSet, mismatch_sets, missed_queries, reciprocal_rank_at};
pub use report::{Artifacts, ChosenParams, MethodRow, Report, write_atomic};
pub use zipf::{ZipfCurve, ZipfReport, curve as zipf_curve, fit_exponent, zipf_report};

use crate::error::{Error, Result};
use crate::lexical::LexicalIndex;

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
const SAE_CHUNK: usize = 512;

struct Clock {
    seconds: BTreeMap<String, f64>,
    cached: Vec<String>,
    keys: BTreeMap<String, String>,
}

impl Clock {
    fn time<T>(&mut self, stage: &str, f: impl FnOnce(&mut bool) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut cached = false;
        let out = f(&mut cached)?;
        self.seconds
            .insert(stage.to_owned(), start.elapsed().as_secs_f64());
        if cached {
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

/// Encodes `(id, text)` items into an embeddings store at `path`.
pub fn encode_to_store(
    encoder: &Encoder,
    kind: TextKind,
    items: impl Iterator<Item = latent_terms_eval::Result<(String, String)>>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<usize> {
    let mut writer = StoreWriter::create(path, encoder.store_metadata(), StoreDtype::F32)?;
    let mut chunk: Vec<(String, String)> = Vec::with_capacity(ENCODE_CHUNK);
    let mut total = 0;
    let mut flush = |chunk: &mut Vec<(String, String)>| -> Result<usize> {
        writer.append(&encoder.encode(kind, chunk)?)?;
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
    writer.finish()?;
    Ok(total)
}

/// Encodes rows into latents in blocks, reporting progress.
fn encode_latents(
    sae: &SaeEncoder,
    rows: &[f32],
    k: usize,
    progress: &dyn Progress,
) -> Result<Vec<SparseCode>> {
    let dim = sae.d_in();
    let mut codes = Vec::with_capacity(rows.len() / dim.max(1));
    for block in rows.chunks(SAE_CHUNK * dim.max(1)) {
        codes.extend(sae.encode(block, &EncodeOptions::top_k(k))?);
        progress.advance((block.len() / dim.max(1)) as u64);
    }
    Ok(codes)
}

/// Rows of `emb` for `ids`, in that order.
fn gather(emb: &Embeddings, index: &HashMap<&str, usize>, ids: &[String]) -> Result<Vec<f32>> {
    let dim = emb.dim();
    let mut out = Vec::with_capacity(ids.len() * dim);
    for id in ids {
        let &row = index.get(id.as_str()).ok_or_else(|| {
            Error::Invalid(format!(
                "query {id:?} has no embedding; re-encode the queries"
            ))
        })?;
        out.extend_from_slice(&emb.data()[row * dim..(row + 1) * dim]);
    }
    Ok(out)
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

fn dense_run_rows(
    query_ids: &[String],
    query_rows: Vec<f32>,
    docs: &Embeddings,
    depth: usize,
    tag: &str,
) -> Result<Run> {
    let queries = Embeddings::new(query_ids.to_vec(), docs.dim(), query_rows)?;
    let hits = dense_search(
        &queries,
        docs,
        &DenseOptions::top(depth).metric(Metric::Dot),
    )?;
    let mut run = Run::new(tag);
    for (qid, hits) in query_ids.iter().zip(&hits) {
        run.extend_query(qid, hits.iter().map(|(d, s)| (d.as_str(), f64::from(*s))))?;
    }
    Ok(run)
}

/// What the SAE stage leaves in the cache beside the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SaeSummary {
    training_nmse: f64,
    validation_nmse: Option<f64>,
    dead_fraction: f64,
    rows: usize,
    corpus: String,
}

/// The summary of an SAE trained elsewhere, from the `<stem>.log.json` that
/// `latent-terms sae train` writes beside it (NaN where there is no log).
fn given_sae_summary(sae: &Path) -> SaeSummary {
    let stem = sae
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let log: Option<serde_json::Value> =
        std::fs::read(sae.with_file_name(format!("{stem}.log.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    let get = |k: &str| log.as_ref().and_then(|l| l["summary"][k].as_f64());
    let stores: Vec<String> = log
        .as_ref()
        .and_then(|l| l["embeddings"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    SaeSummary {
        training_nmse: get("nmse").unwrap_or(f64::NAN),
        validation_nmse: get("validation_nmse"),
        dead_fraction: get("dead_fraction").unwrap_or(f64::NAN),
        rows: log.as_ref().and_then(|l| l["rows"].as_u64()).unwrap_or(0) as usize,
        corpus: if stores.is_empty() {
            format!("given SAE {}", sae.display())
        } else {
            format!(
                "given SAE {}, trained on {}",
                sae.display(),
                stores.join(" + ")
            )
        },
    }
}

/// Every document of the dataset must have a dense
/// embedding: stores given with `--corpus-emb` may come from another corpus.
fn check_covers(store: &Path, ids: &[String], dataset: &BeirDataset) -> Result<()> {
    let have: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut missing = Vec::new();
    let mut docs = 0usize;
    for doc in dataset.corpus()? {
        let doc = doc?;
        docs += 1;
        if !have.contains(doc.id.as_str()) {
            missing.push(doc.id);
        }
    }
    if missing.is_empty() && have.len() > docs {
        return Err(Error::Invalid(format!(
            "{}: {} embeddings for a dataset of {docs} documents; they were made from another \
             corpus: re-encode it (`latent-terms encode --dataset ...`) or leave out --corpus-emb",
            store.display(),
            have.len()
        )));
    }
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Error::Invalid(format!(
            "{}: the corpus embeddings lack {} of the dataset's documents (e.g. {first:?}); \
             they were made from another corpus: re-encode it (`latent-terms encode --dataset ...`) \
             or leave out --corpus-emb",
            store.display(),
            missing.len()
        ))),
    }
}

/// Queries of a split with their judgments, minus the test queries, capped.
fn tuning_split(
    dataset: &BeirDataset,
    config: &PipelineConfig,
    test: &Qrels,
    queries: &[TextQuery],
) -> Result<Option<(String, Qrels, Vec<String>)>> {
    if !config.tuning.enabled {
        return Ok(None);
    }
    for split in &config.tuning.splits {
        if split == &config.test_split {
            continue;
        }
        let path = dataset.root().join("qrels").join(format!("{split}.tsv"));
        if !path.is_file() {
            continue;
        }
        let all = dataset.qrels(split)?;
        let have: std::collections::HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
        let mut qrels = Qrels::new();
        let mut ids = Vec::new();
        for j in all.iter() {
            if test.get(j.qid()).is_some() || !have.contains(j.qid()) || j.num_relevant(1) == 0 {
                continue;
            }
            if ids.len() >= config.tuning.max_queries {
                break;
            }
            ids.push(j.qid().to_owned());
            for (d, r) in j.iter() {
                qrels.insert(j.qid(), d, r);
            }
        }
        if !ids.is_empty() {
            return Ok(Some((split.clone(), qrels, ids)));
        }
    }
    Ok(None)
}

fn clsr(k1: f32, b: f32, k2: f32) -> Result<ClSr> {
    Ok(ClSr::new(ClSrParams {
        k1,
        b,
        k2,
        ..Default::default()
    })?)
}

fn lt_bm25(k1: f32, b: f32) -> Result<Bm25> {
    Ok(Bm25::new(Bm25Params {
        k1,
        b,
        ..Default::default()
    })?)
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
    let mut best_clsr = (f64::NEG_INFINITY, (s.clsr_k1, s.clsr_b, s.clsr_k2));
    for &k1 in &g.clsr_k1 {
        for &b in &g.clsr_b {
            for &k2 in &g.clsr_k2 {
                let v = score(&index, &qs, &clsr(k1, b, k2)?)?;
                progress.advance(1);
                if v > best_clsr.0 {
                    best_clsr = (v, (k1, b, k2));
                }
            }
        }
    }
    let mut best_bm25 = (f64::NEG_INFINITY, (s.lt_bm25_k1, s.lt_bm25_b));
    for &k1 in &g.lt_bm25_k1 {
        for &b in &g.lt_bm25_b {
            let v = score(&index, &qs, &lt_bm25(k1, b)?)?;
            progress.advance(1);
            if v > best_bm25.0 {
                best_bm25 = (v, (k1, b));
            }
        }
    }
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
    let mut best_w = (f64::NEG_INFINITY, s.linear_weight);
    for &w in &g.linear_weight {
        let fused = linear_fusion(
            &[t.lexical, &latent_run],
            &[1.0 - w, w],
            Normalization::MinMax,
            t.depth,
            "lin",
        )?;
        let v = ndcg10(t.qrels, &fused);
        progress.advance(1);
        if v > best_w.0 {
            best_w = (v, w);
        }
    }
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

fn cached_run(path: &Path, cached: &mut bool, f: impl FnOnce() -> Result<Run>) -> Result<Run> {
    if path.is_file() {
        *cached = true;
        return Ok(Run::from_path(path)?);
    }
    *cached = false;
    let run = f()?;
    run.save(path, None)?;
    Ok(run)
}

#[cfg(any(feature = "flex", feature = "ndarray", feature = "cuda"))]
fn train_sae(
    rows: &[f32],
    dim: usize,
    s: &SaeSettings,
    progress: &dyn Progress,
) -> Result<(SaeWeights, f64, Option<f64>, f64)> {
    use latent_terms_sae::train::{Backend, TrainConfig, TrainSet, Trainer};
    let kind: latent_terms_sae::SaeKind = s.kind.parse()?;
    let n = rows.len() / dim.max(1);
    let mut tc = TrainConfig::new(kind, s.d_sae, s.k);
    tc.epochs = s.epochs;
    tc.batch_size = s.batch_size.min(n.max(1));
    tc.optim.lr = s.lr;
    tc.aux.coef = s.aux_coef;
    tc.validation_fraction = s.validation_fraction;
    tc.seed = s.seed;
    let set = TrainSet::new(rows, dim)?;
    let trainer = Trainer::new(tc, Backend::default_cpu()?)?;
    let mut started = false;
    let mut last = 0;
    let outcome = trainer.train(&set, &mut |m| {
        if !started {
            progress.begin("SAE training (steps)", Some(m.total_steps));
            started = true;
        }
        progress.advance(m.step.saturating_sub(last));
        last = m.step;
    })?;
    progress.end();
    let sm = outcome.summary;
    Ok((
        outcome.weights,
        sm.nmse,
        sm.validation_nmse,
        sm.dead_fraction,
    ))
}

#[cfg(not(any(feature = "flex", feature = "ndarray", feature = "cuda")))]
fn train_sae(
    _: &[f32],
    _: usize,
    _: &SaeSettings,
    _: &dyn Progress,
) -> Result<(SaeWeights, f64, Option<f64>, f64)> {
    Err(Error::Invalid(
        "this build has no SAE training backend; enable the flex, ndarray or cuda feature".into(),
    ))
}

/// Runs the whole pipeline and writes the report into `inputs.out`.
pub fn run(
    inputs: &PipelineInputs,
    config: &PipelineConfig,
    progress: &dyn Progress,
) -> Result<Report> {
    config.validate()?;
    let mut clock = Clock {
        seconds: BTreeMap::new(),
        cached: Vec::new(),
        keys: BTreeMap::new(),
    };
    let cache = &inputs.cache;
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    std::fs::create_dir_all(&inputs.out).map_err(|e| Error::io(&inputs.out, e))?;
    let dataset = BeirDataset::open(&inputs.dataset)?;
    let name = dataset.name();
    let test_qrels = dataset.qrels(&config.test_split)?;
    let all_queries = dataset.queries()?;
    let test_ids: Vec<String> = all_queries
        .iter()
        .filter(|q| test_qrels.get(&q.id).is_some())
        .map(|q| q.id.clone())
        .collect();
    let test_text: Vec<TextQuery> = all_queries
        .iter()
        .filter(|q| test_qrels.get(&q.id).is_some())
        .cloned()
        .collect();
    if test_ids.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no query of queries.jsonl is judged in qrels/{}.tsv",
            inputs.dataset.display(),
            config.test_split
        )));
    }
    let tuning = tuning_split(&dataset, config, &test_qrels, &all_queries)?;

    // 1. Dense embeddings.
    let emb_key = match &inputs.embeddings {
        Some((c, q)) => CacheKey::new("emb-given").file(c)?.file(q)?.finish(),
        None => CacheKey::new("emb")
            .dir(&inputs.model)?
            .dir(dataset.root())?
            .finish(),
    };
    clock.keys.insert("embeddings".into(), emb_key.clone());
    let (corpus_path, query_path) = match &inputs.embeddings {
        Some((c, q)) => (c.clone(), q.clone()),
        None => {
            let dir = cache.join(format!("emb-{emb_key}"));
            (
                dir.join("corpus.safetensors"),
                dir.join("queries.safetensors"),
            )
        }
    };
    clock.time("encode", |cached| {
        if corpus_path.is_file() && query_path.is_file() {
            *cached = true;
            return Ok(());
        }
        if let Some(dir) = corpus_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let encoder = Encoder::builder(&inputs.model)
            .batch_size(config.encoder.batch_size)
            .intra_threads(config.encoder.threads)
            .build()?;
        progress.begin("encoding corpus", None);
        let docs = dataset
            .corpus()?
            .map(|d| d.map(|d| (d.id.clone(), d.full_text())));
        encode_to_store(&encoder, TextKind::Passage, docs, &corpus_path, progress)?;
        progress.end();
        progress.begin("encoding queries", Some(all_queries.len() as u64));
        let qs = all_queries
            .iter()
            .map(|q| Ok((q.id.clone(), q.text.clone())));
        encode_to_store(&encoder, TextKind::Query, qs, &query_path, progress)?;
        progress.end();
        Ok(())
    })?;
    let corpus_store = EmbeddingsStore::open(&corpus_path)?;
    let query_store = EmbeddingsStore::open(&query_path)?;
    corpus_store.check(query_store.metadata())?;
    let corpus = corpus_store.load()?;
    let query_emb = query_store.load()?;
    check_covers(&corpus_path, corpus.ids(), &dataset)?;
    let dim = corpus.dim();
    let query_row: HashMap<&str, usize> = query_emb
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();

    // 1b. Window embeddings (chunking): encoded once, used to train the SAE and to
    // encode documents.
    let windows_path = if config.chunking.enabled {
        let c = &config.chunking;
        let key = CacheKey::new("windows")
            .key(&emb_key)
            .dir(&inputs.model)?
            .dir(dataset.root())?
            .num(c.words as u64)
            .num(c.stride as u64)
            .finish();
        clock.keys.insert("windows".into(), key.clone());
        let path = cache.join(format!("windows-{key}.safetensors"));
        clock.time("encode_windows", |cached| {
            if path.is_file() {
                *cached = true;
                return Ok(());
            }
            let encoder = Encoder::builder(&inputs.model)
                .batch_size(config.encoder.batch_size)
                .intra_threads(config.encoder.threads)
                .build()?;
            let mut windows: Vec<(String, String)> = Vec::new();
            for doc in dataset.corpus()? {
                let doc = doc?;
                for (n, w) in word_windows(&doc.full_text(), c.words, c.stride)
                    .into_iter()
                    .enumerate()
                {
                    windows.push((window_id(&doc.id, n), w));
                }
            }
            progress.begin("encoding windows", Some(windows.len() as u64));
            encode_to_store(
                &encoder,
                TextKind::Passage,
                windows.into_iter().map(Ok),
                &path,
                progress,
            )?;
            progress.end();
            Ok(())
        })?;
        Some(path)
    } else {
        None
    };

    // 2. SAE.
    if let Some(given) = &inputs.sae {
        let key = CacheKey::new("sae-given").file(given)?.finish();
        clock.keys.insert("sae".into(), key);
    }
    let mut sae_key = CacheKey::new("sae")
        .key(&emb_key)
        .str(&serde_json::to_string(&config.sae).unwrap_or_default())
        .num(u64::from(config.train_on_queries));
    if let Some(key) = clock.keys.get("windows") {
        sae_key = sae_key.key(key);
    }
    for p in &config.extra_training_stores {
        sae_key = sae_key.file(p)?;
    }
    let sae_key = match &inputs.sae {
        Some(_) => clock.keys["sae"].clone(),
        None => sae_key.finish(),
    };
    clock.keys.insert("sae".into(), sae_key.clone());
    let sae_path = inputs
        .sae
        .clone()
        .unwrap_or_else(|| cache.join(format!("sae-{sae_key}.safetensors")));
    let summary_path = cache.join(format!("sae-{sae_key}.summary.json"));
    let (weights, summary) = clock.time("sae_train", |cached| {
        if let Some(given) = &inputs.sae {
            *cached = true;
            let weights = SaeWeights::load(given)?;
            return Ok((weights, given_sae_summary(given)));
        }
        if sae_path.is_file() && summary_path.is_file() {
            let text =
                std::fs::read_to_string(&summary_path).map_err(|e| Error::io(&summary_path, e))?;
            if let Ok(summary) = serde_json::from_str::<SaeSummary>(&text) {
                *cached = true;
                return Ok((SaeWeights::load(&sae_path)?, summary));
            }
        }
        let mut rows: Vec<f32> = corpus.data().to_vec();
        let mut parts = vec![format!("{name} corpus ({} passages)", corpus.rows())];
        if config.train_on_queries {
            rows.extend_from_slice(query_emb.data());
            parts.push(format!(
                "{name} queries ({}, all splits, text only)",
                query_emb.rows()
            ));
        }
        if let Some(path) = &windows_path {
            let store = EmbeddingsStore::open(path)?;
            corpus_store.check(store.metadata())?;
            rows.extend_from_slice(store.load()?.data());
            parts.push(format!("{name} passage windows ({} rows)", store.rows()));
        }
        for p in &config.extra_training_stores {
            let store = EmbeddingsStore::open(p)?;
            corpus_store.check(store.metadata())?;
            rows.extend_from_slice(store.load()?.data());
            parts.push(format!("{} ({} rows)", p.display(), store.rows()));
        }
        let n = rows.len() / dim.max(1);
        progress.note(&format!(
            "training the SAE on {n} rows: {}",
            parts.join(" + ")
        ));
        let (weights, training_nmse, validation_nmse, dead_fraction) =
            train_sae(&rows, dim, &config.sae, progress)?;
        weights.save(&sae_path)?;
        let summary = SaeSummary {
            training_nmse,
            validation_nmse,
            dead_fraction,
            rows: n,
            corpus: parts.join(" + "),
        };
        write_atomic(
            &summary_path,
            serde_json::to_string_pretty(&summary)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        Ok((weights, summary))
    })?;
    let d_sae = weights.config.d_sae;
    let sae = SaeEncoder::new(weights)?;

    // 3. Latent codes.
    let (max_dk, max_qk) = config.max_inference_k();
    let (max_dk, max_qk) = (max_dk.min(d_sae), max_qk.min(d_sae));
    let tune_ids: Vec<String> = tuning.as_ref().map(|t| t.2.clone()).unwrap_or_default();
    let test_rows = gather(&query_emb, &query_row, &test_ids)?;
    let tune_rows = gather(&query_emb, &query_row, &tune_ids)?;
    let (doc_codes, test_codes, tune_codes, recon_docs, recon_queries) =
        clock.time("sae_encode", |_| {
            let n = corpus.rows() * 2 + test_ids.len() * 2 + tune_ids.len();
            progress.begin("encoding latents", Some(n as u64));
            let doc_codes = encode_latents(&sae, corpus.data(), max_dk, progress)?;
            let test_codes = encode_latents(&sae, &test_rows, max_qk, progress)?;
            let tune_codes = encode_latents(&sae, &tune_rows, max_qk, progress)?;
            let k = config.sae.k;
            let recon_docs = sae.decode(&encode_latents(&sae, corpus.data(), k, progress)?);
            let recon_queries = sae.decode(&encode_latents(&sae, &test_rows, k, progress)?);
            progress.end();
            Ok((doc_codes, test_codes, tune_codes, recon_docs, recon_queries))
        })?;
    let corpus_nmse = nmse(corpus.data(), &recon_docs, dim);
    let doc_ids = corpus.ids().to_vec();

    // 3b. Window-level document codes, max-pooled into the whole-text codes.
    let doc_codes = if let Some(path) = &windows_path {
        let c = &config.chunking;
        clock.time("sae_encode_windows", |_| {
            let store = EmbeddingsStore::open(path)?;
            corpus_store.check(store.metadata())?;
            let windows = store.load()?;
            progress.begin("encoding window latents", Some(windows.rows() as u64));
            let codes = encode_latents(&sae, windows.data(), c.window_k.min(d_sae), progress)?;
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

    // 4. Lexical BM25.
    let runs_key = CacheKey::new("runs")
        .key(&sae_key)
        .dir(dataset.root())?
        .dir(&dataset.root().join("qrels"))?
        .str(&serde_json::to_string(config).unwrap_or_default())
        .finish();
    clock.keys.insert("runs".into(), runs_key.clone());
    let runs_dir = cache.join(format!("runs-{runs_key}"));
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    let lexical_path = cache.join(format!(
        "lexical-{}.idx",
        CacheKey::new("lexical").dir(dataset.root())?.finish()
    ));
    let lexical = clock.time("lexical_index", |cached| {
        if lexical_path.is_file() {
            *cached = true;
            return Ok(LexicalIndex::from_index(Index::open(&lexical_path)?));
        }
        let index = LexicalIndex::build(&dataset)?;
        index.index().save(&lexical_path)?;
        Ok(index)
    })?;
    let tune_text: Vec<TextQuery> = all_queries
        .iter()
        .filter(|q| tune_ids.contains(&q.id))
        .cloned()
        .collect();
    let (bm25_run, bm25_tune) = clock.time("lexical_search", |cached| {
        let test = cached_run(&runs_dir.join("bm25.run"), cached, || {
            lexical.run(&test_text, &Bm25::default(), config.depth, "bm25")
        })?;
        let tune = lexical.run(&tune_text, &Bm25::default(), config.depth, "bm25")?;
        Ok((test, tune))
    })?;

    // 5. Tuning.
    let params_path = runs_dir.join("params.json");
    let params = clock.time("tune", |cached| {
        if let Ok(text) = std::fs::read_to_string(&params_path)
            && let Ok(p) = serde_json::from_str::<ChosenParams>(&text) {
                *cached = true;
                return Ok(p);
            }
        let s = &config.scoring;
        let params = match &tuning {
            Some((split, qrels, ids)) => {
                let mut tuned_config = config.clone();
                tuned_config.tuning.doc_k.retain(|&k| k <= max_dk);
                tuned_config.tuning.query_k.retain(|&k| k <= max_qk);
                let t = TuneInputs {
                    qrels,
                    ids,
                    doc_ids: &doc_ids,
                    doc_codes: &doc_codes,
                    query_codes: &tune_codes,
                    lexical: &bm25_tune,
                    depth: config.depth,
                };
                tune(&t, &tuned_config, split, progress)?
            }
            None => ChosenParams {
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
        write_atomic(&params_path, serde_json::to_string_pretty(&params).unwrap_or_default().as_bytes())?;
        Ok(params)
    })?;

    // 6. Latent index and runs.
    let latent_path = runs_dir.join("latent.idx");
    let latent = clock.time("latent_index", |cached| {
        if latent_path.is_file() {
            *cached = true;
            return Ok(LatentIndex::from_index(Index::open(&latent_path)?));
        }
        let index = LatentIndex::build(&doc_ids, &doc_codes, Some(params.doc_k))?;
        index.index().save(&latent_path)?;
        Ok(index)
    })?;
    let test_queries = queries_at(&test_ids, &test_codes, params.query_k)?;
    let depth = config.depth;
    let methods = [
        "dense",
        "dense-reconstructed",
        "lt-bm25",
        "clsr",
        "clsr-dot",
    ];
    let mut runs: Vec<(String, Run)> = vec![("bm25".into(), bm25_run.clone())];
    clock.time("search", |all_cached| {
        *all_cached = true;
        progress.begin("searching", Some(methods.len() as u64));
        for m in methods {
            let mut cached = false;
            let run = cached_run(
                &runs_dir.join(format!("{m}.run")),
                &mut cached,
                || match m {
                    "dense" => dense_run_rows(&test_ids, test_rows.clone(), &corpus, depth, m),
                    "dense-reconstructed" => {
                        let docs = Embeddings::new(doc_ids.clone(), dim, recon_docs.clone())?;
                        dense_run_rows(&test_ids, recon_queries.clone(), &docs, depth, m)
                    }
                    "lt-bm25" => latent.run(
                        &test_queries,
                        &lt_bm25(params.lt_bm25.0, params.lt_bm25.1)?,
                        depth,
                        m,
                    ),
                    "clsr" => latent.run(
                        &test_queries,
                        &clsr(params.clsr.0, params.clsr.1, params.clsr.2)?,
                        depth,
                        m,
                    ),
                    _ => latent.run(&test_queries, &DotProduct, depth, m),
                },
            )?;
            *all_cached &= cached;
            runs.push((m.to_owned(), run));
            progress.advance(1);
        }
        progress.end();
        Ok(())
    })?;
    let find =
        |runs: &[(String, Run)], m: &str| runs.iter().find(|r| r.0 == m).map(|r| r.1.clone());
    let best = find(&runs, &params.hybrid_latent)
        .ok_or_else(|| Error::Invalid("no hybrid latent run".into()))?;
    let dense = find(&runs, "dense").ok_or_else(|| Error::Invalid("no dense run".into()))?;
    let rrf = reciprocal_rank_fusion(
        &[&bm25_run, &best],
        config.scoring.rrf_k,
        depth,
        "hybrid-rrf",
    )?;
    let w = params.linear_weight;
    let linear = linear_fusion(
        &[&bm25_run, &best],
        &[1.0 - w, w],
        Normalization::MinMax,
        depth,
        "hybrid-linear",
    )?;
    let rrf_dense = reciprocal_rank_fusion(
        &[&bm25_run, &dense],
        config.scoring.rrf_k,
        depth,
        "rrf-bm25-dense",
    )?;
    runs.push(("hybrid-rrf".into(), rrf));
    runs.push(("hybrid-linear".into(), linear));
    runs.push(("rrf-bm25-dense".into(), rrf_dense));

    // 7. Evaluation and analyses.
    let report = clock.time("evaluate", |_| {
        let rows: Vec<MethodRow> = runs
            .iter()
            .map(|(m, r)| evaluate_row(m, &test_qrels, r))
            .collect();
        let recon = find(&runs, "dense-reconstructed")
            .ok_or_else(|| Error::Invalid("no reconstructed run".into()))?;
        let spearman = stats::spearman(&dense, &recon, 100).map(|m| m.mean);
        let latent_stats = latent.index().statistics()?;
        let lexical_stats = lexical.index().statistics()?;
        let query_vectors: Vec<Query> = test_queries.iter().map(|q| q.1.clone()).collect();
        let flops = latent.index().flops(&query_vectors)?;
        let analyzer = Analyzer::english();
        let lexical_queries: Vec<Query> = match lexical.index().vocabulary() {
            Some(v) => test_text
                .iter()
                .map(|q| v.query(&analyzer, &q.text))
                .collect(),
            None => Vec::new(),
        };
        let lexical_flops = lexical.index().flops(&lexical_queries)?;
        let zipf = zipf_report(
            &lexical_stats,
            &latent_stats,
            Some(&inputs.out.join("zipf.png")),
        )?;
        let named: Vec<(String, &Run)> = runs.iter().map(|(m, r)| (m.clone(), r)).collect();
        let mismatch = mismatch_sets(&test_qrels, &bm25_run, &named, &[1000, 100, 10]);
        let avg_q = if query_vectors.is_empty() {
            0.0
        } else {
            query_vectors.iter().map(Query::len).sum::<usize>() as f64 / query_vectors.len() as f64
        };
        Ok(Report {
            dataset: name.clone(),
            docs: corpus.rows(),
            queries: test_ids.len(),
            rows,
            nmse: corpus_nmse,
            training_nmse: summary.training_nmse,
            validation_nmse: summary.validation_nmse,
            dead_fraction: summary.dead_fraction,
            spearman_dense_vs_reconstructed: spearman,
            avg_latents_per_doc: latent_stats.avg_terms_per_doc,
            avg_latents_per_query: avg_q,
            flops,
            lexical_flops,
            index_bytes: latent_stats.index_size_bytes,
            lexical_index_bytes: lexical_stats.index_size_bytes,
            latents_used: latent_stats.vocabulary_used,
            d_sae,
            stage_seconds: BTreeMap::new(),
            cached_stages: Vec::new(),
            sae_training_corpus: summary.corpus.clone(),
            sae_training_rows: summary.rows,
            params: params.clone(),
            zipf,
            mismatch,
            config: config.clone(),
            cache_keys: BTreeMap::new(),
            artifacts: Artifacts::default(),
        })
    })?;
    let mut report = report;
    let runs_out = inputs.out.join("runs");
    std::fs::create_dir_all(&runs_out).map_err(|e| Error::io(&runs_out, e))?;
    for (m, r) in &runs {
        r.save(runs_out.join(format!("{m}.run")), None)?;
    }
    report.stage_seconds = clock.seconds;
    report.cached_stages = clock.cached;
    report.cache_keys = clock.keys;
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    report.artifacts = Artifacts {
        dataset: absolute(&inputs.dataset),
        corpus_embeddings: absolute(&corpus_path),
        query_embeddings: absolute(&query_path),
        sae: absolute(&sae_path),
        latent_index: absolute(&latent_path),
        lexical_index: absolute(&lexical_path),
        runs: absolute(&runs_out),
    };
    report.write(&inputs.out)?;
    Ok(report)
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
