//! `latent-terms encode` and `latent-terms dense`: the dense backbone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use latent_terms::dense::dense_run;
use latent_terms::encoders::{EmbeddingsStore, Encoder, Metric, StoreDtype, StoreWriter, TextKind};
use latent_terms::eval::beir::BeirDataset;

use super::CliResult;

/// Texts handed to the encoder at a time: large enough for length-sorted
/// batches, small enough for a lively progress bar.
const CHUNK: usize = 256;

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
}

pub(crate) fn encode(args: &EncodeArgs) -> CliResult {
    let encoder = Encoder::builder(&args.model)
        .batch_size(args.batch_size)
        .intra_threads(args.threads)
        .build()?;
    let dataset = BeirDataset::open(&args.dataset)?;
    let dtype = if args.f16 {
        StoreDtype::F16
    } else {
        StoreDtype::F32
    };
    if !args.queries_only {
        let docs = dataset
            .corpus()?
            .map(|d| d.map(|d| (d.id.clone(), d.full_text())));
        let n = encode_stream(
            &encoder,
            TextKind::Passage,
            docs,
            &args.out,
            dtype,
            "corpus",
        )?;
        eprintln!("{n} passages -> {}", args.out.display());
    }
    if !args.corpus_only {
        let path = if args.queries_only {
            args.out.clone()
        } else {
            queries_path(&args.out)
        };
        let queries = dataset.queries()?.into_iter().map(|q| Ok((q.id, q.text)));
        let n = encode_stream(&encoder, TextKind::Query, queries, &path, dtype, "queries")?;
        eprintln!("{n} queries -> {}", path.display());
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

fn encode_stream(
    encoder: &Encoder,
    kind: TextKind,
    items: impl Iterator<Item = latent_terms::eval::Result<(String, String)>>,
    path: &Path,
    dtype: StoreDtype,
    label: &str,
) -> CliResult<usize> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {prefix} {human_pos} texts  {per_sec}  elapsed {elapsed}",
    )?);
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut writer = StoreWriter::create(path, encoder.store_metadata(), dtype)?;
    let mut chunk: Vec<(String, String)> = Vec::with_capacity(CHUNK);
    let mut total = 0;
    let mut flush = |chunk: &mut Vec<(String, String)>| -> CliResult<usize> {
        writer.append(&encoder.encode(kind, chunk)?)?;
        let n = chunk.len();
        bar.inc(n as u64);
        chunk.clear();
        Ok(n)
    };
    for item in items {
        chunk.push(item?);
        if chunk.len() == CHUNK {
            total += flush(&mut chunk)?;
        }
    }
    if !chunk.is_empty() {
        total += flush(&mut chunk)?;
    }
    bar.finish_and_clear();
    writer.finish()?;
    Ok(total)
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
