"""CSP: the pool from WordNet synsets, the prompt-ensemble bank, and the mining and grouped score
against values computed once with the official code.

Expected values: the official mining (``mmcls/models/classifiers/multi_modal.py`` lines 160-181 of
``MengyuanChen21/NeurIPS2024-CSP``, ``pos_neg_sim='neg_centroid'``) and grouping
(``mmcls/models/ood/clip_ood.py`` lines 25-49, ``random_permute=True``, run on the CPU) applied to the
inputs of `_inputs` with ``neg_topk = 0.3``, ``pencentile = 0.95``, ``ngroup = 2``, ``t = 5``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negprompt import csp
from negprompt.neglabel import neglabel_score
from negprompt.wordnet import Synset

OFFICIAL_NOUNS = [17, 12, 7, 15, 3, 14]
OFFICIAL_ADJS = [7, 2, 1]
OFFICIAL_SCORES = [0.002438267, 8.8068555e-05, 9.720269e-05, 0.99552441, 0.0003644026, 0.016425448]


def _unit(rows: int, d: int, phase: float) -> torch.Tensor:
    i = torch.arange(rows, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)[None, :]
    x = torch.sin(1.3 * i * (j + 1) + phase) + 0.4 * torch.cos(0.7 * j * (i + 3) + phase)
    return torch.nn.functional.normalize(x, dim=1).float()


def _inputs():
    """3 ID classes, 20 nouns (noun 5 within cos 0.95 of class 1), 12 adjectives, 6 images; D = 8."""
    pos, nouns, adjs, img = _unit(3, 8, 0.2), _unit(20, 8, 1.1), _unit(12, 8, 2.3), _unit(6, 8, 3.7)
    nouns[5] = torch.nn.functional.normalize(pos[1] + 0.05 * nouns[5], dim=0)
    return pos, nouns, adjs, img


def test_mining_and_score_match_the_official_code():
    pos, nouns, adjs, img = _inputs()
    noun_idx, adj_idx = csp.csp_mining(nouns, adjs, pos, fraction=0.3)
    assert noun_idx.tolist() == OFFICIAL_NOUNS and adj_idx.tolist() == OFFICIAL_ADJS
    order = csp.csp_negatives(nouns, adjs, pos, fraction=0.3, groups=2, seed=0)
    assert len(order) == 8  # 9 kept, the last 9 mod 2 dropped
    bank = torch.cat([nouns, adjs])[order]
    scores = neglabel_score(img @ pos.T, img @ bank.T, groups=2, tau=0.05)
    np.testing.assert_allclose(scores.numpy(), OFFICIAL_SCORES, rtol=1e-5, atol=1e-8)


def test_the_cap_drops_candidates_close_to_an_id_class():
    pos, nouns, adjs, _ = _inputs()
    assert float((nouns[5] @ pos.T).max()) > 0.95
    everything, _ = csp.csp_mining(nouns, adjs, pos, fraction=1.0)
    assert everything[-1].item() == 5  # sim = 1: last in the ranking
    ids = torch.eye(64)[:40]  # 40 ID classes: one close candidate has a low 95th percentile
    cands = torch.nn.functional.normalize(
        torch.cat([torch.eye(64)[:1] + 0.1 * torch.eye(64)[50:51], _unit(9, 64, 0.5)]), dim=1
    )
    assert float(torch.quantile(cands[0] @ ids.T, 0.95)) < 0.01 < 0.95 < float((cands[0] @ ids.T).max())
    capped, _ = csp.csp_mining(cands, cands[:0], ids, fraction=1.0)
    uncapped, _ = csp.csp_mining(cands, cands[:0], ids, fraction=1.0, cap=1.01)
    assert capped[-1].item() == 0 and uncapped[-1].item() != 0
    with pytest.raises(ValueError, match="fewer than neglabel_groups = 100"):
        csp.csp_negatives(nouns, adjs, pos, fraction=0.3, groups=100)
    with pytest.raises(ValueError, match="fraction"):
        csp.csp_mining(nouns, adjs, pos, fraction=0.0)


def test_pool_from_synsets():
    nouns = [
        Synset("noun.animal", ("dog", "domestic dog")),
        Synset("noun.person", ("scientist",)),
        Synset("noun.artifact", ("chair", "dog")),
        Synset("noun.quantity", ("kilogram",)),
        Synset("noun.group", ("family",)),
    ]
    adjs = [
        Synset("adj.all", ("green", "verdant")),
        Synset("adj.pert", ("atomic",)),
        Synset("adj.ppl", ("dog",)),
    ]
    words, phrases = csp.csp_pool(nouns, adjs, seed=0)
    # files in name order (adj.* before noun.*), words sorted within a file, one dedup over all files:
    # "dog" of adj.ppl comes first, so the noun "dog" is dropped
    assert words == ["domestic dog", "chair"]
    assert [p.rsplit(" ", 1)[0] for p in phrases] == ["green", "verdant", "dog"]
    assert all(
        p.split(" ", 1)[1] in {t.format("").strip() for t in csp.SUPERCLASS_TEMPLATES} for p in phrases
    )
    assert csp.csp_pool(nouns, adjs, seed=0) == (words, phrases)
    seeds = {tuple(csp.csp_pool(nouns, adjs, seed=s)[1]) for s in range(8)}
    assert len(seeds) > 1  # the superclass word is drawn by the seed


def test_shipped_wordnet_pool_sizes():
    from negprompt.wordnet import read_shipped

    words, phrases = csp.csp_pool(read_shipped("noun"), read_shipped("adj"))
    assert len(words) == len(set(words)) > 90_000 and 15_000 < len(phrases) < 18_000
    assert "dog" in words and "scientist" not in words and "kilogram" not in words


def test_ensemble_bank(tiny_backbone, tmp_path):
    words = ["dog", "chair", "green object"]
    bank = csp.encode_ensemble(tiny_backbone, words, csp.ADJ_TEMPLATES, cache_dir=tmp_path, progress=False)
    assert bank.shape == (3, tiny_backbone.embed_dim) and bank.dtype == np.float16
    with torch.no_grad():
        raw = tiny_backbone.model.encode_text(
            tiny_backbone.tokenizer([t.format("chair") for t in csp.ADJ_TEMPLATES])
        )
    ref = torch.nn.functional.normalize(raw.float().mean(dim=0), dim=0).numpy()
    np.testing.assert_allclose(bank[1].astype(np.float32), ref, atol=2e-3)
    again = csp.encode_ensemble(tiny_backbone, words, csp.ADJ_TEMPLATES, cache_dir=tmp_path, progress=False)
    assert np.array_equal(bank, again) and len(list((tmp_path / "labels").iterdir())) == 1
    folder = next((tmp_path / "labels").iterdir())
    np.save(folder / "features.npy", np.zeros((3, 7), dtype=np.float16))  # a bank of another width
    with pytest.raises(ValueError, match="delete that folder"):
        csp.encode_ensemble(tiny_backbone, words, csp.ADJ_TEMPLATES, cache_dir=tmp_path, progress=False)
