//! Build a sparse index, save it, open it again and query it with BM25 and CL-SR.
//!
//! Two indexes: one over "latent terms" (sparse-autoencoder activations, here made up by
//! hand) and one over plain text through the English analyzer. Run with
//! `cargo run -p latent-terms-examples --example index_and_query`.

use std::error::Error;

use latent_terms::sparse_index::{
    Analyzer, Bm25, Bm25Params, ClSr, Index, IndexBuilder, IndexConfig, Query, SearchOptions,
    SparseVector, TermFrequency, Vocabulary, WeightEncoding,
};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("latent-terms-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir);
    std::fs::remove_dir_all(&dir)?;
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    // --- Latent terms: each document is a few SAE latents with their activations. ---
    let latent_docs: [(&str, &[(u32, f32)]); 6] = [
        ("otters", &[(12, 2.1), (407, 0.8), (9_001, 0.3), (15, 0.05)]),
        ("beavers", &[(12, 1.4), (88, 1.1), (407, 0.2)]),
        ("rivers", &[(407, 1.9), (3, 0.7)]),
        ("deserts", &[(3, 0.4), (2_048, 2.5)]),
        ("forests", &[(5, 1.2), (2_048, 0.3)]),
        ("oceans", &[(3, 0.9), (77, 1.5)]),
    ];
    let config = IndexConfig {
        // Keep each document's 3 strongest latents (the paper caps at 24 or 65).
        max_terms_per_doc: Some(3),
        // Store round(activation × 100): ~1–2 bytes per posting instead of 4.
        weight_encoding: WeightEncoding::Quantized { scale: 100.0 },
    };
    let mut builder = IndexBuilder::new(config)?;
    for (id, latents) in latent_docs {
        builder.add(id, &SparseVector::new(latents.iter().copied())?)?;
    }
    let latent_path = dir.join("latent.ltsi");
    builder.build()?.save(&latent_path)?;
    let latent = Index::open(&latent_path)?;

    // The query is encoded by the same SAE: latents with activations.
    let query = Query::new([(12, 1.0), (407, 0.6)])?;
    let clsr = ClSr::default();
    let bm25 = Bm25::new(Bm25Params {
        // "Latent Terms + BM25": activations quantized to integer pseudo term counts.
        tf: TermFrequency::Quantized { scale: 100.0 },
        ..Bm25Params::default()
    })?;
    let options = SearchOptions::default();
    println!("latent index: {} documents", latent.num_docs());
    for (name, hits) in [
        ("CL-SR", latent.search(&query, &clsr, 3, &options)?),
        ("BM25 ", latent.search(&query, &bm25, 3, &options)?),
    ] {
        for hit in hits {
            let id = latent.external_id(hit.doc).unwrap_or("?");
            println!("  {name} {id:<8} {:.4}", hit.score);
        }
    }
    let best = latent.search(&query, &clsr, 1, &options)?;
    if let Some(hit) = best.first() {
        print!("why:\n{}", latent.explain(&query, &clsr, hit.doc)?);
    }

    // --- Lexical BM25: text through the analyzer and a vocabulary. ---
    let analyzer = Analyzer::english();
    let mut vocabulary = Vocabulary::new();
    let mut builder = IndexBuilder::new(IndexConfig::lexical())?;
    for (id, text) in [
        ("d1", "Sea otters float on their backs and crack shellfish."),
        ("d2", "Beavers build dams across rivers and streams."),
        ("d3", "River otters are playful swimmers."),
    ] {
        builder.add(id, &vocabulary.add_document(&analyzer, text)?)?;
    }
    let mut lexical = builder.build()?;
    lexical.set_vocabulary(vocabulary)?;
    let lexical_path = dir.join("lexical.ltsi");
    lexical.save(&lexical_path)?;
    let lexical = Index::open(&lexical_path)?;

    let vocabulary = lexical
        .vocabulary()
        .ok_or("the saved index carries its vocabulary")?;
    let query = vocabulary.query(&analyzer, "Which otters swim in rivers?");
    println!("lexical index: {} documents", lexical.num_docs());
    for hit in lexical.search(&query, &Bm25::default(), 3, &options)? {
        println!(
            "  BM25  {:<8} {:.4}",
            lexical.external_id(hit.doc).unwrap_or("?"),
            hit.score
        );
    }
    if let Some(hit) = lexical
        .search(&query, &Bm25::default(), 1, &options)?
        .first()
    {
        let why = lexical.explain(&query, &Bm25::default(), hit.doc)?;
        println!("why {}:", why.external_id);
        for t in &why.terms {
            let word = vocabulary.term(t.term).unwrap_or("?");
            println!(
                "  {word:<8} tf {} × idf {:.3} → {:.4}",
                t.doc_weight, t.idf, t.contribution
            );
        }
    }
    Ok(())
}
