//! The whole pipeline (`latent_terms::pipeline::run`) end to end.
//!
//! - Default tier: a generated LIMIT-style collection with deterministic bag-of-words
//!   "embeddings" (each word hashes to a few signed dimensions), so it needs no model:
//!   every stage runs, the report has every method and analysis, and a second run comes
//!   entirely from the cache with the same numbers.
//! - `--ignored` tier: LIMIT-small (shipped in `examples/data`) with the real dense model
//!   from `scripts/setup-assets` and the repository's LIMIT config
//!   (`examples/configs/limit.json`), as `scripts/main-job` runs it. Results are recorded
//!   in docs/results.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use latent_terms::encoders::{Pooling, StoreDtype, StoreMetadata, StoreWriter};
use latent_terms::eval::beir::trec_safe_id;
use latent_terms::pipeline::{self, LimitSpec, PipelineConfig, PipelineInputs, Quiet};

const DIM: usize = 64;

/// A unit-norm bag-of-words vector: every lower-cased word adds ±1 to three hashed dimensions.
fn hashed_embedding(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        for i in 0..3 {
            let bits = h.rotate_left(21 * i);
            let sign = if bits & 1 == 0 { 1.0 } else { -1.0 };
            v[(bits >> 1) as usize % DIM] += sign;
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn store(path: &Path, items: impl Iterator<Item = (String, String)>) {
    let meta = StoreMetadata {
        model: "hashed-words".into(),
        pooling: Pooling::Mean,
        normalized: true,
        dim: DIM,
        prefix: String::new(),
    };
    let mut writer = StoreWriter::create(path, meta, StoreDtype::F32).unwrap();
    for (id, text) in items {
        // The ids BEIR reading gives (LIMIT's "Kaia Abbott" becomes "Kaia_Abbott").
        let id = trec_safe_id(&id);
        writer.append_row(&id, &hashed_embedding(&text)).unwrap();
    }
    writer.finish().unwrap();
}

/// Writes a LIMIT-style collection and hashed-word embeddings of it (leaving out the first
/// `skip_docs` documents) under `dir`; returns the pipeline's inputs.
fn toy_inputs(dir: &Path, spec: &LimitSpec, skip_docs: usize) -> PipelineInputs {
    let data = dir.join("limit-toy");
    let collection = pipeline::write_limit(spec, &data).unwrap();
    let corpus = dir.join("corpus.safetensors");
    let queries = dir.join("queries.safetensors");
    store(
        &corpus,
        collection
            .docs
            .iter()
            .skip(skip_docs)
            .map(|d| (d.id.clone(), d.full_text())),
    );
    store(
        &queries,
        collection
            .queries
            .iter()
            .map(|q| (q.id.clone(), q.text.clone())),
    );
    PipelineInputs {
        dataset: data,
        model: dir.join("no-model"),
        out: dir.join("report"),
        cache: dir.join("cache"),
        embeddings: Some((corpus, queries)),
        sae: None,
        token_sae: None,
        token_stores: None,
    }
}

#[test]
fn every_stage_runs_and_a_second_run_is_served_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 40,
        core_docs: 20,
        queries: 30,
        likes_per_doc: 6,
        seed: 3,
    };
    let inputs = toy_inputs(tmp.path(), &spec, 0);
    let config = PipelineConfig::from_json(
        r#"{"representation": "pooled", "sae": {"d_sae": 128, "k": 8, "epochs": 5, "batch_size": 64},
            "inference": {"doc_k": 16, "query_k": 8}, "depth": 20}"#,
    )
    .unwrap();
    let first = pipeline::run(&inputs, &config, &Quiet).unwrap();
    for method in [
        "bm25",
        "dense",
        "dense-reconstructed",
        "lt-bm25",
        "clsr",
        "clsr-dot",
        "hybrid-rrf",
        "hybrid-linear",
    ] {
        let row = first
            .row(method)
            .unwrap_or_else(|| panic!("no {method} row"));
        let ndcg = row.get("ndcg_cut_10").unwrap();
        assert!((0.0..=1.0).contains(&ndcg), "{method}: nDCG@10 {ndcg}");
    }
    // Lexical BM25 solves LIMIT-style queries (the attribute words are in the documents).
    assert!(first.row("bm25").unwrap().get("recall_10").unwrap() > 0.9);
    assert!(first.avg_latents_per_doc > 0.0 && first.avg_latents_per_doc <= 16.0);
    assert!(first.nmse.is_finite() && first.latents_used > 0);
    // The report describes the SAE from its checkpoint.
    assert_eq!(
        (first.sae_kind.as_str(), first.sae_k, first.d_sae),
        ("topk", 8, 128)
    );
    assert_eq!(first.mismatch.len(), 3);
    let out = tmp.path().join("report");
    for file in ["results.json", "results.md", "zipf.png", "runs/clsr.run"] {
        assert!(out.join(file).is_file(), "no {file} in the report");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["dataset"], "limit-toy");
    assert!(json["rows"].as_array().is_some_and(|r| r.len() >= 8));

    let second = pipeline::run(&inputs, &config, &Quiet).unwrap();
    for stage in [
        "encode",
        "sae_train",
        "lexical_index",
        "latent_index",
        "search",
    ] {
        assert!(
            second.cached_stages.iter().any(|s| s == stage),
            "{stage} was recomputed: cached {:?}",
            second.cached_stages
        );
    }
    assert_eq!(second.rows, first.rows);
}

