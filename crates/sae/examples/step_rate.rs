//! Training-step throughput of the burn trainer, for `scripts/bench-sae` (side by side with
//! the JAX reference `scripts/bench-sae-jax.py`).
//!
//! `cargo run -p latent-terms-sae --example step_rate -- [--backend flex|ndarray]
//!  [--d-in 384 --d-sae 12288 --k 32 --batch 1024 --steps 20 --warmup 3] [--kind topk] [--no-aux]
//!  [--dead-after 1] [--release-freed-memory]`
//!
//! Like the CLI, it calls `train::retain_freed_memory` first; `--release-freed-memory`
//! skips that, to measure what it is worth.
//!
//! AuxK only does work once some latent is dead. The trainer's default (dead after 20 steps
//! without firing) leaves none dead in a short run on random rows, so `--dead-after 1`
//! (dead if it did not fire in the previous step) is what `scripts/bench-sae` uses to time
//! the AuxK path; `dead_fraction` in the output (median over the timed steps) shows how
//! many latents the AuxK selection ran over.
//!
//! Prints one JSON object: median step time, samples/s, the burn GEMM rate at the encoder's
//! shape, and achieved GFLOP/s counted as in the JAX script (encoder forward and weight
//! gradient GEMMs, 2·B·d·m each, plus 3 × 2·B·k·d for the gathered decoder).

use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use latent_terms_sae::SaeKind;
use latent_terms_sae::train::{Backend, TrainConfig, TrainSet, Trainer};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let retained = !args.iter().any(|a| a == "--release-freed-memory")
        && latent_terms_sae::train::retain_freed_memory();
    let backend: Backend = arg(&args, "--backend", "flex".to_string()).parse()?;
    let (d, m, k, b) = (
        arg(&args, "--d-in", 384usize),
        arg(&args, "--d-sae", 12288usize),
        arg(&args, "--k", 32usize),
        arg(&args, "--batch", 1024usize),
    );
    let (steps, warmup) = (arg(&args, "--steps", 20u64), arg(&args, "--warmup", 3u64));
    let kind: SaeKind = arg(&args, "--kind", "topk".to_string()).parse()?;
    let no_aux = args.iter().any(|a| a == "--no-aux");
    let dead_after: Option<u32> = args
        .iter()
        .position(|a| a == "--dead-after")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()?;

    // Unit-normalised random rows, enough for every step to see fresh data.
    let n = b * (steps + warmup) as usize;
    let mut s = 7u64;
    let mut rows: Vec<f32> = (0..n * d)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    for r in rows.chunks_mut(d) {
        let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        r.iter_mut().for_each(|v| *v /= norm);
    }
    let set = TrainSet::new(&rows, d)?;
    let mut config = TrainConfig::new(kind, m, k);
    config.batch_size = b;
    config.epochs = 1;
    config.log_every = 1;
    if no_aux {
        config.aux.coef = 0.0;
    }
    if let Some(after) = dead_after {
        config.aux.dead_after_steps = after;
    }
    let dead_after_steps = config.aux.dead_after_steps;
    let trainer = Trainer::new(config, backend)?.with_step_limit(steps + warmup);
    let mut stamps = vec![Instant::now()];
    let mut l0 = 0.0;
    let mut dead = Vec::new();
    trainer.train(&set, &mut |metrics| {
        stamps.push(Instant::now());
        l0 = metrics.l0;
        dead.push(metrics.dead_fraction);
    })?;
    let dead_fraction = median(dead.split_off((warmup as usize).min(dead.len())));
    let times: Vec<f64> = stamps
        .windows(2)
        .skip(warmup as usize)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let step_s = median(times);

    // The device's own GEMM at the encoder's shape, in the same process.
    let dev = backend.device()?;
    let x = Tensor::<2>::from_data(TensorData::new(rows[..b * d].to_vec(), [b, d]), &dev);
    let w = Tensor::<2>::from_data(
        TensorData::new(rows[..d * m.min(n)].to_vec(), [d, m.min(n)]),
        &dev,
    );
    let mut gemm = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let y = x.clone().matmul(w.clone());
        let _ = y.into_data();
        gemm.push(t.elapsed().as_secs_f64());
    }
    let gemm_s = median(gemm);
    let gemm_gflops = 2.0 * (b * d * m.min(n)) as f64 / gemm_s / 1e9;
    let gflop_step = (2.0 * 2.0 * (b * d * m) as f64 + 3.0 * 2.0 * (b * k * d) as f64) / 1e9;
    println!(
        "{}",
        serde_json::json!({
            "backend": format!("{backend:?}"),
            "kind": kind.as_str(),
            "aux": !no_aux,
            "dead_after_steps": (!no_aux).then_some(dead_after_steps),
            "dead_fraction": dead_fraction,
            "shape": {"d_in": d, "d_sae": m, "k": k, "batch": b},
            "median_step_s": step_s,
            "samples_per_s": b as f64 / step_s,
            "gflop_per_step": gflop_step,
            "gflops": gflop_step / step_s,
            "burn_gemm_gflops_encoder_shape": gemm_gflops,
            "l0": l0,
            "retained_freed_memory": retained,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    );
    Ok(())
}
