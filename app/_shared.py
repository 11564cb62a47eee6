"""What every page of the dashboard shares: the runs folder, cached loading, pickers and the threshold.

Selections (run, score, threshold) are shared by all pages through ``st.session_state``. Streamlit
gives a widget on another page a new identity and drops a widget's state when it is not shown, so
each shared widget's state is set before the widget is drawn (from the widget's last value, else
from a plain dict in the session state, ``SHARED``) and its value is written back to that dict.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from negprompt import viz
from negprompt.defaults import DEMO_DATA_ROOT
from negprompt.rundir import Run, RunDirError, find_runs, load_run

RUNS_DIR_ENV = "NEGPROMPT_RUNS_DIR"
IMAGE_DIRS_ENV = "NEGPROMPT_IMAGE_DIRS"
SHARED = "negprompt_shared"
RANDOM_WEIGHTS_TEXT = (
    "Random weights: this run used a model with random weights, so every number and picture "
    "here is meaningless as a result."
)


shared_timing: dict[str, Any] = {}
"""Timings of background work (seconds), for the pages to report."""


# --------------------------------------------------------------------------- background work


@st.cache_resource(show_spinner=False)
def warm_umap_in_background() -> threading.Thread:
    """Compile umap-learn's numba code once per server in a background thread.

    The first UMAP in a process otherwise waits for the compilation (about 10 s on 2 CPU cores);
    the time it took is stored in ``shared_timing["umap_warmup_s"]``.
    """

    def work() -> None:
        try:
            shared_timing["umap_warmup_s"] = viz.warm_umap()
        except Exception as err:  # warming is an optimisation only
            shared_timing["umap_warmup_error"] = repr(err)

    thread = threading.Thread(target=work, name="umap-warmup", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- the page frame


@contextmanager
def page_frame():
    """Run one page: any error it raises is shown as a message, never as an exception.

    A damaged run (`RunDirError`) shows its file and rule; any other error shows its type and text
    and goes to the server's log with its traceback. What the page drew before the error stays, and
    the other runs and pages stay usable. Streamlit's own stop and rerun signals pass through.
    """
    try:
        yield
    except RunDirError as err:
        st.error(f"This run is damaged: {err}", icon=":material/report:")
    except Exception as err:  # a last resort: the page stops with a message, the server goes on
        logging.getLogger("negprompt.app").exception("page failed")
        st.error(
            f"This page stopped on an unexpected error ({type(err).__name__}: {err}). The run shown may be "
            "damaged; pick another run or page.",
            icon=":material/error:",
        )


# --------------------------------------------------------------------------- shared state


def shared() -> dict[str, Any]:
    """The dict of selections shared by all pages (lives in the session state)."""
    return st.session_state.setdefault(SHARED, {})


def seed_widget(name: str, default: Any, valid=None) -> str:
    """Key of the widget showing the shared value ``name``, seeded from it (or ``default``).

    The widget's state is re-assigned on every run: Streamlit gives a widget on another page a
    new identity, and the value set here carries the selection over to it.
    """
    key = f"w_{name}"
    value = st.session_state.get(key, shared().get(name, default))
    if valid is not None and not valid(value):
        value = default
    st.session_state[key] = value
    return key


def remember(name: str, value: Any) -> Any:
    """Store a shared value for the other pages; returns it."""
    shared()[name] = value
    return value


# --------------------------------------------------------------------------- runs


def _arg_values(name: str) -> list[str]:
    """Every value of ``--<name> VALUE`` / ``--<name>=VALUE`` after ``streamlit run app.py --``."""
    args, found = sys.argv[1:], []
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith(f"--{name}="):
            found.append(arg.split("=", 1)[1])
    return found


def default_runs_dir() -> str:
    """``--runs-dir`` after ``streamlit run app.py --``, else $NEGPROMPT_RUNS_DIR, else ``runs``."""
    given = _arg_values("runs-dir")
    return given[-1] if given else os.environ.get(RUNS_DIR_ENV) or "runs"


def image_folders() -> tuple[str, ...]:
    """The folders the dashboard serves images from; nothing outside them is ever shown.

    The runs folder it was started with (not one typed in the sidebar), the project's data cache
    (``~/.cache/negprompt/data``), and the folders given by ``--images`` (``negprompt app
    --images``) or ``$NEGPROMPT_IMAGE_DIRS`` (separated by ``os.pathsep``). A run's own
    ``config.data.roots`` narrow this further but can never widen it.
    """
    env = [p for p in os.environ.get(IMAGE_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    folders = [default_runs_dir(), DEMO_DATA_ROOT, *_arg_values("images"), *env]
    return tuple(dict.fromkeys(os.path.realpath(os.path.expanduser(f)) for f in folders))


def runs_dir() -> Path:
    """The runs folder, editable in the sidebar (shared by the pages)."""
    key = seed_widget("runs_dir", default_runs_dir())
    text = st.sidebar.text_input("Runs folder", key=key, help="folder searched for run directories")
    remember("runs_dir", text)
    warm_umap_in_background()
    return Path(os.path.expanduser(text.strip() or "runs")).absolute()


@st.cache_data(ttl=5, show_spinner=False)
def list_runs(root: str) -> list[str]:
    """Run directories under ``root``, newest first (re-scanned every few seconds)."""
    return [str(p) for p in find_runs(root)]


def _mtime(path: str) -> float:
    try:
        return (Path(path) / "config.json").stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner="Opening the run…", max_entries=16)
def _open_run(path: str, mtime: float) -> Run:
    return load_run(path)


def open_run(path: str) -> Run:
    """The run at ``path`` (cached); raises `RunDirError` when it is missing or damaged.

    Every error while opening (an unreadable folder, a damaged file of any kind) becomes a
    `RunDirError` naming it, so a page shows it for that run and stays usable for the others.
    """
    try:
        run = _open_run(path, _mtime(path))
        # Touch the parts every page needs so that damage shows up here, with its message.
        _ = run.scores, run.metrics
    except RunDirError:
        raise
    except Exception as err:
        raise RunDirError(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    return run


def run_label(path: str, root: Path) -> str:
    """A run's path relative to the runs folder, for pickers and tables."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def stop_without_runs(root: Path, paths: list[str]) -> None:
    """When ``root`` holds no run: say so and stop the page."""
    if not paths:
        st.info(
            f"No runs found under `{root}`. Write one with `negprompt demo` or `negprompt run …`, "
            "or type another runs folder in the sidebar."
        )
        st.stop()


