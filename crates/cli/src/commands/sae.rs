//! `latent-terms sae train|encode|reconstruct|export-saelens`: sparse autoencoders over
//! embeddings stores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use latent_terms::encoders::{Embeddings, EmbeddingsStore, StoreDtype, StoreWriter};
use latent_terms::eval::{Qrels, Run};
use latent_terms::plot::{LineChart, Scale};
use latent_terms::sae::train::{
    Backend, BiasInit, CheckpointPolicy, Decay, StepMetrics, TrainConfig, TrainOutcome, TrainSet,
    Trainer,
};
use latent_terms::sae::{Activation, EncodeOptions, Latents, SaeEncoder, SaeKind};

use super::CliResult;

#[derive(Subcommand)]
pub(crate) enum SaeCommand {
    /// Train a TopK, BatchTopK or contrastive-KLD SAE on embeddings stores.
    Train(TrainArgs),
    /// Encode an embeddings store into a latents file with a trained SAE.
    Encode(EncodeArgs),
    /// Encode then decode an embeddings store: the SAE's reconstructions, as a store that
    /// `latent-terms dense` searches (the reconstructed-dense baseline).
    Reconstruct(EncodeArgs),
    /// Write an SAE as a SAELens directory (`cfg.json`, `sae_weights.safetensors`) that
    /// SAELens' `SAE.load_from_disk` reads. Every `--sae` flag also takes such a directory.
    ExportSaelens(ExportSaelensArgs),
}

#[derive(Args)]
pub(crate) struct ExportSaelensArgs {
    /// SAE checkpoint (or SAELens directory).
    #[arg(long)]
    sae: PathBuf,
    /// Directory to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Topk,
    Batchtopk,
    Kld,
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// Embeddings store(s) to train on (repeat the flag); rows are pooled.
    #[arg(long = "embeddings", required = true)]
    embeddings: Vec<PathBuf>,
    /// Selection rule and loss.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Number of latents.
    #[arg(long)]
    latents: usize,
    /// Active latents per vector.
    #[arg(long)]
    k: usize,
    /// Passes over the data.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Rows per step.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Decay after warm-up: cosine, linear or constant.
    #[arg(long, default_value = "cosine")]
    decay: String,
    /// AuxK weight (0 turns AuxK off).
    #[arg(long, default_value_t = 1.0 / 16.0)]
    aux_coef: f32,
    /// A latent is dead after this many steps without firing.
    #[arg(long, default_value_t = 20)]
    dead_after: u32,
    /// Query → documents pairs for the KLD trainer: TREC/BEIR qrels (relevance > 0) or a
    /// TREC run (its top `--pairs-depth` per query, e.g. dense nearest neighbours).
    /// Query ids are looked up in the `*.queries.safetensors` stores, documents in the others.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Documents per query taken from a run file.
    #[arg(long, default_value_t = 16)]
    pairs_depth: usize,
    /// KL weight λ.
    #[arg(long, default_value_t = 1.0)]
    kld_coef: f32,
    /// KL softmax temperature τ.
    #[arg(long, default_value_t = 0.05)]
    temperature: f32,
    /// Queries per step in the KL term.
    #[arg(long, default_value_t = 32)]
    kld_queries: usize,
    /// Fraction of rows held out to report validation NMSE.
    #[arg(long, default_value_t = 0.0)]
    validation: f64,
    /// Initialise b_dec at the mean instead of the geometric median.
    #[arg(long)]
    mean_bias: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// burn backend: flex, ndarray or cuda[:N] (default: the faster CPU backend built in).
    #[arg(long)]
    backend: Option<String>,
    /// Write a checkpoint every this many steps (and at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Continue the run saved at --out (weights and its .state file).
    #[arg(long)]
    resume: bool,
    /// The SAE checkpoint to write; the cfg JSON, resume state, JSON log and loss-curve PNG
    /// go beside it (`<stem>.cfg.json`, `.state.safetensors`, `.log.json`, `.loss.png`).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub(crate) struct EncodeArgs {
    /// SAE checkpoint.
    #[arg(long)]
    sae: PathBuf,
    /// Embeddings store to encode.
    #[arg(long)]
    embeddings: PathBuf,
    /// Latents file to write (`reconstruct`: an embeddings store).
    #[arg(long)]
    out: PathBuf,
    /// Keep the top K latents per vector (default: the training k, or the stored threshold
    /// for a BatchTopK SAE).
    #[arg(long, conflicts_with = "threshold")]
    top_k: Option<usize>,
    /// Keep latents above this threshold; `stored` uses the SAE's own.
    #[arg(long)]
    threshold: Option<String>,
    /// At most this many latents per vector.
    #[arg(long)]
    cap: Option<usize>,
}