/// Every file in `dir` (recursively) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out
}

/// The issue 15 probes on the cache: an input over 8 MiB edited in place (same size), a
/// cached run edited by hand and a cached index damaged are each recomputed, never used.
#[test]
fn a_stale_or_damaged_cache_entry_is_recomputed_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 24,
        core_docs: 12,
        queries: 10,
        likes_per_doc: 4,
        seed: 11,
    };
    let inputs = toy_inputs(tmp.path(), &spec, 0);
    // A 9.4 MiB extra training store: 36,864 rows of the toy collection's own vectors.
    let extra = tmp.path().join("extra.safetensors");
    let texts: Vec<String> = (0..36_864)
        .map(|i| format!("filler word{} w{}", i % 97, i % 13))
        .collect();
    store(
        &extra,
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("x{i}"), t.clone())),
    );
    let len = std::fs::metadata(&extra).unwrap().len();
    assert!(len > 9 << 20, "{len} bytes");
    let mut config = PipelineConfig::from_json(
        r#"{"representation": "pooled", "sae": {"d_sae": 64, "k": 4, "epochs": 1, "batch_size": 4096},
            "inference": {"doc_k": 8, "query_k": 4}, "depth": 10}"#,
    )
    .unwrap();
    config.extra_training_stores = vec![extra.clone()];
    let first = pipeline::run(&inputs, &config, &Quiet).unwrap();

    // 1. A byte flipped in place is damage: the store's checksum refuses it.
    let original = std::fs::read(&extra).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x80;
    std::fs::write(&extra, &bytes).unwrap();
    let err = pipeline::run(&inputs, &config, &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum"), "{err}");
    // 2. The store rewritten with other rows in the middle: same size, same first MiB,
    // a valid file. The SAE must be trained again.
    let texts: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if (12_000..24_000).contains(&i) {
                format!("other {t}")
            } else {
                t.clone()
            }
        })
        .collect();
    store(
        &extra,
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("x{i}"), t.clone())),
    );
    let now = std::fs::read(&extra).unwrap();
    assert_eq!(now.len(), original.len());
    assert_eq!(now[..1 << 20], original[..1 << 20]);
    let second = pipeline::run(&inputs, &config, &Quiet).unwrap();
    assert!(
        !second.cached_stages.iter().any(|s| s == "sae_train"),
        "the SAE was served from the cache after its training data changed: {:?}",
        second.cached_stages
    );

    // 3. The cached BM25 run edited by hand (same length): recomputed, same numbers.
    let cached_runs = files_ending(&tmp.path().join("cache"), "/bm25.run");
    assert_eq!(cached_runs.len(), 1, "{cached_runs:?}");
    let text = std::fs::read_to_string(&cached_runs[0]).unwrap();
    let edited = text.replacen(" 1 ", " 9 ", 1);
    assert_ne!(edited, text);
    std::fs::write(&cached_runs[0], edited).unwrap();
    let third = pipeline::run(&inputs, &config, &Quiet).unwrap();
    assert!(!third.cached_stages.iter().any(|s| s == "lexical_search"));
    assert_eq!(third.row("bm25"), first.row("bm25"));

    // 4. The cached lexical index damaged: recomputed, not a hard error.
    let index = files_ending(&tmp.path().join("cache"), ".idx")
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lexical-")
        })
        .unwrap();
    let mut bytes = std::fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&index, bytes).unwrap();
    let fourth = pipeline::run(&inputs, &config, &Quiet).unwrap();
    assert!(!fourth.cached_stages.iter().any(|s| s == "lexical_index"));
    assert_eq!(fourth.row("bm25"), first.row("bm25"));
    // And once recomputed, it is a cache hit again.
    let fifth = pipeline::run(&inputs, &config, &Quiet).unwrap();
    assert!(fifth.cached_stages.iter().any(|s| s == "lexical_index"));
}

