"""Each check fires on inputs made to trigger it and stays quiet on inputs that do not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negprompt.checks import THRESHOLDS, format_checks, parse_checks, run_checks, to_json

from .test_leaderboard import metrics_of, scores_table


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def text_features(*, collapsed: bool, coop_moved: bool, neg_moved: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    c, m, d = 4, 2, 16
    zs = unit(rng.normal(size=(c, d)))
    coop = unit(zs + (0.5 * rng.normal(size=(c, d)) if coop_moved else 1e-7 * rng.normal(size=(c, d))))
    base = coop[:, None, :] + (
        0.8 * rng.normal(size=(c, 1, d)) if neg_moved else 1e-7 * rng.normal(size=(c, 1, d))
    )
    spread = 0.0 if collapsed or not neg_moved else 0.8
    neg = unit(base + spread * rng.normal(size=(c, m, d)))
    return {"zeroshot.pos": zs, "coop.pos": coop, "negprompt.pos": coop, "negprompt.neg": neg}


def stage(n: int, steps: int, constant_val: bool = False):
    history = [
        {"epoch": e + 1, "loss": 1.0 - 0.01 * e, "val_acc": 1.0 if constant_val else 0.5 + 0.01 * e}
        for e in range(5)
    ]
    return {
        "stage": n, "history": history, "selected_epoch": 5, "epochs_run": 5, "steps": steps,
        "selection_criterion": "val_acc",
    }  # fmt: skip


def checks_of(
    *, shift=3.0, collapsed=False, coop_moved=True, neg_moved=True, steps=300, random=False, table=None
):
    if table is None:
        table = scores_table(shift)
        table["coop/mcm"] = table["negprompt/negprompt"]  # CoOp as good as NegPrompt
    metrics = metrics_of(table)
    text = text_features(collapsed=collapsed, coop_moved=coop_moved, neg_moved=neg_moved)
    got = run_checks(
        metrics=metrics,
        text_features=text,
        stages=[stage(1, steps, constant_val=not coop_moved), stage(2, steps)],
        random_weights=random,
        warning="RANDOM WEIGHTS" if random else "",
    )
    return {c.id: c for c in got}


def test_a_healthy_run_fires_nothing():
    got = checks_of()
    assert [c.id for c in got.values() if c.fired] == []
    assert all(c.status == "ok" for c in got.values())


def test_collapsed_negatives_fire_with_the_largest_cosine():
    c = checks_of(collapsed=True)["negatives_collapsed"]
    assert c.fired and c.value > THRESHOLDS["negatives_collapsed"]
    assert c.details["classes_collapsed"] == 4 and "act as fewer" in c.meaning


def test_a_stage_that_left_its_prompts_where_they_started_fires():
    got = checks_of(coop_moved=False, neg_moved=False)
    assert got["stage1_unchanged"].fired and got["stage2_unchanged"].fired
    assert got["stage1_unchanged"].details["criterion_constant"]
    assert "could not pick an epoch" in got["stage1_unchanged"].meaning
    assert got["stage1_unchanged"].details["loss_first_epoch"] == 1.0


def test_too_few_steps_fire_below_the_threshold_only():
    assert checks_of(steps=10)["too_few_steps"].fired
    assert checks_of(steps=10)["too_few_steps"].value == {"stage1": 10, "stage2": 10}
    assert not checks_of(steps=THRESHOLDS["too_few_steps"])["too_few_steps"].fired


def test_a_training_free_score_that_wins_fires_and_names_it():
    got = checks_of(shift=0.2)["training_free_wins"]
    assert got.fired and "NegPrompt" in got.value
    assert "max-logit (zero-shot)" in got.meaning


def test_id_accuracy_that_fell_fires():
    table = scores_table(3.0)
    table["coop/mcm"] = table["negprompt/negprompt"]
    is_id = table["split"] == "id"
    table.loc[is_id, "pred.negprompt"] = (table.loc[is_id, "label"] + 1) % 3  # every ID image wrong
    got = checks_of(table=table)["id_accuracy_fell"]
    assert got.fired and got.value == ["negprompt"]


def test_a_score_below_chance_fires_on_its_set():
    table = scores_table(3.0)
    table["coop/mcm"] = -table["zeroshot/maxlogit"]  # points the wrong way
    got = checks_of(table=table)["below_chance"]
    assert got.fired and "CoOp + MCM / near" in got.value and "CoOp + MCM / far" in got.value


def test_random_weights_fire():
    got = checks_of(random=True)["random_weights"]
    assert got.fired and got.meaning == "RANDOM WEIGHTS"


def test_checks_round_trip_through_json_and_print_fired_first():
    got = list(checks_of(collapsed=True, steps=10).values())
    again = parse_checks(json.loads(json.dumps(to_json(got))))
    assert [c.id for c in again] == [c.id for c in got] and [c.status for c in again] == [
        c.status for c in got
    ]
    text = format_checks(again)
    assert text.startswith("checks: 2 of 8 fired")
    assert text.splitlines()[1].startswith("  ! negative prompts collapsed")


def test_runs_without_training_or_ood_sets_have_nothing_to_check():
    metrics = metrics_of(scores_table(3.0))
    got = {c.id: c for c in run_checks(metrics=metrics, text_features={}, stages=[], random_weights=False)}
    for key in ("negatives_collapsed", "stage1_unchanged", "stage2_unchanged", "too_few_steps"):
        assert got[key].status == "n/a"


@pytest.mark.parametrize(
    "content",
    [[], {"format": 2, "checks": []}, {"format": 1}, {"format": 1, "checks": [5]},
     {"format": 1, "checks": [{"id": "x"}]},
     {"format": 1, "checks": [{"id": "x", "title": "t", "status": "boom", "value": 1, "threshold": 1, "meaning": "m"}]}],
)  # fmt: skip
def test_damaged_checks_are_named(content):
    with pytest.raises(ValueError, match="checks.json"):
        parse_checks(content)
