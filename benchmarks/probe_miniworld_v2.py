"""Where a v2 model's ID accuracy is lost: the image features themselves, or their match with the text.

    python -m benchmarks.probe_miniworld_v2 [--weights FILE] [--json benchmarks/results-miniworld-v2-probe.json]

For each pretraining artist of the ID concepts (every artist of the split but its covariate one) it
renders ``--train-per-pair`` pictures of every drawing from the ``pretrain`` part (pictures the model
trained on) and ``--val-per-pair`` from ``val`` (new pictures of the same drawings), and reports:

* zero-shot top-1 with the toolkit's prompt ("a photo of a <class>") on both;
* a linear probe (multinomial logistic regression on the L2-normalised image features) fitted on the
  ``pretrain`` pictures and scored on both.

The probe is what a perfect text side could reach with these image features and that few pictures: when
it is far above zero-shot, the text alignment loses the difference; when it is low too, the image tower
does not tell the classes apart. The ``test`` part is never read. Default weights: the shipped
``negprompt-mini2`` (``miniworld-v2``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, write_json

PROMPT = "a photo of a {}"


def _features(model, images: np.ndarray, batch: int = 512) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from negprompt.miniworld.pretrain import MEAN, STD

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = (
                torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float()
                / 255
            )
            out.append(F.normalize(model.encode_image((x - MEAN) / STD), dim=-1))
    return torch.cat(out).numpy().astype(np.float64)


def probe(model, tokenizer, concepts: list, artists: list[str], train_per_pair: int, val_per_pair: int,
          hierarchy, c: float = 10.0) -> dict:  # fmt: skip
    """Zero-shot and linear-probe top-1 per artist on ``pretrain`` and ``val`` pictures of ``concepts``."""
    import torch
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression

    from negprompt.miniworld import world_v2 as W

    out = {}
    for artist in artists:
        pairs = W.drawn_pairs(concepts, [artist])
        seen = W.pictures("seen", pairs, train_per_pair, "pretrain", hierarchy, None)
        new = W.pictures("new", pairs, val_per_pair, "val", hierarchy, None)
        f_seen, f_new = _features(model, seen.images), _features(model, new.images)
        with torch.no_grad():
            text = F.normalize(
                model.encode_text(tokenizer([PROMPT.format(n) for n in seen.class_names])), dim=-1
            )
        text = text.numpy().astype(np.float64)
        clf = LogisticRegression(C=c, max_iter=3000).fit(f_seen, seen.labels)
        out[artist] = {
            "classes": len(seen.class_names),
            "pictures": {"pretrain": len(seen), "val": len(new)},
            "zero_shot": {
                "pretrain": round(float(((f_seen @ text.T).argmax(1) == seen.labels).mean()), 4),
                "val": round(float(((f_new @ text.T).argmax(1) == new.labels).mean()), 4),
            },
            "linear_probe": {
                "pretrain": round(float(clf.score(f_seen, seen.labels)), 4),
                "val": round(float(clf.score(f_new, new.labels)), 4),
            },
        }
    return out


def load_v2(weights: Path | None, model_name: str, threads: int):
    """``(model, weights path)``: ``model_name`` with ``weights`` (default: the shipped v2, checked
    against its card), in eval mode, torch on ``threads`` threads."""
    import open_clip
    import torch

    import negprompt.backbone  # noqa: F401  (registers the mini configs with open_clip)
    from negprompt.bundled import verified_weights
    from negprompt.weights import load_weights

    torch.set_num_threads(threads)
    weights = weights or verified_weights(model_name, "miniworld-v2")
    model = open_clip.create_model(model_name, pretrained=None)
    load_weights(model, weights)
    return model.eval(), weights


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None, help="a safetensors file (default: the shipped v2)")
    ap.add_argument("--model", default="negprompt-mini2", help="the open_clip config of the weights")
    ap.add_argument("--train-per-pair", type=int, default=8, help="pretrain pictures per drawing (8)")
    ap.add_argument("--val-per-pair", type=int, default=4, help="val pictures per drawing (4)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N ID concepts (a quick check)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-miniworld-v2-probe.json")
    args = ap.parse_args(argv)
    import open_clip

    from negprompt.io import sha256_file
    from negprompt.miniworld import artists, splits
    from negprompt.miniworld.emoji import load_hierarchy

    model, weights = load_v2(args.weights, args.model, args.threads)
    split = splits.published()
    hierarchy = load_hierarchy()
    concepts = [hierarchy.by_name[n] for n in split["id"][: args.limit]]
    seen_artists = [a for a in artists.ARTISTS if a != split["covariate_artist"]]
    t0 = time.perf_counter()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads",
        "weights": Path(weights).name,
        "weights_sha256": sha256_file(weights),
        "prompt": PROMPT,
        "probe": "sklearn LogisticRegression(C=10, max_iter=3000) on L2-normalised image features",
        "by_artist": probe(
            model,
            open_clip.get_tokenizer(args.model),
            concepts,
            seen_artists,
            args.train_per_pair,
            args.val_per_pair,
            hierarchy,
        ),  # fmt: skip
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(args.json, result)
    for artist, r in result["by_artist"].items():
        print(
            f"{artist}: zero-shot {r['zero_shot']}, linear probe {r['linear_probe']} ({r['classes']} classes)"
        )
    return result


if __name__ == "__main__":
    main()