pub(crate) fn run(command: &SaeCommand) -> CliResult {
    match command {
        SaeCommand::Train(args) => train(args),
        SaeCommand::Encode(args) => encode(args),
        SaeCommand::Reconstruct(args) => reconstruct(args),
        SaeCommand::ExportSaelens(args) => export_saelens(args),
    }
}

struct Pool {
    rows: Vec<f32>,
    dim: usize,
    /// (store path, id) → row, per side.
    queries: HashMap<String, usize>,
    docs: HashMap<String, usize>,
}

fn load_pool(paths: &[PathBuf]) -> CliResult<Pool> {
    let mut pool = Pool {
        rows: Vec::new(),
        dim: 0,
        queries: HashMap::new(),
        docs: HashMap::new(),
    };
    for path in paths {
        let store = EmbeddingsStore::open(path)?;
        let emb = store.load()?;
        if pool.dim != 0 && emb.dim() != pool.dim {
            return Err(format!(
                "{}: {}-dimensional embeddings, but earlier stores are {}-dimensional",
                path.display(),
                emb.dim(),
                pool.dim
            )
            .into());
        }
        pool.dim = emb.dim();
        let is_queries = path.to_string_lossy().ends_with(".queries.safetensors");
        let side = if is_queries {
            &mut pool.queries
        } else {
            &mut pool.docs
        };
        let base = pool.rows.len() / pool.dim.max(1);
        for (i, id) in emb.ids().iter().enumerate() {
            side.entry(id.clone()).or_insert(base + i);
        }
        pool.rows.extend_from_slice(emb.data());
    }
    Ok(pool)
}

fn load_pairs(path: &Path, depth: usize, pool: &Pool) -> CliResult<Vec<(usize, Vec<usize>)>> {
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    let is_tsv = path.extension().is_some_and(|e| e == "tsv");
    let qrels = if is_tsv {
        latent_terms::eval::beir::qrels_from_tsv_path(path)
    } else {
        Qrels::from_path(path)
    };
    match qrels {
        Ok(qrels) => {
            for q in qrels.iter() {
                let docs = q
                    .iter()
                    .filter(|&(_, rel)| rel > 0)
                    .map(|(d, _)| d.to_owned())
                    .collect();
                lists.push((q.qid().to_owned(), docs));
            }
        }
        Err(qrels_err) => {
            let run = Run::from_path(path).map_err(|run_err| {
                format!(
                    "{}: neither qrels ({qrels_err}) nor a run ({run_err})",
                    path.display()
                )
            })?;
            for q in run.iter() {
                let docs = q.ranked().take(depth).map(|(d, _)| d.to_owned()).collect();
                lists.push((q.qid().to_owned(), docs));
            }
        }
    }
    let (mut pairs, mut missing) = (Vec::new(), 0usize);
    for (qid, docs) in lists {
        let Some(&q) = pool.queries.get(&qid) else {
            missing += 1;
            continue;
        };
        let docs: Vec<usize> = docs
            .iter()
            .filter_map(|d| pool.docs.get(d).copied())
            .collect();
        pairs.push((q, docs));
    }
    if pairs.is_empty() {
        return Err(format!(
            "{}: no query of the pairs file is in the *.queries.safetensors stores given",
            path.display()
        )
        .into());
    }
    if missing > 0 {
        eprintln!(
            "pairs: {missing} queries of {} have no embedding and are skipped",
            path.display()
        );
    }
    Ok(pairs)
}

fn train_config(args: &TrainArgs) -> CliResult<TrainConfig> {
    let kind = match args.kind {
        Kind::Topk => SaeKind::TopK,
        Kind::Batchtopk => SaeKind::BatchTopK,
        Kind::Kld => SaeKind::Kld,
    };
    let mut c = TrainConfig::new(kind, args.latents, args.k);
    c.epochs = args.epochs;
    c.batch_size = args.batch_size;
    c.optim.lr = args.lr;
    c.optim.warmup_steps = args.warmup;
    c.optim.decay = match args.decay.as_str() {
        "cosine" => Decay::Cosine,
        "linear" => Decay::Linear,
        "constant" => Decay::Constant,
        other => return Err(format!("unknown decay {other:?}: cosine, linear or constant").into()),
    };
    c.aux.coef = args.aux_coef;
    c.aux.dead_after_steps = args.dead_after;
    c.kld.coef = args.kld_coef;
    c.kld.temperature = args.temperature;
    c.kld.queries_per_batch = args.kld_queries;
    c.kld.docs_per_query = args.pairs_depth;
    c.validation_fraction = args.validation;
    c.bias_init = if args.mean_bias {
        BiasInit::Mean
    } else {
        BiasInit::GeometricMedian
    };
    c.seed = args.seed;
    Ok(c)
}

