"""The tutorials in a live JupyterLab, driven in a real Chromium: Run All, save, reopen.

Starts JupyterLab on a free loopback port with a random token over a temporary copy of the
notebooks (the copies are saved with their outputs; the repository's stay clean), and drives the
system Chromium (``/usr/bin/chromium``) with Playwright. For each notebook: Run All, wait until
every code cell has run and the kernel is idle, save, then check what only a browser shows: no
error output, every plotly figure drawn as a chart, no "Error displaying widget", and in 05 the
threshold explorer's slider redraws its panel. The notebook is then reopened on a fresh kernel and
checked again, the explorer included: it carries its own slider, so it needs no kernel. Screenshots
go to ``tests/_artifacts/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _screenshot
from tests.notebooks.test_notebooks import (
    EXPECTED,
    NOTEBOOK_DIR,
    PLOTLY,
    ROOT,
    SLIDER_FIGURES,
    machine_data_cache,
)

pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.slow]

RUN_TIMEOUT_S = 900
"""Hang guard for one Run All (1-2 minutes each on mini-world v2 on 2 idle cores; the first writes the
benchmark's pictures and compiles numba for UMAP, and 06 encodes WordNet's 79,403 words and CSP's
≈ 838,000 prompts once for the model: about 5 minutes on a fresh cache, 10 on a loaded machine)."""
WIDGET = "application/vnd.jupyter.widget-view+json"
# JupyterLab settings for a scriptable session: every cell in the DOM (no windowing), no news or
# update checks, the notebook's own kernel started without asking.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "autoStartDefaultKernel": True,
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# True once every code cell shows an execution count (not "[*]" or "[ ]") and the kernel is idle.
ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const idle = !status || !status.getAttribute('data-status') || status.getAttribute('data-status') === 'idle';
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.innerText)) && idle;
}"""
# Every plotly output drawn as a chart (an SVG with at least one trace), as many as expected.
CHARTS_DRAWN = """(n) => {
  const plots = [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')];
  return plots.length === n && plots.every(p => p.querySelector('svg.main-svg .trace'));
}"""


