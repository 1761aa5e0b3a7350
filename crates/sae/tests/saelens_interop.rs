//! SAELens interop against SAELens itself (a tier you run yourself: it needs the 5 GB
//! venv of `scripts/setup-saelens`, which CI does not install).
//!
//! ```sh
//! scripts/setup-saelens
//! cargo test --workspace --locked --test saelens_interop -- --ignored --nocapture
//! ```
//!
//! Both ways, with encode outputs compared densely to 1e-5:
//! * our SAEs (TopK with an input scale, BatchTopK with a stored threshold, and any
//!   checkpoint named by `LT_SAELENS_SAE`) saved with [`SaeWeights::save_saelens`] and
//!   loaded by SAELens' `SAE.load_from_disk`;
//! * SAEs that SAELens built and saved (`topk` with and without
//!   `rescale_acts_by_decoder_norm`, `apply_b_dec_to_input = false`, `jumprelu` with
//!   per-latent thresholds, `standard`) loaded by [`SaeEncoder::load`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use latent_terms_sae::{EncodeOptions, SaeConfig, SaeEncoder, SaeKind, SaeWeights, SparseCode};
use safetensors::tensor::{Dtype, TensorView};

const N: usize = 256;
const D: usize = 384;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, or a panic saying how to make it (this test only runs when asked).
fn python() -> PathBuf {
    let python = repo().join("assets/.venv-saelens/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-saelens first",
        python.display()
    );
    python
}

fn run_python(args: &[&str]) {
    let out = Command::new(python())
        .arg(repo().join("scripts/saelens_roundtrip.py"))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "saelens_roundtrip.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Deterministic rows like a retriever's: unit vectors with a shared offset.
fn inputs(d: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).max(1);
    let mut rows = Vec::with_capacity(N * d);
    for _ in 0..N {
        let row: Vec<f32> = (0..d)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5 + 0.2 * ((i % 7) as f32 / 7.0)
            })
            .collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        rows.extend(row.iter().map(|v| v / norm));
    }
    rows
}

fn write_tensor(path: &Path, name: &str, data: &[f32], shape: [usize; 2]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape.to_vec(), &bytes).unwrap();
    let serialized = safetensors::serialize([(name, view)], None).unwrap();
    std::fs::write(path, serialized).unwrap();
}

fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32);
    let values = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

fn dense(codes: &[SparseCode], m: usize) -> Vec<f32> {
    let mut out = vec![0.0; codes.len() * m];
    for (r, code) in codes.iter().enumerate() {
        code.iter().for_each(|(i, v)| out[r * m + i as usize] = v);
    }
    out
}

/// Asserts equal activations to 1e-5 and returns (max difference, active count).
fn compare(ours: &[f32], theirs: &[f32], what: &str) -> (f32, usize) {
    assert_eq!(ours.len(), theirs.len(), "{what}: shapes differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let diff = (a - b).abs();
        if diff > worst.0 {
            worst = (diff, i);
        }
    }
    assert!(
        worst.0 <= 1e-5,
        "{what}: activation {} differs by {} (ours {}, SAELens {})",
        worst.1,
        worst.0,
        ours[worst.1],
        theirs[worst.1]
    );
    (worst.0, ours.iter().filter(|v| **v != 0.0).count())
}

fn default_options(sae: &SaeEncoder) -> EncodeOptions {
    let c = &sae.weights().config;
    if c.threshold.is_some() || c.latent_thresholds.is_some() {
        EncodeOptions::stored_threshold(None)
    } else {
        EncodeOptions::top_k(c.k)
    }
}

fn random_sae(kind: SaeKind, d: usize, m: usize, k: usize, seed: u64) -> SaeWeights {
    let rows = inputs(d, seed);
    let take = |n: usize, scale: f32, from: usize| -> Vec<f32> {
        (0..n)
            .map(|i| rows[(from + i * 31) % rows.len()] * scale)
            .collect()
    };
    SaeWeights {
        config: SaeConfig::new(kind, d, m, k).unwrap(),
        w_enc: take(d * m, 3.0, 0),
        b_enc: take(m, 0.1, 7),
        w_dec: take(d * m, 1.0, 13),
        b_dec: take(d, 0.1, 3),
    }
}

