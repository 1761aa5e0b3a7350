//! `latent-terms export`, `import-ciff` and `search` end to end on LIMIT-small (shipped in
//! examples/data): a CIFF round trip reproduces the BM25 run (to f32 rounding), quantized search
//! matches the exported Anserini files, and the OpenSearch files are well formed; an SAE
//! exported in SAELens' layout encodes like the checkpoint it came from.

mod common;

use std::path::Path;

use common::{cli, dataset, p, save_sae, write_store};
use std::process::Command;

#[test]
fn ciff_round_trip_anserini_and_opensearch_exports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = dataset();
    let queries = data.join("queries.jsonl");
    let qrels = data.join("qrels/test.tsv");
    let idx = d.join("limit.idx");
    cli(&[
        "bm25",
        "--dataset",
        p(&data),
        "--run",
        p(&d.join("bm25.run")),
        "--save-index",
        p(&idx),
    ]);

    // CIFF out and back in: our BM25 over the imported index gives the same run, byte for byte.
    let ciff = d.join("limit.ciff");
    cli(&[
        "export",
        "--index",
        p(&idx),
        "--format",
        "ciff",
        "--out",
        p(&ciff),
    ]);
    let imported = d.join("imported.idx");
    cli(&["import-ciff", p(&ciff), "--out", p(&imported)]);
    // The same file gzipped (as Anserini distributes its CIFF exports) imports the same.
    let gz = d.join("limit.ciff.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut std::fs::File::open(&ciff).expect("open"), &mut enc).expect("compress");
    enc.finish().expect("gzip written");
    let from_gz = d.join("from-gz.idx");
    cli(&["import-ciff", p(&gz), "--out", p(&from_gz)]);
    assert_eq!(
        std::fs::read(&imported).expect("index"),
        std::fs::read(&from_gz).expect("index")
    );
    let search = |index: &Path, run: &Path, extra: &[&str]| {
        let mut args = vec![
            "search",
            "--index",
            p(index),
            "--queries",
            p(&queries),
            "--run",
            p(run),
            "--qrels",
            p(&qrels),
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let original = search(&idx, &d.join("a.run"), &["--scorer", "bm25"]);
    let reimported = search(&imported, &d.join("b.run"), &["--scorer", "bm25"]);
    assert!(original.starts_with("nDCG@10 "), "{original}");
    assert_eq!(original, reimported);
    // Term ids differ (CIFF sorts terms, so the imported vocabulary is in word order), which
    // changes the f32 summation order: scores agree to rounding, documents per query too.
    let read = |path: &Path| -> Vec<(String, String, f64)> {
        std::fs::read_to_string(path)
            .expect("run")
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].to_owned(),
                    f[2].to_owned(),
                    f[4].parse().expect("score"),
                )
            })
            .collect()
    };
    let (a, b) = (read(&d.join("a.run")), read(&d.join("b.run")));
    assert_eq!(a.len(), b.len());
    let by_query = |run: &[(String, String, f64)]| {
        let mut m: std::collections::BTreeMap<(String, String), f64> = Default::default();
        for (q, doc, s) in run {
            m.insert((q.clone(), doc.clone()), *s);
        }
        m
    };
    let (ma, mb) = (by_query(&a), by_query(&b));
    assert_eq!(
        ma.keys().collect::<Vec<_>>(),
        mb.keys().collect::<Vec<_>>(),
        "same documents retrieved per query"
    );
    for (k, sa) in &ma {
        let sb = mb[k];
        assert!(
            (sa - sb).abs() <= 1e-5 * sa.abs().max(1.0),
            "{k:?}: {sa} vs {sb}"
        );
    }

    // Anserini files: one document line per document, one topic per query, and the
    // impacts × 100 in the files are what `search --quantize 100` scores.
    let anserini = d.join("anserini");
    cli(&[
        "export",
        "--index",
        p(&idx),
        "--format",
        "anserini",
        "--scorer",
        "bm25",
        "--query-scale",
        "1",
        "--queries",
        p(&queries),
        "--out",
        p(&anserini),
    ]);
    let docs = std::fs::read_to_string(anserini.join("corpus/docs.jsonl")).expect("docs");
    let topics = std::fs::read_to_string(anserini.join("topics.tsv")).expect("topics");
    assert_eq!(docs.lines().count(), 46);
    assert_eq!(topics.lines().count(), 1000);
    // First topic and first document: their dot product is the quantized run's score.
    let (qid, terms) = topics
        .lines()
        .next()
        .and_then(|l| l.split_once('\t'))
        .expect("topic");
    let quantized = search(
        &idx,
        &d.join("q.run"),
        &[
            "--scorer",
            "bm25",
            "--quantize",
            "100",
            "--query-scale",
            "1",
        ],
    );
    assert!(quantized.starts_with("nDCG@10 "));
    let run = std::fs::read_to_string(d.join("q.run")).expect("run");
    for line in run.lines().filter(|l| l.starts_with(&format!("{qid} "))) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let doc: serde_json::Value = docs
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .find(|v| v["id"] == f[2])
            .expect("document exported");
        let dot: u64 = terms
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| doc["vector"][t].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(f[4].parse::<f64>().expect("score"), dot as f64, "{line}");
    }

    // OpenSearch files parse and pair up.
    let os = d.join("opensearch");
    cli(&[
        "export",
        "--index",
        p(&idx),
        "--format",
        "opensearch",
        "--queries",
        p(&queries),
        "--out",
        p(&os),
    ]);
    let bulk = std::fs::read_to_string(os.join("bulk.ndjson")).expect("bulk");
    assert_eq!(bulk.lines().count(), 2 * 46);
    for line in bulk.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("bulk line is JSON");
    }
    let msearch = std::fs::read_to_string(os.join("queries.msearch.ndjson")).expect("msearch");
    assert_eq!(msearch.lines().count(), 2 * 1000);
    let ids = std::fs::read_to_string(os.join("queries.ids")).expect("ids");
    assert_eq!(ids.lines().count(), 1000);

    // CIFF holds no queries: asking for them is an error, not a silent drop.
    let out = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
        .args([
            "export",
            "--index",
            p(&idx),
            "--format",
            "ciff",
            "--queries",
            p(&queries),
            "--out",
            p(&ciff),
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
}

#[test]
fn saelens_export_encodes_like_its_checkpoint() {
    use latent_terms::sae::Latents;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let emb = d.join("rows.safetensors");
    write_store(&emb, (0..200).map(|i| format!("r{i}")), 16);
    let sae = d.join("sae.safetensors");
    save_sae(&sae, 16, 48, 4);
    let saelens = d.join("saelens");
    let said = cli(&[
        "sae",
        "export-saelens",
        "--sae",
        p(&sae),
        "--out",
        p(&saelens),
    ]);
    assert!(said.contains("topk"), "{said}");
    assert!(
        saelens.join("cfg.json").is_file() && saelens.join("sae_weights.safetensors").is_file()
    );
    let encode = |from: &Path, out: &Path| {
        cli(&[
            "sae",
            "encode",
            "--sae",
            p(from),
            "--embeddings",
            p(&emb),
            "--out",
            p(out),
        ]);
        Latents::load(out).expect("latents")
    };
    let ours = encode(&sae, &d.join("file.latents"));
    let theirs = encode(&saelens, &d.join("dir.latents"));
    assert_eq!(ours.ids, theirs.ids);
    assert_eq!(ours.codes.len(), 200);
    for (a, b) in ours.codes.iter().zip(&theirs.codes) {
        assert_eq!(a.indices, b.indices);
        for (x, y) in a.values.iter().zip(&b.values) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
