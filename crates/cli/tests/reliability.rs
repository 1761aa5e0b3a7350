//! Reliability: every file format refuses damage, and every writer survives `kill -9`.
//!
//! The matrix in docs/reliability.md comes from this file:
//! `cargo test --workspace --locked --test reliability -- --nocapture` prints one line per
//! format and writer. Each test asserts what the matrix states; none needs assets.
//!
//! - **Corruption:** every byte of a small file of each format, one at a time, is
//!   replaced by its complement; the loader must return a typed error or, where the
//!   byte does not matter (JSON whitespace), exactly the original content. Never a
//!   panic, never different content.
//! - **Kills:** the CLI is killed (SIGKILL) at spread moments while it writes; the
//!   target must then hold the old complete file or the new complete one, and a
//!   later write leaves no temporary file behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latent_terms::encoders::{
    SpecialTokens, StoreDtype, TokenStore, TokenStoreMetadata, TokenStoreWriter, TokenVectors,
};
use latent_terms::eval::Run;
use latent_terms::eval::beir::BeirDataset;
use latent_terms::lexical::LexicalIndex;
use latent_terms::sae::{Latents, SaeConfig, SaeKind, SaeWeights, SparseCode, TrainState};
use latent_terms::sparse_index::Index;

use common::{dataset, p, save_sae, write_store};

/// What a sweep saw.
#[derive(Debug, Default)]
struct Sweep {
    tried: usize,
    detected: usize,
    harmless: usize,
}

/// Complements each byte of `bytes` in turn (every position when `step` is 1) and loads
/// the result. `load` gives `Err` for a refused file and `Ok(same)` for one that loaded,
/// `same` saying whether its content equals the original's. Panics and silent changes fail.
fn sweep(
    name: &str,
    bytes: &[u8],
    step: usize,
    load: impl Fn(Vec<u8>) -> Result<bool, String>,
) -> Sweep {
    let mut s = Sweep::default();
    for pos in (0..bytes.len()).step_by(step) {
        let mut damaged = bytes.to_vec();
        damaged[pos] = !damaged[pos];
        s.tried += 1;
        match catch_unwind(AssertUnwindSafe(|| load(damaged))) {
            Err(_) => panic!("{name}: the loader panicked on byte {pos}"),
            Ok(Err(_)) => s.detected += 1,
            Ok(Ok(true)) => s.harmless += 1,
            Ok(Ok(false)) => panic!("{name}: byte {pos} changed the content silently"),
        }
    }
    println!(
        "corruption | {name} | {} bytes | {} tried | {} detected | {} harmless (content unchanged)",
        bytes.len(),
        s.tried,
        s.detected,
        s.harmless
    );
    s
}

fn lexical_index_bytes(dir: &Path) -> Vec<u8> {
    let index = LexicalIndex::build(&BeirDataset::open(dataset()).unwrap()).unwrap();
    let path = dir.join("lexical.idx");
    index.index().save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn every_byte_of_an_index_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = lexical_index_bytes(tmp.path());
    let original = Index::from_bytes(bytes.clone()).unwrap();
    let step = (bytes.len() / 20_000).max(1);
    let s = sweep("sparse index (LIMIT-small lexical)", &bytes, step, |b| {
        Index::from_bytes(b)
            .map(|ix| ix.num_docs() == original.num_docs())
            .map_err(|e| e.to_string())
    });
    assert_eq!(s.detected, s.tried, "an index is checksummed end to end");
}

fn tiny_weights() -> SaeWeights {
    let config = SaeConfig::new(SaeKind::BatchTopK, 4, 8, 2).unwrap();
    let n = 4 * 8;
    SaeWeights {
        config,
        w_enc: (0..n).map(|i| (i as f32 * 0.37).sin()).collect(),
        b_enc: vec![0.01; 8],
        w_dec: (0..n).map(|i| (i as f32 * 0.11).cos()).collect(),
        b_dec: vec![0.1, -0.2, 0.3, 0.0],
    }
}

#[test]
fn every_byte_of_an_sae_checkpoint_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tiny_weights();
    let path = tmp.path().join("sae.safetensors");
    w.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    sweep("SAE checkpoint (BatchTopK 4x8)", &bytes, 1, |b| {
        SaeWeights::from_bytes(&b).map(|got| got == w)
    });
}