/// `run --sae S`: the report describes S (its kind, k and d_sae), not the config's SAE.
#[test]
fn a_given_sae_is_described_by_its_checkpoint_not_the_config() {
    use latent_terms::sae::{SaeConfig, SaeKind, SaeWeights};
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 16,
        core_docs: 8,
        queries: 6,
        likes_per_doc: 3,
        seed: 9,
    };
    let mut inputs = toy_inputs(tmp.path(), &spec, 0);
    let sae = tmp.path().join("given.safetensors");
    SaeWeights {
        config: SaeConfig::new(SaeKind::BatchTopK, DIM, 96, 3).unwrap(),
        w_enc: (0..DIM * 96).map(|i| (i as f32 * 0.37).sin()).collect(),
        b_enc: vec![0.0; 96],
        w_dec: (0..96 * DIM)
            .map(|i| (i as f32 * 0.11).cos() / 8.0)
            .collect(),
        b_dec: vec![0.0; DIM],
    }
    .save(&sae)
    .unwrap();
    inputs.sae = Some(sae);
    let config = PipelineConfig::from_json(
        r#"{"representation": "pooled", "sae": {"kind": "topk", "d_sae": 128, "k": 8},
            "inference": {"doc_k": 8, "query_k": 4}, "depth": 10}"#,
    )
    .unwrap();
    let report = pipeline::run(&inputs, &config, &Quiet).unwrap();
    assert_eq!(
        (report.sae_kind.as_str(), report.sae_k, report.d_sae),
        ("batchtopk", 3, 96)
    );
    let md = report.markdown();
    assert!(md.contains("batchtopk 96 latents, trained k 3"), "{md}");
}

/// `inference.rule`: a BatchTopK SAE's stored threshold encodes documents and queries; a
/// TopK SAE has none, which is a typed error.
#[test]
fn the_threshold_rule_needs_and_uses_a_batchtopk_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 30,
        core_docs: 15,
        queries: 12,
        likes_per_doc: 4,
        seed: 13,
    };
    let inputs = toy_inputs(tmp.path(), &spec, 0);
    let config = |kind: &str, rule: &str| {
        PipelineConfig::from_json(&format!(
            r#"{{"representation": "pooled", "sae": {{"kind": "{kind}", "d_sae": 96, "k": 6, "epochs": 20, "batch_size": 32}},
                "inference": {{"doc_k": 16, "query_k": 8, "rule": "{rule}"}}, "depth": 10}}"#
        ))
        .unwrap()
    };
    let err = pipeline::run(&inputs, &config("topk", "threshold"), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("stored threshold"), "{err}");
    let top = pipeline::run(&inputs, &config("batchtopk", "topk"), &Quiet).unwrap();
    let cut = pipeline::run(&inputs, &config("batchtopk", "threshold"), &Quiet).unwrap();
    // Same SAE (the rule is not part of its key), other codes.
    assert!(cut.cached_stages.iter().any(|s| s == "sae_train"));
    assert!(cut.avg_latents_per_doc > 0.0 && cut.avg_latents_per_doc <= 16.0);
    assert_ne!(top.avg_latents_per_doc, cut.avg_latents_per_doc);
    assert_eq!(top.avg_latents_per_doc, 16.0);
}

