#!/usr/bin/env python3
"""Python reference for one TopK sparse-autoencoder training step (JAX, CPU).

The side-by-side anchor for the Rust trainer: same shapes, same loss, same
optimiser, timed the same way.  Measures

  sgemm     numpy float32 GEMM rate for the encoder's shape [batch, d_in] x
            [d_in, d_sae] and for a square 2048^3 GEMM (GFLOP/s = 2mnk / time,
            median of repeats): what this machine's BLAS does, for scale.
  gather    jitted step, decoder x_hat = sum_j h_j * W_dec[idx_j] + b_dec
  dense     jitted step, decoder x_hat = scatter(h) @ W_dec + b_dec
  dense_auxk  dense, plus Gao et al.'s AuxK loss (weight 1/32)

Step: pre = (x - b_dec) @ W_enc + b_enc; (v, idx) = top_k(pre, k); h = relu(v);
loss = mean over the batch of ||x_hat - x||^2; jax.grad; Adam (lr 1e-4,
beta 0.9/0.999, eps 1e-8, bias-corrected).  W_dec has unit-norm rows and
W_enc = W_dec^T, biases zero; x is random normal with unit-norm rows (seed 0).
Parameters and Adam state are donated to the step, so updates are in place.

Threads: by default XLA and OpenBLAS use every core, as the Rust trainer does.
--threads N pins the process to the first N CPUs and sets OPENBLAS_NUM_THREADS
and OMP_NUM_THREADS (XLA sizes its pool from the CPUs it may run on); with
N = 1 it also sets XLA_FLAGS=--xla_cpu_multi_thread_eigen=false.  The cpu/wall
column (process CPU time over wall time in the timed loop) shows what was used.

Output: a table on stderr, one JSON object on the last line of stdout.
Usage (after scripts/setup-jax-reference):
    assets/.venv-jax/bin/python scripts/bench-sae-jax.py [--d-in 384] [--d-sae 12288]
        [--k 32] [--batch 1024] [--steps 20] [--warmup 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-in", type=int, default=384)
    p.add_argument("--d-sae", type=int, default=12288)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="0 (default): all cores")
    p.add_argument("--dead-fraction", type=float, default=0.3, help="latents marked dead for AuxK")
    return p.parse_args()


# Thread settings only take effect before numpy and jax are imported.
ARGS = parse_args()
if ARGS.threads > 0:
    cpus = sorted(os.sched_getaffinity(0))[: ARGS.threads]
    os.sched_setaffinity(0, cpus)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    if ARGS.threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    THREADS_NOTE = f"pinned to CPUs {cpus}, OPENBLAS/OMP threads {ARGS.threads}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
else:
    THREADS_NOTE = f"all {len(os.sched_getaffinity(0))} schedulable CPUs, XLA and OpenBLAS defaults"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

LR, BETA1, BETA2, EPS = 1e-4, 0.9, 0.999, 1e-8
AUX_WEIGHT = 1.0 / 32


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall time of fn() over `repeats` calls, and CPU time / wall time."""
    times = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def sgemm_gflops(m: int, k: int, n: int, repeats: int = 10) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults of `out`
    median, _ = timed(lambda: np.matmul(a, b, out=out), repeats)
    return 2 * m * n * k / median / 1e9


def flops_per_step(variant: str, b: int, d: int, m: int, k: int) -> int:
    """FLOPs counted for one step; the Rust side should count the same way.

    Encoder, every variant: forward GEMM 2·B·d·m + weight-gradient GEMM 2·B·d·m.
    dense: decoder forward 2·B·m·d + weight gradient 2·B·m·d + input (code)
    gradient 2·B·m·d.  gather: the k-sparse decode 2·B·k·d, three times
    (forward, W_dec-row gradient, h gradient).  dense_auxk: dense plus the AuxK
    reconstruction, itself a dense decoder, so another 3 · 2·B·m·d.
    Not counted: elementwise work, top-k, the Adam update, and the GEMM
    d(pre) @ W_enc^T (2·B·m·d) that XLA runs for b_dec's gradient through
    the encoder, so every variant's GFLOP/s is a lower bound.
    """
    enc = 2 * (2 * b * d * m)
    dec = {"gather": 3 * (2 * b * k * d), "dense": 3 * (2 * b * m * d), "dense_auxk": 6 * (2 * b * m * d)}
    return enc + dec[variant]


def init(d: int, m: int, b: int, dead_fraction: float):
    key_w, key_x, key_dead = jax.random.split(jax.random.PRNGKey(0), 3)
    w_dec = jax.random.normal(key_w, (m, d), jnp.float32)
    w_dec = w_dec / jnp.linalg.norm(w_dec, axis=1, keepdims=True)
    params = {"w_enc": w_dec.T.copy(), "b_enc": jnp.zeros(m), "w_dec": w_dec, "b_dec": jnp.zeros(d)}
    x = jax.random.normal(key_x, (b, d), jnp.float32)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    dead = jax.random.permutation(key_dead, m) < int(dead_fraction * m)  # a fixed random set
    return params, x, dead


