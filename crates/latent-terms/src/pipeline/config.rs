//! The pipeline's settings: a JSON file whose every field has a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Every setting of [`run`](crate::pipeline::run). Deserialised from JSON; missing fields
/// take their defaults, unknown fields are an error (so a typo does not pass silently).
///
/// ```
/// use latent_terms::pipeline::PipelineConfig;
///
/// let config = PipelineConfig::from_json(r#"{"sae": {"d_sae": 2048}, "inference": {"doc_k": 128}}"#)?;
/// assert_eq!(config.sae.d_sae, 2048);
/// assert_eq!(config.sae.k, 64);
/// assert_eq!(config.inference.doc_k, 128);
/// # Ok::<(), latent_terms::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Which latent representations run: `pooled` (one SAE code per document
    /// embedding), `tokens` (bags of token-level latent terms) or `both`.
    pub representation: Representation,
    /// Dense encoder settings.
    pub encoder: EncoderSettings,
    /// SAE training settings.
    pub sae: SaeSettings,
    /// Inference (encoding into latents) settings used when nothing is tuned.
    pub inference: InferenceSettings,
    /// Documents as several short windows, pooled (off by default).
    pub chunking: ChunkSettings,
    /// Scoring settings used when nothing is tuned.
    pub scoring: ScoringSettings,
    /// The token-level representation (used when `representation` is `tokens` or `both`).
    pub tokens: TokenSettings,
    /// Parameter search on a training or held-out split.
    pub tuning: TuningSettings,
    /// Train the SAE on the dataset's query embeddings too (all splits: texts only,
    /// no relevance labels).
    pub train_on_queries: bool,
    /// Further embeddings stores (e.g. other collections' `out/emb/<name>.safetensors`
    /// and `extra-queries.queries.safetensors`) whose rows join the SAE training set.
    /// They must come from the same model as the dataset's embeddings.
    pub extra_training_stores: Vec<PathBuf>,
    /// The qrels split evaluated in the report (`qrels/<split>.tsv`).
    pub test_split: String,
    /// Documents retrieved per query by every method.
    pub depth: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            representation: Representation::default(),
            encoder: EncoderSettings::default(),
            sae: SaeSettings::default(),
            inference: InferenceSettings::default(),
            chunking: ChunkSettings::default(),
            scoring: ScoringSettings::default(),
            tokens: TokenSettings::default(),
            tuning: TuningSettings::default(),
            train_on_queries: true,
            extra_training_stores: Vec::new(),
            test_split: "test".into(),
            depth: 1000,
        }
    }
}

