"""The shipped negprompt-mini2 weights (tag miniworld-v2): the card records the file and its numbers,
the file reproduces them, and weights below their targets say so in every run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from negprompt import bundled
from negprompt.backbone import available_tags, load_backbone
from negprompt.miniworld import pretrain as P
from negprompt.miniworld import pretrain_v2 as P2
from negprompt.miniworld import splits
from negprompt.miniworld.emoji import load_hierarchy
from negprompt.miniworld.lexicon import WordNet

MODEL, TAG = P2.MODEL_V2, "miniworld-v2"


def test_card_records_the_file_its_numbers_and_whether_the_targets_are_met():
    card = bundled.read_card(MODEL, TAG)
    path = bundled.weights_path(MODEL, TAG)
    assert path.stat().st_size == card["bytes"] <= 20_000_000
    assert card["model"] == MODEL and card["tag"] == TAG and set(card["v2"]) == {"val", "test"}
    test = card["v2"]["test"]
    met = all(test[k] >= v for k, v in card["v2_targets"].items())
    assert card["v2_targets_met"] is met
    assert (
        card["trained_on"]["device"] in ("cpu", "cuda")
        and card["trained_on"]["steps_done"] == card["recipe"]["steps"]
    )
    assert available_tags(MODEL) == [TAG]


@pytest.mark.parametrize("part", ["val", "test"])
def test_shipped_weights_reproduce_the_cards_numbers(part):
    """Re-measure, from the shipped file, every number that needs only Debian's drawings."""
    torch.set_num_threads(2)
    backbone = load_backbone(MODEL, TAG)
    assert backbone.weights == TAG and not backbone.random_weights
    card = bundled.read_card(MODEL, TAG)["v2"][part]
    per_pair = bundled.read_card(MODEL, TAG)["recipe"]["val_per_pair"] if part == "val" else 7
    got = P2.evaluate_seen(backbone.model, splits.published(), part, load_hierarchy(), WordNet(), per_pair)
    assert got["id_images"] == card["id_images"] and got["id_classes"] == card["id_classes"]
    for key in ("id_top1", "style_top1_seen"):
        assert abs(got[key] - card[key]) <= 0.002, (key, got[key], card[key])
    for artist, value in card["id_top1_by_artist"].items():
        assert abs(got["id_top1_by_artist"][artist] - value) <= 0.003, artist
    for prefix, value in card["context_cosine"].items():
        assert abs(got["context_cosine"][prefix] - value) <= 0.002, prefix


def test_random_weights_of_the_same_architecture_do_not_reach_the_numbers():
    card = bundled.read_card(MODEL, TAG)["v2"]["val"]
    model = P.new_model(0, MODEL)
    got = P2.evaluate_seen(model, splits.published(), "val", load_hierarchy(), None, 1)
    assert got["id_top1"] < 0.03 < card["id_top1"]


def test_weights_below_their_targets_warn_in_every_run(tmp_path, monkeypatch):
    """The shipped card's verdict decides; a card that meets its targets gives no warning."""
    card = bundled.read_card(MODEL, TAG)
    warning = bundled.shortfall(MODEL, TAG)
    assert (warning is None) is card["v2_targets_met"]
    folder = tmp_path / "model_weights"
    shutil.copytree(bundled.weights_path(MODEL, TAG).parent, folder)
    monkeypatch.setattr(bundled, "_DIR", folder)
    path = bundled.card_path(MODEL, TAG)
    below = {
        **card,
        "v2_targets_met": False,
        "v2": {**card["v2"], "test": {**card["v2"]["test"], "id_top1": 0.361}},
    }
    path.write_text(json.dumps(below))
    warning = bundled.shortfall(MODEL, TAG)
    assert (
        "miss their targets" in warning and "id_top1 36.1% < 60%" in warning and "style_top1" not in warning
    )
    backbone = load_backbone(MODEL, TAG)
    assert backbone.warning == warning and not backbone.random_weights
    path.write_text(json.dumps({**card, "v2_targets_met": True}))
    assert bundled.shortfall(MODEL, TAG) is None and load_backbone(MODEL, TAG).warning is None