fn train(args: &TrainArgs) -> CliResult {
    let config = train_config(args)?;
    let pool = load_pool(&args.embeddings)?;
    let mut set = TrainSet::new(&pool.rows, pool.dim)?;
    if let Some(path) = &args.pairs {
        set = set.with_pairs(load_pairs(path, args.pairs_depth, &pool)?)?;
    } else if config.kind == SaeKind::Kld {
        return Err("--kind kld needs --pairs (qrels or a dense run)".into());
    }
    let backend = match &args.backend {
        Some(b) => b.parse()?,
        None => Backend::default_cpu()?,
    };
    eprintln!(
        "training a {} SAE: {} rows × {}, {} latents, k {}, {} epochs, backend {backend:?}",
        config.kind.as_str(),
        set.len(),
        set.dim(),
        config.d_sae,
        config.k,
        config.epochs
    );
    for warning in config.warnings(set.len()) {
        eprintln!("warning: {warning}");
    }
    let trainer = Trainer::new(config.clone(), backend)?.with_checkpoints(CheckpointPolicy {
        path: args.out.clone(),
        every_steps: args.checkpoint_every,
    });
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]",
    )?);
    let mut observe = |m: &StepMetrics| {
        bar.set_length(m.total_steps);
        bar.set_position(m.step);
        bar.set_message(format!(
            "nmse {:.4} l0 {:.1} dead {:.1}% aux {:.3} kld {:.4} {:.0}/s",
            m.nmse,
            m.l0,
            100.0 * m.dead_fraction,
            m.aux_loss,
            m.kld,
            m.samples_per_s
        ));
    };
    let outcome = if args.resume {
        trainer.resume(&set, &args.out, &mut observe)?
    } else {
        trainer.train(&set, &mut observe)?
    };
    bar.finish_and_clear();
    write_reports(args, &config, &outcome, set.len())?;
    let s = &outcome.summary;
    let last = outcome.history.last().cloned().unwrap_or_default();
    let summary = serde_json::json!({
        "out": args.out,
        "kind": config.kind.as_str(),
        "d_sae": config.d_sae,
        "k": config.k,
        "rows": set.len(),
        "nmse": s.nmse,
        "mse": s.mse,
        "l0": s.l0,
        "dead_fraction": s.dead_fraction,
        "validation_nmse": s.validation_nmse,
        "threshold": outcome.weights.config.threshold,
        "final_step_nmse": last.nmse,
        "final_step_kld": last.kld,
        "samples_per_s": s.samples_per_s,
        "steps": outcome.state.step,
        "seconds": s.seconds,
    });
    println!("{summary}");
    Ok(())
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}{suffix}"))
}

fn write_reports(
    args: &TrainArgs,
    config: &TrainConfig,
    outcome: &TrainOutcome,
    rows: usize,
) -> CliResult {
    if outcome.history.is_empty() {
        // A resumed run that was already complete: keep the log and plot of the steps it ran.
        eprintln!(
            "{}: the run was already complete; nothing was trained, the log and plot are kept",
            args.out.display()
        );
        return Ok(());
    }
    let log = serde_json::json!({
        "config": config,
        "embeddings": args.embeddings,
        "rows": rows,
        "summary": outcome.summary,
        "history": outcome.history,
    });
    let log_path = sibling(&args.out, ".log.json");
    latent_terms::pipeline::write_atomic(&log_path, &serde_json::to_vec_pretty(&log)?)?;
    let steps: Vec<f64> = outcome.history.iter().map(|m| m.step as f64).collect();
    let curve = |name: &str, f: fn(&StepMetrics) -> f64| {
        (
            name.to_owned(),
            steps.clone(),
            outcome.history.iter().map(f).collect::<Vec<_>>(),
        )
    };
    let mut series = vec![
        curve("NMSE", |m| m.nmse),
        curve("dead fraction", |m| m.dead_fraction),
    ];
    if config.kind == SaeKind::Kld {
        series.push(curve("KL", |m| m.kld));
    }
    let title = format!(
        "{} SAE, {} latents, k = {}",
        config.kind.as_str(),
        config.d_sae,
        config.k
    );
    LineChart {
        title: &title,
        x_label: "step",
        y_label: "value (log scale)",
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        series,
    }
    .save(&sibling(&args.out, ".loss.png"))?;
    Ok(())
}

