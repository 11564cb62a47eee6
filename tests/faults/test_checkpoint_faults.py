"""A damaged checkpoint is never resumed: its checksum is verified first, and the message names the
file and how to start the stage again."""

from __future__ import annotations

import pytest
import torch

from negprompt.train.checkpoint import HEADER, ResumeError, load_checkpoint, save_checkpoint


def _state() -> dict:
    return {"epoch": 3, "pos_ctx": torch.arange(64, dtype=torch.float32).reshape(4, 16)}


def test_a_flipped_bit_in_a_checkpoint_is_refused_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "stage1", _state())
    data = bytearray(path.read_bytes())
    assert data.startswith(HEADER)
    at = len(data) - 40  # inside the payload (the tensor data)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ResumeError) as err:
        load_checkpoint(tmp_path / "stage1")
    message = str(err.value)
    assert str(path) in message and "SHA-256 does not match" in message
    assert f"delete {path}" in message and "run the same command again" in message
    assert path.read_bytes() == bytes(data)  # the damaged file is left as it was, for inspection


def test_an_intact_checkpoint_loads_and_an_old_one_without_checksum_too(tmp_path):
    path = save_checkpoint(tmp_path / "a", _state())
    state = load_checkpoint(tmp_path / "a")
    assert state["epoch"] == 3 and torch.equal(state["pos_ctx"], _state()["pos_ctx"])
    old = tmp_path / "old" / "checkpoint.pt"
    old.parent.mkdir()
    old.write_bytes(path.read_bytes().partition(b"\n")[2])  # the payload alone: the earlier format
    assert load_checkpoint(tmp_path / "old")["epoch"] == 3


def test_a_cut_checkpoint_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c", _state())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ResumeError, match="does not match"):
        load_checkpoint(tmp_path / "c")
