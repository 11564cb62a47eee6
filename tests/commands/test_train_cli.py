"""``negprompt train`` end to end on a tiny generated image folder (tiny random CLIP, no network)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from negprompt.cli import main
from negprompt.experiments import work_dir_for
from negprompt.promptfile import learner_from_file, load_prompts
from negprompt.rundir import load_run

CLASSES = ["red", "green", "light_blue"]


@pytest.fixture
def folder(tmp_path):
    """Coloured squares: 3 classes x 7 images."""
    root = tmp_path / "images"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(7):
            colour = [30 + 3 * i] * 3
            colour[k] = 180 + 10 * i
            Image.new("RGB", (20, 20), tuple(colour)).save(root / name / f"{i}.png")
    return root


def args(folder, out, tmp_path, *extra):
    return [
        "train",
        "--train-dir", str(folder),
        "--out", str(out),
        "--model", "negprompt-tiny",
        "--pretrained", "none",
        "--device", "cpu",
        "--shots", "4",
        "--val-per-class", "2",
        "--epochs", "2",
        "--cache-dir", str(tmp_path / "cache"),
        "--no-progress",
        "--no-neglabel",
        *extra,
    ]  # fmt: skip


def test_train_both_stages_end_to_end(folder, tmp_path, tiny_backbone):
    out = tmp_path / "run"
    assert main(args(folder, out, tmp_path, "--n-views", "2", "--n-neg", "3")) == 0
    run = load_run(out)  # an ordinary run directory: the dashboard opens it
    for method in ("coop", "negprompt"):
        assert (out / "prompts" / f"{method}.safetensors").is_file()
    assert not work_dir_for(out).exists()  # checkpoints lived in the work folder until the end
    exp = run.config["experiment"]
    assert run.config["kind"] == "folders" and exp["preset"] == "folders"
    assert exp["train_class_names"] == ["green", "light blue", "red"]  # sorted folders
    assert (exp["data"]["n_train"], exp["data"]["n_val"]) == (12, 6)
    assert [s["stage"] for s in exp["stages"]] == [1, 2]
    assert all(s["selected"] == "val" and s["completed"] for s in exp["stages"])
    # checks on a run made to trigger them: random weights, a handful of steps, no OOD set to judge
    checks = {c.id: c for c in run.checks}
    assert checks["random_weights"].fired and checks["too_few_steps"].fired
    assert checks["too_few_steps"].value == {
        "stage1": sum(s["steps"] for s in exp["stages"][:1]),
        "stage2": exp["stages"][1]["steps"],
    }
    assert checks["training_free_wins"].status == "n/a" and checks["below_chance"].status == "n/a"
    assert exp["stages"][0]["config"]["n_views"] == 2 and run.random_weights
    assert exp["settings"]["training"]["n_neg"] == 3 and exp["settings"]["data"]["train_dir"] == str(folder)
    # without --id-dir the validation images are scored for the ID accuracy; no OOD metrics
    assert set(run.scores["split"]) == {"id"} and len(run.scores) == 6
    assert run.metrics["fpr95"].isna().all() and run.metrics["id_acc"].notna().all()
    log = (out / "log.txt").read_text()
    for stage in (1, 2):
        assert log.count(f"stage {stage} epoch ") == 2
    assert "val_acc" in log and "val_loss" in log and " lr " in log

    coop, _ = load_prompts(out / "prompts" / "coop")
    neg, meta = load_prompts(out / "prompts" / "negprompt")
    assert torch.equal(coop["pos_ctx"], neg["pos_ctx"])  # stage 2 kept the stage-1 positives
    assert meta["n_neg"] == 3 and meta["extra"]["stage"] == 2 and meta["class_names"][1] == "light blue"
    learner = learner_from_file(out / "prompts" / "negprompt", tiny_backbone)
    with torch.no_grad():
        _, feats = learner(learner.class_names(["purple", "orange"]))  # open vocabulary
    assert feats.shape == (2, 3, tiny_backbone.embed_dim)
    # an existing run directory is never overwritten
    assert main(args(folder, out, tmp_path)) == 2


def test_interrupted_training_resumes_and_names_changed_settings(folder, tmp_path, monkeypatch, capsys):
    from negprompt.train import loop

    out = tmp_path / "run"
    real = loop._Trainer.epoch

    def interrupted(self, *a, **k):
        if self.stage == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(loop._Trainer, "epoch", interrupted)
    assert main(args(folder, out, tmp_path, "--n-neg", "3", "--no-locoop")) == 130
    assert (work_dir_for(out) / "checkpoints" / "stage1" / "checkpoint.pt").is_file() and not out.exists()
    monkeypatch.setattr(loop._Trainer, "epoch", real)
    capsys.readouterr()
    assert main(args(folder, out, tmp_path, "--n-neg", "3", "--no-locoop", "--resume", "--lr", "0.5")) == 2
    assert "training.lr: None before, 0.5 now" in capsys.readouterr().err
    assert main(args(folder, out, tmp_path, "--n-neg", "3", "--no-locoop", "--resume")) == 0
    log = (out / "log.txt").read_text()
    assert log.count("stage 1 epoch ") == 2 and log.count("stage 2 epoch ") == 2  # stage 1 not redone


def test_train_with_test_folders_evaluates_the_learned_prompts(folder, tmp_path):
    out = tmp_path / "run"
    extra = ("--id-dir", str(folder), "--ood-dir", str(folder / "red"))
    assert main(args(folder, out, tmp_path, *extra)) == 0
    metrics = load_run(out).metrics
    assert {"zeroshot", "coop", "negprompt"} <= set(metrics["method"]) and set(metrics["dataset"]) == {
        "red",
        "mean",
    }
    assert metrics["auroc"].notna().all()


def test_stage2_from_a_prompts_file(folder, tmp_path, capsys):
    first = tmp_path / "stage1"
    assert (
        main(args(folder, first, tmp_path, "--stages", "1", "--train-preset", "coop", "--select", "last"))
        == 0
    )
    assert not (first / "prompts" / "negprompt.json").exists()
    second = tmp_path / "stage2"
    init = first / "prompts" / "coop"
    assert main(args(folder, second, tmp_path, "--stage", "2", "--init-prompts", str(init))) == 0
    a, _ = load_prompts(init)
    b, meta = load_prompts(second / "prompts" / "negprompt")
    assert torch.equal(a["pos_ctx"], b["pos_ctx"]) and not torch.equal(a["neg_ctx"], b["neg_ctx"])
    assert meta["extra"]["config"]["lr"] == 0.1  # negprompt preset
    capsys.readouterr()
    assert main(args(folder, tmp_path / "x", tmp_path, "--stages", "1", "--init-prompts", str(init))) == 2
    assert "init_prompts" in capsys.readouterr().err
