"""Every dashboard page under Streamlit's AppTest, on synthetic run directories; and `negprompt app`."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from negprompt import viz
from negprompt.rundir import load_run
from negprompt.synthetic import synthetic_run
from negprompt.table_rows import all_rows, row_label

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app" / "app.py"
SCORE = "negprompt/negprompt"
TIMEOUT = 120  # the first UMAP in a process compiles umap-learn's numba code


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    """Two runs: 'alpha' (random weights, older) and 'beta' (not random, newer: listed first)."""
    base = tmp_path_factory.mktemp("dash")
    root = base / "runs"
    synthetic_run(root / "alpha", seed=0, random_weights=True, image_dir=base / "images-alpha")
    beta = synthetic_run(root / "beta", seed=1, random_weights=False, image_dir=base / "images-beta")
    config = json.loads((beta / "config.json").read_text())
    config["created"] = "2999-01-01T00:00:00+00:00"  # newest first, whatever the clock did
    (beta / "config.json").write_text(json.dumps(config))
    return root


def app(monkeypatch, root: Path, page: str | None = None) -> AppTest:
    """The app, run once on its first page, then on ``page`` if given."""
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(root))
    monkeypatch.setenv("NEGPROMPT_IMAGE_DIRS", str(root.parent))  # the synthetic images lie beside the runs
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(field) -> list:
    """A trace's x / y from plotly's JSON: a list, or a base64 typed array ({"dtype", "bdata"})."""
    if isinstance(field, dict) and "bdata" in field:
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=np.dtype(field["dtype"])).tolist()
    return list(field)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def mean_metrics(run_dir: Path) -> dict[str, float]:
    m = load_run(run_dir).metrics
    return m[(m["method"] == "negprompt") & (m["score"] == "negprompt") & (m["dataset"] == "mean")].iloc[0]


# --------------------------------------------------------------------------- runs page


def test_runs_page_metrics_and_random_weights_banner(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root)
    assert at.title[0].value == "Runs"
    assert at.selectbox(key="w_run").value == str(runs_root / "beta")
    expected = mean_metrics(runs_root / "beta")
    shown = {m.label: m.value for m in at.metric}
    assert shown["FPR95 (mean)"] == f"{100 * expected['fpr95']:.2f}%"
    assert shown["AUROC (mean)"] == f"{100 * expected['auroc']:.2f}%"
    assert shown["ID acc (mean)"] == f"{100 * expected['id_acc']:.2f}%"
    assert not any("Random weights" in e for e in errors(at))  # beta: real weights
    overview = at.dataframe[0].value
    assert sorted(overview["run"]) == ["alpha", "beta"] and set(overview["status"]) == {"ok"}
    assert any("FPR95: fraction of OOD images accepted" in c.value for c in at.caption)

    at.selectbox(key="w_run").set_value(str(runs_root / "alpha")).run()
    assert any("Random weights" in e for e in errors(at))
    shown = {m.label: m.value for m in at.metric}
    assert shown["FPR95 (mean)"] == f"{100 * mean_metrics(runs_root / 'alpha')['fpr95']:.2f}%"


def test_no_runs_at_all(monkeypatch, tmp_path):
    for page in (None, "scores", "embeddings", "images", "compare", "ask"):
        at = app(monkeypatch, tmp_path / "nothing-here", page)
        assert any("No runs found" in i.value or "needs two runs" in i.value for i in at.info), page
        assert not at.get("plotly_chart")


def test_damaged_run_gives_a_message_not_a_traceback(monkeypatch, runs_root, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(runs_root / "beta", root / "good")
    broken = shutil.copytree(runs_root / "alpha", root / "broken")
    (broken / "scores.parquet").write_bytes(b"not a parquet file")
    at = app(monkeypatch, root)
    assert any("broken" in e and "cannot be read" in e for e in errors(at))
    at.selectbox(key="w_run").set_value(str(root / "broken")).run()
    assert not at.exception
    assert any("Cannot read run" in e and "scores.parquet" in e for e in errors(at))
    for page in ("scores", "images", "embeddings"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, page
        assert any("Cannot read run" in e for e in errors(at)), page


def test_damaged_text_features(monkeypatch, runs_root, tmp_path):
    root = tmp_path / "runs"
    run_dir = shutil.copytree(runs_root / "beta", root / "no-prompts")
    (run_dir / "text_features.npz").write_bytes(b"garbage")
    at = app(monkeypatch, root, "embeddings")
    assert any("Cannot read the text features" in e and "text_features.npz" in e for e in errors(at))
    at.switch_page("app_pages/images.py").run()
    at.selectbox(key="w_kind").set_value("all").run()  # the gallery opens on the errors
    at.button(key="open_row").click().run()  # the row number input starts at row 0
    assert not at.exception
    assert any("Image #0" in h.value for h in at.subheader)
    assert any("Cannot explain this image" in e for e in errors(at))
    assert len(at.image) == 24 + 1  # the gallery still shows, and the large image


# --------------------------------------------------------------------------- score distributions


def test_scores_page_threshold_changes_the_counts(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, "scores")
    run = load_run(runs_root / "beta")
    table = run.scores
    id_scores = table.loc[table["split"] == "id", SCORE].to_numpy()
    ood_scores = table.loc[table["split"] == "ood", SCORE].to_numpy()
    start = viz.threshold_at_tpr(id_scores)
    slider = next(s for s in at.slider if s.key.startswith("w_thr_"))
    assert slider.value == pytest.approx(start)
    shown = {m.label: m.value for m in at.metric}
    r = viz.rates_at(id_scores, ood_scores, start)
    assert shown["TPR (ID accepted)"] == f"{100 * r.tpr:.1f}%"
    assert shown["OOD accepted / rejected"] == f"{r.ood_accepted} / {r.ood_rejected}"
    figures = charts(at)
    assert len(figures) == 4  # histograms, ROC, score pair, second score's histograms
    assert [d["type"] for d in figures[0]["data"]] == ["histogram"] * 3
    assert [d["name"] for d in figures[1]["data"]] == ["near", "far", "chance", "at threshold"]
    # both ways of summing up the OOD sets, each named, with the convention stated
    ood = {n: table.loc[table["dataset"] == n, SCORE].to_numpy() for n in ("near", "far")}
    mean_fpr = np.mean([viz.rates_at(id_scores, v, start).fpr for v in ood.values()])
    assert shown["FPR (mean over sets)"] == f"{100 * mean_fpr:.1f}%"
    assert shown["FPR (pooled)"] == f"{100 * r.fpr:.1f}%"
    assert any('"mean" rows average the metric over the OOD sets' in c.value for c in at.caption)
    assert not any("notebook" in str(el.value).lower() for el in [*at.caption, *at.markdown, *at.info])
    # at the 95%-TPR threshold no image flips
    assert any(
        e.label.endswith(": 0") for e in at.expander if e.label.startswith("Images decided differently")
    )
    higher = float(np.quantile(id_scores, 0.5))
    slider.set_value(higher).run()
    r2 = viz.rates_at(id_scores, ood_scores, higher)
    shown2 = {m.label: m.value for m in at.metric}
    assert shown2["ID accepted / rejected"] == f"{r2.id_accepted} / {r2.id_rejected}"
    assert shown2["ID accepted / rejected"] != shown["ID accepted / rejected"]
    counts = at.dataframe[0].value
    assert list(counts["accepted"]) == list(viz.decision_counts(table, SCORE, higher)["accepted"])
    # the flipped images follow the page's threshold (one threshold per page)
    flips = viz.flipped_images(table, SCORE, start, higher)
    assert any(
        e.label.endswith(f": {len(flips)}") for e in at.expander if e.label.startswith("Images decided")
    )
    shown_flips = next(d.value for d in at.dataframe if "image" in d.value.columns)
    assert list(shown_flips["row"]) == list(flips["row"].head(20))
    assert all(
        u.startswith("data:image/png;base64,") for u in shown_flips["image"]
    )  # thumbnails, no file names

    # The threshold is shared: the per-image page starts where this one was left.
    at.switch_page("app_pages/images.py").run()
    assert next(s for s in at.slider if s.key.startswith("w_thr_")).value == pytest.approx(higher)
    # The reset button goes back to the 95%-TPR threshold.
    next(b for b in at.button if b.key.startswith("reset_")).click().run()
    assert next(s for s in at.slider if s.key.startswith("w_thr_")).value == pytest.approx(start)


def test_empty_ood_set_is_reported(monkeypatch, runs_root, tmp_path):
    root = tmp_path / "runs"
    run_dir = shutil.copytree(runs_root / "beta", root / "with-empty-set")
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["ood"].append("unused-set")
    (run_dir / "config.json").write_text(json.dumps(config))
    at = app(monkeypatch, root, "scores")
    assert any("unused-set" in i.value and "no images" in i.value for i in at.info)
    assert len(charts(at)[0]["data"]) == 3  # the empty set draws no histogram


# --------------------------------------------------------------------------- prompt embeddings


def test_embeddings_page_maps_and_token_table(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, "embeddings")
    run = load_run(runs_root / "beta")
    pos, neg = run.text_features_of("negprompt")
    at.radio[0].set_value("PCA").run()
    at.checkbox[0].uncheck().run()
    (figure,) = charts(at)
    assert [d["name"] for d in figure["data"]] == ["positive", "negative 1", "negative 2"]
    assert [len(values(d["x"])) for d in figure["data"]] == [len(pos)] * 3
    assert not at.warning  # no identical prompts in this run: no merge sentence
    tokens = at.dataframe[0].value
    assert len(tokens) == 4 * (1 + neg.shape[1])  # 4 context vectors, positive + each negative set

    at.checkbox[0].check().run()  # prompts and images, projected together
    at.number_input[0].set_value(50).run()
    (figure,) = charts(at)
    names = [d["name"] for d in figure["data"]]
    assert names[:3] == ["positive", "negative 1", "negative 2"]
    table = run.scores
    id_names = {f"ID: {c}" for c in table.loc[table["split"] == "id", "label_name"]}
    assert set(names[3:]) <= id_names | {"OOD: near", "OOD: far"}  # ID by class, OOD by set
    assert len(set(names[3:]) & id_names) > 1
    assert sum(len(values(d["x"])) for d in figure["data"][3:]) == 50
    rows = [r for d in figure["data"][3:] for r in values(d["customdata"])]
    for d in figure["data"][3:]:  # each image point carries its run row: its class is its trace's
        for r in values(d["customdata"]):
            expected = (
                f"ID: {table['label_name'].iat[r]}"
                if table["split"].iat[r] == "id"
                else f"OOD: {table['dataset'].iat[r]}"
            )
            assert d["name"] == expected
    assert len(set(rows)) == 50
    trust = next(m for m in at.metric if m.label == "Trustworthiness")
    assert 0.0 <= float(trust.value) <= 1.0
    assert any("PCA of" in c.value for c in at.caption)

    # a click on an image point opens its explanation (Streamlit's plotly selection event)
    row = rows[0]
    at.session_state["map"] = {
        "selection": {"points": [{"customdata": row}], "point_indices": [0], "box": [], "lasso": []}
    }
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"Image #{row}" in h.value for h in at.subheader)
    assert any(m.label == "Distance to the threshold" for m in at.metric)


def test_identical_negatives_are_one_marker_with_a_sentence(monkeypatch, runs_root, tmp_path):
    root = tmp_path / "runs"
    run_dir = shutil.copytree(runs_root / "beta", root / "same-negatives")
    with np.load(run_dir / "text_features.npz") as npz:
        text = {k: npz[k] for k in npz.files}
    for key in [k for k in text if k.endswith(".neg")]:
        text[key][:, 1] = text[key][:, 0]  # M = 2 copies that never separated
    np.savez(run_dir / "text_features.npz", **text)
    at = app(monkeypatch, root, "embeddings")
    at.radio[0].set_value("PCA").run()
    at.checkbox[0].uncheck().run()
    n_classes = len(text["negprompt.pos"])
    sentence = at.warning[0].value
    assert sentence.startswith(f"{3 * n_classes} prompts are drawn as {2 * n_classes} markers")
    assert f"negative 1 and negative 2 are the same vector for {n_classes} classes" in sentence
    (figure,) = charts(at)
    assert [d["name"] for d in figure["data"]] == ["positive", "negative 1 = negative 2"]
    merged = figure["data"][1]
    assert len(values(merged["x"])) == n_classes and set(merged["text"]) == {"×2"}
    assert all("2 identical prompts" in h for h in merged["hovertext"])


# --------------------------------------------------------------------------- per-image decisions


def test_images_page_gallery_filters_paging_and_explanation(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, "images")
    run = load_run(runs_root / "beta")
    table = run.scores
    thr = viz.threshold_at_tpr(table.loc[table["split"] == "id", SCORE])
    # the gallery opens on the errors, the most confident first
    errors_ = viz.decision_table(table, SCORE, thr, kind="errors", sort="margin")
    assert at.selectbox(key="w_kind").value == "errors"
    assert any(f"{len(errors_)} image(s) match" in m.value for m in at.markdown)
    first = next(c.value for c in at.caption if c.value.startswith("#"))
    assert first.startswith(f"#{errors_['row'].iloc[0]} ")
    at.selectbox(key="w_kind").set_value("all").run()
    assert len(at.image) == 24  # the default page size
    assert any(f"{len(table)} image(s) match" in m.value for m in at.markdown)
    # the per-OOD-class table of the labelled near set, at the current threshold
    breakdown = viz.ood_class_breakdown(table, SCORE, thr)
    assert len(breakdown) > 1
    assert any(e.label.startswith(f"OOD classes at this threshold ({len(breakdown)},") for e in at.expander)
    shown = next(d.value for d in at.dataframe if "ood_class" in d.value.columns)
    assert list(shown["ood_class"]) == list(breakdown["ood_class"])
    assert list(shown["accepted"]) == list(breakdown["accepted"])
    # the gallery filtered to one OOD class
    hardest = str(breakdown["ood_class"].iloc[0])
    at.multiselect(key="ood_classes").set_value([hardest]).run()
    n_class = int((table["ood_class"] == hardest).sum())
    assert any(f"{n_class} image(s) match" in m.value for m in at.markdown)
    assert all(f"true: OOD ({hardest})" in c.value for c in at.caption if c.value.startswith("#"))
    at.multiselect(key="ood_classes").set_value([]).run()

    at.selectbox(key="w_kind").set_value("fp").run()
    fp = viz.decision_table(table, SCORE, thr, kind="fp")
    assert len(at.image) == min(24, len(fp)) > 0
    assert any(f"{len(fp)} image(s) match" in m.value for m in at.markdown)
    assert all("OOD" in c.value or "accepted" in c.value for c in at.caption if c.value.startswith("#"))
    near_fp = fp[fp["dataset"] == "near"]
    assert len(near_fp) and all(
        any(f"true: OOD ({r.ood_class})" in c.value for c in at.caption if c.value.startswith(f"#{r.row} "))
        for r in near_fp.head(3).itertuples()
    )

    at.selectbox(key="w_kind").set_value("all").run()
    at.multiselect(key="datasets").set_value(["far"]).run()
    assert len(at.image) == 24
    at.selectbox(key="page_size").set_value(12).run()
    assert len(at.image) == 12
    n_far = int((table["dataset"] == "far").sum())
    page_input = next(n for n in at.number_input if n.key.startswith("page_"))
    n_pages = -(-n_far // 12)
    page_input.set_value(n_pages).run()  # the last page
    assert len(at.image) == n_far - 12 * (n_pages - 1)

    row = int(fp["row"].iloc[0])
    at.selectbox(key="w_kind").set_value("fp").run()
    at.multiselect(key="datasets").set_value([]).run()
    at.button(key=f"open_{row}").click().run()
    assert any(f"Image #{row}" in h.value for h in at.subheader)
    (figure,) = charts(at)
    # the decomposition: the largest prompt shares, then the positive vs negative mass
    exp = viz.explain_row(
        SCORE, table.iloc[row], run.image_features[row], *run.text_features_of("negprompt"),
        run.config["data"]["class_names"], run.config,
    )  # fmt: skip
    mass = next(d for d in figure["data"] if d["name"] == "mass")
    assert values(mass["x"])[0] == pytest.approx(exp.terms["positive mass P⁺"], rel=1e-6)
    assert sum(len(values(d["y"])) for d in figure["data"] if d["name"] != "mass") == 10
    caption = at.get("markdown")
    text = " ".join(m.value for m in caption)
    assert f"{100 * exp.terms['positive mass P⁺']:.1f}%" in text and "accepted as ID" in text
    margin = float(table[SCORE].iat[row]) - thr
    assert any(m.label == "Distance to the threshold" and m.value == f"{margin:+.4g}" for m in at.metric)
    assert any("Nearest ID test images" in m.value for m in at.markdown)


def test_missing_image_shows_a_placeholder(monkeypatch, runs_root, tmp_path):
    root = tmp_path / "runs"
    run_dir = synthetic_run(root / "gaps", seed=3, n_id=12, ood_sets={"far": 6}, image_dir=tmp_path / "img")
    table = load_run(run_dir).scores
    Path(table["path"].iloc[0]).unlink()
    at = app(monkeypatch, root, "images")
    at.selectbox(key="w_kind").set_value("all").run()
    at.selectbox(key="page_size").set_value(24).run()
    assert len(at.image) == 18
    assert sum("image not shown" in c.value for c in at.caption) == 1
    at.button(key="open_0").click().run()
    assert not at.exception
    assert any("Image not shown" in w.value for w in at.warning)


# --------------------------------------------------------------------------- compare runs


@pytest.fixture(scope="module")
def overlapping_runs(tmp_path_factory) -> Path:
    """Runs 'a' and 'b' on the same images, except that b lacks 'near', has 'near-ood' instead and
    only half of 'far'; b's scores are a's moved by noise."""
    base = tmp_path_factory.mktemp("overlap")
    root, images = base / "runs", base / "images"
    synthetic_run(root / "a", seed=0, image_dir=images, random_weights=False)
    b = synthetic_run(
        root / "b", seed=0, image_dir=images, random_weights=False, ood_sets={"near-ood": 40, "far": 20}
    )
    scores = pd.read_parquet(b / "scores.parquet")
    rng = np.random.default_rng(5)
    for column in [c for c in scores.columns if "/" in c]:
        scores[column] += 0.02 * rng.normal(size=len(scores))
    scores.to_parquet(b / "scores.parquet")
    return root


def test_compare_page_matches_sets_by_images(monkeypatch, overlapping_runs):
    from negprompt import matching as X
    from negprompt.metrics import ood_metrics

    at = app(monkeypatch, overlapping_runs, "compare")
    a, b = (load_run(at.selectbox(key=f"w_compare_{side}").value) for side in "AB")
    assert {a.name, b.name} == {"a", "b"}
    sets = at.dataframe[0].value
    assert set(sets["relation"]) == {"same images", "partly shared", "only in A", "only in B"}
    warning = at.warning[0].value
    assert "means only over the shared OOD sets (far)" in warning
    assert (
        "near (only in" in warning
        and "near-ood (only in" in warning
        and "far / far (partly shared" in warning
    )

    # per shared set: the metrics of both runs on the same images, mean over the shared sets only
    ka, kb = X.path_keys(a.scores), X.path_keys(b.scores)
    shared = sorted(
        set(ka[(a.scores["dataset"] == "far").to_numpy()])
        & set(kb[(b.scores["dataset"] == "far").to_numpy()])
    )
    va, vb = dict(zip(ka, a.scores[SCORE])), dict(zip(kb, b.scores[SCORE]))
    ids = list(ka[(a.scores["split"] == "id").to_numpy()])
    fpr_a = ood_metrics([va[k] for k in ids], [va[k] for k in shared])["fpr95"]
    fpr_b = ood_metrics([vb[k] for k in ids], [vb[k] for k in shared])["fpr95"]
    per_set = next(d.value for d in at.dataframe if "shared OOD images" in d.value.columns)
    assert list(per_set["OOD set (A's name)"]) == ["far", "mean"]
    far = per_set.iloc[0]
    assert far["shared OOD images"] == len(shared) == 20
    assert far["FPR95 % A"] == pytest.approx(100 * fpr_a) and far["FPR95 % B"] == pytest.approx(100 * fpr_b)
    assert far["FPR95 % Δ"] == pytest.approx(100 * (fpr_b - fpr_a))
    # the paired bootstrap interval of the difference, on the same images in the same order
    from negprompt.uncertainty import paired_difference

    _, aligned = X.shared_metrics(
        a.scores, b.scores, SCORE, SCORE, ka, kb, X.match_sets(a.scores, b.scores, ka, kb)
    )
    interval = paired_difference(aligned["a"], aligned["b"])["far"]["fpr95"]
    assert far["Δ 95% interval"] == f"[{100 * interval.low:+.2f}, {100 * interval.high:+.2f}]"
    methods = next(d.value for d in at.dataframe if "row" in d.value.columns)
    assert methods.set_index("row").loc["NegPrompt", f"FPR95 % A: {a.name}"] == pytest.approx(100 * fpr_a)

    # the disagreements, each run at its own 95%-TPR threshold, and both explanations side by side
    thr = [viz.threshold_at_tpr(r.scores.loc[r.scores["split"] == "id", SCORE]) for r in (a, b)]
    flips = X.disagreements(a.scores, b.scores, SCORE, SCORE, *thr, ka, kb)
    assert any(h.value == f"Where they disagree: {len(flips)} shared image(s)" for h in at.subheader)
    assert len(flips) > 0
    first = flips.iloc[0]
    at.button(key=f"pair_{first['row A']}_{first['row B']}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [h.value for h in at.subheader if h.value.startswith("Image #")]
    assert shown == [f"Image #{first['row A']}", f"Image #{first['row B']}"]
    assert sum(m.label == "Distance to the threshold" for m in at.metric) == 2


def test_compare_two_runs_without_shared_images(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, "compare")
    assert any("Random weights" in e and "alpha" in e for e in errors(at))
    assert any("share no ID image or no OOD image" in e for e in errors(at))
    at.radio(key="match_by").set_value("content").run()  # other pixels, too: still nothing shared
    assert any("share no ID image or no OOD image" in e for e in errors(at))


NEW_ROWS = {
    ("zeroshot", "gl_mcm"): ("GL-MCM (zero-shot)", 0.03),
    ("zeroshot", "l_mcm"): ("L-MCM (zero-shot)", 0.06),
    ("locoop", "mcm"): ("LoCoOp + MCM", -0.02),
    ("locoop", "gl_mcm"): ("LoCoOp + GL-MCM", -0.04),
    ("neglabel", "neglabel"): ("NegLabel (zero-shot)", -0.05),
    ("tanl", "tanl"): ("TANL (adapts on the test stream)", -0.07),
}
"""The rows the newer methods add to a run's results table, and how far each moves NegPrompt's FPR95."""


def add_new_methods(run_dir: Path, shift: float = 0.0) -> None:
    """Give a synthetic run the metrics rows of GL-MCM, L-MCM, LoCoOp and NegLabel: NegPrompt's
    rows, their FPR95 moved by a fixed amount per method (and by ``shift``)."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    base = metrics[(metrics["method"] == "negprompt") & (metrics["score"] == "negprompt")]
    extra = [
        base.assign(method=m, score=s, fpr95=(base["fpr95"] + d + shift).clip(0, 1))
        for (m, s), (_, d) in NEW_ROWS.items()
    ]
    pd.concat([metrics, *extra], ignore_index=True).to_csv(run_dir / "metrics.csv", index=False)


