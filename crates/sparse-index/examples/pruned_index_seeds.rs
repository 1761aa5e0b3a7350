//! Writes two small statically pruned index files (format version 2: a term statistics
//! section), seeds for the `index_loader` fuzz target (docs/fuzzing.md):
//!
//! ```sh
//! cargo run --release -p latent-terms-sparse-index --example pruned_index_seeds -- fuzz/corpus/index_loader
//! ```

use latent_terms_sparse_index::{
    IndexBuilder, IndexConfig, SparseVector, StaticPruning, WeightEncoding,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: pruned_index_seeds OUTPUT_DIR")?;
    let kinds = [
        (WeightEncoding::Float32, StaticPruning::TopTerms(2)),
        (
            WeightEncoding::Quantized { scale: 8.0 },
            StaticPruning::Share(0.6),
        ),
    ];
    for (i, (weight_encoding, pruning)) in kinds.into_iter().enumerate() {
        let mut builder = IndexBuilder::new(IndexConfig {
            weight_encoding,
            ..Default::default()
        })?;
        for d in 0..6u32 {
            let terms: Vec<(u32, f32)> = (0..4)
                .map(|j| ((d * 3 + j * 5) % 11, 0.5 + ((d + j) % 3) as f32))
                .collect();
            builder.add(format!("d{d}"), &SparseVector::new(terms)?)?;
        }
        let index = builder.build_pruned(pruning)?;
        let path = format!("{out}/pruned-{i}.idx");
        std::fs::write(&path, index.to_bytes()?)?;
        println!("{path}");
    }
    Ok(())
}
