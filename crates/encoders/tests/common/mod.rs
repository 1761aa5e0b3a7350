//! Shared helpers of the integration tests: locating the assets of `scripts/setup-assets`.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The assets directory: `$LATENT_TERMS_ASSETS`, else `assets/` at the workspace root.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("LATENT_TERMS_ASSETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"),
    }
}

/// The all-MiniLM-L6-v2 directory, or `None` (with a message) when the assets or the
/// ONNX Runtime library are missing, so the test can skip.
pub fn minilm_dir(test: &str) -> Option<PathBuf> {
    let assets = assets_dir();
    let model = assets.join("models").join("all-MiniLM-L6-v2");
    let lib = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => assets.join("onnxruntime").join("libonnxruntime.so"),
    };
    if !model.join("model.onnx").is_file() || !model.join("tokenizer.json").is_file() {
        latent_terms_io::missing_asset(&format!(
            "skipping {test}: no model in {} (run scripts/setup-assets)",
            model.display()
        ));
        return None;
    }
    if !lib.is_file() {
        latent_terms_io::missing_asset(&format!(
            "skipping {test}: no ONNX Runtime library at {} (run scripts/setup-assets or set ORT_DYLIB_PATH)",
            lib.display()
        ));
        return None;
    }
    Some(model)
}

/// Cosine of two rows.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    d / (na * nb)
}

/// Largest absolute elementwise difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The ONNX Runtime library (`ORT_DYLIB_PATH`, else the assets), or `None` with a
/// message so the test can skip.
pub fn ort_library(test: &str) -> Option<PathBuf> {
    let lib = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => assets_dir().join("onnxruntime").join("libonnxruntime.so"),
    };
    if lib.is_file() {
        Some(lib)
    } else {
        latent_terms_io::missing_asset(&format!(
            "skipping {test}: no ONNX Runtime library at {} (run scripts/setup-assets or set ORT_DYLIB_PATH)",
            lib.display()
        ));
        None
    }
}

/// The tiny random BERT fixture written by scripts/make_tiny_bert.py.
pub fn tiny_bert_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert")
}