def select_run(root: Path, label: str = "Run", *, name: str = "run", where=None) -> Run:
    """A run picker over the runs under ``root``; shows a message and stops the page when none is usable."""
    paths = list_runs(str(root))
    stop_without_runs(root, paths)
    key = seed_widget(name, paths[0], valid=lambda v: v in paths)
    where = where or st.sidebar
    path = where.selectbox(label, paths, key=key, format_func=lambda p: run_label(p, root))
    remember(name, path)
    try:
        return open_run(path)
    except RunDirError as err:
        st.error(f"Cannot read run `{run_label(path, root)}`: {err}")
        st.stop()


@contextmanager
def reported(what: str, stop: bool = True):
    """Show a damaged part of a run (`RunDirError`) as an error message (and stop the page there)."""
    try:
        yield
    except (RunDirError, OSError) as err:
        st.error(f"{what}: {err}")
        if stop:
            st.stop()


def weights_banner(run: Run) -> None:
    """On every view of a run: a red banner when its backbone had random weights; a warning when its
    weights carry one (bundled weights that miss their card's targets, `negprompt.bundled.shortfall`)."""
    warning = (run.config.get("backbone") or {}).get("warning") if isinstance(run.config, dict) else None
    warning = warning if isinstance(warning, str) and warning.strip() else None
    if run.random_weights:
        st.error(RANDOM_WEIGHTS_TEXT + (f" ({warning})" if warning else ""), icon=":material/warning:")
    elif warning:
        st.warning(f"**Weights below their targets**: {warning}", icon=":material/warning:")


