#!/usr/bin/env python3
"""Writes a few small valid embeddings stores (format version 2 of
crates/encoders/src/store.rs, described in docs/encoders.md: safetensors with
`embeddings` F32/F16, `ids` U8 JSON and `crc32` U32 over every byte before it) into a
corpus folder for `cargo fuzz run embeddings_store`, so the fuzzer starts past the
header and checksum checks.  An independent writer of the layout: standard library
only.

Usage: python3 fuzz/seed-embeddings-store.py fuzz/corpus/embeddings_store
"""

import json
import random
import struct
import sys
import zlib
from pathlib import Path


def store(dtype: str, ids: list, dim: int, seed: int, pooling="mean") -> bytes:
    rng = random.Random(seed)
    values = [rng.uniform(-1, 1) for _ in range(len(ids) * dim)]
    code = "<%d%s" % (len(values), "f" if dtype == "F32" else "e")
    emb = struct.pack(code, *values)
    id_bytes = json.dumps(ids, ensure_ascii=False, separators=(",", ":")).encode()
    id_bytes += b" " * (-len(id_bytes) % 4)
    e, i = len(emb), len(emb) + len(id_bytes)
    header = {
        "__metadata__": {
            "format": "latent-terms-embeddings",
            "version": "2",
            "checksum": "crc32",
            "model": "seed-model",
            "pooling": pooling,
            "normalized": "false",
            "dim": str(dim),
            "rows": str(len(ids)),
            "dtype": dtype,
        },
        "embeddings": {"dtype": dtype, "shape": [len(ids), dim], "data_offsets": [0, e]},
        "ids": {"dtype": "U8", "shape": [len(id_bytes)], "data_offsets": [e, i]},
        "crc32": {"dtype": "U32", "shape": [1], "data_offsets": [i, i + 4]},
    }
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    body = struct.pack("<Q", len(h)) + h + emb + id_bytes
    return body + struct.pack("<I", zlib.crc32(body))


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus/embeddings_store")
    out.mkdir(parents=True, exist_ok=True)
    seeds = {
        "f32-3x4.safetensors": store("F32", ["d1", "d2", "d3"], 4, 1),
        "f16-2x3.safetensors": store("F16", ["ünï", ""], 3, 2, "cls"),
        "empty-5.safetensors": store("F32", [], 5, 3, "last_token"),
    }
    for name, data in seeds.items():
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
