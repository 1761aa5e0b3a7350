#!/usr/bin/env python3
"""Writes a few small valid SAE checkpoints (the format of crates/sae/src/weights.rs:
safetensors with W_enc, b_enc, W_dec, b_dec, threshold as F32 and __metadata__ cfg +
crc32 + format) into a corpus folder for `cargo fuzz run sae_checkpoint`, so the fuzzer
starts past the header and checksum checks.  Standard library only.

Usage: python3 fuzz/seed-sae-checkpoint.py fuzz/corpus/sae_checkpoint
"""

import json
import random
import struct
import sys
import zlib
from pathlib import Path


def checkpoint(kind: str, d_in: int, d_sae: int, k: int, threshold, seed: int) -> bytes:
    rng = random.Random(seed)
    w_dec = [[rng.uniform(-1, 1) for _ in range(d_in)] for _ in range(d_sae)]
    w_dec = [[v / (sum(x * x for x in row) ** 0.5) for v in row] for row in w_dec]
    w_enc = [w_dec[j][i] for i in range(d_in) for j in range(d_sae)]  # [d_in, d_sae]
    arrays = [
        ("W_enc", [d_in, d_sae], w_enc),
        ("b_enc", [d_sae], [rng.uniform(-0.1, 0.1) for _ in range(d_sae)]),
        ("W_dec", [d_sae, d_in], [v for row in w_dec for v in row]),
        ("b_dec", [d_in], [rng.uniform(-0.1, 0.1) for _ in range(d_in)]),
        ("threshold", [d_sae], [threshold or 0.0] * d_sae),
    ]
    blobs = [struct.pack(f"<{len(a)}f", *a) for _, _, a in arrays]
    crc = 0
    for b in blobs:
        crc = zlib.crc32(b, crc)
    cfg = {
        "architecture": "jumprelu" if kind == "batchtopk" else "topk",
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "k": k,
        "kind": kind,
        "threshold": threshold,
        "metadata": {},
        "activation_fn_kwargs": {"k": k},
        "model_name": "latent-terms",
    }
    meta = {"cfg": json.dumps(cfg), "crc32": f"{crc:08x}", "format": "latent-terms-sae/1"}
    return safetensors_file(arrays, blobs, meta)


def safetensors_file(arrays, blobs, metadata) -> bytes:
    """A safetensors file of F32 tensors `(name, shape, _)` with their packed `blobs`."""
    header = {"__metadata__": metadata}
    offset = 0
    for (name, shape, _), blob in zip(arrays, blobs):
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/sae_checkpoint")
    out.mkdir(parents=True, exist_ok=True)
    for name, args in {
        "topk-4x8": ("topk", 4, 8, 2, None, 1),
        "batchtopk-3x5": ("batchtopk", 3, 5, 1, 0.25, 2),
        "kld-2x3": ("kld", 2, 3, 1, None, 3),
    }.items():
        data = checkpoint(*args)
        (out / f"{name}.safetensors").write_bytes(data)
        print(f"{out / name}.safetensors: {len(data)} bytes")


if __name__ == "__main__":
    main()
