//! Pipeline tests on a tiny random BERT (tests/fixtures/tiny-bert, written by
//! scripts/make_tiny_bert.py): need only the ONNX Runtime library.

#![allow(clippy::unwrap_used)]

mod common;

use common::{max_abs_diff, ort_library, tiny_bert_dir};
use latent_terms_encoders::{Encoder, Error, Pooling, TextKind};

fn builder(lib: &std::path::Path) -> latent_terms_encoders::EncoderBuilder {
    Encoder::builder(tiny_bert_dir())
        .ort_library(lib)
        .intra_threads(1)
}

#[test]
fn graph_without_token_type_ids() {
    let Some(lib) = ort_library("graph_without_token_type_ids") else {
        return;
    };
    let e = builder(&lib).pooling(Pooling::Mean).build().unwrap();
    assert_eq!(e.info().inputs, ["input_ids", "attention_mask"]);
    assert_eq!(e.dim(), 8, "dimension from the graph's output shape");
    assert!(!e.info().normalize, "no modules.json: no normalisation");
    assert_eq!(
        e.info().max_length,
        32,
        "max_position_embeddings of config.json"
    );
    let out = e
        .encode_passages(&["dense retrieval", "the sparse model is a vector", ""])
        .unwrap();
    assert_eq!((out.rows(), out.dim()), (3, 8));
    assert!(out.data().iter().all(|x| x.is_finite()));
}

#[test]
fn pooling_modes_differ_and_normalisation_gives_unit_rows() {
    let Some(lib) = ort_library("pooling_modes_differ_and_normalisation_gives_unit_rows") else {
        return;
    };
    let texts = ["dense retrieval of a passage", "the query"];
    let mut results = Vec::new();
    for pooling in [Pooling::Cls, Pooling::Mean, Pooling::LastToken] {
        let e = builder(&lib)
            .pooling(pooling)
            .normalize(true)
            .build()
            .unwrap();
        let out = e.encode_passages(&texts).unwrap();
        for (_, row) in out.iter() {
            let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5);
        }
        results.push(out);
    }
    assert!(max_abs_diff(results[0].data(), results[1].data()) > 1e-3);
    assert!(max_abs_diff(results[1].data(), results[2].data()) > 1e-3);
    // Last-token pooling of a padded row equals its unpadded encoding alone.
    let e = builder(&lib).pooling(Pooling::LastToken).build().unwrap();
    let together = e.encode_passages(&texts).unwrap();
    let alone = e.encode_passages(&texts[1..]).unwrap();
    assert!(max_abs_diff(together.row(1).unwrap(), alone.row(0).unwrap()) < 1e-5);
}

#[test]
fn truncation_to_max_length() {
    let Some(lib) = ort_library("truncation_to_max_length") else {
        return;
    };
    let e = builder(&lib)
        .pooling(Pooling::Mean)
        .max_length(8)
        .build()
        .unwrap();
    let long = "dense sparse retrieval query passage vector model the a of and to in";
    assert_eq!(e.token_ids(TextKind::Passage, long).unwrap().len(), 8);
    let out = e.encode_passages(&[long]).unwrap();
    assert_eq!(out.rows(), 1);
    let err = builder(&lib)
        .pooling(Pooling::Mean)
        .max_length(33)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn non_finite_output_is_an_error() {
    let Some(lib) = ort_library("non_finite_output_is_an_error") else {
        return;
    };
    let e = builder(&lib)
        .onnx_file(tiny_bert_dir().join("model-nan.onnx"))
        .pooling(Pooling::Mean)
        .build()
        .unwrap();
    let err = e.encode_passages(&["dense retrieval"]).unwrap_err();
    assert!(matches!(err, Error::NonFinite { row: 0, .. }), "{err}");
}

#[test]
fn missing_onnx_file_is_a_typed_error() {
    let Some(lib) = ort_library("missing_onnx_file_is_a_typed_error") else {
        return;
    };
    let err = builder(&lib)
        .onnx_file(tiny_bert_dir().join("nope.onnx"))
        .pooling(Pooling::Mean)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::MissingModelFile { .. }), "{err}");
}

#[test]
fn concurrent_callers_share_one_encoder() {
    let Some(lib) = ort_library("concurrent_callers_share_one_encoder") else {
        return;
    };
    let e = builder(&lib).pooling(Pooling::Mean).build().unwrap();
    let want = e
        .encode_passages(&["dense retrieval", "the model"])
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let got = e
                    .encode_passages(&["dense retrieval", "the model"])
                    .unwrap();
                assert!(max_abs_diff(got.data(), want.data()) < 1e-6);
            });
        }
    });
    assert_eq!(e.stats().texts, 10);
}
