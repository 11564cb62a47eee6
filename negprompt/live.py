"""Questions asked of a finished run: score a new image, or rescore the run with another vocabulary.

A run directory keeps the image features, every method's text features and the learned contexts
(``prompts/<method>.safetensors``), but not the model. `run_backbone` rebuilds the run's frozen
model from ``config.backbone`` (checked to be the same weights); then

- `score_image` scores one new image with every method of the run, and
- `whatif` pairs the learned contexts with an edited list of ID class names (`parse_vocabulary`),
  rescores the run's stored image features and returns the new scores, the decisions that changed
  and the new metrics.

Nothing is written: the run directory is only read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from negprompt import metrics as M
from negprompt import scores as S
from negprompt.backbone import Backbone

__all__ = [
    "LiveError",
    "Vocabulary",
    "WhatIf",
    "method_text_features",
    "parse_vocabulary",
    "run_backbone",
    "score_image",
    "whatif",
]

RENAME = "=>"


class LiveError(ValueError):
    """A run cannot answer a live question (no model to rebuild, other weights, a bad vocabulary)."""


def run_backbone(config: dict, device: str | torch.device = "cpu") -> Backbone:
    """The frozen model a run was made with, rebuilt from ``config.backbone``.

    Raises:
        LiveError: the run has no model (a synthetic run), or the weights found now are not the
            run's (``backbone.weights`` differs).
    """
    from negprompt.backbone import load_backbone

    b = config.get("backbone") or {}
    name = b.get("name")
    if not name or name == "synthetic":
        raise LiveError(
            "this run was made without a model (synthetic features), so it cannot score new images"
        )
    if b.get("random_weights"):
        raise LiveError(f"this run used {name} with random weights; its model cannot be rebuilt exactly")
    backbone = load_backbone(
        name, b.get("pretrained") or "auto", device=device, precision=b.get("precision") or "fp32"
    )
    if b.get("weights") and backbone.weights != b["weights"]:
        raise LiveError(
            f"the run used {name} weights {b['weights']!r}, but {backbone.weights!r} were found; "
            "install the run's weights to ask it questions"
        )
    return backbone


def method_text_features(
    run, backbone: Backbone, method: str, class_names: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Text features ``(pos [C, D], neg [C, M, D] or None)`` of ``method`` paired with ``class_names``.

    ``zeroshot`` and ``neglabel`` use the hand-made prompt; ``coop``, ``locoop`` and ``negprompt``
    the run's saved contexts (``prompts/<method>``), which are shared by all classes.
    """
    from negprompt.experiments.methods import zeroshot_method
    from negprompt.promptfile import learner_from_file

    names = [str(c) for c in class_names]
    if method in ("zeroshot", "neglabel"):
        return zeroshot_method(backbone, names).pos, None
    files = run.prompt_files.get(method)
    if files is None:
        raise LiveError(
            f"run {run.name} saved no prompts of method {method!r} (prompts/{method}.safetensors)"
        )
    learner = learner_from_file(files[0].with_suffix(""), backbone)
    if learner.config.class_specific:
        raise LiveError(
            f"method {method!r} learned class-specific contexts; they do not pair with new class names"
        )
    with torch.no_grad():
        classes = learner.class_names(names)
        pos = learner.positive_features(classes).float().cpu()
        neg = learner.negative_features(classes).float().cpu() if method == "negprompt" else None
    return pos, neg


def _temperature(run) -> float:
    from negprompt.viz.explain import run_temperature

    return run_temperature(run.config)


def _unit_tensor(a: np.ndarray | None) -> torch.Tensor | None:
    """``a`` as an L2-normalised float32 tensor along its last axis (None stays None)."""
    if a is None:
        return None
    return torch.nn.functional.normalize(torch.from_numpy(np.asarray(a, dtype=np.float32)), dim=-1)


def _neglabel_value(run, g: torch.Tensor, pos: torch.Tensor, bank: torch.Tensor, t: float) -> float:
    """NegLabel's score of one image feature ``g`` [1, D] with the run's G groups (τ = 0.01 · T)."""
    from negprompt.neglabel import TAU, neglabel_score

    groups = int(((run.config.get("experiment") or {}).get("neglabel") or {}).get("groups", 1))
    return float(neglabel_score(g @ pos.T, g @ bank.T, groups, TAU * t)[0])


