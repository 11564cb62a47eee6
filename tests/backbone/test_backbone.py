import warnings

import pytest
import torch
from safetensors.torch import save_file

from negprompt import backbone as bb
from negprompt import weights as W
from negprompt.backbone import TINY_MODEL, WeightsError, load_backbone


def test_tiny_backbone_is_frozen_and_in_eval_mode(tiny_backbone):
    model = tiny_backbone.model
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert tiny_backbone.embed_dim == 64
    assert tiny_backbone.random_weights and tiny_backbone.weights == "random"
    x = torch.randn(3, 3, tiny_backbone.image_size, tiny_backbone.image_size)
    f = tiny_backbone.encode_images(x)
    assert f.shape == (3, 64)
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(3))


def test_random_weights_are_reproducible_per_seed():
    a, b, c = (load_backbone(TINY_MODEL, "none", seed=s).model.state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["text_projection"], c["text_projection"])


def test_unknown_model_suggests_the_closest_names_in_a_short_message():
    with pytest.raises(ValueError, match="did you mean.*ViT-B-16") as err:
        load_backbone("ViT-B-61", "none")
    assert len(str(err.value)) < 400 and "list_models" in str(err.value)
    with pytest.raises(ValueError, match=f"did you mean {TINY_MODEL}"):
        load_backbone(TINY_MODEL.replace("tiny", "tny"), "none")


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(WeightsError, match="laion2b_s34b_b88k"):
        load_backbone("ViT-B-16", "no_such_tag")


def test_missing_checkpoint_file_is_named():
    with pytest.raises(WeightsError, match="not found"):
        load_backbone(TINY_MODEL, "weights/missing.safetensors")


def test_bad_precision_lists_choices():
    with pytest.raises(ValueError, match="bf16"):
        load_backbone(TINY_MODEL, "none", precision="fp8")


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_local_checkpoint_round_trip(tmp_path, fmt):
    source = load_backbone(TINY_MODEL, "none", seed=1).model
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"tiny.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    loaded = load_backbone(TINY_MODEL, str(path))
    assert not loaded.random_weights and loaded.warning is None
    assert loaded.weights == str(path.resolve())
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


def test_checkpoint_of_another_architecture_names_the_mismatch(tmp_path):
    state = {k: v.contiguous() for k, v in load_backbone(TINY_MODEL, "none").model.state_dict().items()}
    state["text_projection"] = torch.zeros(64, 32)
    state.pop("ln_final.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "other.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as err:
        load_backbone(TINY_MODEL, str(path))
    msg = str(err.value)
    assert "text_projection" in msg and "(64, 32)" in msg
    assert "ln_final.weight" in msg and "extra.weight" in msg


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": _Evil()}}, path)
    with pytest.raises(WeightsError, match="safely"):
        load_backbone(TINY_MODEL, str(path))


def test_auto_without_weights_falls_back_fast_and_loudly(monkeypatch):
    asked = []
    monkeypatch.setattr(W, "network_available", lambda timeout=3.0: asked.append(timeout) or False)
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        b = load_backbone("ViT-B-32", "auto", network_timeout=0.5)
    assert asked == [0.5]  # one probe, bounded by the given timeout: no download is tried
    assert b.random_weights and "cannot be reached" in b.warning
    assert b.describe()["warning"] == b.warning


def test_auto_prefers_cached_weights(monkeypatch, tmp_path):
    # seed 7: not the weights load_backbone would make anyway, so the test sees whether they are loaded
    state = {
        k: v.contiguous() for k, v in load_backbone(TINY_MODEL, "none", seed=7).model.state_dict().items()
    }
    path = tmp_path / "cached.safetensors"
    save_file(state, str(path))
    monkeypatch.setattr(W, "available_tags", lambda name: ["sometag"])
    monkeypatch.setattr(bb.open_clip, "get_pretrained_cfg", lambda name, tag: {"hf_hub": "org/repo/"})
    monkeypatch.setattr(W, "_cached_file", lambda cfg, weights_dir: path)
    monkeypatch.setattr(W, "network_available", lambda timeout=3.0: pytest.fail("network must not be asked"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        b = load_backbone(TINY_MODEL, "auto")
    assert b.weights == "sometag" and not b.random_weights
    torch.testing.assert_close(b.model.state_dict()["text_projection"], state["text_projection"])


def test_network_probe_respects_offline_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(W.socket, "create_connection", lambda *a, **k: pytest.fail("must not connect"))
    assert W.network_available() is False


def test_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(W, "network_available", lambda timeout=3.0: False)
    with pytest.raises(WeightsError, match="hub cannot be reached"):
        load_backbone("ViT-B-16", "hf-hub:org/some-model")
