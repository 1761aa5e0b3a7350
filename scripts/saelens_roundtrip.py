#!/usr/bin/env python3
"""SAELens' side of the SAELens interop check (crates/sae/tests/saelens_interop.rs).

Runs in the venv of scripts/setup-saelens (assets/.venv-saelens/bin/python):

  encode DIR INPUTS OUT
      Loads DIR with SAELens' own loader (SAE.load_from_disk), encodes the rows of
      INPUTS (a safetensors file with an f32 tensor "x" [n, d_in]) and writes the dense
      activations to OUT as tensor "acts" [n, d_sae].
  make ARCH DIR INPUTS OUT [--d-in N] [--d-sae M] [--k K] [--seed S]
                           [--no-b-dec-to-input] [--rescale-by-decoder-norm]
      Builds a SAELens SAE of architecture ARCH (topk, jumprelu or standard) with
      random weights (random per-latent thresholds for jumprelu), saves it to DIR with
      SAELens' own save_model, and writes its activations for INPUTS to OUT.
"""

from __future__ import annotations

import argparse
import sys

import torch
from safetensors.torch import load_file, save_file

import sae_lens
from sae_lens import (
    SAE,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)


def encode(sae: SAE, inputs: str, out: str) -> None:
    x = load_file(inputs)["x"].to(torch.float32)
    with torch.no_grad():
        acts = sae.encode(x)
    save_file({"acts": acts.contiguous()}, out)


def make(args: argparse.Namespace) -> SAE:
    torch.manual_seed(args.seed)
    common = dict(
        d_in=args.d_in,
        d_sae=args.d_sae,
        dtype="float32",
        device="cpu",
        apply_b_dec_to_input=not args.no_b_dec_to_input,
    )
    if args.arch == "topk":
        sae = TopKSAE(
            TopKSAEConfig(
                k=args.k,
                rescale_acts_by_decoder_norm=args.rescale_by_decoder_norm,
                **common,
            )
        )
    elif args.arch == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    elif args.arch == "standard":
        sae = StandardSAE(StandardSAEConfig(**common))
    else:
        sys.exit(f"unknown architecture {args.arch}")
    with torch.no_grad():
        # Decoder rows of uneven norms, so that rescaling by them matters.
        sae.W_dec.mul_(torch.rand(args.d_sae, 1) * 1.5 + 0.25)
        sae.b_enc.copy_(torch.randn(args.d_sae) * 0.05)
        sae.b_dec.copy_(torch.randn(args.d_in) * 0.05)
        if args.arch == "jumprelu":
            sae.threshold.copy_(torch.rand(args.d_sae) * 0.1)
    sae.save_model(args.dir)
    return sae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("encode")
    p.add_argument("dir")
    p.add_argument("inputs")
    p.add_argument("out")
    p = sub.add_parser("make")
    p.add_argument("arch")
    p.add_argument("dir")
    p.add_argument("inputs")
    p.add_argument("out")
    p.add_argument("--d-in", type=int, default=384)
    p.add_argument("--d-sae", type=int, default=2048)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-b-dec-to-input", action="store_true")
    p.add_argument("--rescale-by-decoder-norm", action="store_true")
    args = parser.parse_args()
    if args.command == "encode":
        sae = SAE.load_from_disk(args.dir)
        encode(sae, args.inputs, args.out)
        print(f"sae-lens {sae_lens.__version__}: loaded {type(sae).__name__} "
              f"d_in {sae.cfg.d_in} d_sae {sae.cfg.d_sae}, torch {torch.__version__}")
    else:
        sae = make(args)
        encode(sae, args.inputs, args.out)
        print(f"sae-lens {sae_lens.__version__}: saved {type(sae).__name__} to {args.dir}")


if __name__ == "__main__":
    main()
