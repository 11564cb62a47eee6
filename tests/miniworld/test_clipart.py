"""Clip art of mini-world v2: the name mapping, the drawings, and clip art as an opt-in pretraining source."""

import dataclasses
import hashlib

import numpy as np
import pytest

from negprompt.miniworld import artists, assets, clipart, splits
from negprompt.miniworld import pretrain_v2 as P2
from negprompt.miniworld import world_v2 as W2
from negprompt.miniworld.emoji import Concept, Hierarchy, load_hierarchy
from negprompt.miniworld.lexicon import WordNet
from negprompt.miniworld.sources import MiniWorldDataError

SQUARE = (
    '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    '<rect x="10" y="5" width="20" height="10" fill="{colour}"/></svg>'
)
NAMES = ("dog face", "pig", "tiger", "red heart", "taxi")


@pytest.fixture(scope="module")
def wn():
    return WordNet()


def _concepts(*names):
    return [Concept(n, "G", "s", (0x1F400 + i,)) for i, n in enumerate(names)]


def _svg(folder, rel, colour="red"):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SQUARE.format(colour=colour))
    return path


def test_words_are_lower_case_runs_of_letters_and_digits():
    assert clipart.words("Bear_PeterM-01") == ("bear", "peterm", "01")
    assert clipart.words("t-shirt") == ("t", "shirt")


def test_the_longest_name_wins_and_a_tie_is_no_match(wn):
    names = clipart._names(_concepts("bear", "polar bear", "pen", "pencil"))
    assert clipart.match(clipart.words("big_polar_bear_01"), names, wn) == "polar bear"
    assert clipart.match(clipart.words("bear_peterm_01"), names, wn) == "bear"
    assert clipart.match(clipart.words("pen_pencil_01"), names, wn) is None  # two names of one length
    assert clipart.match(clipart.words("bearing_01"), names, wn) is None  # whole words only


def test_a_name_inside_a_longer_wordnet_noun_is_not_the_concept(wn):
    names = clipart._names(_concepts("baseball", "tennis", "penguin", "sun"))
    assert clipart.match(clipart.words("baseball_cap_ganson"), names, wn) is None  # a cap
    assert clipart.match(clipart.words("sun_flower_ganson"), names, wn) is None  # "sunflower"
    assert clipart.match(clipart.words("table_tennis_01"), names, wn) is None  # no kind of tennis
    assert clipart.match(clipart.words("emperor_penguin_01"), names, wn) == "penguin"  # a penguin
    assert clipart.match(clipart.words("baseball_bw_ganson"), names, wn) == "baseball"


def test_names_two_concepts_share_are_left_out(wn):
    names = clipart._names(_concepts("keycap #", "keycap *", "dog"))
    assert ("keycap",) not in names and names[("dog",)] == "dog"


def test_the_index_caps_skips_and_leaves_out_copies(tmp_path, wn):
    root = tmp_path / "svg"
    _svg(root, "computer/icons/pig_icon.svg")  # first in path order, but an interface icon
    _svg(root, "animals/a_simple_pig_01.svg")
    _svg(root, "animals/mammals/a_simple_pig_01.svg", "blue")  # the same file name again
    _svg(root, "animals/pig_marcelo_01.svg")  # the same bytes as the first pig
    _svg(root, "animals/pig_nicu_01.svg", "green")
    _svg(root, "food/pig_02.svg", "yellow")
    _svg(root, "plants/pig_03.svg", "black")  # a fourth: over the cap
    _svg(root, "animals/polar_bear_01.svg")
    _svg(root, "office/pen_pencil_01.svg")
    _svg(root, "special/gradients/bear_gradient.svg")
    (root / "animals/notes.txt").write_text("not a drawing")
    concepts = _concepts("pig", "bear", "polar bear", "pen", "pencil")
    got = clipart.index(concepts, root, wn)
    rel = {k: [p.relative_to(root).as_posix() for p in v] for k, v in got.items()}
    assert rel == {
        "pig": ["animals/a_simple_pig_01.svg", "animals/pig_nicu_01.svg", "food/pig_02.svg"],
        "polar bear": ["animals/polar_bear_01.svg"],
    }
    assert clipart.index(concepts, root, wn) == got  # the same on every call
    assert clipart.index(concepts, root, wn, cap=1)["pig"] == got["pig"][:1]
    chosen = tmp_path / "chosen"  # a folder of only the chosen files (a device kit) maps the same
    for files in rel.values():
        for f in files:
            (chosen / f).parent.mkdir(parents=True, exist_ok=True)
            (chosen / f).write_bytes((root / f).read_bytes())
    again = clipart.index(concepts, chosen, wn)
    assert {k: [p.relative_to(chosen).as_posix() for p in v] for k, v in again.items()} == rel


