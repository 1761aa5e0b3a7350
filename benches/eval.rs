//! Parse + evaluate a TREC run (`ndcg_cut.10 map recip_rank recall.1000`).
//!
//! The input is generated deterministically into a temporary directory:
//! `LT_BENCH_EVAL_QUERIES` queries (default 10,000) × 1,000 documents, the
//! shape of `scripts/bench-eval.py`, which also times pytrec_eval on the same
//! files side by side.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;
use common::SplitMix;

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use latent_terms::eval::{Evaluator, Qrels, Run};

fn generate(
    queries: usize,
    depth: usize,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut rng = SplitMix(42);
    let (mut run, mut qrels) = (String::new(), String::new());
    for q in 0..queries {
        for rank in 0..depth {
            let doc = rng.next() % 1_000_000;
            let score = 100.0 - rank as f64 * 0.05 + (rng.next() % 3) as f64 * 0.01;
            let _ = writeln!(run, "q{q} Q0 doc{doc}-{rank} {} {score:.4} bench", rank + 1);
            if rng.next().is_multiple_of(40) {
                let _ = writeln!(qrels, "q{q} 0 doc{doc}-{rank} {}", rng.next() % 4);
            }
        }
        for j in 0..10 {
            let _ = writeln!(qrels, "q{q} 0 unretrieved{j} {}", 1 + rng.next() % 3);
        }
    }
    let (run_path, qrels_path) = (dir.join("bench.run"), dir.join("bench.qrels"));
    std::fs::write(&run_path, run).expect("write run");
    std::fs::write(&qrels_path, qrels).expect("write qrels");
    (qrels_path, run_path)
}

fn bench_eval(c: &mut Criterion) {
    let queries = std::env::var("LT_BENCH_EVAL_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("lt-bench-eval-{queries}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (qrels_path, run_path) = generate(queries, 1000, &dir);
    let evaluator = Evaluator::from_names(&["ndcg_cut.10", "map", "recip_rank", "recall.1000"])
        .expect("supported measures");
    let mut group = c.benchmark_group("eval");
    group.sample_size(10);
    group.bench_function(format!("parse+evaluate {queries}x1000"), |b| {
        b.iter(|| {
            let qrels = Qrels::from_path(&qrels_path).expect("qrels");
            let run = Run::from_path(&run_path).expect("run");
            black_box(evaluator.evaluate(&qrels, &run))
        })
    });
    let qrels = Qrels::from_path(&qrels_path).expect("qrels");
    let run = Run::from_path(&run_path).expect("run");
    group.bench_function(format!("evaluate only {queries}x1000"), |b| {
        b.iter(|| black_box(evaluator.evaluate(&qrels, &run)))
    });
    group.finish();
}

criterion_group!(benches, bench_eval);
criterion_main!(benches);
