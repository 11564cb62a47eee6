"""Checks that report, not repair: did training do anything, and does a training-free score win?

Every run directory gets ``checks.json``: one entry per check with its measured value, the threshold
it is held against, a status (``warn``: the check fired; ``ok``; ``n/a``: the run has nothing to
check) and one line of meaning. Nothing is changed or re-run because a check fires; it says what
happened so that nobody reads a number as more than it is.

The checks and their thresholds (`THRESHOLDS`):

- ``negatives_collapsed``: the largest cosine between two negative prompts of one class; above
  0.999 the M negatives of that class are one prompt (M acts as 1).
- ``stage1_unchanged`` / ``stage2_unchanged``: the smallest cosine between a learned prompt feature
  and the feature it started from (stage 1: CoOp's positives vs the zero-shot ones; stage 2: the
  negatives vs their own positives, from which they are initialised); above 0.9999 the stage left
  the prompts where they were. The loss change and the selected epoch are given beside it.
- ``too_few_steps``: optimisation steps of each stage (epochs × batches); below 50 a stage has had
  little chance to move (the mini presets make 100–300 per stage, the paper's ImageNet recipe about
  25,000).
- ``training_free_wins``: a trained method's headline row is worse than the best training-free row
  on the mean over OOD sets, with a paired interval of the FPR95 difference that excludes 0.
- ``id_accuracy_fell``: a trained method's ID accuracy is below the training-free prompts', with a
  paired interval that excludes 0.
- ``below_chance``: a row with AUROC below 0.5 on an OOD set (it ranks OOD images above ID ones).
- ``random_weights``: the backbone has random weights; every number only exercises the pipeline.

numpy and pandas only (the dashboard reads checks without torch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from negprompt.table_rows import HEADLINE, is_training_free, row_label

__all__ = ["CHECKS_FORMAT", "THRESHOLDS", "Check", "format_checks", "parse_checks", "run_checks"]

CHECKS_FORMAT = 1
THRESHOLDS = {
    "negatives_collapsed": 0.999,
    "stage_unchanged": 0.9999,
    "too_few_steps": 50,
}
"""The documented thresholds of the checks (see the module docstring)."""
STATUSES = ("warn", "ok", "n/a")


@dataclass
class Check:
    """One check: ``status`` is ``warn`` (fired), ``ok`` or ``n/a``; ``value`` is what was measured."""

    id: str
    title: str
    status: str
    value: Any
    threshold: Any
    meaning: str
    details: dict = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        return self.status == "warn"


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _negatives_collapsed(text: Mapping[str, np.ndarray]) -> Check:
    limit = THRESHOLDS["negatives_collapsed"]
    title = "negative prompts collapsed"
    neg = text.get("negprompt.neg")
    if neg is None or np.ndim(neg) != 3 or neg.shape[1] < 2:
        m = "no learned negatives" if neg is None else "a single negative prompt per class (M = 1)"
        return Check("negatives_collapsed", title, "n/a", None, limit, f"nothing to compare: {m}")
    u = _unit(neg)  # [C, M, D]
    cos = np.einsum("cmd,cnd->cmn", u, u)
    m = cos.shape[1]
    off = ~np.eye(m, dtype=bool)
    largest = cos[:, off].max(axis=1)  # [C]
    affected = int((largest > limit).sum())
    value = round(float(largest.max()), 6)
    details = {"classes": int(neg.shape[0]), "classes_collapsed": affected, "n_neg": int(m)}
    if affected:
        meaning = (
            f"in {affected} of {neg.shape[0]} classes two negative prompts are the same vector: the "
            f"{m} negative contexts act as fewer (M = 1 when all collapse); L_nn had nothing to spread"
        )
        return Check("negatives_collapsed", title, "warn", value, limit, meaning, details)
    return Check(
        "negatives_collapsed",
        title,
        "ok",
        value,
        limit,
        "the negative prompts of every class differ",
        details,
    )


def _stage_unchanged(stage: int, text: Mapping[str, np.ndarray], stages: Sequence[Mapping]) -> Check:
    limit = THRESHOLDS["stage_unchanged"]
    key = f"stage{stage}_unchanged"
    title = f"stage {stage} changed nothing"
    summary = next((s for s in stages if s.get("stage") == stage), None)
    if stage == 1:
        learned, start, what = (
            text.get("coop.pos"),
            text.get("zeroshot.pos"),
            "CoOp's positives vs the zero-shot ones",
        )
    else:
        neg, pos = text.get("negprompt.neg"), text.get("negprompt.pos")
        learned, what = neg, "each negative vs its class's positive (its starting point)"
        start = (
            None
            if pos is None or neg is None
            else np.repeat(np.asarray(pos)[:, None, :], neg.shape[1], axis=1)
        )
    if summary is None or learned is None or start is None or np.shape(learned) != np.shape(start):
        return Check(key, title, "n/a", None, limit, f"stage {stage} did not run in this run")
    cos = np.sum(_unit(learned) * _unit(start), axis=-1)
    value = round(float(cos.min()), 6)
    history = summary.get("history") or []
    losses = [h.get("loss") for h in history if isinstance(h.get("loss"), int | float)]
    criterion = summary.get("selection_criterion")
    crit_values = [h.get(criterion) for h in history if criterion and criterion in h]
    details = {
        "compared": what,
        "selected_epoch": summary.get("selected_epoch"),
        "epochs_run": summary.get("epochs_run"),
        "loss_first_epoch": losses[0] if losses else None,
        "loss_last_epoch": losses[-1] if losses else None,
        "selection_criterion": criterion,
        "criterion_constant": bool(crit_values) and len(set(crit_values)) == 1,
    }
    if value > limit:
        extra = ""
        if details["criterion_constant"]:
            extra = f"; {criterion} was {crit_values[0]:.4g} at every epoch, so it could not pick an epoch"
        meaning = (
            f"the learned prompts are where they started (smallest cosine {value:.6f} > {limit}): the "
            f"results of stage {stage} are those of its starting prompts{extra}"
        )
        return Check(key, title, "warn", value, limit, meaning, details)
    return Check(key, title, "ok", value, limit, f"stage {stage} moved the prompts ({what})", details)


def _too_few_steps(stages: Sequence[Mapping]) -> Check:
    limit = THRESHOLDS["too_few_steps"]
    title = "too few optimisation steps"
    counts = {f"stage{s['stage']}": s.get("steps") for s in stages if isinstance(s.get("steps"), int)}
    if not counts:
        return Check("too_few_steps", title, "n/a", None, limit, "no training stage recorded its steps")
    few = {k: v for k, v in counts.items() if v < limit}
    reference = "the mini presets make 100–300 per stage, the paper's ImageNet recipe about 25,000"
    if few:
        listed = ", ".join(f"{k} {v}" for k, v in few.items())
        meaning = f"{listed} optimisation steps: too few for the prompts to move much ({reference})"
        return Check("too_few_steps", title, "warn", counts, limit, meaning)
    return Check("too_few_steps", title, "ok", counts, limit, f"every stage made at least {limit} steps")


def _num(row: pd.Series, key: str) -> float:
    value = pd.to_numeric(row.get(key, np.nan), errors="coerce")
    return float(value) if value is not None and not pd.isna(value) else math.nan


def _trained_headlines(mean: pd.DataFrame) -> list[pd.Series]:
    rows = []
    for _, r in mean.iterrows():
        if not is_training_free(r["method"]) and HEADLINE.get(r["method"]) == r["score"]:
            rows.append(r)
    return rows


def _training_free_wins(metrics: pd.DataFrame) -> Check:
    title = "a training-free score beats a trained method"
    mean = metrics[metrics["dataset"] == "mean"]
    has = (
        "d_fpr95_low" in metrics.columns
        and pd.to_numeric(mean.get("d_fpr95_low"), errors="coerce").notna().any()
    )
    if mean.empty or not has:
        return Check(
            "training_free_wins", title, "n/a", None, "interval excludes 0", "no paired intervals in this run"
        )
    losers, compared = {}, {}
    for r in _trained_headlines(mean):
        label = row_label(r["method"], r["score"])
        d, low, high = _num(r, "d_fpr95"), _num(r, "d_fpr95_low"), _num(r, "d_fpr95_high")
        if math.isnan(d):
            continue
        compared[label] = {"d_fpr95": d, "low": low, "high": high}
        if low > 0:
            losers[label] = compared[label]
    ref = (
        str(mean["ref_fpr95"].dropna().iloc[0])
        if "ref_fpr95" in mean and mean["ref_fpr95"].notna().any()
        else ""
    )
    ref_label = row_label(*ref.split("/", 1)) if "/" in ref else ref
    details = {"reference": ref_label, "rows": compared}
    if losers:
        listed = "; ".join(
            f"{k} +{100 * v['d_fpr95']:.2f} pp [{100 * v['low']:+.2f}, {100 * v['high']:+.2f}]"
            for k, v in losers.items()
        )
        meaning = f"{ref_label} has a lower mean FPR95, with no training, than {listed}"
        return Check(
            "training_free_wins", title, "warn", sorted(losers), "interval excludes 0", meaning, details
        )
    return Check(
        "training_free_wins", title, "ok", [], "interval excludes 0",
        f"no trained method is worse than {ref_label} beyond the interval", details,
    )  # fmt: skip


def _accuracy_fell(metrics: pd.DataFrame) -> Check:
    title = "ID accuracy fell after training"
    mean = metrics[metrics["dataset"] == "mean"]
    if mean.empty or "d_id_acc_high" not in metrics.columns:
        return Check(
            "id_accuracy_fell", title, "n/a", None, "interval excludes 0", "no paired intervals in this run"
        )
    fell, seen = {}, {}
    for r in _trained_headlines(mean):
        d, low, high = _num(r, "d_id_acc"), _num(r, "d_id_acc_low"), _num(r, "d_id_acc_high")
        if math.isnan(d):
            continue
        seen[r["method"]] = {"d_id_acc": d, "low": low, "high": high}
        if high < 0:
            fell[r["method"]] = seen[r["method"]]
    if not seen:
        return Check(
            "id_accuracy_fell", title, "n/a", None, "interval excludes 0", "no trained method to compare"
        )
    if fell:
        listed = "; ".join(f"{k} {100 * v['d_id_acc']:+.2f} pp" for k, v in fell.items())
        meaning = f"trained prompts classify ID images worse than the hand-made ones: {listed}"
        return Check(
            "id_accuracy_fell", title, "warn", sorted(fell), "interval excludes 0", meaning, {"rows": seen}
        )
    return Check(
        "id_accuracy_fell", title, "ok", [], "interval excludes 0",
        "no trained method lost ID accuracy beyond the interval", {"rows": seen},
    )  # fmt: skip


def _below_chance(metrics: pd.DataFrame) -> Check:
    title = "a score below chance"
    per_set = metrics[metrics["dataset"] != "mean"].copy()
    per_set["auroc"] = pd.to_numeric(per_set["auroc"], errors="coerce")
    per_set = per_set.dropna(subset=["auroc"])
    if per_set.empty:
        return Check("below_chance", title, "n/a", None, 0.5, "no OOD set in this run")
    low = per_set[per_set["auroc"] < 0.5]
    if low.empty:
        return Check("below_chance", title, "ok", [], 0.5, "every row ranks ID above OOD more often than not")
    found = [
        {"row": row_label(r["method"], r["score"]), "dataset": r["dataset"], "auroc": float(r["auroc"]),
         "auroc_high": _num(r, "auroc_high")}
        for _, r in low.iterrows()
    ]  # fmt: skip
    listed = "; ".join(f"{f['row']} on {f['dataset']} {100 * f['auroc']:.2f}" for f in found[:4])
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    meaning = (
        f"AUROC below 50% ranks OOD images above ID ones (the score points the wrong way): {listed}{more}"
    )
    return Check(
        "below_chance",
        title,
        "warn",
        [f"{f['row']} / {f['dataset']}" for f in found],
        0.5,
        meaning,
        {"rows": found},
    )


def _random_weights(random_weights: bool, warning: str) -> Check:
    if random_weights:
        meaning = warning or "the backbone has random weights: every number only exercises the pipeline"
        return Check("random_weights", "random backbone weights", "warn", True, False, meaning)
    return Check(
        "random_weights", "random backbone weights", "ok", False, False, "the backbone has trained weights"
    )


def run_checks(
    *,
    metrics: pd.DataFrame,
    text_features: Mapping[str, np.ndarray],
    stages: Sequence[Mapping],
    random_weights: bool,
    warning: str = "",
) -> list[Check]:
    """All checks of one run, in a fixed order.

    Args:
        metrics: the run's metrics table with intervals (`negprompt.evaluate.metrics_table`).
        text_features: ``{"<method>.pos": [C, D], "<method>.neg": [C, M, D]}`` (as in
            ``text_features.npz``).
        stages: the training stages' summaries (``TrainResult.summary()``, with ``steps``).
        random_weights: whether the backbone's weights are random; ``warning`` its message.
    """
    return [
        _negatives_collapsed(text_features),
        _stage_unchanged(1, text_features, stages),
        _stage_unchanged(2, text_features, stages),
        _too_few_steps(stages),
        _training_free_wins(metrics),
        _accuracy_fell(metrics),
        _below_chance(metrics),
        _random_weights(random_weights, warning),
    ]


def to_json(checks: Sequence[Check]) -> dict:
    """The content of ``checks.json``."""
    return {"format": CHECKS_FORMAT, "checks": [asdict(c) for c in checks]}


def parse_checks(content: object, where: str = "checks.json") -> list[Check]:
    """Checks from ``checks.json``'s content; a damaged file raises ValueError naming it."""
    if not isinstance(content, Mapping) or content.get("format") != CHECKS_FORMAT:
        raise ValueError(f"{where}: expected {{'format': {CHECKS_FORMAT}, 'checks': [...]}}")
    items = content.get("checks")
    if not isinstance(items, list):
        raise ValueError(f"{where}: 'checks' must be a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: check {i} is not an object")
        try:
            check = Check(**{k: item[k] for k in ("id", "title", "status", "value", "threshold", "meaning")},
                          details=dict(item.get("details") or {}))  # fmt: skip
        except (KeyError, TypeError) as err:
            raise ValueError(f"{where}: check {i} lacks {err}") from None
        if (
            check.status not in STATUSES
            or not isinstance(check.title, str)
            or not isinstance(check.meaning, str)
        ):
            raise ValueError(
                f"{where}: check {i} has status {check.status!r}; expected one of {list(STATUSES)}"
            )
        out.append(check)
    return out


def format_checks(checks: Sequence[Check]) -> str:
    """Console text: the fired checks first, each with its value and meaning, then the quiet ones."""
    fired = [c for c in checks if c.fired]
    lines = [f"checks: {len(fired)} of {len(checks)} fired (checks.json)"]
    for c in fired:
        lines.append(f"  ! {c.title}: {_value(c.value)} — {c.meaning}")
    quiet = [f"{c.title} ({c.status})" for c in checks if not c.fired]
    if quiet:
        lines.append("  quiet: " + "; ".join(quiet))
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return json.dumps(value) if not isinstance(value, str) else value
