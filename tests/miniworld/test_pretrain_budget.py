"""Pretraining's arithmetic option (bf16), runs sized by a time budget, and recipe sweeps that keep their
weights for measuring elsewhere."""

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from negprompt.miniworld import pretrain as P
from negprompt.miniworld import pretrain_v2 as P2
from tests.miniworld.test_pretrain_v2 import TINY_RUN, _digits_domain, _small_script_world, two_artists  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _plain_steps(world, cfg, steps):
    """The training loop written out step by step, as it was before it became ``_train_step``."""
    torch.set_num_threads(cfg.threads)
    model = P.new_model(cfg.seed, cfg.model)
    pool = P.Pool(world, open_clip.get_tokenizer(cfg.model), {"digits": 1.0})
    opt = torch.optim.AdamW(P._param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    model.train()
    losses = []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = P.lr_at(step, cfg)
        rng = np.random.default_rng([cfg.seed, step])
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        x, tokens, pos, _ = pool.batch(rng, cfg.batch_size, cfg.shift, 0.0, 0.0)
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(P.encode_text(model, tokens), dim=-1)
        loss = P.loss_with_duplicates(img, txt, model.logit_scale.exp(), pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    return model, losses


def test_fp32_training_is_the_plain_loop_to_the_bit_and_bf16_stays_close(tmp_path):
    world = {"digits": _digits_domain()}
    cfg = P.PretrainConfig(steps=3, batch_size=16, warmup=1, threads=1)
    model, _ = P.pretrain(world, cfg, tmp_path / "a.pt", progress=False, domain_weights={"digits": 1.0})
    ref, ref_losses = _plain_steps(world, cfg, 3)
    state = torch.load(tmp_path / "a.pt", weights_only=True)
    assert state["history"] == ref_losses
    for (k, v), w in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(v, w), k
    half = replace(cfg, precision="bf16")
    _, summary = P.pretrain(world, half, tmp_path / "b.pt", progress=False, domain_weights={"digits": 1.0})
    bf16 = torch.load(tmp_path / "b.pt", weights_only=True)["history"]
    assert bf16 != ref_losses  # the towers really ran in bf16 ...
    assert bf16[0] == pytest.approx(
        ref_losses[0], rel=2e-2
    )  # ... and the first loss is the same to bf16's precision
    assert summary["steps_done"] == 3 and all(np.isfinite(bf16))
    # a checkpoint of one precision does not resume under the other
    with pytest.raises(RuntimeError, match="another recipe"):
        P.pretrain(
            world, replace(cfg, steps=4), tmp_path / "b.pt", progress=False, domain_weights={"digits": 1.0}
        )
    with pytest.raises(ValueError, match="precision 'fp16'"):
        P.pretrain(world, replace(cfg, precision="fp16"), tmp_path / "c.pt", progress=False)


def test_a_time_budget_becomes_a_fixed_number_of_steps(tmp_path):
    cfg = P.PretrainConfig(warmup=100)
    assert P.steps_within(600, 0.2, cfg) == 3000
    assert P.steps_within(5, 0.2, cfg) == 101  # never shorter than the warm-up and one step
    for bad in ((0, 0.2), (10, 0.0), (-1, 1)):
        with pytest.raises(ValueError, match="must be positive"):
            P.steps_within(*bad, cfg)
    world = {"digits": _digits_domain()}
    small = P.PretrainConfig(batch_size=16, warmup=1, threads=1)
    per_step = P.seconds_per_step(world, small, domain_weights={"digits": 1.0}, steps=2)
    assert 0 < per_step < 30
    assert not list(tmp_path.iterdir())  # the timing leaves nothing behind


def test_the_script_sizes_a_run_by_seconds_records_it_and_resumes_at_the_same_length(
    two_artists,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    script = _small_script_world(monkeypatch, *two_artists)
    monkeypatch.setattr(script.P, "seconds_per_step", lambda *a, **k: 0.25)
    out = tmp_path / "run"
    tiny = [a for a in TINY_RUN if a not in ("--steps", "3")]
    args = ["--world", "v2", "--out", str(out), *tiny, "--train-only", "--seconds", "1.2"]
    for bad in (["--steps", "3"], ["--seconds", "0"]):
        with pytest.raises(SystemExit) as exc:
            script.main(args + bad)
        assert exc.value.code == 2
    assert "not both" in capsys.readouterr().err
    # interrupted after 2 of the 4 steps that fit; the rerun keeps 4 even if the machine got slower
    assert script.main(args + ["--stop-after", "2"]) == 0
    assert "4 steps fit in 1 s at 0.250 s per step" in capsys.readouterr().out
    monkeypatch.setattr(
        script.P, "seconds_per_step", lambda *a, **k: pytest.fail("the length is already fixed")
    )
    assert script.main(args) == 0
    cfg, summary, arch = P2.load_run(out)
    assert cfg.steps == 4 and summary["steps_done"] == 4 and arch is None
    assert summary["time_budget_s"] == 1.2 and summary["steps_from"] == "checkpoint"


def test_a_sweep_at_equal_time_keeps_each_variant_to_measure_elsewhere(two_artists, tmp_path, monkeypatch):  # noqa: F811
    small, split = two_artists
    sys.path.insert(0, str(ROOT / "scripts"))
    import compare_v2_recipes as sweep

    monkeypatch.setattr(sweep, "load_hierarchy", lambda: small)
    monkeypatch.setattr(sweep.splits, "published", lambda: split)
    timed, rendered = [], []
    monkeypatch.setattr(sweep.P, "seconds_per_step", lambda w, cfg, **k: timed.append(cfg.model) or 0.5)
    real_world = sweep.P2.pretraining_world
    monkeypatch.setattr(
        sweep.P2,
        "pretraining_world",
        lambda cfg, *a, **k: rendered.append(cfg.per_pair) or real_world(cfg, *a, **k),
    )
    out, keep = tmp_path / "r.jsonl", tmp_path / "keep"
    base = {"batch_size": 8, "warmup": 1, "per_pair": 2, "v1_share": 0.0}
    args = ["--out", str(out), "--seconds", "1.6", "--save", str(keep), "--val-per-pair", "1",
            "--variant", json.dumps({"name": "plain/bf16", **base, "precision": "bf16"}),
            "--variant", json.dumps({"name": "narrow", **base, "arch": {"text_cfg.width": 32, "text_cfg.heads": 2}}),
            "--variant", json.dumps({"name": "fixed", **base, "steps": 2}),
            "--variant", json.dumps({"name": "fewer pictures", **base, "per_pair": 1, "steps": 2})]  # fmt: skip
    assert sweep.main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["steps"] for r in rows] == [3, 3, 2, 2]  # 1.6 s / 0.5 s; a variant's own steps win
    assert rendered == [2, 1]  # one pool per pictures-per-drawing, shared by the variants that use it
    assert timed == ["negprompt-mini2", "negprompt-mini2-variant1"]
    assert rows[0]["time_budget_s"] == 1.6 and "time_budget_s" not in rows[2]
    assert [r["saved"] for r in rows] == ["0-plain-bf16", "1-narrow", "2-fixed", "3-fewer-pictures"]
    assert P2.load_run(keep / "3-fewer-pictures")[0].per_pair == 1
    # the same sweep run again finds every variant finished and trains nothing
    monkeypatch.setattr(
        sweep.P, "pretrain", lambda *a, **k: pytest.fail("a finished variant was trained again")
    )
    assert sweep.main(args) == 0 and len(out.read_text().splitlines()) == 4
    changed = [a.replace('"name": "fixed", ', '"name": "fixed", "lr": 0.01, ') for a in args]
    with pytest.raises(SystemExit, match="another recipe under the name 'fixed'"):
        sweep.main(changed)
    assert not list(keep.glob("*/state.pt"))  # only weights and summaries travel
    cfg, summary, arch = P2.load_run(keep / "1-narrow")
    assert arch == {"base": "negprompt-mini2", "changes": {"text_cfg.width": 32, "text_cfg.heads": 2}}
    assert cfg.model == "negprompt-mini2-variant1" and summary["probe_seconds_per_step"] == 0.5
    assert P2.load_run(keep / "0-plain-bf16")[0].precision == "bf16"
    # measured by the pretraining script in a fresh registry: the variant is registered from the summary
    script = _small_script_world(monkeypatch, small, split)
    del open_clip.factory._MODEL_CONFIGS["negprompt-mini2-variant1"]
    assert script.main(["--world", "v2", "--out", str(keep / "1-narrow"), "--evaluate-only", "--quiet"]) == 0
    card = json.loads((keep / "1-narrow" / "negprompt-mini2-variant1-miniworld-v2.card.json").read_text())
    assert card["architecture_variant"]["changes"]["text_cfg.width"] == 32 and "val" in card["v2"]
    folder = tmp_path / "package"
    folder.mkdir()
    monkeypatch.setattr(script.bundled, "_DIR", folder)
    argv = [
        "--world",
        "v2",
        "--out",
        str(keep / "1-narrow"),
        "--evaluate-only",
        "--test",
        "--install",
        "--force",
    ]
    assert script.main(argv + ["--quiet"]) == 2  # a variant ships only under a config of its own
    assert not list(folder.iterdir())


def test_a_damaged_or_foreign_summary_is_named_with_its_fix(tmp_path):
    (tmp_path / P2.SUMMARY_FILE).write_text(json.dumps({"recipe": {"lr_typo": 1}, "summary": {}}))
    with pytest.raises(
        ValueError, match="pretrain-summary.json cannot be read .*compare_v2_recipes.py --save"
    ):
        P2.load_run(tmp_path)
    arch = {"base": "negprompt-mini2", "changes": {"vision_cfg.depth": 9}}
    recipe = {"model": "negprompt-mini2-variant9"}
    (tmp_path / P2.SUMMARY_FILE).write_text(json.dumps({"recipe": recipe, "summary": {}, "arch": arch}))
    with pytest.raises(ValueError, match="no config entry 'vision_cfg.depth'"):
        P2.load_run(tmp_path)
    # a name that would overwrite a real config, or put the weights outside the folder, is refused
    for model, change in (("negprompt-mini2", {"text_cfg.width": 32}), ("../../x", {})):
        arch = {"base": "negprompt-mini2", "changes": change} if change else None
        summary = {"recipe": {"model": model}, "summary": {}} | ({"arch": arch} if arch else {})
        (tmp_path / P2.SUMMARY_FILE).write_text(json.dumps(summary))
        with pytest.raises(ValueError, match="existing model config|unknown model config"):
            P2.load_run(tmp_path)
    assert open_clip.get_model_config("negprompt-mini2")["text_cfg"]["width"] == 128
    with pytest.raises(ValueError, match="letters, digits"):
        P2.derived_model("negprompt-mini2", {}, "../escape")
    (tmp_path / P2.SUMMARY_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="cannot be read"):
        P2.load_run(tmp_path)


def test_a_variant_may_set_a_tower_entry_its_base_config_leaves_at_the_default(monkeypatch):
    # the variants registered here stay out of other tests' registry
    monkeypatch.setattr(open_clip.factory, "_MODEL_CONFIGS", dict(open_clip.factory._MODEL_CONFIGS))
    monkeypatch.setattr(P2, "_DERIVED", set())
    # negprompt-mini2.json has no patch_dropout entry; open_clip reads one (0 by default)
    name = P2.derived_model("negprompt-mini2", {"vision_cfg.patch_dropout": 0.5}, "negprompt-mini2-testpd")
    assert open_clip.get_model_config(name)["vision_cfg"]["patch_dropout"] == 0.5
    assert "patch_dropout" not in open_clip.get_model_config("negprompt-mini2")["vision_cfg"]
    dropped, base = P.new_model(0, name), P.new_model(0, "negprompt-mini2")
    assert dropped.visual.patch_dropout.prob == 0.5
    base.load_state_dict(dropped.state_dict())  # the same weights: dropout adds no parameter
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        # measured with every patch: the variant's weights are the base architecture's
        torch.testing.assert_close(dropped.eval().encode_image(x), base.eval().encode_image(x))
        # trained on half the patches
        dropped.train()
        torch.manual_seed(1)
        assert not torch.allclose(dropped.encode_image(x), base.encode_image(x))
    with pytest.raises(ValueError, match="no config entry 'vision_cfg.no_such_entry'"):
        P2.derived_model("negprompt-mini2", {"vision_cfg.no_such_entry": 1}, "negprompt-mini2-testbad")
