//! The dense encoder: tokenizer + ONNX graph + pooling + normalisation.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, TensorElementType, ValueType};
use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationParams};

use crate::config::{DirConfig, Pooling, find_onnx};
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};
use crate::runtime;
use crate::store::{StoreMetadata, StoreWriter};
use crate::token_store::{TokenStoreMetadata, TokenStoreWriter};
use crate::tokens::{SpecialTokens, TokenVectors, select};

/// Whether a text is a query or a passage (they may get different prefixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// A search query.
    Query,
    /// A document or passage of the corpus.
    Passage,
}

/// Default number of texts per inference batch.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Texts tokenised (and sorted by length) together by [`Encoder::encode_to_store`]
/// before their batches go to the model. Bounds the memory used for tokens.
const STREAM_CHUNK_TEXTS: usize = 4096;

/// Configuration of an [`Encoder`], read from a model directory and overridden by
/// explicit settings.
///
/// The model directory follows the sentence-transformers layout that
/// `scripts/setup-assets` writes:
///
/// | file | used for |
/// |---|---|
/// | `model.onnx` (or `onnx/model.onnx`) | the graph; inputs `input_ids`, `attention_mask`, optional `token_type_ids`; output `last_hidden_state` `[batch, sequence, dim]` |
/// | `tokenizer.json` | Hugging Face tokenizer (its built-in truncation and padding are replaced) |
/// | `1_Pooling/config.json` | pooling mode (`cls`, `mean`, `lasttoken`) and dimension |
/// | `modules.json` | normalisation on when it lists a `Normalize` module |
/// | `sentence_bert_config.json` | default maximum length (`max_seq_length`) |
/// | `config.json` | `hidden_size`, `max_position_embeddings`, `vocab_size` (checks) |
///
/// ```no_run
/// use latent_terms_encoders::{Encoder, Pooling};
///
/// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2")
///     .batch_size(32)
///     .intra_threads(2)
///     .max_length(256)
///     .build()?;
/// assert_eq!(encoder.info().pooling, Pooling::Mean);
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct EncoderBuilder {
    model_dir: PathBuf,
    onnx: Option<PathBuf>,
    tokenizer: Option<PathBuf>,
    ort_library: Option<PathBuf>,
    name: Option<String>,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    max_length: Option<usize>,
    query_prefix: String,
    passage_prefix: String,
    batch_size: usize,
    intra_threads: Option<usize>,
    special_tokens: SpecialTokens,
}

impl EncoderBuilder {
    /// Starts from a model directory.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        EncoderBuilder {
            model_dir: model_dir.into(),
            onnx: None,
            tokenizer: None,
            ort_library: None,
            name: None,
            pooling: None,
            normalize: None,
            max_length: None,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            intra_threads: None,
            special_tokens: SpecialTokens::Drop,
        }
    }

    /// Uses this ONNX file instead of `model.onnx` in the model directory.
    pub fn onnx_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.onnx = Some(path.into());
        self
    }

    /// Uses this `tokenizer.json` instead of the one in the model directory.
    pub fn tokenizer_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tokenizer = Some(path.into());
        self
    }

    /// Loads ONNX Runtime from this library file (otherwise: `ORT_DYLIB_PATH`, then
    /// `DIR/onnxruntime/libonnxruntime.so` when the model is `DIR/models/NAME`, then
    /// the system loader). The first library loaded in a process serves all encoders.
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// The model name recorded in embeddings stores (default: the directory name).
    pub fn model_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Pooling mode (default: from `1_Pooling/config.json`; required if that file is absent).
    pub fn pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = Some(pooling);
        self
    }

    /// L2-normalise the embeddings (default: from `modules.json`, else off).
    pub fn normalize(mut self, on: bool) -> Self {
        self.normalize = Some(on);
        self
    }

    /// Maximum tokens per text, special tokens included; longer texts are truncated
    /// (default: `max_seq_length` of `sentence_bert_config.json`, else the model's
    /// `max_position_embeddings`, else 512).
    pub fn max_length(mut self, tokens: usize) -> Self {
        self.max_length = Some(tokens);
        self
    }

    /// Text put in front of every query (an instruction such as `"query: "`).
    pub fn query_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.query_prefix = prefix.into();
        self
    }

    /// Text put in front of every passage (such as `"passage: "`).
    pub fn passage_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.passage_prefix = prefix.into();
        self
    }

    /// Texts per inference batch (default 32). Batches are formed after sorting the
    /// texts by token length, so padding stays small.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// ONNX Runtime intra-op threads (default: the available parallelism).
    pub fn intra_threads(mut self, n: usize) -> Self {
        self.intra_threads = Some(n);
        self
    }

    /// Which tokens [`Encoder::encode_tokens`] returns (default
    /// [`SpecialTokens::Drop`]: content tokens only).
    pub fn special_tokens(mut self, policy: SpecialTokens) -> Self {
        self.special_tokens = policy;
        self
    }

    /// Loads the tokenizer, the configuration and the ONNX graph.
    ///
    /// # Errors
    /// [`Error::MissingModelFile`] or [`Error::InvalidModelFile`] for absent or
    /// inconsistent model files, [`Error::OrtLibraryNotFound`] / [`Error::OrtLoad`]
    /// when ONNX Runtime cannot be loaded, [`Error::Config`] for out-of-range
    /// settings, [`Error::Ort`] when ONNX Runtime rejects the graph.
    pub fn build(self) -> Result<Encoder> {
        Encoder::from_builder(self)
    }
}