impl PipelineConfig {
    /// Parses a JSON config.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Reads a JSON config file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The config as pretty JSON (what the report records).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the values that would otherwise fail deep inside a stage.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.sae.d_sae == 0 || self.sae.k == 0 || self.sae.k >= self.sae.d_sae {
            return bad(format!(
                "sae: need 0 < k < d_sae, got k {} and d_sae {}",
                self.sae.k, self.sae.d_sae
            ));
        }
        if !["topk", "batchtopk", "kld"].contains(&self.sae.kind.as_str()) {
            return bad(format!(
                "sae.kind must be topk, batchtopk or kld, got {:?}",
                self.sae.kind
            ));
        }
        if let Some(kld) = &self.sae.kld {
            let ok = kld.coef >= 0.0
                && kld.coef.is_finite()
                && kld.temperature > 0.0
                && kld.neighbours > 0
                && kld.queries_per_batch > 0
                && kld.docs_per_query > 0;
            if !ok {
                return bad(
                    "sae.kld: coef ≥ 0, temperature > 0, and positive neighbours, \
                     queries_per_batch and docs_per_query"
                        .into(),
                );
            }
        }
        if self.inference.doc_k == 0 || self.inference.query_k == 0 {
            return bad("inference: doc_k and query_k must be positive".into());
        }
        let c = &self.chunking;
        if c.enabled && (c.words == 0 || c.stride == 0 || c.window_k == 0) {
            return bad("chunking: words, stride and window_k must be positive".into());
        }
        let t = &self.tokens;
        if self.representation.tokens() {
            if t.sae.d_sae == 0 || t.sae.k == 0 || t.sae.k >= t.sae.d_sae {
                return bad(format!(
                    "tokens.sae: need 0 < k < d_sae, got k {} and d_sae {}",
                    t.sae.k, t.sae.d_sae
                ));
            }
            if t.sae.kind == "kld" {
                return bad(
                    "tokens.sae.kind \"kld\" is not supported: the contrastive KL term needs \
                     query → document pairs, which token rows do not have; use topk or \
                     batchtopk (sae.kind \"kld\" trains the pooled SAE on dense-neighbour pairs)"
                        .into(),
                );
            }
            if t.k.is_some_and(|k| k == 0 || k > t.sae.d_sae) {
                return bad("tokens.k must be in 1..=tokens.sae.d_sae".into());
            }
            if t.stop_df.is_some_and(|f| !(f > 0.0 && f <= 1.0)) {
                return bad("tokens.stop_df must be in (0, 1]".into());
            }
            if let Some(Err(e)) = t
                .prune
                .map(latent_terms_sparse_index::StaticPruning::validate)
            {
                return bad(format!("tokens.prune: {e}"));
            }
            if t.max_training_tokens == 0 || t.tokens_per_text == Some(0) {
                return bad(
                    "tokens: max_training_tokens and tokens_per_text must be positive".into(),
                );
            }
            if t.stream_buffer_rows == 0 {
                return bad("tokens.stream_buffer_rows must be positive".into());
            }
            if t.sae_draws == 0 {
                return bad("tokens.sae_draws must be at least 1".into());
            }
            if t.special_tokens
                .parse::<latent_terms_encoders::SpecialTokens>()
                .is_err()
            {
                return bad(format!(
                    "tokens.special_tokens must be drop or keep, got {:?}",
                    t.special_tokens
                ));
            }
        }
        if self.depth == 0 {
            return bad("depth must be positive".into());
        }
        if !["clsr", "lt-bm25", "clsr-dot"].contains(&self.scoring.hybrid_latent.as_str()) {
            return bad(format!(
                "scoring.hybrid_latent must be clsr, lt-bm25 or clsr-dot, got {:?}",
                self.scoring.hybrid_latent
            ));
        }
        if self.tuning.doc_k.contains(&0) || self.tuning.query_k.contains(&0) {
            return bad("tuning: inference k candidates must be positive".into());
        }
        Ok(())
    }

    /// The largest inference k any stage can ask for (documents, queries).
    pub fn max_inference_k(&self) -> (usize, usize) {
        let doc = self
            .tuning
            .doc_k
            .iter()
            .copied()
            .chain([self.inference.doc_k])
            .max();
        let query = self
            .tuning
            .query_k
            .iter()
            .copied()
            .chain([self.inference.query_k])
            .max();
        (doc.unwrap_or(1), query.unwrap_or(1))
    }
}

/// Dense encoder settings (the model itself is a directory given on the command line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderSettings {
    /// Texts per inference batch.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Put in front of every query before encoding (e5: `"query: "`, bge: an instruction).
    pub query_prefix: String,
    /// Put in front of every passage before encoding (e5: `"passage: "`).
    pub passage_prefix: String,
    /// Pooling (`mean` or `cls`) instead of the one the model's files declare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
}

impl EncoderSettings {
    /// The settings that change what a text encodes to (prefixes, pooling), for cache keys.
    pub(crate) fn text_key(&self) -> String {
        serde_json::json!([self.query_prefix, self.passage_prefix, self.pooling]).to_string()
    }

