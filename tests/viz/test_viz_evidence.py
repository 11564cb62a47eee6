"""The deciding local region and negative label of one image: pure functions and the per-image page."""

from __future__ import annotations

import json
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from negprompt import viz
from negprompt.synthetic import synthetic_run
from tests.app.test_app import app


def test_region_box_follows_the_centre_crop():
    assert viz.region_box(224, 224, 0, 14) == (0, 0, 16, 16)
    assert viz.region_box(224, 224, 195, 14) == (208, 208, 224, 224)
    # a landscape image: the centre square starts 50 px from the left
    assert viz.region_box(300, 200, 3 * 4 + 1, 4) == (100, 150, 150, 200)
    with pytest.raises(ValueError, match="outside"):
        viz.region_box(10, 10, 16, 4)


def test_region_png_outlines_the_patch(tmp_path):
    path = tmp_path / "white.png"
    Image.new("RGB", (64, 64), (255, 255, 255)).save(path)
    img = np.asarray(Image.open(BytesIO(viz.region_png(path, 5, 4, size=64))))
    assert tuple(img[16, 20]) == (230, 30, 30)  # top edge of patch 5 = row 1, column 1
    assert tuple(img[40, 40]) == (255, 255, 255)


def test_decision_evidence_lines():
    item = pd.Series({"m.best_region": 5, "m.top_negative": 1})
    lines = viz.decision_evidence(item, "m", {"local_grid": 4, "neglabel": {"words": ["ant", "bolt"]}})
    assert "patch 5, row 2 and column 2 of the 4 × 4 grid" in lines[0] and "*bolt*" in lines[1]
    assert viz.decision_evidence(item, "other", {"local_grid": 4}) == []
    assert viz.decision_evidence(item, "m", {}) == []


def test_images_page_shows_a_region_only_for_the_local_scores(monkeypatch, tmp_path):
    from negprompt import explain as E

    root = tmp_path / "runs"
    run_dir = synthetic_run(root / "ev", seed=2, n_id=12, ood_sets={"far": 6}, image_dir=tmp_path / "img")
    scores = pd.read_parquet(run_dir / "scores.parquet")
    scores["coop.best_region"] = np.arange(len(scores)) % 16
    scores["coop/l_mcm"] = 0.5 + 0.01 * np.arange(len(scores))
    scores["coop/gl_mcm"] = scores["coop/mcm"] + scores["coop/l_mcm"]
    scores.to_parquet(run_dir / "scores.parquet", index=False)
    metrics = pd.read_csv(run_dir / "metrics.csv")  # every score column has its metrics rows
    coop = metrics[(metrics["method"] == "coop") & (metrics["score"] == "mcm")]
    extra = [coop.assign(score=name) for name in ("l_mcm", "gl_mcm")]
    pd.concat([metrics, *extra], ignore_index=True).to_csv(run_dir / "metrics.csv", index=False)
    config = json.loads((run_dir / "config.json").read_text())
    config.setdefault("experiment", {}).update(local_grid=4)
    (run_dir / "config.json").write_text(json.dumps(config))
    row = 3
    at = app(monkeypatch, root, "images")
    at.selectbox(key="w_score").set_value("coop/mcm").run()
    row_input = next(n for n in at.number_input if n.label == "Row")
    row_input.set_value(row).run()
    at.button(key="open_row").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("deciding local region" in str(i.proto) for i in at.image)  # MCM has no region

    at.selectbox(key="w_score").set_value("coop/gl_mcm").run()
    at.button(key="open_row").click().run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert f"region {row % 16} adds λ · {scores['coop/l_mcm'].iat[row]:.3g}" in text
    assert any(f"the deciding local region p* = {row % 16} of gl_mcm" in str(i.proto) for i in at.image)
    assert any(E.SCORE_HELP["gl_mcm"] in c.value for c in at.caption)  # the score's one-line help