#[test]
fn every_byte_of_a_resume_state_is_checked() {
    let w = tiny_weights();
    let mut state = TrainState::fresh(&w);
    state.step = 12;
    state.since_fired = vec![0, 1, 2, 3, 4, 5, 6, 7];
    let bytes = state.to_bytes(&w).unwrap();
    sweep("SAE resume state (4x8, step 12)", &bytes, 1, |b| {
        let got = TrainState::from_bytes(&b, &w)?;
        got.check_paired(&w)?;
        Ok(got.step == state.step && got.since_fired == state.since_fired)
    });
}

#[test]
fn every_byte_of_a_latents_file_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let latents = Latents {
        d_sae: 16,
        ids: vec!["d1".into(), "d2".into(), "d3".into()],
        codes: vec![
            SparseCode::from_pairs(&[(1, 0.5), (7, 1.5)]),
            SparseCode::default(),
            SparseCode::from_pairs(&[(15, 2.0)]),
        ],
    };
    let path = tmp.path().join("latents.safetensors");
    latents.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    sweep("latents file (3 rows)", &bytes, 1, |b| {
        Latents::from_bytes(&b).map(|got| got == latents)
    });
}

#[test]
fn every_byte_of_an_embeddings_store_is_checked() {
    use latent_terms::encoders::{EmbeddingsStore, Pooling, StoreMetadata, StoreWriter};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("e.safetensors");
    let meta = StoreMetadata {
        model: "tiny".into(),
        pooling: Pooling::Mean,
        normalized: false,
        dim: 4,
        prefix: String::new(),
    };
    let mut writer = StoreWriter::create(&path, meta, StoreDtype::F32).unwrap();
    for i in 0..5u8 {
        let row: Vec<f32> = (0..4).map(|j| f32::from(i * 4 + j) * 0.5 - 3.0).collect();
        writer.append_row(&format!("doc-{i}"), &row).unwrap();
    }
    writer.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let content = |s: &EmbeddingsStore| -> Result<_, String> {
        let e = s.load().map_err(|e| e.to_string())?;
        Ok((e.ids().to_vec(), e.data().to_vec()))
    };
    let original = content(&EmbeddingsStore::from_bytes(bytes.clone()).unwrap()).unwrap();
    let s = sweep("embeddings store (5 x 4, f32)", &bytes, 1, |b| {
        let store = EmbeddingsStore::from_bytes(b).map_err(|e| e.to_string())?;
        Ok(content(&store)? == original)
    });
    assert_eq!(s.detected, s.tried, "a store is checksummed end to end");
}

#[test]
fn every_byte_of_a_token_store_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.tokens");
    let meta = TokenStoreMetadata {
        model: "tiny".into(),
        dim: 3,
        max_length: 16,
        special_tokens: SpecialTokens::Drop,
        prefix: String::new(),
        kind: "passage".into(),
    };
    let mut writer = TokenStoreWriter::create(&path, meta, StoreDtype::F16).unwrap();
    for (i, n) in [2usize, 0, 3].into_iter().enumerate() {
        writer
            .append(&TokenVectors {
                id: format!("doc{i}"),
                dim: 3,
                token_ids: (0..n as u32).collect(),
                offsets: (0..n as u32).map(|t| (t * 2, t * 2 + 1)).collect(),
                data: (0..n * 3).map(|v| v as f32 * 0.25).collect(),
            })
            .unwrap();
    }
    writer.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let content = |s: &TokenStore| -> Result<_, String> {
        let rows = s.read_rows(0..s.tokens()).map_err(|e| e.to_string())?;
        let ids: Vec<_> = (0..s.texts()).map(|i| s.token_ids(i).to_vec()).collect();
        Ok((s.ids().to_vec(), rows, ids))
    };
    let original = content(&TokenStore::from_bytes(bytes.clone()).unwrap()).unwrap();
    sweep("token store (3 texts, f16)", &bytes, 1, |b| {
        let store = TokenStore::from_bytes(b).map_err(|e| e.to_string())?;
        Ok(content(&store)? == original)
    });
}

/// Runs `latent-terms ARGS` and kills it after `after`; true if it was still running.
fn run_and_kill(args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    // SIGKILL on Unix: no destructor or cleanup runs.
    let _ = child.kill();
    let _ = child.wait();
    running
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".tmp."))
        .collect()
}

