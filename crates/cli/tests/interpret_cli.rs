//! `latent-terms cards | explain | steer | explore` end to end: a real `latent-terms run`
//! on LIMIT-small (shipped in examples/data) over hashed bag-of-words embeddings (no model
//! needed), then every interpretability command on its report.

mod common;

use std::path::Path;

use common::{cli, dataset, p};

use latent_terms::encoders::{Embeddings, Pooling, StoreDtype, StoreMetadata, StoreWriter};
use latent_terms::eval::beir::BeirDataset;

const DIM: usize = 32;

/// Words hashed (FNV-1a) into `DIM` buckets, L2-normalised: texts sharing words are close.
fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let mut h: u32 = 0x811c_9dc5;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        v[(h as usize) % DIM] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn store(path: &Path, items: &[(String, String)]) {
    let meta = StoreMetadata {
        model: "hashed-words".into(),
        pooling: Pooling::Mean,
        normalized: true,
        dim: DIM,
        prefix: String::new(),
    };
    let mut w = StoreWriter::create(path, meta, StoreDtype::F32).expect("create store");
    let ids = items.iter().map(|i| i.0.clone()).collect();
    let data = items.iter().flat_map(|i| embed(&i.1)).collect();
    w.append(&Embeddings::new(ids, DIM, data).expect("rows"))
        .expect("append");
    w.finish().expect("finish");
}

/// `(id, text)` pairs.
type Texts = Vec<(String, String)>;

/// LIMIT-small's documents and queries, as the pipeline reads them.
fn texts() -> (Texts, Texts) {
    let data = BeirDataset::open(dataset()).expect("LIMIT-small");
    let docs = data
        .corpus()
        .expect("corpus")
        .map(|doc| doc.map(|doc| (doc.id.clone(), doc.full_text())))
        .collect::<Result<_, _>>()
        .expect("documents");
    let queries = data
        .queries()
        .expect("queries")
        .into_iter()
        .map(|q| (q.id, q.text))
        .collect();
    (docs, queries)
}