def select_score(run: Run, *, name: str = "score", label: str = "Score", where=None) -> str:
    """A ``<method>/<score>`` column picker (default: negprompt/negprompt when present)."""
    columns = run.score_columns
    if not columns:
        st.error(f"Run {run.name} has no score columns in scores.parquet.")
        st.stop()
    default = "negprompt/negprompt" if "negprompt/negprompt" in columns else columns[0]
    key = seed_widget(name, default, valid=lambda v: v in columns)
    column = (where or st.sidebar).selectbox(label, columns, key=key, help=score_help_text(columns))
    return remember(name, column)


def score_help_text(columns: list[str]) -> str:
    """One line of help per score name among ``columns`` (``<method>/<score>``)."""
    from negprompt.explain import SCORE_HELP

    names = dict.fromkeys(c.split("/", 1)[-1] for c in columns)
    return "  \n".join(f"**{n}**: {SCORE_HELP.get(n, 'a score of the run')}" for n in names)


def split_scores(run: Run, column: str) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """``(id scores, {OOD set: scores}, ID set name)``; OOD sets listed in the config come first."""
    frame = run.scores
    is_id = (frame["split"] == "id").to_numpy()
    values = frame[column].to_numpy(dtype=np.float64)
    data = run.config.get("data") or {}
    names = list(dict.fromkeys([*(data.get("ood") or []), *frame.loc[~is_id, "dataset"]]))
    datasets = frame["dataset"].to_numpy()
    ood = {n: values[~is_id & (datasets == n)] for n in names}
    return values[is_id], ood, str(data.get("id") or "ID")


def per_set_note(run: Run, column: str, where=None) -> bool:
    """A caption when ``column`` is a method that streams each OOD set with the ID images (AdaNeg,
    TANL): its ID images have one score per stream, and the views show their mean. True if shown."""
    if "/" not in column:
        return False
    method, score = column.split("/", 1)
    if not any(c.startswith(f"{method}.{score}@") for c in run.scores.columns):
        return False
    (where or st).caption(
        f"{column} adapts on one test stream per OOD set, so an ID image has one score per stream: the ID "
        "scores shown here (and the 95%-TPR threshold) are each ID image's mean over the streams. The "
        "metrics and the leaderboard compare each OOD set with the ID scores of its own stream."
    )
    return True


def report_empty_sets(id_scores: np.ndarray, ood: dict[str, np.ndarray]) -> bool:
    """Messages for empty sets; returns False when nothing can be compared."""
    for name, values in ood.items():
        if not len(values):
            st.info(f"OOD set **{name}** has no images in this run; it is left out.")
    if not len(id_scores):
        st.error("This run has no ID images, so no threshold or OOD metric can be shown.")
        return False
    if not any(len(v) for v in ood.values()):
        st.info("This run has no OOD images; only the ID scores are shown.")
    return True


# --------------------------------------------------------------------------- threshold


class ScoredRun(NamedTuple):
    """What the score pages work on: the run, its score column, the scores split by set, the threshold."""

    run: Run
    column: str
    id_scores: np.ndarray
    ood: dict[str, np.ndarray]
    id_name: str
    threshold: float


def scored_run() -> ScoredRun:
    """The common top of the score pages: run and score pickers, the random-weights banner,
    messages for empty sets (the page stops when nothing can be compared) and the threshold slider."""
    run = select_run(runs_dir())
    weights_banner(run)
    column = select_score(run)
    id_scores, ood, id_name = split_scores(run, column)
    per_set_note(run, column)
    if not report_empty_sets(id_scores, ood):
        st.stop()
    return ScoredRun(run, column, id_scores, ood, id_name, threshold_slider(run, column))


@st.cache_data(show_spinner=False)
def tpr95_threshold(path: str, column: str) -> float:
    """The threshold keeping 95% of the ID images (the FPR95 threshold of negprompt.metrics)."""
    run = open_run(path)
    return viz.threshold_at_tpr(run.scores.loc[run.scores["split"] == "id", column].to_numpy())


