"""Bootstrap confidence intervals for OOD metrics, and paired intervals for differences.

Test sets are finite: an FPR95 measured on a few hundred images moves by several points when other
images of the same distribution are drawn. Every metric negprompt reports carries a percentile
bootstrap interval:

- the ID test images and each OOD set are resampled *separately*, with replacement, keeping their
  sizes (``n_resamples`` ≥ 1,000, seeded: the same seed gives the same resamples);
- every metric is recomputed inside each resample, the 95%-TPR threshold of FPR95 included;
- the interval is the (α/2, 1 − α/2) percentile of the resampled values (α = 1 − level);
- the ``mean`` over OOD sets uses the same resample of the ID images for every set, so its interval
  is that of the mean, not a combination of the sets' intervals.

A *paired* bootstrap compares two (method, score) rows on the same images: each resample draws image
indices once and scores both rows on them, so what the images have in common cancels. The interval
of the difference B − A is what tells whether B is better than A; two overlapping marginal intervals
do not.

A method that adapts on each OOD set's stream separately (AdaNeg, `negprompt.streams`) gives every
ID image one score per OOD set: ``id_scores`` may then be a mapping ``{OOD set name: [N_id]}``; the
ID resample stays the same for every set.

All resamples of one metric are computed at once. A resample is a vector of counts (how often each
image was drawn); the counts of tied scores are summed, and every metric follows from cumulative sums
of the ID and OOD counts over the distinct scores, highest first (the same tie rules as
`negprompt.metrics`). `tests/metrics/test_uncertainty.py` checks this against a plain loop that
calls `negprompt.metrics` on each resample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from negprompt import metrics as M

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "INTERVAL_METRICS",
    "Bootstrap",
    "Interval",
    "draw_resamples",
    "interval",
    "intervals",
    "paired_difference",
    "point_metrics",
    "resample_indices",
    "resampled_metrics",
]

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
INTERVAL_METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out", "id_acc")
"""Metrics that get an interval; ``id_acc`` needs a correct/incorrect flag per ID image."""
_CHUNK_ELEMENTS = 4_000_000  # resamples x images handled at once (bounds memory to ~100 MB)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval (``low`` ≤ ``high``)."""

    value: float
    low: float
    high: float

    def excludes(self, x: float = 0.0) -> bool:
        """Whether ``x`` lies outside the interval (for a difference: the sign is settled)."""
        return x < self.low or x > self.high


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: resamples, confidence level and seed (stored in every run)."""

    n_resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not isinstance(self.n_resamples, int | np.integer) or self.n_resamples < 2:
            raise ValueError(f"n_resamples must be an integer >= 2, got {self.n_resamples!r}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {self.level!r}")

    def to_dict(self) -> dict:
        return {
            "method": "percentile",
            "n_resamples": int(self.n_resamples),
            "level": self.level,
            "seed": self.seed,
        }


def resample_indices(n: int, bootstrap: Bootstrap = Bootstrap(), stream: int = 0):
    """The image indices of each resample of a set of ``n`` images: ``n_resamples`` arrays ``[n]``.

    Set ``stream`` (0 for the ID set, k for the k-th OOD set) has its own generator, seeded from
    ``bootstrap.seed``, so a set's resamples do not depend on the other sets. `draw_resamples`
    turns exactly these indices into counts.
    """
    if n < 1:
        raise ValueError("every set needs at least one image to be resampled")
    seq = np.random.SeedSequence([bootstrap.seed, stream])
    rng = np.random.default_rng(seq)
    for _ in range(bootstrap.n_resamples):
        yield rng.integers(0, n, size=n)


def draw_resamples(sizes: Sequence[int], bootstrap: Bootstrap = Bootstrap()) -> list[np.ndarray]:
    """How often each image is drawn in each resample: one ``[n, B]`` int32 array per set of ``sizes``.

    The first set is the ID set, the others the OOD sets (streams 0, 1, …, see `resample_indices`).
    Pass the result to `resampled_metrics` to score several rows on the same resamples.
    """
    out = []
    for stream, n in enumerate(sizes):
        counts = np.empty((n, bootstrap.n_resamples), dtype=np.int32)  # images x resamples
        for b, idx in enumerate(resample_indices(n, bootstrap, stream)):
            counts[:, b] = np.bincount(idx, minlength=n)
        out.append(counts)
    return out


def _groups(sorted_values: np.ndarray) -> np.ndarray | None:
    """Start of each run of equal values in a sorted array, or None when all values differ."""
    starts = np.r_[0, np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1]
    return None if starts.size == sorted_values.size else starts


class _Sorted:
    """One set's scores, highest first, with cumulative per-resample counts (``[n + 1, B]`` int32).

    ``distinct`` are the distinct scores (highest first); ``w`` how many images of each were drawn
    and ``at_least`` how many with a score >= it, each ``[U, B]`` (resamples along the last axis,
    so that every cumulative sum runs over contiguous rows). `count_ge` / `count_gt` give the same
    counts at other scores (those of another set).
    """

    def __init__(self, scores: np.ndarray, counts: np.ndarray) -> None:
        order = np.argsort(-scores, kind="stable")
        self.values = scores[order]
        self.cum = np.zeros((scores.size + 1, counts.shape[1]), dtype=np.int32)
        np.cumsum(counts[order], axis=0, out=self.cum[1:])
        starts = _groups(self.values)
        if starts is None:  # all scores differ: one image per distinct score
            self.distinct, self.at_least = self.values, self.cum[1:]
            self.w = self.at_least - self.cum[:-1]
        else:
            ends = np.r_[starts[1:], scores.size]
            self.distinct, self.at_least = self.values[starts], self.cum[ends]
            self.w = self.at_least - self.cum[starts]

    def count_ge(self, v: np.ndarray) -> np.ndarray:
        """``[len(v), B]``: images of this set with a score >= each of ``v``."""
        return self.cum[np.searchsorted(-self.values, -v, side="right")]

    def count_gt(self, v: np.ndarray) -> np.ndarray:
        """``[len(v), B]``: images of this set with a score > each of ``v``."""
        return self.cum[np.searchsorted(-self.values, -v, side="left")]

    def has_ties_with(self, v: np.ndarray) -> bool:
        """Whether any of ``v`` equals a score of this set."""
        pos = np.searchsorted(-self.values, -v, side="left")
        return bool(np.any(self.values[np.minimum(pos, self.values.size - 1)] == v))


def _dot(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """Σ over rows of a · b, per resample, exactly: in int32 when every sum stays below ``bound`` <
    2³¹ (counts times counts of two sets: at most n_id · n_ood), else in int64."""
    if bound < 2**31:
        return np.einsum("ub,ub->b", a, b)
    return np.einsum("ub,ub->b", a.astype(np.int64), b.astype(np.int64))


def _metrics_from_counts(ids: _Sorted, ood: _Sorted, n_id: int, n_ood: int) -> dict[str, np.ndarray]:
    """FPR95, AUROC, AUPR-In and AUPR-Out of every resample (columns of the counts), ``[B]`` each."""
    tp, w_id = ids.at_least, ids.w  # ID images >= / at each distinct ID score
    fp_ge = ood.count_ge(ids.distinct)  # OOD images >= each distinct ID score
    fp_gt = ood.count_gt(ids.distinct) if ood.has_ties_with(ids.distinct) else fp_ge
    # FPR95: the threshold is the ID score at rank k from the top, k the smallest with k/n >= 0.95
    # (as negprompt.metrics computes it); its group is the first whose tp reaches k.
    kept = np.arange(1, n_id + 1, dtype=np.float64) / n_id
    k = int(np.argmax(kept >= 0.95)) + 1
    group = np.count_nonzero(tp < k, axis=0)
    fpr = fp_ge[group, np.arange(tp.shape[1])] / n_ood
    # AUROC = P(s_id > s_ood) + ½ P(s_id = s_ood), summed over the distinct ID scores.
    pairs = n_id * n_ood
    below = pairs - _dot(w_id, fp_ge, pairs)  # Σ w = n_id in every resample
    ties = _dot(w_id, fp_ge - fp_gt, pairs) if fp_gt is not fp_ge else 0
    auroc = (below + 0.5 * ties) / pairs
    # AUPR-In: Σ_v w(v) · precision(v) / n_id over the distinct ID scores (other thresholds add 0).
    aupr_in = np.einsum("ub,ub->b", w_id, tp / np.maximum(tp + fp_ge, 1)) / n_id
    # AUPR-Out ranks by −score: at each distinct OOD score u, OOD and ID images with a score <= u.
    tp_out = n_ood - (ood.at_least - ood.w)
    fp_out = n_id - ids.count_gt(ood.distinct)
    aupr_out = np.einsum("ub,ub->b", ood.w, tp_out / np.maximum(tp_out + fp_out, 1)) / n_ood
    return {
        "fpr95": fpr,
        "auroc": np.clip(auroc, 0.0, 1.0),
        "aupr_in": np.clip(aupr_in, 0.0, 1.0),
        "aupr_out": np.clip(aupr_out, 0.0, 1.0),
    }


def _as_scores(x: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array of scores, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{what} contains NaN scores; intervals need finite or ±inf scores")
    return arr


IdScores = ArrayLike | Mapping[str, ArrayLike]
"""[N_id] ID scores, or ``{OOD set name: [N_id]}`` where each OOD set has its own (see the module docstring)."""


def _id_per_set(id_scores: IdScores, names: Sequence[str], what: str = "id_scores") -> dict[str, np.ndarray]:
    """The ID scores each OOD set is measured against: ``{set name: [N_id]}`` (one array shared, or per set)."""
    if not isinstance(id_scores, Mapping):
        shared = _as_scores(id_scores, what)
        return {name: shared for name in names}
    missing = [n for n in names if n not in id_scores]
    if missing:
        raise ValueError(f"{what} gives ID scores per OOD set but none for {missing}")
    out = {name: _as_scores(id_scores[name], f"{what} of OOD set {name!r}") for name in names}
    if len({a.size for a in out.values()}) > 1:
        raise ValueError(
            f"{what}: the ID scores of the OOD sets differ in length ({ {k: v.size for k, v in out.items()} })"
        )
    return out


def _id_count(id_scores: IdScores, what: str = "id_scores") -> int:
    if isinstance(id_scores, Mapping):
        sizes = {np.asarray(v).size for v in id_scores.values()}
        if len(sizes) != 1:
            raise ValueError(f"{what} gives ID scores per OOD set of different lengths {sorted(sizes)}")
        return sizes.pop()
    return _as_scores(id_scores, what).size


def resampled_metrics(
    id_scores: IdScores,
    ood_sets: Mapping[str, ArrayLike],
    *,
    correct: ArrayLike | None = None,
    resamples: Sequence[np.ndarray] | None = None,
    bootstrap: Bootstrap = Bootstrap(),
) -> dict[str, dict[str, np.ndarray]]:
    """Every metric in every resample: ``{set name | "mean": {metric: [B]}}``.

    Args:
        id_scores: [N_id] scores of the ID test images (higher = more ID), or ``{OOD set name: [N_id]}``.
        ood_sets: OOD set name -> [N_k] scores; the ``mean`` entry averages the sets per resample.
        correct: [N_id] whether each ID image's predicted class is right (adds ``id_acc`` to every
            entry), or None.
        resamples: the counts of `draw_resamples` for (ID, *OOD sets) — pass the same ones to
            compare rows on the same resamples; drawn from ``bootstrap`` when None.
        bootstrap: resamples, level and seed.
    """
    oods = {name: _as_scores(s, f"OOD set {name!r}") for name, s in ood_sets.items()}
    id_of = _id_per_set(id_scores, list(oods))
    n_id = _id_count(id_scores)
    if "mean" in oods:
        raise ValueError("an OOD set may not be called 'mean' (the name of the average over sets)")
    if resamples is None:
        resamples = draw_resamples([n_id, *(s.size for s in oods.values())], bootstrap)
    if len(resamples) != 1 + len(oods):
        raise ValueError(f"{len(resamples)} resample arrays given for {1 + len(oods)} sets")
    c_id, c_oods = resamples[0], resamples[1:]
    for size, counts in zip([n_id, *(s.size for s in oods.values())], resamples):
        if counts.ndim != 2 or counts.shape[0] != size or counts.shape[1] != c_id.shape[1]:
            raise ValueError(f"resample counts of shape {counts.shape} do not fit a set of {size} images")
    b = c_id.shape[1]
    out: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in oods}
    flags = None
    if correct is not None:
        flags = np.asarray(correct, dtype=np.float64)
        if flags.shape != (n_id,):
            raise ValueError(f"correct has shape {flags.shape}, expected ({n_id},) (one per ID image)")
    widest = n_id + max((s.size for s in oods.values()), default=0)
    step = max(1, _CHUNK_ELEMENTS // widest)
    for lo in range(0, b, step):
        sorted_ids: dict[int, _Sorted] = {}  # once per chunk and distinct ID array, shared by the sets
        for (name, ood), counts in zip(oods.items(), c_oods):
            arr = id_of[name]
            if id(arr) not in sorted_ids:
                sorted_ids[id(arr)] = _Sorted(arr, c_id[:, lo : lo + step])
            ids = sorted_ids[id(arr)]
            part = _metrics_from_counts(ids, _Sorted(ood, counts[:, lo : lo + step]), n_id, ood.size)
            for metric, values in part.items():
                out[name].setdefault(metric, []).append(values)
    result = {name: {m: np.concatenate(v) for m, v in per.items()} for name, per in out.items()}
    if result:
        result["mean"] = {m: np.mean([result[s][m] for s in oods], axis=0) for m in M.METRIC_NAMES}
    else:
        result["mean"] = {}
    if flags is not None:
        accuracy = flags @ c_id / n_id
        for per in result.values():
            per["id_acc"] = accuracy
    return result


def interval(values: ArrayLike, point: float, level: float = DEFAULT_LEVEL) -> Interval:
    """The percentile interval of resampled ``values`` around the full-sample estimate ``point``."""
    arr = np.asarray(values, dtype=np.float64)
    alpha = 1.0 - level
    low, high = np.percentile(arr, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(point), float(low), float(high))


def point_metrics(
    id_scores: IdScores, ood_sets: Mapping[str, ArrayLike], *, correct: ArrayLike | None = None
) -> dict[str, dict[str, float]]:
    """The full-sample metrics in the layout of `resampled_metrics`: ``{set | "mean": {metric: value}}``."""
    oods = {name: _as_scores(s, f"OOD set {name!r}") for name, s in ood_sets.items()}
    id_of = _id_per_set(id_scores, list(oods))
    values = {name: M.ood_metrics(id_of[name], s) for name, s in oods.items()}
    values["mean"] = (
        {m: float(np.mean([v[m] for v in values.values()])) for m in M.METRIC_NAMES} if oods else {}
    )
    if correct is not None:
        acc = float(np.mean(np.asarray(correct, dtype=np.float64)))
        for per in values.values():
            per["id_acc"] = acc
    return values


def intervals(
    id_scores: IdScores,
    ood_sets: Mapping[str, ArrayLike],
    *,
    correct: ArrayLike | None = None,
    resamples: Sequence[np.ndarray] | None = None,
    bootstrap: Bootstrap = Bootstrap(),
) -> dict[str, dict[str, Interval]]:
    """Point estimate and interval of every metric: ``{set name | "mean": {metric: Interval}}``.

    Arguments as `resampled_metrics`.
    """
    oods = {name: _as_scores(s, f"OOD set {name!r}") for name, s in ood_sets.items()}
    id_of = (
        _id_per_set(id_scores, list(oods))
        if isinstance(id_scores, Mapping)
        else _as_scores(id_scores, "id_scores")
    )
    flags = None if correct is None else np.asarray(correct, dtype=np.float64)
    draws = resampled_metrics(id_of, oods, correct=flags, resamples=resamples, bootstrap=bootstrap)
    points = point_metrics(id_of, oods, correct=flags)
    return {
        name: {m: interval(draws[name][m], points[name][m], bootstrap.level) for m in draws[name]}
        for name in draws
    }


def paired_difference(
    a: tuple[IdScores, Mapping[str, ArrayLike]],
    b: tuple[IdScores, Mapping[str, ArrayLike]],
    *,
    correct: tuple[ArrayLike, ArrayLike] | None = None,
    resamples: Sequence[np.ndarray] | None = None,
    bootstrap: Bootstrap = Bootstrap(),
) -> dict[str, dict[str, Interval]]:
    """The difference B − A of every metric with its paired bootstrap interval.

    Both rows must score the *same* images in the same order (ID images, then each OOD set of the
    same name); every resample draws image indices once and computes both rows' metrics on them.

    Args:
        a, b: ``(id_scores [N_id] or {OOD set name: [N_id]}, {OOD set name: [N_k] scores})`` of rows
            A and B.
        correct: ``([N_id], [N_id])`` whether A's and B's predicted classes are right (adds
            ``id_acc``), or None.
        resamples, bootstrap: as in `resampled_metrics`.

    Returns:
        ``{set name | "mean": {metric: Interval of B − A}}``. For FPR95 a negative difference means
        B accepts fewer OOD images (better); for the other metrics a positive one means B is better.
    """
    (id_a, oods_a), (id_b, oods_b) = a, b
    n_a, n_b = _id_count(id_a, "A's id_scores"), _id_count(id_b, "B's id_scores")
    if n_a != n_b or list(oods_a) != list(oods_b):
        raise ValueError(
            "a paired comparison needs the same images in both rows: "
            f"A has {n_a} ID images and sets {list(oods_a)}, B has {n_b} and {list(oods_b)}"
        )
    oods_a = {k: _as_scores(v, f"A's OOD set {k!r}") for k, v in oods_a.items()}
    oods_b = {k: _as_scores(v, f"B's OOD set {k!r}") for k, v in oods_b.items()}
    for k in oods_a:
        if oods_a[k].size != oods_b[k].size:
            raise ValueError(f"OOD set {k!r} has {oods_a[k].size} images in A but {oods_b[k].size} in B")
    if resamples is None:
        resamples = draw_resamples([n_a, *(s.size for s in oods_a.values())], bootstrap)
    ca, cb = (None, None) if correct is None else correct
    draws_a = resampled_metrics(id_a, oods_a, correct=ca, resamples=resamples)
    draws_b = resampled_metrics(id_b, oods_b, correct=cb, resamples=resamples)
    pa = point_metrics(id_a, oods_a, correct=ca)
    pb = point_metrics(id_b, oods_b, correct=cb)
    return {
        name: {
            m: interval(draws_b[name][m] - draws_a[name][m], pb[name][m] - pa[name][m], bootstrap.level)
            for m in draws_a[name]
        }
        for name in draws_a
    }
