"""A small random run directory with real images, for demos and tests of everything that reads runs.

`synthetic_run` needs no model: features, prompts and scores are drawn at random (ID images score
higher on average), metrics are computed from those scores, and one small PNG is written per image.
Every number in such a run is meaningless; its config says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.rundir import free_run_path, software_versions, write_run

_SYNTH_CLASSES = "cat dog car tree boat house bird flower chair apple horse bridge".split()
_SYNTH_WORDS = "photo picture image small blurry bright dark close view shot art".split()
_SYNTH_METHODS = ("zeroshot", "coop", "negprompt")
_SYNTH_SCORES = ("negprompt", "mcm", "maxlogit", "energy", "posi_nega")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _synthetic_images(
    rng: np.random.Generator,
    image_dir: Path,
    names: list[str],
    protos: np.ndarray,
    ood_protos: np.ndarray,
    n_id: int,
    ood_sets: Mapping[str, int],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of scores.parquet (without scores) and [N, D] features; writes one 32×32 PNG per row."""
    from PIL import Image

    n_classes, dim = protos.shape
    colors = rng.uniform(30, 225, size=(n_classes, 3))
    labels = rng.permutation(np.arange(n_id) % n_classes)
    parts = [_unit(protos[labels] + 1.2 * _unit(rng.normal(size=(n_id, dim))))]
    rows = [
        ("synthetic", "id", f"synthetic/{names[y]}/{i:04d}.png", y, names[y], colors[y], "")
        for i, y in enumerate(labels)
    ]
    for k, (set_name, n) in enumerate(ood_sets.items()):
        near = k == 0  # the first OOD set lies between ID classes and other concepts
        c = rng.integers(0, n_classes, n)
        other = rng.integers(0, n_classes, n) if near else None  # the near set's own OOD class
        base = 0.5 * protos[c] + ood_protos[other] if near else np.zeros((n, dim))
        parts.append(_unit(base + 1.2 * _unit(rng.normal(size=(n, dim)))))
        rows += [
            (
                set_name,
                "ood",
                f"{set_name}/{i:04d}.png",
                -1,
                "",
                0.5 * colors[c[i]] + 60 if near else rng.uniform(0, 255, 3),
                f"concept {other[i]}" if near else "",
            )
            for i in range(n)
        ]
    for _, _, rel, _, _, color, _ in rows:
        file = image_dir / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        pixels = color[None, None, :] + rng.normal(0, 25, size=(32, 32, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB").save(file)
    frame = pd.DataFrame(
        {
            "dataset": [r[0] for r in rows],
            "split": [r[1] for r in rows],
            "path": [str(image_dir / r[2]) for r in rows],
            "label": np.array([r[3] for r in rows], dtype=np.int64),
            "label_name": [r[4] for r in rows],
            "ood_class": [r[6] for r in rows],
        }
    )
    return frame, np.concatenate(parts).astype(np.float32)


def _synthetic_tokens(rng: np.random.Generator, n_vectors: int, top_k: int = 3) -> list[list[dict]]:
    """Nearest-token lists of ``n_vectors`` made-up context vectors."""
    sims = np.sort(rng.uniform(0.1, 0.6, (n_vectors, top_k)), axis=1)[:, ::-1]
    return [
        [
            {"token": str(w), "similarity": round(float(s), 4)}
            for w, s in zip(rng.choice(_SYNTH_WORDS, top_k, replace=False), row)
        ]
        for row in sims
    ]


def synthetic_run(
    path: str | os.PathLike,
    seed: int = 0,
    n_classes: int = 6,
    n_id: int = 60,
    ood_sets: Mapping[str, int] | None = None,
    dim: int = 32,
    m: int = 2,
    random_weights: bool = True,
    image_dir: str | os.PathLike | None = None,
    unique: bool = False,
) -> Path:
    """Write a small, complete, valid run directory of random content, for demos and tests only.

    No model is involved: features are random unit vectors around class prototypes, so ID images
    score higher than OOD images on average (the first OOD set, "near", less so than the others), and
    every number is meaningless. Real 32×32 PNG images, coloured by class, are written under
    ``image_dir`` (default: ``<path>-images`` beside the run), which becomes the run's data root.
    Methods zeroshot, coop and negprompt each get text features (positive and negative), context
    tokens, predictions and the scores negprompt, mcm, maxlogit, energy and posi_nega; the metrics
    are computed from those scores with `negprompt.metrics.ood_metrics`.

    Args:
        path: the run directory to write (see `write_run`; ``unique`` as there).
        seed: seed of everything random; the same seed gives the same run.
        n_classes: number of ID classes C.
        n_id: number of ID images (>= 1).
        ood_sets: ``{OOD set name: number of images (>= 1)}``; default ``{"near": 40, "far": 40}``.
        dim: feature width D.
        m: negative prompts per class M.
        random_weights: the value of ``config.backbone.random_weights``.
        image_dir: where to write the images.

    Returns:
        The path of the written run directory.
    """
    import torch

    from negprompt.metrics import accuracy, ood_metrics
    from negprompt.scores import score_all

    ood_sets = {"near": 40, "far": 40} if ood_sets is None else dict(ood_sets)
    if n_id < 1 or n_classes < 1 or m < 1 or not ood_sets or min(ood_sets.values()) < 1:
        raise ValueError(
            "synthetic_run needs n_id, n_classes, m >= 1 and at least one OOD set of >= 1 images"
        )
    path = Path(os.path.abspath(os.path.expanduser(path)))
    free_run_path(path, unique)  # fail before writing any image
    image_dir = Path(os.path.abspath(image_dir or path.with_name(f"{path.name}-images")))
    rng = np.random.default_rng(seed)
    names = [_SYNTH_CLASSES[i % 12] + (f"-{i // 12}" if i >= 12 else "") for i in range(n_classes)]
    protos, ood_protos = _unit(rng.normal(size=(2, n_classes, dim)))
    frame, features = _synthetic_images(rng, image_dir, names, protos, ood_protos, n_id, ood_sets)

    is_id = (frame["split"] == "id").to_numpy()
    text, tokens, metric_rows = {}, {}, []
    for method, noise in zip(_SYNTH_METHODS, (0.9, 0.5, 0.5)):
        pos = _unit(protos + noise * _unit(rng.normal(size=protos.shape))).astype(np.float32)
        neg_base = ood_protos[:, None, :] if method == "negprompt" else 0.0  # only negprompt "learned" them
        neg = _unit(neg_base + _unit(rng.normal(size=(n_classes, m, dim)))).astype(np.float32)
        text[f"{method}.pos"], text[f"{method}.neg"] = pos, neg
        pred = (features @ pos.T).argmax(axis=1)
        frame[f"pred.{method}"] = pred.astype(np.int64)
        id_acc = accuracy(pred[is_id], frame["label"][is_id])
        values = score_all(_SYNTH_SCORES, *map(torch.from_numpy, (features, pos, neg)))
        for score_name, value in values.items():
            col = frame[f"{method}/{score_name}"] = value.numpy().astype(np.float64)
            per_set = [
                {"dataset": s, **ood_metrics(col[is_id], col[(frame["dataset"] == s).to_numpy() & ~is_id])}
                for s in ood_sets
            ]
            mean = {"dataset": "mean", **pd.DataFrame(per_set).drop(columns="dataset").mean().to_dict()}
            metric_rows += [
                {"method": method, "score": score_name, **r, "id_acc": id_acc} for r in [*per_set, mean]
            ]
        zeroshot_words = [[{"token": w, "similarity": 1.0}] for w in ("a", "photo", "of", "a")]
        tokens[method] = {
            "positive": zeroshot_words if method == "zeroshot" else _synthetic_tokens(rng, 4),
            "negative": [_synthetic_tokens(rng, 4) for _ in range(m)],
        }

    warning = "synthetic run: random features, no model; every number is meaningless"
    config = {
        "kind": "demo",
        "software": software_versions(device="cpu"),
        "backbone": {
            "name": "synthetic",
            "pretrained": None,
            "weights": "random" if random_weights else "synthetic",
            "random_weights": random_weights,
            "warning": warning if random_weights else None,
        },
        "data": {
            "roots": [str(image_dir)],
            "id": "synthetic",
            "ood": list(ood_sets),
            "class_names": names,
            "train_class_names": names,
        },
        "methods": list(_SYNTH_METHODS),
        "scores": list(_SYNTH_SCORES),
        "experiment": {"synthetic": True, "seed": seed, "dim": dim, "m": m, "temperature": 1.0},
    }
    sets = ", ".join(f"{n} OOD images in {s!r}" for s, n in ood_sets.items())
    log = f"synthetic run (seed {seed}): {n_id} ID images in {n_classes} classes, {sets}\n"
    log += f"images under {image_dir}\n"
    return write_run(
        path,
        config=config,
        metrics=pd.DataFrame(metric_rows),
        scores=frame,
        image_features=features,
        text_features=text,
        context_tokens=tokens,
        log=log,
        unique=unique,
    )