def test_debians_clip_art_maps_animals_and_a_share_of_the_id_concepts(wn):
    h = load_hierarchy()
    got = clipart.index(h.concepts, clipart.FOLDER, wn)
    rel = {k: [p.relative_to(clipart.FOLDER).as_posix() for p in v] for k, v in got.items()}
    assert "animals/mammals/bears/bear_peterm_01.svg" in rel["bear"]
    assert "animals/mammals/a_simple_pig_01.svg" in rel["pig"]
    assert all(f.startswith("animals/mammals/big_cats/") for f in rel["tiger"])
    assert "baseball" not in rel or not any("cap" in f for f in rel["baseball"])
    assert 200 <= len(got) <= 400 and all(1 <= len(v) <= clipart.CAP for v in got.values())
    assert 15 <= len(set(splits.published()["id"]) & set(got))
    assert not any(f.startswith(clipart.SKIPPED) for v in rel.values() for f in v)


def test_a_drawing_becomes_a_glyph_and_an_empty_or_damaged_file_does_not(tmp_path):
    root = tmp_path / "svg"
    _svg(root, "animals/pig_01.svg")
    pig = load_hierarchy().by_name["pig"]
    (g,) = artists.draw_clipart(pig, root)  # the package's own mapping, on this folder
    g = np.asarray(g)
    assert g.shape == (artists.GLYPH, artists.GLYPH, 4) and g.dtype == np.uint8
    visible = g[..., 3] > 128
    assert visible.mean() > 0.3 and (g[visible, 0] > 200).all() and (g[visible, 1] < 60).all()  # red
    blank = root / "blank.svg"
    blank.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g/></svg>')
    assert clipart.render(blank) is None  # well-formed, but nothing to see: no drawing
    damaged = root / "animals/pig_01.svg"
    damaged.write_text(SQUARE.format(colour="red")[:70])
    with pytest.raises(
        MiniWorldDataError, match=r"pig_01\.svg is damaged.*apt-get install --reinstall openclipart-svg"
    ):
        clipart.render(damaged)


def test_clip_art_has_its_own_seed_and_style_and_joins_no_artist_list():
    assert artists.SEED_IDS == {"noto": 0, "twemoji": 1, "symbola": 2}  # every existing picture's seed
    assert list(artists.ARTISTS) == ["noto", "twemoji", "symbola"] and "clipart" not in artists.ARTISTS
    assert artists.seed_id("clipart") not in artists.SEED_IDS.values()
    assert artists.info("clipart").style == "clip art" and artists.info("noto").style == "emoji"
    with pytest.raises(ValueError, match="clipart"):
        artists.info("picasso")
    from negprompt.miniworld import benchmark_v2

    plans = benchmark_v2.plan(splits.published())
    assert all("clipart" not in artist_names for _, artist_names, _, _ in plans.values())


def test_a_missing_package_names_it_and_its_install_command(tmp_path, monkeypatch):
    gone = dataclasses.replace(assets.DEBIAN["openclipart"], path=str(tmp_path / "none"))
    monkeypatch.setitem(assets.DEBIAN, "openclipart", gone)
    with pytest.raises(
        MiniWorldDataError, match="none is missing; install it with `sudo apt-get install openclipart-svg`"
    ):
        artists.require("clipart")
    assert assets.missing_debian() is None  # opt-in: not needed unless a recipe asks
    assert "sudo apt-get install openclipart-svg" in assets.missing_debian(("openclipart",))
    h = load_hierarchy()
    small = Hierarchy(tuple(h.by_name[n] for n in NAMES))
    drawn = []
    monkeypatch.setitem(artists.DRAW, "noto", lambda c: drawn.append(c) or artists.draw_noto(c))
    cfg = P2.PretrainV2Config(per_pair=1, v1_share=0.0, clipart=True)
    with pytest.raises(MiniWorldDataError, match="openclipart-svg"):
        P2.pretraining_world(cfg, small, {"id": ["pig"], "covariate_artist": "symbola"}, None, progress=False)
    assert drawn == []  # stopped before the first picture


def _stable(d):
    caps = [[(c.text, sorted(c.facts)) for c in g] for g in d.captions]
    return (hashlib.sha256(d.images.tobytes()).hexdigest()[:16],
            hashlib.sha256(repr(caps).encode()).hexdigest()[:16])  # fmt: skip


