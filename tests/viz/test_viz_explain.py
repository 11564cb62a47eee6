"""The explanation of a run's row reproduces the score stored in the run, for every score column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from negprompt import explain as E
from negprompt import viz
from negprompt.rundir import load_run
from negprompt.synthetic import synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("explain")
    return load_run(synthetic_run(base / "run", seed=3, image_dir=base / "images"))


def test_every_score_column_is_reproduced_from_the_stored_features(run):
    names = run.config["data"]["class_names"]
    for column in run.score_columns:
        method = column.split("/")[0]
        pos, neg = run.text_features_of(method)
        for row in range(0, len(run.scores), 17):
            item = run.scores.iloc[row]
            exp = viz.explain_row(column, item, run.image_features[row], pos, neg, names, run.config)
            stored = float(item[column])
            # float16 features: the reproduction is as close as the stored features allow
            assert exp.score == pytest.approx(stored, rel=2e-3, abs=2e-3), (column, row)


def test_gl_mcm_from_stored_local_part(run):
    pos, _ = run.text_features_of("coop")
    f = np.asarray(run.image_features[0], dtype=np.float64)
    mcm = E.explain_mcm((pos / np.linalg.norm(pos, axis=1, keepdims=True)) @ (f / np.linalg.norm(f))).score
    item = pd.Series({"coop/l_mcm": 0.4, "coop.best_region": 5, "coop/gl_mcm": mcm + 0.4})
    exp = viz.explain_row("coop/gl_mcm", item, f, pos, None, run.config["data"]["class_names"], run.config)
    assert exp.score == pytest.approx(mcm + 0.4) and exp.region == 5
    with pytest.raises(ValueError, match="no coop/l_mcm column"):
        viz.explain_row(
            "coop/gl_mcm", pd.Series({}), f, pos, None, run.config["data"]["class_names"], run.config
        )


def test_figures_and_tables(run):
    pos, neg = run.text_features_of("negprompt")
    item = run.scores.iloc[0]
    exp = viz.explain_row(
        "negprompt/negprompt", item, run.image_features[0], pos, neg, list("abcdef"), run.config
    )
    fig = viz.decomposition_figure(exp, k=4)
    bars = [t for t in fig.data if t.name != "mass"]
    assert sum(len(t.y) for t in bars) == 4
    mass = next(t for t in fig.data if t.name == "mass")
    assert mass.x[0] == pytest.approx(exp.terms["positive mass P⁺"])
    table = viz.terms_table(exp)
    assert table["value"].iloc[-1] == pytest.approx(exp.score)
    ids = np.flatnonzero(run.scores["split"].to_numpy() == "id")
    near = viz.nearest_images(run.image_features, run.image_features[ids[3]], ids, k=3)
    assert near[0] == ids[3] and len(near) == 3
    assert viz.run_temperature({"experiment": {"settings": {"evaluation": {"temperature": 0.5}}}}) == 0.5
    assert viz.run_temperature({}) == 1.0