/// Kills `args` at `kills` moments spread over one uninterrupted run's duration (which
/// must leave `check` true), checking after each kill that `check` still holds.
fn kill_sweep(name: &str, args: &[&str], kills: usize, check: impl Fn() -> Result<(), String>) {
    kill_sweep_with(name, args, kills, |_| {}, check);
}

/// [`kill_sweep`], calling `before(i)` before the `i`-th killed run.
fn kill_sweep_with(
    name: &str,
    args: &[&str],
    kills: usize,
    before: impl Fn(usize),
    check: impl Fn() -> Result<(), String>,
) {
    let started = Instant::now();
    common::cli(args);
    let full = started.elapsed();
    check().unwrap_or_else(|e| panic!("{name}: after a full run: {e}"));
    let mut interrupted = 0;
    for i in 0..kills {
        let after = full.mul_f64((i as f64 + 0.5) / kills as f64);
        before(i);
        interrupted += usize::from(run_and_kill(args, after));
        check().unwrap_or_else(|e| panic!("{name}: after a kill at {after:?}: {e}"));
    }
    println!(
        "kill -9 | {name} | {kills} kills spread over {:.0} ms | {interrupted} mid-run | {kills} left a complete file",
        full.as_secs_f64() * 1e3
    );
}

#[test]
fn kill_9_during_bm25_leaves_the_old_or_the_new_index_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, index) = (tmp.path().join("bm25.run"), tmp.path().join("bm25.idx"));
    let data = dataset();
    let args = [
        "bm25",
        "--dataset",
        p(&data),
        "--run",
        p(&run),
        "--save-index",
        p(&index),
    ];
    kill_sweep("bm25 --save-index (index + run)", &args, 12, || {
        Index::open(&index).map_err(|e| e.to_string())?;
        Run::from_path(&run).map_err(|e| e.to_string())?;
        Ok(())
    });
    common::cli(&args);
    let left = temp_files(tmp.path());
    assert!(
        left.is_empty(),
        "temporary files left after a clean run: {left:?}"
    );
}

/// `sae train` of a TopK SAE on `emb` into `out`: latents, k, epochs, batch size, warm-up.
fn train_args(
    emb: &Path,
    out: &Path,
    [latents, k, epochs, batch, warmup]: [usize; 5],
) -> Vec<String> {
    let mut args: Vec<String> = ["sae", "train", "--embeddings", p(emb), "--kind", "topk"]
        .map(String::from)
        .to_vec();
    for (flag, value) in [
        ("--latents", latents),
        ("--k", k),
        ("--epochs", epochs),
        ("--batch-size", batch),
        ("--warmup", warmup),
    ] {
        args.extend([flag.to_string(), value.to_string()]);
    }
    args.extend(["--out".to_string(), p(out).to_string()]);
    args
}

