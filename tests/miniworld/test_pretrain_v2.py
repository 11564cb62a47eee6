"""Pretraining on mini-world v2: batch shares, shared sentences, the v2 evaluations and the script."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from negprompt.miniworld import artists, emoji, splits
from negprompt.miniworld import pretrain as P
from negprompt.miniworld import pretrain_v2 as P2
from negprompt.miniworld import world_v2 as W2
from negprompt.miniworld.concepts import Caption
from negprompt.miniworld.emoji import Hierarchy, load_hierarchy
from negprompt.miniworld.world import Domain

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("grinning face", "red heart", "dog face", "cat face", "taxi", "watch")


@pytest.fixture
def two_artists(monkeypatch):
    """Only the Debian artists (no npm download in tests); Symbola plays the covariate artist."""
    # no npm download in tests; a copy, so that the real list keeps its order for later tests
    monkeypatch.setattr(artists, "ARTISTS", {k: v for k, v in artists.ARTISTS.items() if k != "twemoji"})
    h = load_hierarchy()
    small = Hierarchy(tuple(h.by_name[n] for n in NAMES))
    split = {"id": ["red heart", "dog face", "taxi"], "near_ood": ["cat face"], "far_ood": ["watch"],
             "covariate_artist": "symbola"}  # fmt: skip
    return small, split


def test_domain_weights_share_the_batch():
    w = P2.domain_weights(0.2)
    assert w["emoji"] == pytest.approx(0.8) and sum(w.values()) == pytest.approx(1.0)
    assert w["clothing"] / w["digits"] == pytest.approx(0.4 / 0.15)
    with pytest.raises(ValueError, match="v1_share"):
        P2.domain_weights(1.0)


def test_outlines_may_take_a_batch_share_of_their_own(two_artists, monkeypatch):
    """``outline_share`` moves the outline pictures, unchanged, into a domain of their own that takes
    that share of v2's part of a batch; 0 keeps the shipped pool (one domain, outlines in proportion
    to their drawings)."""
    small, split = two_artists
    w = P2.domain_weights(0.2, 0.5)
    assert w["emoji"] == pytest.approx(0.4) and w["emoji outlines"] == pytest.approx(0.4)
    assert sum(w.values()) == pytest.approx(1.0) and P2.domain_weights(0.2, 0.0) == P2.domain_weights(0.2)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="outline_share"):
            P2.domain_weights(0.2, bad)
    base = P2.PretrainV2Config(per_pair=2, v1_share=0.0)
    one = P2.pretraining_world(base, small, split, None, progress=False)
    two = P2.pretraining_world(
        dataclasses.replace(base, outline_share=0.5), small, split, None, progress=False
    )
    assert list(one) == ["emoji"] and list(two) == ["emoji", "emoji outlines"]
    pairs = W2.pretraining_pairs(small, split)
    outline = np.repeat([a == "symbola" for _, a in pairs], 2)
    assert outline.mean() == pytest.approx(1 / 3)  # the shipped pool's share, unlike the asked one
    assert np.array_equal(two["emoji outlines"].images, one["emoji"].images[outline])
    assert np.array_equal(two["emoji"].images, one["emoji"].images[~outline])
    for name, style in (("emoji outlines", True), ("emoji", False)):
        d = two[name]
        assert all(("style=outline" in d.facts[g]) == style for g in d.group)
    tok = open_clip.get_tokenizer(P.MODEL)

    def outline_fraction(world: dict, weights: dict) -> float:
        """The share of outline pictures in a batch of 4,000, told apart by painting them black."""
        painted = {}
        for name, d in world.items():
            black = np.asarray([("style=outline" in d.facts[g]) for g in d.group])[:, None, None, None]
            painted[name] = dataclasses.replace(
                d, images=np.where(black, 0, 255).astype(np.uint8) * np.ones_like(d.images)
            )
        x = P.Pool(painted, tok, weights).batch(np.random.default_rng(0), 4000, 0).images
        return float((x.mean(dim=(1, 2, 3)) < 0).float().mean())

    shipped = outline_fraction(one, P2.domain_weights(0.0))
    half = outline_fraction(two, P2.domain_weights(0.0, 0.5))
    assert shipped == pytest.approx(outline.mean(), abs=0.03) and half == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="both outline and colour"):
        P2.pretraining_world(dataclasses.replace(base, outline_share=0.5), Hierarchy((small.by_name["red heart"],)),
                             split, None, False)  # fmt: skip
    drawn = []
    monkeypatch.setattr(P2.W2, "pictures", lambda *a, **k: drawn.append(a) or pytest.fail("drew a picture"))
    for bad in ({"outline_share": 1.5}, {"outline_share": -0.5}, {"v1_share": 1.0}):
        with pytest.raises(ValueError, match="must be in"):
            P2.pretraining_world(dataclasses.replace(base, **bad), small, split, None, False)
        with pytest.raises(ValueError, match="outline_share"):
            P2.with_outline_domain(one, bad.get("outline_share", 2.0))
    assert drawn == []  # refused before any picture is drawn


def test_a_sentence_said_of_two_things_is_true_of_both():
    said = "a photo of a car."
    images = np.zeros((2, 32, 32, 3), np.uint8)
    d = Domain("x", images, np.array([0, 1]), [[Caption(said, frozenset({"concept=car"}))],
               [Caption(said, frozenset({"kind=car"}))]], [frozenset({"concept=car"}), frozenset({"kind=car"})],
               np.array([0, 1]), ("car", "taxi"))  # fmt: skip
    pool = P.Pool({"x": d}, open_clip.get_tokenizer(P.MODEL), {"x": 1.0})
    assert pool.caption_facts.sum() == 0  # the common facts of both uses: none
    _, _, pos, _ = pool.batch(np.random.default_rng(0), 8, 0)
    assert pos.all()  # never an image without a true caption (the loss would be NaN)


def _clustered_pool(n_sub: int = 4, per_sub: int = 40):
    """A v2-like domain whose pictures carry a subgroup fact, beside a v1-like one without."""
    n = n_sub * per_sub
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    facts = [frozenset({f"concept=c{i}", f"subgroup=s{i % n_sub}"}) for i in range(n)]
    caps = [[Caption(f"a photo of c{i}.", facts[i])] for i in range(n)]
    emoji_d = Domain(
        "emoji", images, np.arange(n), caps, facts, np.arange(n), tuple(f"c{i}" for i in range(n))
    )
    plain = Domain("digits", images[:10], np.arange(10), [[Caption(f"a digit {i}.", frozenset({f"d={i}"}))]
                   for i in range(10)], [frozenset({f"d={i}"}) for i in range(10)], np.arange(10),
                   tuple(str(i) for i in range(10)))  # fmt: skip
    tok = open_clip.get_tokenizer(P.MODEL)
    return P.Pool({"emoji": emoji_d, "digits": plain}, tok, {"emoji": 0.5, "digits": 0.5}), n_sub


def _subgroups_of(pool, x):
    """The subgroup of each picture of a batch (the pictures' pixel value is their index)."""
    raw = (x * P.STD + P.MEAN) * 255
    return raw[:, 0, 16, 16].round().long()


def test_hard_negative_batches_bring_clusters_of_one_subgroup():
    pool, n_sub = _clustered_pool()
    assert [len(c) for c in pool.clusters] == [40] * n_sub  # the v1-like domain is in no cluster
    size, share = 64, 0.5
    x, _, _, _ = pool.batch(np.random.default_rng(3), size, 0, share)
    assert x.shape[0] == size
    n_clusters = int(size * share) // P.CLUSTER_SIZE
    tail = x[size - n_clusters * P.CLUSTER_SIZE :]
    for k in range(n_clusters):  # each cluster: CLUSTER_SIZE pictures of one subgroup of the emoji domain
        idx = _subgroups_of(pool, tail[k * P.CLUSTER_SIZE : (k + 1) * P.CLUSTER_SIZE])
        assert len(set((idx % n_sub).tolist())) == 1 and (idx >= 0).all()
    # without the option the draws are exactly those of the plain sampler
    a = pool.batch(np.random.default_rng(5), size, 2)
    b = pool.batch(np.random.default_rng(5), size, 2, 0.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    rng = np.random.default_rng(5)
    dom = rng.choice(2, size=size, p=pool.weights)
    lo, hi = pool.offsets[dom], pool.offsets[dom + 1]
    expect = lo + (rng.random(size) * (hi - lo)).astype(np.int64)
    got = (a[0] * P.STD + P.MEAN)[:, 0, 16, 16].mul(255).round().long().numpy()
    assert (got == pool.images[expect][:, 16, 16, 0]).all()


def test_hard_share_out_of_range_is_refused(tmp_path):
    cfg = P.PretrainConfig(steps=1, hard_share=1.5)
    with pytest.raises(ValueError, match="hard_share"):
        P.pretrain({}, cfg, tmp_path / "state.pt", progress=False)


_ROWS = [(c, st) for c in range(6) for st in ("emoji", "outline") if not (c == 5 and st == "outline")]
"""Concepts c0…c5 drawn as "emoji" and "outline" (c5 as an emoji only)."""


def _two_style_domain() -> Domain:
    n = len(_ROWS)
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    facts = [frozenset({f"concept=c{c}", f"style={st}"}) for c, st in _ROWS]
    caps = [[Caption(f"an {st} of c{c}.", facts[i])] for i, (c, st) in enumerate(_ROWS)]
    return Domain("emoji", images, np.arange(n), caps, facts, np.arange(n), tuple(f"c{c}" for c, _ in _ROWS))


def _digits_domain() -> Domain:
    images = np.zeros((4, 32, 32, 3), np.uint8)
    return Domain("digits", images, np.arange(4), [[Caption(f"a digit {i}.", frozenset({f"d={i}"}))]
                  for i in range(4)], [frozenset({f"d={i}"}) for i in range(4)], np.arange(4),
                  tuple(str(i) for i in range(4)))  # fmt: skip


def _two_style_pool():
    world = {"emoji": _two_style_domain(), "digits": _digits_domain()}
    return P.Pool(world, open_clip.get_tokenizer(P.MODEL), {"emoji": 0.5, "digits": 0.5}), _ROWS


def test_pair_batches_end_with_two_styles_of_one_concept():
    pool, rows = _two_style_pool()
    assert pool.pair_concepts == [f"concept=c{c}" for c in range(5)]  # c5 has one style: never paired
    size, share = 32, 0.5
    x, _, _, concept = pool.batch(np.random.default_rng(1), size, 0, 0.0, share)
    n = pool.n_pairs(size, share)
    assert n == 8 and x.shape[0] == size
    picture = (x * P.STD + P.MEAN)[:, 0, 16, 16].mul(255).round().long().numpy()
    for a, b in zip(picture[-2 * n : -n], picture[-n:]):
        (ca, sa), (cb, sb) = rows[a], rows[b]
        assert ca == cb != 5 and sa != sb
    assert (concept[-2 * n :].numpy() >= 0).all() and torch.equal(concept[-2 * n : -n], concept[-n:])
    a = pool.batch(np.random.default_rng(5), size, 2)
    b = pool.batch(np.random.default_rng(5), size, 2, 0.0, 0.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # without pairs: the plain sampler's draws
    with pytest.raises(ValueError, match="more than a batch"):
        pool.batch(np.random.default_rng(0), size, 0, 0.0, 1.5)


def test_pair_loss_matches_a_plain_float64_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1)
    concept = [0, 1, 0, 2, 3]  # pairs 0 and 2 show one concept: neither is the other's negative
    same = torch.tensor([[i == j for j in concept] for i in concept])
    scale = torch.tensor(7.0, dtype=torch.float64)
    total = 0.0
    for k in range(5):
        for rows in ((a[k] @ b.t()), (b[k] @ a.t())):
            keep = [j for j in range(5) if j == k or concept[j] != concept[k]]
            z = scale * rows[keep]
            total += -(z[keep.index(k)] - torch.logsumexp(z, 0)).item()
    assert P.loss_pairs(a, b, scale, same).item() == pytest.approx(total / 10, rel=1e-12)


def test_pretraining_with_pairs_runs_and_shares_out_of_range_are_refused(tmp_path):
    world = {"emoji": _two_style_domain(), "digits": _digits_domain()}
    cfg = P.PretrainConfig(steps=2, batch_size=16, warmup=1, pair_share=0.5, threads=1)
    model, summary = P.pretrain(
        world, cfg, tmp_path / "s.pt", progress=False, domain_weights={"emoji": 0.5, "digits": 0.5}
    )
    assert summary["steps_done"] == 2 and np.isfinite(summary["final_loss_mean_last_50"])
    with pytest.raises(ValueError, match="pair_share"):
        P.pretrain({}, P.PretrainConfig(steps=1, pair_share=-0.1), tmp_path / "t.pt", progress=False)


def _reference_style(model, domain, artist):
    tok = open_clip.get_tokenizer(P.MODEL)
    truth = list(P2.ZERO_SHOT_STYLE).index(artists.ARTISTS[artist].style)
    hits = 0
    for img, label in zip(domain.images, domain.labels):
        x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255 - P.MEAN) / P.STD
        f = F.normalize(model.encode_image(x), dim=-1)
        name = domain.class_names[label]
        t = F.normalize(model.encode_text(tok([v.format(name) for v in P2.ZERO_SHOT_STYLE.values()])), dim=-1)
        hits += int((f @ t.T).argmax() == truth)
    return hits / len(domain)


@torch.no_grad()
def test_style_accuracy_matches_a_picture_by_picture_reference(two_artists):
    small, split = two_artists
    model = P.new_model(0).eval()
    pairs = W2.drawn_pairs([small.by_name[n] for n in split["id"]], ["noto"])
    d = W2.pictures("id", pairs, 2, "val", small, None)
    fast = P2.style_accuracy(model, [(d, "noto")], batch_size=4)
    assert fast == pytest.approx(_reference_style(model, d, "noto"))
    c = P2.context_cosines(model, list(split["id"]))
    assert set(c) == {"a photo of a", "an outline of a"} and all(-1 <= v <= 1 for v in c.values())


def _small_script_world(monkeypatch, small, split):
    """The v2 script on the small hierarchy and split, with a small v1 evaluation world."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import pretrain_mini_clip as script

    monkeypatch.setattr(emoji, "load_hierarchy", lambda: small)
    monkeypatch.setattr(splits, "published", lambda: split)
    monkeypatch.setattr(
        script.W, "evaluation_world", lambda: {"shapes": script.W.shapes(16, seed=1, part="eval")}
    )
    return script


TINY_RUN = ["--steps", "3", "--batch-size", "16", "--warmup", "1", "--per-pair", "2", "--v1-share", "0",
            "--val-per-pair", "1", "--quiet"]  # fmt: skip
"""A v2 pretraining run of a few seconds."""


def test_the_v2_script_trains_measures_val_and_installs_only_with_the_test_part(
    two_artists, tmp_path, monkeypatch
):
    from negprompt import bundled

    script = _small_script_world(monkeypatch, *two_artists)
    out = tmp_path / "run"
    args = ["--world", "v2", "--out", str(out), *TINY_RUN]
    assert script.main(args + ["--install"]) == 2  # shipped weights carry the test part's numbers
    assert script.main(args) == 0
    card = json.loads((out / "negprompt-mini2-miniworld-v2.card.json").read_text())
    val = card["v2"]["val"]
    assert card["tag"] == "miniworld-v2" and card["model"] == P2.MODEL_V2 and "test" not in card["v2"]
    assert card["recipe"]["loss"].startswith("symmetric contrastive loss, each image's own caption")
    assert val["id_classes"] == 3 and val["id_images"] == 3  # noto only: symbola is the covariate artist
    assert 0 <= val["id_top1"] <= 1 and 0 <= val["style_top1"] <= 1
    assert set(val["id_top1_by_artist"]) == {"noto"}
    assert np.isfinite(card["trained_on"]["final_loss_mean_last_50"])
    assert "twemoji" in card["data"] and "CC-BY 4.0" in card["data"]["twemoji"]
    text = (out / "MODEL_CARD-miniworld-v2.md").read_text()
    assert "negprompt-mini2" in text and "width 128" in text and "not measured on test" in text
    # with the test part, --install copies weights, card and Markdown into the package folder
    folder = tmp_path / "model_weights"
    folder.mkdir()
    monkeypatch.setattr(bundled, "_DIR", folder)
    assert script.main(args + ["--test", "--install", "--force"]) == 0
    card = json.loads((folder / "negprompt-mini2-miniworld-v2.card.json").read_text())
    assert "test" in card["v2"] and isinstance(card["v2_targets_met"], bool)
    assert (folder / "negprompt-mini2-miniworld-v2.safetensors").stat().st_size == card["bytes"]
    assert (folder / "MODEL_CARD-miniworld-v2.md").is_file()


def test_training_on_one_machine_and_measuring_on_another(two_artists, tmp_path, monkeypatch):
    """--train-only writes weights and the summary and measures nothing; --evaluate-only, elsewhere,
    writes the card from them with the recorded recipe and device, and trains nothing."""
    script = _small_script_world(monkeypatch, *two_artists)
    out = tmp_path / "run"
    args = ["--world", "v2", "--out", str(out), *TINY_RUN, "--hard-share", "0.5"]
    assert script.main(["--world", "v2", "--out", str(out), "--evaluate-only", "--quiet"]) == 2  # nothing yet
    assert script.main(args + ["--train-only", "--test"]) == 2
    measured, real_evaluate = [], script.P2.evaluate
    monkeypatch.setattr(script.P2, "evaluate", lambda *a, **k: measured.append(a[2]) or {"id_top1": 0.0})
    assert script.main(args + ["--train-only"]) == 0
    assert measured == [] and not list(out.glob("*.card.json"))
    recorded = json.loads((out / script.SUMMARY_FILE).read_text())
    assert recorded["recipe"]["hard_share"] == 0.5 and recorded["summary"]["steps_done"] == 3
    weights = out / "negprompt-mini2-miniworld-v2.safetensors"
    before = weights.read_bytes()
    monkeypatch.setattr(script.P2, "evaluate", real_evaluate)
    monkeypatch.setattr(script.P, "pretrain", lambda *a, **k: pytest.fail("--evaluate-only must not train"))
    (out / "state.pt").unlink()  # the checkpoint stays on the machine that trained
    assert script.main(["--world", "v2", "--out", str(out), "--evaluate-only", "--test", "--quiet"]) == 0
    card = json.loads((out / "negprompt-mini2-miniworld-v2.card.json").read_text())
    assert card["recipe"]["hard_share"] == 0.5 and set(card["v2"]) == {"val", "test"}
    assert card["trained_on"]["steps_done"] == 3 and card["trained_on"]["device"] == "cpu"
    peak = card["trained_on"]["peak_rss_mb_this_process"]  # the training process's, carried to the card
    assert peak == recorded["summary"]["peak_rss_mb_this_process"] and 50 < peak < 64_000
    assert f"peak memory {peak / 1024:.1f} GB resident" in (out / "MODEL_CARD-miniworld-v2.md").read_text()
    assert weights.read_bytes() == before
    (out / script.SUMMARY_FILE).write_text("{not json")
    assert script.main(["--world", "v2", "--out", str(out), "--evaluate-only", "--quiet"]) == 2
    assert script.main(["--out", str(out), "--evaluate-only"]) == 2  # v1 has no such mode


def test_a_card_states_the_peak_memory_its_run_recorded(monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import pretrain_mini_clip as script

    peak = P.peak_memory("cpu")
    assert set(peak) == {"peak_rss_mb_this_process"} and peak["peak_rss_mb_this_process"] > 50
    assert script.peak_words({"peak_rss_mb_this_process": 2150.4}) == ", peak memory 2.1 GB resident"
    both = {"peak_rss_mb_this_process": 6144.0, "peak_cuda_mb_this_process": 3584.0}
    assert script.peak_words(both) == ", peak memory 6.0 GB resident and 3.5 GB on the GPU"
    assert script.peak_words({"steps_done": 3}) == ""  # a card from before peaks were recorded
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(P.torch.cuda, "max_memory_allocated", lambda device: 3 * 2**30)
    assert P.peak_memory("cuda")["peak_cuda_mb_this_process"] == 3072.0


def test_recipe_comparison_reads_val_only_and_applies_each_variant(two_artists, tmp_path, monkeypatch):
    small, split = two_artists
    sys.path.insert(0, str(ROOT / "scripts"))
    import compare_v2_recipes as script

    monkeypatch.setattr(script, "load_hierarchy", lambda: small)
    monkeypatch.setattr(script.splits, "published", lambda: split)
    parts = []
    real = W2.pictures
    monkeypatch.setattr(script.W2, "pictures", lambda *a, **k: parts.append(a[3]) or real(*a, **k))
    trained, real_pretrain = [], P.pretrain

    def pretrain(world, cfg, *a, **k):
        trained.append((list(world), k["domain_weights"]))
        return real_pretrain(world, cfg, *a, **k)

    monkeypatch.setattr(script.P, "pretrain", pretrain)
    out = tmp_path / "r.jsonl"
    base = {"steps": 2, "batch_size": 8, "warmup": 1, "per_pair": 2, "v1_share": 0.0}
    args = ["--out", str(out), "--steps", "2", "--val-per-pair", "1",
            "--variant", json.dumps({"name": "a", **base}),
            "--variant", json.dumps({"name": "b", **base, "arch": {"text_cfg.width": 32, "text_cfg.heads": 2}}),
            "--variant", json.dumps({"name": "c", **base, "outline_share": 0.5})]  # fmt: skip
    assert script.main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert parts.count("pretrain") == 1  # one pool for the three, the outlines' domain taken from it
    shares = [{k: v for k, v in w.items() if v} for _, w in trained]  # v1's domains take 0 here
    assert trained[0][0] == ["emoji"] and shares[0] == {"emoji": 1.0}
    assert trained[2][0] == ["emoji", "emoji outlines"] and shares[2] == {"emoji": 0.5, "emoji outlines": 0.5}
    assert [r["name"] for r in rows] == ["a", "b", "c"] and rows[1]["arch"] == {
        "text_cfg.width": 32,
        "text_cfg.heads": 2,
    }
    assert set(parts) == {"pretrain", "val"}  # the test part is never rendered
    assert rows[0]["images_per_artist"] == {"noto": 3} and 0 <= rows[0]["noto/photo"] <= 1
    assert open_clip.get_model_config("negprompt-mini2-variant1")["text_cfg"]["width"] == 32
    with pytest.raises(SystemExit, match="unknown recipe fields"):
        script.main(["--out", str(out), "--variant", json.dumps({"name": "x", "lr_typo": 1})])
    parts.clear()
    with pytest.raises(SystemExit, match=r"variant 'y': outline_share=1.0 must be in \[0, 1\)"):
        script.main(["--out", str(out), "--variant", json.dumps({"name": "y", **base, "outline_share": 1.0})])
    assert parts == []  # refused before a pool or a val set is drawn


def test_a_recipe_may_hold_out_another_artist_and_cannot_ship_it(two_artists, tmp_path, monkeypatch):
    """``--covariate-artist`` trains and measures with that artist's ID drawings held out instead of the
    published split's; an unknown artist is refused by name, and such a run cannot be installed."""
    small, split = two_artists
    cfg = P2.PretrainV2Config(covariate_artist="noto")
    moved = P2.with_covariate(split, cfg)
    assert moved["covariate_artist"] == "noto" and split["covariate_artist"] == "symbola"  # a copy
    assert P2.with_covariate(split, P2.PretrainV2Config()) is split
    pool = W2.pretraining_pairs(small, moved)
    ids = set(split["id"])
    assert not [c for c, a in pool if a == "noto" and c.name in ids]
    assert {c.name for c, a in pool if a == "symbola"} >= ids  # the other artist's ID drawings are in
    with pytest.raises(ValueError, match="'nobody' is not an artist.*'noto'"):
        P2.with_covariate(split, P2.PretrainV2Config(covariate_artist="nobody"))

    script = _small_script_world(monkeypatch, small, split)
    out = tmp_path / "run"
    args = ["--world", "v2", "--out", str(out), *TINY_RUN, "--covariate-artist", "noto"]
    assert script.main(args) == 0
    card = json.loads((out / "negprompt-mini2-miniworld-v2.card.json").read_text())
    assert card["recipe"]["covariate_artist"] == "noto" and card["data"]["emoji"].endswith(
        "covariate artist noto"
    )
    assert set(card["v2"]["val"]["id_top1_by_artist"]) == {"symbola"}
    assert script.main(args + ["--test", "--install", "--force"]) == 2  # not the published split's artist
    bad = ["--world", "v2", "--out", str(tmp_path / "bad"), *TINY_RUN, "--covariate-artist", "nobody"]
    assert script.main(bad) == 2


def test_recipe_comparison_refuses_another_held_out_artist(two_artists, tmp_path, monkeypatch):
    """A variant with its own covariate artist would be measured on val sets that are not its own."""
    small, split = two_artists
    sys.path.insert(0, str(ROOT / "scripts"))
    import compare_v2_recipes as script

    monkeypatch.setattr(script, "load_hierarchy", lambda: small)
    monkeypatch.setattr(script.splits, "published", lambda: split)
    variant = json.dumps({"name": "other", "steps": 2, "covariate_artist": "noto"})
    with pytest.raises(SystemExit, match="--covariate-artist NAME"):
        script.main(["--out", str(tmp_path / "r.jsonl"), "--steps", "2", "--variant", variant])
    assert not (tmp_path / "r.jsonl").exists()