#[test]
fn interpretability_commands_on_a_run_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (docs, queries) = texts();
    let (corpus_emb, query_emb) = (d.join("corpus.safetensors"), d.join("queries.safetensors"));
    store(&corpus_emb, &docs);
    store(&query_emb, &queries);
    let config = d.join("config.json");
    std::fs::write(
        &config,
        r#"{"representation": "pooled",
            "sae": {"d_sae": 64, "k": 4, "epochs": 3, "batch_size": 64, "validation_fraction": 0.0},
            "inference": {"doc_k": 8, "query_k": 8},
            "tuning": {"enabled": false, "doc_k": [], "query_k": []}}"#,
    )
    .expect("config");
    let report = d.join("report");
    cli(&[
        "run",
        "--dataset",
        p(&dataset()),
        "--corpus-emb",
        p(&corpus_emb),
        "--query-emb",
        p(&query_emb),
        "--config",
        p(&config),
        "--cache",
        p(&d.join("cache")),
        "--out",
        p(&report),
        "--quiet",
    ]);

    // Cards: JSON with df-ordered cards, descriptions exported and re-imported.
    let cards = d.join("cards.json");
    let exported = d.join("descriptions.json");
    cli(&[
        "cards",
        "--report",
        p(&report),
        "--out",
        p(&cards),
        "--top",
        "3",
        "--export-descriptions",
        p(&exported),
        "--prompts",
        p(&d.join("prompts.jsonl")),
    ]);
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cards).expect("cards")).expect("json");
    let list = set["cards"].as_array().expect("cards array");
    assert!(!list.is_empty());
    let dfs: Vec<u64> = list
        .iter()
        .map(|c| c["doc_freq"].as_u64().expect("df"))
        .collect();
    assert!(dfs.windows(2).all(|w| w[0] >= w[1]));
    assert!(list[0]["top_docs"].as_array().expect("docs").len() <= 3);
    let latent = list[0]["latent"].as_u64().expect("latent");
    let hand = d.join("hand.json");
    std::fs::write(&hand, format!(r#"{{"{latent}": "hand-written meaning"}}"#)).expect("hand");
    let out = cli(&[
        "cards",
        "--report",
        p(&report),
        "--out",
        p(&cards),
        "--descriptions",
        p(&hand),
    ]);
    assert!(out.contains("hand-written meaning"), "{out}");

    // Explain: a document alone, then a judged query with its relevant document.
    let top_doc = list[0]["top_docs"][0]["id"]
        .as_str()
        .expect("doc id")
        .to_owned();
    let out = cli(&["explain", "--report", p(&report), "--doc", &top_doc]);
    assert!(out.contains("act×idf"), "{out}");
    let qrels = std::fs::read_to_string(dataset().join("qrels/test.tsv")).expect("qrels");
    let line = qrels.lines().nth(1).expect("a judgment");
    let mut fields = line.split('\t');
    let (qid, doc) = (fields.next().expect("qid"), fields.next().expect("doc"));
    for scorer in ["clsr", "bm25", "dot"] {
        let out = cli(&[
            "explain",
            "--report",
            p(&report),
            "--doc",
            doc,
            "--query",
            qid,
            "--scorer",
            scorer,
        ]);
        assert!(out.contains("sum of contributions"), "{out}");
    }
    let json = cli(&[
        "explain",
        "--report",
        p(&report),
        "--doc",
        doc,
        "--query",
        qid,
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(&json).expect("explanation json");
    let total: f64 = e["shared"]
        .as_array()
        .expect("shared")
        .iter()
        .map(|s| s["contribution"].as_f64().expect("contribution"))
        .sum();
    assert!((total - e["score"].as_f64().expect("score")).abs() < 1e-4);

    // Steering, dense and sparse.
    let edit = format!("{latent}+1.0");
    let out = cli(&[
        "steer",
        "query",
        "--report",
        p(&report),
        "--query",
        qid,
        "--edit",
        &edit,
        "--top",
        "3",
    ]);
    assert!(out.contains("dense after (steered)"), "{out}");
    let out = cli(&[
        "steer",
        "query",
        "--report",
        p(&report),
        "--query",
        qid,
        "--sparse",
        "--edit",
        &edit,
        "--edit",
        "-0",
    ]);
    assert!(out.contains("clsr after"), "{out}");

    // Ranking simulation: with every shared latent, the ranking is reproduced.
    let out = cli(&["simulate", "--report", p(&report), "--budgets", "1,1000"]);
    assert!(out.contains("| 1000 | 1.0000 | 1.0000 |"), "{out}");

    // The explorer.
    let site = d.join("site");
    cli(&[
        "explore",
        "--report",
        p(&report),
        "--out",
        p(&site),
        "--queries",
        "5",
        "--results",
        "3",
    ]);
    let index = std::fs::read_to_string(site.join("index.html")).expect("index");
    assert!(index.contains("zipf.png") && site.join("zipf.png").is_file());
    assert!(site.join(format!("latent/{latent}.html")).is_file());
    let pages = std::fs::read_dir(site.join("query"))
        .expect("query pages")
        .count();
    assert_eq!(pages, 5);
}

/// Every alphanumeric run of `text` as tokens; words longer than 6 bytes as two pieces
/// (as a WordPiece tokenizer would), each row the hashed word's vector (`embed`).
fn word_tokens(id: &str, text: &str) -> latent_terms::encoders::TokenVectors {
    let mut t = latent_terms::encoders::TokenVectors::empty(id, DIM);
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let word = &text[s..i];
                let cut = if word.len() > 6 && word.is_char_boundary(3) {
                    vec![s, s + 3, i]
                } else {
                    vec![s, i]
                };
                for w in cut.windows(2) {
                    t.token_ids.push(t.token_ids.len() as u32);
                    t.offsets.push((w[0] as u32, w[1] as u32));
                    t.data.extend(embed(&format!("{word} {word} {word}")));
                }
                start = None;
            }
            _ => {}
        }
    }
    t
}

fn token_store(path: &Path, items: &[(String, String)]) {
    use latent_terms::encoders::{SpecialTokens, TokenStoreMetadata, TokenStoreWriter};
    let meta = TokenStoreMetadata {
        model: "hashed-words".into(),
        dim: DIM,
        max_length: 512,
        special_tokens: SpecialTokens::Drop,
        prefix: String::new(),
        kind: "passage".into(),
    };
    let mut w = TokenStoreWriter::create(path, meta, StoreDtype::F32).expect("create");
    for (id, text) in items {
        w.append(&word_tokens(id, text)).expect("append");
    }
    w.finish().expect("finish");
}

