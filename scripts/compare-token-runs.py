#!/usr/bin/env python3
"""Compares two sets of token-level reports (`latent-terms run --representation tokens`)
collection by collection: postings, index bytes and nDCG@10 of the token rows, with the
cut and the change. Used for the efficiency levers of docs/results.md.

Usage: scripts/compare-token-runs.py BASE_DIR NEW_DIR [NAME ...]
(default names: the five text collections; each DIR/NAME/results.json is read)."""
import json
import sys

TEXT = ["scifact", "nfcorpus-partial", "cranfield", "cacm", "vaswani_npl"]
ROWS = ["lt-tokens-bm25", "lt-tokens-clsr", "hybrid-tokens-rrf", "hybrid-tokens-linear"]


def load(base, name):
    with open(f"{base}/{name}/results.json") as f:
        r = json.load(f)
    ndcg = {row["method"]: row["ndcg_cut_10"] for row in r["rows"]}
    return r["tokens"], ndcg


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, new = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or TEXT
    print("| collection | postings | postings, new | cut | latents/doc | latents/doc, new | "
          + " | ".join(f"{r} Δ" for r in ROWS) + " | rrf-bm25-dense |")
    print("|---" * (6 + len(ROWS) + 1) + "|")
    total = [0, 0]
    deltas = {r: [] for r in ROWS}
    for name in names:
        (tb, nb), (tn, nn) = load(base, name), load(new, name)
        total[0] += tb["postings"]
        total[1] += tn["postings"]
        cells = []
        for r in ROWS:
            d = nn[r] - nb[r]
            deltas[r].append(d)
            cells.append(f"{nb[r]:.4f} → {nn[r]:.4f} ({d:+.4f})")
        print(f"| {name} | {tb['postings']:,} | {tn['postings']:,} | "
              f"{tb['postings'] / tn['postings']:.2f}× | {tb['avg_latents_per_doc']:.0f} | "
              f"{tn['avg_latents_per_doc']:.0f} | " + " | ".join(cells)
              + f" | {nn['rrf-bm25-dense']:.4f} |")
    mean = " | ".join(f"mean {sum(v) / len(v):+.4f}" for v in deltas.values())
    print(f"| all | {total[0]:,} | {total[1]:,} | {total[0] / total[1]:.2f}× | | | {mean} | |")


if __name__ == "__main__":
    main()
