//! The stages every run shares: the context (dataset, queries, qrels, tuning split),
//! dense embeddings, lexical BM25 and dense search.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use latent_terms_encoders::{
    Embeddings, EmbeddingsStore, Metric, SearchOptions as DenseOptions, TextKind, TokenStore,
    search as dense_search,
};
use latent_terms_eval::beir::{BeirDataset, Query as TextQuery};
use latent_terms_eval::{Qrels, Run};
use latent_terms_sae::SaeWeights;
use latent_terms_sparse_index::{Bm25, Index};

use super::config::PipelineConfig;
use super::tokens::{self, TokenStores};
use super::{
    CacheEntry, CacheKey, Clock, PipelineInputs, Progress, cached_run, encode_to_store, window_id,
    word_windows,
};
use crate::error::{Error, Result};
use crate::lexical::LexicalIndex;

/// What every stage reads: the inputs, the config and the dataset's queries and qrels.
pub(crate) struct Context<'a> {
    pub(crate) inputs: &'a PipelineInputs,
    pub(crate) config: &'a PipelineConfig,
    pub(crate) dataset: BeirDataset,
    pub(crate) name: String,
    pub(crate) test_qrels: Qrels,
    pub(crate) all_queries: Vec<TextQuery>,
    pub(crate) test_ids: Vec<String>,
    pub(crate) test_text: Vec<TextQuery>,
    /// The tuning split: its name, qrels and query ids.
    pub(crate) tuning: Option<(String, Qrels, Vec<String>)>,
}

impl<'a> Context<'a> {
    pub(crate) fn open(inputs: &'a PipelineInputs, config: &'a PipelineConfig) -> Result<Self> {
        let dataset = BeirDataset::open(&inputs.dataset)?;
        let name = dataset.name();
        let test_qrels = dataset.qrels(&config.test_split)?;
        let all_queries = dataset.queries()?;
        let test_text: Vec<TextQuery> = all_queries
            .iter()
            .filter(|q| test_qrels.get(&q.id).is_some())
            .cloned()
            .collect();
        let test_ids: Vec<String> = test_text.iter().map(|q| q.id.clone()).collect();
        if test_ids.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no query of queries.jsonl is judged in qrels/{}.tsv",
                inputs.dataset.display(),
                config.test_split
            )));
        }
        let tuning = tuning_split(&dataset, config, &test_qrels, &all_queries)?;
        Ok(Context {
            inputs,
            config,
            dataset,
            name,
            test_qrels,
            all_queries,
            test_ids,
            test_text,
            tuning,
        })
    }

    pub(crate) fn tune_ids(&self) -> &[String] {
        self.tuning.as_ref().map_or(&[], |t| t.2.as_slice())
    }
}

/// The dense stage's output: pooled embeddings of the corpus and queries (and windows).
pub(crate) struct DenseStage {
    pub(crate) key: String,
    pub(crate) corpus_path: PathBuf,
    pub(crate) query_path: PathBuf,
    pub(crate) store: EmbeddingsStore,
    pub(crate) corpus: Embeddings,
    pub(crate) queries: Embeddings,
    pub(crate) query_row: HashMap<String, usize>,
    /// Window embeddings (chunking), when on.
    pub(crate) windows: Option<PathBuf>,
}

/// Where the encode stage put (or found) its stores.
pub(crate) struct Encoded {
    /// Cache key of the pooled embeddings.
    pub(crate) key: String,
    pub(crate) corpus_path: PathBuf,
    pub(crate) query_path: PathBuf,
    /// Token stores, when the token representation runs.
    pub(crate) tokens: Option<TokenStores>,
}