#[test]
fn kill_9_during_sae_training_never_pairs_a_checkpoint_with_another_state() {
    let tmp = tempfile::tempdir().unwrap();
    let emb = tmp.path().join("rows.safetensors");
    write_store(&emb, (0..4096).map(|i| format!("r{i}")), 16);
    let ckpt = tmp.path().join("sae.safetensors");
    let state = tmp.path().join("sae.state.safetensors");
    let mut args = train_args(&emb, &ckpt, [64, 4, 30, 256, 10]);
    args.extend(["--checkpoint-every".to_string(), "1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mismatches = std::cell::Cell::new(0usize);
    kill_sweep(
        "sae train (checkpoint + resume state, every step)",
        &args,
        10,
        || {
            let weights = SaeWeights::load(&ckpt).map_err(|e| e.to_string())?;
            let bytes = std::fs::read(&state).map_err(|e| e.to_string())?;
            let loaded = TrainState::from_bytes(&bytes, &weights)?;
            // A kill between the two renames leaves a pair that resume must refuse.
            if loaded.check_paired(&weights).is_err() {
                mismatches.set(mismatches.get() + 1);
            }
            Ok(())
        },
    );
    println!(
        "kill -9 | sae train | {} kills left a checkpoint and a state of different steps; resume refuses them",
        mismatches.get()
    );
}

#[test]
fn kill_9_during_a_store_write_leaves_the_old_or_the_new_store() {
    use latent_terms::encoders::EmbeddingsStore;
    let tmp = tempfile::tempdir().unwrap();
    let emb = tmp.path().join("rows.safetensors");
    write_store(&emb, (0..50_000).map(|i| format!("r{i}")), 32);
    let sae = tmp.path().join("sae.safetensors");
    save_sae(&sae, 32, 64, 4);
    let out = tmp.path().join("reconstructed.safetensors");
    let args = [
        "sae",
        "reconstruct",
        "--sae",
        p(&sae),
        "--embeddings",
        p(&emb),
        "--out",
        p(&out),
    ];
    kill_sweep(
        "sae reconstruct (embeddings store writer)",
        &args,
        10,
        || {
            let store = EmbeddingsStore::open(&out).map_err(|e| e.to_string())?;
            (store.rows() == 50_000)
                .then_some(())
                .ok_or_else(|| format!("{} rows", store.rows()))
        },
    );
    common::cli(&args);
    let left = temp_files(tmp.path());
    assert!(
        left.is_empty(),
        "temporary files left after a clean run: {left:?}"
    );
}

#[test]
fn kill_9_during_run_leaves_a_complete_report_and_a_cache_that_reruns_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset();
    let dataset_ = BeirDataset::open(&data).unwrap();
    let docs: Vec<String> = dataset_.corpus().unwrap().map(|d| d.unwrap().id).collect();
    let queries: Vec<String> = dataset_
        .queries()
        .unwrap()
        .into_iter()
        .map(|q| q.id)
        .collect();
    let (corpus, query_emb) = (
        tmp.path().join("c.safetensors"),
        tmp.path().join("q.safetensors"),
    );
    write_store(&corpus, docs, 24);
    write_store(&query_emb, queries, 24);
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"sae": {"d_sae": 64, "k": 4, "epochs": 20, "batch_size": 64},
            "inference": {"doc_k": 8, "query_k": 4}, "depth": 20}"#,
    )
    .unwrap();
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("report"));
    let args = [
        "run",
        "--dataset",
        p(&data),
        "--corpus-emb",
        p(&corpus),
        "--query-emb",
        p(&query_emb),
        "--representation",
        "pooled",
        "--config",
        p(&config),
        "--cache",
        p(&cache),
        "--out",
        p(&out),
        "--quiet",
    ];
    let rows = || -> Result<serde_json::Value, String> {
        let bytes = std::fs::read(out.join("results.json")).map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(json["rows"].clone())
    };
    let first = std::cell::RefCell::new(None);
    // Every other kill starts from an empty cache, so kills land in every stage; the
    // others start from what the previous kill left.
    let clear = |i: usize| {
        if i.is_multiple_of(2) {
            let _ = std::fs::remove_dir_all(&cache);
        }
    };
    kill_sweep_with("run (report + cache)", &args, 12, clear, || {
        let now = rows()?;
        let mut first = first.borrow_mut();
        match &*first {
            None => *first = Some(now),
            Some(f) if *f == now => {}
            Some(_) => return Err("the report's rows changed after a kill".into()),
        }
        Ok(())
    });
    // A clean run over whatever the kills left in the cache gives the same numbers.
    common::cli(&args);
    assert_eq!(Some(rows().unwrap()), first.into_inner());
}

/// Runs `latent-terms ARGS`, asserts that it fails, and returns its stderr.
fn cli_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "latent-terms {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bm25_refuses_an_empty_corpus_and_a_split_without_judged_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    std::fs::create_dir_all(data.join("qrels")).unwrap();
    std::fs::copy(dataset().join("queries.jsonl"), data.join("queries.jsonl")).unwrap();
    let run = tmp.path().join("r.run");
    // Judgments for queries the collection does not have.
    std::fs::write(
        data.join("corpus.jsonl"),
        "{\"_id\": \"d1\", \"text\": \"quokkas\"}\n",
    )
    .unwrap();
    std::fs::write(
        data.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nnope\td1\t1\n",
    )
    .unwrap();
    let err = cli_fails(&["bm25", "--dataset", p(&data), "--run", p(&run)]);
    assert!(err.contains("no query"), "{err}");
    // No documents at all.
    std::fs::write(data.join("corpus.jsonl"), "").unwrap();
    std::fs::write(
        data.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nquery_0\td1\t1\n",
    )
    .unwrap();
    let err = cli_fails(&["bm25", "--dataset", p(&data), "--run", p(&run)]);
    assert!(
        err.contains("no documents") || err.contains("empty"),
        "{err}"
    );
    assert!(!run.exists(), "no run is written");
}