/// Our SAE saved in SAELens' layout, encoded by SAELens and by us.
fn ours_through_saelens(name: &str, weights: SaeWeights, dir: &Path) {
    let d = weights.config.d_in;
    let m = weights.config.d_sae;
    let sae_dir = dir.join(name);
    weights.save_saelens(&sae_dir).unwrap();
    let x = inputs(d, 11);
    let (inputs_path, acts_path) = (
        dir.join(format!("{name}.x")),
        dir.join(format!("{name}.acts")),
    );
    write_tensor(&inputs_path, "x", &x, [N, d]);
    run_python(&[
        "encode",
        sae_dir.to_str().unwrap(),
        inputs_path.to_str().unwrap(),
        acts_path.to_str().unwrap(),
    ]);
    let (shape, theirs) = read_tensor(&acts_path, "acts");
    assert_eq!(shape, [N, m]);
    let sae = SaeEncoder::new(weights).unwrap();
    let ours = dense(&sae.encode(&x, &default_options(&sae)).unwrap(), m);
    let (diff, active) = compare(&ours, &theirs, name);
    eprintln!(
        "ours → SAELens, {name}: {N} rows × {m} latents, {active} active, max |Δ| {diff:.2e}"
    );
}

#[test]
#[ignore = "needs the SAELens venv of scripts/setup-saelens; run with --ignored"]
fn our_saes_load_in_saelens() {
    let dir = tempfile::tempdir().unwrap();
    let mut topk = random_sae(SaeKind::TopK, D, 2048, 32, 1);
    topk.config.set_input_scale(Some(4.4));
    ours_through_saelens("topk-scaled", topk, dir.path());
    let mut batchtopk = random_sae(SaeKind::BatchTopK, D, 2048, 32, 2);
    batchtopk.config.threshold = Some(0.5);
    ours_through_saelens("batchtopk-threshold", batchtopk, dir.path());
    if let Some(path) = std::env::var_os("LT_SAELENS_SAE") {
        let weights = SaeWeights::load(&path).unwrap();
        eprintln!("LT_SAELENS_SAE = {}", Path::new(&path).display());
        ours_through_saelens("given", weights, dir.path());
    }
}

#[test]
#[ignore = "needs the SAELens venv of scripts/setup-saelens; run with --ignored"]
fn saelens_saes_load_in_ours() {
    let dir = tempfile::tempdir().unwrap();
    let x = inputs(D, 5);
    let inputs_path = dir.path().join("x.safetensors");
    write_tensor(&inputs_path, "x", &x, [N, D]);
    let cases: [(&str, &str, &[&str]); 5] = [
        ("topk", "topk", &[]),
        ("topk-rescaled", "topk", &["--rescale-by-decoder-norm"]),
        ("topk-no-b-dec-to-input", "topk", &["--no-b-dec-to-input"]),
        ("jumprelu", "jumprelu", &[]),
        ("standard", "standard", &[]),
    ];
    for (name, arch, flags) in cases {
        let sae_dir = dir.path().join(name);
        let acts_path = dir.path().join(format!("{name}.acts"));
        let mut args = vec![
            "make",
            arch,
            sae_dir.to_str().unwrap(),
            inputs_path.to_str().unwrap(),
            acts_path.to_str().unwrap(),
            "--seed",
            "3",
        ];
        args.extend_from_slice(flags);
        run_python(&args);
        let sae = SaeEncoder::load(&sae_dir).unwrap();
        let m = sae.d_sae();
        let (shape, theirs) = read_tensor(&acts_path, "acts");
        assert_eq!(shape, [N, m]);
        let ours = dense(&sae.encode(&x, &default_options(&sae)).unwrap(), m);
        let (diff, active) = compare(&ours, &theirs, name);
        let kind = sae.weights().config.kind.as_str();
        eprintln!(
            "SAELens → ours, {name} (read as {kind}): {N} rows × {m} latents, {active} active, max |Δ| {diff:.2e}"
        );
    }
}
