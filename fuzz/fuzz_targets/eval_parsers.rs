//! Feeds arbitrary bytes to every eval parser: TREC qrels, TREC runs, BEIR
//! qrels TSV and BEIR JSON lines. Any input must give Ok or a typed error.
#![no_main]

use latent_terms_eval::beir::{self, Document, JsonLines, Query};
use latent_terms_eval::{Evaluator, Qrels, Run};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let qrels = Qrels::from_reader(data, "fuzz.qrels");
    let run = Run::from_reader(data, "fuzz.run");
    let _ = beir::read_qrels_tsv(data, "fuzz.tsv");
    for doc in JsonLines::<Document>::from_reader(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz.jsonl") {
        let _ = doc;
    }
    for q in JsonLines::<Query>::from_reader(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz.jsonl") {
        let _ = q;
    }
    // A run and qrels that parse must also evaluate without panicking.
    if let (Ok(qrels), Ok(run)) = (qrels, run) {
        let ev = Evaluator::from_names(&["all_trec"]).expect("all_trec is supported");
        let _ = ev.clone().evaluate(&qrels, &run);
        let _ = ev.max_docs_per_query(3).average_complete(true).relevance_level(2).evaluate(&qrels, &run);
    }
});
