//! Synthetic planted dictionary: unit-norm atoms, k-sparse non-negative codes, noise.
//! Training must recover at least 90% of the atoms with cosine ≥ 0.9.
#![allow(clippy::unwrap_used)]

use latent_terms_sae::SaeKind;
use latent_terms_sae::train::{Backend, TrainConfig, TrainSet, Trainer};

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

struct Planted {
    atoms: Vec<f32>,
    rows: Vec<f32>,
}

fn planted(d: usize, atoms: usize, k: usize, n: usize, noise: f32, seed: u64) -> Planted {
    let mut rng = SplitMix(seed);
    let mut dict: Vec<f32> = (0..atoms * d).map(|_| rng.normal()).collect();
    for a in dict.chunks_mut(d) {
        let norm = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        a.iter_mut().for_each(|v| *v /= norm);
    }
    let mut rows = vec![0.0; n * d];
    for row in rows.chunks_mut(d) {
        let mut chosen = Vec::with_capacity(k);
        while chosen.len() < k {
            let j = (rng.next() % atoms as u64) as usize;
            if !chosen.contains(&j) {
                chosen.push(j);
            }
        }
        for j in chosen {
            let c = 0.5 + rng.unit();
            row.iter_mut()
                .zip(&dict[j * d..(j + 1) * d])
                .for_each(|(r, a)| *r += c * a);
        }
        row.iter_mut().for_each(|r| *r += noise * rng.normal());
    }
    Planted { atoms: dict, rows }
}

fn recovered(atoms: &[f32], w_dec: &[f32], d: usize, min_cos: f32) -> f64 {
    let n_atoms = atoms.len() / d;
    let hits = atoms
        .chunks(d)
        .filter(|a| {
            w_dec.chunks(d).any(|w| {
                let dot: f32 = a.iter().zip(w).map(|(x, y)| x * y).sum();
                let norm = w.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                dot / norm >= min_cos
            })
        })
        .count();
    hits as f64 / n_atoms as f64
}

fn check(kind: SaeKind) {
    check_with(kind, 1.0, false);
}

/// Trains on the planted rows multiplied by `units`, with or without input scaling.
fn check_with(kind: SaeKind, units: f32, input_scaling: bool) {
    let (d, atoms, k) = (32, 64, 3);
    let mut data = planted(d, atoms, k, 16_384, 0.01, 42);
    data.rows.iter_mut().for_each(|v| *v *= units);
    let set = TrainSet::new(&data.rows, d).unwrap();
    let mut config = TrainConfig::new(kind, 2 * atoms, k);
    config.epochs = 30;
    config.batch_size = 256;
    config.optim.lr = 3e-3;
    config.optim.warmup_steps = 50;
    config.seed = 1;
    config.input_scaling = input_scaling;
    assert!(config.warnings(set.len()).is_empty());
    let trainer = Trainer::new(config, Backend::default_cpu().unwrap()).unwrap();
    let outcome = trainer.train(&set, &mut |_| {}).unwrap();
    let share = recovered(&data.atoms, &outcome.weights.w_dec, d, 0.9);
    eprintln!(
        "{kind:?}: recovered {share:.3} of the atoms, summary {:?}",
        outcome.summary
    );
    assert!(
        share >= 0.9,
        "{kind:?} recovered only {share:.3} of the atoms at cosine ≥ 0.9"
    );
    assert!(outcome.summary.nmse < 0.1, "NMSE {}", outcome.summary.nmse);
    if input_scaling {
        let c = outcome.weights.config.input_scale.unwrap();
        let want = latent_terms_sae::mean_square_norm_scale(&data.rows, d);
        assert!((c / want - 1.0).abs() < 0.05, "input scale {c} vs {want}");
    }
}

#[test]
fn topk_recovers_a_planted_dictionary() {
    check(SaeKind::TopK);
}

#[test]
fn batchtopk_recovers_a_planted_dictionary() {
    check(SaeKind::BatchTopK);
}

/// Rows in large units (like token hidden states, norms in the hundreds): input scaling
/// trains in `d_in`-normalised units and stores `c`, and the dictionary is still found.
#[test]
fn topk_with_input_scaling_recovers_a_dictionary_in_large_units() {
    check_with(SaeKind::TopK, 300.0, true);
}
