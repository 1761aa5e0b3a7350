//! The evaluator: trec_eval's options applied to a run against qrels.

use std::io::Write;

use crate::error::Result;
use crate::measures::{JudgedRanking, Measure};
use crate::qrels::{Qrels, QueryJudgments};
use crate::run::{QueryRun, Run};

/// Evaluates runs against qrels with trec_eval's semantics.
///
/// ```
/// use latent_terms_eval::{Evaluator, Measure, Qrels, Run};
///
/// let qrels = Qrels::from_str("q1 0 d1 1\nq1 0 d2 1\nq2 0 d9 2\n")?;
/// let run = Run::from_str("q1 Q0 d1 1 9 sys\nq1 Q0 d5 2 8 sys\nq2 Q0 d9 1 1 sys\n")?;
/// let evaluator = Evaluator::from_names(&["map", "P.1", "recip_rank"])?;
/// let eval = evaluator.evaluate(&qrels, &run);
/// assert_eq!(eval.value("q1", Measure::P(1)), Some(1.0));
/// assert_eq!(eval.mean(Measure::Map), Some(0.75)); // (0.5 + 1.0) / 2
/// # Ok::<(), latent_terms_eval::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Evaluator {
    measures: Vec<Measure>,
    relevance_level: i64,
    max_docs_per_query: usize,
    average_complete: bool,
}

impl Evaluator {
    /// An evaluator for `measures` (sorted into trec_eval's order), with
    /// trec_eval's defaults: relevance level 1, no depth cut, averages over
    /// the queries present in both the run and the qrels.
    pub fn new(measures: impl IntoIterator<Item = Measure>) -> Self {
        let mut measures: Vec<Measure> = measures.into_iter().collect();
        measures.sort_unstable();
        measures.dedup();
        Evaluator {
            measures,
            relevance_level: 1,
            max_docs_per_query: usize::MAX,
            average_complete: false,
        }
    }

    /// An evaluator from `-m` style measure names, e.g. `["ndcg_cut.10", "P.5,10"]`.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        Ok(Self::new(Measure::parse_list(names)?))
    }

    /// Documents judged at or above `level` count as relevant (trec_eval `-l`).
    /// nDCG always uses the judged levels as gains, as in trec_eval.
    pub fn relevance_level(mut self, level: i64) -> Self {
        self.relevance_level = level;
        self
    }

    /// Evaluates only the top `k` documents of each query (trec_eval `-M k`;
    /// with `recip_rank` this gives MRR@k).
    pub fn max_docs_per_query(mut self, k: usize) -> Self {
        self.max_docs_per_query = k;
        self
    }

    /// Averages over every query in the qrels, a query missing from the run
    /// contributing 0 (trec_eval `-c`). As in trec_eval, missing queries get
    /// no per-query values, and the aggregate `num_rel` then counts every
    /// judgment with relevance > 0 in the qrels, whatever the relevance level.
    pub fn average_complete(mut self, yes: bool) -> Self {
        self.average_complete = yes;
        self
    }

    /// The measures computed, in output order.
    pub fn measures(&self) -> &[Measure] {
        &self.measures
    }

    /// Evaluates `run` against `qrels`.
    pub fn evaluate(&self, qrels: &Qrels, run: &Run) -> Evaluation {
        let mut scratch = Scratch::default();
        let mut queries: Vec<QueryEvaluation> = Vec::new();
        for query in run.iter() {
            if let Some(judgments) = qrels.get(query.qid()) {
                let values = self.evaluate_query(judgments, query, &mut scratch);
                queries.push(QueryEvaluation {
                    qid: query.qid().to_owned(),
                    values,
                });
            }
        }
        queries.sort_unstable_by(|a, b| a.qid.as_bytes().cmp(b.qid.as_bytes()));
        let num_queries = if self.average_complete {
            qrels.len()
        } else {
            queries.len()
        };
        let aggregate = self
            .measures
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let sum: f64 = queries.iter().map(|q| q.values[j]).sum();
                match m {
                    Measure::NumQ => num_queries as f64,
                    // trec_eval -c's summary num_rel: every positive judgment in the file.
                    Measure::NumRel if self.average_complete => {
                        qrels.iter().map(|q| q.num_relevant(1)).sum::<usize>() as f64
                    }
                    m if m.is_count() => sum,
                    _ if num_queries == 0 => 0.0,
                    _ => sum / num_queries as f64,
                }
            })
            .collect();
        Evaluation {
            measures: self.measures.clone(),
            queries,
            aggregate,
            num_queries,
            run_tag: run.tag().to_owned(),
        }
    }

    fn evaluate_query(
        &self,
        judgments: &QueryJudgments,
        ranking: &QueryRun,
        scratch: &mut Scratch,
    ) -> Vec<f64> {
        scratch.ranked.clear();
        let order = ranking.ranked_order();
        let depth = order.len().min(self.max_docs_per_query);
        scratch.ranked.extend(order[..depth].iter().map(|&i| {
            judgments
                .relevance(ranking.docno_at(i))
                .and_then(|r| u32::try_from(r).ok())
        }));
        scratch.levels.clear();
        scratch
            .levels
            .extend(judgments.iter().filter_map(|(_, r)| u32::try_from(r).ok()));
        scratch.levels.sort_unstable_by(|a, b| b.cmp(a));
        let view = JudgedRanking {
            ranked: &scratch.ranked,
            judged_levels_desc: &scratch.levels,
            relevance_level: self.relevance_level,
        };
        let mut values = vec![0.0; self.measures.len()];
        view.compute(&self.measures, &mut values);
        values
    }
}

