#!/usr/bin/env python3
"""Token-level reference from Python onnxruntime + tokenizers, for the Rust parity test
of `Encoder::encode_tokens` (crates/encoders/tests/minilm.rs).

Runs model.onnx and tokenizer.json of all-MiniLM-L6-v2 (from scripts/setup-assets)
with truncation to 256 tokens and writes, for a few sentences, every token the
model sees (id, special-tokens flag, byte offsets into the text without its
prefix) and the raw `last_hidden_state` rows of the content tokens (special
tokens and tokens inside the prefix dropped), rounded to 6 decimals.

Usage (after `scripts/setup-assets --with-python-reference`):
    assets/.venv/bin/python scripts/reference_tokens.py \
        [--model-dir assets/models/all-MiniLM-L6-v2] \
        [--out crates/encoders/tests/fixtures/minilm_tokens_reference.json]
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

# (kind, prefix, text): multi-byte characters check that offsets are bytes, not chars.
ITEMS = [
    ("passage", "", "A man is eating food."),
    ("passage", "", "Vitamin C deficiency causes scurvy."),
    ("passage", "", "Ceci n'est pas une pipe — déjà vu, naïve façade."),
    ("passage", "", "机器学习是人工智能。"),
    ("passage", "", "Emoji: 🚀🔥 ok"),
    ("passage", "", ""),
    ("query", "query: ", "what causes scurvy?"),
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
    ap.add_argument("--out", type=Path, default=ROOT / "crates/encoders/tests/fixtures/minilm_tokens_reference.json")
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

    inputs = [prefix + text for _, prefix, text in ITEMS]
    enc = tok.encode_batch(inputs)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    types = np.array([e.type_ids for e in enc], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    hidden = sess.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in input_names})[0]

    items = []
    for (kind, prefix, text), full, e, h in zip(ITEMS, inputs, enc, hidden):
        # Python tokenizers gives offsets in characters: convert to bytes of the input.
        byte_at = [0]
        for ch in full:
            byte_at.append(byte_at[-1] + len(ch.encode("utf-8")))
        plen = len(prefix.encode("utf-8"))
        tokens, rows = [], []
        for k, (tid, m, special, (s, t)) in enumerate(
            zip(e.ids, e.attention_mask, e.special_tokens_mask, e.offsets)
        ):
            if not m:
                continue  # padding
            bs, be = byte_at[s], byte_at[t]
            in_prefix = plen > 0 and be <= plen
            content = not special and not in_prefix
            tokens.append(
                {
                    "id": int(tid),
                    "special": bool(special),
                    "content": content,
                    "offsets": [max(bs - plen, 0), max(be - plen, 0)] if content else [0, 0],
                }
            )
            if content:
                rows.append([round(float(x), 6) for x in h[k]])
        items.append({"kind": kind, "prefix": prefix, "text": text, "tokens": tokens, "rows": rows})

    fixture = {
        "about": "Python onnxruntime + tokenizers token-level reference for crates/encoders/tests/minilm.rs; "
        "regenerate with scripts/reference_tokens.py",
        "model": args.model_dir.name,
        "onnx_sha256": sha256(onnx_path),
        "tokenizer_sha256": sha256(args.model_dir / "tokenizer.json"),
        "onnxruntime": ort.__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "max_length": MAX_LENGTH,
        "dim": int(hidden.shape[2]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps(fixture, ensure_ascii=False, indent=1)
    body = ",\n".join(json.dumps(it, ensure_ascii=False) for it in items)
    args.out.write_text(head[:-2] + ',\n "items": [\n' + body + "\n ]\n}\n")
    n_rows = sum(len(it["rows"]) for it in items)
    print(f"wrote {args.out} ({len(items)} texts, {n_rows} content tokens, dim {hidden.shape[2]})")


if __name__ == "__main__":
    main()
