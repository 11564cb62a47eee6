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

import pytest

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
    older = synthetic_run(base / "runs" / "older", seed=1, image_dir=base / "images-older")
    config = json.loads((older / "config.json").read_text())
    config["created"] = "2000-01-01T00:00:00+00:00"  # listed after "demo", whatever the clock did
    (older / "config.json").write_text(json.dumps(config))
    add_new_methods(older, shift=0.1)
    add_new_methods(synthetic_run(base / "runs" / "demo", seed=0, image_dir=base / "images"))
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

    # The threshold explorer (notebook 05's figure): its own slider redraws its readout and tables.
    page.get_by_text("Which images flip as the threshold moves").click()
    explorer = page.locator(".js-plotly-plot", has=page.locator(".slider-container")).first
    explorer.wait_for()
    readout = "e => [...e.querySelectorAll('.gtitle, .table .cell-text')].map(t => t.textContent).join('|')"
    find = "[...document.querySelectorAll('.js-plotly-plot')].find(p => p.querySelector('.slider-container'))"
    page.wait_for_function(
        f"() => {{ const e = {find}; return e && ({readout})(e).includes('ID kept 95.0%'); }}"
    )
    before_explorer = explorer.evaluate(readout)
    rail = explorer.locator(".slider-rail-touch-rect").first
    box = rail.bounding_box()
    rail.click(position={"x": 0.1 * box["width"], "y": box["height"] / 2})
    page.wait_for_function(
        f"(old) => {{ const e = {find}; return e && ({readout})(e) !== old; }}", arg=before_explorer
    )
    after_explorer = explorer.evaluate(readout)
    assert (
        "images flip" in after_explorer
        and "ID kept 95.0%" not in after_explorer
        and "rejected" in after_explorer
    )

    # The per-image page, in the same session: the threshold is carried over.
    page.locator("[data-testid=stSidebarNavLink]", has_text="Per-image decisions").click()
    explain = page.get_by_role("button", name="Explain")
    explain.first.wait_for()
    expect(page.locator("[data-testid=stImage]")).to_have_count(24)  # one page of thumbnails
    expect(page.locator("[data-testid=stSliderThumbValue]").first).to_have_text(moved_to)
    explain.first.click()
    page.get_by_text("Image #", exact=False).first.wait_for()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1")
    chart = page.locator(".js-plotly-plot").first
    assert "positive prompts" in chart.inner_text() and "negative prompts" in chart.inner_text()
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
    page.close()