def test_compare_page_puts_every_method_side_by_side(monkeypatch, tmp_path):
    root = tmp_path / "runs"
    for name, seed, shift in (("one", 0, 0.0), ("two", 0, 0.1)):  # the same image files
        add_new_methods(synthetic_run(root / name, seed=seed, image_dir=tmp_path / "img"), shift)
    at = app(monkeypatch, root, "compare")
    a, b = (load_run(root / at.selectbox(key=f"w_compare_{side}").value) for side in "AB")
    keys = list(dict.fromkeys([*all_rows(a.metrics), *all_rows(b.metrics)]))  # every row, not a selection
    expected = [row_label(*k) for k in keys]
    assert {"MCM (zero-shot)", "GL-MCM (zero-shot)", "L-MCM (zero-shot)", "CoOp + MCM", "NegPrompt",
            "LoCoOp + MCM", "LoCoOp + GL-MCM", "NegLabel (zero-shot)"} <= set(expected)  # fmt: skip
    methods = next(d.value for d in at.dataframe if "row" in d.value.columns)
    assert list(methods["row"]) == expected
    col_a, col_b = f"FPR95 % A: {a.name}", f"FPR95 % B: {b.name}"
    locoop = methods.set_index("row").loc["LoCoOp + GL-MCM"]
    mean = a.metrics.query("method == 'locoop' and score == 'gl_mcm' and dataset == 'mean'")["fpr95"].iloc[0]
    assert locoop[col_a] == pytest.approx(100 * mean)  # no per-image scores, the same images: metrics.csv
    assert locoop["FPR95 % Δ (B − A)"] == pytest.approx(locoop[col_b] - locoop[col_a])
    assert locoop["FPR95 % Δ (B − A)"] != 0
    bars = charts(at)[0]["data"]
    assert [d["type"] for d in bars] == ["bar", "bar"] and list(bars[0]["x"]) == expected
    at.radio[1].set_value("fpr95").run()
    bars = charts(at)[0]["data"]
    mean_b = b.metrics[b.metrics["dataset"] == "mean"].set_index(["method", "score"])
    assert values(bars[1]["y"]) == pytest.approx([100 * mean_b.loc[k, "fpr95"] for k in keys])