def test_the_pool_gains_clip_art_only_when_asked_and_is_otherwise_unchanged(monkeypatch, wn):
    """Off: the pool is the one drawn before clip art existed (pinned); on: the same pictures plus the
    clip art of every concept that has some, ID concepts included, captioned as clip art, a pair's
    pictures taking its drawings in turn."""
    # no npm download in tests; a copy, so that the real list keeps its order for later tests
    monkeypatch.setattr(artists, "ARTISTS", {k: v for k, v in artists.ARTISTS.items() if k != "twemoji"})
    h = load_hierarchy()
    small = Hierarchy(tuple(h.by_name[n] for n in NAMES))
    split = {"id": ["pig", "taxi"], "covariate_artist": "symbola"}
    off = P2.pretraining_world(P2.PretrainV2Config(per_pair=2, v1_share=0.0), small, split, wn, False)[
        "emoji"
    ]
    assert _stable(off) == ("3bde56a9b99297e0", "b9d3a66f9bb83d92")  # drawn before clip art existed
    used = []
    real = W2.compose
    monkeypatch.setattr(W2, "compose", lambda glyph, *a, **k: used.append(glyph) or real(glyph, *a, **k))
    cfg = P2.PretrainV2Config(per_pair=2, v1_share=0.0, clipart=True)
    on = P2.pretraining_world(cfg, small, split, wn, False)["emoji"]
    pairs = W2.pretraining_pairs(small, split, ("noto", "symbola", "clipart"))
    clip = [c.name for c, a in pairs if a == "clipart"]
    assert {"pig", "tiger", "taxi"} <= set(clip) and "dog face" not in clip  # ID concepts (pig, taxi) too
    kept = np.repeat([a != "clipart" for _, a in pairs], 2)
    assert np.array_equal(on.images[kept], off.images) and on.class_names == off.class_names
    assert len(on) == len(off) + 2 * len(clip)
    pig = artists.drawings("clipart", small.by_name["pig"])
    at = 2 * pairs.index((small.by_name["pig"], "clipart"))
    assert len(pig) >= 2 and used[at] is pig[0] and used[at + 1] is pig[1]
    texts = {c.text for caps in on.captions for c in caps}
    assert "clip art of a pig." in texts
    assert "a piece of clip art of something in the animal mammal category." in texts
    assert any("style=clip art" in f for f in on.facts)


def test_the_recipe_records_clip_art_and_a_run_resumes_only_with_the_same_setting(tmp_path):
    """A checkpoint written before the field existed resumes as a run without clip art; one written with
    clip art does not resume without it. The scripts take it as ``--clipart`` and ``"clipart": true``."""
    import sys
    from dataclasses import asdict, replace

    import torch

    from negprompt.miniworld import pretrain as P
    from tests.miniworld.test_pretrain_v2 import ROOT, _digits_domain

    world, weights = {"digits": _digits_domain()}, {"digits": 1.0}
    cfg = P2.PretrainV2Config(steps=2, batch_size=16, warmup=1, threads=1, v1_share=0.0)
    assert asdict(cfg)["clipart"] is False  # recorded with the recipe (card, summary, checkpoint)
    old = tmp_path / "old.pt"
    P.pretrain(world, cfg, old, progress=False, stop_after=1, domain_weights=weights)
    state = torch.load(old, weights_only=True)
    del state["config"]["clipart"]  # as written before clip art existed
    torch.save(state, old)
    _, summary = P.pretrain(world, cfg, old, progress=False, domain_weights=weights)
    assert summary["steps_done"] == 2 and summary["steps_this_process"] == 1  # resumed
    new = tmp_path / "new.pt"
    P.pretrain(world, replace(cfg, clipart=True), new, progress=False, stop_after=1, domain_weights=weights)
    with pytest.raises(RuntimeError, match="another recipe"):
        P.pretrain(world, cfg, new, progress=False, domain_weights=weights)

    sys.path.insert(0, str(ROOT / "scripts"))
    import compare_v2_recipes
    import pretrain_mini_clip

    def recipe(*flags):
        args = pretrain_mini_clip.parse(["--out", str(tmp_path), *flags])
        return pretrain_mini_clip.recipe(args, P2.PretrainV2Config)

    assert recipe("--world", "v2", "--clipart").clipart is True and recipe("--world", "v2").clipart is False
    with pytest.raises(SystemExit, match="--clipart only apply to --world v2"):
        pretrain_mini_clip.recipe(
            pretrain_mini_clip.parse(["--out", str(tmp_path), "--clipart"]), P.PretrainConfig
        )
    assert compare_v2_recipes.pool_key(replace(cfg, clipart=True)) != compare_v2_recipes.pool_key(cfg)
