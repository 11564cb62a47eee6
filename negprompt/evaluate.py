"""Score ID and OOD images with one or more prompt sets; metrics tables; run directories.

A *method* is a way of prompting the frozen model: ``zeroshot`` (hand-made "a photo of a" prompts),
``coop`` (the stage-1 positive prompts) or ``negprompt`` (stage-1 positives + learned negatives).
:func:`evaluate` scores every image with every score each method allows, computes the metrics of
every (method, score, OOD set), and :func:`write_evaluation` stores it all as a run directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from negprompt import comparison as C
from negprompt import metrics as M
from negprompt import rundir
from negprompt import scores as S
from negprompt.checks import to_json
from negprompt.features import CachedFeatures
from negprompt.streams import id_scores, per_set_columns
from negprompt.table_rows import all_rows, row_label, table_rows
from negprompt.uncertainty import Bootstrap, interval, resample_indices

DEFAULT_BOOTSTRAP = Bootstrap()
"""1,000 seeded resamples at 95% (`negprompt.uncertainty`); frozen, so safe as a default."""


@dataclass
class Method:
    """Text features of one method.

    Attributes:
        name: ``zeroshot``, ``coop``, ``negprompt`` or any ``[A-Za-z0-9_+-]`` name.
        pos: ``[C, D]`` positive prompt features (L2-normalised).
        neg: ``[C, M, D]`` negative prompt features, or None.
        context_tokens: nearest vocabulary tokens of the contexts (for the run directory).
        prompt_file: ``(file.safetensors, file.json)`` of the learned prompts, if any.
        neg_labels: ``[M, D]`` negative label features in group order (NegLabel), or None; a
            method with them is scored with ``neglabel`` only (`negprompt.neglabel`).
        neg_label_words: the M negative labels; neg_groups: G, the number of groups.
        local_scores: ``{set name: {score: [N]}}`` computed at extraction time
            (`negprompt.local.local_scores`), added as ``<method>/<score>`` columns.
        adapt: for a method that adapts on the test stream (AdaNeg, TANL): a function of all test image
            features ``[N, D]`` (table order) and the temperature returning predictions ``[N]``,
            ``{score: [N]}`` and ``{column: [N]}`` (added as ``<method>.<column>``); None otherwise.
        adapt_record: its settings, for the run directory.
        adapt_stream: ``"joint"``: ``adapt`` reads all test images as one stream; ``"per_set"``: once
            per OOD set, on that set's images followed by the ID images (`per_set_columns`); without
            OOD sets (validation images) the ID images form one stream either way.
    """

    name: str
    pos: torch.Tensor
    neg: torch.Tensor | None = None
    context_tokens: dict | None = None
    prompt_file: tuple[Path, Path] | None = None
    neg_labels: torch.Tensor | None = None
    neg_label_words: Sequence[str] = ()
    neg_groups: int = 1
    local_scores: dict | None = None
    adapt: Callable | None = None
    adapt_record: dict | None = None
    adapt_stream: str = "joint"


@dataclass
class EvalSet:
    """Cached features of one evaluated set with the root its paths are relative to.

    ``class_names`` names the set's own labels. For an OOD set they are the OOD classes (the
    held-out classes of a hard-OOD protocol), reported per image in the ``ood_class`` column;
    left empty, no OOD class is reported (``ood_class`` is "").
    """

    name: str
    features: CachedFeatures
    root: Path
    class_names: Sequence[str] = ()


@dataclass
class Evaluation:
    """Per-image scores (``scores`` table), ``metrics`` table and row-aligned image features."""

    scores: pd.DataFrame
    metrics: pd.DataFrame
    image_features: np.ndarray
    methods: list[Method] = field(default_factory=list)
    bootstrap: Bootstrap | None = None


def evaluate(
    methods: Sequence[Method],
    id_set: EvalSet,
    ood_sets: Sequence[EvalSet],
    class_names: Sequence[str],
    *,
    temperature: float = 1.0,
    bootstrap: Bootstrap | None = DEFAULT_BOOTSTRAP,
) -> Evaluation:
    """Score every image of the ID set and the OOD sets with every method.

    Every score a method allows is computed (those needing negatives only with negatives).
    Returns the per-image table, the metrics table (one row per method, score and OOD set plus a
    ``mean`` row per method and score) and the image features in table order. Without OOD sets
    (a training run on image folders) only the ID accuracy is measured: the ``mean`` rows then
    have empty OOD metrics. ``bootstrap`` draws the intervals of `metrics_table` (None: none).
    """
    sets = [(id_set, "id")] + [(s, "ood") for s in ood_sets]
    for s, _ in sets:
        if len(s.features) == 0:
            raise ValueError(f"set {s.name!r} has no images to evaluate")
    names = list(class_names)
    frames = []
    for s, split in sets:
        own = np.asarray(s.features.labels, dtype=np.int64)
        labels = own if split == "id" else np.full(len(own), -1, dtype=np.int64)
        frames.append(
            pd.DataFrame(
                {
                    "dataset": s.name,
                    "split": split,
                    "path": [str(s.root / p) for p in s.features.paths],
                    "label": labels,
                    "label_name": [names[i] if i >= 0 else "" for i in labels],
                    "ood_class": [""] * len(own) if split == "id" else _ood_class_names(s, own),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    feats = np.concatenate([np.asarray(s.features.features) for s, _ in sets]).astype(np.float16)
    feats32 = torch.from_numpy(feats.astype(np.float32))
    columns: dict[str, np.ndarray] = {}
    for method in methods:
        pos = method.pos.detach().float().cpu()
        neg = None if method.neg is None else method.neg.detach().float().cpu()
        if method.adapt is not None:
            if method.adapt_stream == "per_set" and ood_sets:
                pred, scores, extra = per_set_columns(method.adapt, feats32, temperature, table)
            else:
                pred, scores, extra = method.adapt(feats32, temperature)
            columns.update({f"{method.name}.{k}": np.asarray(v) for k, v in extra.items()})
        else:
            pred, scores, extra = _fixed_columns(method, feats32, pos, neg, temperature)
            columns.update(extra)
        columns[f"pred.{method.name}"] = pred.numpy()
        for name, values in scores.items():
            columns[f"{method.name}/{name}"] = values.numpy().astype(np.float64)
        columns.update(_local_columns(method, sets))
    table = pd.concat([table, pd.DataFrame(columns)], axis=1)
    return Evaluation(table, metrics_table(table, methods, bootstrap), feats, list(methods), bootstrap)


def _neglabel_columns(method: Method, feats: torch.Tensor, pos: torch.Tensor, temperature: float):
    """Predictions, ``{<method name>: [N]}`` (τ = 0.01 · T) and each image's closest negative label."""
    from negprompt.neglabel import TAU, neglabel_score

    bank = method.neg_labels.detach().float().cpu()
    if bank.shape[1] != feats.shape[1]:
        raise ValueError(
            f"{method.name}: the label bank has width {bank.shape[1]} but the image features {feats.shape[1]}; it "
            "was encoded with another backbone: encode it again with this one (delete its folder under <cache>/labels/)"
        )
    preds, scores, tops = [], [], []
    for start in range(0, len(feats), S.DEFAULT_BATCH_SIZE):
        f = feats[start : start + S.DEFAULT_BATCH_SIZE]
        s_pos, s_neg = f @ pos.T, f @ bank.T
        preds.append(s_pos.argmax(dim=1))
        scores.append(neglabel_score(s_pos, s_neg, method.neg_groups, TAU * temperature))
        tops.append(s_neg.argmax(dim=1))
    return torch.cat(preds), {method.name: torch.cat(scores)}, torch.cat(tops).numpy()


