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

from negprompt.explain.labels import LOWEST, explain_neglabel
from negprompt.explain.parts import (
    Explanation,
    explain_energy,
    explain_gl_mcm,
    explain_l_mcm,
    explain_maxlogit,
    explain_mcm,
    explain_negprompt,
    explain_posi_nega,
)
from negprompt.explain.words import SCORE_HELP, ThresholdPosition, caption, score_help, threshold_position

__all__ = [
    "EXPLAINERS",
    "LOWEST",
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