#[test]
fn dense_refuses_an_empty_store_and_reconstruct_a_wrong_dimension() {
    let tmp = tempfile::tempdir().unwrap();
    let (empty, queries) = (
        tmp.path().join("e.safetensors"),
        tmp.path().join("q.safetensors"),
    );
    write_store(&empty, Vec::<String>::new(), 16);
    write_store(&queries, ["q1".to_string()], 16);
    let run = tmp.path().join("d.run");
    let err = cli_fails(&[
        "dense",
        "--corpus-emb",
        p(&empty),
        "--query-emb",
        p(&queries),
        "--run",
        p(&run),
    ]);
    assert!(err.contains("no rows"), "{err}");
    // An SAE of d_in 8 on 16-d rows: once read as twice as many 8-d rows.
    let sae = tmp.path().join("sae8.safetensors");
    save_sae(&sae, 8, 16, 2);
    let out = tmp.path().join("r.safetensors");
    let err = cli_fails(&[
        "sae",
        "reconstruct",
        "--sae",
        p(&sae),
        "--embeddings",
        p(&queries),
        "--out",
        p(&out),
    ]);
    assert!(err.contains("dimension"), "{err}");
    assert!(!out.exists());
}

#[test]
fn run_checks_the_query_store_and_a_given_sae_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset();
    let ds = BeirDataset::open(&data).unwrap();
    let docs: Vec<String> = ds.corpus().unwrap().map(|d| d.unwrap().id).collect();
    let queries: Vec<String> = ds.queries().unwrap().into_iter().map(|q| q.id).collect();
    let (corpus, query_emb) = (
        tmp.path().join("c.safetensors"),
        tmp.path().join("q.safetensors"),
    );
    write_store(&corpus, docs, 16);
    // The last query left out: it is a test query.
    write_store(&query_emb, queries[..queries.len() - 1].to_vec(), 16);
    let cache = tmp.path().join("cache");
    let base = |q: &Path| {
        vec![
            "run".to_string(),
            "--dataset".into(),
            p(&data).into(),
            "--corpus-emb".into(),
            p(&corpus).into(),
            "--query-emb".into(),
            p(q).into(),
            "--representation".into(),
            "pooled".into(),
            "--cache".into(),
            p(&cache).into(),
            "--out".into(),
            p(&tmp.path().join("out")).into(),
            "--quiet".into(),
        ]
    };
    let args = base(&query_emb);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = cli_fails(&args);
    assert!(err.contains("missing"), "{err}");
    let trained = std::fs::read_dir(&cache)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("sae-"))
        })
        .unwrap_or(false);
    assert!(!trained, "an SAE was trained before the check");
    // A given SAE for 8-d rows on 16-d stores.
    let full_queries = tmp.path().join("q-all.safetensors");
    write_store(&full_queries, queries, 16);
    let sae = tmp.path().join("sae8.safetensors");
    save_sae(&sae, 8, 16, 2);
    let mut args = base(&full_queries);
    args.extend(["--sae".to_string(), p(&sae).to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = cli_fails(&args);
    assert!(err.contains("8-dimensional"), "{err}");
    // An unknown training backend is refused before any work.
    let mut args = base(&full_queries);
    args.extend(["--backend".to_string(), "tpu".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = cli_fails(&args);
    assert!(err.contains("tpu"), "{err}");
}

#[test]
fn resuming_a_finished_training_run_keeps_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let emb = tmp.path().join("rows.safetensors");
    write_store(&emb, (0..512).map(|i| format!("r{i}")), 8);
    let ckpt = tmp.path().join("sae.safetensors");
    let args = train_args(&emb, &ckpt, [16, 2, 2, 128, 1]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::cli(&args);
    let log = tmp.path().join("sae.log.json");
    let before = std::fs::read(&log).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    common::cli(&resume);
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "the log of the steps run is kept"
    );
}
