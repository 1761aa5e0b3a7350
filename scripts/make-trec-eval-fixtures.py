#!/usr/bin/env python3
"""Generate the trec_eval reference fixtures used by crates/eval's tests.

Deterministic: every random choice comes from random.Random(SEED * 100 + case
number); no dict/set iteration order or hash() value influences the output.
Needs Python 3.11 stdlib; pytrec_eval (pip package pytrec-eval-terrier 0.5.11,
which links trec_eval 9.0.8's measure code) for pytrec_eval.json; and a real
trec_eval 9.0.8 binary (--trec-eval PATH) for expected/*.txt and cases.json.

Usage (from the repository root):

    python3 scripts/make-trec-eval-fixtures.py --trec-eval /tmp/trec_eval/trec_eval

Writes crates/eval/tests/fixtures/trec_eval/{cases.json,case-XX/...}.
Without --trec-eval only qrels.txt, run.txt and pytrec_eval.json are (re)written.
See crates/eval/tests/fixtures/trec_eval/README.md for what each case stresses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

SEED = 908  # trec_eval 9.0.8

EXPLICIT_MEASURES = [
    "num_q", "num_ret", "num_rel", "num_rel_ret", "map",
    "map_cut.5,10,100,1000", "ndcg", "ndcg_cut.5,10,20,1000", "recip_rank",
    "P.1,5,10,20,1000", "recall.5,10,100,1000", "Rprec", "success.1,5,10",
]
DEFAULT_CUTOFF_MEASURES = [
    "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "map_cut", "ndcg",
    "ndcg_cut", "recip_rank", "P", "recall", "Rprec", "success",
]


def m_args(measures):
    out = []
    for m in measures:
        out += ["-m", m]
    return out


# (slug, trec_eval args excluding the two file names)
FLAG_SETS = [
    ("q", ["-q"] + m_args(EXPLICIT_MEASURES)),
    ("q-c", ["-q", "-c"] + m_args(EXPLICIT_MEASURES)),
    ("q-M10", ["-q", "-M", "10"] + m_args(EXPLICIT_MEASURES)),
    ("q-l2", ["-q", "-l", "2"] + m_args(EXPLICIT_MEASURES)),
    ("q-c-M5-l2", ["-q", "-c", "-M", "5", "-l", "2"] + m_args(EXPLICIT_MEASURES)),
    ("q-default-cutoffs", ["-q"] + m_args(DEFAULT_CUTOFF_MEASURES)),
    ("q-all_trec", ["-q", "-m", "all_trec"]),
]

PYTREC_MEASURES = set(EXPLICIT_MEASURES)  # pytrec_eval supports all of them

# Docnos whose strcmp (byte) order is easy to get wrong.
TRICKY_DOCNOS = [
    "d1", "d10", "d100", "d2", "d20", "d3", "D1", "D10", "D2", "d1a", "d1A",
    "d01", "d001", "doc", "doc1", "doc10", "doc2", "Doc1", "DOC1", "a", "A",
    "aa", "aA", "b", "B", "z", "Z", "0", "00", "1", "10", "9", "09", "x-1",
    "x_1", "x.1", "x1", "d#1", "d\u00e91", "d\u00e9", "dz",
]


class Case:
    def __init__(self, name, note):
        self.name = name
        self.note = note
        self.qrels = []  # (qid, iter, docno, rel)
        self.run = []  # (qid, iter, docno, rank, score_text, tag)

    def add_qrel(self, qid, docno, rel, it="0"):
        self.qrels.append((qid, it, docno, rel))

    def add_run(self, qid, docno, rank, score_text, tag="run", it="Q0"):
        self.run.append((qid, it, docno, rank, score_text, tag))


def fmt_float(rng, x):
    """Various textual spellings that atof() and float() parse identically."""
    return f"{x:.6f}" if rng.random() < 0.7 else repr(x)


def add_ranking(case, rng, qid, docs, scores, rank_mode="order", tag="run"):
    """docs/scores: parallel lists. rank column deliberately unreliable."""
    n = len(docs)
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    ranks = [0] * n
    for r, i in enumerate(order):
        ranks[i] = r + 1
    for i in range(n):
        if rank_mode == "reverse":
            rank = n - ranks[i] + 1
        elif rank_mode == "random":
            rank = rng.randint(0, 3 * n)
        elif rank_mode == "zero":
            rank = 0
        else:
            rank = ranks[i]
        case.add_run(qid, docs[i], rank, scores[i], tag=tag)


def judge(case, rng, qid, retrieved, extra_unretrieved, weights, neg_prob=0.0,
          judge_prob=0.75):
    """Judge a random subset of retrieved docs plus some unretrieved docs."""
    levels = [0, 1, 2, 3, 4]
    for d in retrieved:
        if rng.random() < judge_prob:
            rel = -1 if rng.random() < neg_prob else rng.choices(levels, weights)[0]
            case.add_qrel(qid, d, rel)
    for d in extra_unretrieved:
        rel = -1 if rng.random() < neg_prob else rng.choices(levels, weights)[0]
        case.add_qrel(qid, d, rel)


def uniq_docs(rng, prefix, n, pool=None):
    docs = []
    seen = set()
    if pool:
        cand = list(pool)
        rng.shuffle(cand)
        for d in cand[: min(n, len(cand))]:
            docs.append(d)
            seen.add(d)
    i = 0
    while len(docs) < n:
        d = f"{prefix}{rng.randint(0, 10 * n + 50)}"
        if d not in seen:
            seen.add(d)
            docs.append(d)
        i += 1
    return docs


# ---------------------------------------------------------------- cases

def case_01(rng):
    c = Case("case-01", "graded 0-4 relevance, distinct float scores, numeric qids 1..20 "
             "(string order 1,10,11,..,2,20,..), unjudged retrieved docs, -1 judgments")
    for q in range(1, 21):
        qid = str(q)
        n = rng.randint(5, 80)
        docs = uniq_docs(rng, "FT9-", n)
        scores = [fmt_float(rng, rng.uniform(-5, 30)) for _ in docs]
        add_ranking(c, rng, qid, docs, scores, rank_mode="order")
        extra = uniq_docs(rng, "LA-", rng.randint(0, 15))
        judge(c, rng, qid, docs, extra, [50, 20, 12, 8, 5], neg_prob=0.04)
    return c


def case_02(rng):
    c = Case("case-02", "heavy score ties (scores from {1, 0.5, 0.25} or all equal), "
             "strcmp-sensitive docnos (d1,d10,d2,D1,prefixes,mixed case,#,UTF-8), "
             "rank column reversed/random/zero")
    modes = ["reverse", "random", "zero", "order"]
    for q in range(1, 14):
        qid = f"t{q}"
        n = rng.randint(5, len(TRICKY_DOCNOS) + 20)
        docs = uniq_docs(rng, "d", n, pool=TRICKY_DOCNOS)
        if q % 4 == 0:
            scores = ["1.0"] * n  # every doc tied
        else:
            scores = [rng.choice(["1", "1.0", "0.5", "0.25", "0.50"]) for _ in docs]
        add_ranking(c, rng, qid, docs, scores, rank_mode=modes[q % 4])
        extra = [d for d in TRICKY_DOCNOS if d not in docs][: rng.randint(0, 5)]
        judge(c, rng, qid, docs, extra, [40, 25, 15, 10, 10], neg_prob=0.03, judge_prob=0.9)
    return c


def case_03(rng):
    c = Case("case-03", "integer scores incl. negatives and spellings that parse to the same "
             "double (3, 3.0, +3, 3e0, 30e-1), ties broken by docno; rank column random")
    spell = {3: ["3", "3.0", "+3", "3e0", "30e-1", "3.000"], -2: ["-2", "-2.0", "-2e0"],
             0: ["0", "0.0", "-0", "0e5"]}
    for q in range(1, 17):
        qid = f"{q:03d}" if q % 3 else str(q)  # '001' and '3' style ids
        n = rng.randint(5, 60)
        docs = uniq_docs(rng, "WSJ", n, pool=TRICKY_DOCNOS if q % 5 == 0 else None)
        scores = []
        for _ in docs:
            v = rng.choice([3, 3, -2, 0, 1, 2, 5, 10, -7, 100])
            scores.append(rng.choice(spell[v]) if v in spell else str(v))
        add_ranking(c, rng, qid, docs, scores, rank_mode="random")
        extra = uniq_docs(rng, "AP", rng.randint(0, 8))
        judge(c, rng, qid, docs, extra, [45, 25, 15, 10, 5], neg_prob=0.05)
    return c


def case_04(rng):
    c = Case("case-04", "scores that differ only beyond float32 precision "
             "(0.1 vs 0.1000000001, 16777216 vs 16777217, 1e39 vs 2e39 -> inf, "
             "1e-46 -> 0), next to ones that differ within float32 precision")
    groups = [
        ["0.1", "0.1000000001", "0.10000000149", "0.09999999999"],  # one float32 value
        ["0.1000001", "0.1000002"],  # distinct float32 values above 0.1
        ["16777216", "16777217", "16777216.5"],  # 2^24: float32 ties
        ["16777218", "16777219"],  # 16777218 and 16777220 in float32
        ["1e39", "2e39", "3.5e38"],  # +inf in float32
        ["1e-46", "0", "-1e-46", "-0"],  # 0 in float32
        ["1.0000001", "1.00000011", "1.0000002"],
        ["0.3333333333", "0.33333334", "0.333333343"],
    ]
    for q in range(1, 13):
        qid = f"p{q}"
        docs = []
        scores = []
        pool = uniq_docs(rng, "doc", 60, pool=TRICKY_DOCNOS)
        k = 0
        for g in rng.sample(groups, rng.randint(3, len(groups))):
            for s in g:
                for _ in range(rng.randint(1, 2)):
                    docs.append(pool[k])
                    scores.append(s)
                    k += 1
        add_ranking(c, rng, qid, docs, scores, rank_mode=rng.choice(["order", "random"]))
        judge(c, rng, qid, docs, [], [40, 25, 15, 10, 10], judge_prob=0.85)
    return c


def case_05(rng):
    c = Case("case-05", "queries only in qrels (matter for -c), queries only in the run, "
             "queries with all-zero judgments, queries relevant only at level 1 "
             "(num_rel 0 under -l 2), qids whose string order differs from numeric "
             "(1, 10, 2, q3, Q3, 03)")
    both = ["1", "10", "2", "q3", "Q3", "03", "20", "100"]
    qrels_only = ["11", "4", "q9", "zz"]
    run_only = ["5", "q1", "999"]
    for qid in both + run_only:
        n = rng.randint(5, 40)
        docs = uniq_docs(rng, "CR", n)
        scores = [fmt_float(rng, round(rng.uniform(0, 1), 3)) for _ in docs]
        add_ranking(c, rng, qid, docs, scores)
        if qid in run_only:
            continue
        if qid in ("2", "20"):
            for d in docs[: rng.randint(3, n)]:
                c.add_qrel(qid, d, 0)  # all judgments 0: no relevant docs
        elif qid in ("q3", "100"):
            for d in docs:
                if rng.random() < 0.6:
                    c.add_qrel(qid, d, rng.choice([0, 1, 1]))  # relevant only at level 1
        else:
            judge(c, rng, qid, docs, uniq_docs(rng, "FR", 4), [40, 25, 15, 10, 10],
                  neg_prob=0.03)
    for qid in qrels_only:
        for d in uniq_docs(rng, "FB", rng.randint(3, 12)):
            c.add_qrel(qid, d, rng.choice([0, 1, 2, 3, -1]))
        c.add_qrel(qid, "FB-rel", 2)  # at least one relevant (also at -l 2)
    return c


def case_06(rng):
    c = Case("case-06", "tiny queries: one retrieved doc (relevant / nonrelevant / "
             "unjudged / judged -1), one judgment, docs judged but never retrieved")
    specs = [
        ("s1", ["A1"], [("A1", 1)]),
        ("s2", ["A1"], [("A1", 0), ("A2", 3)]),
        ("s3", ["A9"], [("A1", 2)]),  # retrieved doc unjudged
        ("s4", ["A1"], [("A1", -1), ("A2", 1)]),  # retrieved doc judged -1
        ("s5", ["A1"], [("A1", 4), ("A2", 4), ("A3", 1)]),
        ("s6", ["A1", "A2"], [("A2", 2)]),
        ("s7", ["B"], [("B", 2), ("a", 1)]),
        ("s8", ["x"], [("y", 0), ("x", 0)]),  # all-zero judgments
    ]
    for qid, docs, rels in specs:
        scores = [fmt_float(rng, rng.uniform(0, 2)) for _ in docs]
        add_ranking(c, rng, qid, docs, scores)
        for d, r in rels:
            c.add_qrel(qid, d, r)
    for q in range(9, 15):  # a few random small ones
        qid = f"s{q}"
        n = rng.randint(1, 6)
        docs = uniq_docs(rng, "S", n, pool=TRICKY_DOCNOS)
        scores = [rng.choice(["2", "1", "1.5"]) for _ in docs]
        add_ranking(c, rng, qid, docs, scores, rank_mode="reverse")
        judge(c, rng, qid, docs, uniq_docs(rng, "T", rng.randint(0, 2)), [30, 30, 20, 10, 10],
              neg_prob=0.1, judge_prob=0.7)
    return c


def case_07(rng):
    c = Case("case-07", "long rankings (1050-1250 docs) with relevant docs before and after "
             "rank 1000 (recall.1000, P.1000, map_cut.1000 and -M matter); 3 queries")
    for qid in ["301", "302", "303"]:
        n = rng.randint(1050, 1250)
        docs = [f"LTR{qid}-{i:05d}" for i in rng.sample(range(100000), n)]
        scores = [f"{rng.uniform(0, 50):.4f}" for _ in docs]
        # a block of ties deep in the list
        for i in range(200, 260):
            scores[i] = "7.5000"
        add_ranking(c, rng, qid, docs, scores)
        order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
        for pos, i in enumerate(order):
            p = 0.3 if pos < 20 else (0.08 if pos < 1000 else 0.05)
            if rng.random() < p:
                c.add_qrel(qid, docs[i], rng.choice([1, 1, 2, 3]))
            elif rng.random() < 0.1:
                c.add_qrel(qid, docs[i], 0)
        for d in uniq_docs(rng, f"NR{qid}-", 30):
            c.add_qrel(qid, d, rng.choice([0, 1, 2, 4]))
    return c


def case_08(rng):
    c = Case("case-08", "kitchen sink: 26 queries mixing every feature above; run tag varies "
             "per line (runid is taken from the last line of the file)")
    qids = []
    while len(qids) < 26:
        q = rng.choice([str(rng.randint(1, 200)), f"q{rng.randint(1, 50)}",
                        f"Q{rng.randint(1, 50)}", f"{rng.randint(1, 99):03d}"])
        if q not in qids:
            qids.append(q)
    for j, qid in enumerate(qids):
        kind = j % 5
        n = rng.randint(1, 90) if kind else rng.randint(1, 5)
        docs = uniq_docs(rng, rng.choice(["d", "D", "doc", "x"]), n,
                         pool=TRICKY_DOCNOS if rng.random() < 0.4 else None)
        if kind == 1:
            scores = [rng.choice(["1", "2", "3"]) for _ in docs]
        elif kind == 2:
            scores = [rng.choice(["0.1", "0.1000000001", "0.2", "0.2000000001"]) for _ in docs]
        else:
            scores = [fmt_float(rng, round(rng.gauss(0, 3), rng.randint(1, 6))) for _ in docs]
        tag = rng.choice(["runA", "runB", "sys-7"])
        add_ranking(c, rng, qid, docs, scores, rank_mode=rng.choice(["order", "random", "reverse"]),
                    tag=tag)
        if j % 9 == 8:
            continue  # run-only query
        judge(c, rng, qid, docs, uniq_docs(rng, "U", rng.randint(0, 10)), [45, 22, 15, 10, 8],
              neg_prob=0.04, judge_prob=rng.choice([0.3, 0.7, 1.0]))
    for qid in ["qrels-only-1", "qrels-only-2"]:
        for d in uniq_docs(rng, "Z", 5):
            c.add_qrel(qid, d, rng.choice([0, 1, 2]))
    return c


CASES = [case_01, case_02, case_03, case_04, case_05, case_06, case_07, case_08]


# ---------------------------------------------------------------- writing

def has_relevance(case):
    """Every evaluated query must keep at least one qrels line with rel >= 0.

    A query whose judgments are all negative makes trec_eval 9.0.8 reuse stale
    state from the previously evaluated query (see README), so we avoid it."""
    per_q = {}
    for qid, _it, _d, rel in case.qrels:
        per_q.setdefault(qid, []).append(rel)
    return all(any(r >= 0 for r in rels) for rels in per_q.values())


def write_case(case, rng, outdir: Path):
    d = outdir / case.name
    d.mkdir(parents=True, exist_ok=True)
    # drop duplicate (qid, docno) judgments, keep first
    seen = set()
    qrels = []
    for row in case.qrels:
        key = (row[0], row[2])
        if key not in seen:
            seen.add(key)
            qrels.append(row)
    case.qrels = qrels
    assert has_relevance(case), case.name
    run_seen = set()
    for row in case.run:
        key = (row[0], row[2])
        assert key not in run_seen, ("duplicate docno in run", case.name, key)
        run_seen.add(key)
    q_lines = [f"{q} {it} {doc} {rel}" for q, it, doc, rel in qrels]
    r_lines = [f"{q} {it} {doc} {rank} {score} {tag}" for q, it, doc, rank, score, tag in case.run]
    rng.shuffle(q_lines)  # input order must not matter
    rng.shuffle(r_lines)
    (d / "qrels.txt").write_text("\n".join(q_lines) + "\n", encoding="utf-8")
    (d / "run.txt").write_text("\n".join(r_lines) + "\n", encoding="utf-8")
    return d


def pytrec_reference(case_dir: Path):
    import pytrec_eval  # noqa: PLC0415

    qrel = {}
    for line in (case_dir / "qrels.txt").read_text(encoding="utf-8").splitlines():
        q, _it, doc, rel = line.split()
        qrel.setdefault(q, {})[doc] = int(rel)
    run = {}
    for line in (case_dir / "run.txt").read_text(encoding="utf-8").splitlines():
        q, _it, doc, _rank, score, _tag = line.split()
        run.setdefault(q, {})[doc] = float(score)
    out = {}
    for level in (1, 2):
        ev = pytrec_eval.RelevanceEvaluator(qrel, PYTREC_MEASURES, relevance_level=level)
        res = ev.evaluate(run)
        out[f"relevance_level_{level}"] = {
            q: {m: res[q][m] for m in sorted(res[q])} for q in sorted(res)
        }
    # Compact but diff-friendly: one line per (relevance level, query).
    parts = []
    for level_key in sorted(out):
        rows = [f" {json.dumps(q)}: {json.dumps(v, sort_keys=True, separators=(',', ':'))}"
                for q, v in out[level_key].items()]
        parts.append(f"{json.dumps(level_key)}: {{\n" + ",\n".join(rows) + "\n}")
    text = "{" + ",\n".join(parts) + "}\n"
    assert json.loads(text) == out
    (case_dir / "pytrec_eval.json").write_text(text, encoding="utf-8")


def run_trec_eval(binary, case_dir: Path):
    entries = []
    exp = case_dir / "expected"
    exp.mkdir(exist_ok=True)
    for slug, args in FLAG_SETS:
        cmd = [binary] + args + ["qrels.txt", "run.txt"]
        proc = subprocess.run(cmd, cwd=case_dir, capture_output=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"trec_eval failed for {case_dir.name} {slug}: "
                     f"{proc.stderr.decode(errors='replace')}")
        (exp / f"{slug}.txt").write_bytes(proc.stdout)
        entries.append({"case": case_dir.name, "expected": f"expected/{slug}.txt",
                        "args": args})
    return entries


def main():
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path,
                    default=root / "crates/eval/tests/fixtures/trec_eval")
    ap.add_argument("--trec-eval", help="path to a trec_eval 9.0.8 binary")
    ap.add_argument("--no-pytrec", action="store_true", help="skip pytrec_eval.json")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    all_entries = []
    for i, fn in enumerate(CASES, start=1):
        rng = random.Random(SEED * 100 + i)
        case = fn(rng)
        d = write_case(case, rng, a.out)
        if not a.no_pytrec:
            pytrec_reference(d)
        if a.trec_eval:
            all_entries += run_trec_eval(os.path.abspath(a.trec_eval), d)
        print(f"{case.name}: {len(case.qrels)} qrels, {len(case.run)} run lines - {case.note}")
    if a.trec_eval:
        (a.out / "cases.json").write_text(json.dumps(all_entries, indent=1) + "\n",
                                          encoding="utf-8")


if __name__ == "__main__":
    main()
