"""Weights that ship inside the package: ``negprompt-mini`` trained on the mini-world.

They load through the ordinary path, ``load_backbone("negprompt-mini", "miniworld-v1")`` (or
``"auto"``) and ``load_backbone("negprompt-mini2", "miniworld-v2")`` (mini-world v2's model), never
from the network. The card beside the weights records their sha256; a missing or
damaged file is an error that names it and says how to restore it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MINI_MODEL = "negprompt-mini"
MINI_TAG = "miniworld-v1"
_DIR = Path(__file__).parent / "model_weights"
MINI2_MODEL = "negprompt-mini2"
MINI2_TAG = "miniworld-v2"
BUNDLED: dict[str, dict[str, str]] = {
    MINI_MODEL: {MINI_TAG: f"{MINI_MODEL}-{MINI_TAG}"},
    MINI2_MODEL: {MINI2_TAG: f"{MINI2_MODEL}-{MINI2_TAG}"},
}
"""Architecture -> tag -> file stem under ``negprompt/model_weights``."""
_RESTORE = (
    "restore it by reinstalling negprompt (pip install --force-reinstall negprompt, or git checkout "
    "negprompt/model_weights in a clone), or rebuild it with scripts/pretrain_mini_clip.py --install --force"
)


class BundledWeightsError(ValueError):
    """The bundled weights file is missing or damaged (the message names it and the fix)."""


def tags(model: str) -> list[str]:
    """The bundled tags of an architecture (empty for architectures without bundled weights)."""
    return list(BUNDLED.get(model, {}))


def weights_path(model: str = MINI_MODEL, tag: str = MINI_TAG) -> Path:
    """Where the bundled weights of ``model``/``tag`` live."""
    return _DIR / f"{BUNDLED[model][tag]}.safetensors"


def card_path(model: str = MINI_MODEL, tag: str = MINI_TAG) -> Path:
    """The card (JSON) beside the weights."""
    return _DIR / f"{BUNDLED[model][tag]}.card.json"


def read_card(model: str = MINI_MODEL, tag: str = MINI_TAG) -> dict:
    """The card of the bundled weights (recipe, data, accuracies, sha256)."""
    path = card_path(model, tag)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundledWeightsError(
            f"the card of the bundled weights {path} cannot be read ({exc}); {_RESTORE}"
        ) from exc
    if not isinstance(card, dict) or "sha256" not in card:
        raise BundledWeightsError(f"the card {path} has no sha256 entry; {_RESTORE}")
    return card


def missed_targets(model: str, tag: str) -> list[str]:
    """The card's targets that the bundled weights miss on the test part, as ``"id_top1 36.1% < 60%"``
    (empty when they meet them, the card sets none, or ``model``/``tag`` are not bundled)."""
    if tag not in BUNDLED.get(model, {}):
        return []
    card = read_card(model, tag)
    if card.get("v2_targets_met", True):
        return []
    test = (card.get("v2") or {}).get("test", {})
    return [
        f"{k} {100 * test[k]:.1f}% < {100 * v:.0f}%"
        for k, v in (card.get("v2_targets") or {}).items()
        if k in test and test[k] < v
    ]


def shortfall(model: str, tag: str) -> str | None:
    """A warning when the card says the weights miss the targets they were trained for (None if they
    meet them or the card sets none): every output of a run on them repeats it."""
    card = read_card(model, tag)
    if card.get("v2_targets_met", True):
        return None
    missed = missed_targets(model, tag)
    return (
        f"the bundled weights {model}/{tag} miss their targets on the test part ({'; '.join(missed)}; "
        f"card {card_path(model, tag).name}): scores and metrics describe a model that recognises its "
        "ID classes less well than the benchmark is meant to have"
    )


def verified_weights(model: str, tag: str) -> Path:
    """The bundled weights file, checked against the sha256 in its card.

    Raises:
        BundledWeightsError: the file is missing, or its bytes differ from what the card records.
    """
    path = weights_path(model, tag)
    card = read_card(model, tag)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise BundledWeightsError(
            f"the bundled weights {path} cannot be read ({exc.strerror}); {_RESTORE}"
        ) from exc
    if digest != card["sha256"]:
        raise BundledWeightsError(
            f"the bundled weights {path} are damaged (sha256 {digest[:12]}…, the card records "
            f"{card['sha256'][:12]}…); {_RESTORE}"
        )
    return path
