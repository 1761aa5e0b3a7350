//! End-to-end tests with all-MiniLM-L6-v2 (assets from `scripts/setup-assets`).
//! Each test skips with a message when the assets or ONNX Runtime are absent.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{cosine, max_abs_diff, minilm_dir};
use latent_terms_encoders::{
    EmbeddingsStore, Encoder, Error, Pooling, SearchOptions, SpecialTokens, StoreDtype,
    StoreWriter, TextKind, TokenStore, TokenStoreWriter, TokenVectors, search, search_store,
};
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/minilm_reference.json"
);

struct Reference {
    max_length: usize,
    texts: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let items = v["items"].as_array().unwrap();
    Reference {
        max_length: v["max_length"].as_u64().unwrap() as usize,
        texts: items
            .iter()
            .map(|i| i["text"].as_str().unwrap().to_string())
            .collect(),
        token_ids: items
            .iter()
            .map(|i| {
                i["token_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect(),
        embeddings: items
            .iter()
            .map(|i| {
                i["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect(),
    }
}

fn encoder(dir: &Path, batch: usize) -> Encoder {
    Encoder::builder(dir)
        .max_length(256)
        .batch_size(batch)
        .intra_threads(2)
        .build()
        .unwrap()
}

#[test]
fn configuration_is_read_from_the_model_directory() {
    let Some(dir) = minilm_dir("configuration_is_read_from_the_model_directory") else {
        return;
    };
    let e = Encoder::builder(&dir).build().unwrap();
    let info = e.info();
    assert_eq!(info.name, "all-MiniLM-L6-v2");
    assert_eq!(info.pooling, Pooling::Mean);
    assert!(info.normalize);
    assert_eq!(info.dim, 384);
    assert_eq!(
        info.max_length, 256,
        "from sentence_bert_config.json, not tokenizer.json's 128"
    );
    assert_eq!(
        info.inputs,
        ["input_ids", "attention_mask", "token_type_ids"]
    );
    assert_eq!(info.output, "last_hidden_state");
}

#[test]
fn matches_python_onnxruntime_and_tokenizers() {
    let Some(dir) = minilm_dir("matches_python_onnxruntime_and_tokenizers") else {
        return;
    };
    let r = reference();
    assert_eq!(r.max_length, 256);
    // Batch size 4 with length sorting: batches mix texts in another order than Python's
    // single batch, so this also checks that the original order is restored.
    let e = encoder(&dir, 4);
    for (text, ids) in r.texts.iter().zip(&r.token_ids) {
        assert_eq!(
            &e.token_ids(TextKind::Passage, text).unwrap(),
            ids,
            "tokens of {text:?}"
        );
    }
    let got = e.encode_passages(&r.texts).unwrap();
    assert_eq!(got.rows(), r.texts.len());
    let mut worst = 0.0f32;
    for (i, want) in r.embeddings.iter().enumerate() {
        let d = max_abs_diff(got.row(i).unwrap(), want);
        assert!(d <= 1e-5, "text {i} {:?}: max abs diff {d}", r.texts[i]);
        worst = worst.max(d);
    }
    eprintln!("parity with Python onnxruntime + tokenizers: max abs diff {worst:.3e}");
}

#[test]
fn paraphrases_outscore_unrelated_pairs() {
    let Some(dir) = minilm_dir("paraphrases_outscore_unrelated_pairs") else {
        return;
    };
    let e = encoder(&dir, 32);
    let pairs = [
        ("A man is eating food.", "A man is eating a piece of bread."),
        ("The new movie is awesome.", "The new movie is so great!"),
        (
            "How do I reset my password?",
            "I forgot my password and need to change it.",
        ),
        (
            "Vitamin C deficiency causes scurvy.",
            "Scurvy results from a lack of vitamin C.",
        ),
    ];
    let left: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let right: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let l = e.encode_passages(&left).unwrap();
    let r = e.encode_passages(&right).unwrap();
    for i in 0..pairs.len() {
        let same = cosine(l.row(i).unwrap(), r.row(i).unwrap());
        for j in 0..pairs.len() {
            if i != j {
                let other = cosine(l.row(i).unwrap(), r.row(j).unwrap());
                assert!(
                    same > other + 0.2,
                    "{:?}: paraphrase {same} vs unrelated {other}",
                    pairs[i].0
                );
            }
        }
    }
    // The value sentence-transformers documents for its first example pair.
    let s = cosine(l.row(0).unwrap(), r.row(0).unwrap());
    assert!((s - 0.7553).abs() < 1e-3, "{s}");
}

#[test]
fn batch_size_does_not_change_embeddings() {
    let Some(dir) = minilm_dir("batch_size_does_not_change_embeddings") else {
        return;
    };
    let r = reference();
    let base = encoder(&dir, 1).encode_passages(&r.texts).unwrap();
    for batch in [2, 5, 32] {
        let other = encoder(&dir, batch).encode_passages(&r.texts).unwrap();
        let d = max_abs_diff(base.data(), other.data());
        assert!(d <= 1e-5, "batch {batch}: max abs diff {d}");
    }
}

#[test]
fn unusual_inputs_have_documented_behaviour() {
    let Some(dir) = minilm_dir("unusual_inputs_have_documented_behaviour") else {
        return;
    };
    let e = encoder(&dir, 8);
    // Empty input list: an empty matrix of the model's dimension.
    let none = e.encode_passages::<&str>(&[]).unwrap();
    assert_eq!((none.rows(), none.dim()), (0, 384));
    // Empty and whitespace-only strings: [CLS] [SEP], a valid unit vector.
    let blank = e.encode_passages(&["", "   "]).unwrap();
    for (_, row) in blank.iter() {
        let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5);
    }
    assert_eq!(blank.row(0), blank.row(1));
    // Beyond the maximum length: truncated, so adding more text changes nothing.
    let sentence = "Dense retrieval encodes queries and passages into vectors. ";
    let long = sentence.repeat(60);
    let longer = sentence.repeat(120);
    assert_eq!(e.token_ids(TextKind::Passage, &longer).unwrap().len(), 256);
    let both = e
        .encode_passages(&[long.as_str(), longer.as_str()])
        .unwrap();
    assert!(max_abs_diff(both.row(0).unwrap(), both.row(1).unwrap()) <= 1e-6);
    // Non-Latin scripts and unknown characters: encoded, finite.
    let scripts = [
        "机器学习",
        "Машинное обучение",
        "التعلم الآلي",
        "🚀🔥",
        "\u{0}\u{7f}\u{feff}",
    ];
    let s = e.encode_passages(&scripts).unwrap();
    assert!(s.data().iter().all(|x| x.is_finite()));
    // Explicit ids are kept in order.
    let with_ids = e
        .encode(TextKind::Query, &[("q9", "first"), ("q1", "second")])
        .unwrap();
    assert_eq!(with_ids.ids(), ["q9", "q1"]);
}

#[test]
fn prefixes_are_applied_by_kind() {
    let Some(dir) = minilm_dir("prefixes_are_applied_by_kind") else {
        return;
    };
    let e = Encoder::builder(&dir)
        .query_prefix("query: ")
        .passage_prefix("passage: ")
        .build()
        .unwrap();
    let q = e.token_ids(TextKind::Query, "scurvy").unwrap();
    let p = e.token_ids(TextKind::Passage, "scurvy").unwrap();
    assert_ne!(q, p);
    let plain = encoder(&dir, 8);
    assert_eq!(
        q,
        plain.token_ids(TextKind::Passage, "query: scurvy").unwrap()
    );
    let a = e.encode_queries(&["scurvy"]).unwrap();
    let b = plain.encode_passages(&["query: scurvy"]).unwrap();
    assert!(max_abs_diff(a.data(), b.data()) <= 1e-6);
}

#[test]
fn encode_to_store_then_search() {
    let Some(dir) = minilm_dir("encode_to_store_then_search") else {
        return;
    };
    let e = encoder(&dir, 16);
    let docs = [
        (
            "d-scurvy",
            "Scurvy is a disease resulting from a lack of vitamin C.",
        ),
        (
            "d-paris",
            "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
        ),
        ("d-python", "Python is a high-level programming language."),
        (
            "d-insulin",
            "Insulin is a hormone that regulates blood glucose.",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for dtype in [StoreDtype::F32, StoreDtype::F16] {
        let path = tmp.path().join(format!("corpus-{dtype:?}.safetensors"));
        let mut w = StoreWriter::create(&path, e.store_metadata(), dtype).unwrap();
        let n = e
            .encode_to_store(TextKind::Passage, docs.iter().copied(), &mut w)
            .unwrap();
        assert_eq!(n, 4);
        w.finish().unwrap();
        let store = EmbeddingsStore::open_expecting(&path, &e.store_metadata()).unwrap();
        let q = e
            .encode_queries(&[
                "what disease comes from vitamin C deficiency",
                "programming languages",
            ])
            .unwrap();
        let hits = search_store(&q, &store, &SearchOptions::top(2).block_rows(3)).unwrap();
        assert_eq!(hits[0][0].0, "d-scurvy");
        assert_eq!(hits[1][0].0, "d-python");
        let mem = e.encode(TextKind::Passage, &docs).unwrap();
        let hits_mem = search(&q, &mem, &SearchOptions::top(2)).unwrap();
        for (a, b) in hits.iter().zip(&hits_mem) {
            for ((ia, sa), (ib, sb)) in a.iter().zip(b) {
                assert_eq!(ia, ib);
                assert!((sa - sb).abs() < 2e-3, "{dtype:?}: {sa} vs {sb}");
            }
        }
    }
    // A store from a different configuration is refused.
    let cls = Encoder::builder(&dir)
        .pooling(Pooling::Cls)
        .build()
        .unwrap();
    let path = tmp.path().join("corpus-F32.safetensors");
    let err = EmbeddingsStore::open_expecting(&path, &cls.store_metadata()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MetadataMismatch {
                field: "pooling",
                ..
            }
        ),
        "{err}"
    );
}

/// A scratch model directory linking to the real files, so single files can be
/// replaced by broken ones.
fn scratch_model(dir: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    // Same layout as the assets: the ONNX Runtime directory next to models/.
    let ort_dir = dir.join("../../onnxruntime");
    if ort_dir.is_dir() {
        std::os::unix::fs::symlink(
            ort_dir.canonicalize().unwrap(),
            tmp.path().join("onnxruntime"),
        )
        .unwrap();
    }
    let models = tmp.path().join("models").join("scratch");
    std::fs::create_dir_all(models.join("1_Pooling")).unwrap();
    for f in [
        "model.onnx",
        "tokenizer.json",
        "config.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        std::os::unix::fs::symlink(dir.join(f).canonicalize().unwrap(), models.join(f)).unwrap();
    }
    tmp
}

#[test]
fn broken_or_mismatched_model_files_are_typed_errors() {
    let Some(dir) = minilm_dir("broken_or_mismatched_model_files_are_typed_errors") else {
        return;
    };
    let tmp = scratch_model(&dir);
    let m = tmp.path().join("models").join("scratch");
    let replace = |name: &str, content: &str| {
        let p = m.join(name);
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, content).unwrap();
    };
    let restore = |name: &str| {
        let p = m.join(name);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(dir.join(name).canonicalize().unwrap(), &p).unwrap();
    };
    Encoder::builder(&m).build().unwrap();

    replace("model.onnx", "this is not an onnx graph");
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::Ort { .. }), "{err}");
    std::fs::remove_file(m.join("model.onnx")).unwrap();
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::MissingModelFile { .. }), "{err}");
    assert!(err.to_string().contains("scripts/setup-assets"), "{err}");
    restore("model.onnx");

    replace(
        "config.json",
        r#"{"hidden_size": 384, "vocab_size": 1000, "max_position_embeddings": 512}"#,
    );
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::InvalidModelFile { .. }), "{err}");
    replace("config.json", r#"{"hidden_size": 768}"#);
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::InvalidModelFile { .. }), "{err}");
    restore("config.json");

    replace(
        "1_Pooling/config.json",
        r#"{"pooling_mode_max_tokens": true}"#,
    );
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::InvalidModelFile { .. }), "{err}");
    std::fs::remove_file(m.join("1_Pooling/config.json")).unwrap();
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::MissingModelFile { .. }), "{err}");
    // Explicit pooling makes the file unnecessary.
    Encoder::builder(&m).pooling(Pooling::Mean).build().unwrap();
    restore("1_Pooling/config.json");

    replace("tokenizer.json", "{\"truncated");
    let err = Encoder::builder(&m).build().unwrap_err();
    assert!(matches!(err, Error::InvalidModelFile { .. }), "{err}");
    restore("tokenizer.json");

    // Out-of-range settings.
    for b in [
        Encoder::builder(&m).max_length(513),
        Encoder::builder(&m).max_length(2),
        Encoder::builder(&m).batch_size(0),
        Encoder::builder(&m).intra_threads(0),
    ] {
        let err = b.build().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }
    let err = Encoder::builder(&m)
        .ort_library("/nonexistent/libonnxruntime.so")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::OrtLibraryNotFound { .. }), "{err}");
}