/// Stage: the corpus and every query through the dense model, once: pooled embeddings
/// (or given stores) and, for the token representation, token stores, both from one
/// forward pass when both are missing.
pub(crate) fn encode_stage(
    ctx: &Context<'_>,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<Encoded> {
    let (inputs, config, dataset) = (ctx.inputs, ctx.config, &ctx.dataset);
    let cache = &inputs.cache;
    let key = match &inputs.embeddings {
        Some((c, q)) => CacheKey::new("emb-given").file(c)?.file(q)?.finish(),
        None => CacheKey::new("emb")
            .dir(&inputs.model)?
            .dir(dataset.root())?
            .str(&config.encoder.text_key())
            .finish(),
    };
    clock.keys.insert("embeddings".into(), key.clone());
    let (corpus_path, query_path) = match &inputs.embeddings {
        Some((c, q)) => (c.clone(), q.clone()),
        None => {
            let dir = cache.join(format!("emb-{key}"));
            (
                dir.join("corpus.safetensors"),
                dir.join("queries.safetensors"),
            )
        }
    };
    let tokens = if config.representation.tokens() {
        let stores = tokens::store_paths(ctx)?;
        clock.keys.insert("token_stores".into(), stores.key.clone());
        Some(stores)
    } else {
        None
    };
    // Stores the user gave are used as they are; stores in the cache must pass their seal.
    let pooled_entry = inputs
        .embeddings
        .is_none()
        .then(|| CacheEntry::new(&key, [corpus_path.clone(), query_path.clone()]));
    clock.time("encode", |stage| {
        let pooled_missing = match &pooled_entry {
            Some(entry) => !stage.lookup(entry),
            None => !(corpus_path.is_file() && query_path.is_file()),
        };
        let tokens_missing = tokens.as_ref().is_some_and(|t| match &t.entry {
            Some(entry) => !stage.lookup(entry),
            None => !(t.corpus.is_file() && t.queries.is_file()),
        });
        if !pooled_missing && !tokens_missing {
            stage.cached = true;
            return Ok(());
        }
        let pooled = pooled_missing.then_some((corpus_path.as_path(), query_path.as_path()));
        for path in [&corpus_path]
            .into_iter()
            .filter(|_| pooled_missing)
            .chain(tokens.iter().map(|t| &t.corpus))
        {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
        }
        let encoder = config.encoder.builder(&inputs.model)?.build()?;
        let pooled = match (&tokens, tokens_missing) {
            (Some(stores), true) => tokens::encode_stores(ctx, &encoder, stores, pooled, progress)?,
            _ => pooled,
        };
        // What the token pass could not write (a different maximum length), alone.
        if let Some((corpus_path, query_path)) = pooled {
            progress.begin("encoding corpus", None);
            let docs = dataset
                .corpus()?
                .map(|d| d.map(|d| (d.id.clone(), d.full_text())));
            encode_to_store(&encoder, TextKind::Passage, docs, corpus_path, progress)?;
            progress.end();
            progress.begin("encoding queries", Some(ctx.all_queries.len() as u64));
            let qs = ctx
                .all_queries
                .iter()
                .map(|q| Ok((q.id.clone(), q.text.clone())));
            encode_to_store(&encoder, TextKind::Query, qs, query_path, progress)?;
            progress.end();
        }
        if pooled_missing && let Some(entry) = &pooled_entry {
            entry.seal()?;
        }
        if tokens_missing && let Some(entry) = tokens.as_ref().and_then(|t| t.entry.as_ref()) {
            entry.seal()?;
        }
        Ok(())
    })?;
    Ok(Encoded {
        key,
        corpus_path,
        query_path,
        tokens,
    })
}

