"""Hostile run directories: each case is refused on read with the file and the rule, every page of
the dashboard shows the damage as a message (never an exception), the good run beside it stays
usable, and nothing in the run folder is written or lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from negprompt.rundir import RunDirError, load_run, resolve_image_path
from negprompt.rundir.files import LOG_TAIL, MAX_FEATURE_WIDTH
from negprompt.synthetic import synthetic_run

APP = Path(__file__).resolve().parents[2] / "app" / "app.py"
PAGES = ("runs", "scores", "embeddings", "images", "compare")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    return synthetic_run(base / "good", seed=2, n_id=12, ood_sets={"far": 6}, image_dir=base / "img")


def _edit_config(run: Path, edit) -> None:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


def _edit_scores(run: Path, edit) -> None:
    edit(pd.read_parquet(run / "scores.parquet")).to_parquet(run / "scores.parquet", index=False)


def _set(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[0], column] = value
    return frame


def _metrics_cell(run: Path, column: str, value: str) -> None:
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index(column)] = value
    lines[3] = ",".join(cells)
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")


def _sparse_npy(run: Path, shape: tuple[int, int]) -> None:
    with open(run / "image_features.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f2", "fortran_order": False, "shape": shape})
        fh.truncate(fh.tell() + shape[0] * shape[1] * 2)


def _texts(run: Path, edit) -> None:
    with np.load(run / "text_features.npz") as npz:
        texts = {k: npz[k] for k in npz.files}
    np.savez(run / "text_features.npz", **edit(texts))


def _rows(run: Path) -> int:
    return len(pd.read_parquet(run / "scores.parquet"))


CASES = {
    # case: (damage, file named, words of the rule in the message)
    "log is a FIFO": (lambda r: ((r / "log.txt").unlink(), os.mkfifo(r / "log.txt")), "log.txt", "FIFO"),
    "1 GB sparse features": (
        lambda r: _sparse_npy(r, (_rows(r), 571_139)),
        "image_features.npy",
        f"at most {MAX_FEATURE_WIDTH} wide",
    ),
    "class_names = 5": (
        lambda r: _edit_config(r, lambda c: c["data"].update(class_names=5)),
        "config.json",
        "must be a list of strings",
    ),
    "tokens of the wrong structure": (
        lambda r: (r / "context_tokens.json").write_text(json.dumps({"coop": {"positive": [["a"]]}})),
        "context_tokens.json",
        "'token': text",
    ),
    "NaN scores": (
        lambda r: _edit_scores(r, lambda f: _set(f, "coop/mcm", np.nan)),
        "scores.parquet",
        "NaN or infinite",
    ),
    "scores without split": (
        lambda r: _edit_scores(r, lambda f: f.drop(columns="split")),
        "scores.parquet",
        "lacks column(s) ['split']",
    ),
    "text score column": (
        lambda r: _edit_scores(r, lambda f: f.assign(**{"coop/mcm": "high"})),
        "scores.parquet",
        "must be numeric",
    ),
    "label = 99": (
        lambda r: _edit_scores(r, lambda f: _set(f, "label", 99)),
        "scores.parquet",
        "class index 99",
    ),
    "fpr95 = abc": (lambda r: _metrics_cell(r, "fpr95", "abc"), "metrics.csv", "fractions in [0, 1]"),
    "fpr95 = 7.5": (lambda r: _metrics_cell(r, "fpr95", "7.5"), "metrics.csv", "fractions in [0, 1]"),
    "auroc = -3": (lambda r: _metrics_cell(r, "auroc", "-3"), "metrics.csv", "fractions in [0, 1]"),
    "metrics rows removed": (
        lambda r: (r / "metrics.csv").write_text(
            "\n".join((r / "metrics.csv").read_text().splitlines()[:-12]) + "\n"
        ),
        "metrics.csv",
        "lacks 12 row(s)",
    ),
    "metrics row cut after fpr95": (
        lambda r: (r / "metrics.csv").write_text(
            (r / "metrics.csv").read_text().rstrip("\n").rsplit(",", 4)[0] + "\n"
        ),
        "metrics.csv",
        "fields, the header 8",
    ),
    "interval column out of range": (
        lambda r: (r / "metrics.csv").write_text(
            "\n".join(
                line + (",fpr95_low" if i == 0 else ",1.5")
                for i, line in enumerate((r / "metrics.csv").read_text().splitlines())
            )
            + "\n"
        ),
        "metrics.csv",
        "'fpr95_low' must hold fractions",
    ),
    "all-NaN image features": (
        lambda r: np.save(
            r / "image_features.npy", np.full(np.load(r / "image_features.npy").shape, np.nan, "f2")
        ),
        "image_features.npy",
        "NaN or infinite",
    ),
    "all-NaN text features": (
        lambda r: _texts(r, lambda t: {k: np.full_like(v, np.nan) for k, v in t.items()}),
        "text_features.npz",
        "NaN or infinite",
    ),
    "text features of another class count": (
        lambda r: _texts(r, lambda t: {k: v[:-1] for k, v in t.items()}),
        "text_features.npz",
        "5 classes, but the run has 6 class names",
    ),
    "text features of another width": (
        lambda r: _texts(r, lambda t: {k: v[..., :-1] for k, v in t.items()}),
        "image_features.npy",
        "share one width",
    ),
    "metrics.csv 100 MB sparse": (
        lambda r: open(r / "metrics.csv", "ab").truncate(100 << 20),
        "metrics.csv",
        "more than the 64 MiB",
    ),
}


def _read_all(run_dir: Path) -> None:
    run = load_run(run_dir)
    _ = run.scores, run.metrics, run.text_features, run.context_tokens, run.log, run.image_features


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry of a folder: kind, size and (for small regular files) a content hash."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        small = path.is_file() and not path.is_symlink() and st.st_size < (8 << 20)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if small else ""
        out[str(path.relative_to(folder))] = f"{st.st_mode:o} {st.st_size} {digest}"
    return out


def _damaged(good: Path, root: Path, case: str) -> Path:
    run_dir = Path(shutil.copytree(good, root / "bad"))
    _edit_config(
        run_dir, lambda c: c.update(created="2999-01-01T00:00:00+00:00")
    )  # listed (and picked) first
    CASES[case][0](run_dir)
    return run_dir


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_run_is_refused_naming_file_and_rule(good, tmp_path, case):
    _, name, words = CASES[case]
    run_dir = _damaged(good, tmp_path, case)
    before = _snapshot(run_dir)
    start = time.monotonic()
    with pytest.raises(RunDirError) as err:
        _read_all(run_dir)
    assert time.monotonic() - start < 30  # a FIFO never blocks
    assert name in str(err.value) and words in str(err.value), str(err.value)
    assert err.value.file is None or name in err.value.file
    assert _snapshot(run_dir) == before  # nothing written or lost


def test_a_huge_sparse_log_is_shown_from_its_tail(good, tmp_path):
    run_dir = Path(shutil.copytree(good, tmp_path / "run"))
    with open(run_dir / "log.txt", "ab") as fh:
        fh.truncate(64 << 20)
        fh.seek(0, os.SEEK_END)
        fh.write(b"first line of the tail\nthe last line\n")
    log = load_run(run_dir).log
    assert log.startswith("[… ") and "MiB left out" in log and log.endswith("the last line\n")
    assert len(log) <= LOG_TAIL + 200


def test_a_run_cannot_widen_the_folders_images_come_from(good, tmp_path):
    run_dir = Path(shutil.copytree(good, tmp_path / "runs" / "r"))
    _edit_config(run_dir, lambda c: c["data"].update(roots=["/"]))
    secret = tmp_path / "secret.png"
    shutil.copyfile(load_run(good).scores["path"].iloc[0], secret)
    assert resolve_image_path(run_dir, secret) == secret.resolve()  # the run's roots alone allow it
    with pytest.raises(RunDirError, match=r"outside the folders images are served from.*--images"):
        resolve_image_path(run_dir, secret, allowed=[tmp_path / "runs"])
    image = Path(load_run(good).scores["path"].iloc[0])
    assert resolve_image_path(run_dir, image, allowed=[image.parent]) == image.resolve()


READ_BY = {"log.txt": ("runs",), "context_tokens.json": ("embeddings",), "text_features.npz": ("embeddings",)}
"""Pages that read a part which is not checked when the run is opened (the rest show it on every page)."""


def _pages_reading(case: str) -> tuple[str, ...]:
    name = CASES[case][1]
    if name == "image_features.npy" and case != "1 GB sparse features":  # its header is checked on open
        return ("embeddings",)
    return READ_BY.get(name, PAGES)


def _messages(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


@pytest.mark.parametrize("case", list(CASES))
def test_every_page_shows_the_damage_and_stays_up(good, tmp_path, monkeypatch, case):
    _, name, _ = CASES[case]
    root = tmp_path / "runs"
    shutil.copytree(good, root / "good")
    run_dir = _damaged(good, root, case)
    before = _snapshot(root)
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        shown = _messages(at)
        if page in _pages_reading(case):  # the damaged run names its file where the file is read
            assert name in shown and "bad" in shown, (page, shown)
        assert "unexpected error" not in shown, (page, shown)  # found by the checks, not the safety net
    at.switch_page("app_pages/runs.py").run()
    at.selectbox(key="w_run").set_value(str(root / "good")).run()
    for page in PAGES[:-1]:  # the good run stays usable on every page
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception
        assert all("Random weights" in e.value or "bad" in e.value for e in at.error), (page, _messages(at))
    assert _snapshot(root) == before and run_dir.exists()


def test_the_page_frame_turns_any_error_into_a_message(monkeypatch):
    monkeypatch.syspath_prepend(str(APP.parent))
    import _shared

    script = """
