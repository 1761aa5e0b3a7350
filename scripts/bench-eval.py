#!/usr/bin/env python3
"""Benchmark trec_eval-style evaluation: pytrec_eval vs trec_eval vs latent-terms.

Generates (deterministically, seeded) a run of QUERIES x DOCS lines
(`qid Q0 docno rank score tag`, default 10,000 x 1,000 = 10M lines, ~0.4 GB)
and a qrels file (10-50 judged docs per query, graded 0-3) into DIR
(default /tmp/lt-bench-eval; files are reused when already generated with the
same parameters), then times, each in its own subprocess, REPEAT times:

  (a) pytrec_eval: parse both files into dicts (as users do) and evaluate
      ndcg_cut.10 map recip_rank recall.1000 -- parse + evaluate together;
  (b) trec_eval, if --trec-eval PATH is given:
      PATH -m ndcg_cut.10 -m map -m recip_rank -m recall.1000 QRELS RUN
  (c) the latent-terms CLI, if --latent-terms PATH is given:
      PATH eval QRELS RUN -m ndcg_cut.10 -m map -m recip_rank -m recall.1000

Wall clock is measured around each subprocess; peak RSS comes from
os.wait4()'s rusage for that child (ru_maxrss, KiB on Linux).  Prints a
markdown table (median and best of REPEAT, peak MiB, ratio of medians vs
pytrec_eval) plus the 'all' values each tool reported, as a sanity check.
Python 3.11 stdlib (+ pytrec_eval for (a)).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURES = ["ndcg_cut.10", "map", "recip_rank", "recall.1000"]
SEED = 20240908

PYTREC_CODE = r"""
import sys, json, pytrec_eval
qrels_path, run_path = sys.argv[1], sys.argv[2]
qrel = {}
with open(qrels_path) as f:
    for line in f:
        qid, _, docno, rel = line.split()
        qrel.setdefault(qid, {})[docno] = int(rel)
run = {}
with open(run_path) as f:
    for line in f:
        qid, _, docno, _rank, score, _tag = line.split()
        run.setdefault(qid, {})[docno] = float(score)
ev = pytrec_eval.RelevanceEvaluator(qrel, {"ndcg_cut.10", "map", "recip_rank", "recall.1000"})
res = ev.evaluate(run)
keys = ["ndcg_cut_10", "map", "recip_rank", "recall_1000"]
n = len(res)
print(json.dumps({k: sum(v[k] for v in res.values()) / n for k in keys} | {"num_q": n}))
"""


def generate(out: Path, queries: int, docs: int) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    qrels_p, run_p, meta_p = out / "qrels.txt", out / "run.txt", out / "meta.json"
    meta = {"seed": SEED, "queries": queries, "docs": docs, "version": 1}
    if meta_p.exists() and qrels_p.exists() and run_p.exists():
        if json.loads(meta_p.read_text()) == meta:
            print(f"reusing {run_p} and {qrels_p}", file=sys.stderr)
            return qrels_p, run_p
    t0 = time.perf_counter()
    rng = random.Random(SEED)
    with open(run_p, "w", buffering=1 << 22) as rf, open(qrels_p, "w", buffering=1 << 20) as qf:
        for q in range(1, queries + 1):
            qid = str(q)
            seen = set()
            ranked = []
            while len(ranked) < docs:
                d = f"D{rng.randrange(10_000_000):07d}"
                if d not in seen:
                    seen.add(d)
                    ranked.append(d)
            score = 30.0
            lines = []
            for i, d in enumerate(ranked):
                if rng.random() > 0.05:  # ~5% ties with the previous doc
                    score -= rng.random() * 0.05
                lines.append(f"{qid} Q0 {d} {i + 1} {score:.4f} bench\n")
            rf.write("".join(lines))
            k = rng.randint(10, 50)
            judged = set()
            qlines = []
            for _ in range(k):
                if rng.random() < 0.6:  # judged retrieved doc, biased to the top
                    d = ranked[min(docs - 1, int(rng.expovariate(1 / 80)))]
                else:
                    d = f"U{rng.randrange(10_000_000):07d}"
                if d in judged:
                    continue
                judged.add(d)
                rel = rng.choices([0, 1, 2, 3], [50, 25, 15, 10])[0]
                qlines.append(f"{qid} 0 {d} {rel}\n")
            qf.write("".join(qlines))
    meta_p.write_text(json.dumps(meta))
    print(f"generated {run_p} ({run_p.stat().st_size / 2**20:.0f} MiB) and {qrels_p} "
          f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return qrels_p, run_p


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run cmd; return (wall seconds, peak RSS MiB, stdout)."""
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf)
        stdout = proc.stdout.read()  # stderr goes to a file: no pipe deadlock
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        stderr = errf.read()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                 f"{stderr.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024.0, stdout.decode(errors="replace")


