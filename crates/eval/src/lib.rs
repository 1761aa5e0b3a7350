//! TREC qrels, runs and BEIR datasets with trec_eval-exact metrics.
//!
//! This crate is the measuring stick of the `latent-terms` workspace: every
//! retrieval method is scored with it. It reproduces trec_eval 9.0.8's
//! semantics exactly (ranking by score then docno, graded relevance, `-l`,
//! `-M`, `-c`) and adds the statistics and run fusion that the Latent Terms
//! and CL-SR papers report. It depends on no ML crate.
//!
//! ```
//! use latent_terms_eval::{Evaluator, Measure, Qrels, Run};
//!
//! let qrels = Qrels::from_str("1 0 doc-a 2\n1 0 doc-b 1\n1 0 doc-c 0\n")?;
//! let run = Run::from_str("1 Q0 doc-c 1 3.0 bm25\n1 Q0 doc-a 2 2.5 bm25\n")?;
//! let eval = Evaluator::from_names(&["ndcg_cut.10", "recall.100", "recip_rank"])?
//!     .evaluate(&qrels, &run);
//! assert_eq!(eval.mean(Measure::RecipRank), Some(0.5));
//! assert_eq!(eval.mean(Measure::Recall(100)), Some(0.5));
//! // trec_eval's own output format:
//! let mut out = Vec::new();
//! eval.write_trec_eval(&mut out, false, false)?;
//! assert!(String::from_utf8(out).unwrap().starts_with("recip_rank            \tall\t0.5000\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules: [`Qrels`] and [`Run`] read and write TREC files, [`beir`] reads
//! and writes BEIR-layout datasets, [`Evaluator`] computes [`Measure`]s,
//! [`stats`] has Spearman correlation and the paired t-test, and [`fusion`]
//! combines runs.

mod atomic;
pub mod beir;
mod error;
mod evaluate;
pub mod fusion;
mod hash;
mod measures;
mod qrels;
mod run;
pub mod stats;
mod text;

pub use error::{Error, ParseErrorKind, Result};
pub use evaluate::{Evaluation, Evaluator, QueryEvaluation};
pub use measures::{Measure, Ratio, SUPPORTED as SUPPORTED_MEASURES};
pub use qrels::{Qrels, QueryJudgments};
pub use run::{QueryRun, Run};
