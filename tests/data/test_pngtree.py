"""PNG trees shared by two processes: one writes, the other waits and reads the finished folder."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np

from negprompt.data.pngtree import ensure_png_tree, tree_is_complete
from tests.conftest import run_together


def _build(folder, log, results, barrier) -> None:
    def items():
        with open(log, "a") as f:
            f.write("called\n")
        for i in range(4):
            time.sleep(0.1)  # long enough that the other process asks while this one writes
            yield f"a/{i}.png", np.full((4, 4, 3), i, np.uint8)

    barrier.wait()
    results.put(ensure_png_tree(folder, "key", items))


def test_two_processes_asking_for_the_same_tree_write_it_once(tmp_path):
    results = mp.get_context("fork").Queue()
    assert run_together(_build, tmp_path / "tree", tmp_path / "log", results) == [0, 0]
    assert sorted(results.get(timeout=5) for _ in range(2)) == [False, True]
    assert (tmp_path / "log").read_text().count("called") == 1
    assert tree_is_complete(tmp_path / "tree", "key")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tree.tmp-")]


def test_a_tree_written_while_waiting_for_the_lock_is_reused(tmp_path, monkeypatch):
    """The check after the lock: the folder finished by the lock's holder is read, not rewritten."""
    from contextlib import contextmanager

    from negprompt.data import pngtree

    @contextmanager
    def lock_held_by_a_writer(path):
        items = [("x.png", np.zeros((2, 2, 3), np.uint8))]
        pngtree._write_tree(tmp_path / "tree", "key", lambda: iter(items), "another process")
        yield None

    monkeypatch.setattr(pngtree, "file_lock", lock_held_by_a_writer)
    called = []
    assert ensure_png_tree(tmp_path / "tree", "key", lambda: called.append(1) or iter([])) is False
    assert not called and tree_is_complete(tmp_path / "tree", "key")


def test_the_cheap_check_reads_the_manifest_and_the_full_one_every_file(tmp_path):
    from negprompt.data.pngtree import tree_is_written

    folder = tmp_path / "tree"
    assert not tree_is_written(folder, "key")
    ensure_png_tree(folder, "key", lambda: iter([("a.png", np.zeros((2, 2, 3), np.uint8))]))
    assert tree_is_written(folder, "key") and not tree_is_written(folder, "other key")
    (folder / "a.png").write_bytes(b"damaged")
    assert tree_is_written(folder, "key") and not tree_is_complete(
        folder, "key"
    )  # only the full check sees it
    for text in ("not JSON", '["a list"]'):
        (folder / "MANIFEST.json").write_text(text)
        assert not tree_is_written(folder, "key") and not tree_is_complete(folder, "key")
