//! `latent-terms run` (the whole pipeline) and `latent-terms limit-gen` (LIMIT-style
//! collections).

use std::path::PathBuf;

use clap::Args;
use latent_terms::pipeline::{self, LimitSpec, PipelineConfig, PipelineInputs};

use super::CliResult;
use super::progress::Bars;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// BEIR-layout dataset directory.
    #[arg(long)]
    dataset: PathBuf,
    /// Dense model directory (ONNX graph, tokenizer.json, config); made by scripts/setup-assets.
    #[arg(long, default_value = "assets/models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Pipeline config (JSON; every field optional, see `--print-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Report directory (results.md, results.json, zipf.png, runs/); default out/run/<dataset>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cache of embeddings, SAEs, indexes and runs, keyed by their inputs.
    #[arg(long, default_value = "out/cache")]
    cache: PathBuf,
    /// Corpus embeddings store made earlier (with --query-emb): skips encoding.
    #[arg(long, requires = "query_emb")]
    corpus_emb: Option<PathBuf>,
    /// Query embeddings store made earlier (with --corpus-emb).
    #[arg(long, requires = "corpus_emb")]
    query_emb: Option<PathBuf>,
    /// Use this trained SAE (from `latent-terms sae train`) instead of training one.
    #[arg(long)]
    sae: Option<PathBuf>,
    /// Corpus token store made earlier (`latent-terms encode --tokens`, with --query-tokens).
    #[arg(long, requires = "query_tokens")]
    corpus_tokens: Option<PathBuf>,
    /// Query token store made earlier (with --corpus-tokens).
    #[arg(long, requires = "corpus_tokens")]
    query_tokens: Option<PathBuf>,
    /// Use this trained token-level SAE instead of training one (`--representation tokens|both`).
    #[arg(long)]
    token_sae: Option<PathBuf>,
    /// Latent representations: pooled (one SAE code per embedding), tokens (bags of
    /// token-level latent terms) or both; overrides the config's `representation`.
    #[arg(long)]
    representation: Option<latent_terms::pipeline::Representation>,
    /// Add a token store (another collection's `corpus.tokens`, say) to the token SAE's
    /// training sample (repeat the flag); appended to the config's `tokens.extra_training_stores`.
    #[arg(long = "train-extra-tokens")]
    train_extra_tokens: Vec<PathBuf>,
    /// Add an embeddings store to the SAE training set (repeat the flag); appended to
    /// the config's `extra_training_stores`.
    #[arg(long = "train-extra")]
    train_extra: Vec<PathBuf>,
    /// burn backend for every SAE the run trains: flex, ndarray or cuda[:N]; overrides
    /// the config's `sae.backend` and `tokens.sae.backend`.
    #[arg(long)]
    backend: Option<String>,
    /// Print the effective config as JSON and exit.
    #[arg(long)]
    print_config: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(args: &RunArgs) -> CliResult {
    let mut config = match &args.config {
        Some(path) => PipelineConfig::from_path(path)?,
        None => PipelineConfig::default(),
    };
    config
        .extra_training_stores
        .extend(args.train_extra.iter().cloned());
    config
        .tokens
        .extra_training_stores
        .extend(args.train_extra_tokens.iter().cloned());
    if let Some(r) = args.representation {
        config.representation = r;
    }
    if let Some(backend) = &args.backend {
        // Checked here, before any work: a typo must not surface after encoding.
        backend.parse::<latent_terms::sae::train::Backend>()?;
        config.sae.backend = Some(backend.clone());
        config.tokens.sae.backend = Some(backend.clone());
    }
    if args.print_config {
        println!("{}", config.to_json());
        return Ok(());
    }
    let name = args
        .dataset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/run").join(&name));
    let inputs = PipelineInputs {
        dataset: args.dataset.clone(),
        model: args.model.clone(),
        out: out.clone(),
        cache: args.cache.clone(),
        embeddings: args.corpus_emb.clone().zip(args.query_emb.clone()),
        sae: args.sae.clone(),
        token_sae: args.token_sae.clone(),
        token_stores: args.corpus_tokens.clone().zip(args.query_tokens.clone()),
    };
    let bars = Bars::new(args.quiet);
    let report = pipeline::run(&inputs, &config, &bars)?;
    println!(
        "{} ({} documents, {} judged queries)\n",
        report.dataset, report.docs, report.queries
    );
    print!("{}", report.table());
    if report.d_sae > 0 {
        println!(
            "\npooled: {}; doc_k {}, query_k {}; {:.1} latents/doc, FLOPs {:.2}, {} of {} latents used",
            report.params.source,
            report.params.doc_k,
            report.params.query_k,
            report.avg_latents_per_doc,
            report.flops,
            report.latents_used,
            report.d_sae
        );
    }
    if let Some(t) = &report.tokens {
        println!(
            "tokens: {}; {:.1} latents/doc, {:.1} latents/query, {} postings, {} of {} latents used, training NMSE {:.3}",
            t.params.source,
            t.avg_latents_per_doc,
            t.avg_latents_per_query,
            t.postings,
            t.latents_used,
            t.d_sae,
            t.training_nmse
        );
    }
    let stages: Vec<String> = report
        .stage_seconds
        .iter()
        .map(|(s, t)| {
            let c = if report.cached_stages.contains(s) {
                " cached"
            } else {
                ""
            };
            format!("{s} {t:.1}s{c}")
        })
        .collect();
    println!("stages: {}", stages.join(", "));
    println!("report: {}", out.join("results.md").display());
    Ok(())
}

#[derive(Args)]
pub(crate) struct LimitGenArgs {
    /// Documents in total (core people + distractors).
    #[arg(long, default_value_t = 50_000)]
    docs: usize,
    /// Core people (the only ones queries are about).
    #[arg(long, default_value_t = 46)]
    core: usize,
    /// Queries ("Who likes A?"), two relevant documents each.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Attributes each person likes.
    #[arg(long, default_value_t = 50)]
    likes: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// BEIR directory to write.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn limit_gen(args: &LimitGenArgs) -> CliResult {
    let spec = LimitSpec {
        docs: args.docs,
        core_docs: args.core,
        queries: args.queries,
        likes_per_doc: args.likes,
        seed: args.seed,
    };
    let c = pipeline::write_limit(&spec, &args.out)?;
    eprintln!(
        "{} documents, {} queries -> {}",
        c.docs.len(),
        c.queries.len(),
        args.out.display()
    );
    Ok(())
}
