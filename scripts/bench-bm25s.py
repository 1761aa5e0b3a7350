#!/usr/bin/env python3
"""Benchmark bm25s (the Python BM25 baseline) on SciFact, the same way as
benches/bm25_scifact.rs times latent-terms and tantivy.

Setup: bm25s 0.3.16, BM25 method "lucene", k1 0.9, b 0.4, bm25s's English
stopwords ("en": Lucene's 33, the same list as latent-terms), PyStemmer's
Snowball English stemmer, documents indexed as title + " " + text (text alone
when there is no title), the 300 test queries judged in qrels/test.tsv.
bm25s scores every document for every query (it has no dynamic pruning), so
top-10 and top-1000 differ only in the final top-k selection.

Timed, single thread (NUMBA_NUM_THREADS=1, OMP/BLAS threads 1, retrieve(...,
n_threads=1) for numba's serial kernel, n_threads=0 for numpy's plain map):

  batch      tokenize all queries + one retrieve() call: bm25s's intended use;
             queries/s from the median of --repeat passes.
  per-query  tokenize + retrieve one query at a time (what a server does):
             queries/s from the median pass, p50/p99 of single-query latency.

for backend numba at top-10 and top-1000, and numpy at top-10 and top-1000.
Query tokenisation (regex split, stopwords, stemming, vocabulary lookup) is
inside the timing in both modes, as in the Rust bench.  Numba's JIT is warmed
up before timing.

nDCG@10 of the top-1000 run: pytrec_eval (ndcg_cut_10 averaged over all
judged queries, 0 for a query with nothing retrieved), and, when the
latent-terms CLI is found (--latent-terms, default
$CARGO_TARGET_DIR/release/latent-terms or target/release/latent-terms), the
same run scored by `latent-terms eval -c -m ndcg_cut.10` as a cross-check.
Documents bm25s returns with score 0 (no query term) are left out of the run.

Dependencies are pinned and installed into a venv that the script creates on
first use (default /tmp/lt-bm25s-venv, override with --venv or LT_BM25S_VENV):

  python3 -m venv /tmp/lt-bm25s-venv
  /tmp/lt-bm25s-venv/bin/pip install bm25s==0.3.16 numba==0.68.1 PyStemmer==3.1.0 \
      numpy==2.4.6 scipy==1.17.1 pytrec_eval-terrier==0.5.11

Usage (from the repository root; Python >= 3.10):

  scripts/bench-bm25s.py [--dataset ../shared/data/scifact] [--repeat 15]

Prints markdown tables to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PINNED = [
    "bm25s==0.3.16",
    "numba==0.68.1",
    "PyStemmer==3.1.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "pytrec_eval-terrier==0.5.11",
]
SINGLE_THREAD_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
REPO = Path(__file__).resolve().parent.parent
K1, B = 0.9, 0.4


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def ensure_environment(venv: Path) -> None:
    """Re-executes this script inside `venv` (created and filled on first use)
    with the single-thread variables set before numba/numpy are imported."""
    missing_env = any(os.environ.get(k) != v for k, v in SINGLE_THREAD_ENV.items())
    in_venv = Path(sys.prefix).resolve() == venv.resolve()
    if in_venv and not missing_env:
        return
    python = venv / "bin" / "python"
    stamp = venv / ".lt-pinned"
    if not python.exists() or not stamp.exists() or stamp.read_text() != "\n".join(PINNED):
        log(f"creating venv {venv} with {' '.join(PINNED)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINNED],
            check=True,
        )
        stamp.write_text("\n".join(PINNED))
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def read_jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def find(root: Path, stem: str) -> Path:
    for ext in ("jsonl", "jsonl.gz"):
        p = root / f"{stem}.{ext}"
        if p.is_file():
            return p
    raise SystemExit(f"no {stem}.jsonl[.gz] in {root}")


def load(root: Path):
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3:
                qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = int(parts[2])
    ids, texts = [], []
    for d in read_jsonl(find(root, "corpus")):
        title, text = d.get("title") or "", d.get("text") or ""
        ids.append(str(d["_id"]))
        texts.append(f"{title} {text}" if title else text)
    queries = [
        (str(q["_id"]), q.get("text") or "")
        for q in read_jsonl(find(root, "queries"))
        if str(q["_id"]) in qrels
    ]
    return ids, texts, queries, qrels


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile, as in the Rust benches."""
    s = sorted(values)
    rank = math.ceil(p / 100 * len(s))
    return s[min(max(rank, 1), len(s)) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    ap.add_argument("--repeat", type=int, default=15, help="timed passes per configuration (median reported)")
    ap.add_argument("--venv", type=Path, default=Path(os.environ.get("LT_BM25S_VENV", "/tmp/lt-bm25s-venv")))
    ap.add_argument("--latent-terms", type=Path, default=None, help="latent-terms CLI for the nDCG cross-check")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lt-bench-bm25s")
    args = ap.parse_args()

    if not (args.dataset / "qrels" / "test.tsv").is_file():
        print(f"skipping: {args.dataset} not found (pass --dataset DIR)", file=sys.stderr)
        return
    ensure_environment(args.venv)

    import bm25s
    import numba
    import numpy as np
    import pytrec_eval
    import Stemmer

    log(f"bm25s {bm25s.__version__}, numba {numba.__version__} ({numba.get_num_threads()} thread), "
        f"numpy {np.__version__}, PyStemmer {Stemmer.version()}")
    ids, texts, queries, qrels = load(args.dataset)
    qids = [q for q, _ in queries]
    qtexts = [t for _, t in queries]
    log(f"{args.dataset}: {len(ids)} documents, {len(queries)} judged test queries")
    stemmer = Stemmer.Stemmer("english")

    def tokenize(batch: list[str]) -> list[list[str]]:
        return bm25s.tokenize(batch, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)

    t0 = time.perf_counter()
    corpus_tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retrievers = {}
    for backend in ("numba", "numpy"):
        r = bm25s.BM25(method="lucene", k1=K1, b=B, backend=backend)
        r.index(corpus_tokens, show_progress=False)
        retrievers[backend] = r
    log(f"tokenized and indexed (twice) in {time.perf_counter() - t0:.2f} s")

    def retrieve(backend: str, tokens: list[list[str]], k: int):
        r = retrievers[backend]
        threads = 1 if backend == "numba" else 0
        return r.retrieve(tokens, k=k, n_threads=threads, show_progress=False)

    # Warm up numba's JIT (and caches) outside the timed passes.
    for backend in retrievers:
        for k in (10, 1000):
            retrieve(backend, tokenize(qtexts[:5]), k)

    rows = []
    runs = {}
    for backend, k in (("numba", 10), ("numba", 1000), ("numpy", 10), ("numpy", 1000)):
        batch_times, pass_times, latencies = [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            docs, scores = retrieve(backend, tokenize(qtexts), k)
            batch_times.append(time.perf_counter() - t)
            start = time.perf_counter()
            for text in qtexts:
                t = time.perf_counter()
                retrieve(backend, tokenize([text]), k)
                latencies.append(time.perf_counter() - t)
            pass_times.append(time.perf_counter() - start)
        runs[(backend, k)] = (docs, scores)
        nq = len(qtexts)
        batch, per = statistics.median(batch_times), statistics.median(pass_times)
        rows.append((backend, k, nq / batch, batch * 1e3 / nq, nq / per, per * 1e3 / nq,
                     percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3))
        log(f"{backend} top-{k}: batch {nq / batch:.0f} q/s, per-query {nq / per:.0f} q/s")

    print(f"\n#### bm25s {bm25s.__version__} on SciFact ({len(qtexts)} queries, single thread, "
          f"median of {args.repeat} passes)\n")
    print("| backend | k | batch queries/s | batch ms/query | per-query queries/s | per-query ms/query "
          "| p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, k, bq, bms, pq, pms, p50, p99 in rows:
        print(f"| {backend} | {k} | {bq:.0f} | {bms:.3f} | {pq:.0f} | {pms:.3f} | {p50:.3f} | {p99:.3f} |")

    # Quality: nDCG@10 of the numba top-1000 run (numpy's ranks the same documents).
    args.out.mkdir(parents=True, exist_ok=True)
    print("\n| run | nDCG@10 (pytrec_eval) | nDCG@10 (latent-terms eval) |")
    print("|---|---:|---:|")
    cli = args.latent_terms
    if cli is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        cli = target / "release" / "latent-terms"
    for (backend, k), (docs, scores) in runs.items():
        run: dict[str, dict[str, float]] = {}
        path = args.out / f"bm25s-{backend}-top{k}.run"
        with open(path, "w") as f:
            for qi, qid in enumerate(qids):
                ranked = [(ids[int(d)], float(s)) for d, s in zip(docs[qi], scores[qi]) if s > 0]
                run[qid] = {d: s for d, s in ranked}
                for rank, (d, s) in enumerate(ranked, 1):
                    f.write(f"{qid} Q0 {d} {rank} {s:.6f} bm25s\n")
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
        per_query = evaluator.evaluate({q: r for q, r in run.items() if r})
        ndcg = sum(per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / len(qrels)
        ours = "–"
        if cli.is_file():
            out = subprocess.run(
                [str(cli), "eval", str(args.dataset / "qrels" / "test.tsv"), str(path), "-c", "-m", "ndcg_cut.10"],
                check=True, capture_output=True, text=True,
            ).stdout
            for line in out.splitlines():
                f = line.split()
                if len(f) == 3 and f[0] == "ndcg_cut_10" and f[1] == "all":
                    ours = f"{float(f[2]):.4f}"
        print(f"| {backend} top-{k} | {ndcg:.4f} | {ours} |")
    log(f"runs written to {args.out}")


if __name__ == "__main__":
    main()
