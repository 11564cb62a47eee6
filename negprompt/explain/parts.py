"""Exact decompositions of the scores of negprompt.scores for one image (see `negprompt.explain`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "Explanation",
    "explain_energy",
    "explain_gl_mcm",
    "explain_l_mcm",
    "explain_maxlogit",
    "explain_mcm",
    "explain_negprompt",
    "explain_posi_nega",
]


@dataclass(frozen=True)
class Explanation:
    """The parts of one image's score.

    Attributes:
        score_name: the registered score (``negprompt``, ``mcm``, …, ``neglabel``).
        score: the score recomputed from ``terms`` by ``formula``.
        pred: the predicted class ĉ (argmax of the global positive cosines; -1 when unknown).
        terms: named numbers that make the score (e.g. ``positive mass``, ``top-1 share``).
        formula: how ``terms`` give ``score``, in words and symbols.
        rows: one row per prompt / region / label with its ``similarity`` and its ``share`` of the
            probability mass (columns depend on the score; sorted by share, largest first).
        region: the deciding local region p* (GL-MCM, L-MCM), else None.
    """

    score_name: str
    score: float
    pred: int
    terms: dict[str, float]
    formula: str
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    region: int | None = None


def _vec(x, ndim: int, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim or a.size == 0:
        raise ValueError(f"{what} must be a non-empty {ndim}-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return a


def _temperature(t: float) -> float:
    t = float(t)
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
    return t


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _names(class_names: Sequence[str] | None, n: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} classes")
    return names


def _top2(values: np.ndarray) -> tuple[int, int]:
    order = np.argsort(-values, kind="stable")
    return int(order[0]), int(order[1]) if len(order) > 1 else -1


def _class_rows(names: list[str], s: np.ndarray, q: np.ndarray) -> pd.DataFrame:
    rows = pd.DataFrame(
        {"kind": "positive", "class_index": np.arange(len(s)), "prompt": names, "similarity": s, "share": q}
    )
    return rows.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)


def _mcm_parts(s_pos: np.ndarray, t: float) -> tuple[np.ndarray, int, int]:
    q = _softmax(s_pos / t)
    c1, c2 = _top2(s_pos)
    return q, c1, c2


def _ranked(terms: dict, q: np.ndarray, c1: int, c2: int) -> dict:
    terms["top-1 share q₁"] = float(q[c1])
    terms["top-2 share q₂"] = float(q[c2]) if c2 >= 0 else 0.0
    terms["gap q₁ − q₂"] = terms["top-1 share q₁"] - terms["top-2 share q₂"]
    return terms


# --------------------------------------------------------------------------- global scores


def explain_negprompt(
    s_pos, s_neg, temperature: float = 1.0, class_names: Sequence[str] | None = None
) -> Explanation:
    """NegPrompt's score S = p_ĉ = P⁺ · q_ĉ (module docstring). [C], [C, M] cosines of one image."""
    s_pos, s_neg, t = _vec(s_pos, 1, "s_pos"), _vec(s_neg, 2, "s_neg"), _temperature(temperature)
    if s_neg.shape[0] != s_pos.shape[0]:
        raise ValueError(f"s_neg has {s_neg.shape[0]} classes but s_pos has {s_pos.shape[0]}")
    names = _names(class_names, len(s_pos))
    p_all = _softmax(np.concatenate([s_pos, s_neg.ravel()]) / t)
    p, p_neg = p_all[: len(s_pos)], p_all[len(s_pos) :].reshape(s_neg.shape)
    pos_mass = float(p.sum())
    q, c1, c2 = _mcm_parts(s_pos, t)
    terms = {"positive mass P⁺": pos_mass, "negative mass 1 − P⁺": float(p_neg.sum())}
    terms = _ranked(terms, q, c1, c2)
    c_idx, m_idx = np.meshgrid(np.arange(len(s_pos)), np.arange(s_neg.shape[1]), indexing="ij")
    neg_rows = pd.DataFrame(
        {
            "kind": "negative",
            "class_index": c_idx.ravel(),
            "prompt": [f"{names[c]} · neg {m + 1}" for c, m in zip(c_idx.ravel(), m_idx.ravel())],
            "similarity": s_neg.ravel(),
            "share": p_neg.ravel(),
        }
    )
    pos_rows = pd.DataFrame(
        {
            "kind": "positive",
            "class_index": np.arange(len(s_pos)),
            "prompt": names,
            "similarity": s_pos,
            "share": p,
        }
    )
    rows = pd.concat([pos_rows, neg_rows], ignore_index=True)
    rows = rows.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)
    return Explanation(
        "negprompt",
        terms["positive mass P⁺"] * terms["top-1 share q₁"],
        c1,
        terms,
        "S = P⁺ · q₁: the positive prompts' share of the softmax over all prompts, times the "
        "predicted class's share of the positive mass",
        rows,
    )


