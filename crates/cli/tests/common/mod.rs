//! Helpers shared by the CLI's end-to-end tests.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// LIMIT-small as shipped in examples/data.
pub(crate) fn dataset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/limit-small")
}

/// Runs `latent-terms ARGS`, asserts success and returns its stdout.
pub(crate) fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "latent-terms {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A path as a command-line argument.
pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// An embeddings store of deterministic pseudo-random rows, one per id.
#[allow(dead_code)] // not every test binary writes stores
pub(crate) fn write_store(path: &Path, ids: impl IntoIterator<Item = String>, dim: usize) {
    use latent_terms::encoders::{Pooling, StoreDtype, StoreMetadata, StoreWriter};
    let meta = StoreMetadata {
        model: "random".into(),
        pooling: Pooling::Mean,
        normalized: false,
        dim,
        prefix: String::new(),
    };
    let mut writer = StoreWriter::create(path, meta, StoreDtype::F32).unwrap();
    for (i, id) in ids.into_iter().enumerate() {
        let row: Vec<f32> = (0..dim)
            .map(|j| ((i * 31 + j * 17) as f32 * 0.618).sin())
            .collect();
        writer.append_row(&id, &row).unwrap();
    }
    writer.finish().unwrap();
}

/// Saves a TopK SAE of `d_in` inputs, `d_sae` latents and `k`, with fixed weights.
#[allow(dead_code)]
pub(crate) fn save_sae(path: &Path, d_in: usize, d_sae: usize, k: usize) {
    use latent_terms::sae::{SaeConfig, SaeKind, SaeWeights};
    SaeWeights {
        config: SaeConfig::new(SaeKind::TopK, d_in, d_sae, k).unwrap(),
        w_enc: (0..d_in * d_sae).map(|i| (i as f32 * 0.37).sin()).collect(),
        b_enc: vec![0.0; d_sae],
        w_dec: (0..d_sae * d_in)
            .map(|i| (i as f32 * 0.11).cos() / 8.0)
            .collect(),
        b_dec: vec![0.0; d_in],
    }
    .save(path)
    .unwrap();
}