/// `sae.kind = "kld"` trains the pooled SAE with the contrastive KL term on pairs from a
/// dense nearest-neighbour run (no relevance labels), and the report says so.
#[test]
fn the_kld_trainer_runs_in_the_pipeline_on_dense_neighbour_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 30,
        core_docs: 15,
        queries: 12,
        likes_per_doc: 4,
        seed: 17,
    };
    let inputs = toy_inputs(tmp.path(), &spec, 0);
    let config = PipelineConfig::from_json(
        r#"{"representation": "pooled", "sae": {"kind": "kld", "d_sae": 96, "k": 6, "epochs": 20,
            "batch_size": 32, "kld": {"neighbours": 3, "queries_per_batch": 8}},
            "inference": {"doc_k": 16, "query_k": 8}, "depth": 10}"#,
    )
    .unwrap();
    let report = pipeline::run(&inputs, &config, &Quiet).unwrap();
    assert_eq!(report.sae_kind, "kld");
    assert!(
        report
            .sae_training_corpus
            .contains("KLD pairs: 12 rows × 3 dense neighbours"),
        "{}",
        report.sae_training_corpus
    );
    assert!(report.nmse.is_finite());
    // The KL term does not apply to token rows: refused before any work.
    let tokens = PipelineConfig::from_json(r#"{"tokens": {"sae": {"kind": "kld"}}}"#).unwrap();
    let err = pipeline::run(&inputs, &tokens, &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("token rows"), "{err}");
}

#[test]
fn embeddings_of_another_corpus_are_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 12,
        core_docs: 6,
        queries: 5,
        likes_per_doc: 3,
        seed: 5,
    };
    // One document short.
    let inputs = toy_inputs(tmp.path(), &spec, 1);
    let config = PipelineConfig::from_json(
        r#"{"representation": "pooled", "sae": {"d_sae": 32, "k": 4, "epochs": 1, "batch_size": 8},
            "depth": 5}"#,
    )
    .unwrap();
    let err = pipeline::run(&inputs, &config, &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lack 1 of the dataset's documents"), "{err}");
}

#[test]
fn a_bad_config_is_a_typed_error_before_any_work() {
    let config = PipelineConfig::from_json(r#"{"sae": {"k": 0}}"#).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let inputs = PipelineInputs {
        dataset: tmp.path().join("absent"),
        model: tmp.path().join("absent-model"),
        out: tmp.path().join("out"),
        cache: tmp.path().join("cache"),
        embeddings: None,
        sae: None,
        token_sae: None,
        token_stores: None,
    };
    let err = pipeline::run(&inputs, &config, &Quiet).unwrap_err();
    assert!(err.to_string().contains("k"), "{err}");
}

/// The tiny random BERT of the encoder tests, laid out as `DIR/models/tiny-bert` beside
/// `DIR/onnxruntime` (a link to the assets' library), where the encoder finds ONNX Runtime.
fn tiny_model(dir: &Path) -> PathBuf {
    let lib = root().join("assets/onnxruntime");
    assert!(
        lib.join("libonnxruntime.so").exists(),
        "no ONNX Runtime at {}: run scripts/setup-assets (scripts/test does)",
        lib.display()
    );
    let model = dir.join("models/tiny-bert");
    std::fs::create_dir_all(&model).unwrap();
    let fixture = root().join("crates/encoders/tests/fixtures/tiny-bert");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
        }
    }
    // The fixture leaves pooling to the caller; the pipeline reads it from the model.
    std::fs::create_dir_all(model.join("1_Pooling")).unwrap();
    std::fs::write(
        model.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 8, "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&lib, dir.join("onnxruntime")).unwrap();
    model
}