    /// An encoder builder for `model` with these settings (batch, threads, prefixes,
    /// pooling): the one place the pipeline configures its encoders.
    pub fn builder(
        &self,
        model: &std::path::Path,
    ) -> crate::Result<latent_terms_encoders::EncoderBuilder> {
        let mut builder = latent_terms_encoders::Encoder::builder(model)
            .batch_size(self.batch_size)
            .intra_threads(self.threads)
            .query_prefix(self.query_prefix.clone())
            .passage_prefix(self.passage_prefix.clone());
        if let Some(p) = &self.pooling {
            builder = builder.pooling(p.parse::<latent_terms_encoders::Pooling>()?);
        }
        Ok(builder)
    }
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            batch_size: 32,
            threads: 2,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            pooling: None,
        }
    }
}

/// SAE training settings (TopK with AuxK by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaeSettings {
    /// `topk`, `batchtopk` or `kld` (TopK with the contrastive KL term of Kang et al.,
    /// on pairs from a dense nearest-neighbour run: [`KldSettings`]).
    pub kind: String,
    /// Latents.
    pub d_sae: usize,
    /// Active latents per vector during training.
    pub k: usize,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AuxK weight (0 turns AuxK off).
    pub aux_coef: f32,
    /// Fraction of training rows held out to report validation NMSE.
    pub validation_fraction: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Learning-rate warm-up steps (`None`: the trainer's default).
    pub warmup_steps: Option<u64>,
    /// burn backend to train on: `flex`, `ndarray` or `cuda[:N]` (`None`: the faster CPU
    /// backend built in). Part of the cache key: backends differ in the last bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Settings of the `kld` kind (`None`: [`KldSettings::default`]); ignored by the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kld: Option<KldSettings>,
}

/// The contrastive KL term of a `kld` SAE. No relevance labels are used: each training
/// query row (the collection's queries and the extra training stores) is paired with its
/// `neighbours` nearest corpus rows by dense dot product, and the term keeps each query's
/// score distribution over its group's documents on the reconstructions close to the one on
/// the original embeddings. With no query rows, documents are paired with their nearest
/// other documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KldSettings {
    /// Weight λ of the KL term against the reconstruction MSE.
    pub coef: f32,
    /// Softmax temperature τ over dot products.
    pub temperature: f32,
    /// Dense nearest corpus rows paired with each query row.
    pub neighbours: usize,
    /// Queries per step (their documents are drawn from their neighbours).
    pub queries_per_batch: usize,
    /// Documents drawn per query and step.
    pub docs_per_query: usize,
}

impl Default for KldSettings {
    fn default() -> Self {
        KldSettings {
            coef: 1.0,
            temperature: 0.05,
            neighbours: 16,
            queries_per_batch: 32,
            docs_per_query: 4,
        }
    }
}

impl Default for SaeSettings {
    fn default() -> Self {
        SaeSettings {
            kind: "topk".into(),
            d_sae: 4096,
            k: 64,
            epochs: 30,
            batch_size: 512,
            lr: 5e-4,
            aux_coef: 1.0 / 16.0,
            validation_fraction: 0.05,
            seed: 0,
            warmup_steps: None,
            backend: None,
            kld: None,
        }
    }
}

/// Which latent representations a run builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Representation {
    /// One SAE code per pooled document embedding (and per query embedding).
    Pooled,
    /// Bags of token-level latent terms: the default, since they beat the dense backbone
    /// and the pooled codes on all five text collections of docs/results.md.
    #[default]
    Tokens,
    /// Both, side by side in one report.
    Both,
}

impl Representation {
    /// Whether the pooled representation runs.
    pub fn pooled(self) -> bool {
        matches!(self, Representation::Pooled | Representation::Both)
    }

    /// Whether the token-level representation runs.
    pub fn tokens(self) -> bool {
        matches!(self, Representation::Tokens | Representation::Both)
    }
}

impl std::str::FromStr for Representation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pooled" => Ok(Representation::Pooled),
            "tokens" => Ok(Representation::Tokens),
            "both" => Ok(Representation::Both),
            other => Err(Error::Config(format!(
                "representation must be pooled, tokens or both, got {other:?}"
            ))),
        }
    }
}

