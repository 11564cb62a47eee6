"""Fault injection on run directories and the dashboard: damaged, hostile and unreadable files.

Each test damages one thing the way a kill, a full disk or a hostile user would, and checks that
the reader names it (`RunDirError`) and that every dashboard page stays up, showing the damage.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from negprompt.rundir import RunDirError, find_runs, load_run
from negprompt.synthetic import synthetic_run

APP = Path(__file__).resolve().parents[2] / "app" / "app.py"
PAGES = (None, "scores", "embeddings", "images", "compare")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("good")
    return synthetic_run(base / "good", seed=1, n_id=12, ood_sets={"far": 6}, image_dir=base / "img")


def copy(good: Path, to: Path) -> Path:
    return Path(shutil.copytree(good, to, symlinks=True))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE = {
    # name: (how to damage the copied run, the file the error must name, is it found when opening)
    "empty image features": (lambda r: (r / "image_features.npy").write_bytes(b""), "image_features.npy"),
    "truncated image features": (lambda r: truncate(r / "image_features.npy", 0.3), "image_features.npy"),
    "empty text features": (lambda r: (r / "text_features.npz").write_bytes(b""), "text_features.npz"),
    "truncated text features": (lambda r: truncate(r / "text_features.npz"), "text_features.npz"),
    "truncated metrics": (lambda r: truncate(r / "metrics.csv", 0.7), "metrics.csv"),
    "empty scores": (lambda r: (r / "scores.parquet").write_bytes(b""), "scores.parquet"),
    "log to /etc/passwd": (lambda r: _relink(r / "log.txt", "/etc/passwd"), "log.txt"),
    "config outside": (lambda r: _relink(r / "config.json", r.parent.parent / "outside.json"), "config.json"),
    "tokens truncated": (lambda r: truncate(r / "context_tokens.json"), "context_tokens.json"),
}


def _relink(path: Path, target: str | Path) -> None:
    target = Path(target)
    if not target.exists():
        shutil.copyfile(path, target)
    path.unlink()
    path.symlink_to(target)


def _read_all(run_dir: Path) -> None:
    run = load_run(run_dir)
    _ = run.scores, run.metrics, run.text_features, run.context_tokens, run.log, run.image_features


@pytest.mark.parametrize("case", list(DAMAGE))
def test_every_damage_is_a_run_dir_error_naming_the_file(good, tmp_path, case):
    damage, name = DAMAGE[case]
    run_dir = copy(good, tmp_path / "runs" / "bad")
    damage(run_dir)
    with pytest.raises(RunDirError, match=name.replace(".", r"\.")):
        _read_all(run_dir)


def test_a_symlink_inside_the_run_is_followed(good, tmp_path):
    run_dir = copy(good, tmp_path / "run")
    (run_dir / "log.original").write_text("the log\n")
    (run_dir / "log.txt").unlink()
    (run_dir / "log.txt").symlink_to("log.original")
    assert load_run(run_dir).log == "the log\n"


def test_find_runs_skips_unreadable_folders(good, tmp_path, monkeypatch):
    copy(good, tmp_path / "root" / "ok")
    (tmp_path / "root" / "locked" / "deeper").mkdir(parents=True)
    real = Path.is_file

    def is_file(self):
        if "locked" in str(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    assert [p.name for p in find_runs(tmp_path / "root")] == ["ok"]


def test_find_runs_is_bounded_in_time_and_folders(tmp_path):
    for i in range(30):
        (tmp_path / f"d{i:02d}" / "x").mkdir(parents=True)
    assert find_runs(tmp_path, max_folders=5) == []
    assert find_runs(tmp_path, max_seconds=0.0) == []


# --------------------------------------------------------------------------- the dashboard


@pytest.fixture(scope="module")
def mixed_root(good, tmp_path_factory) -> Path:
    """Two good runs and one run for every kind of damage, in one runs folder."""
    root = tmp_path_factory.mktemp("mixed") / "runs"
    copy(good, root / "a-good")
    copy(good, root / "b-good")
    for case, (damage, _) in DAMAGE.items():
        damage(copy(good, root / case.replace(" ", "-").replace("/", "")))
    return root


def _app(monkeypatch, root: Path) -> AppTest:
    monkeypatch.setenv("NEGPROMPT_RUNS_DIR", str(root))
    monkeypatch.setenv("NEGPROMPT_IMAGE_DIRS", str(root.parent))  # the synthetic images lie beside the runs
    return AppTest.from_file(str(APP), default_timeout=120).run()


def _messages(at: AppTest) -> str:
    return "\n".join([e.value for e in at.error] + [i.value for i in at.info] + [w.value for w in at.warning])


def test_every_page_stays_up_over_a_mix_of_good_and_damaged_runs(monkeypatch, mixed_root):
    at = _app(monkeypatch, mixed_root)
    assert not at.exception, [e.value for e in at.exception]
    shown = _messages(at)
    for case, (_, name) in DAMAGE.items():
        folder = case.replace(" ", "-").replace("/", "")
        if "metrics" in case or "scores" in case or "config" in case or "image features" in case:
            assert folder in shown and name in shown, case  # found when the run is opened
    assert "/etc/passwd" not in "".join(c.value for c in at.code)
    paths = [str(p) for p in find_runs(mixed_root)]
    for path in paths:  # every run on every page: each shows its own damage, none raises
        at.switch_page("app_pages/runs.py").run()
        at.selectbox(key="w_run").set_value(path).run()
        for page in PAGES[1:]:
            at.switch_page(f"app_pages/{page}.py").run()
            assert not at.exception, (path, page, [e.value for e in at.exception])
            if "good" in path and page != "compare":
                assert all("Random weights" in e.value for e in at.error), (path, page, _messages(at))
    at.switch_page("app_pages/runs.py").run()
    at.selectbox(key="w_run").set_value(str(mixed_root / "log-to-etcpasswd")).run()
    assert "root:" not in "".join(c.value for c in at.code)
    assert "points outside" in _messages(at)


def bomb_png(path: Path, side: int = 20000) -> None:
    """A small PNG file whose header declares side² pixels (over PIL's limit): no pixel is written."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_images_over_pils_limit_show_a_placeholder(monkeypatch, tmp_path):
    base = tmp_path / "big"
    run_dir = synthetic_run(
        base / "runs" / "big", seed=2, n_id=6, ood_sets={"far": 3}, image_dir=base / "img"
    )
    bomb_png(Path(load_run(run_dir).scores["path"].iloc[0]))
    at = _app(monkeypatch, base / "runs")
    at.switch_page("app_pages/images.py").run()
    at.selectbox(key="w_kind").set_value("all").run()
    assert not at.exception, [e.value for e in at.exception]
    assert sum("image not shown" in c.value for c in at.caption) == 1
    at.button(key="open_0").click().run()
    assert not at.exception
    assert any("Image not shown" in w.value and "pixels" in w.value for w in at.warning)


def test_explain_opens_in_a_dialog_with_a_display_sized_image(monkeypatch, tmp_path):
    base = tmp_path / "large"
    run_dir = synthetic_run(base / "runs" / "r", seed=4, n_id=6, ood_sets={"far": 3}, image_dir=base / "img")
    first = Path(load_run(run_dir).scores["path"].iloc[0])
    Image.new("RGB", (3000, 2000), (10, 200, 30)).save(first)
    at = _app(monkeypatch, base / "runs")
    at.switch_page("app_pages/images.py").run()
    at.selectbox(key="w_kind").set_value("all").run()
    at.button(key="open_0").click().run()
    assert not at.exception
    assert any("Image #0" in h.value for h in at.subheader)
    monkeypatch.syspath_prepend(str(APP.parent))
    import _images  # the app's image helpers

    png, problem = _images.load_image(str(run_dir), str(first), _images.EXPLAIN_PX)
    assert problem is None and max(Image.open(io.BytesIO(png)).size) <= _images.EXPLAIN_PX
    at.selectbox(key="w_kind").set_value("fp").run()  # another rerun: the dialog does not reopen
    assert not any("Image #0" in h.value for h in at.subheader)


def test_compare_page_with_a_damaged_side(monkeypatch, mixed_root):
    at = _app(monkeypatch, mixed_root)
    at.switch_page("app_pages/compare.py").run()
    at.selectbox(key="w_compare_B").set_value(str(mixed_root / "empty-scores")).run()
    assert not at.exception
    assert any("scores.parquet" in e.value for e in at.error)


def test_truncated_metrics_are_never_shown_as_complete(good, tmp_path):
    run_dir = copy(good, tmp_path / "run")
    text = (run_dir / "metrics.csv").read_text()
    cut = text[: text.rindex("\n", 0, len(text) - 1) + 1]  # drop the last row whole: still valid
    (run_dir / "metrics.csv").write_text(cut + cut.splitlines()[1][:5])  # …and half a row
    with pytest.raises(RunDirError, match="truncated"):
        _ = load_run(run_dir).metrics
    (run_dir / "metrics.csv").write_text(cut)  # whole rows only, but one missing: named
    with pytest.raises(RunDirError, match=r"lacks 1 row\(s\).*negprompt/posi_nega/mean"):
        _ = load_run(run_dir).metrics