def dense_code(vals, idx, m: int):
    rows = jnp.arange(vals.shape[0])[:, None]
    return jnp.zeros((vals.shape[0], m), vals.dtype).at[rows, idx].set(vals)


def make_loss(variant: str, k: int, dead):
    def loss_fn(p, x):
        m = p["w_enc"].shape[1]
        pre = (x - p["b_dec"]) @ p["w_enc"] + p["b_enc"]
        vals, idx = jax.lax.top_k(pre, k)
        h = jax.nn.relu(vals)
        if variant == "gather":
            x_hat = jnp.einsum("bk,bkd->bd", h, p["w_dec"][idx]) + p["b_dec"]
        else:
            x_hat = dense_code(h, idx, m) @ p["w_dec"] + p["b_dec"]
        loss = ((x_hat - x) ** 2).sum(-1).mean()
        if variant == "dense_auxk":
            # AuxK: the 2k largest pre-activations among dead latents reconstruct
            # the (detached) residual, without b_dec.
            aux_vals, aux_idx = jax.lax.top_k(jnp.where(dead, pre, -jnp.inf), 2 * k)
            e_hat = dense_code(jax.nn.relu(aux_vals), aux_idx, m) @ p["w_dec"]
            residual = jax.lax.stop_gradient(x - x_hat)
            loss = loss + AUX_WEIGHT * ((e_hat - residual) ** 2).sum(-1).mean()
        return loss

    return loss_fn


def make_step(loss_fn):
    def step(params, opt, x):
        loss, grads = jax.value_and_grad(loss_fn)(params, x)
        t = opt["t"] + 1
        mom = jax.tree.map(lambda m, g: BETA1 * m + (1 - BETA1) * g, opt["m"], grads)
        vel = jax.tree.map(lambda v, g: BETA2 * v + (1 - BETA2) * g * g, opt["v"], grads)
        c1, c2 = 1 - BETA1**t, 1 - BETA2**t  # bias correction, textbook form (eps outside the sqrt)
        params = jax.tree.map(lambda w, m, v: w - LR * (m / c1) / (jnp.sqrt(v / c2) + EPS), params, mom, vel)
        return params, {"t": t, "m": mom, "v": vel}, loss

    return jax.jit(step, donate_argnums=(0, 1))


def bench_variant(variant: str, a: argparse.Namespace) -> tuple[dict, float, list[float]]:
    """The variant's JSON entry, the timed loop's CPU/wall ratio, and the losses."""
    params, x, dead = init(a.d_in, a.d_sae, a.batch, a.dead_fraction)
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
    opt = {"t": jnp.zeros((), jnp.float32), "m": zeros(), "v": zeros()}
    step = make_step(make_loss(variant, a.k, dead))
    state = {"params": params, "opt": opt, "losses": []}

    def one():
        state["params"], state["opt"], loss = step(state["params"], state["opt"], x)
        state["losses"].append(float(loss.block_until_ready()))

    for _ in range(a.warmup):  # the first call compiles
        one()
    median, util = timed(one, a.steps)
    flops = flops_per_step(variant, a.batch, a.d_in, a.d_sae, a.k)
    result = {
        "samples_per_s": a.batch / median,
        "median_step_s": median,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / median / 1e9,
    }
    return result, util, state["losses"]


def main() -> None:
    a = ARGS
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"jax {jax.__version__} ({jax.devices()[0].platform}), numpy {np.__version__}; threads: {THREADS_NOTE}")
    log(f"shape: d_in {a.d_in}, d_sae {a.d_sae}, k {a.k}, batch {a.batch}; {a.warmup} warm-up + {a.steps} timed steps")
    sg_enc = sgemm_gflops(a.batch, a.d_in, a.d_sae)
    sg_sq = sgemm_gflops(2048, 2048, 2048)
    log(f"numpy sgemm: {sg_enc:.1f} GFLOP/s at [{a.batch}x{a.d_in}]x[{a.d_in}x{a.d_sae}], {sg_sq:.1f} GFLOP/s at 2048^3")

    out = {
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "threads_note": THREADS_NOTE,
        "shape": {"d_in": a.d_in, "d_sae": a.d_sae, "k": a.k, "batch": a.batch},
        "sgemm_gflops_encoder_shape": sg_enc,
        "sgemm_gflops_square": sg_sq,
    }
    log(f"{'variant':<11} {'step ms':>9} {'samples/s':>10} {'GFLOP/step':>11} {'GFLOP/s':>8} {'cpu/wall':>8}  loss first -> last")
    for variant in ("gather", "dense", "dense_auxk"):
        r, util, losses = bench_variant(variant, a)
        log(f"{variant:<11} {r['median_step_s'] * 1e3:9.1f} {r['samples_per_s']:10.0f} "
            f"{r['gflop_per_step']:11.2f} {r['gflops']:8.1f} {util:8.2f}  {losses[0]:.5f} -> {losses[-1]:.5f}")
        out[variant] = r
    print(json.dumps(out))


if __name__ == "__main__":
    main()
