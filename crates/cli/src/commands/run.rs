//! `latent-terms run` (the whole pipeline) and `latent-terms limit-gen` (LIMIT-style
//! collections).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use latent_terms::pipeline::{self, LimitSpec, PipelineConfig, PipelineInputs, Progress};

use super::CliResult;

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
    /// Add an embeddings store to the SAE training set (repeat the flag); appended to
    /// the config's `extra_training_stores`.
    #[arg(long = "train-extra")]
    train_extra: Vec<PathBuf>,
    /// Print the effective config as JSON and exit.
    #[arg(long)]
    print_config: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// indicatif bars, one per stage.
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    hidden: bool,
}

impl Progress for Bars {
    fn begin(&self, stage: &str, total: Option<u64>) {
        if self.hidden {
            return;
        }
        let bar = match total {
            Some(n) => {
                let bar = ProgressBar::new(n);
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix:>22} [{bar:30}] {human_pos}/{human_len}  elapsed {elapsed}  eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} {prefix:>20} {human_pos}  {per_sec}  elapsed {elapsed}",
                ) {
                    bar.set_style(style);
                }
                bar
            }
        };
        bar.set_prefix(stage.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock()
            && let Some(old) = slot.replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n);
        }
    }

    fn end(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        match self.bar.lock().ok().and_then(|s| s.as_ref().cloned()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

pub(crate) fn run(args: &RunArgs) -> CliResult {
    let mut config = match &args.config {
        Some(path) => PipelineConfig::from_path(path)?,
        None => PipelineConfig::default(),
    };
    config
        .extra_training_stores
        .extend(args.train_extra.iter().cloned());
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
    };
    let bars = Bars {
        bar: Mutex::new(None),
        hidden: args.quiet,
    };
    let report = pipeline::run(&inputs, &config, &bars)?;
    println!(
        "{} ({} documents, {} judged queries)\n",
        report.dataset, report.docs, report.queries
    );
    print!("{}", report.table());
    println!(
        "\nparameters: {}; doc_k {}, query_k {}; {:.1} latents/doc, FLOPs {:.2}, {} of {} latents used",
        report.params.source,
        report.params.doc_k,
        report.params.query_k,
        report.avg_latents_per_doc,
        report.flops,
        report.latents_used,
        report.d_sae
    );
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