import _shared as sh
import streamlit as st
with sh.page_frame():
    st.write("before")
    raise KeyError("boom")
"""
    at = AppTest.from_string(script, default_timeout=30)
    at.run()
    assert not at.exception
    assert "before" in at.markdown[0].value
    assert "unexpected error (KeyError: 'boom')" in at.error[0].value
    assert _shared.page_frame  # the frame app.py wraps every page in


def test_the_app_command_passes_allowed_image_folders_to_the_server(tmp_path, monkeypatch):
    from negprompt.commands.app import IMAGE_DIRS_ENV, app_environment

    monkeypatch.setenv(IMAGE_DIRS_ENV, "/already")
    env = app_environment(tmp_path / "runs", ["pics", tmp_path / "more"])
    assert env[IMAGE_DIRS_ENV].split(os.pathsep) == [
        "/already",
        str(Path("pics").absolute()),
        str(tmp_path / "more"),
    ]
    assert env["NEGPROMPT_RUNS_DIR"] == str(tmp_path / "runs")


def test_the_dashboard_allows_only_its_own_folders(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(APP.parent))
    import _shared

    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(
        "NEGPROMPT_IMAGE_DIRS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")])
    )
    monkeypatch.setattr("sys.argv", ["app.py", "--images", str(tmp_path / "c")])
    folders = _shared.image_folders()
    assert folders[0] == os.path.realpath(tmp_path / "runs")
    assert folders[1] == os.path.realpath(os.path.expanduser("~/.cache/negprompt/data"))
    assert set(folders[2:]) == {os.path.realpath(tmp_path / x) for x in "abc"}


def test_without_class_names_the_text_features_must_cover_the_labels(good, tmp_path):
    run_dir = Path(shutil.copytree(good, tmp_path / "run"))
    _edit_config(run_dir, lambda c: c["data"].pop("class_names"))
    _texts(run_dir, lambda t: {k: v[:3] for k, v in t.items()})  # 3 classes, labels go up to 5
    with pytest.raises(RunDirError, match=r"holds 3 classes, but the run has ID labels up to 5"):
        _ = load_run(run_dir).text_features
    _texts(run_dir, lambda t: {k: (v if k.startswith("coop") else v[:2]) for k, v in t.items()})
    with pytest.raises(RunDirError, match=r"different class counts \[2, 3\]"):
        _ = load_run(run_dir).text_features