def explain_posi_nega(
    s_pos, s_neg, temperature: float = 1.0, class_names: Sequence[str] | None = None
) -> Explanation:
    """S = p_ĉ − max_m p̃_{ĉ,m}: the predicted class's positive minus its best negative probability."""
    base = explain_negprompt(s_pos, s_neg, temperature, class_names)
    rows = base.rows
    own = rows[rows["class_index"] == base.pred]
    p_pos = float(own.loc[own["kind"] == "positive", "share"].iloc[0])
    p_neg = float(own.loc[own["kind"] == "negative", "share"].max())
    terms = {
        "p(predicted class) p_ĉ": p_pos,
        "its best negative max_m p̃_ĉ,m": p_neg,
        "positive mass P⁺": base.terms["positive mass P⁺"],
        "negative mass 1 − P⁺": base.terms["negative mass 1 − P⁺"],
    }
    return Explanation(
        "posi_nega",
        p_pos - p_neg,
        base.pred,
        terms,
        "S = p_ĉ − max_m p̃_ĉ,m in the softmax over all prompts",
        own.reset_index(drop=True),
    )


def explain_mcm(s_pos, temperature: float = 1.0, class_names: Sequence[str] | None = None) -> Explanation:
    """MCM: S = q₁, the top class's softmax probability over the positive prompts; q₂ and the gap."""
    s_pos, t = _vec(s_pos, 1, "s_pos"), _temperature(temperature)
    names = _names(class_names, len(s_pos))
    q, c1, c2 = _mcm_parts(s_pos, t)
    terms = _ranked({}, q, c1, c2)
    return Explanation(
        "mcm", terms["top-1 share q₁"], c1, terms, "S = q₁: the top class's softmax probability",
        _class_rows(names, s_pos, q),
    )  # fmt: skip


def explain_maxlogit(
    s_pos, temperature: float = 1.0, class_names: Sequence[str] | None = None
) -> Explanation:
    """Max-logit: S = s₁, the top cosine; the second s₂ and the gap s₁ − s₂ beside it."""
    s_pos = _vec(s_pos, 1, "s_pos")
    names = _names(class_names, len(s_pos))
    c1, c2 = _top2(s_pos)
    s2 = float(s_pos[c2]) if c2 >= 0 else float("nan")
    terms = {"top-1 cosine s₁": float(s_pos[c1]), "top-2 cosine s₂": s2, "gap s₁ − s₂": float(s_pos[c1]) - s2}
    q = _softmax(s_pos / _temperature(temperature))
    return Explanation(
        "maxlogit", terms["top-1 cosine s₁"], c1, terms, "S = s₁: the largest cosine to a class prompt",
        _class_rows(names, s_pos, q),
    )  # fmt: skip


