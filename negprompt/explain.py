"""Why a score is what it is: an exact decomposition of every OOD score of one image.

Each function takes one image's raw cosines (``s_pos`` [C], ``s_neg`` [C, M], ``s_local`` [P, C],
NegLabel's ``s_labels`` [M]) and returns an `Explanation` whose ``score`` is recomputed from its
named ``terms`` (the reproduction is checked against `negprompt.scores.score` in the tests) and whose
``rows`` give the share of every prompt (or region, or label). With p the softmax over all the
prompts a score uses:

- ``negprompt``: S = p_ĉ = P⁺ · q_ĉ, with P⁺ = Σ_c p_c the mass on the positive prompts
  (1 − P⁺ on the negatives) and q_ĉ = p_ĉ / P⁺ the predicted class's share of the positive mass
  (MCM's top-1 probability);
- ``posi_nega``: S = p_ĉ − max_m p̃_{ĉ,m};
- ``mcm``: S = q₁, the top class's softmax probability; q₂ and the gap q₁ − q₂ beside it;
- ``maxlogit``: S = s₁, the top cosine; s₂ and the gap s₁ − s₂ beside it;
- ``energy``: S = s₁ + T · log(1/q₁): the top cosine plus a bonus for near ties (0 when one class
  takes all the mass, T · log C when all tie);
- ``l_mcm``: S = max_p q₁(p), the MCM of the deciding region p*;
- ``gl_mcm``: S = q₁(global) + λ · q₁(p*);
- ``neglabel``: S = (1/G) Σ_g P⁺_g, the mean over label groups of the positive mass of the
  softmax over the C class prompts and the group's negative labels (τ = 0.01).

`threshold_position` places a score against a threshold and the ID scores; `caption` writes the
sentence a person reads from these numbers. Everything here is pure (numpy only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "EXPLAINERS",
    "SCORE_HELP",
    "Explanation",
    "ThresholdPosition",
    "caption",
    "explain",
    "explain_energy",
    "explain_gl_mcm",
    "explain_l_mcm",
    "explain_maxlogit",
    "explain_mcm",
    "explain_neglabel",
    "explain_negprompt",
    "explain_posi_nega",
    "score_help",
    "threshold_position",
]

LOWEST = "lowest group's positive mass"

SCORE_HELP = {
    "negprompt": "the best class's probability in a softmax over positive and negative prompts (NegPrompt)",
    "mcm": "the best class's probability in a softmax over the positive prompts only (MCM)",
    "maxlogit": "the largest cosine similarity to a positive prompt (max-logit)",
    "energy": "T · log Σ_c exp(cosine_c / T) over the positive prompts (energy)",
    "posi_nega": "the predicted class's positive minus its best negative probability",
    "gl_mcm": "MCM of the whole image plus MCM of its best local region (GL-MCM)",
    "l_mcm": "MCM of the image's best local region (L-MCM)",
    "neglabel": "the class prompts' share of a softmax over classes and WordNet negative labels (NegLabel)",
}
"""One line per score name, for the help beside score pickers."""


def score_help(column: str) -> str:
    """One line on a ``<method>/<score>`` column (or a bare score name)."""
    method, _, score = column.rpartition("/")
    line = SCORE_HELP.get(score, "a score of the run")
    return f"{line}, with the prompts of {method}" if method else line


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


# --------------------------------------------------------------------------- NegLabel


def explain_neglabel(
    s_pos,
    s_labels,
    groups: int = 1,
    tau: float = 0.01,
    class_names: Sequence[str] | None = None,
    label_words: Sequence[str] | None = None,
    top_k: int = 10,
) -> Explanation:
    """NegLabel: S = (1/G) Σ_g P⁺_g (module docstring); rows: the ``top_k`` negative labels.

    Args:
        s_pos: [C] cosines to the ID class prompts; s_labels: [M] cosines to the negative labels in
            group order (`negprompt.neglabel.group_order`); groups: G; tau: τ.
    """
    s_pos, s_labels, tau = _vec(s_pos, 1, "s_pos"), _vec(s_labels, 1, "s_labels"), _temperature(tau)
    if not 1 <= groups <= len(s_labels):
        raise ValueError(f"groups must lie in [1, {len(s_labels)}], got {groups}")
    words = (
        [str(w) for w in label_words] if label_words is not None else [str(i) for i in range(len(s_labels))]
    )
    if len(words) != len(s_labels):
        raise ValueError(f"{len(words)} label words for {len(s_labels)} negative labels")
    z_pos, z_neg = s_pos / tau, s_labels / tau
    top = z_pos.max()
    lse_pos = top + np.log(np.exp(z_pos - top).sum())
    masses, shares = [], np.empty(len(s_labels))
    group_of = np.empty(len(s_labels), dtype=np.int64)
    for g, cols in enumerate(np.array_split(np.arange(len(s_labels)), groups)):
        zg = np.concatenate([[lse_pos], z_neg[cols]])
        p = _softmax(zg)
        masses.append(float(p[0]))
        shares[cols], group_of[cols] = p[1:] / groups, g
    mean_pos = float(np.mean(masses))
    c1, _ = _top2(s_pos)
    order = np.argsort(-s_labels, kind="stable")[:top_k]
    rows = pd.DataFrame(
        {
            "kind": "negative label",
            "label_index": order,
            "prompt": [words[i] for i in order],
            "group": group_of[order],
            "similarity": s_labels[order],
            "share": shares[order],
        }
    )
    terms = {
        "positive mass (mean over groups)": mean_pos,
        "negative mass (mean over groups)": 1.0 - mean_pos,
        LOWEST: float(min(masses)),
        "groups G": float(groups),
    }
    return Explanation(
        "neglabel", mean_pos, c1, terms,
        "S = mean over groups of the class prompts' share of the softmax over classes and the group's negative labels",
        rows,
    )  # fmt: skip


# --------------------------------------------------------------------------- one entry point

EXPLAINERS = ("negprompt", "posi_nega", "mcm", "maxlogit", "energy", "l_mcm", "gl_mcm", "neglabel")


def explain(
    name: str,
    s_pos,
    s_neg=None,
    temperature: float = 1.0,
    class_names: Sequence[str] | None = None,
    *,
    s_local=None,
    local_score: float | None = None,
    region: int | None = None,
    s_labels=None,
    label_words: Sequence[str] | None = None,
    groups: int = 1,
) -> Explanation:
    """The `Explanation` of score ``name`` for one image (the arguments that score needs).

    NegLabel's τ is 0.01 · ``temperature`` (as the run's scores are computed).
    """
    if name in ("negprompt", "posi_nega"):
        if s_neg is None:
            raise ValueError(f"score {name!r} needs the negative prompts' cosines s_neg [C, M]")
        fn = explain_negprompt if name == "negprompt" else explain_posi_nega
        return fn(s_pos, s_neg, temperature, class_names)
    if name in ("mcm", "maxlogit", "energy"):
        return {"mcm": explain_mcm, "maxlogit": explain_maxlogit, "energy": explain_energy}[name](
            s_pos, temperature, class_names
        )
    if name == "l_mcm":
        if s_local is None:
            raise ValueError("score 'l_mcm' needs the local cosines s_local [P, C]")
        return explain_l_mcm(s_local, temperature, class_names, s_pos)
    if name == "gl_mcm":
        return explain_gl_mcm(
            s_pos, s_local, temperature, class_names, local_score=local_score, region=region
        )
    if name == "neglabel":
        if s_labels is None:
            raise ValueError("score 'neglabel' needs the negative labels' cosines s_labels [M]")
        return explain_neglabel(s_pos, s_labels, groups, 0.01 * temperature, class_names, label_words)
    raise ValueError(f"no explanation for score {name!r}; explained scores: {', '.join(EXPLAINERS)}")


# --------------------------------------------------------------------------- threshold and caption


@dataclass(frozen=True)
class ThresholdPosition:
    """Where a score lies: ``margin = score − threshold`` and ``id_percentile``, the % of ID scores below it."""

    score: float
    threshold: float
    margin: float
    id_percentile: float
    threshold_percentile: float

    @property
    def accepted(self) -> bool:
        """Accepted as ID (score ≥ threshold)."""
        return self.score >= self.threshold


def threshold_position(score: float, threshold: float, id_scores) -> ThresholdPosition:
    """The distance of ``score`` to ``threshold`` in score units and in percentiles of the ID scores.

    ``id_percentile`` = 100 · #{ID scores < score} / N_ID (and the same for the threshold), so the
    difference of the two is the share of ID images between the score and the threshold.
    """
    ids = np.sort(np.asarray(id_scores, dtype=np.float64))
    if ids.size == 0:
        raise ValueError("no ID scores to place the score among")

    def pct(v: float) -> float:
        return 100.0 * np.searchsorted(ids, v, side="left") / ids.size

    return ThresholdPosition(
        float(score), float(threshold), float(score) - float(threshold), pct(score), pct(threshold)
    )


def caption(exp: Explanation, position: ThresholdPosition | None = None, class_names=None) -> str:
    """One sentence (markdown) on why the score is what it is, written from the explanation's numbers."""
    t = exp.terms
    names = list(class_names) if class_names is not None else None

    def cls(i: float | int) -> str:
        i = int(i)
        return names[i] if names and 0 <= i < len(names) else f"class {i}"

    if exp.score_name == "negprompt":
        text = (
            f"The positive prompts hold {100 * t['positive mass P⁺']:.1f}% of the softmax mass over all "
            f"prompts (the negatives {100 * t['negative mass 1 − P⁺']:.1f}%), and {cls(exp.pred)} takes "
            f"{100 * t['top-1 share q₁']:.1f}% of the positive mass (next: {100 * t['top-2 share q₂']:.1f}%), "
            f"so S = {t['positive mass P⁺']:.3g} × {t['top-1 share q₁']:.3g} = {exp.score:.4g}."
        )
    elif exp.score_name == "posi_nega":
        text = (
            f"{cls(exp.pred)}'s positive prompt has probability {t['p(predicted class) p_ĉ']:.3g} and its best "
            f"negative prompt {t['its best negative max_m p̃_ĉ,m']:.3g}, so S = {exp.score:.4g}."
        )
    elif exp.score_name == "mcm":
        text = (
            f"{cls(exp.pred)} takes {100 * t['top-1 share q₁']:.1f}% of the class softmax, the runner-up "
            f"{100 * t['top-2 share q₂']:.1f}% (gap {100 * t['gap q₁ − q₂']:.1f} points); S = q₁ = {exp.score:.4g}."
        )
    elif exp.score_name == "maxlogit":
        text = (
            f"The best class prompt ({cls(exp.pred)}) has cosine {t['top-1 cosine s₁']:.4f}, the second "
            f"{t['top-2 cosine s₂']:.4f}; S = s₁ = {exp.score:.4g}."
        )
    elif exp.score_name == "energy":
        text = (
            f"The best class prompt ({cls(exp.pred)}) has cosine {t['top-1 cosine s₁']:.4f}; the other classes "
            f"add {t['near-tie bonus T·log(1/q₁)']:.4f} (T·log(1/q₁), q₁ = {t['top-1 share q₁']:.3g}), "
            f"so S = {exp.score:.4g}."
        )
    elif exp.score_name in ("l_mcm", "gl_mcm"):
        local = t["local MCM q₁(p*)"]
        where = f"region {exp.region}" if exp.region is not None else "its best region"
        if exp.score_name == "l_mcm":
            text = f"The deciding {where} gives its top class {100 * local:.1f}% of its class softmax; S = {exp.score:.4g}."
        else:
            text = (
                f"The whole image gives {cls(exp.pred)} q₁ = {t['global MCM q₁']:.3g}; {where} adds "
                f"λ · {local:.3g}, so S = {exp.score:.4g}."
            )
    elif exp.score_name == "neglabel":
        top = ", ".join(f"*{w}*" for w in exp.rows["prompt"].head(3))
        text = (
            f"The class prompts hold {100 * t['positive mass (mean over groups)']:.1f}% of the mass on average "
            f"over {int(t['groups G'])} group(s) of negative labels (lowest group "
            f"{100 * t[LOWEST]:.1f}%); closest negative labels: {top}."
        )
    else:
        text = f"S = {exp.score:.4g}."
    if position is not None:
        verb = "accepted as ID" if position.accepted else "rejected as OOD"
        text += (
            f" It is **{verb}**: {abs(position.margin):.4g} {'above' if position.accepted else 'below'} the "
            f"threshold {position.threshold:.4g}; {position.id_percentile:.1f}% of ID images score lower "
            f"(the threshold sits at {position.threshold_percentile:.1f}%)."
        )
    return text
