"""Class names as the prompts see them: two classes whose names read the same get identical prompts.

The text encoder sees a class name after `prompt_key`'s normalisation: Unicode NFC, ``_`` read as a
space, runs of whitespace as one space, no leading or trailing space, and case folded (CLIP's
tokenizer lower-cases). ``ankle_boot`` and ``ankle boot``, ``Bag`` and ``bag``, ``café`` in NFC and
in NFD, ``bag`` and ``bag `` are therefore one class to the prompts; `check_class_names` refuses
them, and a single class, for which every OOD score is constant.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence


def prompt_key(name: str) -> str:
    """The class name as the prompts read it: NFC, ``_`` → space, whitespace collapsed, case folded."""
    text = unicodedata.normalize("NFC", str(name)).replace("_", " ")
    return re.sub(r"\s+", " ", text).strip().casefold()


def clashes(names: Sequence[str], keys: Sequence[object] | None = None) -> list[list[int]]:
    """Groups (positions) of names with the same key (default `prompt_key`), each of two or more."""
    keys = [prompt_key(n) for n in names] if keys is None else list(keys)
    groups: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def check_class_names(
    names: Sequence[str], folders: Sequence[str] | None = None, *, min_classes: int = 2, where: str = ""
) -> None:
    """Refuse class names that the prompts cannot tell apart, and fewer than ``min_classes`` classes.

    Args:
        names: the class names, in label order.
        folders: the class folders they come from (same order), named in the message when given.
        min_classes: 2 for OOD scoring: with one class, MCM is 1 for every image.
        where: what the names belong to (e.g. an image folder), for the message.

    Raises:
        ValueError: naming every clashing group (its folders or names) and the fix.
    """
    shown = list(folders) if folders is not None else list(names)
    where = f" of {where}" if where else ""
    groups = clashes(names)
    if groups:
        listed = "; ".join(
            " and ".join(repr(shown[i]) for i in g) + f" (→ {prompt_key(names[g[0]])!r})" for g in groups
        )
        raise ValueError(
            f"class {'folders' if folders is not None else 'names'}{where} that become the same class name "
            f"after normalisation (case, '_' as space, Unicode NFC, whitespace): {listed}. Their prompts "
            "would be identical, so the classes could not be told apart; rename or merge them."
        )
    if len(names) < min_classes:
        raise ValueError(
            f"{len(names)} class{'es' if len(names) != 1 else ''}{where} ({', '.join(map(repr, shown))}): OOD "
            f"scoring needs at least {min_classes} ID classes (with one, every image gets the same MCM "
            "score and ID accuracy is trivially 100%); add class folders"
        )