def parse_all_lines(text: str) -> dict[str, str]:
    vals = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "all":
            vals[parts[0]] = parts[2]
    return vals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", default="/tmp/lt-bench-eval", type=Path)
    ap.add_argument("--trec-eval", help="path to a trec_eval binary")
    ap.add_argument("--latent-terms", help="path to the latent-terms CLI binary")
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--docs", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-pytrec", action="store_true", help="do not run (a)")
    a = ap.parse_args()

    qrels, run = generate(a.dir, a.queries, a.docs)
    m_args = [x for m in MEASURES for x in ("-m", m)]
    tools = []
    if not a.skip_pytrec:
        tools.append(("pytrec_eval (parse+eval)", [sys.executable, "-c", PYTREC_CODE, str(qrels), str(run)]))
    for flag, path in (("--trec-eval", a.trec_eval), ("--latent-terms", a.latent_terms)):
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"warning: {flag} {path}: not an executable file, skipping", file=sys.stderr)
            if flag == "--trec-eval":
                a.trec_eval = None
            else:
                a.latent_terms = None
    if a.trec_eval:
        tools.append(("trec_eval", [a.trec_eval, *m_args, str(qrels), str(run)]))
    if a.latent_terms:
        tools.append(("latent-terms eval", [a.latent_terms, "eval", str(qrels), str(run), *m_args]))
    if not tools:
        sys.exit("nothing to run")

    # warm the page cache once so the first timed run is not penalised
    with open(run, "rb") as f:
        while f.read(1 << 24):
            pass

    rows = []
    for name, cmd in tools:
        walls, rss, out = [], 0.0, ""
        for i in range(a.repeat):
            w, r, out = timed(cmd)
            walls.append(w)
            rss = max(rss, r)
            print(f"{name}: run {i + 1}/{a.repeat}: {w:.2f} s, {r:.0f} MiB", file=sys.stderr)
        if name.startswith("pytrec_eval"):
            vals = json.loads(out.strip().splitlines()[-1])
            summary = {"ndcg_cut_10": f"{vals['ndcg_cut_10']:.4f}", "map": f"{vals['map']:.4f}",
                       "recip_rank": f"{vals['recip_rank']:.4f}",
                       "recall_1000": f"{vals['recall_1000']:.4f}"}
        else:
            summary = parse_all_lines(out)
        rows.append((name, statistics.median(walls), min(walls), rss, summary))

    base = rows[0][1] if rows[0][0].startswith("pytrec_eval") else None
    print(f"\n{a.queries} queries x {a.docs} docs ({run.stat().st_size / 2**20:.0f} MiB run), "
          f"{a.repeat} runs each\n")
    print("| tool | median s | best s | peak MiB | ratio vs pytrec_eval (median) |")
    print("|---|---:|---:|---:|---:|")
    for name, med, best, rss, _ in rows:
        ratio = f"{med / base:.2f}x" if base else "n/a"
        print(f"| {name} | {med:.2f} | {best:.2f} | {rss:.0f} | {ratio} |")
    print("\n'all' values reported (sanity check):")
    for name, *_rest, summary in rows:
        print(f"- {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.items())))


if __name__ == "__main__":
    main()
