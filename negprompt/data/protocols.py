"""Hard-OOD (open-set) ImageNet protocols: P1–P4 (Palechor et al., WACV 2023) and MCM's tasks.

Each protocol splits ImageNet-1k classes into

* ``known``: the in-distribution classes; their list order is the label order;
* ``negative``: known-unknowns, removed from training *and* testing (NegPrompt uses no outlier data);
* ``unknown``: the OOD classes; their validation images form the OOD test set.

Class lists come from ``resources/imagenet_protocols.json`` (WordNet synsets), mapped here to
ImageNet class indices 0..999.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

from .imagenet import imagenet_classes, imagenet_split, resource_text, synset_to_index
from .imageset import ImageSet


@dataclass(frozen=True)
class Protocol:
    """An ImageNet class split; every list holds ImageNet class indices (0..999).

    Attributes:
        name: protocol name, e.g. ``"P1"`` or ``"ImageNet-10 vs ImageNet-20"``.
        known: in-distribution classes, in label order.
        negative: known-unknown classes, excluded from training and testing.
        unknown: OOD classes (validation images are the OOD test set); empty for ``ImageNet-100``.
    """

    name: str
    known: list[int]
    negative: list[int]
    unknown: list[int]

    @property
    def class_names(self) -> list[str]:
        """Clean names of the known classes, in label order."""
        info = imagenet_classes()
        return [info[c].name for c in self.known]


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    return json.loads(resource_text("imagenet_protocols.json"))


def protocol_names() -> list[str]:
    """Names of the available protocols, in file order."""
    return [k for k in _raw() if k != "about"]


def protocol_about() -> str:
    """The description of the protocol file (class index convention, sources)."""
    return str(_raw().get("about", ""))


def protocol(name: str) -> Protocol:
    """The protocol called ``name`` (case-insensitive, e.g. ``"P1"``, ``"ImageNet-100"``).

    Raises:
        ValueError: an unknown name (the message lists the valid ones), or a malformed class list.
    """
    raw = _raw()
    names = protocol_names()
    match = {n.lower(): n for n in names}.get(name.strip().lower())
    if match is None:
        raise ValueError(f"Unknown protocol {name!r}; valid names: {', '.join(repr(n) for n in names)}.")
    s2i = synset_to_index()
    entry = raw[match]
    lists: dict[str, list[int]] = {}
    for key in ("known", "negative", "unknown"):
        synsets = entry.get(key, [])
        bad = [s for s in synsets if s not in s2i]
        if bad:
            raise ValueError(
                f"Protocol {match!r}: {key} lists synsets that are not ImageNet-1k classes: {bad[:5]}"
            )
        lists[key] = [s2i[s] for s in synsets]
        if len(set(lists[key])) != len(lists[key]):
            raise ValueError(f"Protocol {match!r}: {key} lists a class twice")
    k, n, u = (set(lists[x]) for x in ("known", "negative", "unknown"))
    if k & n or k & u or n & u:
        raise ValueError(f"Protocol {match!r}: known, negative and unknown classes overlap")
    return Protocol(match, lists["known"], lists["negative"], lists["unknown"])


@dataclass(frozen=True)
class HardOODSets:
    """The image sets of a hard-OOD protocol.

    Attributes:
        id_train: ImageNet training images of the known classes (labels 0..len(known)-1).
        id_test: ImageNet validation images of the known classes.
        ood_test: validation images of the unknown classes, labelled 0..len(unknown)-1 among the
            unknown classes' own names (so results can be broken down by OOD class; these labels
            never index the known classes); None when the protocol has no unknown classes
            (``ImageNet-100`` is tested against the conventional OOD sets).
    """

    protocol: Protocol
    id_train: ImageSet
    id_test: ImageSet
    ood_test: ImageSet | None


def hard_ood_sets(data_root: str | os.PathLike, proto: Protocol | str) -> HardOODSets:
    """List the ID train / ID test / OOD test sets of a protocol from ImageNet-1k under ``data_root``.

    Negative classes appear in none of the three sets. Set names are ``"<protocol>/id-train"``,
    ``"<protocol>/id-test"`` and ``"<protocol>/ood"``.
    """
    p = protocol(proto) if isinstance(proto, str) else proto
    id_train = imagenet_split(data_root, "train", p.known, name=f"{p.name}/id-train")
    id_test = imagenet_split(data_root, "val", p.known, name=f"{p.name}/id-test")
    ood = None
    if p.unknown:
        ood = imagenet_split(data_root, "val", p.unknown, name=f"{p.name}/ood")
    return HardOODSets(p, id_train, id_test, ood)
