//! `latent-terms eval`: a drop-in for trec_eval.

use std::io::{self, BufWriter};
use std::path::PathBuf;

use clap::Args;
use latent_terms::eval::stats::paired_t_test;
use latent_terms::eval::{Evaluation, Evaluator, Qrels, Run, beir};

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
    /// Compare RUN with this second run instead of printing trec_eval's output: per
    /// measure, both means over the queries judged in both runs, their difference
    /// (RUN − OTHER) and a two-sided paired t-test (as scipy's `ttest_rel`).
    #[arg(long, value_name = "OTHER_RUN")]
    compare: Option<PathBuf>,
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
    if let Some(other) = &args.compare {
        let other_evaluation = evaluator.evaluate(&qrels, &Run::from_path(other)?);
        return compare(&evaluation, &other_evaluation, &mut io::stdout().lock());
    }
    let stdout = io::stdout();
    evaluation.write_trec_eval(
        BufWriter::with_capacity(1 << 16, stdout.lock()),
        args.per_query,
        print_runid,
    )?;
    Ok(())
}

/// One line per measure: `measure  queries  mean_a  mean_b  difference  t  p`, the means
/// over the queries both runs were evaluated on (those the paired test pairs).
fn compare(a: &Evaluation, b: &Evaluation, out: &mut dyn io::Write) -> CliResult {
    writeln!(
        out,
        "measure\tqueries\tmean_run\tmean_other\tdifference\tt\tp"
    )?;
    for &measure in a.measures() {
        let test = paired_t_test(a, b, measure)?;
        let b_values: std::collections::HashMap<&str, f64> = b.per_query(measure).collect();
        let (mut sum_a, mut sum_b) = (0.0, 0.0);
        for (q, value) in a.per_query(measure) {
            if let Some(other) = b_values.get(q) {
                sum_a += value;
                sum_b += other;
            }
        }
        let n = (test.degrees_of_freedom + 1) as f64;
        writeln!(
            out,
            "{measure}\t{}\t{:.4}\t{:.4}\t{:+.4}\t{:.3}\t{:.4}",
            test.degrees_of_freedom + 1,
            sum_a / n,
            sum_b / n,
            test.mean_difference,
            test.t,
            test.p_value
        )?;
    }
    Ok(())
}
