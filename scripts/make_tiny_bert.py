#!/usr/bin/env python3
"""Writes a tiny random BERT (hidden 8, one layer, no token_type_ids) as a test fixture.

The fixture lets the encoder tests exercise the whole pipeline without the
MiniLM assets (only the ONNX Runtime library is needed): a graph without a
`token_type_ids` input, CLS / last-token pooling, and a second graph whose
output is NaN (`model-nan.onnx`) for the non-finite error path.

Usage (after `scripts/setup-assets --with-python-reference`):
    assets/.venv/bin/python scripts/make_tiny_bert.py [OUT_DIR]
(OUT_DIR defaults to crates/encoders/tests/fixtures/tiny-bert)
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

ROOT = Path(__file__).resolve().parent.parent
HIDDEN, HEADS, LAYERS, FFN, MAX_POS = 8, 2, 1, 16, 32
WORDS = "the a of and to in is was for on that with as by at from it this are be dense sparse retrieval query passage vector model".split()
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
VOCAB = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + LETTERS + ["##" + c for c in LETTERS]))


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (len(h) % 8)) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    w = {
        "embeddings.word_embeddings.weight": rng.normal(0, 0.5, (len(VOCAB), HIDDEN)),
        "embeddings.position_embeddings.weight": rng.normal(0, 0.5, (MAX_POS, HIDDEN)),
        "embeddings.LayerNorm.weight": np.ones(HIDDEN),
        "embeddings.LayerNorm.bias": np.zeros(HIDDEN),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for n in ("query", "key", "value"):
            w[f"{p}.attention.self.{n}.weight"] = rng.normal(0, 0.3, (HIDDEN, HIDDEN))
            w[f"{p}.attention.self.{n}.bias"] = rng.normal(0, 0.1, HIDDEN)
        w[f"{p}.attention.output.dense.weight"] = rng.normal(0, 0.3, (HIDDEN, HIDDEN))
        w[f"{p}.attention.output.dense.bias"] = np.zeros(HIDDEN)
        w[f"{p}.attention.output.LayerNorm.weight"] = np.ones(HIDDEN)
        w[f"{p}.attention.output.LayerNorm.bias"] = np.zeros(HIDDEN)
        w[f"{p}.intermediate.dense.weight"] = rng.normal(0, 0.3, (FFN, HIDDEN))
        w[f"{p}.intermediate.dense.bias"] = np.zeros(FFN)
        w[f"{p}.output.dense.weight"] = rng.normal(0, 0.3, (HIDDEN, FFN))
        w[f"{p}.output.dense.bias"] = np.zeros(HIDDEN)
        w[f"{p}.output.LayerNorm.weight"] = np.ones(HIDDEN)
        w[f"{p}.output.LayerNorm.bias"] = np.zeros(HIDDEN)
    return {k: np.asarray(v, dtype=np.float32) for k, v in w.items()}


def tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "crates/encoders/tests/fixtures/tiny-bert"
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert",
        "hidden_size": HIDDEN,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "intermediate_size": FFN,
        "max_position_embeddings": MAX_POS,
        "vocab_size": len(VOCAB),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer().save(str(out / "tokenizer.json"))
    w = weights(np.random.default_rng(7))
    exporter = ROOT / "scripts/export_bert_onnx.py"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "config.json").write_text(json.dumps(config))
        write_safetensors(t / "model.safetensors", w)
        subprocess.run([sys.executable, exporter, t, out / "model.onnx", "--check"], check=True)
        w["encoder.layer.0.output.LayerNorm.weight"][0] = np.nan
        write_safetensors(t / "model.safetensors", w)
        subprocess.run([sys.executable, exporter, t, out / "model-nan.onnx"], check=True)
    print(f"wrote tiny BERT fixture to {out}")


if __name__ == "__main__":
    main()
