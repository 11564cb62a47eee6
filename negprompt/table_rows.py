"""Which (method, score) pairs the results table shows, and the names it gives them.

One place for the console table (`negprompt.evaluate.format_table`), the dashboard's compare page and
the notebooks (`negprompt.viz.method_rows`). pandas only: the dashboard imports it without torch.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "ADAPTS_ON_TEST",
    "EXTRA_ROWS",
    "HEADLINE",
    "LABELS",
    "SCORE_LABELS",
    "TRAINING_FREE",
    "all_rows",
    "is_training_free",
    "row_kind",
    "row_label",
    "table_rows",
]

HEADLINE = {
    "zeroshot": "mcm",
    "coop": "mcm",
    "negprompt": "negprompt",
    "neglabel": "neglabel",
    "locoop": "mcm",
    "csp": "csp",
    "adaneg": "adaneg",
    "tanl": "tanl",
    "adaneg_coop": "adaneg",
}
"""The score each method is reported with in the paper-shaped table."""
LABELS = {
    "zeroshot": "MCM (zero-shot)",
    "coop": "CoOp + MCM",
    "negprompt": "NegPrompt",
    "neglabel": "NegLabel (zero-shot)",
    "locoop": "LoCoOp + MCM",
    "csp": "CSP (zero-shot)",
    "adaneg": "AdaNeg (adapts on the test stream)",
    "tanl": "TANL (adapts on the test stream)",
    "adaneg_coop": "AdaNeg + CoOp prompts (adapts on the test stream)",
}
"""The name of each method's headline row."""
EXTRA_ROWS = {
    ("zeroshot", "gl_mcm"): "GL-MCM (zero-shot)",
    ("zeroshot", "l_mcm"): "L-MCM (zero-shot)",
    ("coop", "gl_mcm"): "CoOp + GL-MCM",
    ("locoop", "gl_mcm"): "LoCoOp + GL-MCM",
}
"""Further (method, score) rows of the paper-shaped table, shown when the metrics have them."""
SCORE_LABELS = {
    "mcm": "MCM",
    "maxlogit": "max-logit",
    "energy": "energy",
    "gl_mcm": "GL-MCM",
    "l_mcm": "L-MCM",
    "negprompt": "NegPrompt",
    "posi_nega": "pos−neg",
    "neglabel": "NegLabel",
    "csp": "CSP",
    "adaneg": "AdaNeg",
    "tanl": "TANL",
}
"""How a score is named in row labels of the whole leaderboard."""
TRAINING_FREE = frozenset({"zeroshot", "neglabel", "csp", "adaneg", "tanl"})
"""Methods that learn nothing from the ID training images (hand-made prompts, mined labels)."""
ADAPTS_ON_TEST = frozenset({"adaneg", "adaneg_coop", "tanl"})
"""Training-free methods that adapt on the test stream: never the training-free reference."""


def is_training_free(method: str) -> bool:
    """Whether a method learns nothing and sees one test image at a time (a reference for the others)."""
    return method in TRAINING_FREE and method not in ADAPTS_ON_TEST


def row_kind(method: str) -> str:
    """``"training-free"``, ``"adapts on the test stream"`` or ``"trained"``."""
    if method in ADAPTS_ON_TEST:
        return "adapts on the test stream"
    return "training-free" if method in TRAINING_FREE else "trained"


def table_rows(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """The (method, score) rows of the results table, in the order of the methods in ``metrics``.

    Each method with its headline score (:data:`HEADLINE`, else ``negprompt`` when present, else its
    first score), followed by its :data:`EXTRA_ROWS` that the metrics hold.

    Args:
        metrics: a metrics table (columns ``method`` and ``score`` at least).
    """
    rows: list[tuple[str, str]] = []
    for method in dict.fromkeys(metrics["method"]):
        available = list(dict.fromkeys(metrics.loc[metrics["method"] == method, "score"]))
        wanted = HEADLINE.get(method)
        if wanted not in available:
            wanted = "negprompt" if "negprompt" in available else available[0]
        rows.append((method, wanted))
        rows += [pair for pair in EXTRA_ROWS if pair[0] == method and pair[1] in available]
    return rows


def all_rows(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """Every (method, score) pair of a metrics table, in first-seen order: the whole leaderboard."""
    return list(dict.fromkeys(zip(metrics["method"], metrics["score"])))


def row_label(method: str, score: str) -> str:
    """The name of a row: ``"LoCoOp + GL-MCM"``, ``"NegPrompt"``, ``"max-logit (zero-shot)"``, or
    ``"<method> (<score> score)"`` for a method this table does not know."""
    if (method, score) in EXTRA_ROWS:
        return EXTRA_ROWS[(method, score)]
    if HEADLINE.get(method) == score:
        return LABELS.get(method, method)
    name = SCORE_LABELS.get(score, score)
    if method == "zeroshot":
        return f"{name} (zero-shot)"
    if method == "negprompt":
        return f"NegPrompt ({name} score)"
    if method in LABELS:
        base = LABELS[method].split(" + ")[0].replace(" (zero-shot)", "")
        return f"{base} + {name}"
    return f"{method} ({score} score)"