/// Window pooling (the LIMIT result) in the default tier: the tiny model embeds every
/// document's word windows, and each document's latent terms are the max-pooled union of
/// its whole-text and window codes.
#[test]
fn window_pooling_runs_on_a_tiny_model() {
    use latent_terms::encoders::EmbeddingsStore;
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 20,
        core_docs: 10,
        queries: 10,
        likes_per_doc: 6,
        seed: 21,
    };
    let mut inputs = toy_inputs(tmp.path(), &spec, 0);
    inputs.embeddings = None;
    inputs.model = tiny_model(tmp.path());
    let config = |windows: bool| {
        PipelineConfig::from_json(&format!(
            r#"{{"representation": "pooled", "depth": 10,
                "sae": {{"d_sae": 64, "k": 4, "epochs": 10, "batch_size": 32, "warmup_steps": 2}},
                "inference": {{"doc_k": 32, "query_k": 8}},
                "chunking": {{"enabled": {windows}, "words": 4, "stride": 2, "window_k": 4}}}}"#
        ))
        .unwrap()
    };
    let whole = pipeline::run(&inputs, &config(false), &Quiet).unwrap();
    let pooled = pipeline::run(&inputs, &config(true), &Quiet).unwrap();
    assert!(pooled.stage_seconds.contains_key("encode_windows"));
    assert!(!whole.stage_seconds.contains_key("encode_windows"));
    let windows: Vec<PathBuf> = files_ending(&tmp.path().join("cache"), ".safetensors")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("windows-")
        })
        .collect();
    assert_eq!(windows.len(), 1, "{windows:?}");
    let store = EmbeddingsStore::open(&windows[0]).unwrap();
    assert!(
        store.rows() > spec.docs,
        "{} windows for {} documents",
        store.rows(),
        spec.docs
    );
    // The windows join the SAE's training rows, and every document gets latent terms.
    assert_eq!(
        pooled.sae_training_rows,
        whole.sae_training_rows + store.rows()
    );
    assert!(pooled.avg_latents_per_doc > 0.0);
    assert!(pooled.row("lt-bm25").is_some() && pooled.row("clsr").is_some());
}

/// Query and passage prefixes (e5, bge and nomic need them) reach the encoder from the
/// run config, are recorded in the stores, and stores made with other prefixes are refused.
#[test]
fn prefixes_are_applied_recorded_and_checked() {
    use latent_terms::encoders::EmbeddingsStore;
    let tmp = tempfile::tempdir().unwrap();
    let spec = LimitSpec {
        docs: 12,
        core_docs: 6,
        queries: 6,
        likes_per_doc: 3,
        seed: 17,
    };
    let mut inputs = toy_inputs(tmp.path(), &spec, 0);
    inputs.embeddings = None;
    inputs.model = tiny_model(tmp.path());
    let config = |prefixes: bool| {
        let encoder = if prefixes {
            r#""encoder": {"query_prefix": "query: ", "passage_prefix": "passage: "},"#
        } else {
            ""
        };
        PipelineConfig::from_json(&format!(
            r#"{{"representation": "pooled", "depth": 10, {encoder}
                "sae": {{"d_sae": 32, "k": 4, "epochs": 5, "batch_size": 16, "warmup_steps": 1}},
                "inference": {{"doc_k": 8, "query_k": 4}}}}"#
        ))
        .unwrap()
    };
    let with = pipeline::run(&inputs, &config(true), &Quiet).unwrap();
    let without = pipeline::run(&inputs, &config(false), &Quiet).unwrap();
    // Another prefix is another encoding: its own cache entry, other dense scores.
    assert!(!without.cached_stages.iter().any(|s| s == "encode"));
    assert!(with.row("dense").is_some() && without.row("dense").is_some());
    let stores = files_ending(&tmp.path().join("cache"), ".safetensors");
    let prefixes: Vec<(String, String)> = stores
        .iter()
        .filter(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("emb-")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                EmbeddingsStore::open(p).unwrap().metadata().prefix.clone(),
            )
        })
        .collect();
    for expected in [
        ("corpus.safetensors", "passage: "),
        ("queries.safetensors", "query: "),
        ("corpus.safetensors", ""),
        ("queries.safetensors", ""),
    ] {
        assert!(
            prefixes
                .iter()
                .any(|(n, p)| n == expected.0 && p == expected.1),
            "{expected:?} not in {prefixes:?}"
        );
    }
    // The prefixed stores given to a run configured without prefixes: refused up front.
    let dir = stores
        .iter()
        .find(|p| {
            p.ends_with("queries.safetensors")
                && EmbeddingsStore::open(p).unwrap().metadata().prefix == "query: "
        })
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    inputs.embeddings = Some((
        dir.join("corpus.safetensors"),
        dir.join("queries.safetensors"),
    ));
    let err = pipeline::run(&inputs, &config(false), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("prefix"), "{err}");
}

