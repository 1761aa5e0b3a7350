//! Synthetic planted dictionary: unit-norm atoms, k-sparse non-negative codes, noise.
//! Training must recover at least 90% of the atoms with cosine ≥ 0.9. And a planted
//! low-variance ranking problem that only the contrastive KL term solves.
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

/// A planted low-variance problem for the contrastive KL term: query `i` and document `i`
/// share a small signature (norm 0.5) in dimensions 16..32, which alone decides which
/// document each query scores highest; the bulk of the variance (norm ≈ 3) is in
/// dimensions 0..8 for queries and 8..16 for documents, which never meet in a dot product.
/// An MSE-only SAE with few active latents spends them on the bulk and loses the
/// signatures; the KL term must keep them.
struct KlProblem {
    rows: Vec<f32>,
    pairs: usize,
}

const KL_D: usize = 32;
const KL_TEMPERATURE: f32 = 0.02;
const KL_QUERIES: usize = 64;

fn kl_problem() -> KlProblem {
    let (d, pairs) = (KL_D, 512);
    let mut rng = SplitMix(7);
    let mut rows = vec![0.0f32; 2 * pairs * d];
    for i in 0..pairs {
        let mut signature: Vec<f32> = (0..16).map(|_| rng.normal()).collect();
        let norm = signature.iter().map(|v| v * v).sum::<f32>().sqrt();
        signature.iter_mut().for_each(|v| *v *= 0.5 / norm);
        for (row, bulk) in [(i, 0..8), (pairs + i, 8..16)] {
            let r = &mut rows[row * d..(row + 1) * d];
            bulk.for_each(|j| r[j] = rng.normal());
            r[16..].copy_from_slice(&signature);
        }
    }
    KlProblem { rows, pairs }
}

/// The KL of a scorer that knows nothing (every document equally likely), `log n − H(p)`,
/// averaged over queries in groups of [`KL_QUERIES`] like the trainer's.
fn uninformed_kl(problem: &KlProblem) -> f64 {
    let (d, n) = (KL_D, problem.pairs);
    let row = |i: usize| &problem.rows[i * d..(i + 1) * d];
    let mut total = 0.0;
    for group in (0..n).collect::<Vec<_>>().chunks(KL_QUERIES) {
        for &q in group {
            let scores: Vec<f64> = group
                .iter()
                .map(|&j| {
                    let dot: f32 = row(q).iter().zip(row(n + j)).map(|(a, b)| a * b).sum();
                    f64::from(dot / KL_TEMPERATURE)
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            let entropy: f64 = scores
                .iter()
                .map(|s| {
                    let p = (s - max).exp() / z;
                    if p > 0.0 { -p * p.ln() } else { 0.0 }
                })
                .sum();
            total += (group.len() as f64).ln() - entropy;
        }
    }
    total / n as f64
}

/// Trains a KLD SAE with weight `coef` and returns the KL over its last 50 steps and its NMSE.
fn kl_after_training(problem: &KlProblem, coef: f32) -> (f64, f64) {
    let set = TrainSet::new(&problem.rows, KL_D)
        .unwrap()
        .with_pairs(
            (0..problem.pairs)
                .map(|i| (i, vec![problem.pairs + i]))
                .collect(),
        )
        .unwrap();
    let mut config = TrainConfig::new(SaeKind::Kld, 64, 4);
    config.epochs = 150;
    config.batch_size = 256;
    config.optim.lr = 3e-3;
    config.optim.warmup_steps = 20;
    config.seed = 3;
    config.kld.coef = coef;
    config.kld.temperature = KL_TEMPERATURE;
    config.kld.queries_per_batch = KL_QUERIES;
    let trainer = Trainer::new(config, Backend::default_cpu().unwrap()).unwrap();
    let mut kl = Vec::new();
    let outcome = trainer.train(&set, &mut |m| kl.push(m.kld)).unwrap();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let marks: Vec<String> = kl.chunks(50).map(|c| format!("{:.2}", mean(c))).collect();
    eprintln!(
        "λ = {coef}: KL by 50 steps {}; NMSE {:.3}",
        marks.join(" "),
        outcome.summary.nmse
    );
    (mean(&kl[kl.len() - 50..]), outcome.summary.nmse)
}

#[test]
fn the_kl_term_preserves_score_distributions_that_mse_alone_loses() {
    let problem = kl_problem();
    let flat = uninformed_kl(&problem);
    let (kl0, nmse0) = kl_after_training(&problem, 0.0);
    let (kl1, nmse1) = kl_after_training(&problem, 1.0);
    eprintln!("uninformed scorer's KL {flat:.3}; trained: λ = 0 {kl0:.3}, λ = 1 {kl1:.3}");
    assert!(
        kl0 > flat,
        "without the KL term the KL fell to {kl0:.3}, below an uninformed scorer's {flat:.3}: the problem is not planted"
    );
    assert!(
        kl1 < 0.75 * flat && kl1 < 0.5 * kl0,
        "with λ = 1 the KL ends at {kl1:.3} (uninformed {flat:.3}, λ = 0 {kl0:.3})"
    );
    // The KL term costs some reconstruction, but training still reconstructs.
    assert!(nmse0 < 0.5 && nmse1 < 0.8, "NMSE {nmse0:.3} / {nmse1:.3}");
}
