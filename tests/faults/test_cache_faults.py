"""Fault injection on the feature cache: processes sharing it, damaged entries, a full disk."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from negprompt.data import image_folder
from negprompt.features import extract_features, load_cached
from tests.conftest import write_images


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    for k in range(3):
        write_images(root / f"class{k}", 12, seed=k)
    return image_folder(root)


def _worker(root: str, cache: str, marks: str, queue) -> None:
    """One process: load the tiny model, extract (counting the batches it encodes itself)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from negprompt.backbone import TINY_MODEL, load_backbone

    torch.manual_seed(0)
    backbone = load_backbone(TINY_MODEL, "none")
    real = type(backbone).encode_images

    def counted(self, x):
        with open(marks, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(self, x)

    type(backbone).encode_images = counted
    try:
        entry = extract_features(backbone, image_folder(root), cache_dir=cache, batch_size=2, progress=False)
        queue.put(("ok", np.asarray(entry.features).tobytes(), entry.path.name))
    except BaseException as err:  # reported to the test instead of a silent exit
        queue.put(("error", f"{type(err).__name__}: {err}", ""))


@pytest.mark.parametrize("n", [2, 4])
def test_processes_sharing_one_cache_all_succeed_with_one_copy(images, tmp_path, n):
    cache, marks = tmp_path / "cache", tmp_path / "marks.txt"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(images.root), str(cache), str(marks), queue)) for _ in range(n)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(r[0] == "ok" for r in results), [r[1] for r in results if r[0] != "ok"]
    assert len({r[1] for r in results}) == 1  # identical features everywhere
    assert len({r[2] for r in results}) == 1
    assert len(set(marks.read_text().split())) == 1  # one process computed, the others waited
    assert [p.name for p in cache.iterdir()] == [results[0][2]]  # nothing half-written left


def _damage(entry: Path, how: str) -> None:
    if how == "truncated features":
        data = (entry / "features.npy").read_bytes()
        (entry / "features.npy").write_bytes(data[: len(data) // 2])
    elif how == "flipped label byte":
        data = bytearray((entry / "labels.npy").read_bytes())
        data[-1] ^= 0x01
        (entry / "labels.npy").write_bytes(bytes(data))
    elif how == "edited paths":
        paths = json.loads((entry / "paths.json").read_text())
        (entry / "paths.json").write_text(json.dumps(paths[:-1]))
    elif how == "empty labels":
        (entry / "labels.npy").write_bytes(b"")
    elif how == "meta not json":
        (entry / "meta.json").write_text('{"key": ')


@pytest.mark.parametrize(
    "how", ["truncated features", "flipped label byte", "edited paths", "empty labels", "meta not json"]
)
def test_a_damaged_entry_is_named_moved_aside_and_computed_again(tiny_backbone, images, tmp_path, how):
    cache = tmp_path / "cache"
    first = extract_features(tiny_backbone, images, cache_dir=cache, batch_size=4, progress=False)
    expected = np.array(first.features)
    entry = first.path
    del first
    _damage(entry, how)
    from negprompt.features import CacheEntryError

    with pytest.raises(CacheEntryError, match=entry.name):
        load_cached(entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = extract_features(tiny_backbone, images, cache_dir=cache, batch_size=4, progress=False)
    assert any(entry.name in str(w.message) and "damaged" in str(w.message) for w in caught)
    np.testing.assert_array_equal(np.asarray(again.features), expected)
    assert len(again.labels) == len(images)
    assert any(p.name.startswith(f"{entry.name}.damaged-") for p in cache.iterdir())


def test_a_full_disk_is_an_oserror_before_the_memory_map_is_written(
    tiny_backbone, images, tmp_path, monkeypatch
):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError) as info:
        extract_features(tiny_backbone, images, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    assert info.value.errno == errno.ENOSPC and "features.npy" in str(info.value.filename)


def test_the_bad_image_message_names_no_setting_the_cli_lacks(tiny_backbone, tmp_path):
    root = tmp_path / "ood"
    write_images(root, 3)
    for i in range(3):
        (root / f"broken{i}.png").write_bytes(b"not a png")
    with pytest.raises(ValueError) as info:
        extract_features(
            tiny_backbone, image_folder(root, ood=True), cache_dir=tmp_path / "c", progress=False
        )
    assert "from Python" in str(info.value) and "broken0.png" in str(info.value)
