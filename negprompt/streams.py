"""Test streams of methods that adapt on the images they score (AdaNeg): one per OOD set.

A method that adapts (`negprompt.evaluate.Method.adapt`) scores a stream of test images, and an image's
score depends on the images before it. Two streams are offered:

- ``joint``: all test images (ID and every OOD set) in one stream with one memory; each image has one
  score.
- ``per_set``: the protocol of the official AdaNeg evaluator (``OODEvaluatorClipTTA._eval_ood`` in
  ``openood/evaluators/fsood_evaluator_clip.py`` of ``YBZh/OpenOOD-VLM``): for each OOD set k, a fresh
  memory (``:366``) and a stream of set k's images followed by the ID images (``ConcatDataset([ood,
  id])``, ``:385``), shuffled (``shuffle=True``, ``:393``; here the method's seeded order of that stream).
  Set k's metrics compare its images with the ID images *of that stream*, so an ID image has one score
  per OOD set.

Layout of the per-image table under ``per_set`` (`per_set_columns`, ``docs/run-directory.md``): the
``<method>/<score>`` column holds an OOD image's score in its own set's stream and, on ID rows, the
mean over the OOD sets of the ID image's scores (a summary for views; no metric uses it); the column
``<method>.<score>@<set>`` (`per_set_column`: the set's name percent-encoded) holds, on ID rows, the ID images' scores in set ``<set>``'s stream (empty
elsewhere), and the metrics of that set read it (`id_scores`). ``pred.<method>`` and the method's
other columns take their ID rows from the first OOD set's stream, with ``<method>.<column>@<set>`` for
each set (-1 or empty on other rows).

numpy and pandas only at import (the dashboard reads the layout without torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

__all__ = ["STREAMS", "check_widths", "id_scores", "per_set_column", "per_set_columns"]

STREAMS = ("joint", "per_set")
"""The test streams a method that adapts can read (module docstring)."""


def check_widths(dims: dict[str, int]) -> None:
    """Refuse features of different widths (``{what: width}``): a label bank encoded with another backbone."""
    if len(set(dims.values())) != 1:
        raise ValueError(
            f"feature widths differ ({dims}): the label bank was encoded with another backbone than the "
            "images; encode the label bank again with this backbone (delete its folder under <cache>/labels/)"
        )


def per_set_column(method: str, name: str, ood: str) -> str:
    """The column of the ID rows' ``name`` values in OOD set ``ood``'s stream: ``<method>.<name>@<ood>``,
    the set's name percent-encoded (``mini/digits`` → ``mini%2Fdigits``: a ``/`` would make it a score
    column)."""
    return f"{method}.{_at(name, ood)}"


def _at(name: str, ood: str) -> str:
    return f"{name}@{quote(ood, safe='')}"


def per_set_columns(
    adapt: Callable, feats: torch.Tensor, temperature: float, table: pd.DataFrame
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Run ``adapt`` once per OOD set on [that set's images; the ID images] and lay out the results.

    Args:
        adapt: ``adapt(feats [n, D], temperature) -> (preds [n], {score: [n]}, {column: [n]})`` of one
            stream (`negprompt.evaluate.Method.adapt`).
        feats: [N, D] image features in table order.
        table: the per-image table (``dataset``, ``split``), row i = feature i.

    Returns:
        ``(preds [N], {score: [N]}, {column: [N]})`` as ``adapt`` returns them for the whole table, the
        per-set ID columns included under ``<score>@<set>`` / ``<column>@<set>`` (module docstring;
        the set's name percent-encoded).
    """
    import torch

    is_id = (table["split"] == "id").to_numpy()
    id_rows = np.flatnonzero(is_id)
    names = list(dict.fromkeys(table.loc[~is_id, "dataset"]))
    if not names:
        raise ValueError("a per-set stream needs at least one OOD set; without one, use the joint stream")
    n = len(table)
    pred = np.zeros(n, dtype=np.int64)
    scores: dict[str, np.ndarray] = {}
    extra: dict[str, np.ndarray] = {}
    for k, ood in enumerate(names):
        rows = np.flatnonzero(table["dataset"].eq(ood).to_numpy() & ~is_id)
        stream = np.concatenate([rows, id_rows])
        p, sc, ex = adapt(feats[torch.from_numpy(stream)], temperature)
        cut = len(rows)
        p = np.asarray(p)
        pred[rows] = p[:cut]
        if k == 0:
            pred[id_rows] = p[cut:]
        for name, values in sc.items():
            v = np.asarray(values, dtype=np.float64)
            column = scores.setdefault(name, np.zeros(n))
            column[rows] = v[:cut]
            column[id_rows] += v[cut:] / len(names)
            own = np.full(n, np.nan)
            own[id_rows] = v[cut:]
            extra[_at(name, ood)] = own
        for name, values in ex.items():
            v = np.asarray(values)
            integer = np.issubdtype(v.dtype, np.integer)
            if k == 0:
                extra[name] = np.full(n, -1 if integer else np.nan, dtype=v.dtype if integer else np.float64)
                extra[name][id_rows] = v[cut:]
            extra[name][rows] = v[:cut]
            own = np.full(n, -1 if integer else np.nan, dtype=v.dtype if integer else np.float64)
            own[id_rows] = v[cut:]
            extra[_at(name, ood)] = own
    return torch.from_numpy(pred), {k: torch.from_numpy(v) for k, v in scores.items()}, extra


def id_scores(table: pd.DataFrame, method: str, score: str, ood: str) -> np.ndarray:
    """[N_id] the ID images' ``<method>/<score>`` values that OOD set ``ood`` is measured against: its
    stream's ``<method>.<score>@<ood>`` column where the method read one stream per set, else the
    ``<method>/<score>`` column."""
    is_id = (table["split"] == "id").to_numpy()
    column = per_set_column(method, score, ood)
    if column not in table.columns:
        column = f"{method}/{score}"
    return table.loc[is_id, column].to_numpy(dtype=np.float64)
