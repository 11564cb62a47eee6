"""NegLabel: the WordNet reader (synthetic files and the real one), NegMining, grouping, the score
against float64 loops, the cached label bank, and an experiment end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt import neglabel as NL
from negprompt import wordnet as WN
from negprompt.rundir import load_run

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton  \n"
NOUNS = (
    "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived  \n"
    "00002137 03 n 02 abstraction 0 abstract_entity 0 010 @ 00001740 n 0000 | a general concept  \n"
    "02084071 05 n 02 dog 0 domestic_dog 0 042 @ 02083346 n 0000 | a member of the genus Canis  \n"
    "03001627 06 n 01 chair 0 000 | a seat for one person  \n"
    "04379243 06 n 01 table 0 000 | a piece of furniture  \n"
    "09999999 06 n 01 Dog 0 000 | the same word again, other case  \n"
)
ADJS = (
    "00019731 00 s 02 handy 0 ready_to_hand(p) 0 002 & 00019131 a 0000 | easy to reach  \n"
    "00020103 00 s 02 outback(a) 0 remote 0 003 & 00019874 a 0000 | inaccessible  \n"
    "00030000 00 a 01 green 0 000 | of the colour of grass  \n"
)


def test_reader_on_a_synthetic_file(wordnet):
    synsets = WN.read_synsets(wordnet / "data.noun")
    assert synsets[:3] == [["entity"], ["abstraction", "abstract entity"], ["dog", "domestic dog"]]
    assert WN.read_synsets(wordnet / "data.adj")[:2] == [["handy", "ready to hand"], ["outback", "remote"]]
    assert WN.wordnet_words(wordnet) == [
        "entity",
        "abstraction",
        "dog",
        "chair",
        "table",
        "handy",
        "outback",
        "green",
    ]
    every = WN.wordnet_words(wordnet, all_lemmas=True)
    assert "domestic dog" in every and "remote" in every and "Dog" not in every
    assert WN.wordnet_words(wordnet, parts=("adj",)) == ["handy", "outback", "green"]


def test_reader_errors(wordnet, tmp_path, monkeypatch):
    (wordnet / "data.adj").write_text(HEADER + "00030000 00 a zz green 0 000 | bad count\n")
    with pytest.raises(ValueError, match=r"data.adj:3: not a WordNet data line"):
        WN.read_synsets(wordnet / "data.adj")
    (wordnet / "data.adj").write_text(HEADER + "00030000 77 a 01 green 0 000 | no such lexicographer file\n")
    with pytest.raises(ValueError, match=r"data.adj:3: not a WordNet data line"):
        WN.read_synsets(wordnet / "data.adj")
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        WN.read_synsets(tmp_path / "nowhere" / "data.noun")
    monkeypatch.setenv("NEGPROMPT_WORDNET", str(wordnet))
    assert WN.wordnet_dir() == wordnet and WN.check_wordnet() == wordnet


def test_lexnames_of_a_synthetic_file(wordnet):
    """``lex_filenum`` names the lexicographer file (lexnames(5WN)): 03 noun.Tops, 05 noun.animal, …"""
    nouns, adjs = WN.read_data_file(wordnet / "data.noun"), WN.read_data_file(wordnet / "data.adj")
    assert [s.lexname for s in nouns] == ["noun.Tops", "noun.Tops", "noun.animal"] + ["noun.artifact"] * 3
    assert {s.lexname for s in adjs} == {"adj.all"}
    assert nouns[2] == WN.Synset("noun.animal", ("dog", "domestic dog"))
    assert len(WN.LEXNAMES) == 45 and WN.LEXNAMES[18] == "noun.person" and WN.LEXNAMES[44] == "adj.ppl"


def test_real_wordnet_files():
    """Debian's wordnet-base (installed by .ci/run): WordNet 3.0's counts and first synsets."""
    folder = WN.DEFAULT_WORDNET_DIR
    assert (folder / "data.noun").is_file(), f"{folder}/data.noun missing; {WN.INSTALL_HINT}"
    nouns = WN.read_synsets(folder / "data.noun")
    adjs = WN.read_synsets(folder / "data.adj")
    assert len(nouns) == 82115 and len(adjs) == 18156  # WordNet 3.0's synset counts
    assert nouns[0] == ["entity"] and nouns[1] == ["physical entity"]
    words = WN.wordnet_words(folder)
    assert {"dog", "goldfish", "tench", "green"} <= set(words)
    assert not any("_" in w or w.endswith(("(a)", "(p)", "(ip)")) for w in words)


def test_shipped_lists_equal_debians_wordnet():
    """The package's lists hold exactly the synsets, words and lexnames of WordNet 3.0's data files."""
    folder = WN.DEFAULT_WORDNET_DIR
    assert (folder / "data.noun").is_file(), f"{folder}/data.noun missing; {WN.INSTALL_HINT}"
    for part in ("noun", "adj"):
        assert WN.read_shipped(part) == WN.read_data_file(folder / f"data.{part}")
    nouns = WN.read_shipped("noun")
    lexname: dict[str, str] = {}
    for s in nouns:  # a word's first synset, e.g. "dog" the animal before "dog" the informal person
        lexname.setdefault(s.words[0], s.lexname)
    assert lexname["dog"] == "noun.animal" and lexname["chair"] == "noun.artifact"
    assert lexname["person"] == "noun.Tops" and lexname["scientist"] == "noun.person"
    assert lexname["kilogram"] == "noun.quantity" and lexname["family"] == "noun.group"
    adj: dict[str, str] = {}
    for s in WN.read_shipped("adj"):
        adj.setdefault(s.words[0], s.lexname)
    assert adj["abbatial"] == "adj.pert" and adj["green"] == "adj.all"
    assert {s.lexname for s in WN.read_shipped("adj")} == {"adj.all", "adj.pert", "adj.ppl"}
    notice = (WN.SHIPPED_DIR / "LICENSE-WordNet-3.0.txt").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice


def test_shipped_lists_are_package_data():
    """pyproject.toml ships the lists and their licence; together they stay under 5 MB."""
    import re
    from pathlib import Path

    root = Path(WN.__file__).resolve().parents[1]
    section = (root / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1]
    patterns = re.findall(r'"([^"]*wordnet[^"]*)"', section.split("\n[", 1)[0])
    for name in ("noun.tsv.gz", "adj.tsv.gz", "LICENSE-WordNet-3.0.txt"):
        rel = (WN.SHIPPED_DIR / name).relative_to(root / "negprompt").as_posix()
        assert any(Path(rel).match(pattern) for pattern in patterns), (name, patterns)
    assert sum(f.stat().st_size for f in WN.SHIPPED_DIR.iterdir()) < 5_000_000


def test_without_wordnet_the_shipped_lists_are_used(tmp_path, monkeypatch):
    """An empty WordNet folder (no wordnet-base): the same words, from the package's own lists."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("NEGPROMPT_WORDNET", str(empty))
    assert WN.wordnet_source() == WN.SHIPPED_DIR == WN.check_wordnet()
    words = WN.wordnet_words()
    assert words == WN.wordnet_words(WN.DEFAULT_WORDNET_DIR)
    assert len(words) > 70_000 and words[:2] == ["entity", "physical entity"]


