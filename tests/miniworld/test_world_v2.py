"""Pictures of mini-world v2 with their facts and captions."""

import numpy as np
import pytest

from negprompt.miniworld import splits
from negprompt.miniworld import world_v2 as W
from negprompt.miniworld.emoji import Hierarchy, load_hierarchy
from negprompt.miniworld.lexicon import WordNet


@pytest.fixture(scope="module")
def h():
    return load_hierarchy()


@pytest.fixture(scope="module")
def pairs(h):
    return W.drawn_pairs([h.by_name[n] for n in ("dog face", "taxi", "red heart")], ["noto", "symbola"])


def test_pictures_are_seeded_per_part_and_captions_are_true_of_them(h, pairs):
    wn = WordNet()
    a = W.pictures("x", pairs, 3, "val", h, wn)
    b = W.pictures("x", pairs[::-1], 3, "val", h, wn)
    t = W.pictures("x", pairs, 3, "test", h, wn)
    assert a.images.shape == (18, 32, 32, 3) and a.class_names == (
        "red heart",
        "dog face",
        "taxi",
    )  # hierarchy order
    assert np.array_equal(a.images[:3], b.images[-3:])  # a picture does not depend on the list's order
    assert not any(np.array_equal(x, y) for x in a.images for y in t.images)
    for g in a.group:
        assert all(c.facts <= a.facts[g] for c in a.captions[g])
    styles = {f for fs in a.facts for f in fs if f.startswith("style=")}
    assert styles == {"style=emoji", "style=outline"}
    texts = {c.text for caps in a.captions for c in caps}
    assert (
        "an outline of a taxi." in texts
        and "an emoji of a cab." in texts
        and "a drawing of a car." not in texts
    )


def test_the_covariate_artists_id_drawings_are_kept_out_of_pretraining(h):
    small = Hierarchy(tuple(h.by_name[n] for n in ("dog face", "taxi", "red heart")))
    split = {"id": ["taxi"], "covariate_artist": "symbola"}
    pairs = {(c.name, a) for c, a in W.pretraining_pairs(small, split, ("noto", "symbola"))}
    assert ("taxi", "symbola") not in pairs and ("taxi", "noto") in pairs and ("dog face", "symbola") in pairs


def test_an_unknown_part_is_an_error(h, pairs):
    with pytest.raises(ValueError, match="choose one of"):
        W.pictures("x", pairs, 1, "train", h, None)


def test_published_split_names_are_concepts(h):
    pub = splits.published()
    assert set(pub["id"]) | set(pub["near_ood"]) | set(pub["far_ood"]) <= set(h.by_name)


def test_the_test_sets_are_large_enough(h):
    """At the default 7 pictures per drawing: at least 2,000 ID pictures and 1,000 per OOD set, counted
    with the Debian artists alone (the npm artist only adds pictures)."""
    pub = splits.published()
    debian = ["noto", "symbola"]
    count = {
        k: 7 * len(W.drawn_pairs([h.by_name[n] for n in pub[k]], debian))
        for k in ("id", "near_ood", "far_ood")
    }
    assert count["id"] >= 2000 and count["near_ood"] >= 1000 and count["far_ood"] >= 1000


def test_several_processes_draw_the_same_pictures_as_one(h, pairs, monkeypatch):
    """Large sets are drawn by forked workers; every picture is a pure function of its seed, so the
    set is the same to the byte whatever the number of workers (and in any order of completion)."""
    one = W.pictures("x", pairs, 40, "val", h, None, workers=1)
    pools = []

    class Recorded(W.ProcessPoolExecutor):
        def __init__(self, workers, **kw):
            pools.append(workers)
            super().__init__(workers, **kw)

    monkeypatch.setattr(W, "ProcessPoolExecutor", Recorded)
    monkeypatch.setattr(W, "_default_workers", lambda: 2)
    monkeypatch.setattr(W, "PARALLEL_FROM", 100)
    many = W.pictures("x", pairs, 40, "val", h, None)  # the default: parallel above PARALLEL_FROM
    assert len(one) >= 128 and np.array_equal(one.images, many.images)
    assert np.array_equal(one.labels, many.labels) and np.array_equal(one.group, many.group)
    assert one.captions == many.captions and pools == [2]  # one set of 2 workers drew them
    assert W._JOBS == []  # nothing is left behind for a later fork
    assert np.array_equal(W.pictures("x", pairs, 40, "val", h, None, workers=3).images, one.images)
    assert pools == [2, 3]
    small = W.pictures("x", pairs, 2, "val", h, None)  # below PARALLEL_FROM: drawn in this process
    assert pools == [2, 3] and np.array_equal(
        small.images, W.pictures("x", pairs, 2, "val", h, None, workers=1).images
    )


def test_a_picture_does_not_depend_on_the_order_of_the_artists(h, pairs, monkeypatch):
    """Seeds use each artist's fixed place (artists.SEED_IDS), not its position in ARTISTS, which a
    caller (or a test removing and restoring an artist) may reorder."""
    from negprompt.miniworld import artists

    before = W.pictures("x", pairs, 2, "val", h, None)
    monkeypatch.setattr(artists, "ARTISTS", dict(reversed(list(artists.ARTISTS.items()))))
    after = W.pictures("x", pairs, 2, "val", h, None)
    assert np.array_equal(before.images, after.images) and before.captions == after.captions
    assert artists.SEED_IDS == {"noto": 0, "twemoji": 1, "symbola": 2}  # the order every tree was drawn in
