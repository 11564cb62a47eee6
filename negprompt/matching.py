"""Compare like with like: the images two runs share, set by set, and where their decisions differ.

Two runs' sets are matched by their images, not by their names: each image gets a key (its
resolved path, or the SHA-256 of its bytes when the runs read copies of the same files from
different folders), and a set of one run is the same as a set of the other when they hold the same
keys. Metrics are then computed on the shared images only, means only over the shared sets, and
the sets that differ are named. pandas and numpy only (the dashboard imports it without torch).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt import metrics as M

__all__ = ["SetMatch", "content_keys", "disagreements", "match_sets", "path_keys", "shared_metrics"]


def path_keys(scores: pd.DataFrame) -> np.ndarray:
    """One key per row: the image's normalised absolute path (no file is read)."""
    return np.array([os.path.normpath(os.path.abspath(str(p))) for p in scores["path"]], dtype=object)


def content_keys(scores: pd.DataFrame, resolve: Callable[[str], Path] | None = None) -> np.ndarray:
    """One key per row: the SHA-256 of the image file's bytes (``"missing:<path>"`` when unreadable).

    ``resolve`` maps a stored path to the file to read (e.g. `negprompt.rundir.resolve_image_path`
    bound to the run, which refuses paths outside the run's data roots).
    """
    keys = []
    for p in scores["path"]:
        try:
            path = resolve(str(p)) if resolve else Path(str(p))
            keys.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except (OSError, ValueError):
            keys.append(f"missing:{p}")
    return np.array(keys, dtype=object)


@dataclass
class SetMatch:
    """How the sets of run A and run B correspond.

    Attributes:
        table: one row per set of either run: ``split``, ``set A``, ``set B`` (the other run's set
            holding most of its images, or ""), ``images A``, ``images B``, ``shared`` and
            ``relation`` (``same images``, ``partly shared``, ``only in A`` / ``only in B``).
        pairs: ``{name: (set A, set B)}`` for the OOD sets with shared images, named by A's set.
        id_pair: (ID set of A, ID set of B).
        differing: sentences naming every set that is not the same in both runs.
    """

    table: pd.DataFrame
    pairs: dict[str, tuple[str, str]]
    id_pair: tuple[str, str]
    differing: list[str] = field(default_factory=list)


def _sets(scores: pd.DataFrame, split: str) -> list[str]:
    return list(dict.fromkeys(scores.loc[scores["split"] == split, "dataset"].astype(str)))


def match_sets(a: pd.DataFrame, b: pd.DataFrame, keys_a: np.ndarray, keys_b: np.ndarray) -> SetMatch:
    """Match the ID set and the OOD sets of two scores tables by their image keys."""
    rows, pairs, differing = [], {}, []
    id_pair = ("", "")
    for split in ("id", "ood"):
        sets_a, sets_b = _sets(a, split), _sets(b, split)
        own_a = {
            s: set(keys_a[(a["split"] == split).to_numpy() & (a["dataset"] == s).to_numpy()]) for s in sets_a
        }
        own_b = {
            s: set(keys_b[(b["split"] == split).to_numpy() & (b["dataset"] == s).to_numpy()]) for s in sets_b
        }
        used_b = set()
        for s in sets_a:
            best = max(sets_b, key=lambda t: len(own_a[s] & own_b[t]), default=None)
            shared = len(own_a[s] & own_b[best]) if best is not None else 0
            if not shared:
                rows.append({"split": split, "set A": s, "set B": "", "images A": len(own_a[s]),
                             "images B": 0, "shared": 0, "relation": "only in A"})  # fmt: skip
                differing.append(f"{s} (only in A)")
                continue
            used_b.add(best)
            same = own_a[s] == own_b[best]
            relation = "same images" if same else "partly shared"
            rows.append({"split": split, "set A": s, "set B": best, "images A": len(own_a[s]),
                         "images B": len(own_b[best]), "shared": shared, "relation": relation})  # fmt: skip
            if not same:
                differing.append(
                    f"{s} / {best} (partly shared: {shared} of {len(own_a[s])} and {len(own_b[best])})"
                )
            if split == "ood":
                pairs[s] = (s, best)
            elif id_pair == ("", ""):
                id_pair = (s, best)
        for t in sets_b:
            if t not in used_b:
                rows.append({"split": split, "set A": "", "set B": t, "images A": 0,
                             "images B": len(own_b[t]), "shared": 0, "relation": "only in B"})  # fmt: skip
                differing.append(f"{t} (only in B)")
    return SetMatch(pd.DataFrame(rows), pairs, id_pair, differing)


def _aligned(scores: pd.DataFrame, keys: np.ndarray, split: str, name: str, wanted: Sequence) -> np.ndarray:
    """Row indices of ``scores`` for the images ``wanted`` (keys), in that order."""
    mask = (scores["split"] == split).to_numpy() & (scores["dataset"] == name).to_numpy()
    index = {k: i for i, k in zip(np.flatnonzero(mask), keys[mask])}
    return np.array([index[k] for k in wanted], dtype=np.int64)