def _local_columns(method: Method, sets: list[tuple[EvalSet, str]]) -> dict[str, np.ndarray]:
    """The method's extraction-time local scores, concatenated in table order (all sets or none)."""
    if not method.local_scores:
        return {}
    missing = [s.name for s, _ in sets if s.name not in method.local_scores]
    if missing:
        raise ValueError(f"method {method.name!r} has local scores but none for set(s) {missing}")
    out = {}
    for name in method.local_scores[sets[0][0].name]:
        column = f"{method.name}.{name}" if name == "best_region" else f"{method.name}/{name}"
        out[column] = np.concatenate([np.asarray(method.local_scores[s.name][name]) for s, _ in sets])
    return out


def _fixed_columns(method: Method, feats: torch.Tensor, pos, neg, temperature: float) -> tuple:
    """(predicted classes, global scores, extra columns) of a method that does not adapt."""
    if method.neg_labels is not None:
        pred, scores, top = _neglabel_columns(method, feats, pos, temperature)
        return pred, scores, {f"{method.name}.top_negative": top}
    pred, scores = S.predict_and_score(None, feats, pos, neg, temperature)
    return pred, scores, {}


SHIFTED_COLUMNS = ("method", "dataset", "images", "acc", "acc_low", "acc_high")
"""Columns of the covariate-shift accuracy table (`shifted_accuracy`)."""