/// Checks the stores and any given SAE against the dataset and each other before any
/// training: a wrong dimension or a missing test query fails here, not after an hour.
pub(crate) fn check_inputs(ctx: &Context<'_>, encoded: &Encoded) -> Result<()> {
    let wanted: Vec<&String> = ctx.test_ids.iter().chain(ctx.tune_ids()).collect();
    let covers_queries = |path: &Path, ids: &[String]| -> Result<()> {
        let have: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let missing: Vec<&&String> = wanted
            .iter()
            .filter(|q| !have.contains(q.as_str()))
            .collect();
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(Error::Invalid(format!(
                "{}: {} of the {} test and tuning queries are missing (e.g. {first:?}); the store \
                 was made from other queries: encode this dataset's queries again",
                path.display(),
                missing.len(),
                wanted.len()
            ))),
        }
    };
    let sae_fits = |sae: &Path, dim: usize, store: &Path| -> Result<()> {
        let d_in = SaeWeights::load(sae)?.config.d_in;
        if d_in != dim {
            return Err(Error::Invalid(format!(
                "{}: the SAE reads {d_in}-dimensional vectors but {} holds {dim}-dimensional ones; \
                 use an SAE trained on this encoder's vectors",
                sae.display(),
                store.display()
            )));
        }
        Ok(())
    };
    let enc = &ctx.config.encoder;
    let prefix_is = |path: &Path, found: &str, wanted: &str, setting: &str| -> Result<()> {
        if found == wanted {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "{}: its texts were encoded with the prefix {found:?}, but the config's \
             encoder.{setting} is {wanted:?}; encode again with that prefix or change the setting",
            path.display()
        )))
    };
    if ctx.config.representation.pooled() || ctx.inputs.sae.is_some() {
        let queries = EmbeddingsStore::open(&encoded.query_path)?;
        covers_queries(&encoded.query_path, queries.ids())?;
        let corpus = EmbeddingsStore::open(&encoded.corpus_path)?;
        let q = &queries.metadata().prefix;
        prefix_is(&encoded.query_path, q, &enc.query_prefix, "query_prefix")?;
        let p = &corpus.metadata().prefix;
        prefix_is(
            &encoded.corpus_path,
            p,
            &enc.passage_prefix,
            "passage_prefix",
        )?;
        if let Some(sae) = &ctx.inputs.sae {
            sae_fits(sae, queries.dim(), &encoded.query_path)?;
        }
    }
    if let Some(stores) = &encoded.tokens {
        let queries = TokenStore::open(&stores.queries)?;
        covers_queries(&stores.queries, queries.ids())?;
        let corpus = TokenStore::open(&stores.corpus)?;
        check_covers(&stores.corpus, corpus.ids(), &ctx.dataset)?;
        let q = &queries.metadata().prefix;
        prefix_is(&stores.queries, q, &enc.query_prefix, "query_prefix")?;
        let p = &corpus.metadata().prefix;
        prefix_is(&stores.corpus, p, &enc.passage_prefix, "passage_prefix")?;
        if corpus.dim() != queries.dim() {
            return Err(Error::Invalid(format!(
                "{} holds {}-dimensional token vectors but {} holds {}-dimensional ones: \
                 both must come from the same encoder",
                stores.corpus.display(),
                corpus.dim(),
                stores.queries.display(),
                queries.dim()
            )));
        }
        if let Some(sae) = &ctx.inputs.token_sae {
            sae_fits(sae, corpus.dim(), &stores.corpus)?;
        }
    }
    Ok(())
}

