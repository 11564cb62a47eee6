"""How well a v2 model names each artist's drawings, on the concepts it was pretrained on in every style.

    python -m benchmarks.artists_miniworld_v2 [--weights FILE] [--covariate-artist NAME] [--json FILE]

For each concept set of the split (ID, near OOD, far OOD) and each artist, zero-shot top-1 with the
toolkit's prompt ("a photo of a <class>") over that set's classes, on ``--per-pair`` ``val``
pictures of every drawing, with a 95% Wilson interval. The near- and far-OOD concepts were pretrained
on in all three styles, so their rows show what a style reaches when it is learned; the ID rows show
the held-out artist's loss. ``--covariate-artist`` names the artist the weights were trained without
(default: the published split's). Beside them, ``card_val`` holds the card's ``val`` numbers
(:func:`negprompt.miniworld.pretrain_v2.evaluate`, with that artist held out) at ``--val-per-pair``
pictures per drawing (7, the test part's count), so that two weights' cards compare on equal samples.
The ``test`` part is never read.
Default weights: the shipped ``negprompt-mini2`` (``miniworld-v2``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

from benchmarks.common import REPO, write_json

PROMPT = "a photo of a {}"
SETS = ("id", "near_ood", "far_ood")
SET_WORDS = {"id": "ID concepts", "near_ood": "near-OOD concepts", "far_ood": "far-OOD concepts"}
"""How RESULTS.md's tables name the sets."""


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(right_a: int, n_a: int, right_b: int, n_b: int, z: float = 1.96) -> tuple[float, float, float]:
    """The difference of two independent proportions ``right_a / n_a - right_b / n_b`` and its
    interval from the two Wilson intervals (Newcombe's hybrid score interval, his method 10):
    ``(difference, low, high)``. For the same pictures scored by two models it is conservative."""
    pa, pb = right_a / n_a, right_b / n_b
    la, ua = wilson(right_a, n_a, z)
    lb, ub = wilson(right_b, n_b, z)
    d = pa - pb
    return (d, d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))


def by_artist(
    model, tokenizer, split: dict, hierarchy, per_pair: int, artists: list[str], limit: int | None = None
) -> dict:
    """``{set: {artist: {"top1", "interval", "pictures", "classes"}}}`` on ``val`` pictures (the first
    ``limit`` concepts of each set; all when None)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from benchmarks.probe_miniworld_v2 import _features
    from negprompt.miniworld import world_v2 as W

    out = {}
    for name in SETS:
        concepts = [hierarchy.by_name[n] for n in split[name][:limit]]
        out[name] = {}
        for artist in artists:
            pairs = W.drawn_pairs(concepts, [artist])
            pictures = W.pictures(artist, pairs, per_pair, "val", hierarchy, None)
            with torch.no_grad():
                text = F.normalize(
                    model.encode_text(tokenizer([PROMPT.format(n) for n in pictures.class_names])), dim=-1
                )
            f = _features(model, pictures.images)
            right = int(((f @ text.numpy().astype(np.float64).T).argmax(1) == pictures.labels).sum())
            low, high = wilson(right, len(pictures))
            out[name][artist] = {
                "top1": round(right / len(pictures), 4),
                "interval": [round(low, 4), round(high, 4)],
                "pictures": len(pictures),
                "classes": len(pictures.class_names),
            }
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None, help="a safetensors file (default: the shipped v2)")
    ap.add_argument("--model", default="negprompt-mini2", help="the open_clip config of the weights")
    ap.add_argument("--covariate-artist", default=None, help="the artist the weights were trained without")
    ap.add_argument("--label", default="shipped", help="what RESULTS.md calls the weights (default: shipped)")
    ap.add_argument("--per-pair", type=int, default=4, help="val pictures per drawing (4)")
    ap.add_argument(
        "--val-per-pair", type=int, default=7, help="the card's val numbers: pictures per drawing (7)"
    )
    ap.add_argument("--artists", nargs="+", default=None, help="default: every artist of the world")
    ap.add_argument("--limit", type=int, default=None, help="only the first N concepts of each set (a check)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-miniworld-v2-artists.json")
    args = ap.parse_args(argv)
    import open_clip

    from benchmarks.probe_miniworld_v2 import load_v2
    from negprompt.miniworld import artists, splits
    from negprompt.miniworld import pretrain_v2 as P2
    from negprompt.miniworld.emoji import load_hierarchy
    from negprompt.miniworld.lexicon import WordNet

    model, weights = load_v2(args.weights, args.model, args.threads)
    split = P2.with_covariate(
        splits.published(), P2.PretrainV2Config(covariate_artist=args.covariate_artist or "")
    )
    hierarchy = load_hierarchy()
    t0 = time.perf_counter()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads",
        "weights": Path(weights).name,
        "weights_label": args.label,
        "covariate_artist": split["covariate_artist"],
        "prompt": PROMPT,
        "part": "val",
        "per_pair": args.per_pair,
        "sets": by_artist(
            model,
            open_clip.get_tokenizer(args.model),
            split,
            hierarchy,
            args.per_pair,
            args.artists or list(artists.ARTISTS),
            args.limit,
        ),
    }
    if args.limit is None:  # the card's numbers need every ID concept
        result["card_val"] = P2.evaluate(model, split, "val", hierarchy, WordNet(), args.val_per_pair)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(args.json, result)
    for name, rows in result["sets"].items():
        cells = ", ".join(f"{a} {100 * r['top1']:.1f}%" for a, r in rows.items())
        print(f"{name} ({next(iter(rows.values()))['classes']} classes): {cells}")
    return result


if __name__ == "__main__":
    main()
