//! Evaluate a TREC run with `latent-terms-eval`, the way a downstream program would.
//!
//! ```text
//! cargo run -p latent-terms-examples --example evaluate_run -- QRELS RUN
//! ```
//! Without arguments it evaluates the sample files in `examples/data/`.

use std::path::PathBuf;

use latent_terms::eval::{Evaluator, Measure, Qrels, Run, stats};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut args = std::env::args().skip(1);
    let qrels_path = args
        .next()
        .map_or(data.join("cranfield-sample.qrels"), PathBuf::from);
    let run_path = args
        .next()
        .map_or(data.join("cranfield-sample-bm25.run"), PathBuf::from);

    let qrels = Qrels::from_path(&qrels_path)?;
    let run = Run::from_path(&run_path)?;

    // Measures are named as in trec_eval; -M 10 turns recip_rank into MRR@10.
    let evaluator = Evaluator::from_names(&["ndcg_cut.10", "recall.100,1000", "map"])?;
    let evaluation = evaluator.evaluate(&qrels, &run);
    let mrr10 = Evaluator::new([Measure::RecipRank])
        .max_docs_per_query(10)
        .evaluate(&qrels, &run);

    println!(
        "run {:?}: {} queries evaluated",
        run.tag(),
        evaluation.num_queries()
    );
    for &m in evaluation.measures() {
        println!("{m:<14} {:.4}", evaluation.mean(m).unwrap_or(0.0));
    }
    println!(
        "{:<14} {:.4}",
        "MRR@10",
        mrr10.mean(Measure::RecipRank).unwrap_or(0.0)
    );

    // Per-query values feed significance tests; comparing a run with itself gives p = 1.
    let t = stats::paired_t_test(&evaluation, &evaluation, Measure::NdcgCut(10))?;
    println!("paired t-test against itself: p = {:.3}", t.p_value);
    Ok(())
}
