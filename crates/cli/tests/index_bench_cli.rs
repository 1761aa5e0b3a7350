//! `latent-terms index bench` end to end on LIMIT-small (shipped in examples/data): the real
//! index and a synthetic twin, with the approximate curve and the dense reference; the last
//! stdout line is one JSON object whose rankings were found identical.

mod common;

use common::{cli, dataset, p};

fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().expect("a last line");
    serde_json::from_str(line).expect("the last line is JSON")
}

#[test]
fn bench_reports_identical_rankings_for_the_index_and_its_twin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dataset();
    let idx = dir.path().join("limit.idx");
    cli(&[
        "bm25",
        "--dataset",
        p(&data),
        "--run",
        p(&dir.path().join("bm25.run")),
        "--save-index",
        p(&idx),
    ]);
    let queries = data.join("queries.jsonl");
    let qrels = data.join("qrels/test.tsv");
    for scorer in ["bm25", "clsr", "dot"] {
        let out = cli(&[
            "index",
            "bench",
            "--index",
            p(&idx),
            "--queries",
            p(&queries),
            "--scorer",
            scorer,
            "--k1",
            "0.9",
            "--b",
            "0.4",
            "--passes",
            "2",
            "--top",
            "1,10,1000",
            "--maxscore",
            "--approx-cut",
            "1,1.5",
            "--qrels",
            p(&qrels),
            "--dense-docs",
            "500",
        ]);
        let report = last_json(&out);
        assert_eq!(report["identical"], true, "{scorer}: {report}");
        for key in [
            "pruned_qps_top10",
            "exhaustive_qps_top10",
            "pruned_qps_top1000",
            "exhaustive_qps_top1000",
            "maxscore_qps_top10",
        ] {
            assert!(
                report[key].as_f64().is_some_and(|v| v > 0.0),
                "{scorer}: {key} in {report}"
            );
        }
        let curve = report["approximate"].as_array().expect("curve");
        assert_eq!(curve.len(), 3);
        assert_eq!(curve[0]["recall10"], 1.0);
        assert!(curve[0]["ndcg10"].as_f64().is_some());
        assert_eq!(report["dense"]["docs"], 500);
    }
    let out = cli(&[
        "index",
        "bench",
        "--index",
        p(&idx),
        "--queries",
        p(&queries),
        "--passes",
        "1",
        "--synthetic-docs",
        "3000",
        "--synthetic-queries",
        "20",
        "--segment-docs",
        "1000",
    ]);
    let report = last_json(&out);
    assert_eq!(report["identical"], true, "{report}");
    assert_eq!(report["docs"], 3000);
    assert_eq!(report["queries"], 20);
    assert_eq!(report["twin"]["source_docs"], 46);
}