def test_a_broken_install_is_found_before_the_model_loads(tmp_path, monkeypatch):
    """No WordNet folder and no shipped lists: the experiment stops in prepare(), before the backbone."""
    from negprompt.experiments import Experiment
    from tests.experiments.test_experiments_data import make_benchmark, small

    monkeypatch.setattr(WN, "SHIPPED_DIR", tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=r"noun.tsv.gz.*reinstall negprompt"):
        WN.check_wordnet(tmp_path)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "noun.tsv.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(ValueError, match="damaged"):
        WN.read_shipped("noun", tmp_path / "damaged")
    data = make_benchmark(tmp_path / "data", [0, 1])
    config = small(data_root=data, classes=2, cache_dir=str(tmp_path / "cache"), neglabel=True,
                   wordnet_dir=str(tmp_path))  # fmt: skip
    exp = Experiment(config, progress=False)
    with pytest.raises(FileNotFoundError, match="NegLabel needs WordNet 3.0"):
        exp.prepare()
    assert exp.backbone is None and exp.data is None


def _unit(*shape, seed=0):
    return F.normalize(
        torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1
    )


def test_neg_mining_against_numpy():
    cand, ids = _unit(50, 8), _unit(6, 8, seed=1)
    ref = np.quantile(cand.numpy() @ ids.numpy().T, 0.95, axis=1)
    sim = NL.percentile_similarity(cand, ids, chunk=7)
    np.testing.assert_allclose(sim.numpy(), ref, rtol=1e-5, atol=1e-6)
    kept = NL.neg_mining(cand, ids, 10)
    assert set(kept.tolist()) == set(np.argsort(ref)[:10].tolist())
    assert sim[kept].max() <= np.sort(ref)[10] + 1e-6
    with pytest.raises(ValueError, match="n_neg"):
        NL.neg_mining(cand, ids, 51)


