//! Arbitrary bytes into the CIFF reader and importer: they must return an error or an
//! index, never panic or allocate by what a header claims; an imported index must survive
//! queries and export back to CIFF bytes that read again as the same index.
#![no_main]

use latent_terms_sparse_index::export::{TermNames, ciff_to_index, index_to_ciff, read_ciff};
use latent_terms_sparse_index::{Bm25, DotProduct, Query, SearchOptions};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(file) = read_ciff(data) else {
        return;
    };
    let Ok(index) = ciff_to_index(&file) else {
        return;
    };
    let terms: Vec<(u32, f32)> = index.term_ids().into_iter().take(8).map(|t| (t, 1.0)).collect();
    if let Ok(query) = Query::new(terms) {
        let _ = index.search(&query, &Bm25::default(), 10, &SearchOptions::default());
    }
    let names = TermNames::for_index(&index);
    for t in index.term_ids().into_iter().take(4) {
        let _ = names.name(t);
    }
    // Whatever imports exports again (unless a document length overflows CIFF's int32),
    // and the export reads back with the same postings per term name.
    let Ok((again, _)) = index_to_ciff(&index, &DotProduct, None, "fuzz") else {
        return;
    };
    let back = ciff_to_index(&read_ciff(again.to_bytes().as_slice()).expect("our export reads"))
        .expect("our export imports");
    let back_names = TermNames::for_index(&back);
    for t in index.term_ids() {
        let name = names.name(t).expect("named");
        let bt = back_names.id(&name).expect("term kept");
        assert_eq!(index.postings(t).ok(), back.postings(bt).ok(), "term {name:?}");
    }
});