def score_image(image, run, backbone: Backbone, label_features: np.ndarray | None = None) -> pd.DataFrame:
    """Every score of every method of ``run`` for one PIL image.

    Returns:
        One row per ``<method>/<score>`` column of the run that can be computed: ``column``,
        ``method``, ``score``, ``value``, ``pred`` (class index), and the image's global feature
        in ``attrs["feature"]`` ([D] float32) and local features in ``attrs["local"]`` ([P, D] or None).
    """
    from negprompt.local import encode_global_local, supports_local

    x = backbone.preprocess(image.convert("RGB"))[None]
    with torch.no_grad():
        if supports_local(backbone):
            g, local = encode_global_local(backbone, x)
        else:
            g, local = backbone.encode_images(x), None
    g, t = g.float().cpu(), _temperature(run)
    local = None if local is None else local.float().cpu()
    rows = []
    for method in run.methods:
        wanted = [c.split("/", 1)[1] for c in run.score_columns if c.startswith(f"{method}/")]
        if f"{method}.pos" not in run.text_features or not wanted:
            continue
        pos, neg = (_unit_tensor(a) for a in run.text_features_of(method))
        values: dict[str, float] = {}
        if "neglabel" in wanted:
            wanted.remove("neglabel")
            if label_features is not None:
                values["neglabel"] = _neglabel_value(run, g, pos, _unit_tensor(label_features), t)
        names = [n for n in wanted if n in S.SCORES and (local is not None or not S.needs_local(n))]
        if names:
            _, got = S.predict_and_score(names, g, pos, neg, t, local_features=local)
            values.update({n: float(v[0]) for n, v in got.items()})
        pred = int((g @ pos.T).argmax())
        rows += [
            {"column": f"{method}/{n}", "method": method, "score": n, "value": v, "pred": pred}
            for n, v in values.items()
        ]
    frame = pd.DataFrame(rows, columns=["column", "method", "score", "value", "pred"])
    frame.attrs["feature"] = g[0].numpy()
    frame.attrs["local"] = None if local is None else local[0].numpy()
    return frame


@dataclass(frozen=True)
class Vocabulary:
    """An edited list of ID class names: ``names`` (new order) and ``source[i]``, the original class
    index that new class i continues (its images keep their label), or -1 for an added class."""

    names: list[str]
    source: list[int]

    @property
    def removed(self) -> list[int]:
        """Original class indices no longer in the vocabulary (only accounted for by ``label_map``)."""
        return sorted(set(range(max(self.source, default=-1) + 1)) - set(self.source))

    def label_map(self, n_original: int) -> np.ndarray:
        """[C_original] new class index of every original class, -1 where it was removed."""
        out = np.full(n_original, -1, dtype=np.int64)
        for new, old in enumerate(self.source):
            if old >= 0:
                out[old] = new
        return out


def parse_vocabulary(text: str, original: Sequence[str]) -> Vocabulary:
    """An edited class list, one class per line: ``name`` keeps (or adds) a class, ``old => new`` renames.

    A line equal to an original class name keeps that class (its images keep their label); a line
    ``old => new`` gives original class ``old`` the name ``new``; any other line adds a class that
    has no images. Original classes on no line are removed. Blank lines are ignored.

    Raises:
        LiveError: no class left, a name twice, or a rename of a class the run does not have.
    """
    index = {str(n): i for i, n in enumerate(original)}
    names, source = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if RENAME in line:
            old, new = (part.strip() for part in line.split(RENAME, 1))
            if old not in index:
                raise LiveError(
                    f"line {number}: {old!r} is not a class of the run; rename one of: {', '.join(index)}"
                )
            if not new:
                raise LiveError(f"line {number}: give the new name after {RENAME!r}")
            names.append(new)
            source.append(index[old])
        else:
            names.append(line)
            source.append(index.get(line, -1))
    if not names:
        raise LiveError("the vocabulary is empty: give at least one class name")
    seen = [n for i, n in enumerate(names) if n in names[:i]]
    if seen:
        raise LiveError(f"class name {seen[0]!r} appears twice; every class needs its own name")
    reused = [s for i, s in enumerate(source) if s >= 0 and s in source[:i]]
    if reused:
        raise LiveError(f"original class {original[reused[0]]!r} is continued twice; keep or rename it once")
    return Vocabulary(names, source)


