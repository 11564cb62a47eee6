"""The threshold explorer's helpers: which images flip, and a readout as fine as the scores.

Same conventions as `negprompt.analysis`: an image is accepted (called ID) when
``score >= threshold``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = ["flipped_images", "score_digits"]


def score_digits(scores: ArrayLike, most: int = 10) -> int:
    """Decimals that tell every two distinct scores apart: ``ceil(-log10(g)) + 1`` for the
    smallest gap ``g`` between sorted distinct finite scores (at least 2, at most ``most``).

    A threshold printed with fewer decimals than this, typed back, can land on the other side of a
    score and give a different count.
    """
    arr = np.unique(np.asarray(scores, dtype=np.float64).ravel())
    arr = arr[np.isfinite(arr)]
    gaps = np.diff(arr)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return 2
    return int(min(most, max(2, math.ceil(-math.log10(float(gaps.min()))) + 1)))


def flipped_images(
    scores: pd.DataFrame, score_col: str, reference: float, threshold: float, k: int | None = None
) -> pd.DataFrame:
    """Images decided differently at ``threshold`` than at ``reference``, nearest ``threshold`` first.

    Moving a threshold from ``reference`` to ``threshold`` flips exactly the images whose score lies
    between the two; the ones nearest the new threshold are the closest calls.

    Args:
        scores: the per-image table (``dataset``, ``split``, ``path`` and ``score_col``).
        score_col: the score column deciding acceptance.
        reference: the threshold compared with (e.g. the FPR95 threshold).
        threshold: the threshold now.
        k: keep at most this many rows (None: all).

    Returns:
        The flipped rows with the original row number as column ``row`` and the added columns
        ``score``, ``accepted`` (at ``threshold``) and ``distance`` (``|score - threshold|``).
    """
    score = scores[score_col].to_numpy(dtype=np.float64)
    now = score >= threshold
    rows = np.flatnonzero(now != (score >= reference))
    columns = [c for c in ("dataset", "split", "path", "label_name", "ood_class") if c in scores.columns]
    out = scores.iloc[rows][columns].copy()
    out.insert(0, "row", rows)
    out["score"] = score[rows]
    out["accepted"] = now[rows]
    out["distance"] = np.abs(score[rows] - threshold)
    out = out.sort_values("distance", kind="stable").reset_index(drop=True)
    return out if k is None else out.head(k)
