"""The run-directory contract: file names, required columns, and the checks of every part.

Both sides use it: `negprompt.rundir.write` validates the parts before anything is written, and
`negprompt.rundir.read` checks what every reader relies on when a run is opened.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
"""Version of the run-directory layout written by `negprompt.rundir` (``config.json``'s ``format``)."""

CONFIG_FILE, METRICS_FILE, SCORES_FILE = "config.json", "metrics.csv", "scores.parquet"
IMAGE_FEATURES_FILE, TEXT_FEATURES_FILE = "image_features.npy", "text_features.npz"
CONTEXT_TOKENS_FILE, LOG_FILE, PROMPTS_DIR = "context_tokens.json", "log.txt", "prompts"
CHECKS_FILE = "checks.json"
VALIDATION_SCORES_FILE = "validation_scores.parquet"
"""Optional: the ID validation images' scores (same columns as ``scores.parquet``), for thresholds."""
STANDARD_FILES = (CONFIG_FILE, METRICS_FILE, SCORES_FILE, IMAGE_FEATURES_FILE, TEXT_FEATURES_FILE,
                  CONTEXT_TOKENS_FILE, LOG_FILE, PROMPTS_DIR)  # fmt: skip
TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(csv|parquet)$")

METRICS_COLUMNS = ("method", "score", "dataset", "fpr95", "auroc", "aupr_in", "aupr_out", "id_acc")
"""Required columns of ``metrics.csv``, in order; the last five are fractions in [0, 1] or empty."""
METRIC_VALUES = METRICS_COLUMNS[3:]

SCORES_COLUMNS = ("dataset", "split", "path", "label", "label_name")
"""Required columns of ``scores.parquet``; ``pred.<method>`` and ``<method>/<score>`` columns follow."""

NAME_PATTERN = r"[A-Za-z0-9_+-]+"
SCORE_COLUMN = re.compile(rf"^({NAME_PATTERN})/({NAME_PATTERN})$")
PRED_COLUMN = re.compile(rf"^pred\.({NAME_PATTERN})$")
TEXT_KEY = re.compile(rf"^({NAME_PATTERN})\.(pos|neg)$")
TMP_MARK = ".tmp-"
CONFIG_ORDER = ("format", "kind", "name", "created", "software", "backbone", "data", "methods", "scores")


class RunDirError(ValueError):
    """A run directory, or the parts given to write one, break the run-directory contract.

    Attributes:
        file: the file (or part) that breaks it, when one is known.
        rule: the rule it breaks, in a few words (e.g. ``"regular file"``, ``"finite values"``).
    """

    def __init__(
        self, message: str, *, file: str | os.PathLike | None = None, rule: str | None = None
    ) -> None:
        super().__init__(message)
        self.file = os.fspath(file) if file is not None else None
        self.rule = rule


class RunExistsError(RunDirError, FileExistsError):
    """The target of `write_run` exists already; run directories are never overwritten."""


def _json_default(obj: object) -> object:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json(obj: object, what: str) -> str:
    try:
        return json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise RunDirError(f"{what} cannot be written as JSON: {err}") from err


def check_config(config: object, where: str) -> None:
    """The keys every reader relies on: format, kind, backbone.random_weights, data.roots."""
    if not isinstance(config, Mapping):
        raise RunDirError(f"{where}: the config must be a JSON object, got {type(config).__name__}")
    fmt = config.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise RunDirError(
            f"{where}: run-directory format {fmt!r}, but this negprompt reads format {FORMAT_VERSION}; "
            "use the negprompt version that wrote the run"
        )
    if not isinstance(config.get("kind"), str) or not config["kind"]:
        raise RunDirError(f"{where}: config needs 'kind' (e.g. 'zeroshot', 'conventional', 'demo')")
    backbone = config.get("backbone")
    if not isinstance(backbone, Mapping) or not isinstance(backbone.get("random_weights"), bool):
        raise RunDirError(f"{where}: config needs 'backbone': {{'random_weights': true | false, …}}")
    data = config.get("data")
    roots = data.get("roots") if isinstance(data, Mapping) else None
    if not isinstance(roots, list | tuple) or not all(isinstance(r, str | os.PathLike) for r in roots):
        raise RunDirError(f"{where}: config needs 'data': {{'roots': [data root paths], …}}")
    _check_names(data, where)


def _check_names(data: Mapping, where: str) -> None:
    """``data.id`` a string, ``data.ood`` and ``data.class_names`` lists of strings (all optional)."""
    if data.get("id") is not None and not isinstance(data["id"], str):
        raise RunDirError(
            f"{where}: config 'data.id' must be the ID set's name (a string), got {data['id']!r}"
        )
    for key in ("ood", "class_names", "train_class_names"):
        value = data.get(key)
        if value is not None and (
            not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value)
        ):
            shown = repr(value) if len(repr(value)) < 60 else type(value).__name__
            raise RunDirError(
                f"{where}: config 'data.{key}' must be a list of strings, got {shown}",
                file=where,
                rule="types",
            )


