#!/usr/bin/env python3
"""Python counterpart of `cargo run --release -p latent-terms-encoders --example throughput`.

Same ONNX file, same tokenizer, same settings and the same batching as the Rust
encoder: tokenise (truncation to max length, no padding), sort by token length,
batches padded to their longest text, ONNX Runtime with the given intra-op
threads (inter-op 1, all graph optimisations), mean pooling, L2 normalisation.

Usage (after `scripts/setup-assets --with-python-reference`):
    assets/.venv/bin/python scripts/bench-encoders.py [--model DIR] [--corpus PATH] \
        [--n 200] [--batch 32] [--threads 2] [--max-length 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent


def read_corpus(path: Path, n: int) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if len(out) == n:
                break
            d = json.loads(line)
            out.append(f"{d.get('title', '')} {d.get('text', '')}".strip())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "assets/models/all-MiniLM-L6-v2")
    ap.add_argument("--corpus", type=Path, default=ROOT / "../shared/data/scifact/corpus.jsonl.gz")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    texts = read_corpus(a.corpus, a.n)
    tok = Tokenizer.from_file(str(a.model / "tokenizer.json"))
    tok.enable_truncation(a.max_length)
    tok.no_padding()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(a.model / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def encode(batch_texts: list[str]) -> tuple[np.ndarray, dict[str, float]]:
        t = {"tokenize": 0.0, "inference": 0.0, "pooling": 0.0}
        t0 = time.perf_counter()
        enc = tok.encode_batch(batch_texts)
        order = sorted(range(len(enc)), key=lambda i: -len(enc[i].ids))
        t["tokenize"] += time.perf_counter() - t0
        out = None
        for s in range(0, len(order), a.batch):
            idx = order[s : s + a.batch]
            t1 = time.perf_counter()
            seq = max(len(enc[i].ids) for i in idx)
            ids = np.zeros((len(idx), seq), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for r, i in enumerate(idx):
                e = enc[i]
                n = len(e.ids)
                ids[r, :n] = e.ids
                mask[r, :n] = e.attention_mask
                types[r, :n] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = sess.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in names})[0]
            t2 = time.perf_counter()
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.zeros((len(enc), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
            t["inference"] += t2 - t1
            t["pooling"] += time.perf_counter() - t2
        return out, t

    encode(texts[: a.batch])  # warm-up
    words = sum(len(t.split()) for t in texts)
    print(
        f"python: {len(texts)} passages ({words / max(len(texts), 1):.0f} words on average), batch {a.batch}, "
        f"threads {a.threads}, max length {a.max_length}, onnxruntime {ort.__version__}"
    )
    rates = []
    for run in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out, t = encode(texts)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        rate = len(texts) / wall
        rates.append(rate)
        print(
            f"run {run}: {rate:.1f} passages/s, wall {wall:.3f} s, cpu {cpu:.2f} s ({1000 * cpu / len(texts):.1f} ms/passage): tokenize {t['tokenize']:.3f} s "
            f"({100 * t['tokenize'] / wall:.1f}%), inference {t['inference']:.3f} s ({100 * t['inference'] / wall:.1f}%), "
            f"pooling {t['pooling']:.4f} s ({100 * t['pooling'] / wall:.2f}%)"
        )
    print(f"python: median {sorted(rates)[len(rates) // 2]:.1f} passages/s")


if __name__ == "__main__":
    main()