/// A 30-document LIMIT-style collection encoded by the tiny model at run time (no
/// embeddings stores given), and its spec.
fn tiny_token_inputs(dir: &Path) -> (PipelineInputs, LimitSpec) {
    let spec = LimitSpec {
        docs: 30,
        core_docs: 15,
        queries: 20,
        likes_per_doc: 5,
        seed: 9,
    };
    let mut inputs = toy_inputs(dir, &spec, 0);
    inputs.embeddings = None;
    inputs.model = tiny_model(dir);
    (inputs, spec)
}

/// The token-level representation end to end on the tiny model: token stores, token SAE,
/// bags, index, the four token rows, weighted queries that `search` reads, and a second
/// run served from the cache.
#[test]
fn token_level_latent_terms_run_end_to_end_on_a_tiny_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, spec) = tiny_token_inputs(tmp.path());
    let config = PipelineConfig::from_json(
        r#"{"representation": "tokens", "depth": 20,
            "tokens": {"sae": {"d_sae": 64, "k": 4, "epochs": 3, "batch_size": 64,
                               "warmup_steps": 2, "validation_fraction": 0.0},
                       "max_training_tokens": 100000, "min_training_tokens": 10}}"#,
    )
    .unwrap();
    let first = pipeline::run(&inputs, &config, &Quiet).unwrap();
    for method in [
        "bm25",
        "dense",
        "lt-tokens-bm25",
        "lt-tokens-clsr",
        "hybrid-tokens-rrf",
        "hybrid-tokens-linear",
        "hybrid-tokens-dense-rrf",
    ] {
        let ndcg = first
            .row(method)
            .and_then(|r| r.get("ndcg_cut_10"))
            .unwrap_or_else(|| panic!("no {method} row"));
        assert!((0.0..=1.0).contains(&ndcg), "{method}: nDCG@10 {ndcg}");
    }
    assert!(first.row("clsr").is_none(), "the pooled rows did not run");
    let t = first.tokens.as_ref().expect("a token report");
    assert!(
        t.avg_latents_per_doc > 4.0,
        "a bag holds many tokens' latents"
    );
    assert!(t.postings > 0 && t.corpus_tokens > 0 && t.training_rows > 0);
    assert!(t.training_nmse.is_finite() && t.input_scale > 0.0);
    let a = &first.artifacts;
    for path in [
        &a.token_index,
        &a.token_queries,
        &a.corpus_tokens,
        &a.token_sae,
    ] {
        assert!(Path::new(path).is_file(), "artifact {path} is missing");
    }
    let lines = std::fs::read_to_string(&a.token_queries).unwrap();
    let queries = latent_terms::sparse_index::export::read_weighted_queries(
        lines.as_bytes(),
        latent_terms::sparse_index::export::TermNames::Latent,
        None,
    )
    .unwrap();
    assert_eq!(queries.len(), first.queries);

    let second = pipeline::run(&inputs, &config, &Quiet).unwrap();
    for stage in ["encode", "token_sae_train", "token_index", "token_tune"] {
        assert!(
            second.cached_stages.iter().any(|s| s == stage),
            "{stage} was recomputed: cached {:?}",
            second.cached_stages
        );
    }
    assert_eq!(second.rows, first.rows);

    // The same token SAE, given, serves two collections in the same cache: each gets
    // its own bags and index.
    let sae = PathBuf::from(&first.artifacts.token_sae);
    let given = pipeline::run(
        &PipelineInputs {
            token_sae: Some(sae.clone()),
            ..inputs.clone()
        },
        &config,
        &Quiet,
    )
    .unwrap();
    let other_dir = tmp.path().join("other");
    let other_spec = LimitSpec {
        docs: 24,
        seed: 11,
        ..spec
    };
    let mut other = toy_inputs(&other_dir, &other_spec, 0);
    other.embeddings = None;
    other.model = inputs.model.clone();
    other.cache = inputs.cache.clone();
    other.token_sae = Some(sae);
    let third = pipeline::run(&other, &config, &Quiet).unwrap();
    let index = latent_terms::sparse_index::Index::open(&third.artifacts.token_index).unwrap();
    assert_eq!(index.num_docs(), 24, "the other collection's own index");
    assert_ne!(third.artifacts.token_index, given.artifacts.token_index);

    // Static pruning: fewer postings, the full index's document frequencies.
    let pruned_config = PipelineConfig::from_json(
        r#"{"representation": "tokens", "depth": 20,
            "tokens": {"sae": {"d_sae": 64, "k": 4, "epochs": 3, "batch_size": 64,
                               "warmup_steps": 2, "validation_fraction": 0.0},
                       "max_training_tokens": 100000, "min_training_tokens": 10,
                       "prune": {"top_terms": 3}}}"#,
    )
    .unwrap();
    let pruned = pipeline::run(
        &PipelineInputs {
            token_sae: Some(PathBuf::from(&first.artifacts.token_sae)),
            ..inputs.clone()
        },
        &pruned_config,
        &Quiet,
    )
    .unwrap();
    let full_index = latent_terms::sparse_index::Index::open(&given.artifacts.token_index).unwrap();
    let pruned_index =
        latent_terms::sparse_index::Index::open(&pruned.artifacts.token_index).unwrap();
    let t = pruned.tokens.as_ref().expect("a token report");
    assert!(t.avg_latents_per_doc <= 3.0, "{}", t.avg_latents_per_doc);
    assert!(t.postings < given.tokens.as_ref().expect("a token report").postings);
    assert!(pruned_index.term_statistics().is_some());
    for term in full_index.term_ids() {
        assert_eq!(
            pruned_index.doc_freq(term).unwrap(),
            full_index.doc_freq(term).unwrap()
        );
    }
    assert!(pruned.row("lt-tokens-bm25").is_some());
}

