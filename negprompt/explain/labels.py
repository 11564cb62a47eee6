"""The exact decomposition of NegLabel's score for one image (see `negprompt.explain`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from negprompt.explain.parts import Explanation, _softmax, _temperature, _top2, _vec

__all__ = ["LOWEST", "explain_neglabel"]

LOWEST = "lowest group's positive mass"


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