# --------------------------------------------------------------------------- validation of the parts


def check_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(metrics, pd.DataFrame):
        raise RunDirError(f"metrics must be a pandas DataFrame, got {type(metrics).__name__}")
    missing = [c for c in METRICS_COLUMNS if c not in metrics.columns]
    if missing:
        raise RunDirError(f"metrics lacks column(s) {missing}; required: {list(METRICS_COLUMNS)}")
    for col in METRICS_COLUMNS[:3]:
        if metrics[col].isna().any():
            raise RunDirError(f"metrics column {col!r} has empty values")
    extras = [c for c in metrics.columns if c not in METRICS_COLUMNS]
    interval = [c for c in extras if c.endswith(("_low", "_high")) and not c.startswith("d_")]
    differences = [c for c in extras if c.startswith("d_")]
    for cols, (lo, hi), what in (
        ([*METRIC_VALUES, *interval], (0.0, 1.0), "fractions in [0, 1]"),
        (differences, (-1.0, 1.0), "differences of fractions, in [-1, 1]"),
    ):
        for col in cols:
            given = metrics[col].notna() & (metrics[col].astype(str).str.strip() != "")
            values = pd.to_numeric(metrics[col].where(given), errors="coerce")
            bad = given & ~values.between(lo, hi)
            if bad.any():
                raise RunDirError(
                    f"metrics column {col!r} must hold {what}, got {metrics[col][bad].tolist()[:3]}"
                )
    keys = metrics[list(METRICS_COLUMNS[:3])].astype(str)
    twice = keys[keys.duplicated()]
    if len(twice):
        raise RunDirError(
            f"metrics has {len(twice)} repeated (method, score, dataset) row(s), e.g. "
            f"{tuple(twice.iloc[0])}; each must appear once",
            rule="one row per (method, score, dataset)",
        )
    extra = [c for c in metrics.columns if c not in METRICS_COLUMNS]
    return metrics[[*METRICS_COLUMNS, *extra]].reset_index(drop=True)


def check_metric_rows(metrics: pd.DataFrame, pairs: list[tuple[str, str]], ood_sets: list[str]) -> None:
    """Every ``<method>/<score>`` column of the scores has its metrics rows: one per OOD set and ``mean``.

    Args:
        metrics: the checked metrics table.
        pairs: the (method, score) pairs of the scores' columns.
        ood_sets: the OOD set names found in the scores.
    """
    have = set(
        zip(metrics["method"].astype(str), metrics["score"].astype(str), metrics["dataset"].astype(str))
    )
    missing = [(m, s, d) for m, s in pairs for d in [*ood_sets, "mean"] if (m, s, d) not in have]
    if missing:
        shown = ", ".join("/".join(k) for k in missing[:4]) + (", …" if len(missing) > 4 else "")
        raise RunDirError(
            f"metrics lacks {len(missing)} row(s) that the scores' columns need ({shown}); "
            "rows were removed or the file was cut: write the run again",
            rule="rows match the score columns",
        )


