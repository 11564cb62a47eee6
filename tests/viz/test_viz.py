"""Figure builders, maps and decision functions of negprompt.viz, on hand-made data and a synthetic run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from negprompt import viz
from negprompt.metrics import fpr_at_tpr


def _scores_table() -> pd.DataFrame:
    """5 ID images (classes 0, 1) then 3 + 2 OOD images, with two score columns."""
    return pd.DataFrame(
        {
            "dataset": ["inet"] * 5 + ["near"] * 3 + ["far"] * 2,
            "split": ["id"] * 5 + ["ood"] * 5,
            "path": [f"/data/{i}.png" for i in range(10)],
            "label": [0, 1, 0, 1, 1, -1, -1, -1, -1, -1],
            "label_name": ["cat", "dog", "cat", "dog", "dog", "", "", "", "", ""],
            "pred.m": [0, 1, 1, 1, 0, 0, 1, 0, 1, 1],
            "m/s": [0.9, 0.8, 0.7, 0.6, 0.2, 0.65, 0.3, 0.1, 0.85, 0.05],
            "m/t": [0.5, 0.4, 0.9, 0.6, 0.2, 0.1, 0.3, 0.7, 0.2, 0.0],
        }
    )


# --------------------------------------------------------------------------- thresholds and counts


def test_threshold_at_tpr_hand_cases():
    # 20 ID scores 1..20: keeping 95% = 19 images, so the threshold is the 19th highest = 2.
    assert viz.threshold_at_tpr(np.arange(1, 21)) == 2.0
    # 10 scores: ceil(0.95 * 10) = 10 kept, the threshold is the lowest score.
    assert viz.threshold_at_tpr(np.arange(10.0)) == 0.0
    assert viz.threshold_at_tpr([3.0, 1.0, 2.0], tpr=1 / 3) == 3.0
    assert viz.threshold_at_tpr([3.0, 1.0, 2.0], tpr=0.5) == 2.0
    with pytest.raises(ValueError, match="empty"):
        viz.threshold_at_tpr([])
    with pytest.raises(ValueError, match="tpr"):
        viz.threshold_at_tpr([1.0], tpr=0.0)


@pytest.mark.parametrize("seed", range(5))
def test_threshold_matches_metrics_fpr95(seed):
    rng = np.random.default_rng(seed)
    id_scores = np.round(rng.normal(1.0, 1.0, 97), 1)  # rounded: many ties
    ood_scores = np.round(rng.normal(0.0, 1.0, 53), 1)
    thr = viz.threshold_at_tpr(id_scores)
    assert np.mean(ood_scores >= thr) == pytest.approx(fpr_at_tpr(id_scores, ood_scores))
    assert np.mean(id_scores >= thr) >= 0.95


def test_rates_at_counts():
    r = viz.rates_at([0.9, 0.5, 0.2, 0.7], [0.6, 0.1, 0.95], threshold=0.6)
    assert (r.id_accepted, r.id_rejected, r.ood_accepted, r.ood_rejected) == (2, 2, 2, 1)
    assert r.tpr == 0.5 and r.fpr == pytest.approx(2 / 3)
    empty = viz.rates_at([1.0], [], 0.5)
    assert empty.tpr == 1.0 and np.isnan(empty.fpr)


def test_decision_counts_per_dataset_and_threshold_changes_them():
    table = _scores_table()
    counts = viz.decision_counts(table, "m/s", 0.6)
    assert list(counts["dataset"]) == ["inet", "near", "far"]
    assert list(counts["images"]) == [5, 3, 2]
    assert list(counts["accepted"]) == [4, 1, 1]
    assert list(counts["rejected"]) == [1, 2, 1]
    assert counts.loc[0, "accepted_pct"] == pytest.approx(80.0)
    higher = viz.decision_counts(table, "m/s", 0.75)
    assert list(higher["accepted"]) == [2, 0, 1]


def test_decision_table_filters_and_sorting():
    table = _scores_table()
    fp = viz.decision_table(table, "m/s", 0.6, pred_col="pred.m", kind="fp")
    assert list(fp["row"]) == [8, 5]  # OOD accepted, highest score first
    fn = viz.decision_table(table, "m/s", 0.6, kind="fn")
    assert list(fn["row"]) == [4]
    assert (fn["pred"] == -1).all()  # no pred column given
    near = viz.decision_table(table, "m/s", 0.6, datasets=["near"], sort="score_asc")
    assert list(near["row"]) == [7, 6, 5]
    cats = viz.decision_table(table, "m/s", 0.6, pred_col="pred.m", classes=[0], sort="row")
    assert list(cats["row"]) == [0, 2, 4, 5, 7]  # true class 0 or predicted class 0
    wrong = viz.decision_table(table, "m/s", 0.6, pred_col="pred.m", kind="misclassified")
    assert list(wrong["row"]) == [2, 4]  # pred != label, highest score first
    everything = viz.decision_table(table, "m/s", 0.6)
    assert len(everything) == 10 and everything["score"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="unknown filter"):
        viz.decision_table(table, "m/s", 0.6, kind="nope")
    # the errors (FN row 4, FP rows 5 and 8), the most confident mistake first
    errors = viz.decision_table(table, "m/s", 0.6, kind="errors", sort="margin")
    assert list(errors["row"]) == [4, 8, 5]  # |score - 0.6| = 0.4, 0.25, 0.05
    with pytest.raises(ValueError, match="margin"):
        viz.decision_table(table, "m/s", 0.6, sort="nope")


def test_decision_table_filters_ood_classes():
    table = pd.DataFrame(
        {
            "dataset": ["id"] * 3 + ["o"] * 4,
            "split": ["id"] * 3 + ["ood"] * 4,
            "path": [f"{i}.png" for i in range(7)],
            "label": [0, 1, 0, -1, -1, -1, -1],
            "ood_class": ["", "", "", "a", "b", "a", ""],
            "s": [0.9, 0.8, 0.7, 0.95, 0.1, 0.2, 0.85],
        }
    )
    out = viz.decision_table(table, "s", 0.5, ood_classes=["a"], sort="row")
    assert list(out["row"]) == [3, 5] and list(out["ood_class"]) == ["a", "a"]
    fp = viz.decision_table(table, "s", 0.5, kind="fp", ood_classes=["a", "b"])
    assert list(fp["row"]) == [3]  # the accepted OOD image of class a; the unlabelled one is left out
    assert len(viz.decision_table(table, "s", 0.5, ood_classes=[])) == 7  # empty = no filter
    with pytest.raises(ValueError, match="no 'ood_class' column"):
        viz.decision_table(table.drop(columns="ood_class"), "s", 0.5, ood_classes=["a"])


def test_page_slice():
    assert viz.page_slice(100, 1, 24) == (slice(0, 24), 5)
    assert viz.page_slice(100, 5, 24) == (slice(96, 100), 5)
    assert viz.page_slice(100, 99, 24) == (slice(96, 100), 5)  # clipped to the last page
    assert viz.page_slice(0, 1, 24) == (slice(0, 0), 1)
    with pytest.raises(ValueError):
        viz.page_slice(10, 1, 0)


def test_roc_points_and_slider_range():
    fpr, tpr = viz.roc_points([0.9, 0.8, 0.4], [0.5, 0.1])
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # after accepting 0.9 and 0.8: TPR 2/3, FPR 0
    assert any(f == 0 and t == pytest.approx(2 / 3) for f, t in zip(fpr, tpr))
    rng = np.random.default_rng(0)
    fpr, tpr = viz.roc_points(rng.normal(size=5000), rng.normal(size=5000), max_points=300)
    assert len(fpr) <= 302 and tpr[-1] == 1.0
    low, high, step = viz.slider_range([0.2, 0.5, 0.4])
    assert (low, high) == (0.2, 0.5) and step == pytest.approx(0.3 / 1000)
    low, high, step = viz.slider_range([0.3, 0.3])
    assert low < 0.3 < high and step > 0


# --------------------------------------------------------------------------- figures


def test_histogram_figure_one_trace_per_non_empty_set():
    fig = viz.score_histogram_figure(
        np.array([0.9, 0.8]),
        {"near": np.array([0.1]), "far": np.array([0.2, 0.3]), "empty": np.array([])},
        threshold=0.5,
    )
    assert isinstance(fig, go.Figure)
    assert [type(t) for t in fig.data] == [go.Histogram] * 3
    assert [t.name.split(" ")[0] for t in fig.data] == ["ID", "near", "far"]
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].x0 == 0.5  # threshold line
    assert fig.data[0].xbins.size == fig.data[1].xbins.size  # shared bins


def test_roc_figure_traces():
    ood = {"near": np.array([0.1, 0.6]), "far": np.array([0.2])}
    fig = viz.roc_figure(np.array([0.9, 0.5]), ood, threshold=0.55)
    names = [t.name for t in fig.data]
    assert names == ["near", "far", "chance", "at threshold"]
    assert all(isinstance(t, go.Scatter) for t in fig.data)
    point = fig.data[-1]
    assert list(point.x) == [0.5, 0.0] and list(point.y) == [0.5, 0.5]
    assert len(viz.roc_figure(np.array([0.9]), ood).data) == 3  # no operating points


def test_score_pair_figure_samples_each_dataset():
    table = _scores_table()
    fig = viz.score_pair_figure(table, "m/s", "m/t", thresholds=(0.6, 0.3), max_points=2)
    assert [t.name.split(" ")[0] for t in fig.data] == ["inet", "near", "far"]
    assert [len(t.x) for t in fig.data] == [2, 2, 2]
    assert len(fig.layout.shapes) == 2


def test_metrics_comparison_and_tables():
    metrics = pd.DataFrame(
        {
            "method": ["m", "m", "m"],
            "score": ["s", "s", "s"],
            "dataset": ["mean", "near", "far"],
            "fpr95": [0.5, 0.4, 0.6],
            "auroc": [0.8, 0.85, 0.75],
            "aupr_in": [0.7, 0.7, 0.7],
            "aupr_out": [0.6, 0.6, 0.6],
            "id_acc": [0.9, 0.9, 0.9],
        }
    )
    table = viz.metrics_percent(metrics)
    assert list(table["dataset"]) == ["near", "far", "mean"]  # mean last
    assert table.loc[2, "FPR95 %"] == 50.0 and table.loc[0, "AUROC %"] == 85.0
    better = metrics.assign(auroc=metrics["auroc"] + 0.1)
    both = viz.compare_metrics(metrics, better, ("a", "b"))
    assert both["AUROC % Δ"].tolist() == pytest.approx([10.0] * 3)
    same_name = viz.compare_metrics(metrics, better, ("a", "a"))
    assert "AUROC % a (2)" in same_name.columns
    fig = viz.metrics_comparison_figure({"a": metrics, "b": better}, "auroc")
    assert [type(t) for t in fig.data] == [go.Bar, go.Bar]
    assert list(fig.data[1].y) == pytest.approx([90.0, 95.0, 85.0])


def test_config_summary():
    summary = viz.config_summary(
        {"name": "r", "backbone": {"name": "ViT-B-16", "random_weights": True}, "data": {"ood": ["a", "b"]}}
    )
    assert summary["random weights"] == "yes" and summary["OOD sets"] == "a, b"
    assert viz.config_summary({})["random weights"] == "no"


# --------------------------------------------------------------------------- maps and explanations


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_pca_project_shapes_and_variance_order():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)) * np.array([10, 5, 1, 1, 1, 1, 1, 1])
    out = viz.pca_project(x, 2)
    assert out.shape == (40, 2) and out.dtype == np.float32
    assert out[:, 0].var() > out[:, 1].var() > 0
    assert viz.pca_project(x[:1], 2).shape == (1, 2)  # degenerate input still gives 2 columns


def test_exact_knn_matches_brute_force():
    rng = np.random.default_rng(1)
    x = _unit(rng.normal(size=(50, 6)))
    idx, dist = viz.exact_knn(x, 5, chunk=7)
    assert idx.shape == dist.shape == (50, 5)
    assert (idx[:, 0] == np.arange(50)).all() and np.allclose(dist[:, 0], 0)
    brute = np.argsort(-(x @ x.T), axis=1)[:, 1:5]
    assert (np.sort(idx[:, 1:], axis=1) == np.sort(brute, axis=1)).all()
    assert (np.diff(dist, axis=1) >= -1e-6).all()


def test_umap_project_separates_clusters():
    rng = np.random.default_rng(2)
    centres = _unit(rng.normal(size=(3, 16))) * 3
    x = np.concatenate([c + 0.2 * rng.normal(size=(20, 16)) for c in centres])
    coords = viz.umap_project(x, n_neighbors=8, n_epochs=100)
    assert coords.shape == (60, 2) and np.isfinite(coords).all()
    means = [coords[i * 20 : (i + 1) * 20].mean(axis=0) for i in range(3)]
    spread = max(coords[i * 20 : (i + 1) * 20].std(axis=0).max() for i in range(3))
    gaps = [np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread
    assert viz.umap_project(x[:3]).shape == (3, 2)  # too few rows: PCA instead


def test_prompt_points_and_embedding_figure():
    rng = np.random.default_rng(3)
    pos, neg = _unit(rng.normal(size=(4, 8))), _unit(rng.normal(size=(4, 2, 8)))
    images = _unit(rng.normal(size=(5, 8)))
    meta_in = pd.DataFrame({"dataset": ["inet"] * 3 + ["far"] * 2, "label_name": ["a", "b", "c", "", ""]})
    x, meta = viz.prompt_points(pos, neg, list("abcd"), image_features=images, image_meta=meta_in)
    assert x.shape == (4 + 8 + 5, 8)
    assert list(dict.fromkeys(meta["group"])) == [
        "positive",
        "negative 1",
        "negative 2",
        "image: inet",
        "image: far",
    ]
    assert meta.loc[5, "hover"] == "b · negative 1"
    fig = viz.embedding_figure(viz.pca_project(x), meta)
    assert [t.name for t in fig.data] == list(dict.fromkeys(meta["group"]))
    assert [len(t.x) for t in fig.data] == [4, 4, 4, 3, 2]
    x_only, meta_only = viz.prompt_points(pos, None, list("abcd"))
    assert x_only.shape == (4, 8) and set(meta_only["group"]) == {"positive"}
    with pytest.raises(ValueError, match="class names"):
        viz.prompt_points(pos, neg, ["a"])


def test_context_token_table():
    tokens = {
        "negprompt": {
            "positive": [[{"token": "a", "similarity": 0.2}, {"token": "photo", "similarity": 0.5}]] * 2,
            "negative": [[[{"token": "dark", "similarity": 0.3}]] * 2] * 3,
        }
    }
    table = viz.context_token_table(tokens, "negprompt", k=1)
    assert len(table) == 2 + 3 * 2
    assert table.loc[0, "nearest tokens"] == "photo (0.50)"
    assert list(table["prompt"].unique()) == ["positive", "negative 1", "negative 2", "negative 3"]
    assert viz.context_token_table(tokens, "coop").empty


def test_prompt_similarities_explain_the_decision():
    dim = 6
    eye = np.eye(dim, dtype=np.float32)
    pos = eye[:3]  # classes a, b, c along axes 0..2
    neg = np.stack([eye[[3, 4]], eye[[4, 5]], eye[[5, 3]]])  # [3, 2, 6]
    image = (0.6 * eye[1] + 0.8 * eye[4]).astype(np.float16)  # like class b, closer to axis 4
    sims = viz.prompt_similarities(image, pos, neg, ["a", "b", "c"])
    assert len(sims) == 3 + 6
    best_pos = sims[sims["kind"] == "positive"].nlargest(1, "similarity").iloc[0]
    assert best_pos["class_name"] == "b" and best_pos["similarity"] == pytest.approx(0.6, abs=1e-3)
    top = viz.top_similarities(sims, k=2)
    assert list(top["kind"]) == ["positive", "positive", "negative", "negative"]
    assert set(top.loc[top["kind"] == "negative", "prompt"]) == {"a · neg 2", "b · neg 1"}
    assert top["similarity"].iloc[2] == pytest.approx(0.8, abs=1e-3)
    fig = viz.explanation_figure(top)
    assert [t.name for t in fig.data] == ["positive prompts", "negative prompts"]
    assert all(isinstance(t, go.Bar) and t.orientation == "h" for t in fig.data)
    only_pos = viz.prompt_similarities(image, pos, None, ["a", "b", "c"])
    assert len(viz.explanation_figure(viz.top_similarities(only_pos)).data) == 1


def test_viz_on_a_synthetic_run(tmp_path):
    from negprompt.rundir import load_run
    from negprompt.synthetic import synthetic_run

    run = load_run(synthetic_run(tmp_path / "run", image_dir=tmp_path / "images"))
    column = "negprompt/negprompt"
    table = run.scores
    is_id = table["split"] == "id"
    thr = viz.threshold_at_tpr(table.loc[is_id, column])
    counts = viz.decision_counts(table, column, thr)
    assert counts.loc[0, "accepted"] / counts.loc[0, "images"] >= 0.95
    near = table.loc[table["dataset"] == "near", column]
    row = run.metrics.query("method == 'negprompt' and score == 'negprompt' and dataset == 'near'").iloc[0]
    assert counts.set_index("dataset").loc["near", "accepted"] / len(near) == pytest.approx(row["fpr95"])
    pos, neg = run.text_features_of("negprompt")
    sims = viz.prompt_similarities(run.image_features[0], pos, neg, run.config["data"]["class_names"])
    assert len(sims) == pos.shape[0] * (1 + neg.shape[1])


def _method_metrics(shift: float = 0.0) -> pd.DataFrame:
    """metrics.csv rows of every method of a run (two OOD sets and the mean), fractions."""
    pairs = [
        ("zeroshot", "mcm"), ("zeroshot", "energy"), ("zeroshot", "gl_mcm"), ("zeroshot", "l_mcm"),
        ("coop", "mcm"), ("coop", "gl_mcm"), ("negprompt", "negprompt"), ("negprompt", "mcm"),
        ("locoop", "mcm"), ("locoop", "gl_mcm"), ("neglabel", "neglabel"),
    ]  # fmt: skip
    rows = []
    for i, (method, score) in enumerate(pairs):
        for j, dataset in enumerate(("near", "far", "mean")):
            fpr = 0.05 * i + 0.01 * j + shift
            rows.append({"method": method, "score": score, "dataset": dataset, "fpr95": fpr,
                         "auroc": 1 - fpr / 2, "aupr_in": 0.5, "aupr_out": 0.5, "id_acc": 0.9})  # fmt: skip
    return pd.DataFrame(rows)


ROWS = [
    "MCM (zero-shot)", "GL-MCM (zero-shot)", "L-MCM (zero-shot)", "CoOp + MCM", "CoOp + GL-MCM",
    "NegPrompt", "LoCoOp + MCM", "LoCoOp + GL-MCM", "NegLabel (zero-shot)",
]  # fmt: skip


def test_every_method_has_its_row_in_the_results_table():
    from negprompt.evaluate import format_table
    from negprompt.table_rows import table_rows

    metrics = _method_metrics()
    assert ("zeroshot", "energy") not in table_rows(metrics) and ("negprompt", "mcm") not in table_rows(
        metrics
    )
    text = format_table(metrics)
    lines = [line for line in text.splitlines() if line[:28].strip() in ROWS]
    assert [line[:28].strip() for line in lines] == ROWS
    locoop_gl = metrics.query("method == 'locoop' and score == 'gl_mcm' and dataset == 'mean'").iloc[0]
    row = next(line for line in lines if line.startswith("LoCoOp + GL-MCM"))
    assert f"{100 * locoop_gl.fpr95:6.2f} / {100 * locoop_gl.auroc:6.2f}" in row


def test_method_rows_and_two_runs_side_by_side():
    a, b = _method_metrics(), _method_metrics(shift=0.02)
    rows = viz.method_rows(a)
    assert list(rows["row"]) == ROWS
    mean = a[a["dataset"] == "mean"].set_index(["method", "score"])
    assert list(rows["fpr95"]) == pytest.approx(
        [mean.loc[(m, s), "fpr95"] for m, s in zip(rows["method"], rows["score"])]
    )
    near = viz.method_rows(a, "near")
    assert list(near["row"]) == ROWS and (near["fpr95"].to_numpy() < rows["fpr95"].to_numpy()).all()
    both = viz.compare_methods(a, b, ("A", "B"))
    assert list(both["row"]) == ROWS and "dataset" not in both.columns
    assert both["FPR95 % Δ"].tolist() == pytest.approx([2.0] * len(ROWS))
    # a method only one run has still gets its row (the other run's cells stay empty)
    only_a = viz.compare_methods(a, b[b["method"] != "neglabel"], ("A", "B"))
    last = only_a.iloc[-1]
    assert last["row"] == "NegLabel (zero-shot)" and np.isnan(last["FPR95 % B"])
    fig = viz.metrics_comparison_figure({"A": rows, "B": viz.method_rows(b)}, "fpr95", x="row")
    assert list(fig.data[0].x) == ROWS and list(fig.data[1].y) == pytest.approx(
        list(100 * viz.method_rows(b)["fpr95"])
    )
