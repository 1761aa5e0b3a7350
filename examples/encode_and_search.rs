//! Encode texts with a dense retriever, search them densely, then as latent terms.
//!
//! Needs the model assets from `scripts/setup-assets` and, for the latent-term half, a
//! trained SAE (`latent-terms sae train ... --out sae.safetensors`). Run with
//! `cargo run -p latent-terms-examples --example encode_and_search [MODEL_DIR] [SAE]`.

use std::error::Error;
use std::path::PathBuf;

use latent_terms::encoders::{Encoder, SearchOptions, TextKind, search};
use latent_terms::pipeline::LatentIndex;
use latent_terms::sae::{EncodeOptions, SaeEncoder};
use latent_terms::sparse_index::ClSr;

const DOCS: [(&str, &str); 4] = [
    (
        "scurvy",
        "Vitamin C deficiency causes scurvy, with bleeding gums and fatigue.",
    ),
    (
        "rickets",
        "Rickets is a softening of the bones in children, caused by a lack of vitamin D.",
    ),
    (
        "eiffel",
        "The Eiffel Tower was built in Paris for the 1889 World's Fair.",
    ),
    (
        "otters",
        "Sea otters use stones as tools to open shellfish.",
    ),
];
const QUERY: &str = "which vitamin prevents bleeding gums";

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "assets/models/all-MiniLM-L6-v2".into()),
    );
    if !model.is_dir() {
        println!(
            "skipped: no model at {} (run scripts/setup-assets first)",
            model.display()
        );
        return Ok(());
    }
    let encoder = Encoder::builder(&model).batch_size(8).build()?;

    // Dense: one vector per text, exact cosine search.
    let docs = encoder.encode(TextKind::Passage, &DOCS)?;
    let query = encoder.encode_queries(&[QUERY])?;
    let hits = search(&query, &docs, &SearchOptions::top(3))?;
    println!("query: {QUERY}\ndense top 3:");
    for (id, score) in &hits[0] {
        println!("  {id:<8} {score:.4}");
    }

    // Latent terms: the SAE turns each vector into a few weighted latents; an inverted
    // index over them is scored with CL-SR, and every match explains itself.
    let Some(sae) = args.next() else {
        println!("(pass a trained SAE as the second argument to search by latent terms)");
        return Ok(());
    };
    let sae = SaeEncoder::load(&sae)?;
    let options = EncodeOptions::top_k(64);
    let doc_codes = sae.encode(docs.data(), &options)?;
    let query_code = sae.encode(query.data(), &options)?.remove(0);
    let index = LatentIndex::build(docs.ids(), &doc_codes, None)?;
    let latent_query = LatentIndex::query(&query_code, None)?;
    let scorer = ClSr::default();
    println!("latent terms (CL-SR) top 3:");
    for (id, score) in index.search(&latent_query, &scorer, 3)? {
        println!("  {id:<8} {score:.4}");
    }
    if let Some(top) = index.index().doc_id(DOCS[0].0) {
        let why = index.index().explain(&latent_query, &scorer, top)?;
        println!(
            "why {} matches (shared latents and their contributions):\n{why}",
            DOCS[0].0
        );
    }
    Ok(())
}