def _shared_keys(keys_a, keys_b, a, b, split, pair) -> list:
    ma = (a["split"] == split).to_numpy() & (a["dataset"] == pair[0]).to_numpy()
    mb = (b["split"] == split).to_numpy() & (b["dataset"] == pair[1]).to_numpy()
    other = set(keys_b[mb])
    return [k for k in dict.fromkeys(keys_a[ma]) if k in other]


def shared_metrics(
    a: pd.DataFrame, b: pd.DataFrame, column_a: str, column_b: str, keys_a: np.ndarray, keys_b: np.ndarray,
    match: SetMatch,
) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Both runs' metrics on the images they share, per shared OOD set and their mean.

    Returns:
        ``(table, aligned)``: table rows per OOD set (named by A) and ``mean`` (over the shared
        sets only) with ``<metric> A``, ``<metric> B`` and ``<metric> Δ`` (B − A, fractions) and
        the number of shared images; ``aligned`` = ``{"a": (id [N], {set: [N_k]}), "b": (…)}``, the
        scores of the same images in the same order (what a paired bootstrap needs).
    """
    id_keys = _shared_keys(keys_a, keys_b, a, b, "id", match.id_pair)
    if not id_keys:
        raise ValueError("the two runs share no ID image, so no metric can be compared")
    va, vb = a[column_a].to_numpy(np.float64), b[column_b].to_numpy(np.float64)
    id_a = va[_aligned(a, keys_a, "id", match.id_pair[0], id_keys)]
    id_b = vb[_aligned(b, keys_b, "id", match.id_pair[1], id_keys)]
    oods_a, oods_b, rows = {}, {}, []
    for name, pair in match.pairs.items():
        shared = _shared_keys(keys_a, keys_b, a, b, "ood", pair)
        oods_a[name] = va[_aligned(a, keys_a, "ood", pair[0], shared)]
        oods_b[name] = vb[_aligned(b, keys_b, "ood", pair[1], shared)]
        ma, mb = M.ood_metrics(id_a, oods_a[name]), M.ood_metrics(id_b, oods_b[name])
        rows.append({"dataset": name, "shared OOD images": len(shared),
                     **{f"{k} A": ma[k] for k in M.METRIC_NAMES}, **{f"{k} B": mb[k] for k in M.METRIC_NAMES}})  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        mean = {c: float(table[c].mean()) for c in table.columns if c.endswith((" A", " B"))}
        table = pd.concat(
            [
                table,
                pd.DataFrame(
                    [{"dataset": "mean", "shared OOD images": int(table["shared OOD images"].sum()), **mean}]
                ),
            ],
            ignore_index=True,
        )
        for k in M.METRIC_NAMES:
            table[f"{k} Δ"] = table[f"{k} B"] - table[f"{k} A"]
    table.attrs["shared ID images"] = len(id_keys)
    return table, {"a": (id_a, oods_a), "b": (id_b, oods_b)}


def disagreements(
    a: pd.DataFrame, b: pd.DataFrame, column_a: str, column_b: str, threshold_a: float, threshold_b: float,
    keys_a: np.ndarray, keys_b: np.ndarray,
) -> pd.DataFrame:  # fmt: skip
    """Images of both runs decided differently, each run at its own threshold.

    Returns:
        One row per shared image (matched by key) accepted by one side and rejected by the other:
        ``row A``, ``row B``, ``dataset``, ``split``, ``score A``, ``score B``, ``accepted by``
        (``A`` or ``B``) and ``margin``: the smaller of the two distances to the own threshold, each
        in units of its score's ID standard deviation. Sorted by margin, largest first: the clearest
        disagreements first, the close calls last.
    """
    index_b = {}
    for i, k in enumerate(keys_b):
        index_b.setdefault(k, i)
    rows_a = np.array([i for i, k in enumerate(keys_a) if k in index_b], dtype=np.int64)
    rows_b = np.array([index_b[keys_a[i]] for i in rows_a], dtype=np.int64)
    sa = a[column_a].to_numpy(np.float64)[rows_a]
    sb = b[column_b].to_numpy(np.float64)[rows_b]
    acc_a, acc_b = sa >= threshold_a, sb >= threshold_b
    differ = acc_a != acc_b

    def spread(frame: pd.DataFrame, column: str) -> float:
        values = frame.loc[frame["split"] == "id", column].to_numpy(np.float64)
        s = float(np.std(values)) if values.size else 0.0
        return s if s > 0 else 1.0

    margin = np.minimum(
        np.abs(sa - threshold_a) / spread(a, column_a), np.abs(sb - threshold_b) / spread(b, column_b)
    )
    out = pd.DataFrame(
        {
            "row A": rows_a[differ],
            "row B": rows_b[differ],
            "dataset": a["dataset"].to_numpy()[rows_a[differ]],
            "split": a["split"].to_numpy()[rows_a[differ]],
            "score A": sa[differ],
            "score B": sb[differ],
            "accepted by": np.where(acc_a[differ], "A", "B"),
            "margin": margin[differ],
        }
    )
    return out.sort_values("margin", ascending=False, kind="stable").reset_index(drop=True)
