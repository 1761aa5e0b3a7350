#!/usr/bin/env python3
"""Writes a few small valid SAE resume-state files (the format of crates/sae/src/resume.rs:
safetensors with {w_enc,b_enc,w_dec,b_dec}.{m,v} and since_fired as F32, __metadata__ format,
weights, step, threshold_sum, threshold_count and a CRC-32 sealing the tensors in that order and
the metadata, as crates/sae/src/seal.rs describes), each behind the
shape byte the `sae_resume_state` target reads first, into a corpus folder, so the fuzzer
starts past the header and checksum checks.  Standard library only.

Usage: python3 fuzz/seed-sae-resume-state.py fuzz/corpus/sae_resume_state
"""

import importlib.util
import random
import struct
import sys
import zlib
from pathlib import Path

# The safetensors writer of the checkpoint seeds (a file name with dashes: loaded by path).
_spec = importlib.util.spec_from_file_location("seed_sae_checkpoint", Path(__file__).with_name("seed-sae-checkpoint.py"))
_checkpoint_seeds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_checkpoint_seeds)
safetensors_file = _checkpoint_seeds.safetensors_file


def state(d_in: int, d_sae: int, step: int, with_moments: bool, seed: int) -> bytes:
    rng = random.Random(seed)
    arrays = []
    if with_moments:
        for name, shape in [("w_enc", [d_sae, d_in]), ("b_enc", [d_sae]), ("w_dec", [d_sae, d_in]), ("b_dec", [d_in])]:
            n = 1
            for s in shape:
                n *= s
            arrays.append((f"{name}.m", shape, [rng.uniform(-1e-3, 1e-3) for _ in range(n)]))
            arrays.append((f"{name}.v", shape, [rng.uniform(0, 1e-6) for _ in range(n)]))
    arrays.append(("since_fired", [d_sae], [float(rng.randrange(30)) for _ in range(d_sae)]))
    blobs = [struct.pack(f"<{len(a)}f", *a) for _, _, a in arrays]
    meta = {
        "format": "latent-terms-sae-state/2",
        "weights": "0123abcd",
        "step": str(step),
        "threshold_sum": "1.25",
        "threshold_count": "5",
    }
    meta["crc32"] = seal(blobs, meta)
    return safetensors_file(arrays, blobs, meta)


def seal(blobs: list, meta: dict) -> str:
    """crates/sae/src/seal.rs: the tensors, then each metadata entry by key, length-prefixed."""
    crc = 0
    for b in blobs:
        crc = zlib.crc32(b, crc)
    for k, v in sorted(meta.items()):
        if k == "crc32":
            continue
        for field in (k.encode(), v.encode()):
            crc = zlib.crc32(struct.pack("<Q", len(field)) + field, crc)
    return f"{crc:08x}"


def shape_byte(d_in: int, d_sae: int) -> bytes:
    # The target reads d_in = 1 + (b & 3), d_sae = 2 + ((b >> 2) & 7).
    return bytes([(d_in - 1) | ((d_sae - 2) << 2)])


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/sae_resume_state")
    out.mkdir(parents=True, exist_ok=True)
    for name, (d_in, d_sae, step, moments, seed) in {
        "4x8-step12": (4, 8, 12, True, 1),
        "3x5-step1": (3, 5, 1, True, 2),
        "2x3-fresh": (2, 3, 0, False, 3),
    }.items():
        data = shape_byte(d_in, d_sae) + state(d_in, d_sae, step, moments, seed)
        (out / f"{name}.bin").write_bytes(data)
        print(f"{out / name}.bin: {len(data)} bytes")


if __name__ == "__main__":
    main()
