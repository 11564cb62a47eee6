"""Training uses every setting it is given, and reports what it really computed.

Every setting that belongs in a run changes the learned contexts; an epoch's loss record is the
loss over the whole training set (checked against the loss functions on all rows at once); the
learning rate of each epoch follows the cosine-with-warm-up formula written out by hand; the
validation values are recomputed in float64.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from negprompt.losses import stage2_loss
from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
from negprompt.train import (
    TrainConfig,
    compute_loss,
    local_text_features,
    sample_classes,
    train_prompts,
    train_step,
    validate,
)
from negprompt.train.validate import selection_key
from tests.conftest import unit_features

NAMES = ["cat", "dog", "red car", "airplane"]
# 16 rows in batches of 6: 3 steps of 6, 6 and 4 rows per epoch
BASE = TrainConfig(stage=2, epochs=2, batch_size=6, lr=0.3, select="last")


@pytest.fixture(scope="module")
def data():
    return unit_features(len(NAMES), 4, seed=11)


def _train(backbone, data, cfg, **kw):
    return train_prompts(backbone, NAMES, *data, cfg, progress=False, **kw)


@pytest.fixture(scope="module")
def base_run(tiny_backbone, data):
    return _train(tiny_backbone, data, BASE)


@pytest.mark.parametrize(
    "changes",
    [
        {"lr": 0.5},
        {"momentum": 0.9},
        {"weight_decay": 0.1},
        {"optimizer": "adamw"},
        {"schedule": "constant"},
        {"warmup_epochs": 1},
        {"img_loss": "oe"},
        {"w_img": 0.5},
        {"w_pd": 1.0},
        {"w_nn": 1.0},
        {"seed": 1},
        {"batch_size": 4},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_every_setting_changes_the_learned_contexts(tiny_backbone, data, base_run, changes):
    other = _train(tiny_backbone, data, dataclasses.replace(BASE, **changes))
    assert float((other.learner.neg_ctx - base_run.learner.neg_ctx).detach().abs().max()) > 1e-6
    assert torch.equal(other.learner.pos_ctx, base_run.learner.pos_ctx)  # stage 2 keeps the positives


@pytest.mark.parametrize(
    ("setting", "low", "high", "extra"),
    [
        ("weight_decay", 0.0, 0.5, {"optimizer": "adamw"}),  # AdamW's own default is 0.01
        ("warmup_lr", 1e-5, 1e-2, {"warmup_epochs": 1}),
        ("lr", 0.3, 0.05, {"optimizer": "adamw"}),  # AdamW's own default is 0.001
    ],
)
def test_settings_with_another_default_downstream_are_used(tiny_backbone, data, setting, low, high, extra):
    runs = [
        _train(tiny_backbone, data, dataclasses.replace(BASE, **extra, **{setting: v})) for v in (low, high)
    ]
    assert float((runs[0].learner.neg_ctx - runs[1].learner.neg_ctx).detach().abs().max()) > 1e-6


def test_each_step_encodes_the_sampled_classes_only(tiny_backbone, data):
    seen = []

    def spy(learner, classes, class_idx, kind):
        seen.append((kind, class_idx.tolist()))
        return (learner.positive_features if kind == "pos" else learner.negative_features)(classes, class_idx)

    cfg = dataclasses.replace(BASE, epochs=1, batch_size=1, class_subset_size=2, select="val")
    _train(tiny_backbone, data, cfg, text_fn=spy, val_features=data[0][:4], val_labels=data[1][:4])
    assert seen[0] == ("pos", [0, 1, 2, 3])  # the frozen positives of all classes, once
    steps, validation = seen[1:-1], seen[-1]
    assert len(steps) == 16 and all(kind == "neg" and len(idx) == 2 for kind, idx in steps)
    assert len({tuple(idx) for _, idx in steps}) > 1  # one row per step: its label plus a random class
    assert validation == ("neg", [0, 1, 2, 3])  # validation goes through the same text_fn
    first = list(seen)
    seen.clear()
    _train(tiny_backbone, data, cfg, text_fn=spy, val_features=data[0][:4], val_labels=data[1][:4])
    assert seen == first  # the random classes come from the seeded generator


def test_the_best_epoch_is_the_first_with_the_highest_accuracy_then_lowest_loss(
    tiny_backbone, data, monkeypatch
):
    import negprompt.train.loop as loop

    scripted = [(0.5, 1.0), (0.75, 2.0), (0.75, 1.5), (0.75, 1.5), (0.5, 0.1)]  # (val_acc, val_loss)
    calls = []

    def validate(*args, **kwargs):
        calls.append(None)
        return dict(zip(("val_acc", "val_loss"), scripted[(len(calls) - 1) % 5], strict=True))

    monkeypatch.setattr(loop, "validate", validate)
    cfg = dataclasses.replace(BASE, stage=1, epochs=5, select="val")
    result = _train(tiny_backbone, data, cfg, val_features=data[0], val_labels=data[1])
    assert result.selected == "val" and result.selected_epoch == 3
    after3 = _train(tiny_backbone, data, cfg, val_features=data[0], val_labels=data[1], stop_after_epoch=3)
    assert torch.equal(result.learner.pos_ctx, after3.learner.pos_ctx)


def _float64_stage1(features, pos, labels, logit_scale):
    f = F.normalize(features.double(), dim=-1)
    t = F.normalize(pos.double(), dim=-1)
    logits = math.exp(logit_scale) * f @ t.T
    loss = -sum(float(torch.log_softmax(row, 0)[y]) for row, y in zip(logits, labels.tolist(), strict=True))
    acc = sum(int(row.argmax()) == y for row, y in zip(logits, labels.tolist(), strict=True))
    return loss / len(labels), acc / len(labels)


def test_the_epoch_loss_is_the_loss_over_the_whole_training_set(tiny_backbone, data):
    scale = float(tiny_backbone.model.logit_scale)
    tiny_lr = dataclasses.replace(BASE, lr=1e-9, epochs=1)  # the contexts stay where they start
    stage1 = _train(tiny_backbone, data, dataclasses.replace(tiny_lr, stage=1))
    with torch.no_grad():
        pos = stage1.learner.positive_features(stage1.learner.class_names(NAMES))
    loss, _ = _float64_stage1(data[0], pos, data[1], scale)
    assert stage1.history[0]["loss"] == pytest.approx(loss, rel=1e-5)
    assert stage1.history[0]["epoch"] == 1
    cfg = dataclasses.replace(tiny_lr, w_img=0.7, w_pd=0.3, w_nn=0.2, img_loss="oe")
    stage2 = _train(tiny_backbone, data, cfg)
    learner = stage2.learner
    with torch.no_grad():
        classes = learner.class_names(NAMES)
        terms = stage2_loss(
            data[0], learner.positive_features(classes), learner.negative_features(classes), data[1],
            scale, img_loss="oe", w_img=0.7, w_pd=0.3, w_nn=0.2,
        )  # fmt: skip
    record = stage2.history[0]
    for name, key in [("total", "loss"), ("img", "img"), ("pd", "pd"), ("nn", "nn")]:
        assert record[key] == pytest.approx(float(terms[name]), rel=1e-5, abs=1e-7), name


def test_the_learning_rate_of_each_epoch_follows_warmup_and_cosine(tiny_backbone, data):
    cfg = dataclasses.replace(BASE, epochs=3, warmup_epochs=1, warmup_lr=1e-4, lr=0.2)
    history = _train(tiny_backbone, data, cfg).history
    # 3 steps per epoch, 9 in all, 3 of warm-up; an epoch records the rate of its last step (2, 5, 8)
    expect = [1e-4] + [0.2 * 0.5 * (1 + math.cos(math.pi * (s - 3) / 6)) for s in (5, 8)]
    assert [r["lr"] for r in history] == pytest.approx(expect, rel=1e-9)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert all(0 <= r["seconds"] < 60 for r in history)
    flat = _train(tiny_backbone, data, dataclasses.replace(cfg, schedule="constant")).history
    assert [r["lr"] for r in flat] == pytest.approx([1e-4, 0.2, 0.2], rel=1e-9)


def test_validation_values_against_float64(tiny_backbone, data):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    with torch.no_grad():
        learner.pos_ctx.add_(torch.randn(learner.pos_ctx.shape, generator=torch.Generator().manual_seed(2)))
        learner.init_negatives(noise=0.5)
    classes = learner.class_names(NAMES)
    features, labels = data[0] * 3.0, data[1]  # not unit length: validation normalises
    values = validate(learner, classes, features, labels, dataclasses.replace(BASE, stage=1), 1.5)
    with torch.no_grad():
        pos = learner.positive_features(classes)
    loss, acc = _float64_stage1(features, pos, labels, 1.5)
    assert set(values) == {"val_acc", "val_loss"}
    assert values["val_acc"] == pytest.approx(acc, abs=1e-9) and 0 < acc < 0.5  # not 1 - acc
    assert values["val_loss"] == pytest.approx(loss, rel=1e-5)
    cfg = dataclasses.replace(BASE, img_loss="oe", w_img=0.7, w_pd=0.3, w_nn=0.2)
    with torch.no_grad():
        neg = learner.negative_features(classes)
    terms = stage2_loss(features, pos, neg, labels, 1.5, img_loss="oe", w_img=0.7, w_pd=0.3, w_nn=0.2)
    values = validate(learner, classes, features, labels, cfg, 1.5, pos_text=pos)
    expect = {"val_loss": "total", "val_img": "img", "val_pd": "pd", "val_nn": "nn"}
    assert set(values) == set(expect)
    for key, term in expect.items():
        assert values[key] == pytest.approx(float(terms[term]), rel=1e-5, abs=1e-7), key


def test_compute_loss_uses_the_configured_stage2_loss(tiny_backbone, data):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    with torch.no_grad():
        learner.init_negatives(noise=0.5)
    classes = learner.class_names(NAMES)
    with torch.no_grad():
        pos, neg = learner(classes)
    x, y = data[0][:6], data[1][:6]
    cfg = dataclasses.replace(BASE, img_loss="oe", w_img=0.7, w_pd=0.3, w_nn=0.2)
    got = compute_loss(learner, classes, x, y, cfg, 1.5, pos_text=pos)
    expect = stage2_loss(x, pos, neg, y, 1.5, img_loss="oe", w_img=0.7, w_pd=0.3, w_nn=0.2)
    for k in ("total", "img", "pd", "nn"):
        assert float(got[k]) == pytest.approx(float(expect[k]), rel=1e-5, abs=1e-7), k
    with pytest.raises(ValueError, match="class_idx must contain every label"):
        compute_loss(learner, classes, x, y, cfg, 1.5, class_idx=torch.tensor([0, 1]), pos_text=pos)
    with pytest.raises(ValueError, match="stage 2 needs the frozen positive text features"):
        compute_loss(learner, classes, x, y, cfg, 1.5)


def test_a_train_step_updates_with_this_batch_gradient_only(tiny_backbone, data):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    classes = learner.class_names(NAMES)
    cfg = dataclasses.replace(BASE, stage=1)
    optimizer = torch.optim.SGD([learner.pos_ctx], lr=0.5)
    train_step(learner, classes, data[0][:6], data[1][:6], cfg, 1.5, optimizer)
    before = learner.pos_ctx.detach().clone()
    x, y = data[0][6:12], data[1][6:12]
    reference = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    with torch.no_grad():
        reference.pos_ctx.copy_(before)
    values = train_step(reference, classes, x, y, cfg, 1.5)  # gradient of this batch alone
    train_step(learner, classes, x, y, cfg, 1.5, optimizer)
    torch.testing.assert_close(
        learner.pos_ctx.detach(), before - 0.5 * reference.pos_ctx.grad, atol=1e-7, rtol=0
    )
    assert set(values) == {"total"} and math.isfinite(values["total"])


def test_sample_classes_is_seeded_and_fills_up_to_the_size():
    labels = torch.tensor([4, 4, 9])
    draws = [sample_classes(labels, 100, 12, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert len(draws[0]) == 12 and {4, 9} <= set(draws[0].tolist())
    one_more = sample_classes(labels, 100, 3, torch.Generator().manual_seed(0))
    assert len(one_more) == 3 and {4, 9} <= set(one_more.tolist())
    assert torch.equal(sample_classes(labels, 10, 10, torch.Generator()), torch.arange(10))


def test_selection_prefers_accuracy_then_lower_loss():
    assert selection_key(1, {"val_acc": 0.5, "val_loss": 1.0}) > selection_key(
        1, {"val_acc": 0.5, "val_loss": 2.0}
    )
    assert selection_key(1, {"val_acc": 0.6, "val_loss": 3.0}) > selection_key(
        1, {"val_acc": 0.5, "val_loss": 1.0}
    )
    assert selection_key(2, {"val_loss": 1.0, "val_acc": 0.1}) > selection_key(
        2, {"val_loss": 2.0, "val_acc": 0.9}
    )


def test_inputs_that_cannot_train_are_refused(tiny_backbone, data):
    with pytest.raises(ValueError, match=r"config.device='cuda' but the backbone lives on cpu"):
        _train(tiny_backbone, data, dataclasses.replace(BASE, device="cuda"))
    assert _train(tiny_backbone, data, dataclasses.replace(BASE, epochs=1, device="cpu")).completed
    with pytest.raises(ValueError, match="features have width 32, the backbone 64"):
        train_prompts(tiny_backbone, NAMES, torch.zeros(16, 32), data[1], BASE, progress=False)
    with pytest.raises(ValueError, match="no training features"):
        train_prompts(tiny_backbone, NAMES, torch.zeros(0, 64), torch.zeros(0), BASE, progress=False)
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    with pytest.raises(ValueError, match="^pass either a learner or a prompt_config, not both"):
        _train(tiny_backbone, data, BASE, learner=learner, prompt_config=PromptConfig(n_neg=3))
    same = _train(
        tiny_backbone,
        data,
        dataclasses.replace(BASE, epochs=1),
        learner=learner,
        prompt_config=PromptConfig(n_neg=2),
    )
    assert same.learner is learner


def test_stage2_keeps_given_negatives_without_init(tiny_backbone, data):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    with torch.no_grad():
        learner.neg_ctx.add_(1.0)
    start = learner.neg_ctx.detach().clone()
    kept = _train(
        tiny_backbone,
        data,
        dataclasses.replace(BASE, epochs=1, lr=1e-9),
        learner=learner,
        init_negatives=False,
    )
    torch.testing.assert_close(kept.learner.neg_ctx.detach(), start, atol=1e-6, rtol=0)
    reset = _train(tiny_backbone, data, dataclasses.replace(BASE, epochs=1, lr=1e-9), learner=learner)
    assert float((reset.learner.neg_ctx - start).abs().max()) > 0.5  # back near the positive context


def test_an_unfinished_run_keeps_its_last_contexts_even_with_select_val(tiny_backbone, data, tmp_path):
    from negprompt.train import load_checkpoint

    cfg = dataclasses.replace(BASE, epochs=3, select="val")
    part = _train(
        tiny_backbone,
        data,
        cfg,
        val_features=data[0],
        val_labels=data[1],
        checkpoint_dir=tmp_path,
        stop_after_epoch=2,
    )
    assert not part.completed and part.selected == "last" and part.selected_epoch == 2
    state = load_checkpoint(tmp_path)
    assert torch.equal(part.learner.neg_ctx, state["neg_ctx"])
    assert state["best"]["epoch"] in (1, 2)


def test_the_summary_records_the_run(tiny_backbone, data, tmp_path):
    import json

    from negprompt.train import load_checkpoint

    cfg = dataclasses.replace(BASE, epochs=3, select="val")
    result = _train(
        tiny_backbone, data, cfg, val_features=data[0], val_labels=data[1], checkpoint_dir=tmp_path
    )
    best = 1 + min(range(3), key=lambda i: result.history[i]["val_loss"])
    summary = result.summary()
    assert summary == {
        "stage": 2,
        "config": cfg.to_dict(),
        "selected": "val",
        "selection_criterion": "val_loss",
        "selected_epoch": best,
        "epochs_run": 3,
        "steps": 3 * result.steps_per_epoch,
        "completed": True,
        "checkpoint": str(tmp_path / "checkpoint.pt"),
        "history": result.history,
    }
    assert result.steps_per_epoch >= 1
    assert json.loads(json.dumps(summary)) == summary
    state = load_checkpoint(tmp_path)
    assert (state["stage"], state["epoch"], state["best"]["epoch"]) == (2, 3, best)
    last = _train(tiny_backbone, data, dataclasses.replace(BASE, stage=1, epochs=1)).summary()
    assert (last["stage"], last["selected"], last["selection_criterion"], last["checkpoint"]) == (
        1,
        "last",
        None,
        None,
    )
    assert (last["selected_epoch"], last["epochs_run"], last["completed"]) == (1, 1, True)


def test_stage1_on_a_class_subset_is_the_loss_of_the_smaller_problem(tiny_backbone, data, monkeypatch):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    classes = learner.class_names(NAMES)
    x, y = data[0][:6], data[1][:6]
    sub = torch.tensor(sorted({*y.tolist()} - {0}))  # classes 1, 2, 3 become 0, 1, 2
    keep = torch.isin(y, sub)
    cfg = dataclasses.replace(BASE, stage=1)
    got = compute_loss(learner, classes, x[keep], y[keep], cfg, 1.5, class_idx=sub)
    remap = {c: i for i, c in enumerate(sub.tolist())}
    smaller = learner.class_names([NAMES[i] for i in sub])
    expect = compute_loss(
        learner, smaller, x[keep], torch.tensor([remap[v] for v in y[keep].tolist()]), cfg, 1.5
    )
    assert float(got["total"]) == pytest.approx(float(expect["total"]), rel=1e-5)
    modes = []
    real = learner.encoder.encode
    monkeypatch.setattr(learner.encoder, "encode", lambda *a: modes.append(a[3]) or real(*a))
    local_text_features(learner, classes, sub, "pos", mode="full")
    local_text_features(learner, classes, sub, "neg", mode="pad")
    assert modes == ["full", "pad"]
    with pytest.raises(ValueError, match="^kind must be 'pos' or 'neg', got 'both'$"):
        local_text_features(learner, classes, sub, "both")


def test_the_epoch_log_line_reads_as_documented():
    from negprompt.train import format_epoch

    record = {"epoch": 3, "loss": 0.7131, "img": 0.69312, "pd": -0.012, "nn": -0.004, "val_loss": 0.705}
    line = format_epoch({**record, "val_acc": 0.5, "lr": 0.09981, "seconds": 3.14}, 2, 100)
    assert (
        line
        == "stage 2 epoch   3/100  loss 0.7131  img 0.6931  pd -0.012  nn -0.004  val_loss 0.705  lr 0.0998  3.1s"
    )
    line = format_epoch(
        {"epoch": 12, "loss": 1.5, "val_acc": 0.25, "val_loss": 2.0, "lr": 0.1, "seconds": 0.04}, 1, 50
    )
    assert line == "stage 1 epoch  12/50  loss 1.5  val_acc 0.25  lr 0.1  0.0s"


def test_a_loss_that_breaks_before_any_checkpoint_says_so(tiny_backbone, data, tmp_path):
    from negprompt.train import NonFiniteLossError

    broken = data[0].clone()
    broken[:] = float("nan")
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 1, step 1/3.*Training stopped; no checkpoint was written"
    ):
        _train(tiny_backbone, (broken, data[1]), BASE, checkpoint_dir=tmp_path)


def test_a_fresh_learner_follows_the_config_seed_and_class_specific_setting(tiny_backbone, data):
    still = dataclasses.replace(BASE, stage=1, epochs=1, lr=1e-9, seed=5)  # the contexts stay at their start
    random_init = PromptConfig(init="")
    result = _train(tiny_backbone, data, still, prompt_config=random_init)
    start = PromptLearner(TextEncoder(tiny_backbone), random_init, seed=5).pos_ctx
    torch.testing.assert_close(result.learner.pos_ctx.detach(), start.detach(), atol=1e-6, rtol=0)
    specific = PromptConfig(init="", class_specific=True)
    result = _train(tiny_backbone, data, dataclasses.replace(still, lr=0.5), prompt_config=specific)
    assert result.learner.pos_ctx.shape == (len(NAMES), 4, 64) and result.completed
    with pytest.raises(ValueError, match="^LoCoOp trains on cached features; use mode='cached'$"):
        _train(tiny_backbone, data, TrainConfig(mode="online-augment", locoop_weight=0.25, select="last"))


def test_validation_data_is_checked_and_its_own_labels_are_used(tiny_backbone, data, tmp_path):
    from negprompt.data.folders import image_folder
    from negprompt.train.loop import _val_data
    from tests.conftest import write_images

    val, last = dataclasses.replace(BASE, select="val"), BASE
    with pytest.raises(
        ValueError, match="^the validation set is empty; give validation images or set select='last'$"
    ):
        _val_data(torch.zeros(0, 64), torch.zeros(0), val, tiny_backbone, 4)
    assert _val_data(torch.zeros(0, 64), torch.zeros(0), last, tiny_backbone, 4) is None
    feats, labels = _val_data(data[0][:1], data[1][:1], val, tiny_backbone, 4)  # one row is enough
    assert feats.shape == (1, 64) and labels.tolist() == [0]
    with pytest.raises(ValueError, match=r"^validation labels must lie in 0\.\.3"):
        _val_data(data[0], data[1] + 1, val, tiny_backbone, 4)
    for k, name in enumerate(["cat", "dog"]):
        write_images(tmp_path / "val" / name, 2, seed=k)
    images = image_folder(tmp_path / "val")
    _, own = _val_data(images, None, val, tiny_backbone, 2)
    _, given = _val_data(images, [1, 1, 0, 0], val, tiny_backbone, 2)
    assert own.tolist() == [0, 0, 1, 1] and given.tolist() == [1, 1, 0, 0]


def test_bf16_amp_asks_autocast_for_bfloat16_by_name(tiny_backbone, data, monkeypatch):
    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    classes = learner.class_names(NAMES)
    asked = []
    real = torch.autocast

    def spy(device_type, *args, **kwargs):
        asked.append(kwargs.get("dtype"))
        return real(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    cfg = dataclasses.replace(BASE, stage=1, amp="bf16")
    compute_loss(learner, classes, data[0][:4], data[1][:4], cfg, 1.5)
    assert asked[0] == torch.bfloat16  # not autocast's device default (float16 on CUDA)


def test_locoop_uses_a_fifth_of_the_classes_by_default(tiny_backbone, data):
    from negprompt.locoop import locoop_ood_loss

    learner = PromptLearner(TextEncoder(tiny_backbone), PromptConfig(n_neg=2))
    classes = learner.class_names(NAMES)
    x, y = data[0][:6], data[1][:6]
    local = torch.randn(6, 5, 64, generator=torch.Generator().manual_seed(8))
    cfg = dataclasses.replace(BASE, stage=1, locoop_weight=0.5)
    got = compute_loss(learner, classes, x, y, cfg, 1.5, local_features=local)
    with torch.no_grad():
        pos = learner.positive_features(classes)
    for k in (1, 2):  # K = 20% of 4 classes, at least 1
        ood = locoop_ood_loss(local, pos, y, 1.5, k)
        if k == 1:
            assert float(got["ood"]) == pytest.approx(float(ood), rel=1e-5)
            assert float(got["total"]) == pytest.approx(float(got["ce"] + 0.5 * ood), rel=1e-5)
        else:
            assert float(ood) != pytest.approx(float(got["ood"]), rel=1e-5)
    with pytest.raises(ValueError, match=r"^LoCoOp \(locoop_weight > 0\) needs the batch's local features"):
        compute_loss(learner, classes, x, y, cfg, 1.5)