/// Token-level latent terms: an SAE over every content token's hidden state
/// (`last_hidden_state`), each text the bag of the latents that fire on its tokens.
/// The SAE defaults follow the prototype recorded in the token-level issue (8,192
/// latents, k 32, about 1.2M training token rows). The scorer defaults (BM25 k1 1.5,
/// b 1.0; CL-SR k1 1.2, b 1.0, k2 5.0; linear weight 0.5) are what `run` chose on
/// SciFact's train qrels (400 queries) with the shared token SAE of
/// `scripts/results-tokens`; no test qrels were used. Three SAE draws are compared on a
/// tuning split where there is one (`sae_draws`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// `drop` (content tokens only) or `keep` ([CLS]/[SEP] too).
    pub special_tokens: String,
    /// Maximum tokens per text, special tokens included (0: the model's default, which
    /// is also what the pooled embeddings use; 256 for all-MiniLM-L6-v2).
    pub max_length: usize,
    /// The token SAE (trained with inputs scaled to a mean squared norm of d).
    pub sae: SaeSettings,
    /// Token SAEs trained, with seeds `sae.seed`, `sae.seed + 1`, …; the run keeps the
    /// one whose tuned `lt-tokens-bm25` and `lt-tokens-clsr` have the highest mean
    /// nDCG@10 on the tuning split (never the test qrels). Draws of one recipe differ by
    /// up to 0.025 nDCG@10 on SciFact (docs/results.md), so choosing among a few on
    /// training data removes a bad draw, at one SAE training per draw. Without a tuning
    /// split, or with a given `--token-sae`, one SAE is used.
    pub sae_draws: usize,
    /// At most this many token rows are sampled to train the SAE (each row with the
    /// same probability). A smaller sample is passed over several times so the SAE still
    /// sees about this many rows (`sae.epochs` is raised to match).
    pub max_training_tokens: usize,
    /// At most this many tokens of any one text join the sample (`None`: all).
    pub tokens_per_text: Option<usize>,
    /// Fewer training tokens than this print a warning that says what to add.
    pub min_training_tokens: usize,
    /// Memory, in MiB, the token SAE's sampled training rows may take (`rows × d × 4`
    /// bytes). A larger sample is not loaded: the SAE trains on it streamed from the
    /// token stores in shuffled blocks, holding at most about `stream_buffer_rows` rows
    /// (plus one block, one batch and 40,000 validation and sample rows). 0 always
    /// streams. The default keeps the default sample (1.2M rows × 384 × 4 B ≈ 1.8 GB) in
    /// memory.
    pub training_memory_mb: usize,
    /// Rows of the streamed trainer's shuffle buffer (see `training_memory_mb`): more
    /// mixes rows of more texts into each batch, at `d × 4` bytes a row.
    pub stream_buffer_rows: usize,
    /// Further token stores (another collection's `corpus.tokens`, say) whose rows join
    /// the token SAE's training sample.
    pub extra_training_stores: Vec<PathBuf>,
    /// Latents kept per token at inference (`None`: the SAE's training k).
    pub k: Option<usize>,
    /// Term frequency of a latent in a text: `activation` (sum of activations over the
    /// tokens, divided by the corpus's mean non-zero activation) or `count` (tokens it
    /// fires on).
    pub tf: crate::bag::TokenTf,
    /// Query weights: `tf` (the query's own term frequencies) or `binary`.
    pub query_weights: crate::bag::QueryWeights,
    /// Stop latents: a latent in more than this fraction of the documents is left out
    /// of documents and queries (the Zipf head; `None`: keep all).
    pub stop_df: Option<f64>,
    /// Static pruning of the token index: each document keeps its top latents by
    /// tf × idf (`{"top_terms": n}`) or the fewest whose tf × idf reaches a share of its
    /// total (`{"share": s}`), scored with the full index's document frequencies and
    /// lengths (`None`: keep all).
    pub prune: Option<latent_terms_sparse_index::StaticPruning>,
    /// BM25 k1 of `lt-tokens-bm25` when nothing is tuned.
    pub bm25_k1: f32,
    /// BM25 b of `lt-tokens-bm25` when nothing is tuned.
    pub bm25_b: f32,
    /// BM25 k1 candidates on a tuning split.
    pub tune_bm25_k1: Vec<f32>,
    /// BM25 b candidates on a tuning split.
    pub tune_bm25_b: Vec<f32>,
    /// CL-SR `(k1, b, k2)` of `lt-tokens-clsr` when nothing is tuned.
    pub clsr: (f32, f32, f32),
    /// Latent weight of `hybrid-tokens-linear` when nothing is tuned.
    pub linear_weight: f64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            special_tokens: "drop".into(),
            max_length: 0,
            sae: SaeSettings {
                kind: "topk".into(),
                d_sae: 8192,
                k: 32,
                epochs: 1,
                batch_size: 2048,
                lr: 1e-3,
                aux_coef: 1.0 / 16.0,
                validation_fraction: 0.01,
                seed: 0,
                warmup_steps: Some(50),
                backend: None,
                kld: None,
            },
            sae_draws: 3,
            max_training_tokens: 1_200_000,
            tokens_per_text: None,
            min_training_tokens: 200_000,
            training_memory_mb: 4096,
            stream_buffer_rows: 262_144,
            extra_training_stores: Vec::new(),
            k: None,
            tf: crate::bag::TokenTf::Activation,
            query_weights: crate::bag::QueryWeights::Tf,
            stop_df: None,
            prune: None,
            bm25_k1: 1.5,
            bm25_b: 1.0,
            tune_bm25_k1: vec![0.9, 1.2, 1.5],
            tune_bm25_b: vec![0.4, 0.75, 1.0],
            clsr: (1.2, 1.0, 5.0),
            linear_weight: 0.5,
        }
    }
}

