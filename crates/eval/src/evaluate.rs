//! The evaluator: trec_eval's options applied to a run against qrels.

use std::io::Write;

use crate::error::Result;
use crate::measures::{JudgedRanking, MIN_GEO_MEAN, Measure, NONPOOL, UNJUDGED, Workspace};
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
    ///
    /// A query with an empty ranking is treated as absent from the run, as it
    /// would be once the run is written to a TREC file.
    pub fn evaluate(&self, qrels: &Qrels, run: &Run) -> Evaluation {
        let mut scratch = Scratch::default();
        let mut queries: Vec<QueryEvaluation> = Vec::new();
        for query in run.iter().filter(|q| !q.is_empty()) {
            if let Some(judgments) = qrels.get(query.qid()) {
                queries.push(self.evaluate_query(judgments, query, &mut scratch));
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
            .map(|(j, &m)| {
                // A plain `+=` in query order from +0.0, as trec_eval sums
                // (`Iterator::sum` would start from -0.0).
                let sum_of = |f: &dyn Fn(f64) -> f64| {
                    queries.iter().fold(0.0, |sum, q| sum + f(q.values[j]))
                };
                match m {
                    Measure::NumQ => num_queries as f64,
                    // trec_eval -c's summary num_rel: every positive judgment in the file.
                    Measure::NumRel if self.average_complete => {
                        qrels.iter().map(|q| q.num_relevant(1)).sum::<usize>() as f64
                    }
                    Measure::Relstring => 0.0,
                    m if m.is_count() => sum_of(&|v| v),
                    _ if num_queries == 0 => 0.0,
                    m if m.is_geometric_mean() => {
                        // `max` is C's MAX here: a NaN value becomes the floor too.
                        let mut sum = sum_of(&|v| v.max(MIN_GEO_MEAN).ln());
                        if self.average_complete {
                            // Queries missing from the run count as the floor.
                            sum += (num_queries - queries.len()) as f64 * MIN_GEO_MEAN.ln();
                        }
                        (sum / num_queries as f64).exp()
                    }
                    _ => sum_of(&|v| v) / num_queries as f64,
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
    ) -> QueryEvaluation {
        scratch.ranked.clear();
        let order = ranking.ranked_order();
        let depth = order.len().min(self.max_docs_per_query);
        // trec_eval's relevance values: the judgment, or a negative code.
        scratch.ranked.extend(order[..depth].iter().map(|&i| {
            match judgments.relevance(ranking.docno_at(i)) {
                None => NONPOOL,
                Some(rel) if rel < 0 => UNJUDGED,
                Some(rel) => rel,
            }
        }));
        scratch.levels.clear();
        scratch
            .levels
            .extend(judgments.iter().map(|(_, rel)| rel).filter(|&rel| rel >= 0));
        scratch.levels.sort_unstable_by(|a, b| b.cmp(a));
        let view = JudgedRanking {
            ranked: &scratch.ranked,
            judged_levels_desc: &scratch.levels,
            relevance_level: self.relevance_level,
        };
        let mut values = vec![0.0; self.measures.len()];
        view.compute(&self.measures, &mut values, &mut scratch.workspace);
        QueryEvaluation {
            qid: ranking.qid().to_owned(),
            values,
            relstring: self
                .measures
                .contains(&Measure::Relstring)
                .then(|| view.relstring()),
        }
    }
}

#[derive(Default)]
struct Scratch {
    ranked: Vec<i64>,
    levels: Vec<i64>,
    workspace: Workspace,
}

/// Per-query values of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEvaluation {
    /// The query id.
    pub qid: String,
    /// One value per measure, in [`Evaluation::measures`] order. The column
    /// of [`Measure::Relstring`], which is not a number, holds 0.
    pub values: Vec<f64>,
    /// trec_eval's `relstring` (the relevance of the top 10 documents,
    /// e.g. `0.20-00100`) when [`Measure::Relstring`] was requested.
    pub relstring: Option<String>,
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

    /// The column of a measure with a numeric value.
    fn column(&self, measure: Measure) -> Option<usize> {
        if measure == Measure::Relstring {
            return None;
        }
        self.measures.iter().position(|&m| m == measure)
    }

    /// One query's value of one measure. `None` if the measure was not
    /// computed, or for [`Measure::Relstring`], which is not a number (see
    /// [`Evaluation::relstring`]). For `gm_map` and `gm_bpref` it is the
    /// query's AP or bpref: only their aggregate is a geometric mean.
    pub fn value(&self, qid: &str, measure: Measure) -> Option<f64> {
        let j = self.column(measure)?;
        let i = self
            .queries
            .binary_search_by(|q| q.qid.as_bytes().cmp(qid.as_bytes()))
            .ok()?;
        Some(self.queries[i].values[j])
    }

    /// One query's `relstring`, when [`Measure::Relstring`] was computed.
    pub fn relstring(&self, qid: &str) -> Option<&str> {
        let i = self
            .queries
            .binary_search_by(|q| q.qid.as_bytes().cmp(qid.as_bytes()))
            .ok()?;
        self.queries[i].relstring.as_deref()
    }

    /// The aggregate of a measure over queries, as trec_eval's `all` line:
    /// the mean, the sum for counting measures (`num_ret`, `num_rel`,
    /// `num_rel_ret`, `num_nonrel_judged_ret`, `num_q`), the geometric mean
    /// for `gm_map` and `gm_bpref`. `None` for [`Measure::Relstring`].
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
                for (&m, &v) in self.measures.iter().zip(&q.values) {
                    if m == Measure::Relstring {
                        let relstring = q.relstring.as_deref().unwrap_or_default();
                        writeln!(out, "{:<22}\t{}\t'{}'", m.to_string(), q.qid, relstring)?;
                    } else if !m.is_summary_only() {
                        write_line(&mut out, m, &q.qid, v)?;
                    }
                }
            }
        }
        if runid {
            writeln!(out, "{:<22}\tall\t{}", "runid", self.run_tag)?;
        }
        for (&m, &v) in self.measures.iter().zip(&self.aggregate) {
            // relstring has no summary line.
            if m != Measure::Relstring {
                write_line(&mut out, m, "all", v)?;
            }
        }
        out.flush()
    }
}