#[derive(Default)]
struct Scratch {
    ranked: Vec<Option<u32>>,
    levels: Vec<u32>,
}

/// Per-query values of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEvaluation {
    /// The query id.
    pub qid: String,
    /// One value per measure, in [`Evaluation::measures`] order.
    pub values: Vec<f64>,
}

/// The result of an evaluation: per-query values and their aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    measures: Vec<Measure>,
    queries: Vec<QueryEvaluation>,
    aggregate: Vec<f64>,
    num_queries: usize,
    run_tag: String,
}

impl Evaluation {
    /// The measures, in output order.
    pub fn measures(&self) -> &[Measure] {
        &self.measures
    }

    /// Queries in both the run and the qrels, in byte order of qid.
    pub fn queries(&self) -> &[QueryEvaluation] {
        &self.queries
    }

    /// Number of queries averaged over (trec_eval's `num_q`): the queries
    /// in both run and qrels, or every qrels query with `average_complete`.
    pub fn num_queries(&self) -> usize {
        self.num_queries
    }

    /// The tag of the evaluated run.
    pub fn run_tag(&self) -> &str {
        &self.run_tag
    }

    fn column(&self, measure: Measure) -> Option<usize> {
        self.measures.iter().position(|&m| m == measure)
    }

    /// One query's value of one measure.
    pub fn value(&self, qid: &str, measure: Measure) -> Option<f64> {
        let j = self.column(measure)?;
        let i = self
            .queries
            .binary_search_by(|q| q.qid.as_bytes().cmp(qid.as_bytes()))
            .ok()?;
        Some(self.queries[i].values[j])
    }

    /// The aggregate of a measure over queries: the mean, or the sum for
    /// counting measures (`num_ret`, `num_rel`, `num_rel_ret`, `num_q`).
    pub fn mean(&self, measure: Measure) -> Option<f64> {
        self.column(measure).map(|j| self.aggregate[j])
    }

    /// `(qid, value)` of one measure for every query.
    pub fn per_query(&self, measure: Measure) -> impl Iterator<Item = (&str, f64)> {
        let j = self.column(measure);
        self.queries
            .iter()
            .filter_map(move |q| j.map(|j| (q.qid.as_str(), q.values[j])))
    }

    /// Writes trec_eval's output: with `per_query`, every query's values
    /// first (as `trec_eval -q`), then the `all` lines. `runid` adds
    /// trec_eval's `runid all TAG` line.
    pub fn write_trec_eval(
        &self,
        mut out: impl Write,
        per_query: bool,
        runid: bool,
    ) -> std::io::Result<()> {
        if per_query {
            for q in &self.queries {
                for (m, &v) in self.measures.iter().zip(&q.values) {
                    if *m != Measure::NumQ {
                        write_line(&mut out, *m, &q.qid, v)?;
                    }
                }
            }
        }
        if runid {
            writeln!(out, "{:<22}\tall\t{}", "runid", self.run_tag)?;
        }
        for (m, &v) in self.measures.iter().zip(&self.aggregate) {
            write_line(&mut out, *m, "all", v)?;
        }
        out.flush()
    }
}

fn write_line(out: &mut impl Write, m: Measure, qid: &str, v: f64) -> std::io::Result<()> {
    if m.is_count() {
        writeln!(out, "{:<22}\t{}\t{}", m.to_string(), qid, v as i64)
    } else {
        writeln!(out, "{:<22}\t{}\t{:6.4}", m.to_string(), qid, v)
    }
}