/// How embeddings become latent terms at inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceSettings {
    /// Top-k latents kept per document (may exceed the training k).
    pub doc_k: usize,
    /// Top-k latents kept per query.
    pub query_k: usize,
    /// Which latents a pooled embedding keeps: its `topk` (`doc_k`/`query_k`), or those
    /// above a BatchTopK SAE's stored `threshold` (at most `doc_k`/`query_k`). Applies to
    /// documents, queries and the reconstruction NMSE.
    pub rule: ActivationRule,
}

impl Default for InferenceSettings {
    fn default() -> Self {
        InferenceSettings {
            doc_k: 128,
            query_k: 256,
            rule: ActivationRule::TopK,
        }
    }
}

/// How an SAE code is cut at inference ([`InferenceSettings::rule`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationRule {
    /// The k largest activations.
    #[default]
    TopK,
    /// Every activation above the SAE's stored threshold (BatchTopK's batch-independent rule).
    Threshold,
}

/// Window-level document encoding (see [`word_windows`](crate::pipeline::word_windows)):
/// each document is also embedded as windows of `words` words every `stride` words, each
/// window encoded with its top `window_k` latents, and the document's latent terms are the
/// max-pooled union of its whole-text and window latents (then capped at the doc k).
/// Needs the dense model, even when embeddings stores are given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkSettings {
    /// Turn window encoding on.
    pub enabled: bool,
    /// Words per window.
    pub words: usize,
    /// Words between window starts.
    pub stride: usize,
    /// Latents kept per window.
    pub window_k: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        ChunkSettings {
            enabled: false,
            words: 12,
            stride: 6,
            window_k: 32,
        }
    }
}

/// Scorer parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSettings {
    /// CL-SR document saturation.
    pub clsr_k1: f32,
    /// CL-SR length normalisation.
    pub clsr_b: f32,
    /// CL-SR query saturation.
    pub clsr_k2: f32,
    /// BM25-over-latents saturation.
    pub lt_bm25_k1: f32,
    /// BM25-over-latents length normalisation.
    pub lt_bm25_b: f32,
    /// The latent method fused with lexical BM25 in the hybrid rows when nothing is
    /// tuned: `clsr`, `lt-bm25` or `clsr-dot`.
    pub hybrid_latent: String,
    /// RRF constant.
    pub rrf_k: f64,
    /// Weight of the latent run in `hybrid-linear` (min-max normalised scores);
    /// lexical BM25 gets `1 − weight`.
    pub linear_weight: f64,
}

