//! The `tokens` representation: an SAE over every token's hidden state, documents and
//! queries as bags of latent terms with real term frequencies (see [`crate::bag`]).
//!
//! Stages, each with a typed output and a cache key:
//!
//! 1. [`encode`]: corpus and queries into token stores (one forward pass per text);
//! 2. [`train`]: a TopK SAE on a sample of the stores' token rows, inputs scaled to a
//!    mean squared norm of `d`;
//! 3. [`bags`]: every text's tokens encoded into latents and summed into its bag;
//! 4. [`search`]: the bags indexed, searched with BM25 and CL-SR, fused with lexical BM25.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use latent_terms_encoders::{Encoder, SpecialTokens, StoreDtype, TextKind, TokenStore};
use latent_terms_eval::Run;
use latent_terms_eval::fusion::{Normalization, linear_fusion, reciprocal_rank_fusion};
use latent_terms_sae::{EncodeOptions, SaeEncoder, SaeWeights, SparseCode};
use latent_terms_sparse_index::{Index, IndexStats, Query, Scorer};
use serde::{Deserialize, Serialize};

use super::config::{PipelineConfig, TokenSettings};
use super::latent_index::{LatentIndex, code_to_query};
use super::report::{Latency, TokenReport};
use super::stages::{Context, LexicalStage};
use super::training::{SaeSummary, given_sae_summary, train_sae};
use super::{
    CacheKey, Clock, EncodeTargets, Progress, clsr, encode_texts, lt_bm25, ndcg10, write_atomic,
};
use crate::bag::{ActivationMean, BagOptions, QueryWeights, bag_of_latents, binary};
use crate::error::{Error, Result};

/// Texts read from a token store and encoded into latents together.
const TEXTS_PER_BLOCK: usize = 64;

/// The token stores of a dataset (stage 1).
#[derive(Clone, Debug)]
pub(crate) struct TokenStores {
    pub(crate) corpus: PathBuf,
    pub(crate) queries: PathBuf,
    pub(crate) key: String,
}

/// Where the token stores of a run are: given (`--corpus-tokens`, `--query-tokens`) or
/// in the cache under the model, the dataset and the token settings.
pub(crate) fn store_paths(ctx: &Context<'_>) -> Result<TokenStores> {
    if let Some((corpus, queries)) = &ctx.inputs.token_stores {
        return Ok(TokenStores {
            key: CacheKey::new("token-stores-given")
                .file(corpus)?
                .file(queries)?
                .finish(),
            corpus: corpus.clone(),
            queries: queries.clone(),
        });
    }
    let t = &ctx.config.tokens;
    let key = CacheKey::new("token-stores")
        .dir(&ctx.inputs.model)?
        .dir(ctx.dataset.root())?
        .str(&t.special_tokens)
        .num(t.max_length as u64)
        .finish();
    let dir = ctx.inputs.cache.join(format!("tokens-{key}"));
    Ok(TokenStores {
        corpus: dir.join("corpus.tokens"),
        queries: dir.join("queries.tokens"),
        key,
    })
}

