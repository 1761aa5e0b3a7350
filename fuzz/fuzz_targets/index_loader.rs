//! Arbitrary bytes into the index loader: it must return an error or an index, never
//! panic or read out of bounds, and a loaded index must survive queries.
#![no_main]

use latent_terms_sparse_index::{
    ApproximateOptions, Bm25, ClSr, DotProduct, Index, LoadOptions, Query, SearchOptions,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Checksums off lets the fuzzer reach the structural validation behind them.
    for verify_checksums in [false, true] {
        let options = LoadOptions::default().verify_checksums(verify_checksums);
        let Ok(index) = Index::from_bytes_with(data.to_vec(), &options) else {
            continue;
        };
        let terms: Vec<(u32, f32)> = data
            .chunks(5)
            .take(8)
            .map(|c| (u32::from(c[0]) % 64, 0.25 + f32::from(c.len() as u8)))
            .collect();
        let Ok(query) = Query::new(terms) else {
            continue;
        };
        let options = SearchOptions::default();
        let _ = index.search(&query, &Bm25::default(), 10, &options);
        let _ = index.search_exhaustive(&query, &ClSr::default(), 10, &options);
        let _ = index.search(&query, &DotProduct, 3, &options);
        // The per-scorer searcher reads codes, u16 doc ids and packed weights in place.
        if let Ok(searcher) = index.searcher(Bm25::default()) {
            let _ = searcher.search(&query, 10, &options);
            let _ =
                searcher.search_approximate(&query, 3, &options, &ApproximateOptions { cut: 2.0 });
        }
        for doc in 0..index.max_doc().min(16) {
            let _ = index.explain(&query, &Bm25::default(), doc);
            let _ = index.external_id(doc);
        }
        let _ = index.statistics();
        let _ = index.to_bytes();
    }
});
