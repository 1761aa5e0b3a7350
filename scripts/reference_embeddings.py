#!/usr/bin/env python3
"""Reference embeddings from Python onnxruntime + tokenizers, for the Rust parity test.

Runs the same files the Rust encoder uses (model.onnx and tokenizer.json from
scripts/setup-assets) with the same settings (truncation to 256 tokens, mean
pooling over non-padding tokens, L2 normalisation) and writes a small JSON
fixture: the sentences, their token ids, and their embeddings as exact float32
values.

Usage (after `scripts/setup-assets --with-python-reference`):
    assets/.venv/bin/python scripts/reference_embeddings.py \
        [--model-dir assets/models/all-MiniLM-L6-v2] \
        [--out crates/encoders/tests/fixtures/minilm_reference.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
MAX_LENGTH = 256

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "The new movie is so great!",
    "Vitamin C deficiency causes scurvy.",
    "",
    "   ",
    "Ceci n'est pas une pipe — déjà vu, naïve façade.",
    "机器学习是人工智能的一个分支。",
    "Машинное обучение — раздел искусственного интеллекта.",
    "التعلم الآلي هو فرع من فروع الذكاء الاصطناعي",
    "Emoji only: 🚀🔥🧪",
    # Longer than MAX_LENGTH tokens: checks truncation.
    " ".join(["Dense retrieval encodes queries and passages into vectors."] * 40),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "assets/models/all-MiniLM-L6-v2")
    ap.add_argument("--out", type=Path, default=ROOT / "crates/encoders/tests/fixtures/minilm_reference.json")
    args = ap.parse_args()

    onnx_path = args.model_dir / "model.onnx"
    tok = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    tok.enable_truncation(MAX_LENGTH)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest of the batch

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in sess.get_inputs()]

    enc = tok.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    types = np.array([e.type_ids for e in enc], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    hidden = sess.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in input_names})[0]

    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    pooled = pooled.astype(np.float32)

    fixture = {
        "about": "Python onnxruntime + tokenizers reference for crates/encoders/tests/parity.rs; "
        "regenerate with scripts/reference_embeddings.py",
        "model": args.model_dir.name,
        "onnx_sha256": sha256(onnx_path),
        "tokenizer_sha256": sha256(args.model_dir / "tokenizer.json"),
        "onnxruntime": ort.__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "max_length": MAX_LENGTH,
        "pooling": "mean",
        "normalized": True,
        "dim": int(pooled.shape[1]),
        "items": [
            {
                "text": s,
                "token_ids": [int(t) for t, a in zip(e.ids, e.attention_mask) if a],
                # Shortest decimal that round-trips to the same float32.
                "embedding": [float(str(x)) for x in row],
            }
            for s, e, row in zip(SENTENCES, enc, pooled)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One item per line keeps the file small and its diffs readable.
    items = fixture.pop("items")
    head = json.dumps(fixture, ensure_ascii=False, indent=1)
    body = ",\n".join(json.dumps(it, ensure_ascii=False) for it in items)
    args.out.write_text(head[:-2] + ',\n "items": [\n' + body + "\n ]\n}\n")
    print(f"wrote {args.out} ({len(SENTENCES)} sentences, dim {pooled.shape[1]})")


if __name__ == "__main__":
    main()