/// Stage 1: the corpus and every query into token stores and, when `pooled` paths are
/// given and the token encoder's maximum length is the pooled encoder's, into pooled
/// embeddings stores too, from the same forward pass. Returns the pooled paths it could
/// not write (to be encoded apart).
pub(crate) fn encode_stores<'p>(
    ctx: &Context<'_>,
    pooled_encoder: &Encoder,
    stores: &TokenStores,
    pooled: Option<(&'p Path, &'p Path)>,
    progress: &dyn Progress,
) -> Result<Option<(&'p Path, &'p Path)>> {
    let (config, t) = (ctx.config, &ctx.config.tokens);
    let policy: SpecialTokens = t.special_tokens.parse()?;
    let mut builder = Encoder::builder(&ctx.inputs.model)
        .batch_size(config.encoder.batch_size)
        .intra_threads(config.encoder.threads)
        .special_tokens(policy);
    if t.max_length > 0 {
        builder = builder.max_length(t.max_length);
    }
    let encoder = builder.build()?;
    let (both, rest) = match pooled {
        Some(p) if encoder.info().max_length == pooled_encoder.info().max_length => (Some(p), None),
        other => (None, other),
    };
    for dir in [stores.corpus.parent(), stores.queries.parent()]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    progress.begin("encoding corpus (tokens)", None);
    let docs = ctx
        .dataset
        .corpus()?
        .map(|d| d.map(|d| (d.id.clone(), d.full_text())));
    encode_texts(
        &encoder,
        TextKind::Passage,
        docs,
        EncodeTargets {
            pooled: both.map(|b| (b.0, StoreDtype::F32)),
            tokens: Some(&stores.corpus),
        },
        progress,
    )?;
    progress.end();
    progress.begin(
        "encoding queries (tokens)",
        Some(ctx.all_queries.len() as u64),
    );
    let queries = ctx
        .all_queries
        .iter()
        .map(|q| Ok((q.id.clone(), q.text.clone())));
    encode_texts(
        &encoder,
        TextKind::Query,
        queries,
        EncodeTargets {
            pooled: both.map(|b| (b.1, StoreDtype::F32)),
            tokens: Some(&stores.queries),
        },
        progress,
    )?;
    progress.end();
    Ok(rest)
}

/// The trained token SAE (stage 2).
pub(crate) struct TokenSae {
    pub(crate) encoder: SaeEncoder,
    pub(crate) summary: SaeSummary,
    pub(crate) key: String,
}