#[test]
fn token_cards_and_token_explanations_on_a_token_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (docs, queries) = texts();
    let paths = [
        "corpus.safetensors",
        "queries.safetensors",
        "corpus.tokens",
        "queries.tokens",
    ]
    .map(|n| d.join(n));
    store(&paths[0], &docs);
    store(&paths[1], &queries);
    token_store(&paths[2], &docs);
    token_store(&paths[3], &queries);
    let config = d.join("config.json");
    std::fs::write(
        &config,
        r#"{"tokens": {"sae": {"d_sae": 64, "k": 4, "epochs": 2, "batch_size": 256, "validation_fraction": 0.0},
                       "min_training_tokens": 0},
            "tuning": {"enabled": false, "doc_k": [], "query_k": []}}"#,
    )
    .expect("config");
    let (report, cache, beir) = (d.join("report"), d.join("cache"), dataset());
    let mut args = vec!["run", "--dataset", p(&beir), "--representation", "tokens"];
    for (flag, path) in [
        "--corpus-emb",
        "--query-emb",
        "--corpus-tokens",
        "--query-tokens",
    ]
    .iter()
    .zip(&paths)
    {
        args.extend([*flag, p(path)]);
    }
    args.extend([
        "--config",
        p(&config),
        "--cache",
        p(&cache),
        "--out",
        p(&report),
        "--quiet",
    ]);
    cli(&args);

    // Token cards: every context is a whole word of its document, highlighted.
    let cards = d.join("token-cards.json");
    let out = cli(&[
        "cards",
        "--report",
        p(&report),
        "--tokens",
        "--top",
        "8",
        "--out",
        p(&cards),
    ]);
    assert!(out.starts_with("classes of "), "{out}");
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cards).expect("cards")).expect("json");
    let list = set["cards"].as_array().expect("cards");
    assert!(!list.is_empty());
    let text_of: std::collections::HashMap<&str, &str> =
        docs.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect();
    let mut counted = 0;
    for card in list {
        let contexts = card["contexts"].as_array().expect("contexts");
        assert!(!contexts.is_empty() && contexts.len() <= 8);
        for c in contexts {
            let text = text_of[c["doc"].as_str().expect("doc")];
            let (s, e) = (
                c["span"][0].as_u64().expect("s") as usize,
                c["span"][1].as_u64().expect("e") as usize,
            );
            let word = c["word"].as_str().expect("word");
            assert_eq!(&text[s..e], word);
            assert!(word.chars().all(char::is_alphanumeric), "{word}");
            assert!(
                !text[..s].ends_with(char::is_alphanumeric)
                    && !text[e..].starts_with(char::is_alphanumeric)
            );
            assert!(
                c["marked"]
                    .as_str()
                    .expect("marked")
                    .contains(&format!("«{word}»"))
            );
        }
        counted += 1;
    }
    let shares = &set["shares"];
    let sum: u64 = ["lexical", "narrow", "broad", "rare"]
        .iter()
        .map(|k| shares[k].as_u64().expect("count"))
        .sum();
    assert_eq!(sum, counted);

    // Token explanation of a judged pair: the query words are words of the query.
    let qrels = std::fs::read_to_string(dataset().join("qrels/test.tsv")).expect("qrels");
    let line = qrels.lines().nth(1).expect("a judgment");
    let mut fields = line.split('\t');
    let (qid, doc) = (fields.next().expect("qid"), fields.next().expect("doc"));
    let out = cli(&[
        "explain",
        "--report",
        p(&report),
        "--doc",
        doc,
        "--query",
        qid,
        "--tokens",
    ]);
    assert!(out.contains("shared token latents"), "{out}");
    let json = cli(&[
        "explain",
        "--report",
        p(&report),
        "--doc",
        doc,
        "--query",
        qid,
        "--tokens",
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(&json).expect("json");
    let shared = e["shared"].as_array().expect("shared");
    assert!(!shared.is_empty(), "{json}");
    let query_text = &queries.iter().find(|q| q.0 == qid).expect("query").1;
    for s in shared {
        for w in s["query"].as_array().expect("query words") {
            assert!(query_text.contains(w["word"].as_str().expect("word")));
        }
        assert!(!s["doc"].as_array().expect("doc words").is_empty());
    }
}
