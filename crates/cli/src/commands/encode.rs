//! `latent-terms encode` and `latent-terms dense`: the dense backbone.

use std::path::{Path, PathBuf};

use clap::Args;
use latent_terms::dense::dense_run;
use latent_terms::encoders::{
    EmbeddingsStore, Encoder, Metric, SpecialTokens, StoreDtype, TextKind,
};
use latent_terms::eval::beir::BeirDataset;
use latent_terms::pipeline::{EncodeTargets, Progress, encode_texts};

use super::CliResult;
use super::progress::Bars;

#[derive(Args)]
pub(crate) struct EncodeArgs {
    /// Model directory (ONNX graph, tokenizer.json, config); made by scripts/setup-assets.
    #[arg(long, default_value = "assets/models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// BEIR-layout dataset directory.
    #[arg(long)]
    dataset: PathBuf,
    /// Embeddings store for the corpus. Queries go to the same path with
    /// `.queries` before the extension (e.g. `x.safetensors` → `x.queries.safetensors`).
    #[arg(long)]
    out: PathBuf,
    /// Encode only the queries (written to OUT itself).
    #[arg(long, conflicts_with = "corpus_only")]
    queries_only: bool,
    /// Encode only the corpus.
    #[arg(long)]
    corpus_only: bool,
    /// Texts per inference batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Store embeddings as f16 (half the size).
    #[arg(long)]
    f16: bool,
    /// Also write every text's token vectors (content tokens of `last_hidden_state`,
    /// f16) from the same forward pass: OUT with the extension `.tokens` (and
    /// `.queries.tokens`), for `run --corpus-tokens/--query-tokens`.
    #[arg(long)]
    tokens: bool,
    /// Special tokens kept in the token store: drop ([CLS]/[SEP] left out) or keep.
    #[arg(long, default_value = "drop")]
    special_tokens: String,
    /// Maximum tokens per text (default: the model's).
    #[arg(long)]
    max_length: Option<usize>,
    /// Put in front of every query (e5: "query: "); recorded in the stores.
    #[arg(long, default_value = "")]
    query_prefix: String,
    /// Put in front of every passage (e5: "passage: "); recorded in the stores.
    #[arg(long, default_value = "")]
    passage_prefix: String,
    /// Pooling, mean or cls (default: the model's own, from its files).
    #[arg(long)]
    pooling: Option<String>,
}

pub(crate) fn encode(args: &EncodeArgs) -> CliResult {
    let special: SpecialTokens = args.special_tokens.parse()?;
    let mut builder = Encoder::builder(&args.model)
        .batch_size(args.batch_size)
        .intra_threads(args.threads)
        .query_prefix(args.query_prefix.clone())
        .passage_prefix(args.passage_prefix.clone())
        .special_tokens(special);
    if let Some(p) = &args.pooling {
        builder = builder.pooling(p.parse()?);
    }
    if let Some(n) = args.max_length {
        builder = builder.max_length(n);
    }
    let encoder = builder.build()?;
    let dataset = BeirDataset::open(&args.dataset)?;
    let dtype = if args.f16 {
        StoreDtype::F16
    } else {
        StoreDtype::F32
    };
    let bars = Bars::new(false);
    let tokens_of = |pooled: &Path| pooled.with_extension("tokens");
    if !args.queries_only {
        let docs = dataset
            .corpus()?
            .map(|d| d.map(|d| (d.id.clone(), d.full_text())));
        let tokens = args.tokens.then(|| tokens_of(&args.out));
        let targets = EncodeTargets {
            pooled: Some((&args.out, dtype)),
            tokens: tokens.as_deref(),
        };
        bars.begin("corpus", None);
        let n = encode_texts(&encoder, TextKind::Passage, docs, targets, &bars)?;
        bars.end();
        eprintln!("{n} passages -> {}", args.out.display());
        if let Some(t) = tokens {
            eprintln!("{n} passages' tokens -> {}", t.display());
        }
    }
    if !args.corpus_only {
        let path = if args.queries_only {
            args.out.clone()
        } else {
            queries_path(&args.out)
        };
        let queries = dataset.queries()?.into_iter().map(|q| Ok((q.id, q.text)));
        let tokens = args.tokens.then(|| tokens_of(&path));
        let targets = EncodeTargets {
            pooled: Some((&path, dtype)),
            tokens: tokens.as_deref(),
        };
        bars.begin("queries", None);
        let n = encode_texts(&encoder, TextKind::Query, queries, targets, &bars)?;
        bars.end();
        eprintln!("{n} queries -> {}", path.display());
        if let Some(t) = tokens {
            eprintln!("{n} queries' tokens -> {}", t.display());
        }
    }
    Ok(())
}

fn queries_path(corpus: &Path) -> PathBuf {
    let stem = corpus
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = corpus.extension().map(|e| e.to_string_lossy().into_owned());
    let name = match ext {
        Some(ext) => format!("{stem}.queries.{ext}"),
        None => format!("{stem}.queries"),
    };
    corpus.with_file_name(name)
}

#[derive(Args)]
pub(crate) struct UpgradeStoreArgs {
    /// Stores written before format 2. Each is read whole, checked (finite values, unique
    /// ids) and replaced atomically by a checksummed copy; only upgrade files you trust.
    #[arg(required = true)]
    stores: Vec<PathBuf>,
}

/// `latent-terms upgrade-store`: checksums for stores of an older format.
pub(crate) fn upgrade_stores(args: &UpgradeStoreArgs) -> CliResult {
    for path in &args.stores {
        let store = latent_terms::encoders::upgrade_store(path)?;
        eprintln!(
            "{}: {} rows x {}, format {}",
            path.display(),
            store.rows(),
            store.dim(),
            latent_terms::encoders::STORE_VERSION
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct DenseArgs {
    /// Corpus embeddings store (from `encode`).
    #[arg(long)]
    corpus_emb: PathBuf,
    /// Query embeddings store (from `encode`).
    #[arg(long)]
    query_emb: PathBuf,
    /// Where to write the TREC run.
    #[arg(long)]
    run: PathBuf,
    /// Documents retrieved per query.
    #[arg(long, default_value_t = 1000)]
    top: usize,
    /// Score by cosine instead of dot product (the same for normalised embeddings).
    #[arg(long)]
    cosine: bool,
}

pub(crate) fn dense(args: &DenseArgs) -> CliResult {
    let corpus = EmbeddingsStore::open(&args.corpus_emb)?;
    let queries = EmbeddingsStore::open(&args.query_emb)?;
    let metric = if args.cosine {
        Metric::Cosine
    } else {
        Metric::Dot
    };
    let run = dense_run(&queries, &corpus, args.top, metric, "dense")?;
    run.save(&args.run, None)?;
    eprintln!(
        "{} queries x {} documents -> {}",
        queries.rows(),
        corpus.rows(),
        args.run.display()
    );
    Ok(())
}
