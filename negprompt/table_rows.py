"""Which (method, score) pairs the results table shows, and the names it gives them.

One place for the console table (`negprompt.evaluate.format_table`), the dashboard's compare page and
the notebooks (`negprompt.viz.method_rows`). pandas only: the dashboard imports it without torch.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["EXTRA_ROWS", "HEADLINE", "LABELS", "row_label", "table_rows"]

HEADLINE = {
    "zeroshot": "mcm",
    "coop": "mcm",
    "negprompt": "negprompt",
    "neglabel": "neglabel",
    "locoop": "mcm",
    "csp": "csp",
    "adaneg": "adaneg",
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
}
"""The name of each method's headline row."""
EXTRA_ROWS = {
    ("zeroshot", "gl_mcm"): "GL-MCM (zero-shot)",
    ("zeroshot", "l_mcm"): "L-MCM (zero-shot)",
    ("coop", "gl_mcm"): "CoOp + GL-MCM",
    ("locoop", "gl_mcm"): "LoCoOp + GL-MCM",
}
"""Further (method, score) rows of the paper-shaped table, shown when the metrics have them."""


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


def row_label(method: str, score: str) -> str:
    """The name of a row: ``"LoCoOp + GL-MCM"``, ``"NegPrompt"``, or ``"<method> (<score> score)"``."""
    if (method, score) in EXTRA_ROWS:
        return EXTRA_ROWS[(method, score)]
    return LABELS.get(method, method) if HEADLINE.get(method) == score else f"{method} ({score} score)"
