"""What a person reads: one line per score, the place of a score against the threshold, and a caption
written from an explanation's numbers (see `negprompt.explain`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from negprompt.explain.labels import LOWEST
from negprompt.explain.parts import Explanation

__all__ = ["SCORE_HELP", "ThresholdPosition", "caption", "score_help", "threshold_position"]

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
