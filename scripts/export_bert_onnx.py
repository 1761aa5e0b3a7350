#!/usr/bin/env python3
"""Write an fp32 ONNX graph for a BERT-family encoder from its safetensors weights.

Needs only `numpy` and `onnx` (no torch, no transformers). The graph follows
Hugging Face's `BertModel` (absolute position embeddings, post-LayerNorm):

    embeddings = LayerNorm(word[input_ids] + position[0..S) + token_type[token_type_ids])
    for each layer:
        a = SelfAttention(x, attention_mask)          # scaled dot product, additive mask
        x = LayerNorm(x + Dense(a))
        x = LayerNorm(x + Dense(GELU(Dense(x))))
    output: last_hidden_state [batch, sequence, hidden]

Inputs are `input_ids`, `attention_mask` and `token_type_ids` (int64,
[batch, sequence], both axes dynamic). Pooling is not part of the graph: the
Rust encoder pools (CLS / mean / last token) and normalises.

Usage:
    export_bert_onnx.py MODEL_DIR OUT.onnx [--check]

MODEL_DIR holds `config.json` and `model.safetensors` (weights may carry a
`bert.` prefix; `pooler.*` and `cls.*` weights are ignored). `--check` runs the
written graph through onnx's pure-numpy reference evaluator and compares it
with an independent numpy forward pass (slow on large models; a few seconds on
MiniLM).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is in the default domain from opset 17.

_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
    "U8": np.uint8,
}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Tiny pure-numpy safetensors reader: u64 LE header length, JSON header, raw data."""
    data = path.read_bytes()
    if len(data) < 8:
        raise SystemExit(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise SystemExit(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype == "BF16":
            start, end = info["data_offsets"]
            raw = np.frombuffer(data[base + start : base + end], dtype="<u2").astype(np.uint32)
            arr = (raw << 16).view(np.float32).reshape(info["shape"])
        else:
            if dtype not in _DTYPES:
                raise SystemExit(f"{path}: tensor {name} has unsupported dtype {dtype}")
            start, end = info["data_offsets"]
            arr = np.frombuffer(data[base + start : base + end], dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
            arr = arr.reshape(info["shape"])
        out[name] = arr
    return out


def strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept `bert.embeddings...`, `model.embeddings...` or bare `embeddings...` names."""
    for prefix in ("bert.", "model.", "roberta.", ""):
        if f"{prefix}embeddings.word_embeddings.weight" in weights:
            return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    raise SystemExit("no embeddings.word_embeddings.weight tensor: not a BERT-family checkpoint")


class Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str | None = None, **attrs) -> str:
        out = self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def gelu(g: Graph, x: str, act: str, p: str) -> str:
    if act in ("gelu", "gelu_python"):
        # (x * (1 + erf(x / sqrt(2)))) * 0.5: the exact (erf) GELU of BERT, written as
        # PyTorch exports it so that ONNX Runtime fuses it with the bias into BiasGelu.
        sqrt2 = g.const(f"{p}.sqrt2", f32(math.sqrt(2.0)))
        one = g.const(f"{p}.one", f32(1.0))
        half = g.const(f"{p}.half", f32(0.5))
        e = g.op("Erf", [g.op("Div", [x, sqrt2])])
        return g.op("Mul", [g.op("Mul", [x, g.op("Add", [e, one])]), half])
    if act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        c = g.const(f"{p}.c", f32(math.sqrt(2.0 / math.pi)))
        k = g.const(f"{p}.k", f32(0.044715))
        one = g.const(f"{p}.one", f32(1.0))
        half = g.const(f"{p}.half", f32(0.5))
        x3 = g.op("Mul", [g.op("Mul", [x, x]), x])
        inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [x3, k])]), c])
        return g.op("Mul", [g.op("Mul", [x, half]), g.op("Add", [g.op("Tanh", [inner]), one])])
    if act == "relu":
        return g.op("Relu", [x])
    raise SystemExit(f"unsupported hidden_act {act!r}")


def build(config: dict, w: dict[str, np.ndarray]) -> onnx.ModelProto:
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise SystemExit("only absolute position embeddings are supported")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    act = config.get("hidden_act", "gelu")
    if hidden % heads:
        raise SystemExit(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    head_dim = hidden // heads

    def get(name: str) -> np.ndarray:
        if name not in w:
            raise SystemExit(f"missing weight {name}")
        return f32(w[name])

    g = Graph()
    ids, mask, tt = "input_ids", "attention_mask", "token_type_ids"

    # Embeddings.
    word = g.const("embeddings.word", get("embeddings.word_embeddings.weight"))
    pos = g.const("embeddings.position", get("embeddings.position_embeddings.weight"))
    has_tt = "embeddings.token_type_embeddings.weight" in w
    # Position ids as PyTorch exports them: a [1, max_positions] constant sliced to [1, S].
    # (ORT's embedding fusions expect this pattern; a Range-based one trips them.)
    max_pos = int(config.get("max_position_embeddings", w["embeddings.position_embeddings.weight"].shape[0]))
    all_pos = g.const("embeddings.position_ids", np.arange(max_pos, dtype=np.int64)[None, :])
    zero_1d = g.const("const.zero_1d", np.array([0], dtype=np.int64))
    idx1 = g.const("const.index1", np.array([1], dtype=np.int64))
    seq_len = g.op("Gather", [g.op("Shape", [ids]), idx1], axis=0)  # [1]
    positions = g.op("Slice", [all_pos, zero_1d, seq_len, idx1])  # [1,S]
    x = g.op("Gather", [word, ids], axis=0)  # [B,S,H]
    x = g.op("Add", [x, g.op("Gather", [pos, positions], axis=0)])  # + [1,S,H]
    if has_tt:
        tte = g.const("embeddings.token_type", get("embeddings.token_type_embeddings.weight"))
        x = g.op("Add", [x, g.op("Gather", [tte, tt], axis=0)])
    x = g.op(
        "LayerNormalization",
        [x, g.const("embeddings.ln.w", get("embeddings.LayerNorm.weight")), g.const("embeddings.ln.b", get("embeddings.LayerNorm.bias"))],
        axis=-1,
        epsilon=eps,
    )

    # Additive attention mask [B,1,1,S]: 0 where attended, float32 min where padded.
    axes12 = g.const("const.axes12", np.array([1, 2], dtype=np.int64))
    m = g.op("Cast", [g.op("Unsqueeze", [mask, axes12])], to=TensorProto.FLOAT)
    one_f = g.const("const.one_f32", f32(1.0))
    neg = g.const("const.mask_min", f32(np.finfo(np.float32).min))
    add_mask = g.op("Mul", [g.op("Sub", [one_f, m]), neg])

    split_shape = g.const("const.split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = g.const("const.merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = g.const("const.scale", f32(1.0 / math.sqrt(head_dim)))

    def dense(inp: str, prefix: str, tag: str) -> str:
        wt = g.const(f"{tag}.w", get(f"{prefix}.weight").T)  # [in, out]
        b = g.const(f"{tag}.b", get(f"{prefix}.bias"))
        return g.op("Add", [g.op("MatMul", [inp, wt]), b])

    def layer_norm(inp: str, prefix: str, tag: str) -> str:
        return g.op(
            "LayerNormalization",
            [inp, g.const(f"{tag}.w", get(f"{prefix}.weight")), g.const(f"{tag}.b", get(f"{prefix}.bias"))],
            axis=-1,
            epsilon=eps,
        )

    for i in range(layers):
        p = f"encoder.layer.{i}"
        t = f"l{i}"
        q = g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.attention.self.query", f"{t}.q"), split_shape])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.attention.self.key", f"{t}.k"), split_shape])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [dense(x, f"{p}.attention.self.value", f"{t}.v"), split_shape])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), add_mask])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        attn = dense(ctx, f"{p}.attention.output.dense", f"{t}.o")
        x = layer_norm(g.op("Add", [attn, x]), f"{p}.attention.output.LayerNorm", f"{t}.ln1")
        h = gelu(g, dense(x, f"{p}.intermediate.dense", f"{t}.ff1"), act, f"{t}.act")
        h = dense(h, f"{p}.output.dense", f"{t}.ff2")
        x = layer_norm(g.op("Add", [h, x]), f"{p}.output.LayerNorm", f"{t}.ln2")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    dims = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
    ]
    if has_tt:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, dims))
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])]
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="latent-terms export_bert_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def numpy_forward(config: dict, w: dict[str, np.ndarray], ids, mask, tt) -> np.ndarray:
    """Independent numpy BERT forward pass, used by --check."""
    from math import erf

    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    hd = hidden // heads
    eps = config.get("layer_norm_eps", 1e-12)
    verf = np.vectorize(erf)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T.astype(np.float64) + w[p + ".bias"]

    b, s = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][np.arange(s)]
    if "embeddings.token_type_embeddings.weight" in w:
        x = x + w["embeddings.token_type_embeddings.weight"][tt]
    x = ln(x.astype(np.float64), "embeddings.LayerNorm")
    add = (1.0 - mask[:, None, None, :]) * -1e30
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        sp = lambda t: t.reshape(b, s, heads, hd).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (sp(lin(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        sc = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + add
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        pr = sc / sc.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(0, 2, 1, 3).reshape(b, s, hidden)
        x = ln(x + lin(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        h = lin(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + verf(h / math.sqrt(2.0)))
        x = ln(x + lin(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    return x


def check(model: onnx.ModelProto, config: dict, w: dict[str, np.ndarray]) -> None:
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    vocab = w["embeddings.word_embeddings.weight"].shape[0]
    ids = rng.integers(0, vocab, size=(2, 7)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    tt = np.zeros_like(ids)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in model.graph.input):
        feeds["token_type_ids"] = tt
    (got,) = ReferenceEvaluator(model).run(None, feeds)
    want = numpy_forward(config, w, ids, mask, tt)
    valid = mask.astype(bool)
    diff = float(np.abs(got[valid] - want[valid]).max())
    print(f"check: onnx reference evaluator vs numpy forward, max abs diff on unpadded tokens = {diff:.2e}")
    if not diff < 1e-3:
        raise SystemExit("check failed: the graph does not match the numpy forward pass")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--check", action="store_true", help="verify the graph against a numpy forward pass")
    args = ap.parse_args()

    config = json.loads((args.model_dir / "config.json").read_text())
    if config.get("model_type") not in (None, "bert"):
        print(f"warning: model_type {config.get('model_type')!r} is not 'bert'; exporting as BERT", file=sys.stderr)
    weights = strip_prefix(read_safetensors(args.model_dir / "model.safetensors"))
    model = build(config, weights)
    if args.check:
        check(model, config, weights)
    tmp = args.out.with_name(args.out.name + ".tmp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(tmp))
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {config['num_hidden_layers']} layers, hidden {config['hidden_size']})")


if __name__ == "__main__":
    main()