def shifted_accuracy(
    methods: Sequence[Method],
    sets: Sequence[EvalSet],
    class_names: Sequence[str],
    *,
    temperature: float = 1.0,
    bootstrap: Bootstrap | None = DEFAULT_BOOTSTRAP,
) -> pd.DataFrame:
    """Top-1 accuracy of every method on ID classes under covariate shift, with its interval.

    Each set holds pictures of the ID classes (labels over ``class_names``) that differ from the ID
    test images in style only; it is never an OOD set. The interval is the percentile bootstrap of
    the set's images (``bootstrap``; None: points only, the interval columns empty). Methods that
    adapt on the test stream are left out (their classifier is the one they adapt from).
    """
    rows = []
    fixed = [m for m in methods if m.adapt is None]
    for s in sets:
        if len(s.features) == 0:
            raise ValueError(f"covariate-shift set {s.name!r} has no images")
        feats = torch.from_numpy(np.asarray(s.features.features, dtype=np.float32))
        labels = np.asarray(s.features.labels, dtype=np.int64)
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise ValueError(
                f"covariate-shift set {s.name!r} has labels outside the {len(class_names)} ID classes"
            )
        for m in fixed:
            pos = m.pos.detach().float().cpu()
            neg = None if m.neg is None else m.neg.detach().float().cpu()
            pred = _fixed_columns(m, feats, pos, neg, temperature)[0].numpy()
            correct = (pred == labels).astype(np.float64)
            acc = float(correct.mean())
            low = high = np.nan
            if bootstrap is not None:
                draws = [correct[idx].mean() for idx in resample_indices(len(correct), bootstrap)]
                span = interval(draws, acc, bootstrap.level)
                low, high = span.low, span.high
            rows.append({"method": m.name, "dataset": s.name, "images": len(correct), "acc": acc,
                         "acc_low": low, "acc_high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=list(SHIFTED_COLUMNS))


def format_shifted(table: pd.DataFrame) -> str:
    """The covariate-shift accuracies as text lines (empty when there are none)."""
    if table.empty:
        return ""
    lines = ["ID accuracy under covariate shift (the ID classes in a style never pretrained on; %):"]
    for dataset, part in table.groupby("dataset", sort=False):
        lines.append(f"  {dataset} ({int(part['images'].iloc[0])} images)")
        for r in part.itertuples():
            span = "" if np.isnan(r.acc_low) else f"  [{100 * r.acc_low:5.1f}, {100 * r.acc_high:5.1f}]"
            lines.append(f"    {r.method:<22}{100 * r.acc:6.1f}{span}")
    return "\n".join(lines)


def _ood_class_names(s: EvalSet, labels: np.ndarray) -> list[str]:
    """The OOD set's own class name of each image ("" where unlabelled or no names are given)."""
    names = [str(n) for n in s.class_names]
    if not names:
        return [""] * len(labels)
    bad = labels >= len(names)
    if bad.any():
        raise ValueError(
            f"OOD set {s.name!r}: label {int(labels[bad][0])} has no class name ({len(names)} given); "
            "pass all of the set's class_names to EvalSet (or none, to report no OOD classes)"
        )
    return [names[i] if i >= 0 else "" for i in labels.tolist()]


def metrics_table(
    table: pd.DataFrame, methods: Sequence[Method], bootstrap: Bootstrap | None = DEFAULT_BOOTSTRAP
) -> pd.DataFrame:
    """Metrics of every ``<method>/<score>`` column of a scores table against each OOD set (a method that
    read one stream per OOD set is measured on each stream's ID scores, `negprompt.streams.id_scores`).

    With ``bootstrap`` (the default: 1,000 seeded resamples), every metric gets its percentile
    interval (``<metric>_low`` / ``<metric>_high``) and every trained row its paired difference to
    the best training-free row (``ref_*``, ``d_*``; `negprompt.comparison`). ``None``: points only.
    """
    is_id = (table["split"] == "id").to_numpy()
    ood_names = list(dict.fromkeys(table.loc[~is_id, "dataset"]))
    rows = []
    for method in methods:
        labels = table.loc[is_id, "label"].to_numpy()
        acc = (
            M.accuracy(table.loc[is_id, f"pred.{method.name}"].to_numpy(), labels)
            if (labels >= 0).all()
            else np.nan
        )
        for col in [c for c in table.columns if c.startswith(f"{method.name}/")]:
            score_name = col.split("/", 1)[1]
            per_set = []
            for ood in ood_names:
                values = M.ood_metrics(
                    id_scores(table, method.name, score_name, ood),
                    table.loc[table["dataset"].eq(ood) & ~is_id, col].to_numpy(),
                )
                per_set.append(values)
                rows.append(
                    {"method": method.name, "score": score_name, "dataset": ood, **values, "id_acc": acc}
                )
            mean = {k: float(np.mean([v[k] for v in per_set])) if per_set else np.nan for k in M.METRIC_NAMES}
            rows.append(
                {"method": method.name, "score": score_name, "dataset": "mean", **mean, "id_acc": acc}
            )
    points = pd.DataFrame(rows, columns=list(rundir.METRICS_COLUMNS))
    if bootstrap is None or points.empty:
        return points
    return with_intervals(points, table, bootstrap)


def with_intervals(
    metrics: pd.DataFrame, scores: pd.DataFrame, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP
) -> pd.DataFrame:
    """A metrics table with the interval and comparison columns of `negprompt.comparison` added.

    Every row is resampled on the same images, so the trained rows' differences are paired.
    """
    draws: dict = {}
    keys = ["method", "score", "dataset"]
    base = metrics[[c for c in metrics.columns if c not in C.INTERVAL_COLUMNS + C.REFERENCE_COLUMNS]]
    spans = C.row_intervals(scores, all_rows(base), bootstrap, draws=draws)
    refs = C.against_training_free(base, draws, bootstrap.level)
    return base.merge(spans, on=keys, how="left").merge(refs, on=keys, how="left")


def format_table(metrics: pd.DataFrame, rows: Sequence[tuple[str, str]] | None = None) -> str:
    """A paper-shaped table: FPR95 / AUROC (%) per OOD set and the mean, and ID accuracy.

    Args:
        metrics: a metrics table (:func:`metrics_table`).
        rows: ``(method, score)`` pairs to show; by default `negprompt.table_rows.table_rows`: each
            method with its headline score, then its GL-MCM and L-MCM rows.

    The FPR convention is printed under the table.
    """
    if rows is None:
        rows = table_rows(metrics)
    ood_names = [d for d in dict.fromkeys(metrics["dataset"]) if d != "mean"] + ["mean"]
    width = [max(17, len(d) + 2) for d in ood_names]  # long set names widen their column
    first = max([28] + [len(row_label(m, s)) + 2 for m, s in rows])  # long labels widen the first column
    header = ["method".ljust(first)] + [f"{d:>{w}}" for d, w in zip(ood_names, width)] + ["   ID acc"]
    sub = [" " * first] + [f"{'FPR95 / AUROC':>{w}}" for w in width] + [""]
    lines = ["".join(header), "".join(sub)]
    for method, score in rows:
        sel = metrics[(metrics["method"] == method) & (metrics["score"] == score)].set_index("dataset")
        if sel.empty:
            raise ValueError(f"no metrics for method {method!r} with score {score!r}")
        label = row_label(method, score)
        cells = [
            "no OOD set"
            if np.isnan(sel.at[d, "fpr95"])
            else f"{100 * sel.at[d, 'fpr95']:6.2f} / {100 * sel.at[d, 'auroc']:6.2f}"
            for d in ood_names
        ]
        acc = sel["id_acc"].iloc[0]
        row = "".join(f"{c:>{w}}" for c, w in zip(cells, width))
        lines.append(label.ljust(first) + row + f"   {100 * acc:6.2f}")
    lines.append(f"({M.FPR_CONVENTION}; all values in %)")
    return "\n".join(lines)


def write_evaluation(
    path: str | os.PathLike,
    evaluation: Evaluation,
    *,
    kind: str,
    backbone,
    class_names: Sequence[str],
    data_roots: Sequence[str | os.PathLike],
    id_name: str,
    experiment: dict | None = None,
    train_class_names: Sequence[str] | None = None,
    log: str = "",
    unique: bool = False,
    checks: Sequence | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write an evaluation as a run directory (see ``docs/run-directory.md``); returns its path.

    ``checks`` (`negprompt.checks.Check` list) is written as ``checks.json``; ``tables``: further
    tables of the run by file name (e.g. ``validation_scores.parquet``).
    """
    methods = evaluation.methods
    text = {f"{m.name}.pos": m.pos.detach().float().cpu().numpy() for m in methods}
    text.update({f"{m.name}.neg": m.neg.detach().float().cpu().numpy() for m in methods if m.neg is not None})
    device = str(backbone.device)
    if backbone.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(backbone.device)})"
    config = {
        "kind": kind,
        "software": rundir.software_versions(device),
        "backbone": backbone.describe(),
        "data": {
            "roots": [str(Path(r).resolve()) for r in data_roots],
            "id": id_name,
            "ood": list(dict.fromkeys(evaluation.scores.loc[evaluation.scores["split"] == "ood", "dataset"])),
            "class_names": list(class_names),
            "train_class_names": list(train_class_names if train_class_names is not None else class_names),
        },
        "experiment": experiment or {},
    }
    if evaluation.bootstrap is not None:
        config["intervals"] = evaluation.bootstrap.to_dict()
    return rundir.write_run(
        path,
        config=config,
        metrics=evaluation.metrics,
        scores=evaluation.scores,
        image_features=evaluation.image_features,
        text_features=text,
        prompt_files={m.name: m.prompt_file for m in methods if m.prompt_file},
        context_tokens={m.name: m.context_tokens for m in methods if m.context_tokens},
        log=log,
        unique=unique,
        checks=None if checks is None else to_json(checks),
        tables=tables,
    )
