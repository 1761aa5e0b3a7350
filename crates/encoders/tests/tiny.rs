//! Pipeline tests on a tiny random BERT (tests/fixtures/tiny-bert, written by
//! scripts/make_tiny_bert.py): need only the ONNX Runtime library.

#![allow(clippy::unwrap_used)]

mod common;

use common::{max_abs_diff, ort_library, tiny_bert_dir};
use latent_terms_encoders::{Encoder, Error, Pooling, SpecialTokens, TextKind};

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

#[test]
fn token_output_policies_prefixes_and_errors() {
    let Some(lib) = ort_library("token_output_policies_prefixes_and_errors") else {
        return;
    };
    let drop = builder(&lib)
        .pooling(Pooling::Mean)
        .batch_size(2)
        .query_prefix("query: ")
        .build()
        .unwrap();
    let keep = builder(&lib)
        .pooling(Pooling::Mean)
        .batch_size(2)
        .query_prefix("query: ")
        .special_tokens(SpecialTokens::Keep)
        .build()
        .unwrap();
    let items = [("a", "dense retrieval"), ("b", ""), ("c", "the model")];
    let d = drop.encode_tokens(TextKind::Query, &items).unwrap();
    let k = keep.encode_tokens(TextKind::Query, &items).unwrap();
    for ((t, kt), (id, text)) in d.iter().zip(&k).zip(items) {
        assert_eq!((t.id.as_str(), kt.id.as_str()), (id, id));
        assert_eq!(t.dim, 8);
        assert_eq!(
            kt.token_ids,
            keep.token_ids(TextKind::Query, text).unwrap(),
            "Keep returns every token the model sees"
        );
        // Drop keeps only tokens whose offsets lie in the text itself.
        for &(s, e) in &t.offsets {
            assert!(s < e && e as usize <= text.len());
        }
        assert!(t.len() < kt.len());
    }
    assert!(d[1].is_empty(), "empty text, prefix and specials dropped");
    // Keep: prefix and special tokens have (0, 0) offsets; content rows are equal.
    let content: Vec<usize> = (0..k[0].len())
        .filter(|&i| k[0].offsets[i] != (0, 0))
        .collect();
    assert_eq!(content.len(), d[0].len());
    for (j, &i) in content.iter().enumerate() {
        assert_eq!(k[0].token_ids[i], d[0].token_ids[j]);
        assert!(max_abs_diff(k[0].row(i), d[0].row(j)) < 1e-6);
    }
    let e = builder(&lib)
        .onnx_file(tiny_bert_dir().join("model-nan.onnx"))
        .pooling(Pooling::Mean)
        .build()
        .unwrap();
    let err = e
        .encode_tokens(TextKind::Passage, &[("x", "dense retrieval")])
        .unwrap_err();
    assert!(matches!(err, Error::NonFinite { row: 0, .. }), "{err}");
}

#[test]
fn one_pass_gives_the_pooled_and_the_token_output_of_two() {
    let Some(lib) = ort_library("one_pass_gives_the_pooled_and_the_token_output_of_two") else {
        return;
    };
    let e = builder(&lib).pooling(Pooling::Mean).build().unwrap();
    let items = [
        ("a", "dense retrieval of a passage"),
        ("b", "the query"),
        ("c", ""),
    ];
    let (pooled, tokens) = e.encode_with_tokens(TextKind::Passage, &items).unwrap();
    let alone = e.encode(TextKind::Passage, &items).unwrap();
    assert_eq!(pooled.ids(), alone.ids());
    assert!(max_abs_diff(pooled.data(), alone.data()) < 1e-6);
    let tokens_alone = e.encode_tokens(TextKind::Passage, &items).unwrap();
    assert_eq!(tokens, tokens_alone);
    assert!(
        tokens[2].is_empty(),
        "the empty text keeps no content token"
    );
}
