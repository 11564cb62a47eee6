"""The tutorial notebooks: stored clean, prose before every code cell, public API only, and they run.

The static checks read the stored ``.ipynb`` files. The ``notebook`` tests execute each notebook top
to bottom with the venv's own Python (``python3`` kernel, checked inside the kernel) on the demo
data, offline, in a temporary working folder; the notebooks of one session share their data folder
and feature cache, as they do for a reader who runs them in order.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = (
    "01_quickstart",
    "02_closed_vocabulary",
    "03_open_vocabulary",
    "04_hard_ood",
    "05_inside_the_prompts",
    "06_methods_side_by_side",
)
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
SLIDER_FIGURES = {"05_inside_the_prompts": 1}
"""Figures that carry their own slider (the threshold explorer), per notebook."""
EXPECTED_TEXT = {
    "06_methods_side_by_side": (
        "MCM (zero-shot)", "GL-MCM (zero-shot)", "L-MCM (zero-shot)", "CoOp + MCM", "LoCoOp + MCM",
        "LoCoOp + GL-MCM", "NegPrompt", "NegLabel (zero-shot)", "CSP (zero-shot)",
        "AdaNeg (adapts on the test stream)", "AdaNeg + CoOp prompts (adapts on the test stream)",
        "TANL (adapts on the test stream)", "Local region",
        "Closest negative label",
    ),
}  # fmt: skip
"""Text each notebook's outputs must show: 06 compares every method and explains one image."""
CELL_TIMEOUT_S = 1800
"""A hang guard per cell, not a speed check: on 2 CPU cores a notebook takes 1-2 minutes on mini-world
v2 (the first one of a session also writes the benchmark's pictures, about 40 s; the first UMAP in a
kernel compiles numba code, which is much slower on a loaded machine; 06 encodes NegLabel's and CSP's
label banks once on a fresh cache, about 3 minutes idle, 10 on a loaded machine)."""

# `from negprompt.x import _y` (also inside a parenthesised or comma list) and `negprompt.x._y`
_PRIVATE_FROM = re.compile(r"^\s*from\s+negprompt[\w.]*\s+import\s+[^#\n]*?(?<![\w.])_\w", re.M)
_PRIVATE_ATTR = re.compile(r"\bnegprompt(?:\.\w+)*\._\w")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request) -> Path:
    return request.param


def test_the_tutorials_are_all_there():
    assert tuple(p.stem for p in NOTEBOOKS) == EXPECTED


def test_stored_without_outputs(notebook):
    nb = _read(notebook)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{notebook.name}: cells {dirty} carry outputs or execution counts; strip them"
    assert "widgets" not in nb.metadata, f"{notebook.name}: saved widget state in the metadata; strip it"


def test_prose_before_every_code_cell(notebook):
    cells = _read(notebook).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("# ")
    for i, cell in enumerate(cells):
        if cell.cell_type == "code":
            before = cells[i - 1] if i else None
            assert before is not None and before.cell_type == "markdown" and before.source.strip(), (
                f"{notebook.name}: code cell {i} is not preceded by a markdown cell"
            )
            assert cell.source.strip(), f"{notebook.name}: code cell {i} is empty"


def test_exactly_one_parameter_cell_that_switches_to_imagenet(notebook):
    cells = _read(notebook).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name}: {len(tagged)} cells tagged 'parameters', want exactly 1"
    source = tagged[0].source
    assert tagged[0].cell_type == "code"
    assert re.search(r'^EXPERIMENT = "demo"', source, re.M), "the notebook must default to the demo"
    for name in ("MODEL", "PRETRAINED", "DATA_ROOT", "DEVICE"):
        assert len(re.findall(rf"^\s*{name} = ", source, re.M)) == 2, f"{name}: one value per experiment"
    assert '"ViT-B-16"' in source and '"cuda"' in source
    assert re.search(r'^    MODEL = "negprompt-mini2"  #', source, re.M), (
        "the demo runs mini-world v2 on its bundled negprompt-mini2"
    )
    assert re.search(r'^    PRETRAINED = "auto"', source, re.M)