impl Default for ScoringSettings {
    fn default() -> Self {
        ScoringSettings {
            clsr_k1: 0.6,
            clsr_b: 0.75,
            clsr_k2: 1.5,
            lt_bm25_k1: 0.9,
            lt_bm25_b: 0.4,
            hybrid_latent: "clsr".into(),
            rrf_k: 60.0,
            linear_weight: 0.5,
        }
    }
}

/// Grid search of inference k and scorer parameters on a split other than the test split.
/// Skipped (the defaults are used, and the report says so) when the dataset has no
/// such split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuningSettings {
    /// Turn tuning on.
    pub enabled: bool,
    /// Splits tried in order (`qrels/<split>.tsv`); the first present one is used.
    /// Queries also judged in the test split are removed from it.
    pub splits: Vec<String>,
    /// At most this many tuning queries (the first ones by id), to bound the cost.
    pub max_queries: usize,
    /// Document top-k candidates.
    pub doc_k: Vec<usize>,
    /// Query top-k candidates.
    pub query_k: Vec<usize>,
    /// CL-SR k1 candidates.
    pub clsr_k1: Vec<f32>,
    /// CL-SR b candidates (at most 1).
    pub clsr_b: Vec<f32>,
    /// CL-SR k2 candidates.
    pub clsr_k2: Vec<f32>,
    /// BM25-over-latents k1 candidates.
    pub lt_bm25_k1: Vec<f32>,
    /// BM25-over-latents b candidates.
    pub lt_bm25_b: Vec<f32>,
    /// `hybrid-linear` latent-weight candidates.
    pub linear_weight: Vec<f64>,
}

impl Default for TuningSettings {
    fn default() -> Self {
        TuningSettings {
            enabled: true,
            splits: vec!["train".into(), "dev".into()],
            max_queries: 400,
            // Documents stay at <= 128 latents (the index's size and the issue's budget);
            // queries are not stored, so they may use more.
            doc_k: vec![32, 64, 128],
            query_k: vec![64, 128, 256, 512],
            clsr_k1: vec![0.3, 0.6, 1.2],
            clsr_b: vec![0.5, 0.75, 1.0],
            clsr_k2: vec![0.5, 1.5, 5.0],
            lt_bm25_k1: vec![0.5, 0.9, 1.5],
            lt_bm25_b: vec![0.2, 0.4, 0.75],
            linear_weight: vec![0.3, 0.5, 0.7],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_typos_fail() {
        let config = PipelineConfig::default();
        let back = PipelineConfig::from_json(&config.to_json()).unwrap();
        assert_eq!(back, config);
        assert!(PipelineConfig::from_json(r#"{"sae": {"d_sea": 5}}"#).is_err());
        assert!(PipelineConfig::from_json("{}").unwrap().validate().is_ok());
        let bad = PipelineConfig::from_json(r#"{"sae": {"k": 9000}}"#).unwrap();
        assert!(bad.validate().is_err());
        for prune in [r#"{"share": 1.5}"#, r#"{"top_terms": 0}"#] {
            let json = format!(r#"{{"representation": "tokens", "tokens": {{"prune": {prune}}}}}"#);
            let err = PipelineConfig::from_json(&json)
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("tokens.prune"), "{err}");
        }
        let ok = r#"{"representation": "tokens", "tokens": {"prune": {"share": 0.8}}}"#;
        assert!(PipelineConfig::from_json(ok).unwrap().validate().is_ok());
        let none = r#"{"representation": "tokens", "tokens": {"sae_draws": 0}}"#;
        let err = PipelineConfig::from_json(none)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("tokens.sae_draws"), "{err}");
    }
}