@dataclass
class WhatIf:
    """Rescored run: ``scores`` (one column per ``<method>/<score>``, ``pred.<method>``; the rows of
    the run's table), ``changed`` (rows whose decision differs from the run's, per column, each at
    its own 95%-TPR threshold) and ``metrics`` (per method, score and OOD set, plus ``mean``)."""

    scores: pd.DataFrame
    changed: pd.DataFrame
    metrics: pd.DataFrame


def whatif(run, backbone: Backbone, vocabulary: Vocabulary, methods: Sequence[str] | None = None) -> WhatIf:
    """Rescore the run's images with its learned contexts paired with another vocabulary.

    ID accuracy counts the ID images whose class is still in the vocabulary (renamed classes keep
    their images); the OOD metrics use all ID images (`negprompt.metrics.ood_metrics`, ID = positive).
    """
    if run.image_features is None:
        raise LiveError(
            f"run {run.name} keeps no image features (image_features.npy), so nothing can be rescored"
        )
    table = run.scores
    feats = torch.from_numpy(np.asarray(run.image_features, dtype=np.float32))
    feats = torch.nn.functional.normalize(feats, dim=-1)
    t = _temperature(run)
    n_orig = len((run.config.get("data") or {}).get("class_names") or [])
    label_map = vocabulary.label_map(max(n_orig, int(table["label"].max()) + 1))
    is_id = (table["split"] == "id").to_numpy()
    labels = table["label"].to_numpy()
    new_labels = np.where(labels >= 0, label_map[np.clip(labels, 0, None)], -1)
    out = table[["dataset", "split", "path", "label", "label_name"]].copy()
    out["new_label"] = new_labels
    metric_rows, changed = [], []
    chosen = [m for m in (methods or run.methods) if f"{m}.pos" in run.text_features and m != "neglabel"]
    ood_names = list(dict.fromkeys(table.loc[~is_id, "dataset"]))
    for method in chosen:
        pos, neg = method_text_features(run, backbone, method, vocabulary.names)
        wanted = [c.split("/", 1)[1] for c in run.score_columns if c.startswith(f"{method}/")]
        names = [
            n
            for n in wanted
            if n in S.SCORES and not S.needs_local(n) and (neg is not None or not S.needs_negatives(n))
        ]
        pred, got = S.predict_and_score(names, feats, pos, neg, t)
        out[f"pred.{method}"] = pred.numpy()
        known = is_id & (new_labels >= 0)
        acc = float((pred.numpy()[known] == new_labels[known]).mean()) if known.any() else np.nan
        for name, values in got.items():
            column = f"{method}/{name}"
            v = values.numpy().astype(np.float64)
            out[column] = v
            old = table[column].to_numpy(dtype=np.float64)
            thr_old, thr_new = M.threshold_at_tpr(old[is_id]), M.threshold_at_tpr(v[is_id])
            flip = (old >= thr_old) != (v >= thr_new)
            rows = np.flatnonzero(flip)
            changed.append(
                pd.DataFrame(
                    {
                        "row": rows,
                        "column": column,
                        "dataset": table["dataset"].to_numpy()[rows],
                        "split": table["split"].to_numpy()[rows],
                        "before": np.where(old[rows] >= thr_old, "accepted", "rejected"),
                        "after": np.where(v[rows] >= thr_new, "accepted", "rejected"),
                        "old score": old[rows],
                        "new score": v[rows],
                    }
                )
            )
            per_set = []
            for ood in ood_names:
                m = M.ood_metrics(v[is_id], v[~is_id & (table["dataset"] == ood).to_numpy()])
                per_set.append(m)
                metric_rows.append({"method": method, "score": name, "dataset": ood, **m, "id_acc": acc})
            mean = {k: float(np.mean([p[k] for p in per_set])) if per_set else np.nan for k in M.METRIC_NAMES}
            metric_rows.append({"method": method, "score": name, "dataset": "mean", **mean, "id_acc": acc})
    metrics = pd.DataFrame(metric_rows, columns=["method", "score", "dataset", *M.METRIC_NAMES, "id_acc"])
    columns = ["row", "column", "dataset", "split", "before", "after", "old score", "new score"]
    flips = pd.concat(changed, ignore_index=True) if changed else pd.DataFrame(columns=columns)
    return WhatIf(out, flips, metrics)