/// `tokens.sae_draws`: several token SAEs, one per seed, each tuned on the training
/// split; the run keeps the one with the best tuning nDCG@10 and reports all of them.
/// Without a training split only one is trained.
#[test]
fn token_sae_draws_are_chosen_on_the_training_split() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, _) = tiny_token_inputs(tmp.path());
    let json = |draws: usize| {
        format!(
            r#"{{"representation": "tokens", "depth": 20,
                "tokens": {{"sae": {{"d_sae": 64, "k": 4, "epochs": 3, "batch_size": 64,
                                   "warmup_steps": 2, "validation_fraction": 0.1}},
                           "max_training_tokens": 100000, "min_training_tokens": 10,
                           "sae_draws": {draws}}}}}"#
        )
    };
    let three = PipelineConfig::from_json(&json(3)).unwrap();
    let untuned = pipeline::run(&inputs, &three, &Quiet).unwrap();
    assert!(
        untuned.tokens.as_ref().unwrap().draws.is_empty(),
        "no training split: one SAE, no draws to report"
    );

    // Half of the generated collection's queries become a training split.
    let qrels = inputs.dataset.join("qrels");
    let text = std::fs::read_to_string(qrels.join("test.tsv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut test, mut train) = (vec![header], vec![header]);
    let qids: Vec<&str> = lines
        .clone()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let first_test = qids[qids.len() / 2];
    for line in lines {
        let qid = line.split('\t').next().unwrap();
        if qids.iter().position(|q| *q == qid) < qids.iter().position(|q| *q == first_test) {
            train.push(line);
        } else {
            test.push(line);
        }
    }
    assert!(train.len() > 1 && test.len() > 1);
    std::fs::write(qrels.join("train.tsv"), train.join("\n") + "\n").unwrap();
    std::fs::write(qrels.join("test.tsv"), test.join("\n") + "\n").unwrap();
    let tuned = pipeline::run(&inputs, &three, &Quiet).unwrap();
    let t = tuned.tokens.as_ref().unwrap();
    let seeds: Vec<u64> = t.draws.iter().map(|d| d.seed).collect();
    assert_eq!(seeds, vec![0, 1, 2]);
    let mean = |d: &pipeline::SaeDraw| {
        let (bm25, clsr) = d.tuned_ndcg10.expect("every draw is tuned");
        (bm25 + clsr) / 2.0
    };
    let kept: Vec<_> = t.draws.iter().filter(|d| d.chosen).collect();
    assert_eq!(kept.len(), 1, "{:?}", t.draws);
    let best = t.draws.iter().map(mean).fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(mean(kept[0]), best);
    assert_eq!(t.params.tuned_ndcg10, kept[0].tuned_ndcg10);
    assert!(
        t.draws
            .iter()
            .any(|d| d.validation_nmse != kept[0].validation_nmse),
        "the draws are different SAEs: {:?}",
        t.draws
    );

    // The reported SAE is the kept draw: given back, it scores the same test run.
    let given = pipeline::run(
        &PipelineInputs {
            token_sae: Some(PathBuf::from(&tuned.artifacts.token_sae)),
            out: tmp.path().join("given"),
            ..inputs.clone()
        },
        &PipelineConfig::from_json(&json(1)).unwrap(),
        &Quiet,
    )
    .unwrap();
    assert_eq!(
        given.row("lt-tokens-bm25"),
        tuned.row("lt-tokens-bm25"),
        "the token SAE artifact is the kept draw"
    );
    assert_eq!(given.tokens.as_ref().unwrap().params, t.params);
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// LIMIT-small with the real model, as the README's main job runs it.
#[test]
#[ignore = "needs scripts/setup-assets; trains an SAE (minutes); run with --ignored"]
fn limit_small_with_the_real_model() {
    let model = root().join("assets/models/all-MiniLM-L6-v2");
    if !model.is_dir() {
        eprintln!(
            "skipped: no model at {} (run scripts/setup-assets)",
            model.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = PipelineConfig::from_path(&root().join("examples/configs/limit.json")).unwrap();
    let inputs = PipelineInputs {
        dataset: root().join("examples/data/limit-small"),
        model,
        out: tmp.path().join("report"),
        cache: tmp.path().join("cache"),
        embeddings: None,
        sae: None,
        token_sae: None,
        token_stores: None,
    };
    let report = pipeline::run(&inputs, &config, &Quiet).unwrap();
    let recall = |m: &str| report.row(m).and_then(|r| r.get("recall_10")).unwrap();
    eprintln!(
        "LIMIT-small R@10: dense {:.4}, clsr {:.4}, lt-bm25 {:.4}",
        recall("dense"),
        recall("clsr"),
        recall("lt-bm25")
    );
    // The dense backbone's published nDCG@10 on LIMIT-small is 0.3136 (../shared/data README).
    let dense = report
        .row("dense")
        .and_then(|r| r.get("ndcg_cut_10"))
        .unwrap();
    assert!((dense - 0.3136).abs() < 0.01, "dense nDCG@10 {dense}");
    // Window-pooled latent terms must beat the single-vector backbone on LIMIT.
    assert!(recall("clsr").max(recall("lt-bm25")) > recall("dense"));
    // Token-level terms from LIMIT-small's own-text SAE: 0.9955 in docs/results.md.
    eprintln!(
        "LIMIT-small R@10: lt-tokens-bm25 {:.4}",
        recall("lt-tokens-bm25")
    );
    assert!(recall("lt-tokens-bm25") >= 0.90);
}
