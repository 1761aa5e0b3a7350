//! Arbitrary bytes into `read_weighted_queries`, both for a latent index (term names
//! `l<id>`) and for a lexical one (a vocabulary and the English analyzer): any input must
//! give queries or a typed error, never a panic; every query read has finite,
//! non-negative weights and no term twice.
#![no_main]

use std::sync::OnceLock;

use latent_terms_sparse_index::export::{TermNames, read_weighted_queries};
use latent_terms_sparse_index::{Analyzer, Vocabulary};

/// Built once: a vocabulary (one entry that looks like a latent name) and its analyzer.
fn lexical() -> &'static (Vocabulary, Analyzer) {
    static LEXICAL: OnceLock<(Vocabulary, Analyzer)> = OnceLock::new();
    LEXICAL.get_or_init(|| {
        let vocab = Vocabulary::from_terms(["cat", "dog", "l1"]).expect("unique terms");
        (vocab, Analyzer::english())
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = |queries: Vec<latent_terms_sparse_index::export::WeightedQuery>| {
        for q in queries {
            let terms: Vec<(u32, f32)> = q.query.iter().collect();
            for w in terms.windows(2) {
                assert!(w[0].0 < w[1].0, "terms sorted and unique: {terms:?}");
            }
            for (_, weight) in terms {
                assert!(weight.is_finite() && weight >= 0.0, "weight {weight}");
            }
        }
    };
    if let Ok(queries) = read_weighted_queries(data, TermNames::Latent, None) {
        check(queries);
    }
    let (vocab, analyzer) = lexical();
    if let Ok(queries) = read_weighted_queries(data, TermNames::Vocabulary(vocab), Some(analyzer)) {
        check(queries);
    }
});
