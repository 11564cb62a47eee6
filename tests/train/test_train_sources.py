"""Training-data sources: one rank's slice of an online batch, validation encoding, configs and errors."""

from __future__ import annotations

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
