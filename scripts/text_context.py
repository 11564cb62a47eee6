#!/usr/bin/env python
"""How much the words before a class name move its text feature, for a backbone's text tower.

    python scripts/text_context.py --model negprompt-mini            # the mini-world's clothing names

For each class name X it encodes "X" alone, "a photo of a X", a prefix of unrelated words
("quartz seldom a X") and a style phrase ("a drawing of a X"), and prints the cosine of each to
"X" alone (mean and range over the names). Prompt learning (CoOp's positive context, NegPrompt's
negative contexts) acts only through such words: a tower whose features barely move with them
leaves prompt learning little to work with.
"""

from __future__ import annotations

import argparse
import sys

import torch

from negprompt.backbone import load_backbone
from negprompt.miniworld.concepts import CLOTHING

PREFIXES = {
    "a photo of a": "a photo of a {}",
    "unrelated words": "quartz seldom a {}",
    "a drawing of a": "a drawing of a {}",
}


def context_cosines(backbone, names) -> dict[str, torch.Tensor]:
    """``{prefix: [len(names)] cosines of "<prefix> X" to "X"}``, and ``"another name"``: each
    bare name's largest cosine to another bare name (how far apart the classes themselves are)."""
    tok = backbone.tokenizer
    with torch.no_grad():
        bare = backbone.model.encode_text(tok(list(names)).to(backbone.device)).float()
        bare = (bare / bare.norm(dim=-1, keepdim=True)).cpu()
        sims = bare @ bare.T
        out = {"another name": (sims - 2 * torch.eye(len(names))).max(dim=1).values.cpu()}
        for key, template in PREFIXES.items():
            t = backbone.model.encode_text(
                tok([template.format(n) for n in names]).to(backbone.device)
            ).float()
            out[key] = (t / t.norm(dim=-1, keepdim=True)).cpu().mul(bare).sum(-1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="negprompt-mini")
    ap.add_argument("--pretrained", default="auto")
    ap.add_argument("--names", nargs="+", default=list(CLOTHING))
    args = ap.parse_args(argv)
    backbone = load_backbone(args.model, args.pretrained, device="cpu")
    print(f"{args.model} ({backbone.weights}): cosine of '<prefix> X' to 'X' over {len(args.names)} names")
    for key, cos in context_cosines(backbone, args.names).items():
        print(f"  {key:18} mean {cos.mean():.4f}  min {cos.min():.4f}  max {cos.max():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
