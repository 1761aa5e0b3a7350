//! Arbitrary bytes into the readers of what a run or a user leaves beside a report:
//! `results.json` (`Report`), latent cards (`CardSet`) and imported latent descriptions
//! (`Descriptions::from_json`). An error or a value, never a panic; a value serializes and
//! parses back.
#![no_main]

use latent_terms::interpret::cards::CardSet;
use latent_terms::interpret::describe::Descriptions;
use latent_terms::pipeline::Report;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(report) = serde_json::from_str::<Report>(text) {
        let json = serde_json::to_string(&report).expect("a report serializes");
        serde_json::from_str::<Report>(&json).expect("a serialized report parses");
    }
    if let Ok(cards) = serde_json::from_str::<CardSet>(text) {
        let json = serde_json::to_string(&cards).expect("cards serialize");
        serde_json::from_str::<CardSet>(&json).expect("serialized cards parse");
    }
    let _ = Descriptions::from_json(text);
});