def explain_energy(s_pos, temperature: float = 1.0, class_names: Sequence[str] | None = None) -> Explanation:
    """Energy: S = T · log Σ_c e^{s_c/T} = s₁ + T · log(1/q₁) (the top cosine plus a near-tie bonus)."""
    s_pos, t = _vec(s_pos, 1, "s_pos"), _temperature(temperature)
    names = _names(class_names, len(s_pos))
    q, c1, c2 = _mcm_parts(s_pos, t)
    terms = {"top-1 cosine s₁": float(s_pos[c1]), "near-tie bonus T·log(1/q₁)": float(-t * np.log(q[c1]))}
    terms = _ranked(terms, q, c1, c2)
    return Explanation(
        "energy", terms["top-1 cosine s₁"] + terms["near-tie bonus T·log(1/q₁)"], c1, terms,
        "S = s₁ + T · log(1/q₁): the top cosine plus a bonus that grows as other classes tie with it",
        _class_rows(names, s_pos, q),
    )  # fmt: skip


# --------------------------------------------------------------------------- local scores


def _local_terms(s_local: np.ndarray, t: float, names: list[str]) -> tuple[dict, int, pd.DataFrame]:
    z = s_local / t
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    best = q.max(axis=1)  # [P]
    region = int(np.argmax(best))
    cls = int(np.argmax(q[region]))
    rows = pd.DataFrame(
        {
            "kind": "region",
            "region": np.arange(len(best)),
            "class_index": q.argmax(axis=1),
            "prompt": [f"region {p} · {names[c]}" for p, c in enumerate(q.argmax(axis=1))],
            "similarity": s_local.max(axis=1),
            "share": best,
        }
    ).sort_values("share", ascending=False, kind="stable")
    terms = {
        "local MCM q₁(p*)": float(best[region]),
        "deciding region p*": float(region),
        "region class": float(cls),
    }
    return terms, region, rows.reset_index(drop=True)


def explain_l_mcm(
    s_local, temperature: float = 1.0, class_names: Sequence[str] | None = None, s_pos=None
) -> Explanation:
    """Local MCM: S = max_p q₁(p), decided by the region p* (rows: every region's top share)."""
    s_local, t = _vec(s_local, 2, "s_local"), _temperature(temperature)
    names = _names(class_names, s_local.shape[1])
    terms, region, rows = _local_terms(s_local, t, names)
    pred = int(np.argmax(_vec(s_pos, 1, "s_pos"))) if s_pos is not None else -1
    return Explanation(
        "l_mcm",
        terms["local MCM q₁(p*)"],
        pred,
        terms,
        "S = max_p q₁(p): the best region's MCM",
        rows,
        region,
    )


def explain_gl_mcm(
    s_pos,
    s_local=None,
    temperature: float = 1.0,
    class_names: Sequence[str] | None = None,
    weight: float = 1.0,
    *,
    local_score: float | None = None,
    region: int | None = None,
) -> Explanation:
    """GL-MCM: S = q₁(global) + λ · q₁(p*).

    Give the local similarities ``s_local`` [P, C], or, where only the stored local MCM and its
    region are at hand (a run directory keeps ``l_mcm`` and ``best_region``, not the patches),
    ``local_score`` and ``region``.
    """
    glob = explain_mcm(s_pos, temperature, class_names)
    if s_local is not None:
        local = explain_l_mcm(s_local, temperature, class_names, s_pos)
        l_value, region, rows = local.score, local.region, local.rows
    elif local_score is not None:
        l_value, rows = float(local_score), glob.rows
    else:
        raise ValueError("GL-MCM needs the local similarities s_local [P, C] or the stored local_score")
    terms = {
        "global MCM q₁": glob.score,
        "local MCM q₁(p*)": l_value,
        "weight λ": float(weight),
        "top-2 share q₂ (global)": glob.terms["top-2 share q₂"],
    }
    if region is not None:
        terms["deciding region p*"] = float(region)
    return Explanation(
        "gl_mcm", glob.score + float(weight) * l_value, glob.pred, terms,
        "S = q₁(global) + λ · q₁(p*): the whole image's MCM plus the best region's", rows, region,
    )  # fmt: skip