fn write_line(out: &mut impl Write, m: Measure, qid: &str, v: f64) -> std::io::Result<()> {
    if m.is_count() {
        // C's `(long)` conversion, then `%ld`.
        writeln!(out, "{:<22}\t{}\t{}", m.to_string(), qid, v as i64)
    } else if v.is_nan() {
        // glibc's `%6.4f` of a NaN.
        let nan = if v.is_sign_negative() { "-nan" } else { "nan" };
        writeln!(out, "{:<22}\t{}\t{:>6}", m.to_string(), qid, nan)
    } else {
        writeln!(out, "{:<22}\t{}\t{:6.4}", m.to_string(), qid, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(evaluation: &Evaluation) -> String {
        let mut out = Vec::new();
        evaluation.write_trec_eval(&mut out, true, false).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn geometric_means_floor_at_min_geo_mean() {
        // AP of q1 = 1/2, of q2 = 0 (floored to 0.00001); q3 is only in the qrels.
        let qrels = Qrels::from_str("q1 0 a 1\nq2 0 b 1\nq3 0 c 1\n").unwrap();
        let run = Run::from_str("q1 Q0 x 1 2 t\nq1 Q0 a 2 1 t\nq2 Q0 x 1 1 t\n").unwrap();
        let evaluator = Evaluator::from_names(&["map", "gm_map", "gm_bpref"]).unwrap();
        let ev = evaluator.evaluate(&qrels, &run);
        assert_eq!(ev.value("q1", Measure::GmMap), Some(0.5));
        let gm = |n: f64, missing: f64| {
            ((0.5f64.ln() + MIN_GEO_MEAN.ln() + missing * MIN_GEO_MEAN.ln()) / n).exp()
        };
        assert_eq!(ev.mean(Measure::GmMap), Some(gm(2.0, 0.0)));
        // bpref of q1: no judged nonrelevant document above a: 1.
        assert_eq!(ev.value("q1", Measure::GmBpref), Some(1.0));
        let complete = evaluator.average_complete(true).evaluate(&qrels, &run);
        assert_eq!(complete.mean(Measure::GmMap), Some(gm(3.0, 1.0)));
        assert_eq!(complete.mean(Measure::Map), Some(0.5 / 3.0));
        // Summary-only measures have no per-query lines.
        let text = output(&ev);
        assert!(!text.contains("gm_map                \tq1"));
        assert!(text.contains("gm_map                \tall\t0.0022\n"));
    }

    #[test]
    fn relstring_is_printed_per_query_only() {
        let qrels = Qrels::from_str("q 0 a 12\nq 0 b 0\nq 0 c -1\n").unwrap();
        let run =
            Run::from_str("q Q0 a 1 4 t\nq Q0 b 2 3 t\nq Q0 c 3 2 t\nq Q0 d 4 1 t\n").unwrap();
        let ev = Evaluator::from_names(&["relstring", "num_ret"])
            .unwrap()
            .evaluate(&qrels, &run);
        assert_eq!(ev.relstring("q"), Some(">0.-"));
        assert_eq!(ev.value("q", Measure::Relstring), None);
        assert_eq!(ev.mean(Measure::Relstring), None);
        assert_eq!(
            output(&ev),
            "num_ret               \tq\t4\nrelstring             \tq\t'>0.-'\nnum_ret               \tall\t4\n"
        );
    }

    #[test]
    fn nan_prints_as_glibc_does() {
        // Nothing retrieved (-M 0): interpolated precision is 0/0 in trec_eval.
        let qrels = Qrels::from_str("q 0 a 1\n").unwrap();
        let run = Run::from_str("q Q0 a 1 1 t\n").unwrap();
        let ev = Evaluator::from_names(&["iprec_at_recall.0"])
            .unwrap()
            .max_docs_per_query(0)
            .evaluate(&qrels, &run);
        let text = output(&ev);
        let line = text.lines().next().unwrap();
        let value = line.rsplit('\t').next().unwrap();
        // "  -nan" on x86-64, where 0/0 has the sign bit set; "   nan" elsewhere.
        assert!(value == "  -nan" || value == "   nan", "{line:?}");
    }

    #[test]
    fn an_empty_ranking_counts_as_absent_unless_complete() {
        let qrels = Qrels::from_str("q1 0 a 1\nq2 0 b 1\n").unwrap();
        let mut run = Run::new("t");
        run.extend_query("q1", [("a", 1.0)]).unwrap();
        run.extend_query("q2", []).unwrap();
        let ev = Evaluator::new([Measure::Map]);
        assert_eq!(ev.evaluate(&qrels, &run).num_queries(), 1);
        assert_eq!(ev.evaluate(&qrels, &run).mean(Measure::Map), Some(1.0));
        let complete = ev.average_complete(true).evaluate(&qrels, &run);
        assert_eq!(complete.mean(Measure::Map), Some(0.5));
    }
}
