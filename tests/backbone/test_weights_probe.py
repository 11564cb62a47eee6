"""The model-hub probe and the log filter of weight loading, without any network access.

The probe's socket is replaced: a test sees which host and timeout it was asked for, and whether
the offline setting stops it before any connection.
"""

from __future__ import annotations

import contextlib
import logging

import pytest

import negprompt.weights as weights
from negprompt.backbone import _DropOpenClipRandomInit


class _Socket:
    """Records every (host, timeout) the probe connects to; ``answer`` says whether the hub answers."""

    def __init__(self):
        self.seen, self.answer = [], True

    def create_connection(self, address, timeout=None):
        self.seen.append((address, timeout))
        if not self.answer:
            raise OSError("unreachable")
        return contextlib.nullcontext()


@pytest.fixture
def connections(monkeypatch):
    fake = _Socket()
    monkeypatch.setattr(weights.socket, "create_connection", fake.create_connection)
    return fake


@pytest.mark.parametrize("offline", [None, "0", "", "false", "False"])
def test_the_probe_connects_to_the_hub_with_its_timeout_when_online(monkeypatch, connections, offline):
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    assert weights.network_available(0.25) is True
    connections.answer = False
    assert weights.network_available() is False
    assert connections.seen == [(("huggingface.co", 443), 0.25), (("huggingface.co", 443), 3.0)]


@pytest.mark.parametrize("offline", ["1", "true", "yes"])
def test_offline_mode_answers_without_connecting(monkeypatch, connections, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    assert weights.network_available(5.0) is False
    assert connections.seen == []


def test_a_hub_model_without_network_is_refused_after_a_probe_with_the_given_timeout(monkeypatch):
    asked = []
    monkeypatch.setattr(weights, "network_available", lambda timeout: asked.append(timeout) or False)
    with pytest.raises(
        weights.WeightsError, match=r"^hf-hub:org/model cannot be fetched: the model hub cannot"
    ):
        weights.check_hub("hf-hub:org/model", 0.5)
    monkeypatch.setattr(weights, "network_available", lambda timeout: asked.append(timeout) or True)
    weights.check_hub("hf-hub:org/model", 0.75)
    assert asked == [0.5, 0.75]


def test_only_open_clips_random_init_line_is_dropped():
    def record(message):
        return logging.LogRecord("root", logging.WARNING, __file__, 1, message, None, None)

    drop = _DropOpenClipRandomInit()
    random_init = "No pretrained weights loaded for model 'ViT-B-16'. Model initialized randomly."
    assert drop.filter(record(random_init)) is False
    assert drop.filter(record("Loading pretrained ViT-B-16 weights (openai).")) is True
    assert drop.filter(record("no pretrained weights loaded is not open_clip's wording")) is True


def test_a_checkpoint_with_a_one_element_logit_scale_loads(tmp_path):
    import torch

    from negprompt.backbone import TINY_MODEL, load_backbone

    with pytest.warns(UserWarning):  # the random-weights warning
        source = load_backbone(TINY_MODEL, "none", seed=2).model
    state = {k: v.clone() for k, v in source.state_dict().items()}
    assert state["logit_scale"].ndim == 0
    state["logit_scale"] = torch.full((1,), 3.25)  # older checkpoints store it as [1]
    torch.save(state, tmp_path / "tiny.pt")
    loaded = load_backbone(TINY_MODEL, str(tmp_path / "tiny.pt")).model
    assert loaded.logit_scale.shape == () and float(loaded.logit_scale) == 3.25
    torch.testing.assert_close(loaded.text_projection, source.text_projection, rtol=0, atol=0)


def test_the_local_hub_cache_is_searched_for_the_safetensors_file_first(monkeypatch, tmp_path):
    import huggingface_hub

    present = tmp_path / "open_clip_model.safetensors"
    present.write_bytes(b"weights")
    asked = []

    def lookup(repo_id, filename, cache_dir):
        asked.append((repo_id, filename, cache_dir))
        if repo_id == "org/bin-only":
            return str(present) if filename == "open_clip_pytorch_model.bin" else None
        return str(present) if filename.endswith(".safetensors") and repo_id == "org/repo" else None

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lookup)
    assert weights._cached_file({"hf_hub": "org/repo/open_clip_pytorch_model.bin"}, "wd") == present
    assert asked == [("org/repo", "open_clip_pytorch_model.safetensors", "wd")]
    asked.clear()
    assert weights._cached_file({"hf_hub": "org/repo/"}, "wd") == present  # the repository's default names
    assert asked == [("org/repo", "open_clip_model.safetensors", "wd")]
    asked.clear()
    assert weights._cached_file({"hf_hub": "org/other/weights.bin"}, "wd") is None
    assert asked == [("org/other", "weights.safetensors", "wd"), ("org/other", "weights.bin", "wd")]
    asked.clear()
    assert weights._cached_file({"hf_hub": "org/bin-only/"}, "wd") == present  # the second default name
    assert [a[1] for a in asked] == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    asked.clear()
    local = tmp_path / "given.pt"
    local.write_bytes(b"w")
    assert weights._cached_file({"file": str(local), "hf_hub": "org/repo/"}, "wd") == local
    assert weights._cached_file({"file": str(tmp_path / "absent.pt")}, "wd") is None
    assert weights._cached_file({}, "wd") is None
    assert asked == []  # no hub repository: the hub cache is not even asked


def test_a_backbone_describes_itself_for_run_directories(tiny_backbone):
    described = tiny_backbone.describe()
    assert {k: v for k, v in described.items() if k != "warning"} == {
        "name": "negprompt-tiny",
        "pretrained": "none",
        "weights": "random",
        "random_weights": True,
        "precision": "fp32",
    }
    assert described["warning"].startswith("RANDOM WEIGHTS")
