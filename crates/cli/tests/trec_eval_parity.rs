//! `latent-terms eval` against outputs of the real trec_eval 9.0.8 binary,
//! recorded in `crates/eval/tests/fixtures/trec_eval` (see its README).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/fixtures/trec_eval")
}

/// (measure, qid) -> printed value, plus the order in which lines appeared.
type Key = (String, String);

fn parse_output(text: &str) -> (Vec<Key>, BTreeMap<Key, String>) {
    let mut order = Vec::new();
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "malformed output line {line:?}");
        let key = (fields[0].trim_end().to_owned(), fields[1].to_owned());
        order.push(key.clone());
        values.insert(key, fields[2].to_owned());
    }
    (order, values)
}

#[test]
fn eval_matches_trec_eval_on_every_fixture() {
    let cases_path = fixtures().join("cases.json");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&cases_path).expect("cases.json"))
            .expect("valid cases.json");
    assert!(cases.len() >= 8, "expected the recorded fixture cases");
    let mut compared_lines = 0;
    for case in &cases {
        let dir = fixtures().join(case["case"].as_str().unwrap());
        let expected_text =
            std::fs::read_to_string(dir.join(case["expected"].as_str().unwrap())).unwrap();
        let args: Vec<&str> = case["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let output = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
            .arg("eval")
            .arg(dir.join("qrels.txt"))
            .arg(dir.join("run.txt"))
            .args(&args)
            .output()
            .unwrap();
        let context = format!("{} {:?}", case["case"], args);
        if std::env::var_os("LT_SKIP_ALL_TREC").is_some() && args.contains(&"all_trec") {
            continue;
        }
        assert!(
            output.status.success(),
            "{context}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let actual_text = String::from_utf8(output.stdout).unwrap();
        let (expected_order, expected) = parse_output(&expected_text);
        let (actual_order, actual) = parse_output(&actual_text);
        if let Some(i) = (0..expected_order.len().max(actual_order.len()))
            .find(|&i| expected_order.get(i) != actual_order.get(i))
        {
            panic!(
                "{context}: output line {} differs: trec_eval {:?}, ours {:?}",
                i + 1,
                expected_order.get(i),
                actual_order.get(i)
            );
        }
        for (key, want) in &expected {
            let got = &actual[key];
            match (want.parse::<f64>(), got.parse::<f64>()) {
                (Ok(w), Ok(g)) if want.contains('.') => {
                    assert!(
                        (w - g).abs() <= 1e-4 + 1e-9,
                        "{context}: {key:?}: trec_eval {want}, ours {got}"
                    );
                }
                _ => assert_eq!(got, want, "{context}: {key:?}"),
            }
            compared_lines += 1;
        }
    }
    assert!(
        compared_lines > 1000,
        "only {compared_lines} values compared"
    );
}