# --------------------------------------------------------------------------- the `negprompt app` command


def test_app_command_line(tmp_path):
    from negprompt.cli import build_parser
    from negprompt.commands.app import find_app_entry, streamlit_command

    assert find_app_entry() == APP
    command = streamlit_command(tmp_path, host="127.0.0.1", port=8999)
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)]
    options = dict(zip(command[5:-3:2], command[6:-3:2]))
    assert options == {
        "--server.headless": "true",
        "--server.address": "127.0.0.1",
        "--server.port": "8999",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal",
    }
    assert command[-3:] == ["--", "--runs-dir", str(tmp_path)]
    extra = streamlit_command(tmp_path, options={"server.fileWatcherType": "none"})
    assert extra[extra.index("--server.fileWatcherType") + 1] == "none"
    args = build_parser().parse_args(["app", str(tmp_path), "--port", "8600"])
    assert (args.runs_dir, args.host, args.port) == (str(tmp_path), "127.0.0.1", 8600)
    assert callable(args.func)


def test_missing_app_entry_is_a_clear_error(monkeypatch, tmp_path):
    import negprompt
    from negprompt.commands import app as app_command

    monkeypatch.setattr(negprompt, "__file__", str(tmp_path / "site" / "negprompt" / "__init__.py"))
    monkeypatch.delenv(app_command.APP_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="pip install -e"):
        app_command.find_app_entry()
    monkeypatch.setenv(app_command.APP_ENV, str(APP.parent))
    assert app_command.find_app_entry() == APP


