//! Train a TopK sparse autoencoder, save it, load it without burn, and encode/decode.
//!
//! The training rows here are synthetic: sums of a few hidden unit-norm "atoms", the way
//! a dense embedding is (by hypothesis) a sum of a few concepts. The SAE should recover
//! those atoms as its decoder rows. With real embeddings, load an embeddings store
//! (`latent_terms::encoders::EmbeddingsStore`) and pass its rows instead.
//! Run with `cargo run -p latent-terms-examples --example train_sae`.

use std::error::Error;

use latent_terms::sae::train::{Backend, TrainConfig, TrainSet, Trainer};
use latent_terms::sae::{EncodeOptions, SaeEncoder, SaeKind};

fn main() -> Result<(), Box<dyn Error>> {
    let (dim, atoms, active) = (16, 24, 2);
    let rows = synthetic_rows(dim, atoms, active, 4_096);

    // Train: 48 latents, 2 active per row (TopK with AuxK, AdamW, unit-norm decoder).
    let set = TrainSet::new(&rows, dim)?;
    let mut config = TrainConfig::new(SaeKind::TopK, 2 * atoms, active);
    config.epochs = 20;
    config.batch_size = 256;
    config.optim.lr = 3e-3;
    let trainer = Trainer::new(config, Backend::default_cpu()?)?;
    let outcome = trainer.train(&set, &mut |_step| {})?;
    let s = &outcome.summary;
    println!(
        "trained: NMSE {:.4}, L0 {:.1}, dead latents {:.1}%, {:.0} rows/s",
        s.nmse,
        s.l0,
        100.0 * s.dead_fraction,
        s.samples_per_s
    );

    // Save (safetensors + a SAELens-style cfg JSON), then load for burn-free inference.
    let dir = std::env::temp_dir().join(format!("latent-terms-sae-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("toy.safetensors");
    outcome.weights.save(&path)?;
    let encoder = SaeEncoder::load(&path)?;
    std::fs::remove_dir_all(&dir)?;

    // Encode the first row into its latent terms, then decode it back.
    let first = &rows[..dim];
    let codes = encoder.encode(first, &EncodeOptions::top_k(active))?;
    let terms: Vec<String> = codes[0]
        .iter()
        .map(|(latent, activation)| format!("l{latent}={activation:.3}"))
        .collect();
    println!("row 0 as latent terms: {}", terms.join(" "));
    let back = encoder.decode(&codes);
    let error: f32 = first.iter().zip(&back).map(|(a, b)| (a - b).powi(2)).sum();
    println!("row 0 squared reconstruction error: {error:.5}");
    Ok(())
}

/// `n` rows of `dim` values, each the sum of `active` of `atoms` random unit vectors with
/// weights in [0.5, 1.5) (a tiny deterministic generator keeps the example dependency-free).
fn synthetic_rows(dim: usize, atoms: usize, active: usize, n: usize) -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut dictionary: Vec<f32> = (0..atoms * dim).map(|_| next() - 0.5).collect();
    for atom in dictionary.chunks_mut(dim) {
        let norm = atom.iter().map(|v| v * v).sum::<f32>().sqrt();
        atom.iter_mut().for_each(|v| *v /= norm);
    }
    let mut rows = vec![0.0; n * dim];
    for row in rows.chunks_mut(dim) {
        for _ in 0..active {
            let atom = ((next() * atoms as f32) as usize).min(atoms - 1);
            let weight = 0.5 + next();
            for (r, a) in row
                .iter_mut()
                .zip(&dictionary[atom * dim..(atom + 1) * dim])
            {
                *r += weight * a;
            }
        }
    }
    rows
}