def threshold_slider(run: Run, column: str, where=None) -> float:
    """The decision threshold of ``column`` (starts at the 95%-TPR threshold), shared by the pages."""
    values = run.scores[column].to_numpy(dtype=np.float64)
    low, high, step = viz.slider_range(values)
    start = float(np.clip(tpr95_threshold(str(run.path), column), low, high))
    thresholds = shared().setdefault("thresholds", {})
    name = f"{run.path}|{column}"
    key = "w_thr_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    # Re-assigned on every run: a widget of the same key on another page hands its value over.
    current = st.session_state.get(key, thresholds.get(name, start))
    st.session_state[key] = float(np.clip(current, low, high))
    digits = max(2, int(np.ceil(-np.log10(step))) + 1) if step > 0 else 4
    where = where or st
    value = where.slider(
        "Threshold (accept as ID when score ≥ threshold)",
        min_value=low,
        max_value=high,
        step=step,
        format=f"%.{digits}f",
        key=key,
        help=f"starts at the 95%-TPR threshold {start:.{digits}f}",
    )

    def reset() -> None:
        st.session_state[key] = start

    where.button("Reset to the 95%-TPR threshold", key=f"reset_{key}", on_click=reset)
    thresholds[name] = float(value)
    return float(value)


def as_table(frame: pd.DataFrame, where=None) -> None:
    """A DataFrame shown full width without its index, fractional numbers with 2 decimals."""
    formats = {
        c: st.column_config.NumberColumn(format="%.2f")
        for c in frame.columns
        if pd.api.types.is_float_dtype(frame[c])
    }
    (where or st).dataframe(frame, hide_index=True, width="stretch", column_config=formats)


def show_verdict(run: Run, where=None) -> None:
    """The run's verdict against the best training-free score: a warning when NegPrompt loses."""
    from negprompt.leaderboard import verdict

    where = where or st
    level = float((run.config.get("intervals") or {}).get("level", 0.95))
    text = verdict(run.metrics, level)
    show = where.warning if "LOSES" in text else where.success if " beats " in text else where.info
    show(text)


def show_checks(run: Run, where=None) -> None:
    """``checks.json``: the fired checks with their values and meaning, the quiet ones in one line."""
    where = where or st
    try:
        checks = run.checks
    except RunDirError as err:
        where.error(f"Checks cannot be shown: {err}")
        return
    if checks is None:
        where.caption("No checks: this run was written before checks.json existed.")
        return
    fired = [c for c in checks if c.fired]
    where.markdown(f"**Checks** — {len(fired)} of {len(checks)} fired")
    for c in fired:
        where.warning(f"**{c.title}** ({_check_value(c.value)}): {c.meaning}")
    quiet = ", ".join(f"{c.title} ({c.status})" for c in checks if not c.fired)
    if quiet:
        where.caption(f"Quiet: {quiet}.")


def _check_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return f"{len(value)} row(s)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def show_leaderboard(run: Run, where=None) -> None:
    """Every (method, score) row of the run, with intervals, for a chosen set and sort metric."""
    from negprompt.leaderboard import SORTABLE, has_intervals
    from negprompt.metrics import MEAN_CONVENTION

    where = where or st
    metrics = run.metrics
    datasets = list(dict.fromkeys(metrics["dataset"]))
    datasets = ["mean"] + [d for d in datasets if d != "mean"]
    left, right = where.columns(2)
    dataset = left.selectbox(
        "Set", datasets, key=f"board-set-{run.name}", help="mean = average of the per-set metrics"
    )
    labels = {m: viz.METRIC_LABELS[m].replace(" %", "") for m in SORTABLE}
    sort_by = right.selectbox(
        "Sort by", list(labels), format_func=labels.get, key=f"board-sort-{run.name}",
        help="FPR95 ascending, the others descending",
    )  # fmt: skip
    as_table(viz.leaderboard_table(metrics, dataset, sort_by), where)
    level = round(100 * float((run.config.get("intervals") or {}).get("level", 0.95)))
    note = (
        f"★ the best training-free row by mean FPR95. {MEAN_CONVENTION}. Intervals: {level}% percentile bootstrap over the test "
        "images (ID and each OOD set resampled separately). Δ = row − best training-free row, with the paired "
        "interval (both rows on the same resamples): it settles the comparison where it excludes 0."
    )
    if not has_intervals(metrics):
        note = "This run was written before intervals existed: no interval. " + note
    where.caption(note)
