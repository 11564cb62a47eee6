"""The figure and output helpers the notebooks (and the dashboard) rely on, without running a notebook."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from negprompt import bundled, viz


def test_explanation_axis_holds_zero_and_room_for_labels():
    sims = pd.DataFrame(
        {
            "kind": ["positive", "positive", "negative"],
            "prompt": ["a", "b", "a · neg 1"],
            "similarity": [-0.20, -0.05, -0.10],
        }
    )
    fig = viz.explanation_figure(sims)
    low, high = fig.layout.xaxis.range
    assert low < -0.20 and high >= 0.0  # all cosines negative: the bars still start at 0
    assert low <= -0.20 - 0.1 * 0.20  # room left of the longest bar for its value label
    assert all(t.textposition == "outside" and t.cliponaxis is False for t in fig.data)
    assert viz.similarity_range(np.array([0.1, 0.3]))[0] == 0.0
    low, high = viz.similarity_range(np.array([-0.1, 0.3]))
    assert low < -0.1 and high > 0.3


def test_coinciding_prompt_groups_are_named_on_the_figure():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=(4, 8)), rng.normal(size=(4, 2, 8))
    neg[:, 1] = neg[:, 0]  # the two negative contexts never separated
    points, meta = viz.prompt_points(pos, neg, list("abcd"))
    coords = viz.pca_project(points)
    assert viz.coinciding_groups(coords, meta) == [("negative 1", "negative 2", 4)]
    fig = viz.embedding_figure(coords, meta)
    notes = [a.text for a in fig.layout.annotations]
    assert notes == ["'negative 1' lies under 'negative 2': same point for 4 of 4 classes"]
    neg[:, 1] += rng.normal(size=(4, 8))  # apart: no note
    points, meta = viz.prompt_points(pos, neg, list("abcd"))
    coords = viz.pca_project(points)
    assert (
        viz.coinciding_groups(coords, meta) == []
        and not viz.embedding_figure(coords, meta).layout.annotations
    )


def test_flips_nearest_the_threshold_first_and_digits_match_the_scores():
    scores = pd.DataFrame(
        {
            "dataset": ["id"] * 3 + ["ood"] * 3,
            "split": ["id"] * 3 + ["ood"] * 3,
            "path": list("abcdef"),
            "s": [0.10010, 0.10020, 0.10050, 0.10015, 0.10030, 0.10001],
        }
    )
    flips = viz.flipped_images(scores, "s", reference=0.10000, threshold=0.10040)
    # every score in [0.10000, 0.10040) flips to rejected; nearest the new threshold first
    assert list(flips["path"]) == ["e", "b", "d", "a", "f"]
    assert not flips["accepted"].any() and (np.diff(flips["distance"]) >= 0).all()
    assert list(viz.flipped_images(scores, "s", 0.10000, 0.10040, k=2)["path"]) == ["e", "b"]
    back = viz.flipped_images(scores, "s", reference=0.10040, threshold=0.10000)
    assert set(back["path"]) == set(flips["path"]) and back["accepted"].all()
    digits = viz.score_digits(scores["s"])
    assert digits == 6  # smallest gap 5e-5 → 6 decimals tell every two scores apart
    shown = float(f"{scores['s'].iloc[3]:.{digits}f}")  # a threshold typed back as shown
    assert (scores["s"] >= shown).sum() == (scores["s"] >= scores["s"].iloc[3]).sum()
    assert viz.score_digits([0.5, 0.5]) == 2


def test_accepted_percentages_are_rounded():
    scores = pd.DataFrame(
        {
            "dataset": ["id"] * 3 + ["ood"] * 3,
            "split": ["id"] * 3 + ["ood"] * 3,
            "ood_class": ["", "", "", "x", "x", "x"],
            "s": [1.0, 2.0, 3.0, 1.5, 2.5, 0.5],
        }
    )
    counts = viz.decision_counts(scores, "s", 2.0)
    assert list(counts["accepted_pct"]) == [66.7, 33.3]
    assert list(viz.ood_class_breakdown(scores, "s", 1.0)["accepted_pct"]) == [66.7]


@pytest.fixture
def notebook_mode():
    viz.notebook_output()
    yield
    viz.notebook_output(False)


def test_training_shows_one_text_bar_per_stage(notebook_mode, monkeypatch):
    import negprompt.features
    import negprompt.train.loop as loop

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    for epoch in range(1, 4):  # what the training loop does: a bar per epoch
        bar = loop.tqdm(range(5), desc=f"stage 2 epoch {epoch}/3", leave=False, disable=False, unit="step")
        for _ in bar:
            bar.set_postfix(loss="0.1", refresh=False)
    text = out.getvalue()
    assert "stage 2" in text and "15/15" in text and "epoch" not in text.split("stage 2")[0]
    assert text.count("\n") == 1  # one bar, left as one line when the stage ends
    assert "tqdm.notebook" not in type(negprompt.features.tqdm(total=1, disable=True)).__module__


def test_notebook_logs_and_weights_notice(notebook_mode, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    log = logging.getLogger("negprompt.experiments")
    log.setLevel(logging.INFO)
    try:
        log.info("an INFO line a learner does not need")
        log.warning("RANDOM WEIGHTS: the command-line wording")
        log.warning("a real warning")
        logging.getLogger().warning("No pretrained weights loaded for model 'x'. Model initialized randomly.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("RANDOM WEIGHTS: again", UserWarning, stacklevel=1)
    finally:
        log.setLevel(logging.NOTSET)
    assert out.getvalue() == "WARNING: a real warning\n"
    assert not caught
    trained = SimpleNamespace(
        name="negprompt-mini", weights="miniworld-v1", pretrained="auto", random_weights=False
    )
    assert viz.weights_notice(trained) == "weights: negprompt-mini, 'miniworld-v1' (trained)"
    below = SimpleNamespace(
        name="negprompt-mini2", weights="miniworld-v2", pretrained="auto", random_weights=False
    )
    missed = bundled.missed_targets("negprompt-mini2", "miniworld-v2")
    assert bool(missed) is not bundled.read_card("negprompt-mini2", "miniworld-v2")["v2_targets_met"]
    assert viz.weights_notice(below) == (
        "weights: negprompt-mini2, 'miniworld-v2' (trained"
        + (f"; below its card's targets: {', '.join(missed)})" if missed else ")")
    )
    with warnings.catch_warnings(record=True) as caught:  # the log line says it; no second copy
        warnings.warn(bundled.shortfall("negprompt-mini2", "miniworld-v2") or "", UserWarning, stacklevel=1)
    assert not caught or not missed
    assert bundled.missed_targets("ViT-B-32", "openai") == [] == bundled.missed_targets("negprompt-mini", "x")
    asked = SimpleNamespace(name="negprompt-mini", weights="random", pretrained="none", random_weights=True)
    notice = viz.weights_notice(asked)
    assert notice.startswith("RANDOM WEIGHTS: PRETRAINED = 'none' asks for random weights")
    assert 'set PRETRAINED = "auto"' in notice and "--pretrained" not in notice
    missing = SimpleNamespace(name="ViT-B-32", weights="random", pretrained="auto", random_weights=True)
    notice = viz.weights_notice(missing)
    assert "no trained weights were found for MODEL = 'ViT-B-32'" in notice
    assert 'MODEL = "negprompt-mini"' in notice and "--pretrained" not in notice


def test_notebook_output_can_be_switched_off():
    import negprompt.train.loop as loop

    original = loop.tqdm
    viz.notebook_output()
    viz.notebook_output()  # twice: still one handler
    package = logging.getLogger("negprompt")
    assert sum(type(h).__name__ == "_NotebookHandler" for h in package.handlers) == 1
    assert loop.tqdm is not original
    viz.notebook_output(False)
    assert loop.tqdm is original and package.propagate
    assert not [h for h in package.handlers if type(h).__name__ == "_NotebookHandler"]


def test_every_module_with_progress_bars_is_quieted_in_notebooks():
    """A module that shows tqdm bars but is not in BAR_MODULES would show widget bars in a notebook
    (they break once the notebook is reopened)."""
    import negprompt
    from negprompt.viz.notebook import BAR_MODULES

    root = Path(negprompt.__file__).parent
    users = {
        "negprompt." + ".".join(p.relative_to(root).with_suffix("").parts)
        for p in root.rglob("*.py")
        if any(
            f"from {m} import tqdm" in p.read_text(encoding="utf-8")
            for m in ("tqdm.auto", "negprompt.progress")
        )
    }
    users.discard("negprompt.progress")  # the bars themselves, which the modules bind as ``tqdm``
    users.discard("negprompt.miniworld.pretrain")  # a script's training loop, never run in a notebook
    users.discard("negprompt.miniworld.world_v2")  # rendering the pretraining pool, in the same script
    users.discard("negprompt.commands.data")  # the data command's download, never run in a notebook
    users.discard("negprompt.commands.common")  # the same download before a v2 command-line run
    assert users <= set(BAR_MODULES), sorted(users - set(BAR_MODULES))


def _explorer_scores(seed: int = 0) -> pd.DataFrame:
    """40 ID images and two OOD sets whose scores differ in the fourth decimal."""
    rng = np.random.default_rng(seed)
    n = {"id": 40, "near": 25, "far": 15}
    centre = {"id": 0.1006, "near": 0.1004, "far": 0.1001}
    sets = [(name, "id" if name == "id" else "ood") for name in n]
    rows = [
        (name, split, centre[name] + 2e-4 * rng.standard_normal())
        for name, split in sets
        for _ in range(n[name])
    ]
    table = pd.DataFrame(rows, columns=["dataset", "split", "s"])
    table["path"] = [f"images/{i:03d}.png" for i in range(len(table))]
    table["ood_class"] = ["" if d == "id" else f"{d}-{i % 3}" for i, d in enumerate(table["dataset"])]
    return table


def test_threshold_explorer_carries_every_slider_position():
    table = _explorer_scores()
    kept = (60.0, 80.0, 95.0, 100.0)
    fig = viz.threshold_explorer_figure(table, "s", kept=kept, k=4)
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["60", "80", "95", "100"]
    assert slider.active == 2  # starts at 95%, the FPR95 threshold
    counts_trace, flips_trace = len(fig.data) - 2, len(fig.data) - 1
    assert [type(t).__name__ for t in fig.data] == ["Histogram"] * 3 + ["Table", "Table"]
    id_scores = table.loc[table["split"] == "id", "s"]
    base = viz.threshold_at_tpr(id_scores, 0.95)
    digits = viz.score_digits(table["s"])
    for p, step in zip(kept, slider.steps):
        data, layout, traces = step.args
        assert step.method == "update" and list(traces) == [counts_trace, flips_trace]
        threshold = viz.threshold_at_tpr(id_scores, p / 100)
        assert layout["shapes[0].x0"] == layout["shapes[0].x1"] == threshold
        assert f"threshold {threshold:.{digits}f}" in layout["title.text"]
        flips = viz.flipped_images(table, "s", base, threshold)
        assert f"{len(flips)} images flip" in layout["title.text"]
        counts, listed = data["cells.values"]
        expected = viz.decision_counts(table, "s", threshold)
        assert counts[0] == list(expected["dataset"]) and counts[2] == list(expected["accepted"])
        assert listed[0] == [p.split("/")[-1] for p in flips["path"].head(4)]  # nearest the threshold first
        assert listed[2] == [f"{v:.{digits}f}" for v in flips["score"].head(4)]
        assert set(listed[3]) <= ({"rejected"} if p < 95 else {"accepted"})
    # moving the slider changes the panel: stricter thresholds accept fewer ID images
    accepted_id = [s.args[0]["cells.values"][0][2][0] for s in slider.steps]
    assert accepted_id == sorted(accepted_id) and accepted_id[0] < accepted_id[-1] == 40
    # what is drawn before the slider moves is the 95% step
    start = slider.steps[2].args
    assert list(fig.data[counts_trace].cells.values[2]) == start[0]["cells.values"][0][2]
    assert fig.layout.title.text == start[1]["title.text"] and fig.layout.shapes[0].x0 == base
    assert "flip" in fig.to_json()  # plain JSON: stored in a notebook, drawn without a kernel


def test_threshold_explorer_names_the_class_of_each_flip_and_rejects_bad_input():
    table = _explorer_scores(1)
    fig = viz.threshold_explorer_figure(table, "s", kept=(70.0, 95.0))
    listed = fig.layout.sliders[0].steps[0].args[0]["cells.values"][1][1]
    assert all(s == "id" or s.startswith(("near (near-", "far (far-")) for s in listed)  # ID: no class
    assert any(s != "id" for s in listed)
    assert len(viz.KEPT_STEPS) == 101 and viz.KEPT_STEPS[0] == 50.0 and viz.KEPT_STEPS[-1] == 100.0
    with pytest.raises(ValueError, match="kept"):
        viz.threshold_explorer_figure(table, "s", kept=(0.0, 95.0))
    with pytest.raises(ValueError, match="ID images"):
        viz.threshold_explorer_figure(table[table["split"] == "ood"], "s")
