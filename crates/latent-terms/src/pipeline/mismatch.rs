//! The mismatch set (CL-SR): judged queries whose relevant documents lexical BM25 misses,
//! and MRR@10 per query, the measure reported on it.

use std::collections::BTreeMap;

use latent_terms_eval::{Qrels, Run};
use serde::{Deserialize, Serialize};

/// Reciprocal rank of the first relevant (relevance > 0) document within the top `k`
/// (trec_eval's ranking order: score, then docno), 0 when none; for every query of
/// `qrels` with at least one relevant document (a query missing from the run counts 0).
///
/// ```
/// use latent_terms::eval::{Qrels, Run};
/// use latent_terms::pipeline::reciprocal_rank_at;
///
/// let qrels = Qrels::from_str("q 0 b 1\nr 0 z 1\n")?;
/// let run = Run::from_str("q Q0 a 1 2.0 t\nq Q0 b 2 1.0 t\n")?;
/// let rr = reciprocal_rank_at(&qrels, &run, 10);
/// assert_eq!(rr["q"], 0.5);
/// assert_eq!(rr["r"], 0.0);
/// assert_eq!(reciprocal_rank_at(&qrels, &run, 1)["q"], 0.0);
/// # Ok::<(), latent_terms::eval::Error>(())
/// ```
pub fn reciprocal_rank_at(qrels: &Qrels, run: &Run, k: usize) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for judged in qrels.iter() {
        if judged.num_relevant(1) == 0 {
            continue;
        }
        let rr = run
            .get(judged.qid())
            .and_then(|q| {
                q.ranked()
                    .take(k)
                    .position(|(d, _)| judged.relevance(d).is_some_and(|r| r > 0))
            })
            .map_or(0.0, |p| 1.0 / (p + 1) as f64);
        out.insert(judged.qid().to_owned(), rr);
    }
    out
}

/// Judged queries (with a relevant document) none of whose relevant documents is in the
/// top `depth` of `lexical`.
pub fn missed_queries(qrels: &Qrels, lexical: &Run, depth: usize) -> Vec<String> {
    qrels
        .iter()
        .filter(|j| j.num_relevant(1) > 0)
        .filter(|j| {
            !lexical.get(j.qid()).is_some_and(|q| {
                q.ranked()
                    .take(depth)
                    .any(|(d, _)| j.relevance(d).is_some_and(|r| r > 0))
            })
        })
        .map(|j| j.qid().to_owned())
        .collect()
}

/// One mismatch subset: the queries lexical BM25 fails at `depth`, and each method's
/// MRR@10 on them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MismatchSet {
    /// BM25 has no relevant document in its top `depth`.
    pub depth: usize,
    /// Number of such queries.
    pub queries: usize,
    /// `(method, mean MRR@10 over those queries)`, in the report's method order;
    /// `None` when the set is empty.
    pub mrr_at_10: Vec<(String, Option<f64>)>,
}

/// The mismatch sets at each of `depths`, with every method's MRR@10 on them.
/// `runs` are `(method, run)`; `lexical` is the lexical BM25 run that defines the sets.
pub fn mismatch_sets(
    qrels: &Qrels,
    lexical: &Run,
    runs: &[(String, &Run)],
    depths: &[usize],
) -> Vec<MismatchSet> {
    let rr: Vec<(String, BTreeMap<String, f64>)> = runs
        .iter()
        .map(|(m, r)| (m.clone(), reciprocal_rank_at(qrels, r, 10)))
        .collect();
    depths
        .iter()
        .map(|&depth| {
            let missed = missed_queries(qrels, lexical, depth);
            let mrr_at_10 = rr
                .iter()
                .map(|(m, per_query)| {
                    let mean = (!missed.is_empty()).then(|| {
                        missed
                            .iter()
                            .map(|q| per_query.get(q).copied().unwrap_or(0.0))
                            .sum::<f64>()
                            / missed.len() as f64
                    });
                    (m.clone(), mean)
                })
                .collect();
            MismatchSet {
                depth,
                queries: missed.len(),
                mrr_at_10,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_follow_the_lexical_run() {
        let qrels = Qrels::from_str("q1 0 a 1\nq2 0 b 1\nq3 0 c 1\nq4 0 d 0\n").unwrap();
        // BM25 finds a at rank 1, b at rank 3, never c; q4 has nothing relevant.
        let bm25 = Run::from_str(
            "q1 Q0 a 1 9 bm25\nq2 Q0 x 1 9 bm25\nq2 Q0 y 2 8 bm25\nq2 Q0 b 3 7 bm25\nq3 Q0 x 1 9 bm25\n",
        )
        .unwrap();
        let latent = Run::from_str("q2 Q0 b 1 5 lt\nq3 Q0 x 1 5 lt\nq3 Q0 c 2 4 lt\n").unwrap();
        assert_eq!(missed_queries(&qrels, &bm25, 1000), ["q3"]);
        assert_eq!(missed_queries(&qrels, &bm25, 2), ["q2", "q3"]);
        let sets = mismatch_sets(
            &qrels,
            &bm25,
            &[("bm25".into(), &bm25), ("lt".into(), &latent)],
            &[1000, 2],
        );
        assert_eq!(sets[0].queries, 1);
        assert_eq!(
            sets[0].mrr_at_10,
            [("bm25".into(), Some(0.0)), ("lt".into(), Some(0.5))]
        );
        assert_eq!(sets[1].queries, 2);
        let lt = sets[1].mrr_at_10[1].1.unwrap();
        assert!((lt - 0.75).abs() < 1e-12);
        let bm = sets[1].mrr_at_10[0].1.unwrap();
        assert!((bm - 1.0 / 6.0).abs() < 1e-12);
    }
}