/// What an [`Encoder`] is running with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelInfo {
    /// Model name (recorded in stores).
    pub name: String,
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// Embedding dimension.
    pub dim: usize,
    /// Maximum tokens per text, special tokens included.
    pub max_length: usize,
    /// Prefix of queries.
    pub query_prefix: String,
    /// Prefix of passages.
    pub passage_prefix: String,
    /// Texts per inference batch.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads.
    pub intra_threads: usize,
    /// The ONNX file.
    pub onnx_path: PathBuf,
    /// The ONNX Runtime library in use.
    pub ort_library: PathBuf,
    /// Graph input names, in the order the graph declares them.
    pub inputs: Vec<String>,
    /// The graph output that is pooled.
    pub output: String,
    /// Which tokens [`Encoder::encode_tokens`] returns.
    pub special_tokens: SpecialTokens,
}

/// Time spent in each stage since the encoder was built (or [`Encoder::reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct EncodeStats {
    /// Texts encoded.
    pub texts: u64,
    /// Tokens fed to the model (without padding).
    pub tokens: u64,
    /// Tokens fed to the model including padding.
    pub padded_tokens: u64,
    /// Inference batches run.
    pub batches: u64,
    /// Tokenisation (including prefixing and sorting).
    pub tokenize: Duration,
    /// Building input tensors and running the graph.
    pub inference: Duration,
    /// Pooling, normalisation and finiteness checks.
    pub pooling: Duration,
}

/// How [`Encoder::forward`] treats a call.
#[derive(Clone, Copy, Debug)]
struct Pass {
    /// Fail with [`Error::Dimension`] when the graph's dimension differs from the configured one.
    check_dim: bool,
    /// Track byte offsets while tokenising (slower; token output only).
    offsets: bool,
    /// A text without tokens is [`Error::NoTokens`] (else it is skipped).
    empty_is_error: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdType {
    I64,
    I32,
}

/// A dense text encoder: tokenizer, ONNX graph through ONNX Runtime, pooling and
/// optional L2 normalisation.
///
/// Texts are tokenised, sorted by token length, run in batches of
/// [`EncoderBuilder::batch_size`] padded to the longest text of the batch, pooled,
/// and returned in the caller's order.
///
/// Behaviour on unusual input, by design:
/// - texts longer than the maximum length are truncated to it (the tail is dropped);
/// - an empty string is encoded like any text (for BERT: `[CLS] [SEP]`), giving a valid
///   vector; a tokenizer that yields no token at all gives [`Error::NoTokens`];
/// - any script the tokenizer knows is fine; characters outside its vocabulary become
///   its unknown token;
/// - a NaN or infinite value in the model output gives [`Error::NonFinite`].
///
/// The encoder is `Send + Sync`; calls from several threads share one ONNX Runtime
/// session and run one batch at a time.
///
/// ```no_run
/// use latent_terms_encoders::Encoder;
///
/// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2").build()?;
/// let q = encoder.encode_queries(&["what causes scurvy?"])?;
/// let p = encoder.encode_passages(&["Scurvy is caused by a lack of vitamin C.", "Paris is in France."])?;
/// assert_eq!((q.rows(), q.dim()), (1, 384));
/// let scores: Vec<f32> = p.iter().map(|(_, row)| row.iter().zip(q.data()).map(|(a, b)| a * b).sum()).collect();
/// assert!(scores[0] > scores[1]);
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
pub struct Encoder {
    tokenizer: Tokenizer,
    session: Mutex<Session>,
    stats: Mutex<EncodeStats>,
    info: ModelInfo,
    id_type: IdType,
    has_token_type: bool,
    pad_id: u32,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn ids_type(ty: &ValueType) -> Option<IdType> {
    match ty {
        ValueType::Tensor { ty, .. } if *ty == TensorElementType::Int64 => Some(IdType::I64),
        ValueType::Tensor { ty, .. } if *ty == TensorElementType::Int32 => Some(IdType::I32),
        _ => None,
    }
}

impl Encoder {
    /// Starts building an encoder for a model directory.
    pub fn builder(model_dir: impl Into<PathBuf>) -> EncoderBuilder {
        EncoderBuilder::new(model_dir)
    }

