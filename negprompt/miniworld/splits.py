"""Which concepts of mini-world v2 are ID and which OOD: one seeded rule from the hierarchy.

The rule, fixed before any method is run (:func:`make_splits`, seed :data:`SEED`):

1. **Eligible** concepts are those every artist draws (so each ID class has pictures in every style).
2. **Far OOD** = every concept of :data:`N_FAR_GROUPS` groups drawn with the seed from the groups
   that hold at least :data:`MIN_GROUP` eligible concepts; plus v1's textures, clothing and digits as
   separate far-OOD sets.
3. In every subgroup of the other groups with at least 3 eligible concepts, a seeded permutation of
   its eligible concepts gives ``id_per_subgroup`` **ID** concepts and then ``near_per_subgroup``
   **near-OOD** concepts (held-out concepts of the same subgroup); a subgroup of 3 gives 2 and 1.
4. **Covariate-shift ID**: pictures of the ID concepts by the artist :data:`COVARIATE_ARTIST`, whose
   drawings of ID concepts are never used in pretraining (its drawings of other concepts are, so
   its style word is known).
5. **Hard OOD** (like NegPrompt's P1–P4): the :data:`N_HARD` subgroups with the most eligible
   concepts, each split by a seeded permutation into an ID half and an OOD half.
6. **Open vocabulary**: a seeded permutation of the ID concepts; its first 10%, 20% and 50% (rounded
   up) are the classes a learner may see; the rest are ID at test time only. Nested: 10% ⊂ 20% ⊂ 50%.

The published file ``resources/splits-v2.json`` is this function's output; a test re-derives it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from importlib import resources

import numpy as np

from .emoji import Hierarchy

SEED = 2024
N_FAR_GROUPS = 2
MIN_GROUP = 60
N_HARD = 4
COVARIATE_ARTIST = "twemoji"
OPEN_VOCAB_FRACTIONS = (0.1, 0.2, 0.5)
V1_FAR_SETS = ("textures", "clothing", "digits")
SPLIT_FILE = "splits-v2.json"


def _perm(rng: np.random.Generator, items: Iterable[str]) -> list[str]:
    items = list(items)
    return [items[i] for i in rng.permutation(len(items))]


def make_splits(
    hierarchy: Hierarchy,
    eligible: Iterable[str],
    seed: int = SEED,
    id_per_subgroup: int = 2,
    near_per_subgroup: int = 2,
) -> dict:
    """The split (rule in the module docstring) as a JSON-ready dict; names in hierarchy order.

    Args:
        hierarchy: the concepts. eligible: names of the concepts every artist draws.
        seed: the rule's seed. id_per_subgroup, near_per_subgroup: ID and near-OOD concepts per subgroup.

    Raises:
        ValueError: fewer than 100 ID concepts result.
    """
    ok = set(eligible)
    order = {c.name: i for i, c in enumerate(hierarchy.concepts)}
    rng = np.random.default_rng(seed)
    counts = {g: sum(c.name in ok for c in hierarchy.concepts if c.group == g) for g in hierarchy.groups}
    candidates = [g for g in hierarchy.groups if counts[g] >= MIN_GROUP]
    far_groups = sorted(_perm(rng, candidates)[:N_FAR_GROUPS], key=hierarchy.groups.index)
    ids, near, per_subgroup = [], [], {}
    for sub in hierarchy.subgroups():
        members = [c.name for c in hierarchy.in_subgroup(sub) if c.name in ok]
        if not members or hierarchy.in_subgroup(sub)[0].group in far_groups:
            continue
        per_subgroup[sub] = members
        if len(members) < 3:
            continue
        shuffled = _perm(rng, members)
        k = min(id_per_subgroup, len(members) - 1)
        ids += shuffled[:k]
        near += shuffled[k : k + near_per_subgroup]
    if len(ids) < 100:
        raise ValueError(f"the rule gives {len(ids)} ID concepts; at least 100 are needed")
    far = [c.name for c in hierarchy.concepts if c.group in far_groups and c.name in ok]
    hard = {}
    biggest = sorted(per_subgroup, key=lambda s: (-len(per_subgroup[s]), hierarchy.subgroups().index(s)))
    for i, sub in enumerate(biggest[:N_HARD]):
        shuffled = _perm(rng, per_subgroup[sub])
        half = len(shuffled) // 2
        hard[f"P{i + 1}"] = {
            "subgroup": sub,
            "id": sorted(shuffled[:half], key=order.get),
            "ood": sorted(shuffled[half:], key=order.get),
        }
    open_order = _perm(rng, sorted(ids, key=order.get))
    open_vocab = {
        f"{round(100 * p)}%": sorted(open_order[: math.ceil(p * len(ids))], key=order.get)
        for p in OPEN_VOCAB_FRACTIONS
    }
    return {
        "rule": "negprompt.miniworld.splits.make_splits",
        "seed": seed,
        "id_per_subgroup": id_per_subgroup,
        "near_per_subgroup": near_per_subgroup,
        "eligible": sorted(ok & set(order), key=order.get),
        "far_groups": far_groups,
        "id": sorted(ids, key=order.get),
        "near_ood": sorted(near, key=order.get),
        "far_ood": far,
        "far_ood_v1": list(V1_FAR_SETS),
        "covariate_artist": COVARIATE_ARTIST,
        "hard_ood": hard,
        "open_vocab": open_vocab,
    }


def published() -> dict:
    """The split file shipped with the package (``negprompt/miniworld/resources/splits-v2.json``)."""
    text = resources.files("negprompt.miniworld").joinpath("resources", SPLIT_FILE).read_text("utf-8")
    return json.loads(text)


def main() -> None:
    """Write the split file from the installed hierarchy and artists (run once, then published)."""
    import argparse
    from pathlib import Path

    from negprompt.io import atomic_write

    from . import artists
    from .emoji import load_hierarchy

    ap = argparse.ArgumentParser(description="write mini-world v2's split file")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    h = load_hierarchy()
    drawn = [set(c.name for c in artists.coverage(a, h.concepts)) for a in artists.ARTISTS]
    split = make_splits(h, set.intersection(*drawn))
    atomic_write(args.out, json.dumps(split, indent=1, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(split['id'])} ID, {len(split['near_ood'])} near, {len(split['far_ood'])} far")


if __name__ == "__main__":
    main()
