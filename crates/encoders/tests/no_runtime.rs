//! Without an ONNX Runtime library the encoder returns a typed error telling how to
//! get one, instead of panicking (ort's default on a failed dlopen). Runs in its own
//! process, so no other test has loaded a library yet.

#![allow(clippy::unwrap_used)]

mod common;

use latent_terms_encoders::{Encoder, Error, Pooling};

#[test]
fn missing_onnx_runtime_is_a_typed_error() {
    if std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty()) {
        eprintln!("skipping missing_onnx_runtime_is_a_typed_error: ORT_DYLIB_PATH is set");
        return;
    }
    // The tiny fixture is not in the assets layout, so no library is found next to it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in ["tokenizer.json", "config.json", "model.onnx"] {
        std::fs::copy(common::tiny_bert_dir().join(f), dir.join(f)).unwrap();
    }
    match Encoder::builder(&dir).pooling(Pooling::Mean).build() {
        Err(err @ Error::OrtLibraryNotFound { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains("scripts/setup-assets"), "{msg}");
            assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
        }
        Ok(_) => eprintln!(
            "skipping missing_onnx_runtime_is_a_typed_error: a system libonnxruntime.so was found"
        ),
        Err(other) => panic!("expected OrtLibraryNotFound, got {other}"),
    }
}