def check_scores(scores: pd.DataFrame) -> list[tuple[str, str]]:
    """Validate scores.parquet's frame; return its (method, score) columns."""
    if not isinstance(scores, pd.DataFrame):
        raise RunDirError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    missing = [c for c in SCORES_COLUMNS if c not in scores.columns]
    if missing:
        raise RunDirError(f"scores lacks column(s) {missing}; required: {list(SCORES_COLUMNS)}")
    split = scores["split"]
    if not split.isin(["id", "ood"]).all():
        raise RunDirError(
            f"scores 'split' must be 'id' or 'ood', got {sorted(set(split) - {'id', 'ood'})[:5]}"
        )
    is_ood = (split == "ood").to_numpy()
    if (np.maximum.accumulate(is_ood) & ~is_ood).any():
        raise RunDirError(
            "scores must list ID images first: sort the rows so every 'id' row precedes 'ood' rows"
        )
    if not pd.api.types.is_integer_dtype(scores["label"]):
        raise RunDirError(f"scores 'label' must be integers, got dtype {scores['label'].dtype}")
    labels = scores["label"].to_numpy()
    if (labels[is_ood] != -1).any() or (labels[~is_ood] < 0).any():
        raise RunDirError("scores 'label' must be -1 on OOD rows and a class index >= 0 on ID rows")
    if "ood_class" in scores.columns:  # optional: the OOD set's own class of each OOD image
        ood_class = scores["ood_class"]
        if not ood_class.map(lambda v: isinstance(v, str)).all():
            raise RunDirError("scores 'ood_class' must hold strings ('' where an image has no OOD class)")
        if ood_class[~is_ood].ne("").any():
            raise RunDirError("scores 'ood_class' must be '' on ID rows; it names OOD images' own classes")
    pairs = []
    for col in scores.columns:
        if PRED_COLUMN.match(col) and not pd.api.types.is_integer_dtype(scores[col]):
            raise RunDirError(
                f"scores column {col!r} must hold integer class indices, got {scores[col].dtype}"
            )
        if "/" in col:
            match = SCORE_COLUMN.match(col)
            if not match:
                raise RunDirError(
                    f"score column {col!r} must be named '<method>/<score>' with letters, digits, _+-"
                )
            if not pd.api.types.is_numeric_dtype(scores[col]) or pd.api.types.is_bool_dtype(scores[col]):
                raise RunDirError(f"score column {col!r} must be numeric, got {scores[col].dtype}")
            finite = np.isfinite(scores[col].to_numpy(dtype=np.float64))
            if not finite.all():
                raise RunDirError(
                    f"score column {col!r} has {int((~finite).sum())} NaN or infinite value(s) "
                    f"(first at row {int(np.argmin(finite))}); every score must be a finite number"
                )
            pairs.append((match[1], match[2]))
    return pairs


def ood_set_names(scores: pd.DataFrame) -> list[str]:
    """The OOD set names of a checked scores table, in order of appearance."""
    return [str(d) for d in dict.fromkeys(scores.loc[scores["split"] == "ood", "dataset"])]


def check_labels(scores: pd.DataFrame, class_names: list[str] | None) -> None:
    """ID labels and ``pred.<method>`` values are class indices below the number of class names."""
    if not class_names:
        return
    n = len(class_names)
    for col in ["label", *(c for c in scores.columns if PRED_COLUMN.match(c))]:
        values = scores[col].to_numpy()
        values = values[(scores["split"] == "id").to_numpy()] if col == "label" else values
        bad = (values >= n) | (values < (0 if col == "label" else -1))
        if bad.any():
            raise RunDirError(
                f"scores {col!r} holds class index {int(values[bad][0])}, but the run has {n} class "
                f"names (config data.class_names); indices must lie in 0..{n - 1}",
                rule="class indices in range",
            )


def check_arrays(
    image_features: np.ndarray | None, text_features: Mapping[str, np.ndarray] | None, n_rows: int
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    width = None
    feats = None
    if image_features is not None:
        feats = np.asarray(image_features)
        if feats.ndim != 2 or feats.shape[0] != n_rows:
            raise RunDirError(
                f"image_features must be [N, D] with N = {n_rows} rows (one per scores row), "
                f"got {feats.shape}"
            )
        feats = feats.astype(np.float16)
        if not np.isfinite(feats).all():
            raise RunDirError("image_features contain NaN or infinite values (after conversion to float16)")
        width = feats.shape[1]
    texts = {}
    for key, value in (text_features or {}).items():
        match = TEXT_KEY.match(key)
        arr = np.asarray(value, dtype=np.float32)
        if not match or arr.ndim != (2 if match[2] == "pos" else 3):
            raise RunDirError(
                f"text_features[{key!r}]: keys are '<method>.pos' [C, D] or '<method>.neg' [C, M, D], "
                f"got shape {arr.shape}"
            )
        width = arr.shape[-1] if width is None else width
        if arr.shape[-1] != width:
            raise RunDirError(
                f"text_features[{key!r}] has width {arr.shape[-1]}, other features have width {width}"
            )
        if not np.isfinite(arr).all():
            raise RunDirError(f"text_features[{key!r}] contain NaN or infinite values")
        texts[key] = arr
    for key, arr in texts.items():
        pos = texts.get(key[: -len("neg")] + "pos")
        if key.endswith(".neg") and (pos is None or pos.shape[0] != arr.shape[0]):
            raise RunDirError(
                f"text_features[{key!r}] needs a matching '.pos' entry with the same {arr.shape[0]} classes"
            )
    return feats, texts
