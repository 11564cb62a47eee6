"""Training-data sources: one rank's slice of an online batch, validation encoding, configs and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import negprompt.train.sources as S
from negprompt.data.folders import image_folder
from negprompt.distributed import DistInfo
from negprompt.train import TrainConfig, make_config
from tests.conftest import write_images


@pytest.fixture
def images(tmp_path):
    for k, name in enumerate(["cat", "dog", "bird"]):
        write_images(tmp_path / "img" / name, 2, seed=k, size=40)
    return image_folder(tmp_path / "img")


def test_each_rank_augments_its_own_rows_of_the_batch(tiny_backbone, images, monkeypatch):
    source = S.OnlineSource(images, tiny_backbone, 3)
    idx = torch.tensor([5, 0, 3, 1, 4])
    whole = source.batch(idx, torch.Generator().manual_seed(4))
    monkeypatch.setattr(S, "all_gather_rows", lambda local: local)  # this rank's rows only
    for rank, rows in [(0, slice(0, 3)), (1, slice(3, 5))]:
        monkeypatch.setattr(S, "get_info", lambda rank=rank: DistInfo(rank=rank, world=2))
        mine = source.batch(idx, torch.Generator().manual_seed(4))
        torch.testing.assert_close(mine, whole[rows], atol=1e-6, rtol=0)
    monkeypatch.setattr(S, "get_info", lambda: DistInfo(rank=3, world=4))  # more ranks than rows
    empty = source.batch(idx[:2], torch.Generator().manual_seed(4))
    assert empty.shape == (0, tiny_backbone.embed_dim) and empty.device == tiny_backbone.device


def test_validation_encoding_in_small_batches_equals_one_batch(tiny_backbone, images):
    one = S.encode_image_set(tiny_backbone, images)
    small = S.encode_image_set(tiny_backbone, images, batch_size=4)
    assert one.shape == (6, tiny_backbone.embed_dim)
    torch.testing.assert_close(small, one, atol=1e-6, rtol=0)


def test_source_errors_say_what_to_do(tiny_backbone, images, tmp_path):
    with pytest.raises(ValueError, match=r"^mode='online-augment' needs an image set with \.abspath"):
        S.OnlineSource(torch.zeros(3, 64), tiny_backbone, 3)
    (tmp_path / "img" / "cat" / "broken.png").write_bytes(b"no image")
    broken = image_folder(tmp_path / "img")
    with pytest.raises(OSError, match=r"^cannot read training image .*broken\.png"):
        S.encode_image_set(tiny_backbone, broken)


def test_config_defaults_and_unknown_fields():
    assert make_config() == make_config("negprompt") == TrainConfig()
    with pytest.raises(ValueError, match=r"^unknown TrainConfig field\(s\) \['lrr'\]; valid: \[.*'lr'"):
        TrainConfig.from_dict({"lrr": 0.1})
    assert TrainConfig.from_dict(TrainConfig(lr=0.3).to_dict()) == TrainConfig(lr=0.3)


def test_feature_and_label_inputs_are_normalised_exactly():
    """Every accepted input form gives the same float32 [V, N, D] / int64 [N] tensors; bad ones are named."""
    from types import SimpleNamespace

    from negprompt.train.sources import as_labels, as_views

    cpu = torch.device("cpu")
    rows = np.arange(12, dtype=np.float64).reshape(3, 4) / 7  # float64: converted, not kept
    expected = torch.tensor(rows, dtype=torch.float32)[None]
    for given in (
        rows,
        torch.tensor(rows),
        SimpleNamespace(features=rows),
        [rows],
        [SimpleNamespace(features=rows)],
    ):
        got = as_views(given, cpu)
        assert got.dtype == torch.float32 and got.device == cpu and torch.equal(got, expected)
    two = as_views([rows, rows + 1], cpu)
    assert two.shape == (2, 3, 4) and torch.equal(two[1], torch.tensor(rows + 1, dtype=torch.float32))
    assert torch.equal(as_views(np.stack([rows, rows]), cpu), torch.cat([expected, expected]))
    with pytest.raises(ValueError, match=r"^the list of feature views is empty$"):
        as_views([], cpu)
    with pytest.raises(
        ValueError, match=r"^feature views differ in shape: \[\(2, 4\), \(3, 4\)\]; every view"
    ):
        as_views([rows, rows[:2]], cpu)
    with pytest.raises(ValueError, match=r"^features must be \[N, D\] or \[V, N, D\], got shape \(4,\)$"):
        as_views(rows[0], cpu)

    for given in (
        [2, 0, 1],
        np.array([2, 0, 1], dtype=np.int32),
        torch.tensor([2, 0, 1]),
        SimpleNamespace(labels=[2, 0, 1]),
    ):
        got = as_labels(given, 3, 3)
        assert got.dtype == torch.int64 and got.tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"^val labels have shape \(2,\) but there are 3 feature rows$"):
        as_labels([0, 1], 3, 3, what="val labels")
    with pytest.raises(ValueError, match=r"^labels must lie in 0\.\.1 \(2 class names\); found 0\.\.2$"):
        as_labels([0, 1, 2], 3, 2)
    assert as_labels([], 0, 2).shape == (0,)
