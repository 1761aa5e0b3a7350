//! `latent-terms bm25`: lexical BM25 over a BEIR dataset, written as a TREC run.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use latent_terms::eval::beir::BeirDataset;
use latent_terms::eval::{Evaluator, Measure};
use latent_terms::lexical::LexicalIndex;
use latent_terms::sparse_index::{Bm25, Bm25Params};

use super::CliResult;

#[derive(Args)]
pub(crate) struct Bm25Args {
    /// BEIR-layout dataset directory (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv).
    #[arg(long)]
    dataset: PathBuf,
    /// Where to write the TREC run.
    #[arg(long)]
    run: PathBuf,
    /// Term-frequency saturation (Lucene default).
    #[arg(long, default_value_t = 0.9)]
    k1: f32,
    /// Length normalisation (Lucene default).
    #[arg(long, default_value_t = 0.4)]
    b: f32,
    /// Documents retrieved per query.
    #[arg(long, default_value_t = 1000)]
    top: usize,
    /// Qrels split: queries judged in `qrels/<split>.tsv` are searched.
    #[arg(long, default_value = "test")]
    split: String,
    /// Also save the index (with its vocabulary) to this file.
    #[arg(long)]
    save_index: Option<PathBuf>,
}

pub(crate) fn run(args: &Bm25Args) -> CliResult {
    let dataset = BeirDataset::open(&args.dataset)?;
    let qrels = dataset.qrels(&args.split)?;
    let queries = dataset.queries_judged_in(&qrels)?;
    if queries.is_empty() {
        return Err(format!(
            "{}: no query of queries.jsonl is judged in qrels/{}.tsv; check the split",
            args.dataset.display(),
            args.split
        )
        .into());
    }
    let scorer = Bm25::new(Bm25Params {
        k1: args.k1,
        b: args.b,
        ..Bm25Params::default()
    })?;

    let started = Instant::now();
    let index = LexicalIndex::build(&dataset)?;
    let indexed = started.elapsed();
    let started = Instant::now();
    let run = index.run(&queries, &scorer, args.top, "bm25")?;
    let searched = started.elapsed();
    run.save(&args.run, None)?;
    if let Some(path) = &args.save_index {
        index.index().save(path)?;
    }

    let eval =
        Evaluator::from_names(&["ndcg_cut.10", "recall.100,1000", "map"])?.evaluate(&qrels, &run);
    let mean = |m| eval.mean(m).unwrap_or(0.0);
    eprintln!(
        "{}: {} documents indexed in {:.2}s; {} queries searched in {:.2}s ({:.0} queries/s)",
        dataset.name(),
        index.index().num_docs(),
        indexed.as_secs_f64(),
        queries.len(),
        searched.as_secs_f64(),
        queries.len() as f64 / searched.as_secs_f64().max(1e-9),
    );
    eprintln!(
        "nDCG@10 {:.4}  MAP {:.4}  R@100 {:.4}  R@1000 {:.4}  -> {}",
        mean(Measure::NdcgCut(10)),
        mean(Measure::Map),
        mean(Measure::Recall(100)),
        mean(Measure::Recall(1000)),
        args.run.display()
    );
    Ok(())
}