/// Stage 2: a TopK SAE over a sample of token rows of the corpus (and, with
/// `train_on_queries`, the queries) plus the extra token stores.
pub(crate) fn train(
    stores: &TokenStores,
    given: Option<&Path>,
    config: &PipelineConfig,
    cache: &Path,
    cached: &mut bool,
    progress: &dyn Progress,
) -> Result<TokenSae> {
    let t = &config.tokens;
    let mut sources = vec![stores.corpus.clone()];
    if config.train_on_queries {
        sources.push(stores.queries.clone());
    }
    sources.extend(t.extra_training_stores.iter().cloned());
    if let Some(path) = given {
        *cached = true;
        let key = CacheKey::new("token-sae-given").file(path)?.finish();
        let weights = SaeWeights::load(path)?;
        return Ok(TokenSae {
            encoder: SaeEncoder::new(weights)?,
            summary: given_sae_summary(path),
            key,
        });
    }
    let mut key = CacheKey::new("token-sae")
        .key(&stores.key)
        .str(&serde_json::to_string(&t.sae).unwrap_or_default())
        .num(t.max_training_tokens as u64)
        .num(t.tokens_per_text.map_or(0, |n| n as u64 + 1))
        .num(u64::from(config.train_on_queries));
    for p in &t.extra_training_stores {
        key = key.file(p)?;
    }
    let key = key.finish();
    let path = cache.join(format!("token-sae-{key}.safetensors"));
    let summary_path = cache.join(format!("token-sae-{key}.summary.json"));
    if path.is_file()
        && let Ok(text) = std::fs::read_to_string(&summary_path)
        && let Ok(summary) = serde_json::from_str::<SaeSummary>(&text)
    {
        *cached = true;
        return Ok(TokenSae {
            encoder: SaeEncoder::new(SaeWeights::load(&path)?)?,
            summary,
            key,
        });
    }
    let sample = sample_rows(&sources, t, progress)?;
    let n = sample.rows.len() / sample.dim.max(1);
    if n < t.min_training_tokens {
        progress.note(&format!(
            "warning: only {n} token rows to train the token SAE on (fewer than {}): its \
             vocabulary will be poor. Add text: token stores of other collections \
             (`latent-terms encode --dataset D --out D.safetensors --tokens`, then \
             `--train-extra-tokens D.tokens`), or a trained token SAE (`--token-sae`)",
            t.min_training_tokens
        ));
    }
    progress.note(&format!(
        "training the token SAE on {n} token rows sampled from {} tokens: {}",
        sample.total,
        sample.parts.join(" + ")
    ));
    let (weights, training_nmse, validation_nmse, dead_fraction) =
        train_sae(&sample.rows, sample.dim, &t.sae, true, progress)?;
    weights.save(&path)?;
    let summary = SaeSummary {
        training_nmse,
        validation_nmse,
        dead_fraction,
        rows: n,
        corpus: sample.parts.join(" + "),
    };
    write_atomic(
        &summary_path,
        serde_json::to_string_pretty(&summary)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(TokenSae {
        encoder: SaeEncoder::new(weights)?,
        summary,
        key,
    })
}

struct Sample {
    rows: Vec<f32>,
    dim: usize,
    total: u64,
    parts: Vec<String>,
}

/// SplitMix64 of `x`: a fixed hash, so the sample repeats exactly for a seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Up to `max_training_tokens` token rows, each row kept with the same probability
/// (after an optional per-text cap), read block by block so only the sample is in memory.
fn sample_rows(sources: &[PathBuf], t: &TokenSettings, progress: &dyn Progress) -> Result<Sample> {
    let stores: Vec<TokenStore> = sources
        .iter()
        .map(TokenStore::open)
        .collect::<std::result::Result<_, _>>()?;
    let dim = stores.first().map_or(0, TokenStore::dim);
    if let Some(bad) = stores.iter().find(|s| s.dim() != dim) {
        return Err(Error::Invalid(format!(
            "token store {} has dimension {}, the corpus's has {dim}: they come from different models",
            bad.path().display(),
            bad.dim()
        )));
    }
    let capped = |s: &TokenStore| -> u64 {
        (0..s.texts())
            .map(|i| {
                let len = s.text_range(i).len();
                t.tokens_per_text.map_or(len, |c| len.min(c)) as u64
            })
            .sum()
    };
    let total: u64 = stores.iter().map(capped).sum();
    let keep = (t.max_training_tokens as f64 / total.max(1) as f64).min(1.0);
    let threshold = (keep * u64::MAX as f64) as u64;
    let seed = t.sae.seed;
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    progress.begin("sampling training tokens", Some(total));
    for (s, store) in stores.iter().enumerate() {
        let before = rows.len();
        for i in 0..store.texts() {
            let range = store.text_range(i);
            let len = range.len();
            let positions: Vec<usize> = match t.tokens_per_text {
                Some(cap) if len > cap => {
                    // A seeded partial shuffle: the first `cap` of a permutation.
                    let mut p: Vec<usize> = (0..len).collect();
                    for j in 0..cap {
                        let r = j
                            + (mix(seed ^ mix((s as u64) << 40 ^ (i as u64) << 8 ^ j as u64))
                                % (len - j) as u64) as usize;
                        p.swap(j, r);
                    }
                    p.truncate(cap);
                    p.sort_unstable();
                    p
                }
                _ => (0..len).collect(),
            };
            let chosen: Vec<usize> = positions
                .into_iter()
                .filter(|&p| {
                    keep >= 1.0
                        || mix(seed ^ mix(((s as u64) << 48) ^ (range.start + p) as u64))
                            <= threshold
                })
                .collect();
            if !chosen.is_empty() {
                let text_rows = store.read_rows(range.clone())?;
                for p in chosen {
                    rows.extend_from_slice(&text_rows[p * dim..(p + 1) * dim]);
                }
            }
            progress.advance(t.tokens_per_text.map_or(len, |c| len.min(c)) as u64);
        }
        parts.push(format!(
            "{} ({} of {} tokens)",
            store
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (rows.len() - before) / dim.max(1),
            store.tokens()
        ));
    }
    progress.end();
    if rows.is_empty() {
        return Err(Error::Invalid(
            "the token stores hold no token to train the token SAE on".into(),
        ));
    }
    Ok(Sample {
        rows,
        dim,
        total,
        parts,
    })
}

/// Bags of latent terms of the texts of a store (stage 3).
pub(crate) struct Bags {
    pub(crate) ids: Vec<String>,
    pub(crate) bags: Vec<SparseCode>,
    /// Mean non-zero token activation (the corpus's, from which `tf` is scaled).
    pub(crate) mean_activation: f64,
}

/// Stage 3: encodes every token of the texts of `store` (only `wanted` ones, when given)
/// into its top-k latents and sums each text's into its bag. `scale` divides activation
/// term frequencies; `None` uses the mean non-zero activation of these very texts (the
/// corpus), which is returned so queries can share it.
pub(crate) fn bags(
    sae: &SaeEncoder,
    store_path: &Path,
    wanted: Option<&HashSet<&str>>,
    t: &TokenSettings,
    scale: Option<f64>,
    progress: &dyn Progress,
) -> Result<Bags> {
    let store = TokenStore::open(store_path)?;
    if store.dim() != sae.d_in() {
        return Err(Error::Invalid(format!(
            "token store {} has dimension {}, the token SAE takes {}",
            store_path.display(),
            store.dim(),
            sae.d_in()
        )));
    }
    let k = t.k.unwrap_or(sae.weights().config.k).min(sae.d_sae());
    let dim = store.dim();
    let texts: Vec<usize> = (0..store.texts())
        .filter(|&i| wanted.is_none_or(|w| w.contains(store.ids()[i].as_str())))
        .collect();
    let mut ids = Vec::with_capacity(texts.len());
    let mut raw = Vec::with_capacity(texts.len());
    let mut mean = ActivationMean::default();
    let unscaled = BagOptions {
        tf: t.tf,
        scale: 1.0,
    };
    progress.begin("encoding token latents", Some(texts.len() as u64));
    for block in texts.chunks(TEXTS_PER_BLOCK) {
        let first = store.text_range(block[0]).start;
        let contiguous = block
            .windows(2)
            .all(|w| store.text_range(w[0]).end == store.text_range(w[1]).start);
        let (rows, offset) = if contiguous {
            let end = store.text_range(block[block.len() - 1]).end;
            (store.read_rows(first..end)?, first)
        } else {
            let mut rows = Vec::new();
            for &i in block {
                rows.extend(store.read_rows(store.text_range(i))?);
            }
            (rows, usize::MAX)
        };
        let codes = sae.encode(&rows, &EncodeOptions::top_k(k))?;
        let mut at = 0;
        for &i in block {
            let range = store.text_range(i);
            let start = if offset == usize::MAX {
                at
            } else {
                range.start - offset
            };
            let text_codes = &codes[start..start + range.len()];
            at += range.len();
            text_codes.iter().for_each(|c| mean.add(c));
            raw.push(bag_of_latents(text_codes, &unscaled));
            ids.push(store.ids()[i].clone());
        }
        progress.advance(block.len() as u64);
    }
    progress.end();
    let _ = dim;
    let mean_activation = scale.unwrap_or_else(|| mean.mean());
    if t.tf == crate::bag::TokenTf::Activation {
        let inv = 1.0 / mean_activation;
        for bag in &mut raw {
            bag.values
                .iter_mut()
                .for_each(|v| *v = (f64::from(*v) * inv) as f32);
        }
    }
    Ok(Bags {
        ids,
        bags: raw,
        mean_activation,
    })
}

/// What the token index stage keeps beside the index.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct IndexMeta {
    /// The corpus's mean non-zero activation (queries' tf is divided by it too).
    mean_activation: f64,
    /// Latents left out of documents and queries (`tokens.stop_df`), sorted.
    stop_latents: Vec<u32>,
}

