"""Mini-world v2's split rule and the split file published with the package."""

import pytest

from negprompt.miniworld import artists, splits
from negprompt.miniworld.emoji import load_hierarchy


@pytest.fixture(scope="module")
def h():
    return load_hierarchy()


@pytest.fixture(scope="module")
def pub():
    return splits.published()


def test_the_published_file_is_the_rules_output(h, pub):
    assert splits.make_splits(h, pub["eligible"], seed=pub["seed"]) == pub


def test_eligible_concepts_are_drawn_by_the_debian_artists(h, pub):
    for name in ("noto", "symbola"):
        drawn = {c.name for c in artists.coverage(name, tuple(h.by_name[n] for n in pub["eligible"]))}
        assert drawn == set(pub["eligible"]), name


def test_id_near_and_far_are_disjoint_and_shaped_like_the_benchmark(h, pub):
    ids, near, far = set(pub["id"]), set(pub["near_ood"]), set(pub["far_ood"])
    assert len(ids) >= 100 and len(near) >= 100 and len(far) >= 100
    assert not ids & near and not ids & far and not near & far
    assert len({h.by_name[n].group for n in ids}) >= 5
    id_subgroups = {h.by_name[n].subgroup for n in ids}
    assert {h.by_name[n].subgroup for n in near} <= id_subgroups  # near OOD: same subgroups
    assert {h.by_name[n].group for n in far} == set(pub["far_groups"])
    assert not set(pub["far_groups"]) & {h.by_name[n].group for n in ids}
    assert pub["far_ood_v1"] == ["textures", "clothing", "digits"] and pub["covariate_artist"] == "twemoji"


def test_hard_protocols_split_one_subgroup_each(h, pub):
    assert list(pub["hard_ood"]) == ["P1", "P2", "P3", "P4"]
    for p in pub["hard_ood"].values():
        assert p["id"] and p["ood"] and not set(p["id"]) & set(p["ood"])
        assert {h.by_name[n].subgroup for n in p["id"] + p["ood"]} == {p["subgroup"]}


def test_open_vocabulary_fractions_are_nested(pub):
    n = len(pub["id"])
    sets = [set(pub["open_vocab"][k]) for k in ("10%", "20%", "50%")]
    assert [len(s) for s in sets] == [-(-n // 10), -(-n // 5), -(-n // 2)]
    assert sets[0] <= sets[1] <= sets[2] <= set(pub["id"])


def test_the_seed_changes_the_split_and_too_few_id_is_an_error(h, pub):
    other = splits.make_splits(h, pub["eligible"], seed=pub["seed"] + 1)
    assert other["id"] != pub["id"]
    with pytest.raises(ValueError, match="at least 100"):
        splits.make_splits(h, pub["eligible"][:150])
