"""Python counterpart of `cargo run --release -p latent-terms-encoders --example throughput -- --tokens`:
token-vector throughput of Python onnxruntime + tokenizers with the Rust encoder's batching
(tokenise with offsets, sort by length, batches of 32 padded to their longest text, 2 intra-op
threads), collecting each text's content-token rows (special tokens dropped).

Usage (after `scripts/setup-assets --with-python-reference`):
    assets/.venv/bin/python scripts/bench-encoders-tokens.py [N_DOCS (default 300)]
"""
import gzip, json, time, sys
from pathlib import Path
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
ROOT = Path(__file__).resolve().parent.parent; N = int(sys.argv[1]) if len(sys.argv) > 1 else 300; B, TH, ML, REP = 32, 2, 256, 3
texts = []
with gzip.open(ROOT.parent / "shared/data/scifact/corpus.jsonl.gz", "rt") as f:
    for line in f:
        if len(texts) == N: break
        d = json.loads(line); texts.append(f"{d.get('title','')} {d.get('text','')}".strip())
m = ROOT / "assets/models/all-MiniLM-L6-v2"
tok = Tokenizer.from_file(str(m / "tokenizer.json")); tok.enable_truncation(ML); tok.no_padding()
o = ort.SessionOptions(); o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
o.intra_op_num_threads = TH; o.inter_op_num_threads = 1
sess = ort.InferenceSession(str(m / "model.onnx"), o, providers=["CPUExecutionProvider"])
def enc_tokens(ts):
    enc = tok.encode_batch(ts)  # with offsets, as the Rust token path
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i].ids))
    out = [None] * len(enc); kept = 0; total = 0
    for s in range(0, len(order), B):
        idx = order[s:s + B]; seq = max(len(enc[i].ids) for i in idx)
        ids = np.zeros((len(idx), seq), np.int64); mask = np.zeros_like(ids); types = np.zeros_like(ids)
        for r, i in enumerate(idx):
            e = enc[i]; n = len(e.ids); ids[r, :n] = e.ids; mask[r, :n] = e.attention_mask; types[r, :n] = e.type_ids
        h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        for r, i in enumerate(idx):
            keep = np.array([k for k, sp in enumerate(enc[i].special_tokens_mask) if not sp], dtype=np.int64)
            out[i] = (enc[i].offsets, h[r, keep].copy()); kept += len(keep); total += len(enc[i].ids)
    return out, kept, total
enc_tokens(texts[:B])
rates = []
for run in range(REP):
    t0, c0 = time.perf_counter(), time.process_time()
    _, kept, total = enc_tokens(texts)
    wall = time.perf_counter() - t0; cpu = time.process_time() - c0
    rates.append(kept / wall)
    print(f"python tokens run {run}: {kept / wall:.0f} token vectors/s ({total / wall:.0f} model tokens/s), wall {wall:.2f} s, cpu {cpu:.2f} s; {kept} kept of {total}")
print(f"python tokens: median {sorted(rates)[len(rates)//2]:.0f} token vectors/s")
