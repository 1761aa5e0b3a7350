#!/usr/bin/env python3
"""Prints the markdown tables of docs/results.md from `latent-terms run` reports.

Usage: scripts/results-table.py out/run/scifact out/run/cranfield ...
Each argument is a report directory holding results.json.
"""
import json
import sys

POOLED = ["bm25", "dense", "dense-reconstructed", "lt-bm25", "clsr", "clsr-dot",
          "hybrid-rrf", "hybrid-linear", "rrf-bm25-dense"]
TOKENS = ["bm25", "dense", "lt-tokens-bm25", "lt-tokens-clsr", "rrf-bm25-dense",
          "hybrid-tokens-rrf", "hybrid-tokens-linear", "hybrid-tokens-dense-rrf"]
METHODS = POOLED


def load(path):
    with open(f"{path}/results.json") as f:
        return json.load(f)


def measure(report, method, key):
    for row in report["rows"]:
        if row["method"] == method:
            return row.get(key)
    return None


def table(reports, key, title):
    print(f"\n{title}\n")
    print("| collection | " + " | ".join(METHODS) + " |")
    print("|---" * (len(METHODS) + 1) + "|")
    for r in reports:
        values = [measure(r, m, key) for m in METHODS]
        best = max(v for v in values if v is not None)
        cells = [("**%.4f**" if v == best else "%.4f") % v if v is not None else "–" for v in values]
        print(f"| {r['dataset']} | " + " | ".join(cells) + " |")


def token_tables(reports):
    """The token representation's SAE, sparsity and efficiency beside lexical BM25."""
    print("\nToken SAE, sparsity and efficiency (exact BM25 latency, ms per query, single thread)\n")
    print("| collection | docs | corpus tokens | SAE training rows | training NMSE | validation NMSE "
          "| dead | latents/doc | latents/query | postings | index bytes (lexical) | FLOPs (lexical) "
          "| top-10 ms (lexical) | top-1000 ms (lexical) | params |")
    print("|---" * 15 + "|")
    for r in reports:
        t = r["tokens"]
        lat, lex = t["latency"], r.get("lexical_latency") or {"top10_ms": 0, "top1000_ms": 0}
        v = t.get("validation_nmse")
        tn = t.get("training_nmse")
        p = t["params"]
        print(f"| {r['dataset']} | {r['docs']} | {t['corpus_tokens']:,} | {t['training_rows']:,} | "
              f"{'%.3f' % tn if tn is not None else '–'} | {'%.3f' % v if v is not None else '–'} | "
              f"{'%.1f%%' % (100 * t['dead_fraction']) if t.get('dead_fraction') is not None else '–'} | "
              f"{t['avg_latents_per_doc']:.0f} | {t['avg_latents_per_query']:.0f} | {t['postings']:,} | "
              f"{t['index_bytes']:,} ({r['lexical_index_bytes']:,}) | {t['flops']:.1f} ({r['lexical_flops']:.2f}) | "
              f"{lat['top10_ms']:.2f} ({lex['top10_ms']:.2f}) | {lat['top1000_ms']:.2f} ({lex['top1000_ms']:.2f}) | "
              f"BM25 {tuple(round(x, 2) for x in p['bm25'])}, CL-SR {tuple(round(x, 2) for x in p['clsr'])}, "
              f"w {p['linear_weight']}: {p['source'].split('(')[0].strip()} |")


def main():
    global METHODS
    reports = [load(p) for p in sys.argv[1:]]
    if all(r.get("tokens") and not r.get("d_sae") for r in reports):
        METHODS = TOKENS
        table(reports, "ndcg_cut_10", "nDCG@10 (best per collection in bold)")
        table(reports, "recip_rank@10", "MRR@10")
        table(reports, "recall_10", "Recall@10")
        table(reports, "recall_100", "Recall@100")
        token_tables(reports)
        return
    table(reports, "ndcg_cut_10", "nDCG@10 (best per collection in bold)")
    table(reports, "recip_rank@10", "MRR@10")
    table(reports, "recall_100", "Recall@100")
    for r in reports:
        if "limit" not in r["dataset"]:
            continue
        print(f"\n{r['dataset']}: recall at the LIMIT paper's cutoffs\n")
        print("| method | R@2 | R@10 | R@20 | R@100 |")
        print("|---|---|---|---|---|")
        for m in METHODS:
            cells = [measure(r, m, f"recall_{k}") for k in (2, 10, 20, 100)]
            print(f"| {m} | " + " | ".join("–" if v is None else "%.4f" % v for v in cells) + " |")
    print("\nSAE, sparsity and efficiency\n")
    print("| collection | docs | test queries | NMSE (corpus) | Spearman dense vs reconstructed (top 100) "
          "| latents/doc | latents/query | FLOPs latent (lexical) | index bytes latent (lexical) "
          "| latents used / d_sae | Zipf exponent latent (lexical) | params |")
    print("|---" * 12 + "|")
    for r in reports:
        p = r["params"]
        z = r["zipf"]
        exp = lambda c: "%.2f" % c["exponent"] if c.get("exponent") is not None else "–"
        sp = r.get("spearman_dense_vs_reconstructed")
        print(f"| {r['dataset']} | {r['docs']} | {r['queries']} | {r['nmse']:.3f} | "
              f"{'%.3f' % sp if sp is not None else '–'} | {r['avg_latents_per_doc']:.1f} | "
              f"{r['avg_latents_per_query']:.1f} | {r['flops']:.2f} ({r['lexical_flops']:.2f}) | "
              f"{r['index_bytes']:,} ({r['lexical_index_bytes']:,}) | {r['latents_used']} / {r['d_sae']} | "
              f"{exp(z['latent'])} ({exp(z['lexical'])}) | doc_k {p['doc_k']}, query_k {p['query_k']}, "
              f"CL-SR {tuple(round(x, 2) for x in p['clsr'])}, hybrid {p['hybrid_latent']} w {p['linear_weight']}: {p['source'].split(':')[0]} |")
    print("\nMismatch sets: queries whose relevant documents BM25 misses in its top d, and MRR@10 on them\n")
    print("| collection | d | queries | " + " | ".join(METHODS) + " |")
    print("|---" * (len(METHODS) + 3) + "|")
    for r in reports:
        for m in r["mismatch"]:
            mrr = dict((k, v) for k, v in m["mrr_at_10"])
            cells = ["%.3f" % mrr[k] if mrr.get(k) is not None else "–" for k in METHODS]
            print(f"| {r['dataset']} | {m['depth']} | {m['queries']} | " + " | ".join(cells) + " |")
    print("\nStage seconds (cached stages marked c)\n")
    stages = sorted({s for r in reports for s in r["stage_seconds"]})
    print("| collection | " + " | ".join(stages) + " |")
    print("|---" * (len(stages) + 1) + "|")
    for r in reports:
        cells = []
        for s in stages:
            t = r["stage_seconds"].get(s)
            cells.append("–" if t is None else ("%.1f%s" % (t, " c" if s in r["cached_stages"] else "")))
        print(f"| {r['dataset']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
