//! `latent-terms eval` against outputs of the real trec_eval 9.0.8 binary,
//! recorded in `crates/eval/tests/fixtures/trec_eval` (see its README).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/fixtures/trec_eval")
}

/// Byte-for-byte: every line, value, padding and the order of lines. The
/// values are printed with `%6.4f`, so equal text means the same rounding as
/// trec_eval (and no `-0.0000` where trec_eval prints `0.0000`).
#[test]
fn eval_matches_trec_eval_on_every_fixture() {
    let cases_path = fixtures().join("cases.json");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&cases_path).expect("cases.json"))
            .expect("valid cases.json");
    assert_eq!(cases.len(), 56, "expected the 56 recorded fixture cases");
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
        assert!(
            output.status.success(),
            "{context}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let actual_text = String::from_utf8(output.stdout).unwrap();
        let (expected, actual): (Vec<&str>, Vec<&str>) = (
            expected_text.lines().collect(),
            actual_text.lines().collect(),
        );
        if let Some(i) =
            (0..expected.len().max(actual.len())).find(|&i| expected.get(i) != actual.get(i))
        {
            panic!(
                "{context}: output line {} differs:\n trec_eval: {:?}\n ours:      {:?}",
                i + 1,
                expected.get(i),
                actual.get(i)
            );
        }
        assert_eq!(actual_text, expected_text, "{context}: line endings differ");
        compared_lines += expected.len();
    }
    assert!(
        compared_lines > 20_000,
        "only {compared_lines} lines compared"
    );
}

/// `eval --compare`: both means over the shared queries, their difference and a paired
/// t-test; the reference values are scipy's `ttest_rel([1, 1, 1], [0.5, 1, 0.5])`
/// (t 2.0, p 0.1835).
#[test]
fn eval_compare_prints_a_paired_t_test() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let qrels = path("qrels.txt", "q1 0 d1 1\nq2 0 d2 1\nq3 0 d3 1\n");
    let a = path("a.run", "q1 Q0 d1 1 3 a\nq2 Q0 d2 1 3 a\nq3 Q0 d3 1 3 a\n");
    let b = path(
        "b.run",
        "q1 Q0 d9 1 3 b\nq1 Q0 d1 2 2 b\nq2 Q0 d2 1 3 b\nq3 Q0 d8 1 3 b\nq3 Q0 d3 2 2 b\n",
    );
    let compare = |x: &Path, y: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
            .arg("eval")
            .arg(&qrels)
            .arg(x)
            .args(["-m", "recip_rank", "--compare"])
            .arg(y)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let text = compare(&a, &b);
    let line = text.lines().nth(1).unwrap();
    assert_eq!(
        line,
        "recip_rank\t3\t1.0000\t0.6667\t+0.3333\t2.000\t0.1835"
    );
    let same = compare(&a, &a);
    assert_eq!(
        same.lines().nth(1).unwrap(),
        "recip_rank\t3\t1.0000\t1.0000\t+0.0000\t0.000\t1.0000"
    );
}