/// Stage: the pooled embeddings of the corpus and every query, loaded and checked.
pub(crate) fn dense_stage(
    ctx: &Context<'_>,
    encoded: &Encoded,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<DenseStage> {
    let (config, dataset) = (ctx.config, &ctx.dataset);
    let (key, corpus_path, query_path) = (
        encoded.key.clone(),
        encoded.corpus_path.clone(),
        encoded.query_path.clone(),
    );
    let store = EmbeddingsStore::open(&corpus_path)?;
    let query_store = EmbeddingsStore::open(&query_path)?;
    store.check_queries(&query_store)?;
    let corpus = store.load()?;
    let queries = query_store.load()?;
    check_covers(&corpus_path, corpus.ids(), dataset)?;
    let query_row = queries
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();
    let windows = if config.chunking.enabled && config.representation.pooled() {
        Some(windows_stage(ctx, &key, clock, progress)?)
    } else {
        None
    };
    Ok(DenseStage {
        key,
        corpus_path,
        query_path,
        store,
        corpus,
        queries,
        query_row,
        windows,
    })
}

/// Stage: every document also embedded as word windows (chunking), for the pooled SAE.
fn windows_stage(
    ctx: &Context<'_>,
    emb_key: &str,
    clock: &mut Clock,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let (inputs, config, dataset) = (ctx.inputs, ctx.config, &ctx.dataset);
    let c = &config.chunking;
    let key = CacheKey::new("windows")
        .key(emb_key)
        .str(&config.encoder.text_key())
        .dir(&inputs.model)?
        .dir(dataset.root())?
        .num(c.words as u64)
        .num(c.stride as u64)
        .finish();
    clock.keys.insert("windows".into(), key.clone());
    let path = inputs.cache.join(format!("windows-{key}.safetensors"));
    let entry = CacheEntry::new(&key, [path.clone()]);
    clock.time("encode_windows", |stage| {
        if stage.lookup(&entry) {
            stage.cached = true;
            return Ok(());
        }
        let encoder = config.encoder.builder(&inputs.model)?.build()?;
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
        entry.seal()?;
        Ok(())
    })?;
    Ok(path)
}

/// The lexical stage's output: the index, BM25's test run and its tuning-split run.
pub(crate) struct LexicalStage {
    pub(crate) key: String,
    pub(crate) path: PathBuf,
    pub(crate) index: LexicalIndex,
    pub(crate) test_run: Run,
    pub(crate) tune_run: Option<Run>,
}

/// Stage: lexical BM25 over the dataset's text (the baseline and the hybrids' partner).
pub(crate) fn lexical_stage(ctx: &Context<'_>, clock: &mut Clock) -> Result<LexicalStage> {
    let (config, cache) = (ctx.config, &ctx.inputs.cache);
    let key = CacheKey::new("lexical").dir(ctx.dataset.root())?.finish();
    let path = cache.join(format!("lexical-{key}.idx"));
    let entry = CacheEntry::new(&key, [path.clone()]);
    let index = clock.time("lexical_index", |stage| {
        if stage.lookup(&entry) {
            stage.cached = true;
            return Ok(LexicalIndex::from_index(Index::open(&path)?));
        }
        let index = LexicalIndex::build(&ctx.dataset)?;
        index.index().save(&path)?;
        entry.seal()?;
        Ok(index)
    })?;
    let runs_key = CacheKey::new("lexical-runs")
        .key(&key)
        .dir(&ctx.dataset.root().join("qrels"))?
        .str(&config.test_split)
        .num(config.depth as u64)
        .finish();
    let runs_dir = cache.join(format!("runs-{runs_key}"));
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    let tune_ids = ctx.tune_ids();
    let tune_text: Vec<TextQuery> = ctx
        .all_queries
        .iter()
        .filter(|q| tune_ids.contains(&q.id))
        .cloned()
        .collect();
    let (test_run, tune_run) = clock.time("lexical_search", |stage| {
        let test = cached_run(&runs_dir.join("bm25.run"), &runs_key, stage, || {
            index.run(&ctx.test_text, &Bm25::default(), config.depth, "bm25")
        })?;
        let tune = match ctx.tuning {
            Some(_) => Some(index.run(&tune_text, &Bm25::default(), config.depth, "bm25")?),
            None => None,
        };
        Ok((test, tune))
    })?;
    Ok(LexicalStage {
        key,
        path,
        index,
        test_run,
        tune_run,
    })
}

/// Stage: exact dense search of the test queries (the backbone's row).
pub(crate) fn dense_search_stage(
    ctx: &Context<'_>,
    dense: &DenseStage,
    clock: &mut Clock,
) -> Result<(Run, Vec<f32>)> {
    let test_rows = gather(&dense.queries, &dense.query_row, &ctx.test_ids)?;
    let key = CacheKey::new("dense-run")
        .key(&dense.key)
        .dir(&ctx.dataset.root().join("qrels"))?
        .str(&ctx.config.test_split)
        .num(ctx.config.depth as u64)
        .finish();
    let path = ctx.inputs.cache.join(format!("dense-{key}.run"));
    let run = clock.time("dense_search", |stage| {
        cached_run(&path, &key, stage, || {
            dense_run_rows(
                &ctx.test_ids,
                test_rows.clone(),
                &dense.corpus,
                ctx.config.depth,
                "dense",
            )
        })
    })?;
    Ok((run, test_rows))
}

/// Rows of `emb` for `ids`, in that order.
pub(crate) fn gather(
    emb: &Embeddings,
    index: &HashMap<String, usize>,
    ids: &[String],
) -> Result<Vec<f32>> {
    let dim = emb.dim();
    let mut out = Vec::with_capacity(ids.len() * dim);
    for id in ids {
        let &row = index.get(id).ok_or_else(|| {
            Error::Invalid(format!(
                "query {id:?} has no embedding; re-encode the queries"
            ))
        })?;
        out.extend_from_slice(&emb.data()[row * dim..(row + 1) * dim]);
    }
    Ok(out)
}

pub(crate) fn dense_run_rows(
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

/// Every document of the dataset must have a dense
/// embedding: stores given with `--corpus-emb` may come from another corpus.
pub(crate) fn check_covers(store: &Path, ids: &[String], dataset: &BeirDataset) -> Result<()> {
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
pub(crate) fn tuning_split(
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
