"""The dashboard in a real Chromium: charts render, the threshold slider moves the counts, an image
opens, and the compare page shows every method.

Runs ``streamlit run`` headless on a free loopback port and drives the system Chromium
(``/usr/bin/chromium``) with Playwright. Screenshots go to ``tests/_artifacts/``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from negprompt.cli import main
from negprompt.commands.app import streamlit_command
from negprompt.synthetic import synthetic_run
from tests.app.test_app import NEW_ROWS, add_new_methods

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# True once the page shows the counts of the threshold the slider shows, and no run is pending.
SETTLED = """() => {
  if (document.querySelector('[data-testid=stStatusWidget]')) return false;
  const thumb = document.querySelector('[data-testid=stSliderThumbValue]');
  const counts = document.querySelector('.st-key-counts');
  const m = counts && counts.innerText.match(/At threshold ([-0-9.eE+]+):/);
  if (!thumb || !m) return false;
  const a = parseFloat(thumb.innerText), b = parseFloat(m[1]);
  return Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b));
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Streamlit server exited with code {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the Streamlit server did not answer within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A headless dashboard over two synthetic runs with every method's metrics (the newest, "demo",
    opens first); yields its base URL; stopped in teardown."""
    base = tmp_path_factory.mktemp("browser")
    # "older" holds the same images as "demo", scored differently: the compare page has disagreements
    older = synthetic_run(base / "runs" / "older", seed=0, image_dir=base / "images")
    scores = pd.read_parquet(older / "scores.parquet")
    rng = np.random.default_rng(5)
    for column in [c for c in scores.columns if "/" in c]:
        scores[column] += 0.05 * rng.normal(size=len(scores))
    scores.to_parquet(older / "scores.parquet")
    add_new_methods(older, shift=0.1)
    add_new_methods(synthetic_run(base / "runs" / "demo", seed=0, image_dir=base / "images"))
    # a run of the bundled mini CLIP, for the questions asked live (its model can be rebuilt)
    assert main(["demo", "--world", "v1", "--fast", "--no-app", "--no-progress", "--out", str(base / "runs" / "real"),
                 "--data-root", str(base / "data"), "--cache-dir", str(base / "cache")]) == 0  # fmt: skip
    for name, created in (("older", "2000-01-01"), ("real", "1999-01-01")):  # listed after "demo"
        config = json.loads((base / "runs" / name / "config.json").read_text())
        config["created"] = f"{created}T00:00:00+00:00"
        (base / "runs" / name / "config.json").write_text(json.dumps(config))
    port = _free_port()
    command = streamlit_command(
        base / "runs",
        "127.0.0.1",
        port,
        options={"server.fileWatcherType": "none", "server.runOnSave": "false"},
    )
    log = base / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NEGPROMPT_IMAGE_DIRS": str(base)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `apt-get install chromium` to run the browser tests"
        )
    from playwright.sync_api import sync_playwright  # imported here: the failure above comes first

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, f"{path} is not a real screenshot"
    return path


@pytest.mark.timeout(120)
def test_threshold_slider_and_image_explanation(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.set_default_timeout(30_000)
    outside = watch_requests(page)
    page.goto(f"{server}/scores")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=60_000)
    assert page.locator("[data-testid=stException]").count() == 0
    counts = page.locator(".st-key-counts")
    before = counts.inner_text()
    assert "ID accepted 57 of 60" in before  # 95% of the 60 ID images at the starting threshold
    _screenshot(page, "scores")

    slider = page.get_by_role("slider").first
    slider.focus()
    # One key press, one rerun (several quick presses make several reruns that may interleave).
    page.keyboard.press("PageUp")  # about a tenth of the range up
    page.wait_for_function(
        "(old) => { const e = document.querySelector('.st-key-counts'); return e && e.innerText !== old; }",
        arg=before,
    )
    page.wait_for_function(SETTLED)
    after = counts.inner_text()
    assert after != before and "ID accepted 57 of 60" not in after
    moved_to = page.locator("[data-testid=stSliderThumbValue]").first.inner_text()
    _screenshot(page, "scores-threshold-moved")

    # The images that flip follow the page's threshold (one threshold per page).
    page.get_by_text("Images decided differently than at the 95%-TPR threshold").click()
    page.locator(".st-key-flips [data-testid=stDataFrame]").wait_for()
    _screenshot(page, "scores-flips")

    # The per-image page, in the same session: the threshold is carried over.
    page.locator("[data-testid=stSidebarNavLink]", has_text="Per-image decisions").click()
    explain = page.get_by_role("button", name="Explain")
    explain.first.wait_for()
    page.get_by_text("image(s) match").first.wait_for()  # the gallery opens on the errors
    expect(page.locator("[data-testid=stSliderThumbValue]").first).to_have_text(moved_to)
    explain.first.click()
    page.get_by_text("Image #", exact=False).first.wait_for()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1")
    chart = page.get_by_role("dialog").locator(".js-plotly-plot").first
    chart.wait_for()
    assert "ALL positives" in chart.inner_text() and "ALL negatives" in chart.inner_text()
    expect(page.get_by_role("dialog").get_by_text("of the softmax mass over all prompts")).to_be_visible()
    assert page.locator("[data-testid=stException]").count() == 0
    expect(page.get_by_role("dialog")).to_be_visible()  # opened over the page, where the user looks
    _screenshot(page, "image-explanation")
    page.keyboard.press("Escape")  # the dialog closes; the page behind it is unchanged
    expect(page.get_by_role("dialog")).to_have_count(0)

    # The prompt map renders too.
    page.locator("[data-testid=stSidebarNavLink]", has_text="Prompt embeddings").click()
    page.get_by_text("Nearest vocabulary tokens").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot", has_text="negative 1").wait_for()
    _screenshot(page, "embeddings")

    # Every method of the two runs side by side, the newer ones included.
    page.locator("[data-testid=stSidebarNavLink]", has_text="Compare runs").click()
    page.get_by_text("Methods side by side").wait_for(timeout=60_000)
    bars = page.locator(".js-plotly-plot", has_text="LoCoOp + GL-MCM").first
    bars.wait_for(timeout=60_000)
    text = bars.inner_text()
    assert all(row in text for row in ("MCM (zero-shot)", "NegPrompt", *(r for r, _ in NEW_ROWS.values()))), (
        text
    )
    assert page.locator("[data-testid=stException]").count() == 0
    _screenshot(page, "compare")
    assert not outside, f"requests left the machine: {outside}"  # favicon and fonts are local
    page.close()


def watch_requests(page) -> list[str]:
    """Every request of ``page`` that leaves this machine (filled in as the page runs)."""
    outside: list[str] = []

    def check(request) -> None:
        url = request.url
        if not url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "http://localhost", "data:", "blob:")):
            outside.append(url)

    page.on("request", check)
    return outside


def _pick_run(page, name: str) -> None:
    """Choose run ``name`` in the sidebar's run picker."""
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").nth(0).click()
    page.get_by_role("option", name=name, exact=True).click()