@dataclass
class Lab:
    url: str
    token: str
    work: Path

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        request.add_header("Authorization", f"token {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab over a copy of the notebooks, with its own home, caches and settings."""
    base = tmp_path_factory.mktemp("lab")
    work = base / "work"
    work.mkdir()
    for name in EXPECTED:
        shutil.copy(NOTEBOOK_DIR / f"{name}.ipynb", work)
    settings = base / "settings"
    for rel, values in SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    for sub in ("home", "cache", "ipython", "runtime"):
        (base / sub).mkdir()
    env = {
        **os.environ,
        "HOME": str(base / "home"),  # the benchmark's pictures go to ~/.cache/negprompt/data
        "NEGPROMPT_DATA": machine_data_cache(),  # npm's Twemoji, downloaded once per machine
        "NEGPROMPT_CACHE": str(base / "cache"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.news_url=", "--ServerApp.shutdown_no_activity_timeout=600", "--ServerApp.allow_root=True",
    ]  # fmt: skip
    log = base / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
    server = Lab(f"http://127.0.0.1:{port}", token, work)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{log.read_text()}")
            try:
                server.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 60 s:\n{log.read_text()}")
                time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `apt-get install chromium` to run the browser tests"
        )
    from playwright.sync_api import sync_playwright  # imported here: the failure above comes first

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(lab: Lab, chromium, name: str):
    """A fresh browser context with the notebook open and its kernel ready."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/workspaces/{name}/tree/{name}.ipynb?reset&token={lab.token}")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    page.wait_for_function(
        "() => /Idle/.test(document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')?.innerText || '')"
    )
    page.wait_for_function(
        "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        " return s && s.getAttribute('data-status') === 'idle'; }"
    )
    return context, page


def _saved(lab: Lab, name: str) -> nbformat.NotebookNode:
    return nbformat.read(lab.work / f"{name}.ipynb", as_version=4)


def _outputs(nb: nbformat.NotebookNode) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _check_page(page, n_charts: int, where: str) -> None:
    """No error output, every plotly figure a chart, no widget that fails to display."""
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert stderr.count() == 0, f"{where}: an error or stderr output: {stderr.first.inner_text()[:300]}"
    # A reopened plotly output first shows the PNG snapshot saved with it (jupyterlab-plotly) and
    # turns into the interactive chart when the pointer enters it: visit each one
    outputs = page.locator(".jp-Notebook .jp-RenderedPlotly")
    for i in range(outputs.count()):
        outputs.nth(i).scroll_into_view_if_needed()
        outputs.nth(i).hover()
    try:
        page.wait_for_function(CHARTS_DRAWN, arg=n_charts, timeout=30_000)
    except Exception:
        _screenshot(page, f"charts-{where.replace(' ', '-')}")
        found = page.evaluate(
            "() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')]"
            ".map(p => (p.getAttribute('data-mime-type') || '') + ' ' + p.className + ' ' + p.innerText.slice(0, 40))"
        )
        pytest.fail(f"{where}: {n_charts} plotly figures saved, drawn: {found}")
    broken = page.locator(".jp-CodeCell", has_text="Error displaying widget").all_inner_texts()
    assert not broken, f"{where}: a widget failed to display: {broken}"


# The text of the threshold explorer (readout, counts and flips tables: SVG text) and the current
# value of its slider.
EXPLORER_TEXT = """() => {
  const plot = [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')]
    .find(p => p.querySelector('.slider-container'));
  if (!plot) return null;
  const text = sel => [...plot.querySelectorAll(sel)].map(e => e.textContent).join(' | ');
  return {title: text('.gtitle'), tables: text('.table .cell-text'), value: text('.slider-group > .slider-label')};
}"""


def _move_slider(page, where: str) -> None:
    """Click on the explorer's slider rail, far from where it stands, and check that the readout,
    the counts and the flips redraw."""
    plot = page.locator(".jp-Notebook .js-plotly-plot", has=page.locator(".slider-container")).first
    plot.scroll_into_view_if_needed()
    before = page.evaluate(EXPLORER_TEXT)
    assert before and "95" in before["value"] and "threshold" in before["title"], f"{where}: {before}"
    rail = plot.locator(".slider-rail-touch-rect").first
    box = rail.bounding_box()
    assert box, f"{where}: the explorer's slider has no rail"
    rail.click(position={"x": 0.15 * box["width"], "y": box["height"] / 2})
    try:
        page.wait_for_function(
            f"(old) => {{ const now = ({EXPLORER_TEXT})(); return now && now.title !== old.title"
            " && now.tables !== old.tables && now.value !== old.value; }",
            arg=before,
            timeout=30_000,
        )
    except Exception:
        _screenshot(page, f"explorer-{where.replace(' ', '-')}")
        pytest.fail(
            f"{where}: the explorer did not redraw: before {before}, now {page.evaluate(EXPLORER_TEXT)}"
        )
    after = page.evaluate(EXPLORER_TEXT)
    assert "images flip" in after["title"] and "rejected" in after["tables"], f"{where}: {after}"


@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 120)
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_in_jupyterlab(lab, chromium, name):
    start = time.perf_counter()
    context, page = _open(lab, chromium, name)
    try:
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(ALL_RAN, timeout=RUN_TIMEOUT_S * 1000)
        except Exception:
            _screenshot(page, f"notebook-{name}-timeout")
            prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
            pytest.fail(f"{name}: Run All did not finish within {RUN_TIMEOUT_S} s; prompts {prompts}")
        ran = time.perf_counter() - start
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while not all(c.execution_count for c in _saved(lab, name).cells if c.cell_type == "code"):
            assert time.monotonic() < deadline, f"{name}: not saved within 30 s"
            time.sleep(0.5)
        saved = _saved(lab, name)
        outputs = _outputs(saved)
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, f"{name}: error output {errors[0].ename}: {errors[0].evalue}"
        stderr = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, f"{name}: output on stderr (shown in the error colour): {stderr[0][:300]}"
        n_charts = sum(PLOTLY in o.get("data", {}) for o in outputs)
        widgets = sum(WIDGET in o.get("data", {}) for o in outputs)
        assert n_charts >= 1
        assert widgets == 0, f"{name}: {widgets} widget outputs saved"
        _check_page(page, n_charts, f"{name} after Run All")
        sliders = SLIDER_FIGURES.get(name, 0)
        assert page.locator(".jp-Notebook .js-plotly-plot .slider-container").count() == sliders
        if sliders:
            _move_slider(page, f"{name} after Run All")
        _screenshot(page, f"notebook-{name}")
        session = [s for s in lab.api("GET", "/api/sessions") if s["path"].endswith(f"{name}.ipynb")]
    finally:
        context.close()
    for s in session:  # reopen on a fresh kernel: what a learner sees the next day
        lab.api("DELETE", f"/api/sessions/{s['id']}")
    context, page = _open(lab, chromium, name)
    try:
        _check_page(page, n_charts, f"{name} reopened")
        if sliders:
            _move_slider(page, f"{name} reopened")
        _screenshot(page, f"notebook-{name}-reopened")
    finally:
        context.close()
    print(f"{name}: Run All {ran:.0f} s, whole check {time.perf_counter() - start:.0f} s")
