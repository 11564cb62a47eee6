"""Hard-OOD protocols: class lists and the ID / OOD sets built from them."""

from __future__ import annotations

import pytest

from negprompt.data import hard_ood_sets, imagenet_classes, protocol, protocol_about, protocol_names
from tests.data.test_data_imagenet import make_imagenet

EXPECTED_SIZES = {
    "P1": (116, 67, 166),
    "P2": (30, 31, 55),
    "P3": (151, 97, 164),
    "P4": (100, 0, 900),
    "ImageNet-10 vs ImageNet-20": (10, 0, 20),
    "ImageNet-20 vs ImageNet-10": (20, 0, 10),
    "ImageNet-100": (100, 0, 0),
}


def test_names_and_about():
    assert protocol_names() == list(EXPECTED_SIZES)
    assert "known" in protocol_about() and "negative" in protocol_about()


@pytest.mark.parametrize("name", list(EXPECTED_SIZES))
def test_lists_are_disjoint_indices(name):
    p = protocol(name)
    assert (len(p.known), len(p.negative), len(p.unknown)) == EXPECTED_SIZES[name]
    k, n, u = set(p.known), set(p.negative), set(p.unknown)
    assert not (k & n) and not (k & u) and not (n & u)
    assert all(0 <= c < 1000 for c in k | n | u)
    assert len(p.class_names) == len(p.known)


def test_p4_and_mcm_swap():
    p4 = protocol("p4")
    assert p4.name == "P4" and p4.known == list(range(100)) and p4.unknown == list(range(100, 1000))
    a, b = protocol("ImageNet-10 vs ImageNet-20"), protocol("imagenet-20 vs imagenet-10")
    assert a.known == b.unknown and a.unknown == b.known


def test_known_order_follows_file():
    p1 = protocol("P1")
    info = imagenet_classes()
    assert info[p1.known[0]].synset == "n02085620"


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        protocol("P9")
    assert "P9" in str(e.value) and all(n in str(e.value) for n in protocol_names())


def test_hard_ood_sets_drop_negative_classes(tmp_path):
    p = protocol("P2")
    make_imagenet(tmp_path, sorted(p.known + p.negative + p.unknown), n_train=2, n_val=1)
    sets = hard_ood_sets(tmp_path, "P2")
    info = imagenet_classes()
    known_syn = {info[c].synset for c in p.known}
    neg_syn = {info[c].synset for c in p.negative}
    unk_syn = {info[c].synset for c in p.unknown}

    assert sets.id_train.name == "P2/id-train" and len(sets.id_train) == 2 * len(p.known)
    assert {path.split("/")[0] for path in sets.id_train.paths} == known_syn
    assert sets.id_train.class_names == tuple(p.class_names)
    assert sets.id_train.labels_array.max() == len(p.known) - 1

    # Flat val: map file names back to synsets through the written label file.
    csv_rows = (tmp_path / "ImageNet1k" / "LOC_val_solution.csv").read_text().splitlines()[1:]
    syn_of = {r.split(",")[0]: r.split(",")[1].split()[0] for r in csv_rows}
    test_syn = {syn_of[p_.removesuffix(".JPEG")] for p_ in sets.id_test.paths}
    ood_syn = {syn_of[p_.removesuffix(".JPEG")] for p_ in sets.ood_test.paths}
    assert test_syn == known_syn and ood_syn == unk_syn
    assert not (test_syn | ood_syn) & neg_syn
    assert sets.ood_test.name == "P2/ood" and len(sets.ood_test) == len(p.unknown)
    # OOD images keep their own class among the unknown classes, never a known-class label
    assert sets.ood_test.class_names == tuple(info[c].name for c in p.unknown)
    assert [info[p.unknown[y]].synset for y in sets.ood_test.labels] == [
        syn_of[p_.removesuffix(".JPEG")] for p_ in sets.ood_test.paths
    ]
    assert not set(sets.id_test.paths) & set(sets.ood_test.paths)
    # ID labels follow the protocol's known order.
    for path, label in zip(sets.id_test.paths, sets.id_test.labels):
        assert info[p.known[label]].synset == syn_of[path.removesuffix(".JPEG")]


def test_imagenet100_has_no_ood_test(tmp_path):
    p = protocol("ImageNet-100")
    make_imagenet(tmp_path, p.known, n_train=1, n_val=1, val="folders")
    sets = hard_ood_sets(tmp_path, p)
    assert sets.ood_test is None and len(sets.id_test) == 100
