//! `latent-terms eval`: a drop-in for trec_eval.

use std::io::{self, BufWriter};
use std::path::PathBuf;

use clap::Args;
use latent_terms::eval::{Evaluator, Qrels, Run, beir};

use super::CliResult;

/// Arguments mirror trec_eval's: `eval QRELS RUN -m MEASURE [-q] [-c] [-M k] [-l n]`.
#[derive(Args)]
pub(crate) struct EvalArgs {
    /// TREC qrels file (`qid iter docno rel`), plain or .gz; a `.tsv` file is
    /// read as BEIR qrels (`query-id<TAB>corpus-id<TAB>score` after a header).
    qrels: PathBuf,
    /// TREC run file (`qid Q0 docno rank score tag`), plain or .gz.
    run: PathBuf,
    /// Measure in trec_eval's syntax, repeatable: `map`, `P.5,10`,
    /// `ndcg_cut.10`, `recall.100,1000`, `iprec_at_recall.0.5`, `bpref`, or a
    /// nickname: `all_trec`, `official`, `set`. Without -m, the `official`
    /// set is printed. Every trec_eval measure is available; parameters
    /// other than cutoff lists are not (see `SUPPORTED_MEASURES`).
    #[arg(short = 'm', long = "measure", value_name = "MEASURE")]
    measures: Vec<String>,
    /// Print per-query values as well as the `all` aggregate.
    #[arg(short = 'q')]
    per_query: bool,
    /// Average over every query in the qrels; a query missing from the run counts as empty.
    #[arg(short = 'c')]
    complete: bool,
    /// Evaluate only the top K documents of each query (MRR@K with recip_rank).
    #[arg(short = 'M', value_name = "K")]
    max_docs: Option<usize>,
    /// Minimum relevance level counted as relevant.
    #[arg(
        short = 'l',
        value_name = "LEVEL",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    relevance_level: i64,
}

pub(crate) fn run(args: &EvalArgs) -> CliResult {
    let mut specs: Vec<&str> = args.measures.iter().map(String::as_str).collect();
    if specs.is_empty() {
        specs.push("official");
    }
    // runid is a label, not a value: trec_eval prints it in the summary when asked for.
    let print_runid = specs
        .iter()
        .any(|s| matches!(*s, "runid" | "all_trec" | "official" | "set"));
    specs.retain(|s| *s != "runid");
    let mut evaluator = Evaluator::from_names(&specs)?
        .relevance_level(args.relevance_level)
        .average_complete(args.complete);
    if let Some(k) = args.max_docs {
        evaluator = evaluator.max_docs_per_query(k);
    }
    let qrels = if args.qrels.extension().is_some_and(|e| e == "tsv") {
        beir::qrels_from_tsv_path(&args.qrels)?
    } else {
        Qrels::from_path(&args.qrels)?
    };
    let run = Run::from_path(&args.run)?;
    let evaluation = evaluator.evaluate(&qrels, &run);
    if evaluation.num_queries() == 0 {
        return Err(format!(
            "no query of {} has judgments in {}; check that the query ids match",
            args.run.display(),
            args.qrels.display()
        )
        .into());
    }
    let stdout = io::stdout();
    evaluation.write_trec_eval(
        BufWriter::with_capacity(1 << 16, stdout.lock()),
        args.per_query,
        print_runid,
    )?;
    Ok(())
}
