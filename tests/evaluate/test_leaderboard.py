"""The whole leaderboard, its verdict, and the interval and comparison columns of metrics tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from negprompt import comparison as C
from negprompt import metrics as M
from negprompt import uncertainty as U
from negprompt.evaluate import Method, metrics_table
from negprompt.leaderboard import format_leaderboard, format_results, has_intervals, leaderboard, verdict
from negprompt.table_rows import row_label

BS = U.Bootstrap(n_resamples=300, seed=0)


def scores_table(negprompt_shift: float, seed: int = 0) -> pd.DataFrame:
    """ID (3 classes, 150 images) and two OOD sets; max-logit separates by 1.5, MCM by 0.3, and
    NegPrompt by ``negprompt_shift``."""
    rng = np.random.default_rng(seed)
    n_id, sets = 150, {"near": 100, "far": 80}
    labels = rng.integers(0, 3, n_id)
    frames = [
        pd.DataFrame(
            {"dataset": "id", "split": "id", "path": [f"i{i}" for i in range(n_id)], "label": labels}
        )
    ]
    for name, n in sets.items():
        frames.append(
            pd.DataFrame(
                {"dataset": name, "split": "ood", "path": [f"{name}{i}" for i in range(n)], "label": -1}
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["label_name"] = ""
    is_id = (table["split"] == "id").to_numpy()
    n = len(table)
    for method in ("zeroshot", "coop", "negprompt"):
        pred = np.where(is_id, table["label"], 0)
        wrong = rng.random(n) < 0.1
        table[f"pred.{method}"] = np.where(wrong, (pred + 1) % 3, pred)
    table["zeroshot/maxlogit"] = rng.normal(0, 1, n) + 1.5 * is_id
    table["zeroshot/mcm"] = rng.normal(0, 1, n) + 0.3 * is_id
    table["coop/mcm"] = table["zeroshot/mcm"] + rng.normal(0, 0.05, n)
    table["negprompt/negprompt"] = rng.normal(0, 1, n) + negprompt_shift * is_id
    return table


def metrics_of(table: pd.DataFrame, bootstrap=BS) -> pd.DataFrame:
    methods = [Method(m, torch.zeros(3, 2)) for m in ("zeroshot", "coop", "negprompt")]
    return metrics_table(table, methods, bootstrap)


def test_metrics_table_carries_intervals_that_hold_the_point_and_match_the_comparison_module():
    table = scores_table(0.5)
    m = metrics_of(table)
    assert has_intervals(m)
    for metric in U.INTERVAL_METRICS:
        assert (m[f"{metric}_low"] <= m[metric] + 1e-12).all() and (
            m[metric] <= m[f"{metric}_high"] + 1e-12
        ).all()
    # the near-set interval of max-logit is the bootstrap of exactly those scores
    is_id = table["split"] == "id"
    direct = U.intervals(
        table.loc[is_id, "zeroshot/maxlogit"],
        {d: table.loc[table["dataset"] == d, "zeroshot/maxlogit"] for d in ("near", "far")},
        bootstrap=BS,
    )
    row = m[(m.method == "zeroshot") & (m.score == "maxlogit") & (m.dataset == "near")].iloc[0]
    assert (row.fpr95_low, row.fpr95_high) == (direct["near"]["fpr95"].low, direct["near"]["fpr95"].high)
    mean = m[(m.method == "zeroshot") & (m.score == "maxlogit") & (m.dataset == "mean")].iloc[0]
    assert mean.auroc_low == direct["mean"]["auroc"].low


def test_trained_rows_are_compared_with_the_best_training_free_row_on_the_same_resamples():
    table = scores_table(0.2)
    m = metrics_of(table)
    assert set(m["ref_fpr95"]) == {"zeroshot/maxlogit"}
    free = m[m.method == "zeroshot"]
    assert free["d_fpr95"].isna().all()  # training-free rows are the reference, not compared
    row = m[(m.method == "negprompt") & (m.dataset == "mean")].iloc[0]
    ref = m[(m.method == "zeroshot") & (m.score == "maxlogit") & (m.dataset == "mean")].iloc[0]
    assert row.d_fpr95 == pytest.approx(row.fpr95 - ref.fpr95)
    paired = C.paired_rows(table, ("zeroshot", "maxlogit"), ("negprompt", "negprompt"), BS)
    got = paired[(paired.dataset == "mean") & (paired.metric == "fpr95")].iloc[0]
    assert (got.low, got.high) == (row.d_fpr95_low, row.d_fpr95_high)
    assert got.delta == pytest.approx(row.d_fpr95) and got.low > 0  # clearly worse than max-logit


def test_the_leaderboard_lists_every_row_sorted_and_marks_the_best_training_free():
    m = metrics_of(scores_table(3.0))
    board = leaderboard(m, "mean", "fpr95")
    assert set(zip(board.method, board.score)) == set(zip(m.method, m.score))
    assert list(board.fpr95) == sorted(board.fpr95)
    assert board.loc[board.best_training_free, "row"].tolist() == ["max-logit (zero-shot)"]
    by_auroc = leaderboard(m, "near", "auroc")
    assert list(by_auroc.auroc) == sorted(by_auroc.auroc, reverse=True)
    text = format_leaderboard(m)
    assert "* max-logit (zero-shot)" in text and "NegPrompt" in text and "[" in text
    with pytest.raises(ValueError, match="cannot sort by"):
        leaderboard(m, sort_by="speed")
    with pytest.raises(ValueError, match="no rows for dataset"):
        leaderboard(m, dataset="nowhere")


@pytest.mark.parametrize(
    ("shift", "first_words"),
    [
        (0.2, "NegPrompt LOSES to a training-free score"),
        (4.0, "NegPrompt beats the best training-free score"),
        (1.5, "NegPrompt and the best training-free score cannot be told apart"),
    ],
)
def test_the_verdict_is_the_first_line_and_says_who_wins(shift, first_words):
    m = metrics_of(scores_table(shift))
    assert verdict(m).startswith(first_words)
    assert format_results(m).splitlines()[0].startswith(first_words)
    assert "max-logit (zero-shot)" in verdict(m)


def test_a_run_without_intervals_still_shows_every_row_and_says_so():
    m = metrics_of(scores_table(0.2), bootstrap=None)
    assert not has_intervals(m)
    assert "no interval" in format_leaderboard(m)
    assert "no interval" in verdict(m) and "worse" in verdict(m)
    assert len(leaderboard(m)) == 4


def test_row_labels_name_every_score():
    assert row_label("zeroshot", "maxlogit") == "max-logit (zero-shot)"
    assert row_label("zeroshot", "energy") == "energy (zero-shot)"
    assert row_label("coop", "energy") == "CoOp + energy"
    assert row_label("negprompt", "mcm") == "NegPrompt (MCM score)"
    assert row_label("negprompt", "negprompt") == "NegPrompt"
    assert row_label("custom", "x") == "custom (x score)"


def test_point_values_are_unchanged_by_the_intervals():
    table = scores_table(1.0)
    with_ci, without = metrics_of(table), metrics_of(table, bootstrap=None)
    pd.testing.assert_frame_equal(with_ci[list(without.columns)], without)
    is_id = table["split"] == "id"
    near = table["dataset"] == "near"
    row = without[
        (without.score == "mcm") & (without.method == "zeroshot") & (without.dataset == "near")
    ].iloc[0]
    assert row.fpr95 == M.fpr_at_tpr(table.loc[is_id, "zeroshot/mcm"], table.loc[near, "zeroshot/mcm"])