    fn from_builder(b: EncoderBuilder) -> Result<Encoder> {
        let dir = b.model_dir.clone();
        if !dir.is_dir() {
            return Err(Error::MissingModelFile {
                path: dir,
                what: "model directory",
            });
        }
        let dir_config = DirConfig::read(&dir)?;

        // Tokenizer.
        let tok_path = b
            .tokenizer
            .clone()
            .unwrap_or_else(|| dir.join("tokenizer.json"));
        if !tok_path.is_file() {
            return Err(Error::MissingModelFile {
                path: tok_path,
                what: "tokenizer (tokenizer.json)",
            });
        }
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| Error::invalid_model(&tok_path, format!("cannot load tokenizer: {e}")))?;
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);

        // Settings.
        let pooling = b
            .pooling
            .or(dir_config.pooling)
            .ok_or_else(|| Error::MissingModelFile {
                path: dir.join("1_Pooling").join("config.json"),
                what: "pooling configuration (or set it with EncoderBuilder::pooling)",
            })?;
        let normalize = b.normalize.or(dir_config.normalize).unwrap_or(false);
        let max_positions = dir_config.max_positions;
        let max_length = b
            .max_length
            .or(dir_config.max_seq_length)
            .or(max_positions)
            .unwrap_or(512);
        if let Some(mp) = max_positions
            && max_length > mp
        {
            return Err(Error::Config(format!(
                "max_length {max_length} exceeds the model's max_position_embeddings {mp}"
            )));
        }
        let added = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_length <= added {
            return Err(Error::Config(format!(
                "max_length {max_length} leaves no room for text after the {added} special tokens"
            )));
        }
        if b.batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        let intra_threads = match b.intra_threads {
            Some(0) => return Err(Error::Config("intra_threads must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if let Some(v) = dir_config.vocab_size {
            let tv = tokenizer.get_vocab_size(true);
            if tv > v {
                return Err(Error::invalid_model(
                    &tok_path,
                    format!(
                        "the tokenizer has {tv} tokens but the model's vocab_size is {v}: they do not belong together"
                    ),
                ));
            }
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::Config(format!("truncation: {e}")))?;
        tokenizer.with_padding(None);

        // Graph.
        let onnx_path = match b.onnx.clone() {
            Some(p) if p.is_file() => p,
            Some(p) => {
                return Err(Error::MissingModelFile {
                    path: p,
                    what: "ONNX graph",
                });
            }
            None => find_onnx(&dir)?,
        };
        let candidate = runtime::resolve(b.ort_library.as_deref(), Some(&dir))?;
        let (env, ort_library) = runtime::environment(&candidate)?;
        let ctx = || format!("loading {}", onnx_path.display());
        let session = Session::builder(&env)
            .map_err(|e| Error::ort(ctx(), e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| Error::ort(ctx(), e))?
            .with_intra_threads(intra_threads)
            .map_err(|e| Error::ort(ctx(), e))?
            .with_inter_threads(1)
            .map_err(|e| Error::ort(ctx(), e))?
            .commit_from_file(&onnx_path)
            .map_err(|e| Error::ort(ctx(), e))?;

        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let mut id_type = None;
        let mut has_token_type = false;
        for input in session.inputs() {
            let ty = ids_type(input.dtype()).ok_or_else(|| {
                Error::invalid_model(
                    &onnx_path,
                    format!("input {} is not an int64 or int32 tensor", input.name()),
                )
            })?;
            match input.name() {
                "input_ids" => id_type = Some(ty),
                "attention_mask" => {}
                "token_type_ids" => has_token_type = true,
                other => {
                    return Err(Error::invalid_model(
                        &onnx_path,
                        format!(
                            "unexpected graph input {other:?} (supported: input_ids, attention_mask, token_type_ids)"
                        ),
                    ));
                }
            }
        }
        let id_type = id_type.ok_or_else(|| {
            Error::invalid_model(
                &onnx_path,
                format!("the graph has no input_ids input (inputs: {inputs:?})"),
            )
        })?;
        if !inputs.iter().any(|i| i == "attention_mask") {
            return Err(Error::invalid_model(
                &onnx_path,
                format!("the graph has no attention_mask input (inputs: {inputs:?})"),
            ));
        }
        for input in session.inputs() {
            if ids_type(input.dtype()) != Some(id_type) {
                return Err(Error::invalid_model(
                    &onnx_path,
                    "graph inputs mix int32 and int64 element types",
                ));
            }
        }

        let outputs = session.outputs();
        let output = ["last_hidden_state", "token_embeddings"]
            .iter()
            .find_map(|n| outputs.iter().find(|o| o.name() == *n))
            .or_else(|| outputs.first())
            .ok_or_else(|| Error::invalid_model(&onnx_path, "the graph has no outputs"))?;
        let (out_name, static_dim) = match output.dtype() {
            ValueType::Tensor { ty, shape, .. } if *ty == TensorElementType::Float32 => {
                if shape.len() != 3 {
                    return Err(Error::invalid_model(
                        &onnx_path,
                        format!(
                            "output {} has rank {}; token vectors [batch, sequence, dim] are needed",
                            output.name(),
                            shape.len()
                        ),
                    ));
                }
                let d = shape[2];
                (
                    output.name().to_string(),
                    usize::try_from(d).ok().filter(|d| *d > 0),
                )
            }
            _ => {
                return Err(Error::invalid_model(
                    &onnx_path,
                    format!("output {} is not a float32 tensor", output.name()),
                ));
            }
        };
        let dim = match (dir_config.dim, static_dim) {
            (Some(a), Some(g)) if a != g => {
                return Err(Error::invalid_model(
                    &onnx_path,
                    format!("the graph's output dimension {g} differs from the configured {a}"),
                ));
            }
            (a, g) => a.or(g),
        };

        let name = b.name.clone().unwrap_or_else(|| {
            dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        let mut encoder = Encoder {
            tokenizer,
            session: Mutex::new(session),
            stats: Mutex::new(EncodeStats::default()),
            info: ModelInfo {
                name,
                pooling,
                normalize,
                dim: dim.unwrap_or(0),
                max_length,
                query_prefix: b.query_prefix,
                passage_prefix: b.passage_prefix,
                batch_size: b.batch_size,
                intra_threads,
                onnx_path,
                ort_library,
                inputs,
                output: out_name,
                special_tokens: b.special_tokens,
            },
            id_type,
            has_token_type,
            pad_id,
        };
        if dim.is_none() {
            // Neither the configuration nor the graph says: ask the graph.
            let probe = encoder.encode_texts(&["dimension probe"], TextKind::Passage, false)?;
            encoder.info.dim = probe.dim();
            encoder.reset_stats();
        }
        Ok(encoder)
    }

    /// The configuration in use.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.info.dim
    }

    /// Store metadata describing this encoder's passage output, for
    /// [`StoreWriter::create`] and [`crate::EmbeddingsStore::open_expecting`]; see
    /// [`Encoder::store_metadata_for`] for queries.
    pub fn store_metadata(&self) -> StoreMetadata {
        self.store_metadata_for(TextKind::Passage)
    }

    /// Store metadata describing this encoder's output for `kind` (its prefix included).
    pub fn store_metadata_for(&self, kind: TextKind) -> StoreMetadata {
        StoreMetadata {
            model: self.info.name.clone(),
            pooling: self.info.pooling,
            normalized: self.info.normalize,
            dim: self.info.dim,
            prefix: self.prefix(kind).to_string(),
        }
    }

    /// Timing and counts accumulated so far.
    pub fn stats(&self) -> EncodeStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resets [`Encoder::stats`].
    pub fn reset_stats(&self) {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = EncodeStats::default();
    }

    /// The token ids the model sees for `text` (prefix added, truncated to the
    /// maximum length, special tokens included).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] if tokenisation fails.
    pub fn token_ids(&self, kind: TextKind, text: &str) -> Result<Vec<u32>> {
        let prefix = self.prefix(kind);
        let enc = self
            .tokenizer
            .encode_fast(format!("{prefix}{text}"), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes queries (with the query prefix). Row ids are the positions `"0"`, `"1"`, ...
    ///
    /// # Errors
    /// See [`Encoder::encode`].
    pub fn encode_queries<T: AsRef<str>>(&self, texts: &[T]) -> Result<Embeddings> {
        self.encode_texts(texts, TextKind::Query, true)
    }

    /// Encodes passages (with the passage prefix). Row ids are the positions `"0"`, `"1"`, ...
    ///
    /// # Errors
    /// See [`Encoder::encode`].
    pub fn encode_passages<T: AsRef<str>>(&self, texts: &[T]) -> Result<Embeddings> {
        self.encode_texts(texts, TextKind::Passage, true)
    }

    /// Encodes `(id, text)` pairs; row `i` of the result has id `items[i].0`.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] if tokenisation fails, [`Error::NoTokens`] for a text
    /// without tokens, [`Error::Ort`] if inference fails, [`Error::NonFinite`] for a
    /// NaN or infinite output, [`Error::Dimension`] if the graph's output dimension
    /// differs from the configured one.
    pub fn encode<I: AsRef<str>, T: AsRef<str>>(
        &self,
        kind: TextKind,
        items: &[(I, T)],
    ) -> Result<Embeddings> {
        let texts: Vec<&str> = items.iter().map(|(_, t)| t.as_ref()).collect();
        let ids: Vec<String> = items.iter().map(|(i, _)| i.as_ref().to_string()).collect();
        let (dim, data) = self.encode_raw(&texts, kind)?;
        Embeddings::new(ids, dim, data)
    }

    /// Encodes a stream of `(id, text)` pairs straight into a store writer, a chunk
    /// of texts at a time, so a corpus larger than memory can be encoded. Returns the
    /// number of rows appended.
    ///
    /// ```no_run
    /// use latent_terms_encoders::{Encoder, StoreDtype, StoreWriter, TextKind};
    ///
    /// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2").build()?;
    /// let mut writer = StoreWriter::create("corpus.safetensors", encoder.store_metadata(), StoreDtype::F32)?;
    /// let docs = vec![("d1".to_string(), "first passage".to_string()), ("d2".into(), "second".into())];
    /// encoder.encode_to_store(TextKind::Passage, docs, &mut writer)?;
    /// writer.finish()?;
    /// # Ok::<(), latent_terms_encoders::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Encoder::encode`], plus the writer's errors.
    pub fn encode_to_store<I, T, It>(
        &self,
        kind: TextKind,
        items: It,
        writer: &mut StoreWriter,
    ) -> Result<usize>
    where
        I: AsRef<str>,
        T: AsRef<str>,
        It: IntoIterator<Item = (I, T)>,
    {
        self.stream_chunks(items, |chunk| writer.append(&self.encode(kind, chunk)?))
    }

    /// Encodes `(id, text)` pairs into per-token vectors: the raw rows of the
    /// graph's output (`last_hidden_state`) for each kept token, without pooling or
    /// normalisation. One forward pass per text, with the same tokenising, sorting
    /// and batching as [`Encoder::encode`]; element `i` of the result belongs to
    /// `items[i]`.
    ///
    /// Which tokens are kept follows [`EncoderBuilder::special_tokens`]: with
    /// [`SpecialTokens::Drop`] (the default) special tokens and tokens lying inside
    /// the query/passage prefix are dropped, so a text may keep no token (the empty
    /// string, for instance) and gets an empty [`TokenVectors`]. Offsets are byte
    /// ranges into the text as given (the prefix is subtracted).
    ///
    /// ```no_run
    /// use latent_terms_encoders::{Encoder, TextKind};
    ///
    /// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2").build()?;
    /// let out = encoder.encode_tokens(TextKind::Passage, &[("d1", "Paris is in France.")])?;
    /// let t = &out[0];
    /// let (start, end) = t.offsets[0];
    /// assert_eq!(&"Paris is in France."[start as usize..end as usize], "Paris");
    /// assert_eq!(t.row(0).len(), 384);
    /// # Ok::<(), latent_terms_encoders::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Tokenizer`] if tokenisation fails, [`Error::Ort`] if inference
    /// fails, [`Error::NonFinite`] for a NaN or infinite value in a kept row (`row`
    /// is the text's position), [`Error::Dimension`] if the graph's output
    /// dimension differs from the configured one.
    pub fn encode_tokens<I: AsRef<str>, T: AsRef<str>>(
        &self,
        kind: TextKind,
        items: &[(I, T)],
    ) -> Result<Vec<TokenVectors>> {
        let texts: Vec<&str> = items.iter().map(|(_, t)| t.as_ref()).collect();
        let mut out: Vec<TokenVectors> = items
            .iter()
            .map(|(id, _)| TokenVectors::empty(id.as_ref(), self.info.dim))
            .collect();
        let prefix_len = self.prefix(kind).len();
        let pass = Pass {
            check_dim: true,
            offsets: true,
            empty_is_error: false,
        };
        self.forward(&texts, kind, pass, |orig, enc, rows, dim| {
            let t = self.kept_tokens(items[orig].0.as_ref(), orig, enc, rows, dim, prefix_len)?;
            out[orig] = t;
            Ok(())
        })?;
        Ok(out)
    }

    /// Pooled embeddings ([`Encoder::encode`]) and token vectors
    /// ([`Encoder::encode_tokens`]) of the same texts from one forward pass, so a
    /// collection needed both ways is run through the model once.
    ///
    /// ```no_run
    /// use latent_terms_encoders::{Encoder, TextKind};
    ///
    /// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2").build()?;
    /// let (pooled, tokens) = encoder.encode_with_tokens(TextKind::Passage, &[("d1", "Paris is in France.")])?;
    /// assert_eq!(pooled.ids()[0], tokens[0].id);
    /// # Ok::<(), latent_terms_encoders::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Encoder::encode`] and [`Encoder::encode_tokens`].
    pub fn encode_with_tokens<I: AsRef<str>, T: AsRef<str>>(
        &self,
        kind: TextKind,
        items: &[(I, T)],
    ) -> Result<(Embeddings, Vec<TokenVectors>)> {
        let texts: Vec<&str> = items.iter().map(|(_, t)| t.as_ref()).collect();
        let mut tokens: Vec<TokenVectors> = items
            .iter()
            .map(|(id, _)| TokenVectors::empty(id.as_ref(), self.info.dim))
            .collect();
        let mut data: Vec<f32> = Vec::new();
        let prefix_len = self.prefix(kind).len();
        let pass = Pass {
            check_dim: true,
            offsets: true,
            empty_is_error: true,
        };
        let dim = self.forward(&texts, kind, pass, |orig, enc, rows, dim| {
            if data.is_empty() {
                data = vec![0.0; texts.len() * dim];
            }
            self.pool_into(
                orig,
                enc,
                rows,
                dim,
                &mut data[orig * dim..(orig + 1) * dim],
            )?;
            let t = self.kept_tokens(items[orig].0.as_ref(), orig, enc, rows, dim, prefix_len)?;
            tokens[orig] = t;
            Ok(())
        })?;
        let ids = items.iter().map(|(i, _)| i.as_ref().to_string()).collect();
        Ok((Embeddings::new(ids, dim, data)?, tokens))
    }

    /// Encodes a stream of `(id, text)` pairs into a token store writer, a chunk of
    /// texts at a time (so a corpus larger than memory can be encoded). Returns the
    /// number of texts appended.
    ///
    /// ```no_run
    /// use latent_terms_encoders::{Encoder, StoreDtype, TextKind, TokenStoreWriter};
    ///
    /// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2").build()?;
    /// let meta = encoder.token_store_metadata(TextKind::Passage);
    /// let mut writer = TokenStoreWriter::create("corpus.tokens", meta, StoreDtype::F16)?;
    /// let docs = vec![("d1", "first passage"), ("d2", "second")];
    /// encoder.encode_tokens_to_store(TextKind::Passage, docs, &mut writer)?;
    /// writer.finish()?;
    /// # Ok::<(), latent_terms_encoders::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Encoder::encode_tokens`], plus the writer's errors
    /// ([`Error::DuplicateId`], [`Error::NonFinite`] after f16 conversion, ...).
    pub fn encode_tokens_to_store<I, T, It>(
        &self,
        kind: TextKind,
        items: It,
        writer: &mut TokenStoreWriter,
    ) -> Result<usize>
    where
        I: AsRef<str>,
        T: AsRef<str>,
        It: IntoIterator<Item = (I, T)>,
    {
        self.stream_chunks(items, |chunk| {
            for t in self.encode_tokens(kind, chunk)? {
                writer.append(&t)?;
            }
            Ok(())
        })
    }

    /// Metadata describing this encoder's token output for `kind`, for
    /// [`TokenStoreWriter::create`].
    pub fn token_store_metadata(&self, kind: TextKind) -> TokenStoreMetadata {
        TokenStoreMetadata {
            model: self.info.name.clone(),
            dim: self.info.dim,
            max_length: self.info.max_length,
            special_tokens: self.info.special_tokens,
            prefix: self.prefix(kind).to_string(),
            kind: match kind {
                TextKind::Query => "query",
                TextKind::Passage => "passage",
            }
            .to_string(),
        }
    }

    /// Feeds `items` to `sink` in chunks of [`STREAM_CHUNK_TEXTS`]; returns the count.
    fn stream_chunks<I, T, It, F>(&self, items: It, mut sink: F) -> Result<usize>
    where
        It: IntoIterator<Item = (I, T)>,
        F: FnMut(&[(I, T)]) -> Result<()>,
    {
        let mut n = 0;
        let mut chunk: Vec<(I, T)> = Vec::with_capacity(STREAM_CHUNK_TEXTS);
        for item in items {
            chunk.push(item);
            if chunk.len() == STREAM_CHUNK_TEXTS {
                sink(&chunk)?;
                n += chunk.len();
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            sink(&chunk)?;
            n += chunk.len();
        }
        Ok(n)
    }

    fn encode_texts<T: AsRef<str>>(
        &self,
        texts: &[T],
        kind: TextKind,
        check_dim: bool,
    ) -> Result<Embeddings> {
        let refs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let (dim, data) = self.encode_inner(&refs, kind, check_dim)?;
        let ids = (0..texts.len()).map(|i| i.to_string()).collect();
        Embeddings::new(ids, dim, data)
    }

    fn encode_raw(&self, texts: &[&str], kind: TextKind) -> Result<(usize, Vec<f32>)> {
        self.encode_inner(texts, kind, true)
    }

    /// Pooled (and optionally normalised) vectors of `texts`, `texts.len() x dim`.
    fn encode_inner(
        &self,
        texts: &[&str],
        kind: TextKind,
        check_dim: bool,
    ) -> Result<(usize, Vec<f32>)> {
        let mut data: Vec<f32> = Vec::new();
        let pass = Pass {
            check_dim,
            offsets: false,
            empty_is_error: true,
        };
        let dim = self.forward(texts, kind, pass, |orig, enc, rows, dim| {
            if data.is_empty() {
                data = vec![0.0; texts.len() * dim];
            }
            self.pool_into(
                orig,
                enc,
                rows,
                dim,
                &mut data[orig * dim..(orig + 1) * dim],
            )
        })?;
        Ok((dim, data))
    }

    /// Pools one text's token rows into `out` (normalised when the model says so).
    fn pool_into(
        &self,
        orig: usize,
        enc: &Encoding,
        rows: &[f32],
        dim: usize,
        out: &mut [f32],
    ) -> Result<()> {
        pool(self.info.pooling, rows, enc.get_attention_mask(), dim, out);
        if self.info.normalize {
            l2_normalize(out);
        }
        if out.iter().all(|x| x.is_finite()) {
            Ok(())
        } else {
            Err(self.non_finite(orig))
        }
    }

    /// The rows of one text's kept tokens (the special-token policy, prefix left out),
    /// checked finite.
    fn kept_tokens(
        &self,
        id: &str,
        orig: usize,
        enc: &Encoding,
        rows: &[f32],
        dim: usize,
        prefix_len: usize,
    ) -> Result<TokenVectors> {
        let t = select(id, enc, rows, dim, prefix_len, self.info.special_tokens);
        if t.data.iter().all(|x| x.is_finite()) {
            Ok(t)
        } else {
            Err(self.non_finite(orig))
        }
    }

    fn non_finite(&self, row: usize) -> Error {
        Error::NonFinite {
            row,
            context: format!("output of {}", self.info.onnx_path.display()),
        }
    }

    /// The prefix put in front of texts of this kind.
    fn prefix(&self, kind: TextKind) -> &str {
        match kind {
            TextKind::Query => &self.info.query_prefix,
            TextKind::Passage => &self.info.passage_prefix,
        }
    }

    /// The one tokenise / sort / batch / run loop behind pooled and token output.
    ///
    /// Tokenises `texts` (prefix added), sorts them by token length (longest
    /// first), runs them in batches padded to the longest text of the batch, and
    /// calls `visit(original index, encoding, rows, dim)` with each text's token
    /// rows (`encoding.len() x dim`, padding excluded). Texts without tokens give
    /// [`Error::NoTokens`] when `pass.empty_is_error`, else are skipped (never
    /// visited). Returns the output dimension.
    fn forward<F>(&self, texts: &[&str], kind: TextKind, pass: Pass, mut visit: F) -> Result<usize>
    where
        F: FnMut(usize, &Encoding, &[f32], usize) -> Result<()>,
    {
        if texts.is_empty() {
            return Ok(self.info.dim);
        }
        let t0 = Instant::now();
        let prefix = self.prefix(kind);
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = if pass.offsets {
            // Byte offsets into the input (encode_batch_fast leaves them at (0, 0)).
            self.tokenizer.encode_batch(inputs, true)
        } else {
            self.tokenizer.encode_batch_fast(inputs, true)
        }
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if pass.empty_is_error
            && let Some(index) = encodings.iter().position(|e| e.is_empty())
        {
            return Err(Error::NoTokens { index });
        }
        // Longest first: the first batch shows the peak memory at once.
        let mut order: Vec<usize> = (0..encodings.len())
            .filter(|&i| !encodings[i].is_empty())
            .collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let tokenize = t0.elapsed();

        let mut dim = self.info.dim;
        let mut first = true;
        let (mut inference, mut visiting) = (Duration::ZERO, Duration::ZERO);
        let (mut tokens, mut padded, mut batches) = (0u64, 0u64, 0u64);
        for batch in order.chunks(self.info.batch_size) {
            let encs: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let seq = encs.iter().map(|e| e.len()).max().unwrap_or(1);
            let t1 = Instant::now();
            let (h_dim, hidden) = self.run_batch(&encs, seq)?;
            let t2 = Instant::now();
            if first {
                if pass.check_dim && dim != 0 && h_dim != dim {
                    return Err(Error::Dimension {
                        expected: dim,
                        found: h_dim,
                    });
                }
                dim = h_dim;
                first = false;
            } else if h_dim != dim {
                return Err(Error::Dimension {
                    expected: dim,
                    found: h_dim,
                });
            }
            for (b, (&orig, enc)) in batch.iter().zip(&encs).enumerate() {
                let len = enc.len();
                visit(
                    orig,
                    enc,
                    &hidden[b * seq * dim..(b * seq + len) * dim],
                    dim,
                )?;
                tokens += len as u64;
            }
            padded += (batch.len() * seq) as u64;
            batches += 1;
            inference += t2 - t1;
            visiting += t2.elapsed();
        }
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.texts += texts.len() as u64;
        s.tokens += tokens;
        s.padded_tokens += padded;
        s.batches += batches;
        s.tokenize += tokenize;
        s.inference += inference;
        s.pooling += visiting;
        Ok(dim)
    }

    /// Runs one batch padded to `seq` tokens; returns `(dim, [batch * seq * dim])`.
    fn run_batch(&self, encs: &[&Encoding], seq: usize) -> Result<(usize, Vec<f32>)> {
        let n = encs.len();
        let mut ids = vec![i64::from(self.pad_id); n * seq];
        let mut mask = vec![0i64; n * seq];
        let mut types = vec![0i64; n * seq];
        for (b, e) in encs.iter().enumerate() {
            let row = b * seq;
            for (k, ((&id, &m), &t)) in e
                .get_ids()
                .iter()
                .zip(e.get_attention_mask())
                .zip(e.get_type_ids())
                .enumerate()
            {
                ids[row + k] = i64::from(id);
                mask[row + k] = i64::from(m);
                types[row + k] = i64::from(t);
            }
        }
        let ctx = "running the encoder graph";
        let shape = [n, seq];
        let mut named: Vec<(&str, Vec<i64>)> = vec![("input_ids", ids), ("attention_mask", mask)];
        if self.has_token_type {
            named.push(("token_type_ids", types));
        }
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'static>)> = Vec::new();
        for (name, v) in named {
            let value = match self.id_type {
                IdType::I64 => Tensor::from_array((shape, v))
                    .map_err(|e| Error::ort(ctx, e))?
                    .into(),
                IdType::I32 => {
                    let v32: Vec<i32> = v
                        .into_iter()
                        .map(|x| i32::try_from(x).unwrap_or(i32::MAX))
                        .collect();
                    Tensor::from_array((shape, v32))
                        .map_err(|e| Error::ort(ctx, e))?
                        .into()
                }
            };
            inputs.push((name.to_string(), value));
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(inputs).map_err(|e| Error::ort(ctx, e))?;
        let value = outputs.get(&self.info.output).ok_or_else(|| {
            Error::invalid_model(
                &self.info.onnx_path,
                format!("output {} missing from the results", self.info.output),
            )
        })?;
        let (out_shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::ort(ctx, e))?;
        let dims: Vec<i64> = out_shape.iter().copied().collect();
        let dim = match dims.as_slice() {
            [b, s, d] if *b == n as i64 && *s == seq as i64 && *d > 0 => *d as usize,
            _ => {
                return Err(Error::invalid_model(
                    &self.info.onnx_path,
                    format!(
                        "output {} has shape {dims:?}; expected [{n}, {seq}, dim]",
                        self.info.output
                    ),
                ));
            }
        };
        if data.len() != n * seq * dim {
            return Err(Error::Shape(format!(
                "output has {} values for shape {dims:?}",
                data.len()
            )));
        }
        Ok((dim, data.to_vec()))
    }
}

/// Pools the token vectors of one text (`tokens` is `len x dim`, `mask` has `len`
/// entries) into `out`.
pub(crate) fn pool(pooling: Pooling, tokens: &[f32], mask: &[u32], dim: usize, out: &mut [f32]) {
    out.fill(0.0);
    let rows = tokens.chunks_exact(dim);
    match pooling {
        Pooling::Cls => {
            if let Some(first) = tokens.get(..dim) {
                out.copy_from_slice(first);
            }
        }
        Pooling::LastToken => {
            let last = mask.iter().rposition(|&m| m != 0).unwrap_or(0);
            if let Some(row) = tokens.get(last * dim..(last + 1) * dim) {
                out.copy_from_slice(row);
            }
        }
        Pooling::Mean => {
            let mut count = 0.0f32;
            for (row, &m) in rows.zip(mask) {
                if m != 0 {
                    for (o, x) in out.iter_mut().zip(row) {
                        *o += x;
                    }
                    count += 1.0;
                }
            }
            // As sentence-transformers: divide by max(count, 1e-9).
            let count = count.max(1e-9);
            for o in out.iter_mut() {
                *o /= count;
            }
        }
    }
}

/// Divides by the L2 norm (at least 1e-12, as `torch.nn.functional.normalize`).
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    for x in v.iter_mut() {
        *x /= norm;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_ignores_padding() {
        let tokens = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let mut out = [0.0; 2];
        pool(Pooling::Mean, &tokens, &[1, 1, 0], 2, &mut out);
        assert_eq!(out, [2.0, 3.0]);
        pool(Pooling::Cls, &tokens, &[1, 1, 0], 2, &mut out);
        assert_eq!(out, [1.0, 2.0]);
        pool(Pooling::LastToken, &tokens, &[1, 1, 0], 2, &mut out);
        assert_eq!(out, [3.0, 4.0]);
        pool(Pooling::Mean, &tokens, &[0, 0, 0], 2, &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn normalisation() {
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn missing_model_directory_is_a_typed_error() {
        let err = Encoder::builder("/nonexistent/model").build().unwrap_err();
        assert!(matches!(err, Error::MissingModelFile { .. }), "{err}");
        assert!(err.to_string().contains("scripts/setup-assets"));
    }

    #[test]
    fn missing_tokenizer_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Encoder::builder(dir.path()).build().unwrap_err();
        assert!(
            matches!(err, Error::MissingModelFile { what, .. } if what.contains("tokenizer")),
            "{err}"
        );
    }

    #[test]
    fn garbage_tokenizer_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        let err = Encoder::builder(dir.path()).build().unwrap_err();
        assert!(matches!(err, Error::InvalidModelFile { .. }), "{err}");
    }
}