const TOKENS_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/minilm_tokens_reference.json"
);

/// `encode_tokens` against Python onnxruntime + tokenizers
/// (`scripts/reference_tokens.py`): the same tokens (ids, special flags, byte
/// offsets, prefix tokens dropped) and the same `last_hidden_state` rows within 1e-4.
#[test]
fn token_vectors_match_python_onnxruntime_and_tokenizers() {
    let Some(dir) = minilm_dir("token_vectors_match_python_onnxruntime_and_tokenizers") else {
        return;
    };
    let v: Value = serde_json::from_str(&std::fs::read_to_string(TOKENS_FIXTURE).unwrap()).unwrap();
    assert_eq!(v["max_length"], 256);
    let dim = v["dim"].as_u64().unwrap() as usize;
    let mut worst = 0.0f32;
    let mut compared = 0;
    for policy in [SpecialTokens::Drop, SpecialTokens::Keep] {
        for item in v["items"].as_array().unwrap() {
            let kind = match item["kind"].as_str().unwrap() {
                "query" => TextKind::Query,
                _ => TextKind::Passage,
            };
            let prefix = item["prefix"].as_str().unwrap();
            let text = item["text"].as_str().unwrap();
            let e = Encoder::builder(&dir)
                .max_length(256)
                .batch_size(3)
                .intra_threads(2)
                .query_prefix(prefix)
                .passage_prefix(prefix)
                .special_tokens(policy)
                .build()
                .unwrap();
            // Batched with other texts so padding and sorting are exercised too.
            let got = e
                .encode_tokens(
                    kind,
                    &[("pad", "a somewhat longer neighbour text"), ("t", text)],
                )
                .unwrap();
            let got = &got[1];
            assert_eq!(got.id, "t");
            let tokens = item["tokens"].as_array().unwrap();
            let want: Vec<&Value> = tokens
                .iter()
                .filter(|t| policy == SpecialTokens::Keep || t["content"].as_bool().unwrap())
                .collect();
            let ids: Vec<u32> = want
                .iter()
                .map(|t| t["id"].as_u64().unwrap() as u32)
                .collect();
            let offsets: Vec<(u32, u32)> = want
                .iter()
                .map(|t| {
                    let o = t["offsets"].as_array().unwrap();
                    (o[0].as_u64().unwrap() as u32, o[1].as_u64().unwrap() as u32)
                })
                .collect();
            assert_eq!(got.token_ids, ids, "{policy:?} token ids of {text:?}");
            assert_eq!(got.offsets, offsets, "{policy:?} offsets of {text:?}");
            assert_eq!(got.dim, dim);
            assert_eq!(got.data.len(), got.len() * dim);
            // Offsets are byte ranges of the text itself.
            for &(s, t) in &got.offsets {
                assert!(
                    text.get(s as usize..t as usize).is_some(),
                    "{text:?} {s}..{t}"
                );
            }
            if policy == SpecialTokens::Drop {
                let rows = item["rows"].as_array().unwrap();
                assert_eq!(rows.len(), got.len());
                for (i, row) in rows.iter().enumerate() {
                    let want: Vec<f32> = row
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect();
                    let d = max_abs_diff(got.row(i), &want);
                    assert!(d <= 1e-4, "{text:?} token {i}: max abs diff {d}");
                    worst = worst.max(d);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 40);
    eprintln!("token parity with Python: {compared} rows, max abs diff {worst:.3e}");
}

/// Token output agrees with pooled output: with every token kept, the normalised
/// mean of the rows is `encode`'s vector; an empty text keeps no content token.
#[test]
fn token_vectors_pool_to_the_sentence_embedding() {
    let Some(dir) = minilm_dir("token_vectors_pool_to_the_sentence_embedding") else {
        return;
    };
    let keep = Encoder::builder(&dir)
        .max_length(256)
        .batch_size(2)
        .intra_threads(2)
        .special_tokens(SpecialTokens::Keep)
        .build()
        .unwrap();
    assert_eq!(keep.info().special_tokens, SpecialTokens::Keep);
    let items = [
        (
            "a",
            "Scurvy is a disease resulting from a lack of vitamin C.",
        ),
        ("b", ""),
        ("c", "Python is a high-level programming language."),
    ];
    let tokens = keep.encode_tokens(TextKind::Passage, &items).unwrap();
    let pooled = keep.encode(TextKind::Passage, &items).unwrap();
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(t.id, items[i].0);
        assert_eq!(
            t.token_ids,
            keep.token_ids(TextKind::Passage, items[i].1).unwrap()
        );
        let mut mean = vec![0.0f32; t.dim];
        for k in 0..t.len() {
            for (m, x) in mean.iter_mut().zip(t.row(k)) {
                *m += x / t.len() as f32;
            }
        }
        let n = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        mean.iter_mut().for_each(|x| *x /= n);
        let d = max_abs_diff(&mean, pooled.row(i).unwrap());
        assert!(d <= 1e-5, "text {i}: {d}");
    }
    let drop = encoder(&dir, 2);
    assert_eq!(drop.info().special_tokens, SpecialTokens::Drop);
    let t = drop.encode_tokens(TextKind::Passage, &items).unwrap();
    assert!(t[1].is_empty() && t[1].id == "b");
    assert_eq!(t[0].len() + 2, tokens[0].len());
    assert_eq!(t[0].row(0), tokens[0].row(1));
    assert!(
        drop.encode_tokens::<&str, &str>(TextKind::Passage, &[])
            .unwrap()
            .is_empty()
    );
}

/// Corpus → token store (F16) → blocks, against in-memory `encode_tokens`.
#[test]
fn encode_tokens_to_store_round_trip() {
    let Some(dir) = minilm_dir("encode_tokens_to_store_round_trip") else {
        return;
    };
    let e = Encoder::builder(&dir)
        .max_length(256)
        .batch_size(4)
        .intra_threads(2)
        .passage_prefix("passage: ")
        .build()
        .unwrap();
    let docs: Vec<(String, String)> = (0..9)
        .map(|i| (format!("d{i}"), "vitamin C and scurvy ".repeat(i)))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("corpus.tokens");
    let meta = e.token_store_metadata(TextKind::Passage);
    assert_eq!(meta.prefix, "passage: ");
    assert_eq!(meta.kind, "passage");
    assert_eq!((meta.dim, meta.max_length), (384, 256));
    let mut w = TokenStoreWriter::create(&path, meta.clone(), StoreDtype::F16).unwrap();
    let n = e
        .encode_tokens_to_store(TextKind::Passage, docs.iter().cloned(), &mut w)
        .unwrap();
    assert_eq!(n, 9);
    // Appending the same ids again is refused.
    let err = e
        .encode_tokens_to_store(TextKind::Passage, docs[..1].iter().cloned(), &mut w)
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateId { .. }), "{err}");
    w.finish().unwrap();
    let store = TokenStore::open(&path).unwrap();
    assert_eq!(store.metadata(), &meta);
    let want = e.encode_tokens(TextKind::Passage, &docs).unwrap();
    assert_eq!(
        store.tokens(),
        want.iter().map(TokenVectors::len).sum::<usize>()
    );
    let got: Vec<TokenVectors> = store.blocks(4).flat_map(Result::unwrap).collect();
    assert_eq!(got.len(), 9);
    assert!(got[0].is_empty(), "the empty text keeps no token");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (&g.id, &g.token_ids, &g.offsets),
            (&w.id, &w.token_ids, &w.offsets)
        );
        for (a, b) in g.data.iter().zip(&w.data) {
            assert!((a - b).abs() <= 1e-3 * b.abs().max(1e-2), "{a} vs {b}");
        }
    }
}
