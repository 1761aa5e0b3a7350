#!/usr/bin/env bash
# SciFact BM25 side by side, back to back on one machine: latent-terms and tantivy
# (criterion bench benches/bm25_scifact.rs, same process), then bm25s (Python,
# scripts/bench-bm25s.py, which creates its pinned venv on first use).
# Arguments go to criterion, e.g. `scripts/bench-bm25s.sh top10`.
# Environment: LT_BENCH_ROUNDS (side-by-side passes, 15), LT_BM25S_REPEAT (15),
# LT_BM25S_VENV (/tmp/lt-bm25s-venv), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p latent-terms-cli   # for the nDCG cross-check of bm25s' run
cargo bench -p latent-terms-benches --bench bm25_scifact -- "$@"
scripts/bench-bm25s.py --repeat "${LT_BM25S_REPEAT:-15}" --latent-terms "$target/release/latent-terms"
