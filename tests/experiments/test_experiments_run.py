"""Experiments end to end on generated data with the tiny model: run directories, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from negprompt.cli import main
from negprompt.experiments import (
    Experiment,
    ExperimentConfig,
    WorkDirError,
    run_experiment,
    work_dir_for,
)
from negprompt.experiments.run import open_work_dir
from negprompt.metrics import ood_metrics
from negprompt.rundir import RunExistsError, load_run
from tests.data.test_data_imagenet import SPLITS
from tests.experiments.test_experiments_data import OOD_NAMES, make_benchmark, small


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's operations are too small for intra-op threads (they only add contention)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_benchmark(tmp_path_factory.mktemp("data"), [0, 1, 2])


def conventional(bench, tmp_path, **overrides) -> ExperimentConfig:
    return small(data_root=bench, classes=3, cache_dir=str(tmp_path / "cache"), **overrides)


def test_conventional_run_directory(bench, tmp_path, tiny_backbone):
    out = run_experiment(conventional(bench, tmp_path), tmp_path / "runs" / "conv", progress=False,
                         backbone=tiny_backbone)  # fmt: skip
    assert out == tmp_path / "runs" / "conv" and not work_dir_for(out).exists()
    run = load_run(out)
    cfg = run.config
    assert cfg["kind"] == "conventional" and run.random_weights
    assert cfg["methods"] == ["zeroshot", "coop", "negprompt"]
    assert cfg["data"]["class_names"] == ["tench", "goldfish", "great white shark"]
    assert cfg["data"]["train_class_names"] == cfg["data"]["class_names"]
    assert cfg["data"]["ood"] == list(OOD_NAMES)
    exp = cfg["experiment"]
    assert exp["settings"]["data"]["shots"] == 2 and exp["settings"]["seed"] == 0
    assert [s["stage"] for s in exp["stages"]] == [1, 2]
    assert all(s["config"]["epochs"] == 2 and len(s["history"]) == 2 for s in exp["stages"])
    assert exp["selection"]["policy"] == "val"
    assert exp["selection"]["selected_epochs"] == {
        f"stage{s['stage']}": s["selected_epoch"] for s in exp["stages"]
    }
    assert {"software", "backbone", "created"} <= set(cfg) and cfg["backbone"]["warning"]
    # metrics: every OOD set and the mean, for each method
    m = run.metrics
    for method, score in (("zeroshot", "mcm"), ("coop", "mcm"), ("negprompt", "negprompt")):
        rows = m[(m.method == method) & (m.score == score)]
        assert list(rows.dataset) == [*OOD_NAMES, "mean"]
        assert rows[rows.dataset == "mean"].auroc.iloc[0] == pytest.approx(rows.auroc.iloc[:4].mean())
    assert "negprompt" not in set(m[m.method == "coop"].score)  # no negatives: no NegPrompt score
    # per-image table: 6 ID test images + 4 x 3 OOD images, every score, the stored metric is theirs
    s = run.scores
    assert len(s) == 6 + 12 and list(s.split[:6]) == ["id"] * 6
    assert {"pred.zeroshot", "pred.coop", "pred.negprompt", "negprompt/negprompt", "coop/mcm"} <= set(
        s.columns
    )
    # Textures keeps its texture class per image; the flat sets have none
    assert set(s.loc[s.dataset == "dtd", "ood_class"]) == {"banded"}
    assert (s.loc[s.dataset.isin(["iNaturalist", "SUN", "Places"]), "ood_class"] == "").all()
    row = m[(m.method == "negprompt") & (m.score == "negprompt") & (m.dataset == "SUN")].iloc[0]
    expected = ood_metrics(
        s[s.split == "id"]["negprompt/negprompt"], s[s.dataset == "SUN"]["negprompt/negprompt"]
    )
    assert row.auroc == pytest.approx(expected["auroc"]) and row.fpr95 == pytest.approx(expected["fpr95"])
    # prompts, text features, context tokens, log
    assert set(run.prompt_files) == {"coop", "negprompt"}
    coop = load_file(run.prompt_files["coop"][0])
    neg = load_file(run.prompt_files["negprompt"][0])
    assert torch.equal(coop["pos_ctx"], neg["pos_ctx"])  # stage 2 leaves the positives alone
    pos_zs, _ = run.text_features_of("zeroshot")
    pos_coop, neg_coop = run.text_features_of("coop")
    pos_np, neg_np = run.text_features_of("negprompt")
    assert neg_coop is None and neg_np.shape == (3, 2, 64)
    assert np.allclose(pos_coop, pos_np) and not np.allclose(pos_zs, pos_coop)
    assert set(run.context_tokens) == {"zeroshot", "coop", "negprompt"}
    assert len(run.context_tokens["negprompt"]["negative"]) == 2
    assert "stage 1 epoch   2/2" in run.log and "FPR95 / AUROC" in run.log and "RANDOM WEIGHTS" in run.log


def test_open_vocab_learns_on_a_fraction_and_evaluates_on_all(tmp_path, tiny_backbone):
    data = make_benchmark(tmp_path / "data", list(range(10)), n_train=3, n_val=1)
    cfg = small("open-vocab", data, classes=10, open_vocab_fraction=0.2, cache_dir=str(tmp_path / "c"))
    run = load_run(run_experiment(cfg, tmp_path / "ov", progress=False, backbone=tiny_backbone))
    assert run.config["kind"] == "open-vocab"
    assert run.config["data"]["train_class_names"] == ["tench", "goldfish"]
    assert len(run.config["data"]["class_names"]) == 10
    assert json.loads(run.prompt_files["negprompt"][1].read_text())["class_names"] == ["tench", "goldfish"]
    pos, neg = run.text_features_of("negprompt")
    assert pos.shape == (10, 64) and neg.shape == (10, 2, 64)
    assert run.config["experiment"]["data"]["open_vocab"]["train_classes"] == [0, 1]
    assert set(run.scores["label"][run.scores.split == "id"]) == set(range(10))


def test_step_by_step_api(bench, tmp_path, tiny_backbone):
    exp = Experiment(conventional(bench, tmp_path), progress=False, backbone=tiny_backbone)
    data = exp.load_data()
    assert len(data.class_names) == 3 and exp.features is None
    exp.prepare()
    assert exp.features.train[0].features.shape == (6, 64) and len(exp.features.ood) == 4
    with pytest.raises(RuntimeError, match="before evaluating"):
        exp.evaluate()
    exp.train()
    assert exp.stage1.completed and exp.stage2.completed and list(exp.history.stage) == [1, 1, 2, 2]
    result = exp.evaluate()
    assert set(result.metrics.method) == {"zeroshot", "coop", "negprompt"}
    assert "NegPrompt" in exp.table() and "CoOp + MCM" in exp.table()
    path = exp.write(tmp_path / "step")
    assert load_run(path).config["kind"] == "conventional"


def test_hard_ood_and_run_via_the_cli(tmp_path, capsys):
    from negprompt.data import protocol

    p = protocol("ImageNet-10 vs ImageNet-20")
    from tests.data.test_data_imagenet import make_imagenet

    make_imagenet(tmp_path / "d", p.known[:2] + p.unknown[:2], n_train=3, n_val=2)
    argv = [
        "run", "hard-ood", "--protocol", "imagenet-10 vs imagenet-20", "--classes", "2",
        "--data-root", str(tmp_path / "d"), "--model", "negprompt-tiny", "--pretrained", "none",
        "--device", "cpu", "--shots", "2", "--val-per-class", "1", "--epochs", "1",
        "--stage2", "epochs=2", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "h"),
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "ImageNet-10 vs ImageNet-20/ood" in printed and "NegPrompt" in printed and "ID = positive" in printed
    )
    run = load_run(tmp_path / "h")
    assert run.config["kind"] == "hard-ood" and run.config["data"]["ood"] == [
        "ImageNet-10 vs ImageNet-20/ood"
    ]
    stages = run.config["experiment"]["stages"]
    assert [s["config"]["epochs"] for s in stages] == [1, 2]
    assert run.config["experiment"]["data"]["protocol"]["name"] == "ImageNet-10 vs ImageNet-20"
    # each OOD image keeps its own (unknown) class; ID rows have none
    from negprompt.data import imagenet_classes

    info, ood = imagenet_classes(), run.scores[run.scores.split == "ood"]
    assert (ood["label"] == -1).all() and len(ood) == 4
    assert sorted(ood["ood_class"]) == sorted(2 * [info[c].name for c in p.unknown[:2]])
    assert (run.scores.loc[run.scores.split == "id", "ood_class"] == "").all()


def test_unknown_protocol_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"Unknown protocol 'P9'.*'P1'"):
        ExperimentConfig.for_preset("hard-ood", protocol="P9")
    assert main(["run", "hard-ood", "--protocol", "P9", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown protocol 'P9'" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["run", "hard-ood", "--out", str(tmp_path / "x")]) == 2
    assert "needs a protocol" in capsys.readouterr().err


def _prompts(run_dir):
    return {m: load_file(f[0]) for m, f in load_run(run_dir).prompt_files.items()}


def test_resume_after_interruption_gives_the_same_result(bench, tmp_path, tiny_backbone):
    cfg = conventional(bench, tmp_path, epochs=3, train_batch_size=4)
    reference = run_experiment(cfg, tmp_path / "a", progress=False, backbone=tiny_backbone)

    out = tmp_path / "b"
    work = open_work_dir(cfg, out, resume=False)
    first = Experiment(cfg, work_dir=work, progress=False, backbone=tiny_backbone)
    first.train(stop_after_epoch=1)  # interrupted in stage 1
    assert not first.stage1.completed and first.stage2 is None
    with pytest.raises(WorkDirError, match="pass --resume"):
        run_experiment(cfg, out, progress=False, backbone=tiny_backbone)
    second = Experiment(cfg, work_dir=work, resume=True, progress=False, backbone=tiny_backbone)
    second.train(stages=(1,))
    second.train(stages=(2,), stop_after_epoch=2)  # interrupted in stage 2
    assert second.stage1.completed and not second.stage2.completed
    with pytest.raises(WorkDirError, match=r"other settings \(seed: 0 before, 1 now"):
        run_experiment(conventional(bench, tmp_path, epochs=3, train_batch_size=4, seed=1), out,
                       resume=True, progress=False, backbone=tiny_backbone)  # fmt: skip
    resumed = run_experiment(cfg, out, resume=True, progress=False, backbone=tiny_backbone)
    assert not work.exists()
    a, b = _prompts(reference), _prompts(resumed)
    for method in ("coop", "negprompt"):
        for key in ("pos_ctx", "neg_ctx"):
            assert torch.equal(a[method][key], b[method][key]), (method, key)
    cols = ["fpr95", "auroc", "aupr_in", "aupr_out", "id_acc"]
    assert np.allclose(load_run(reference).metrics[cols], load_run(resumed).metrics[cols], equal_nan=True)
    log = load_run(resumed).log
    assert "resuming from" in log and log.count("stage 1 epoch   1/3") == 1


def test_interrupted_cli_run_resumes(bench, tmp_path, capsys, monkeypatch):
    import negprompt.experiments.experiment as module

    real = module.train_prompts

    def interrupt_in_stage_2(*args, **kwargs):
        if args[4].stage == 2:

            def stop(record):
                raise KeyboardInterrupt

            kwargs["on_epoch"] = stop
        return real(*args, **kwargs)

    out = tmp_path / "cli"
    argv = [
        "run", "conventional", "--data-root", str(bench), "--classes", "3", "--model", "negprompt-tiny",
        "--pretrained", "none", "--device", "cpu", "--shots", "2", "--val-per-class", "1", "--epochs", "2",
        "--cache-dir", str(tmp_path / "c"), "--out", str(out), "--no-progress", "--no-neglabel",
    ]  # fmt: skip
    monkeypatch.setattr(module, "train_prompts", interrupt_in_stage_2)
    assert main(argv) == 130
    assert "--resume" in capsys.readouterr().out and not out.exists()
    assert (work_dir_for(out) / "checkpoints" / "stage2" / "checkpoint.pt").is_file()
    monkeypatch.setattr(module, "train_prompts", real)
    assert main(argv) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert load_run(out).config["experiment"]["stages"][1]["epochs_run"] == 2


def test_existing_run_directory_is_never_overwritten(bench, tmp_path, tiny_backbone, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    cfg = conventional(bench, tmp_path)
    with pytest.raises(RunExistsError, match="already exists"):
        run_experiment(cfg, out, progress=False, backbone=tiny_backbone)
    assert (out / "keep.txt").read_text() == "precious" and not work_dir_for(out).exists()
    path = run_experiment(cfg, out, unique=True, progress=False, backbone=tiny_backbone)
    assert path == tmp_path / "taken-2" and (out / "keep.txt").read_text() == "precious"
    assert main(["run", "demo", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["run", "demo", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_unreadable_images_are_a_clear_error_and_a_fixed_rerun_works(tmp_path, tiny_backbone):
    data = make_benchmark(tmp_path / "d", [0, 1], n_train=3)
    train = data.joinpath(*SPLITS, "train")
    broken = sorted(train.rglob("*.JPEG"))[:2]
    saved = [f.read_bytes() for f in broken]
    for f in broken:
        f.write_bytes(b"not an image")
    cfg = small(data_root=data, classes=2, cache_dir=str(tmp_path / "c"))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="cannot be read.*remove or replace them"):
        run_experiment(cfg, out, progress=False, backbone=tiny_backbone)
    assert not out.exists()
    for f, content in zip(broken, saved):
        f.write_bytes(content)
    assert load_run(run_experiment(cfg, out, progress=False, backbone=tiny_backbone)).name == "run"


def test_config_round_trip_and_overrides():
    cfg = ExperimentConfig.for_preset("demo", lr=0.05, stage2={"epochs": 3})
    assert cfg.backbone.model == "negprompt-mini" and cfg.data.shots is None and cfg.data.benchmark == "demo"
    assert cfg.train_config(1).epochs == cfg.training.epochs and cfg.train_config(1).lr == 0.05
    assert cfg.train_config(2).epochs == 3 and cfg.train_config(2).stage == 2
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert ExperimentConfig.for_preset("demo", benchmark="cifar10").data.shots == 16
    assert ExperimentConfig.for_preset("open-vocab").data.open_vocab_fraction == 0.1
    with pytest.raises(ValueError, match="may not set \\['seed'\\]"):
        ExperimentConfig.for_preset("demo", stage1={"seed": 3})
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        ExperimentConfig.for_preset("demo", stage1={"epoch": 3})
    with pytest.raises(ValueError, match="runs on imagenet"):
        ExperimentConfig.for_preset("conventional", benchmark="demo")
    with pytest.raises(ValueError, match="unknown preset"):
        ExperimentConfig.for_preset("nope")