fn encode_options(args: &EncodeArgs, sae: &SaeEncoder) -> CliResult<EncodeOptions> {
    let c = &sae.weights().config;
    let activation = match (&args.top_k, args.threshold.as_deref()) {
        (Some(k), _) => Activation::TopK(*k),
        (None, Some("stored")) => Activation::StoredThreshold,
        (None, Some(t)) => Activation::Threshold(
            t.parse()
                .map_err(|_| format!("--threshold {t:?}: a number or `stored`"))?,
        ),
        (None, None) if c.kind == SaeKind::BatchTopK && c.threshold.is_some() => {
            Activation::StoredThreshold
        }
        (None, None) => Activation::TopK(c.k),
    };
    Ok(EncodeOptions {
        activation,
        cap: args.cap,
    })
}

fn encode(args: &EncodeArgs) -> CliResult {
    let sae = SaeEncoder::load(&args.sae)?;
    let emb = EmbeddingsStore::open(&args.embeddings)?.load()?;
    sae.check_dim(emb.dim())?;
    let options = encode_options(args, &sae)?;
    let started = std::time::Instant::now();
    let codes = sae.encode(emb.data(), &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let nnz: usize = codes.iter().map(|c| c.len()).sum();
    Latents {
        d_sae: sae.d_sae(),
        ids: emb.ids().to_vec(),
        codes,
    }
    .save(&args.out)?;
    println!(
        "{}",
        serde_json::json!({
            "out": args.out,
            "rows": emb.rows(),
            "avg_latents": nnz as f64 / emb.rows().max(1) as f64,
            "seconds": seconds,
            "rows_per_s": emb.rows() as f64 / seconds.max(1e-9),
        })
    );
    Ok(())
}

fn reconstruct(args: &EncodeArgs) -> CliResult {
    let sae = SaeEncoder::load(&args.sae)?;
    let store = EmbeddingsStore::open(&args.embeddings)?;
    let emb = store.load()?;
    sae.check_dim(emb.dim())?;
    let codes = sae.encode(emb.data(), &encode_options(args, &sae)?)?;
    let back = sae.decode(&codes);
    let mut meta = store.metadata().clone();
    // Reconstructions are not unit-norm, and come from another "model".
    meta.normalized = false;
    meta.model = format!("{} + SAE {}", meta.model, args.sae.display());
    let mut writer = StoreWriter::create(&args.out, meta, StoreDtype::F32)?;
    writer.append(&Embeddings::new(
        emb.ids().to_vec(),
        emb.dim(),
        back.clone(),
    )?)?;
    writer.finish()?;
    let se: f64 = emb
        .data()
        .iter()
        .zip(&back)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let dim = emb.dim().max(1);
    let mut mean = vec![0f64; dim];
    for row in emb.data().chunks(dim) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &x)| *m += f64::from(x) / emb.rows().max(1) as f64);
    }
    let spread: f64 = emb
        .data()
        .chunks(dim)
        .map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&x, m)| (f64::from(x) - m).powi(2))
                .sum::<f64>()
        })
        .sum();
    let nnz: usize = codes.iter().map(|c| c.len()).sum();
    println!(
        "{}",
        serde_json::json!({
            "out": args.out,
            "rows": emb.rows(),
            "avg_latents": nnz as f64 / emb.rows().max(1) as f64,
            "nmse": se / spread.max(1e-12),
        })
    );
    Ok(())
}

fn export_saelens(args: &ExportSaelensArgs) -> CliResult {
    let weights = latent_terms::sae::SaeWeights::load(&args.sae)?;
    weights.save_saelens(&args.out)?;
    let c = &weights.config;
    println!(
        "wrote {} (SAELens architecture {}, k {}, d_in {}, d_sae {}; input scale folded into the weights)",
        args.out.display(),
        weights.saelens_architecture(),
        c.k,
        c.d_in,
        c.d_sae
    );
    Ok(())
}
