"""check_resumable and the checkpoint file on their own: absent keys, free keys, unsafe files, folders."""

from __future__ import annotations

import pytest
import torch

from negprompt.train import ResumeError, load_checkpoint
from negprompt.train.checkpoint import check_resumable, checkpoint_path, save_checkpoint

RUN = {
    "config": {"lr": 0.1, "device": "cpu"},
    "prompt_config": {"n_ctx": 4},
    "backbone_identity": {"model": "tiny"},
    "class_names": ["cat", "dog"],
}


def _check(state, **changes):
    check_resumable(state, "ckpt", **{**RUN, **changes})


def test_a_key_on_one_side_only_is_a_difference():
    _check(dict(RUN))  # the same run resumes
    with pytest.raises(ResumeError, match=r"config momentum: '<absent>' in the checkpoint, 0\.9 now"):
        _check(dict(RUN), config={**RUN["config"], "momentum": 0.9})
    with pytest.raises(ResumeError, match=r"prompt config n_ctx: 4 in the checkpoint, '<absent>' now"):
        _check(dict(RUN), prompt_config={})


def test_only_the_device_may_change_on_resume():
    _check(dict(RUN), config={**RUN["config"], "device": "cuda"})
    with pytest.raises(
        ResumeError,
        match=r"^cannot resume from .*ckpt.*config lr: 0\.1 in the checkpoint, 0\.2 now; class names: 2 classes in the checkpoint, 1 now\)\. Resume",
    ):
        _check(dict(RUN), config={**RUN["config"], "lr": 0.2}, class_names=["cat"])


class _Opaque:
    pass


def test_checkpoints_are_read_without_unpickling_objects(tmp_path):
    torch.save({"format": 1, "thing": _Opaque()}, checkpoint_path(tmp_path))
    with pytest.raises(ResumeError, match=r"^cannot read checkpoint .*checkpoint\.pt"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_goes_into_a_new_nested_folder(tmp_path):
    folder = tmp_path / "a" / "b"
    path = save_checkpoint(folder, {"epoch": 3})
    assert path == folder / "checkpoint.pt" and load_checkpoint(folder) == {"format": 1, "epoch": 3}
    assert [p.name for p in folder.iterdir()] == ["checkpoint.pt"]