def test_prose_shows_angle_brackets_as_code(notebook):
    """Markdown renders a bare ``<class>`` as an (invisible) HTML tag; inside backticks it shows."""
    for i, cell in enumerate(_read(notebook).cells):
        if cell.cell_type == "markdown":
            bare = re.sub(r"`[^`]*`", "", cell.source)
            tags = re.findall(r"<[A-Za-z][^>]*>", bare)
            assert not tags, f"{notebook.name}: markdown cell {i} has {tags}; put them in backticks"


def test_public_api_only(notebook):
    for source in _code(_read(notebook)):
        assert not _PRIVATE_FROM.search(source), f"{notebook.name} imports a private name:\n{source}"
        assert not _PRIVATE_ATTR.search(source), f"{notebook.name} uses a private attribute:\n{source}"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("negprompt"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{notebook.name} imports private {private} from {node.module}"
            if isinstance(node, ast.Import):
                private = [a.name for a in node.names if a.name.startswith("negprompt") and "._" in a.name]
                assert not private, f"{notebook.name} imports private module {private}"
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                raise AssertionError(f"{notebook.name} uses private attribute .{node.attr}:\n{source}")


def test_the_private_name_check_catches_private_imports():
    bad = ["from negprompt.experiments.experiment import _default_cache_dir", "x = negprompt.rundir._unit(y)"]
    assert _PRIVATE_FROM.search(bad[0]) and _PRIVATE_ATTR.search(bad[1])
    good = "from negprompt.metrics import FPR_CONVENTION, fpr_at_tpr\nnegprompt.viz.roc_figure(a, b)"
    assert not _PRIVATE_FROM.search(good) and not _PRIVATE_ATTR.search(good)


def test_docs_list_every_notebook():
    text = (ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if p.name not in text]
    assert not missing, f"docs/notebooks.md does not list {missing}"


# --------------------------------------------------------------------------- execution


def machine_data_cache() -> str:
    """Where npm's Twemoji (mini-world v2's third artist) is kept on this machine: ``$NEGPROMPT_DATA``,
    else the real home's data cache. A notebook downloads it there once when missing, as it would for
    a reader; the benchmark's pictures are still written under the test's own home."""
    return os.environ.get("NEGPROMPT_DATA") or str(Path.home() / ".cache" / "negprompt" / "data")


@pytest.fixture(scope="session")
def notebook_env(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A working folder and kernel environment shared by the notebook runs of one session."""
    base = tmp_path_factory.mktemp("notebooks")
    for sub in ("home", "work", "cache", "ipython"):
        (base / sub).mkdir()
    env = {
        **os.environ,
        "HOME": str(base / "home"),  # the benchmark's pictures go to ~/.cache/negprompt/data
        "NEGPROMPT_DATA": machine_data_cache(),
        "NEGPROMPT_CACHE": str(base / "cache"),
        "IPYTHONDIR": str(base / "ipython"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # the kernel imports this checkout's package, whatever checkout the venv was installed from
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return base / "work", env


POLL_SLICE_S = 1.0
"""Longest single wait on a kernel channel (see `_poll_in_slices`)."""


def _poll_in_slices(channel) -> None:
    """Make ``channel.get_msg`` wait in short polls instead of one long one.

    With the asyncio zmq sockets of jupyter_client, a reply that arrives while another socket of
    the same client is being read can miss its wake-up: one long ``poll(timeout)`` then returns the
    message only when the timeout runs out (seen here as a notebook that sat idle for the whole
    cell timeout, with the kernel waiting for work). A poll that times out looks at the socket once
    more, so polling in slices of `POLL_SLICE_S` bounds such a stall to one slice.
    """
    from queue import Empty

    whole_wait = channel.get_msg

    async def get_msg(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await whole_wait(timeout=min(POLL_SLICE_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


def _client(nb: nbformat.NotebookNode, work: Path):
    """An nbclient NotebookClient whose shell and IOPub channels poll in slices."""
    from nbclient import NotebookClient

    class SlicedPollClient(NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            _poll_in_slices(kc.shell_channel)
            _poll_in_slices(kc.iopub_channel)
            return kc

    return SlicedPollClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(work)}},
    )


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    """How long an executed cell ran, from the timestamps nbclient records in its metadata."""
    from datetime import datetime

    stamps = cell.metadata.get("execution", {})
    began, ended = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
    if not (began and ended):
        return 0.0
    parse = datetime.fromisoformat
    return (parse(ended.replace("Z", "+00:00")) - parse(began.replace("Z", "+00:00"))).total_seconds()


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(3 * CELL_TIMEOUT_S)
def test_notebook_runs_top_to_bottom(notebook, notebook_env):
    from nbclient.exceptions import CellExecutionError

    work, env = notebook_env
    nb = _read(notebook)
    # the kernel must be this interpreter (the venv), not whatever `python` is first on PATH, and
    # import the package of this checkout
    check = (
        f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable\n"
        f"import negprompt\nassert negprompt.__file__.startswith({str(ROOT)!r}), negprompt.__file__"
    )
    nb.cells.insert(0, nbformat.v4.new_code_cell(check))
    client = _client(nb, work)
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        pytest.fail(f"{notebook.name} failed:\n{err}")
    executed = [c for c in nb.cells if c.cell_type == "code"]
    slowest = sorted(((_cell_seconds(c), i) for i, c in enumerate(executed)), reverse=True)[:3]
    where = ", ".join(f"cell {i}: {s:.1f} s" for s, i in slowest)
    print(f"{notebook.name}: {time.perf_counter() - start:.0f} s (slowest {where})")
    assert all(c.execution_count for c in executed), f"{notebook.name}: not every cell ran"
    _check_outputs_fit_a_notebook(notebook.name, executed)
    _check_sliders_change_the_panel(notebook.stem, executed)
    _check_expected_text(notebook.stem, executed)


MAX_OUTPUTS_PER_CELL = 20
"""JupyterLab folds a cell's outputs past 50 behind "Show more outputs"; a cell stays well below."""


def _check_outputs_fit_a_notebook(name: str, cells: list) -> None:
    """What a learner sees: no stderr (drawn in the error colour), no INFO log lines, no widget
    output (a widget needs the kernel that drew it: reopened, it shows "Error displaying widget"),
    and few outputs per cell (one progress bar per stage, not one per epoch)."""
    for i, cell in enumerate(cells):
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        stderr = [o.text for o in streams if o.name == "stderr"]
        assert not stderr, f"{name}: code cell {i} wrote to stderr: {stderr[0][:300]}"
        assert not any("INFO" in o.text for o in streams), f"{name}: code cell {i} prints INFO log lines"
        # nbclient keeps each stream message apart (JupyterLab merges them): count the others
        shown = len([o for o in cell.outputs if o.output_type != "stream"]) + min(len(streams), 1)
        assert shown <= MAX_OUTPUTS_PER_CELL, f"{name}: code cell {i} shows {shown} outputs"
        widgets = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert not widgets, f"{name}: code cell {i} shows {len(widgets)} widgets"


def _figures(cells: list) -> list[dict]:
    """The plotly figures of executed cells, as stored in the notebook."""
    return [o.data[PLOTLY] for c in cells for o in c.outputs if PLOTLY in o.get("data", {})]


def _check_sliders_change_the_panel(name: str, cells: list) -> None:
    """A figure with a slider (05's threshold explorer) carries every position: each step sets
    other tables and readout than the others, so moving the slider changes what is shown."""
    sliders = [f for f in _figures(cells) if f.get("layout", {}).get("sliders")]
    assert len(sliders) == SLIDER_FIGURES.get(name, 0), f"{name}: {len(sliders)} figures with a slider"
    for figure in sliders:
        steps = figure["layout"]["sliders"][0]["steps"]
        assert len(steps) > 10 and all(s["method"] == "update" for s in steps)
        shown = [json.dumps(s["args"][:2], sort_keys=True) for s in steps]
        counts = {json.dumps(s["args"][0]["cells.values"][0]) for s in steps}
        assert len(set(shown)) == len(steps), f"{name}: two slider positions show the same panel"
        assert len(counts) > 1, f"{name}: the accepted / rejected counts never change along the slider"


def _check_expected_text(name: str, cells: list) -> None:
    """What a notebook exists to show is in its outputs (e.g. each compared method's row)."""
    text = "\n".join(
        o.get("text", "")
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/markdown", ""))
        for c in cells
        for o in c.outputs
    )
    missing = [t for t in EXPECTED_TEXT.get(name, ()) if t not in text]
    assert not missing, f"{name}: its outputs never show {missing}"