@pytest.mark.timeout(240)
def test_click_a_map_point_and_open_a_disagreement(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(60_000)
    outside = watch_requests(page)
    page.goto(f"{server}/embeddings")
    page.get_by_text("Trustworthiness").wait_for()
    page.get_by_text("PCA", exact=True).click()  # instant; UMAP may still be compiling
    plot = page.locator(".js-plotly-plot", has_text="OOD: far").first
    plot.wait_for()
    page.wait_for_timeout(1500)  # the map settles after the rerun
    point = plot.locator(".scatterlayer .trace").nth(3).locator("path.point").first  # an image point
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Distance to the threshold")).to_be_visible()
    _screenshot(page, "map-click")
    page.keyboard.press("Escape")

    page.goto(f"{server}/compare")
    page.get_by_text("Where they disagree").wait_for()
    page.get_by_role("button", name="Both explanations").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Distance to the threshold")).to_have_count(2)  # A and B side by side
    assert page.locator("[data-testid=stException]").count() == 0
    _screenshot(page, "compare-disagreement")
    assert not outside, f"requests left the machine: {outside}"
    page.close()


@pytest.mark.timeout(300)
def test_upload_an_image_and_edit_a_class_name(server, browser, tmp_path):
    from PIL import Image, ImageDraw
    from playwright.sync_api import expect

    image = tmp_path / "mine.png"
    img = Image.new("RGB", (96, 96), (240, 240, 240))
    ImageDraw.Draw(img).rectangle((30, 10, 66, 86), fill=(40, 40, 40))
    img.save(image)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.set_default_timeout(120_000)
    outside = watch_requests(page)
    page.goto(f"{server}/ask")
    page.get_by_text("cannot answer live questions").wait_for()  # the synthetic run opens first: no model
    _pick_run(page, "real")
    page.get_by_text("Open vocabulary").wait_for()
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(image))
    table = page.locator(".st-key-own_scores")
    table.wait_for()
    expect(page.get_by_text("of the softmax mass over all prompts")).to_be_visible()
    _screenshot(page, "ask-upload")

    area = page.locator(".st-key-vocabulary textarea")
    text = area.input_value()
    first = text.splitlines()[0]
    area.fill(text.replace(first, f"{first} => tee", 1) + "\ncoat")
    area.press("Control+Enter")
    page.get_by_role("button", name="Rescore the run with these classes").click()
    page.get_by_text("kept in this browser session only").wait_for()
    expect(page.locator(".st-key-whatif_metrics")).to_contain_text("negprompt/negprompt")
    assert page.locator("[data-testid=stException]").count() == 0
    _screenshot(page, "ask-whatif")
    assert not outside, f"requests left the machine: {outside}"
    page.close()