def test_group_order():
    a, b = NL.group_order(20, 4, seed=3), NL.group_order(20, 4, seed=3)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(20))
    assert not torch.equal(a, NL.group_order(20, 4, seed=4))
    with pytest.raises(ValueError, match="groups"):
        NL.group_order(3, 4)


@pytest.mark.parametrize(("groups", "tau"), [(1, 0.01), (3, 0.01), (4, 1.0)])
def test_score_against_float64_loops(groups, tau):
    s_pos, s_neg = _unit(5, 3) @ _unit(3, 3, seed=1).T, _unit(5, 3) @ _unit(10, 3, seed=2).T
    ref = []
    for i in range(5):
        pos = sum(math.exp(v / tau) for v in s_pos[i].tolist())
        per_group = [
            pos / (pos + sum(math.exp(s_neg[i, j].item() / tau) for j in cols))
            for cols in np.array_split(np.arange(10), groups)
        ]
        ref.append(sum(per_group) / groups)
    np.testing.assert_allclose(NL.neglabel_score(s_pos, s_neg, groups, tau).numpy(), ref, rtol=1e-10)


def test_label_bank_is_cached(tiny_backbone, tmp_path):
    words = ["dog", "chair", "green", "remote"]
    bank = NL.encode_label_bank(tiny_backbone, words, cache_dir=tmp_path, progress=False)
    folders = list((tmp_path / "labels").iterdir())
    assert len(folders) == 1 and not folders[0].name.count(".tmp")
    assert bank.shape == (4, tiny_backbone.embed_dim) and bank.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(bank.astype(np.float32), axis=1), 1.0, atol=2e-3)
    (folders[0] / "words.json").write_text("[]")  # still loaded from the folder, not re-encoded
    again = NL.encode_label_bank(tiny_backbone, words, cache_dir=tmp_path, progress=False)
    assert np.array_equal(bank, again) and (folders[0] / "words.json").read_text() == "[]"
    from negprompt.experiments.methods import zeroshot_method

    ref = zeroshot_method(tiny_backbone, words).pos.numpy()
    np.testing.assert_allclose(bank.astype(np.float32), ref, atol=2e-3)
    np.save(folders[0] / "features.npy", np.zeros((4, 3), dtype=np.float16))  # another backbone's width
    with pytest.raises(ValueError, match="delete that folder to encode the bank again"):
        NL.encode_label_bank(tiny_backbone, words, cache_dir=tmp_path, progress=False)


def test_experiment_end_to_end(wordnet, tmp_path, tiny_backbone):
    from negprompt.experiments import run_experiment
    from tests.experiments.test_experiments_data import make_benchmark, small

    data = make_benchmark(tmp_path / "data", [0, 1, 2])
    config = small(data_root=data, classes=3, cache_dir=str(tmp_path / "cache"), neglabel=True,
                   wordnet_dir=str(wordnet), neglabel_n_neg=4, neglabel_groups=2, locoop=True)  # fmt: skip
    run = load_run(run_experiment(config, tmp_path / "run", progress=False, backbone=tiny_backbone))
    assert run.config["methods"] == ["zeroshot", "coop", "negprompt", "locoop", "neglabel"]
    metrics = run.metrics
    assert {"neglabel", "gl_mcm", "l_mcm"} <= set(metrics["score"])
    assert set(metrics.loc[metrics["score"] == "gl_mcm", "method"]) == {"zeroshot", "coop", "locoop"}
    locoop = run.config["experiment"]["locoop"]
    assert locoop["config"]["locoop_weight"] == 0.25 and len(locoop["history"]) == 2
    assert all(np.isfinite(h["ood"]) and h["ood"] <= 0 for h in locoop["history"])
    assert (tmp_path / "run" / "prompts" / "locoop.safetensors").is_file()
    assert len(list((tmp_path / "cache" / "local").iterdir())) == 1  # the training images' local features
    scores = run.scores
    assert scores["neglabel.top_negative"].between(0, 3).all()
    assert scores["zeroshot.best_region"].between(0, 15).all()  # 4 × 4 patches of the tiny ViT
    log = (tmp_path / "run" / "log.txt").read_text()
    for row in (
        "NegLabel (zero-shot)",
        "GL-MCM (zero-shot)",
        "CoOp + GL-MCM",
        "LoCoOp + MCM",
        "LoCoOp + GL-MCM",
    ):
        assert row in log
