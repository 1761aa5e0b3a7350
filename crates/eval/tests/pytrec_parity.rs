//! Per-query values at full precision against pytrec_eval (trec_eval's C code),
//! recorded in `tests/fixtures/trec_eval/case-*/pytrec_eval.json`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use latent_terms_eval::{Evaluator, Measure, Qrels, Run};

#[test]
fn per_query_values_match_pytrec_eval_to_1e_6() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trec_eval");
    let mut compared = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("pytrec_eval.json").is_file() {
            continue;
        }
        let qrels = Qrels::from_path(dir.join("qrels.txt")).unwrap();
        let run = Run::from_path(dir.join("run.txt")).unwrap();
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("pytrec_eval.json")).unwrap())
                .unwrap();
        for (key, level) in [("relevance_level_1", 1), ("relevance_level_2", 2)] {
            let by_query = reference[key].as_object().unwrap();
            let names: Vec<String> = by_query
                .values()
                .next()
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .filter(|m| *m != "num_q")
                .cloned()
                .collect();
            let measures: Vec<Measure> = names
                .iter()
                .map(|n| {
                    // pytrec_eval prints P_5; trec_eval's -m syntax is P.5.
                    let spec = match n.rsplit_once('_') {
                        Some((base, k)) if k.parse::<u32>().is_ok() => format!("{base}.{k}"),
                        _ => n.clone(),
                    };
                    Measure::parse(&spec).unwrap()[0]
                })
                .collect();
            let ev = Evaluator::new(measures.clone())
                .relevance_level(level)
                .evaluate(&qrels, &run);
            for (qid, values) in by_query {
                for (name, m) in names.iter().zip(&measures) {
                    let want = values[name].as_f64().unwrap();
                    let got = ev
                        .value(qid, *m)
                        .unwrap_or_else(|| panic!("{qid} {name} missing"));
                    assert!(
                        (want - got).abs() <= 1e-6,
                        "{}: {key} query {qid} {name}: pytrec_eval {want}, ours {got}",
                        dir.display()
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 5000, "only {compared} values compared");
}