/// Latents in more than `fraction` of the bags (the Zipf head: "stop latents"), sorted.
pub(crate) fn stop_latents(bags: &[SparseCode], fraction: f64) -> Vec<u32> {
    let mut df: HashMap<u32, usize> = HashMap::new();
    for bag in bags {
        for &l in &bag.indices {
            *df.entry(l).or_default() += 1;
        }
    }
    let limit = fraction * bags.len() as f64;
    let mut stop: Vec<u32> = df
        .into_iter()
        .filter(|&(_, n)| n as f64 > limit)
        .map(|(l, _)| l)
        .collect();
    stop.sort_unstable();
    stop
}

/// Removes the sorted `latents` from every bag.
pub(crate) fn remove_latents(bags: &mut [SparseCode], latents: &[u32]) {
    if latents.is_empty() {
        return;
    }
    for bag in bags {
        let keep: Vec<bool> = bag
            .indices
            .iter()
            .map(|l| latents.binary_search(l).is_err())
            .collect();
        let mut k = keep.iter();
        bag.indices.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        bag.values.retain(|_| *k.next().unwrap_or(&true));
    }
}

/// A bag as a query, weighted as the settings say.
pub(crate) fn to_query(bag: &SparseCode, weights: QueryWeights) -> Result<Query> {
    match weights {
        QueryWeights::Tf => code_to_query(bag, None),
        QueryWeights::Binary => code_to_query(&binary(bag), None),
    }
}

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
        });
    };
    let g = &config.tuning;
    let depth = config.depth;
    let score = |scorer: &dyn Scorer| -> Result<f64> {
        Ok(ndcg10(qrels, &s.index.run(queries, scorer, depth, "tune")?))
    };
    let total = g.lt_bm25_k1.len() * g.lt_bm25_b.len()
        + g.clsr_k1.len() * g.clsr_b.len() * g.clsr_k2.len()
        + g.linear_weight.len();
    progress.begin("tuning token scorers", Some(total as u64));
    let mut bm25 = (f64::NEG_INFINITY, (t.bm25_k1, t.bm25_b));
    for &k1 in &t.tune_bm25_k1 {
        for &b in &t.tune_bm25_b {
            let v = score(&lt_bm25(k1, b)?)?;
            progress.advance(1);
            if v > bm25.0 {
                bm25 = (v, (k1, b));
            }
        }
    }
    let mut best_clsr = (f64::NEG_INFINITY, t.clsr);
    for &k1 in &g.clsr_k1 {
        for &b in &g.clsr_b {
            for &k2 in &g.clsr_k2 {
                let v = score(&clsr(k1, b, k2)?)?;
                progress.advance(1);
                if v > best_clsr.0 {
                    best_clsr = (v, (k1, b, k2));
                }
            }
        }
    }
    let latent = s
        .index
        .run(queries, &lt_bm25(bm25.1.0, bm25.1.1)?, depth, "lt")?;
    let mut best_w = (f64::NEG_INFINITY, t.linear_weight);
    for &w in &g.linear_weight {
        let fused = linear_fusion(
            &[lexical, &latent],
            &[1.0 - w, w],
            Normalization::MinMax,
            depth,
            "lin",
        )?;
        let v = ndcg10(qrels, &fused);
        progress.advance(1);
        if v > best_w.0 {
            best_w = (v, w);
        }
    }
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
    let rrf = reciprocal_rank_fusion(
        &[s.lexical_test, &tokens_bm25],
        config.scoring.rrf_k,
        depth,
        "hybrid-tokens-rrf",
    )?;
    let w = params.linear_weight;
    let linear = linear_fusion(
        &[s.lexical_test, &tokens_bm25],
        &[1.0 - w, w],
        Normalization::MinMax,
        depth,
        "hybrid-tokens-linear",
    )?;
    let latency = Latency::measure(s.index.index(), s.test, &bm25)?;
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

