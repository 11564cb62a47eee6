"""The dashboard as a user meets it: readable tokens, grammar, and a usable page while UMAP warms up."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from negprompt import viz
from negprompt.synthetic import synthetic_run
from negprompt.viz.embedding import context_token_table, readable_token

APP = Path(__file__).resolve().parents[2] / "app" / "app.py"


def test_byte_level_bpe_tokens_are_decoded_to_readable_text():
    assert readable_token("ðŁĺį</w>") == "😍"
    assert readable_token("cat</w>") == "cat"
    assert readable_token("caf\u00c3\u00a9</w>") == "café"
    assert readable_token("ĠNew") == " New"
    tokens = {"m": {"positive": [[{"token": "ðŁĺį</w>", "similarity": 0.5}]], "negative": []}}
    assert context_token_table(tokens, "m")["nearest tokens"].iloc[0] == "😍 (0.50)"


@pytest.fixture
def root(tmp_path) -> Path:
    base = tmp_path / "ux"
    run_dir = synthetic_run(base / "runs" / "r", seed=5, n_id=12, ood_sets={"far": 6}, image_dir=base / "img")
    with np.load(run_dir / "text_features.npz") as npz:  # coop without negative prompts: one prompt
        texts = {k: npz[k] for k in npz.files if k != "coop.neg"}
    np.savez(run_dir / "text_features.npz", **texts)
    return base / "runs"


def test_a_single_prompt_is_not_called_prompts(monkeypatch, root):
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("app_pages/embeddings.py").run()
    at.radio[0].set_value("PCA").run()
    at.selectbox(key="w_method").set_value("coop").run()
    assert not at.exception
    (chart,) = at.get("plotly_chart")
    title = json.loads(chart.proto.spec)["layout"]["title"]["text"]
    assert title.endswith("× 1 prompt") and "classes" in title


def test_the_map_page_stays_usable_while_umap_warms_up(monkeypatch, root):
    release = threading.Event()

    def slow_warmup() -> float:
        release.wait(timeout=120)
        return 0.0

    monkeypatch.setattr(viz, "warm_umap", slow_warmup)
    st.cache_resource.clear()  # a fresh server: the warm-up starts again
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(root))
    try:
        at = AppTest.from_file(str(APP), default_timeout=120).run()
        at.switch_page("app_pages/embeddings.py").run()
        assert not at.exception
        assert any("still being compiled" in i.value for i in at.info)
        assert any(c.value.startswith("PCA of") for c in at.caption)  # a map at once, meanwhile
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "umap-warmup":
                thread.join(timeout=30)
    at.button(key="umap_again").click().run()
    assert not any("still being compiled" in i.value for i in at.info)
    assert any(c.value.startswith("UMAP of") for c in at.caption)
    st.cache_resource.clear()
    shutil.rmtree(root, ignore_errors=True)