def test_ask_page_without_a_model(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, "ask")
    assert any("cannot answer live questions" in i.value and "without a model" in i.value for i in at.info)


def test_compare_two_scores_of_one_run(monkeypatch, runs_root):
    from negprompt import matching as X

    at = app(monkeypatch, runs_root, "compare")
    beta = str(runs_root / "beta")
    at.selectbox(key="w_compare_A").set_value(beta).run()
    at.selectbox(key="w_compare_B").set_value(beta).run()
    at.selectbox(key="compare_score_B").set_value("coop/mcm").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("compare two of its scores" in i.value for i in at.info)
    assert not at.warning  # the same images in every set
    run = load_run(beta)
    keys = X.path_keys(run.scores)
    thr = [viz.threshold_at_tpr(run.scores.loc[run.scores["split"] == "id", c]) for c in (SCORE, "coop/mcm")]
    flips = X.disagreements(run.scores, run.scores, SCORE, "coop/mcm", *thr, keys, keys)
    assert any(h.value == f"Where they disagree: {len(flips)} shared image(s)" for h in at.subheader)
    assert (flips["row A"] == flips["row B"]).all()


def test_a_per_set_row_says_its_id_scores_are_a_mean_over_streams(monkeypatch):
    """AdaNeg and TANL stream each OOD set with the ID images: the score views say what they show."""
    monkeypatch.syspath_prepend(str(ROOT / "app"))
    import _shared as sh

    class Where:
        def __init__(self):
            self.captions = []

        def caption(self, text):
            self.captions.append(text)

    scores = pd.DataFrame({"split": ["id", "ood"], "tanl/tanl": [0.5, 0.1], "tanl.tanl@near": [0.4, np.nan]})
    run = type("FakeRun", (), {"scores": scores})()
    where = Where()
    assert sh.per_set_note(run, "tanl/tanl", where) and "mean over the streams" in where.captions[0]
    plain = type("FakeRun", (), {"scores": scores.drop(columns="tanl.tanl@near")})()
    assert not sh.per_set_note(plain, "tanl/tanl", where) and len(where.captions) == 1