/// Writes queries as weighted latent queries, one JSON object per line
/// (`{"id": ..., "vector": {"l17": 0.4}}`), the input of `search`, `export` and
/// `index bench`.
pub(crate) fn write_weighted_queries(path: &Path, queries: &[(String, Query)]) -> Result<()> {
    let mut out = String::new();
    for (id, q) in queries {
        let vector: serde_json::Map<String, serde_json::Value> = q
            .iter()
            .map(|(t, w)| {
                (
                    latent_terms_sparse_index::export::latent_term_name(t),
                    serde_json::json!(w),
                )
            })
            .collect();
        out.push_str(&serde_json::json!({"id": id, "vector": vector}).to_string());
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
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
    let sae = clock.time("token_sae_train", |cached| {
        train(
            &stores,
            ctx.inputs.token_sae.as_deref(),
            config,
            cache,
            cached,
            progress,
        )
    })?;
    clock.keys.insert("token_sae".into(), sae.key.clone());
    let sae_path = ctx
        .inputs
        .token_sae
        .clone()
        .unwrap_or_else(|| cache.join(format!("token-sae-{}.safetensors", sae.key)));
    let bags_key = CacheKey::new("token-bags")
        .key(&sae.key)
        .str(&serde_json::to_string(&(t.k, t.tf, t.query_weights, t.stop_df)).unwrap_or_default())
        .finish();
    let runs_dir = cache.join(format!("token-runs-{bags_key}"));
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    let index_path = runs_dir.join("token.idx");
    let meta_path = runs_dir.join("token-index.json");
    let (index, meta) = clock.time("token_index", |cached| {
        if index_path.is_file()
            && let Ok(text) = std::fs::read_to_string(&meta_path)
            && let Ok(meta) = serde_json::from_str::<IndexMeta>(&text)
        {
            *cached = true;
            return Ok((LatentIndex::from_index(Index::open(&index_path)?), meta));
        }
        let mut docs = bags(&sae.encoder, &stores.corpus, None, t, None, progress)?;
        let stop_latents = match t.stop_df {
            Some(fraction) => stop_latents(&docs.bags, fraction),
            None => Vec::new(),
        };
        remove_latents(&mut docs.bags, &stop_latents);
        let index = LatentIndex::build(&docs.ids, &docs.bags, None)?;
        index.index().save(&index_path)?;
        let meta = IndexMeta {
            mean_activation: docs.mean_activation,
            stop_latents,
        };
        write_atomic(
            &meta_path,
            serde_json::to_string(&meta).unwrap_or_default().as_bytes(),
        )?;
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
    let params_path = runs_dir.join(format!(
        "params-{}.json",
        CacheKey::new("token-params")
            .dir(&ctx.dataset.root().join("qrels"))?
            .str(&serde_json::to_string(&(t, &config.tuning, config.depth)).unwrap_or_default())
            .finish()
    ));
    let params = clock.time("token_tune", |cached| {
        if let Ok(text) = std::fs::read_to_string(&params_path)
            && let Ok(p) = serde_json::from_str::<TokenParams>(&text)
        {
            *cached = true;
            return Ok(p);
        }
        let p = choose_params(&inputs, config, progress)?;
        write_atomic(
            &params_path,
            serde_json::to_string_pretty(&p)
                .unwrap_or_default()
                .as_bytes(),
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_latents_are_the_ones_in_too_many_documents_and_are_removed() {
        let mut bags = vec![
            SparseCode::from_pairs(&[(1, 1.0), (2, 2.0), (3, 1.0)]),
            SparseCode::from_pairs(&[(1, 1.0), (3, 0.5)]),
            SparseCode::from_pairs(&[(1, 4.0), (4, 1.0)]),
        ];
        // Latent 1 is in 3/3 documents, latent 3 in 2/3.
        assert_eq!(stop_latents(&bags, 0.9), vec![1]);
        assert_eq!(stop_latents(&bags, 0.5), vec![1, 3]);
        remove_latents(&mut bags, &[1, 3]);
        assert_eq!(bags[0], SparseCode::from_pairs(&[(2, 2.0)]));
        assert!(bags[1].is_empty());
        assert_eq!(bags[2], SparseCode::from_pairs(&[(4, 1.0)]));
    }
}
