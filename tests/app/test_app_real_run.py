"""The dashboard on a run written by the experiment runner itself (not a synthetic one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from negprompt import viz
from negprompt.cli import main
from negprompt.rundir import load_run
from negprompt.table_rows import all_rows, row_label

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app" / "app.py"
PAGES = ("scores", "embeddings", "images", "compare", "ask")


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("real")
    runs = base / "runs"
    for name in ("demo-fast", "demo-fast-b"):  # two runs, so that the compare page has a pair
        code = main(
            ["demo", "--world", "v1", "--fast", "--no-app", "--no-progress", "--out", str(runs / name),
             "--data-root", str(base / "data"), "--cache-dir", str(base / "cache")]
        )  # fmt: skip
        assert code == 0
    return runs


@pytest.mark.parametrize("page", (None, *PAGES))
def test_every_page_renders_a_real_run(demo_runs, monkeypatch, page):
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(demo_runs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(str(e.value) for e in at.error)
    assert "random weights" not in shown.lower()  # the bundled mini-CLIP: no red banner
    assert not at.error, shown  # and no damaged-run messages either
    if page in ("scores", "embeddings", "compare"):
        assert at.get("plotly_chart"), f"no chart on the {page} page"
    if page is None:
        run = load_run(demo_runs / "demo-fast")
        mean = run.metrics.query("method == 'negprompt' and score == 'negprompt' and dataset == 'mean'")
        auroc = f"{100 * mean['auroc'].iloc[0]:.2f}"
        assert (
            any(auroc in str(df.value.to_string()) for df in at.dataframe)
            or auroc in at.markdown.values.__str__()
        )


def test_runs_page_shows_the_verdict_the_whole_leaderboard_and_the_checks(demo_runs, monkeypatch):
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(demo_runs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    run = load_run(at.selectbox(key="w_run").value)
    from negprompt.leaderboard import verdict

    shown = [*at.warning.values, *at.success.values, *at.info.values]
    assert verdict(run.metrics) in shown
    board = next(df.value for df in at.dataframe if "★" in df.value.columns)
    assert set(board["row"]) == {viz.leaderboard_table(run.metrics)["row"][i] for i in range(len(board))}
    assert "max-logit (zero-shot)" in set(board["row"]) and len(board) == len(
        run.metrics.query("dataset == 'mean'")
    )
    assert list(board["FPR95 %"]) == sorted(board["FPR95 %"])
    assert board.loc[board["★"] == "★", "row"].tolist() == ["max-logit (zero-shot)"]
    assert any("negative prompts collapsed" in w for w in at.warning.values)
    at.selectbox(key=f"board-sort-{run.name}").set_value("auroc").run()
    board = next(df.value for df in at.dataframe if "★" in df.value.columns)
    assert list(board["AUROC %"]) == sorted(board["AUROC %"], reverse=True)


def test_compare_page_and_explanations_show_the_newer_methods(demo_runs, monkeypatch):
    """GL-MCM, L-MCM and LoCoOp of a real run: their rows on the compare page, their scores on the
    score page, and the local region that decided an image on the per-image page."""
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(demo_runs))
    monkeypatch.setenv("NEGPROMPT_IMAGE_DIRS", str(demo_runs.parent / "data"))  # the demo's --data-root
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    run = load_run(at.selectbox(key="w_compare_A").value)
    shown = list(next(d.value for d in at.dataframe if "row" in d.value.columns)["row"])
    assert shown == [row_label(*k) for k in all_rows(run.metrics)]  # every row of the run
    assert {"GL-MCM (zero-shot)", "L-MCM (zero-shot)", "LoCoOp + MCM", "LoCoOp + GL-MCM"} <= set(shown)

    at.switch_page("app_pages/scores.py").run()
    score = at.selectbox(key="w_score")
    assert {"zeroshot/gl_mcm", "zeroshot/l_mcm", "locoop/mcm", "locoop/gl_mcm"} <= set(score.options)
    score.set_value("locoop/gl_mcm").run()
    assert not at.exception, [e.value for e in at.exception]
    table = run.scores
    start = viz.threshold_at_tpr(table.loc[table["split"] == "id", "locoop/gl_mcm"])
    assert next(s for s in at.slider if s.key.startswith("w_thr_")).value == pytest.approx(start)
    counts = at.dataframe[0].value
    assert list(counts["accepted"]) == list(viz.decision_counts(table, "locoop/gl_mcm", start)["accepted"])

    at.switch_page("app_pages/images.py").run()
    at.selectbox(key="w_score").set_value("zeroshot/gl_mcm").run()
    at.button(key="open_row").click().run()  # row 0
    assert not at.exception, [e.value for e in at.exception]
    region = int(run.scores["zeroshot.best_region"].iloc[0])
    caption = " ".join(m.value for m in at.markdown)
    assert f"region {region} adds" in caption  # the GL-MCM caption, from its global and local parts
    assert any("deciding local region" in str(i.proto) for i in at.image)
    exp = viz.explain_row(
        "zeroshot/gl_mcm", table.iloc[0], run.image_features[0], *run.text_features_of("zeroshot"),
        run.config["data"]["class_names"], run.config,
    )  # fmt: skip
    assert exp.score == pytest.approx(table["zeroshot/gl_mcm"].iat[0], rel=1e-3)
    assert f"q₁ = {exp.terms['global MCM q₁']:.3g}" in caption

    # max-logit: its own caption, in cosines; no local region of another score, no softmax mass
    at.selectbox(key="w_score").set_value("zeroshot/maxlogit").run()
    at.button(key="open_row").click().run()
    caption = " ".join(m.value for m in at.markdown)
    assert "has cosine" in caption and "softmax mass" not in caption
    assert not any("deciding local region" in str(i.proto) for i in at.image)


@pytest.fixture(scope="module")
def command_runs(tmp_path_factory) -> Path:
    """A run of ``negprompt train`` without OOD folders and one of ``negprompt zeroshot``."""
    from tests.conftest import write_images

    base = tmp_path_factory.mktemp("commands")
    for k in range(3):
        write_images(base / "images" / f"class_{k}", 6, seed=k, color=(70 * k, 120, 200 - 60 * k))
    write_images(base / "ood" / "far", 5, seed=9)
    tiny = ["--model", "negprompt-tiny", "--pretrained", "none", "--device", "cpu", "--no-neglabel",
            "--cache-dir", str(base / "cache"), "--no-progress"]  # fmt: skip
    train = [
        "train",
        "--train-dir",
        str(base / "images"),
        "--shots",
        "3",
        "--val-per-class",
        "2",
        "--epochs",
        "2",
    ]
    assert main([*train, *tiny, "--out", str(base / "trained" / "run")]) == 0
    zeroshot = ["zeroshot", "--id-dir", str(base / "images"), "--ood-dir", str(base / "ood" / "far")]
    assert main([*zeroshot, *tiny, "--out", str(base / "zeroshot" / "run")]) == 0
    return base


@pytest.mark.parametrize("page", (None, *PAGES))
def test_every_command_output_opens_in_the_dashboard(command_runs, monkeypatch, page):
    """A training run without OOD sets (ID accuracy only) and a zero-shot run, on every page."""
    assert load_run(command_runs / "trained" / "run").metrics["fpr95"].isna().all()
    for run in ("trained", "zeroshot"):
        monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(command_runs / run))
        at = AppTest.from_file(str(APP), default_timeout=180).run()
        if page:
            at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (run, [e.value for e in at.exception])
        shown = " ".join(str(e.value) for e in at.error)
        assert "cannot read" not in shown.lower(), (run, shown)


# --------------------------------------------------------------------------- ask the run


def test_ask_page_scores_a_path_and_refuses_one_outside(demo_runs, monkeypatch):
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(demo_runs))
    monkeypatch.setenv("NEGPROMPT_IMAGE_DIRS", str(demo_runs.parent / "data"))  # the demo's --data-root
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.switch_page("app_pages/ask.py").run()
    assert not at.exception, [e.value for e in at.exception]
    run = load_run(at.selectbox(key="w_run").value)
    row = int((run.scores["split"] == "ood").to_numpy().argmax())  # an OOD image
    at.text_input(key="image_path").set_value(run.scores["path"].iat[row]).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert set(table["column"]) == set(run.score_columns)  # every method and score of the run
    for column, value, decision in zip(table["column"], table["value"], table["decision"]):
        assert value == pytest.approx(run.scores[column].iat[row], rel=1e-3, abs=1e-4), column
        threshold = viz.threshold_at_tpr(run.scores.loc[run.scores["split"] == "id", column])
        assert decision == ("accepted as ID" if value >= threshold else "rejected as OOD")
    text = " ".join(m.value for m in at.markdown)
    assert "of the softmax mass over all prompts" in text  # NegPrompt's decomposition, explained
    at.selectbox(key="own_column").set_value("zeroshot/gl_mcm").run()
    assert "adds λ ·" in " ".join(m.value for m in at.markdown)  # its local part, from the image's patches

    at.text_input(key="image_path").set_value(str(demo_runs.parent / "elsewhere.png")).run()
    assert any("Path refused" in e.value and "outside the data roots" in e.value for e in at.error)


def test_ask_page_what_if_vocabulary(demo_runs, monkeypatch):
    from negprompt import live

    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(demo_runs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.switch_page("app_pages/ask.py").run()
    run = load_run(at.selectbox(key="w_run").value)
    files = {p: p.stat().st_mtime_ns for p in run.path.rglob("*")}
    names = run.config["data"]["class_names"]
    text = "\n".join([f"{names[0]} => tee", *names[1:], "coat"])
    at.text_area(key="vocabulary").set_value(text).run()
    at.button(key="rescore").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("kept in this browser session only" in s.value for s in at.success)
    shown = next(d.value for d in at.dataframe if "decisions changed" in d.value.columns)
    expected = live.whatif(run, live.run_backbone(run.config), live.parse_vocabulary(text, names))
    mean = expected.metrics[expected.metrics["dataset"] == "mean"]
    row = shown[shown["method/score"] == "negprompt/negprompt"].iloc[0]
    want = mean[(mean["method"] == "negprompt") & (mean["score"] == "negprompt")].iloc[0]
    assert row["AUROC after %"] == pytest.approx(100 * want["auroc"], abs=1e-6)
    flips = int((expected.changed["column"] == "negprompt/negprompt").sum())
    assert row["decisions changed"] == flips > 0
    assert {p: p.stat().st_mtime_ns for p in run.path.rglob("*")} == files  # the run is only read
    at.text_area(key="vocabulary").set_value("tee => shirt").run()
    at.button(key="rescore").click().run()
    assert any("'tee' is not a class" in e.value for e in at.error)
