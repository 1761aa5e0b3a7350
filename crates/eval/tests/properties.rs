//! Invariants that must hold for any qrels and run.

#![allow(clippy::unwrap_used)]

use latent_terms_eval::{Evaluator, Measure, Qrels, Run};
use proptest::prelude::*;

/// A query: judged levels for docs 0..n, and a ranking (doc, score) with many ties.
/// Judgment per doc index, and the ranking as (doc index, score).
type GeneratedQuery = (Vec<Option<i64>>, Vec<(usize, i32)>);

fn query_strategy() -> impl Strategy<Value = GeneratedQuery> {
    (1usize..30).prop_flat_map(|n| {
        (
            prop::collection::vec(prop::option::of(-1i64..4), n),
            prop::sample::subsequence((0..n).collect::<Vec<_>>(), 0..=n)
                .prop_flat_map(|docs| {
                    let len = docs.len();
                    (Just(docs), prop::collection::vec(0i32..4, len))
                })
                .prop_map(|(docs, scores)| docs.into_iter().zip(scores).collect()),
        )
    })
}

fn build(queries: &[GeneratedQuery], reverse_lines: bool) -> (Qrels, Run) {
    let mut qrels = Qrels::new();
    let mut lines = Vec::new();
    for (q, (judged, ranking)) in queries.iter().enumerate() {
        // Every query needs at least one judgment to be in the qrels.
        qrels.insert(&format!("q{q}"), "never-retrieved", 0);
        for (d, rel) in judged.iter().enumerate() {
            if let Some(rel) = rel {
                qrels.insert(&format!("q{q}"), &format!("d{d}"), *rel);
            }
        }
        for (d, score) in ranking {
            lines.push(format!("q{q} Q0 d{d} 0 {score} t"));
        }
    }
    if reverse_lines {
        lines.reverse();
    }
    (qrels, Run::from_str(&lines.join("\n")).unwrap())
}

fn all_measures() -> Vec<Measure> {
    Measure::parse_list(&[
        "all_trec",
        "P.1,2,3,7,50",
        "recall.1,2,3,7,50",
        "ndcg_cut.1,3,50",
    ])
    .unwrap()
}

proptest! {
    #[test]
    fn values_are_bounded_and_counts_consistent(queries in prop::collection::vec(query_strategy(), 1..6)) {
        let (qrels, run) = build(&queries, false);
        let ev = Evaluator::new(all_measures()).evaluate(&qrels, &run);
        for q in ev.queries() {
            let get = |m| ev.value(&q.qid, m).unwrap();
            for (m, &v) in ev.measures().iter().zip(&q.values) {
                match m {
                    m if m.is_count() => prop_assert!(v >= 0.0 && v.fract() == 0.0),
                    // Relevant retrieved minus nonrelevant retrieved.
                    Measure::Utility => prop_assert_eq!(
                        v,
                        2.0 * get(Measure::NumRelRet) - get(Measure::NumRet)
                    ),
                    // Not a number.
                    Measure::Relstring => {
                        let relstring = ev.relstring(&q.qid).unwrap();
                        prop_assert_eq!(relstring.len() as f64, get(Measure::NumRet).min(10.0));
                    }
                    _ => prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{m} = {v}"),
                }
            }
            prop_assert!(get(Measure::NumRelRet) <= get(Measure::NumRel));
            prop_assert!(get(Measure::NumRelRet) <= get(Measure::NumRet));
            prop_assert!(
                get(Measure::NumRelRet) + get(Measure::NumNonrelJudgedRet) <= get(Measure::NumRet)
            );
        }
    }

    #[test]
    fn recall_and_success_are_monotone_in_k(queries in prop::collection::vec(query_strategy(), 1..6)) {
        let (qrels, run) = build(&queries, false);
        let ev = Evaluator::from_names(&["recall.1,2,3,5,10,30", "success.1,2,3,5,10,30"]).unwrap().evaluate(&qrels, &run);
        let ks = [1, 2, 3, 5, 10, 30];
        for q in ev.queries() {
            for w in ks.windows(2) {
                prop_assert!(ev.value(&q.qid, Measure::Recall(w[0])) <= ev.value(&q.qid, Measure::Recall(w[1])));
                prop_assert!(ev.value(&q.qid, Measure::Success(w[0])) <= ev.value(&q.qid, Measure::Success(w[1])));
            }
        }
    }

    #[test]
    fn line_order_does_not_matter(queries in prop::collection::vec(query_strategy(), 1..6)) {
        // Ties are broken by docno, never by position in the file.
        let (qrels, forward) = build(&queries, false);
        let (_, backward) = build(&queries, true);
        let ev = Evaluator::new(all_measures());
        let (a, b) = (ev.evaluate(&qrels, &forward), ev.evaluate(&qrels, &backward));
        prop_assert_eq!(a.queries(), b.queries());
    }

    #[test]
    fn depth_cut_gives_reciprocal_rank_at_k(queries in prop::collection::vec(query_strategy(), 1..6), k in 1usize..10) {
        let (qrels, run) = build(&queries, false);
        let full = Evaluator::new([Measure::RecipRank]).evaluate(&qrels, &run);
        let cut = Evaluator::new([Measure::RecipRank]).max_docs_per_query(k).evaluate(&qrels, &run);
        for (a, b) in full.queries().iter().zip(cut.queries()) {
            let rr = a.values[0];
            let expected = if rr >= 1.0 / k as f64 - 1e-12 { rr } else { 0.0 };
            prop_assert_eq!(b.values[0], expected);
        }
    }
}
