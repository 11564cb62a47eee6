"""The sectioned ExperimentConfig, the flags generated from it, the defaults, and the command table."""

from __future__ import annotations

import argparse
import importlib
import typing
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from negprompt.cli import COMMANDS, build_parser
from negprompt.commands.options import flag, settings_from_args
from negprompt.commands.run import config_from_args
from negprompt.defaults import feature_cache_dir, resolve_device
from negprompt.experiments.config import SECTIONS, ExperimentConfig, field_types, section_of

ALL_FIELDS = [(section, f) for section, cls in SECTIONS.items() for f in fields(cls)]


def _sample(section: str, f) -> tuple[list[str], object]:
    """Command-line words that set field ``f`` to a value other than its default, and that value."""
    base = field_types(SECTIONS[section])[f.name]
    args = [a for a in typing.get_args(base) if a is not type(None)]
    kind = typing.get_origin(args[0] if args else base) or (args[0] if args else base)
    if f.metadata.get("choices"):
        default = f.default if f.default is not MISSING else None
        value = next(c for c in f.metadata["choices"] if c != default)
        return [flag(f.name), str(value)], value
    if kind is bool:
        return [f"--no-{f.name.replace('_', '-')}" if f.default else flag(f.name)], not f.default
    if kind is dict:
        return [flag(f.name), "epochs=7", flag(f.name), "lr=0.25"], {"epochs": 7, "lr": 0.25}
    if kind is list:
        if f.metadata.get("append"):
            return [flag(f.name), "a", flag(f.name), "b"], ["a", "b"]
        return [flag(f.name), "a,b"], ["a", "b"]
    if f.name == "shots":
        return [flag(f.name), "all"], None
    if kind is int:
        return [flag(f.name), "7"], 7
    if kind is float:
        return [flag(f.name), "0.25"], 0.25
    return [flag(f.name), "x7"], "x7"


def test_setting_names_are_unique_across_sections():
    names = [f.name for _, f in ALL_FIELDS]
    assert len(names) == len(set(names))
    assert all(f.metadata.get("help") for _, f in ALL_FIELDS)  # every flag has its help
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        section_of("epoch")


@pytest.mark.parametrize(("section", "f"), ALL_FIELDS, ids=[f"{s}.{f.name}" for s, f in ALL_FIELDS])
def test_every_setting_is_a_flag_that_lands_in_its_field(section, f):
    """The mapping from flags to settings is mechanical: a new field is a new flag, nothing else."""
    words, value = _sample(section, f)
    args = build_parser().parse_args(["run", "conventional", *words])
    assert settings_from_args(args) == {f.name: value}  # the flag sets this setting, and only it
    assert section_of(f.name) == section


def test_flags_build_a_valid_config_of_their_sections(tmp_path):
    words = ["run", "open-vocab", "--fraction", "0.5", "--class-seed", "3", "--n-neg", "4", "--epochs", "5",
             "--stage2", "lr=0.05", "--no-neglabel", "--cache-dir", str(tmp_path), "--seed", "2"]  # fmt: skip
    args = build_parser().parse_args(words)
    config = config_from_args("open-vocab", args)
    assert config.data.open_vocab_fraction == 0.5 and config.data.open_vocab_seed == 3
    assert config.data.open_vocab_mode == "random"  # a class seed asks for a random choice
    assert config.training.n_neg == 4 and config.training.epochs == 5 and config.seed == 2
    assert config.train_config(2).lr == 0.05 and config.train_config(1).lr == 0.1
    assert config.evaluation.neglabel is False and config.cache.cache_dir == str(tmp_path)
    # settings not given keep the preset's defaults
    assert config.data.shots == 16 and config.backbone.model == "ViT-B-16"


def test_config_json_is_written_by_sections_and_round_trips():
    config = ExperimentConfig.for_preset("demo", epochs=3, model="negprompt-tiny", batch_size=8)
    saved = config.to_dict()
    assert list(saved) == ["preset", "seed", *SECTIONS]
    assert saved["training"]["epochs"] == 3 and saved["cache"]["batch_size"] == 8
    assert ExperimentConfig.from_dict(saved) == config
    assert ExperimentConfig.for_preset("demo", training={"epochs": 3}).training.epochs == 3
    with pytest.raises(ValueError, match="unknown ExperimentConfig key"):
        ExperimentConfig.from_dict({**saved, "shots": 4})  # a flat config of the old layout
    with pytest.raises(ValueError, match="unknown training setting"):
        ExperimentConfig.from_dict({**saved, "training": {**saved["training"], "epoch": 4}})


def test_resume_differences_name_the_section_and_ignore_free_settings():
    config = ExperimentConfig.for_preset("demo")
    saved = config.to_dict()
    changed = config.replace(n_neg=5, lr=0.2, device="cuda", cache_dir="/elsewhere", neglabel=True, seed=4)
    assert changed.differences(saved) == [
        "seed: 0 before, 4 now",
        "training.lr: None before, 0.2 now",
        "training.n_neg: 2 before, 5 now",
    ]
    assert config.differences(saved) == []
    assert config.differences({k: v for k, v in saved.items() if k != "data"}) == [
        "data: absent before (a run of another negprompt version)"
    ]
    other = config.replace(seed=2).to_dict()
    assert config.differences({**other, "preset": "mini-conventional"}) == [
        "preset: 'mini-conventional' before, 'demo' now",
        "seed: 2 before, 0 now",
    ]
    without = {**saved, "training": {k: v for k, v in saved["training"].items() if k != "n_neg"}}
    without.pop("seed")
    assert config.differences(without) == [
        "seed: '<absent>' before, 0 now",
        "training.n_neg: '<absent>' before, 2 now",
    ]


def test_folder_runs_check_their_folders():
    with pytest.raises(ValueError, match="needs train_dir"):
        ExperimentConfig.for_preset("folders", id_dir="x")
    with pytest.raises(ValueError, match="needs id_dir"):
        ExperimentConfig.for_preset("folders", stages="none")
    with pytest.raises(ValueError, match="give id_dir"):
        ExperimentConfig.for_preset("folders", train_dir="t", ood_dirs=["o"])
    with pytest.raises(ValueError, match="apply to image folders"):
        ExperimentConfig.for_preset("demo", train_dir="t")
    with pytest.raises(ValueError, match="init_prompts"):
        ExperimentConfig.for_preset("folders", train_dir="t", stages="2")
    zs = ExperimentConfig.for_preset("folders", stages="none", id_dir="i", ood_dirs=[Path("o")])
    assert zs.kind == "zeroshot" and zs.data.ood_dirs == ["o"] and zs.stage_numbers == ()
    assert ExperimentConfig.for_preset("folders", train_dir="t").kind == "folders"


def test_defaults_are_resolved_in_one_place(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (
        resolve_device("auto") == "cpu"
        and resolve_device(None) == "cpu"
        and resolve_device("cuda:1") == "cuda:1"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert ExperimentConfig.for_preset("demo").device == "cuda"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NEGPROMPT_CACHE", raising=False)
    assert feature_cache_dir() == tmp_path / ".cache" / "negprompt" / "features"
    assert feature_cache_dir("~/c") == tmp_path / "c"  # "~" expanded, also when given
    assert feature_cache_dir("") == tmp_path / ".cache" / "negprompt" / "features"  # empty: the default
    monkeypatch.setenv("NEGPROMPT_CACHE", "~/env")
    assert feature_cache_dir() == tmp_path / "env"
    assert ExperimentConfig.for_preset("demo", cache_dir="~/x").cache_path() == tmp_path / "x"


def test_every_command_of_the_table_loads_and_registers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    for name, module in COMMANDS.items():
        loaded = importlib.import_module(module)
        assert callable(loaded.register), name
        assert callable(sub.choices[name].get_default("func")), name


def test_user_error_lives_with_the_commands():
    from negprompt import cli
    from negprompt.commands import common

    assert cli.UserError is common.UserError
    for module in COMMANDS.values():  # no command imports the CLI module back
        source = Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")
        assert "negprompt.cli" not in source, module


# Each invalid combination, and a valid one beside it (boundaries), so that every check is pinned.
INVALID = [
    (
        "demo",
        {"benchmark": "imagenet"},
        "preset 'demo' runs on demo, demo-full, cifar10, cifar100, not benchmark 'imagenet'",
    ),
    ("demo", {"precision": "fp8"}, "backbone.precision='fp8' is not one of fp32, fp16, bf16"),
    ("demo", {"select": "best"}, "training.select='best' is not one of val, last"),
    (
        "mini-hard-ood",
        {"benchmark": "mini-hard", "protocol": "P1"},
        "the mini-world v1 hard-OOD split is fixed; a protocol cannot be given",
    ),
    ("hard-ood", {}, "the hard-ood preset needs a protocol (--protocol); valid names: 'P1'"),
    ("hard-ood", {"protocol": "P1", "id_classes": ["a"]}, "a hard-OOD protocol defines its ID classes"),
    ("demo", {"protocol": "P1"}, "a protocol only applies to the hard-ood preset, not 'demo'"),
    ("demo", {"open_vocab_fraction": 0.5}, "open_vocab_fraction only applies to the open-vocab preset"),
    ("open-vocab", {"open_vocab_fraction": 0.0}, "open_vocab_fraction must be in (0, 1], got 0.0"),
    ("open-vocab", {"open_vocab_fraction": 1.5}, "open_vocab_fraction must be in (0, 1], got 1.5"),
    (
        "open-vocab",
        {"open_vocab_fraction": None},
        "the open-vocab preset needs open_vocab_fraction (e.g. 0.1)",
    ),
    ("demo", {"ood_sets": ["SUN"]}, "ood_sets apply to ImageNet benchmarks; 'demo' has its own"),
    ("conventional", {"ood_sets": []}, "ood_sets is empty: name at least one OOD set, or leave it unset"),
    ("demo", {"classes": 0}, "classes must be >= 1, got 0"),
    (
        "demo",
        {"classes": 2, "id_classes": ["a"]},
        "give either classes (a count) or id_classes (a list), not both",
    ),
    ("demo", {"id_classes": []}, "id_classes is empty"),
    ("demo", {"shots": 0}, "shots must be >= 1 or None (all), got 0"),
    ("demo", {"val_per_class": -1}, "val_per_class must be >= 0, got -1"),
    (
        "demo",
        {"val_per_class": 0},
        "select='val' needs validation images: set val_per_class >= 1 or select='last'",
    ),
    ("demo", {"neg_noise": -0.1}, "neg_noise must be >= 0, got -0.1"),
    ("demo", {"neg_noise": float("nan")}, "neg_noise must be >= 0, got nan"),
    ("demo", {"n_neg": 0}, "n_neg must be >= 1, got 0"),
    (
        "demo",
        {"init_prompts": "p.json"},
        "stages='2' trains the negatives on the positives of a prompts file",
    ),
    ("demo", {"temperature": 0.0}, "temperature must be > 0, got 0.0"),
    (
        "demo",
        {"neglabel_n_neg": 0, "neglabel_groups": 0},
        "NegLabel needs neglabel_n_neg >= 1 and 1 <= neglabel_groups",
    ),
    (
        "demo",
        {"neglabel_n_neg": 10, "neglabel_groups": 11},
        "NegLabel needs neglabel_n_neg >= 1 and 1 <= neglabel_groups <= neglabel_n_neg, got 10 and 11",
    ),
    (
        "demo",
        {"neglabel_groups": 0},
        "NegLabel needs neglabel_n_neg >= 1 and 1 <= neglabel_groups <= neglabel_n_neg, got 10000 and 0",
    ),
    ("demo", {"batch_size": 0}, "batch_size must be >= 1 and num_workers >= 0, got 0 and 0"),
    ("demo", {"num_workers": -1}, "batch_size must be >= 1 and num_workers >= 0, got 64 and -1"),
    (
        "demo",
        {"stage2": {"seed": 1}},
        "training.stage2 may not set ['seed']: they are experiment settings (set seed, n_views, select or mode instead)",
    ),
    (
        "folders",
        {"id_dir": "i"},
        "training needs train_dir (--train-dir: one sub-folder of images per class)",
    ),
    (
        "folders",
        {"stages": "none"},
        "a zero-shot run needs id_dir (--id-dir: ID images, one sub-folder per class)",
    ),
    (
        "folders",
        {"train_dir": "t", "ood_dirs": ["o"]},
        "OOD folders are compared with ID test images: give id_dir (--id-dir) too (the validation images choose the epoch, so they are not test images)",
    ),
    (
        "folders",
        {"train_dir": "t", "id_dir": "i", "ood_dirs": []},
        "ood_dirs is empty: name at least one OOD folder, or leave it unset",
    ),
    (
        "demo",
        {"train_dir": "t", "id_dir": "i"},
        "train_dir, id_dir apply to image folders (preset 'folders'), not 'demo'",
    ),
    (
        "demo",
        {"init_prompts": "p"},
        "stages='2' trains the negatives on the positives of a prompts file: give init_prompts with stages='2', and only then",
    ),
    ("demo", {"stage2": {"epochs": 0}}, "TrainConfig.epochs must be >= 1"),
]
VALID = [
    ("open-vocab", {"open_vocab_fraction": 1.0}),
    ("demo", {"classes": 1, "shots": 1, "val_per_class": 0, "select": "last", "neg_noise": 0.0, "n_neg": 1}),
    ("demo", {"neglabel_n_neg": 1, "neglabel_groups": 1, "batch_size": 1, "num_workers": 0}),
    ("demo", {"val_per_class": 0, "select": "val", "stages": "none"}),  # nothing to select
    ("folders", {"train_dir": "t", "val_dir": "v", "val_per_class": 0}),  # validation from val_dir
    ("folders", {"train_dir": "t", "stages": "2", "init_prompts": "p.json"}),
    ("hard-ood", {"protocol": "P1"}),
    ("hard-ood", {"protocol": "P1", "ood_sets": ["SUN"]}),
    ("conventional", {"benchmark": "openood", "ood_sets": ["ninco"]}),
    ("mini-hard-ood", {}),
]


@pytest.mark.parametrize(("preset", "settings", "message"), INVALID, ids=[m[:40] for *_, m in INVALID])
def test_each_invalid_setting_is_named(preset, settings, message):
    with pytest.raises(ValueError) as info:
        ExperimentConfig.for_preset(preset, **settings)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(("preset", "settings"), VALID)
def test_settings_at_the_boundaries_are_valid(preset, settings):
    config = ExperimentConfig.for_preset(preset, **settings)
    for name, value in settings.items():
        assert getattr(getattr(config, section_of(name)), name) == value


def test_training_settings_reach_each_stage_and_stage_settings_only_theirs():
    config = ExperimentConfig.for_preset(
        "demo", epochs=3, lr=0.2, train_batch_size=5, class_subset_size=2, img_loss="oe", n_views=2,
        select="last", mode="online-augment", seed=7, train_preset="coop", stage1={"epochs": 9},
    )  # fmt: skip
    first, second = config.train_config(1), config.train_config(2)
    for stage, tc in ((1, first), (2, second)):
        assert (tc.stage, tc.lr, tc.batch_size, tc.class_subset_size, tc.img_loss) == (stage, 0.2, 5, 2, "oe")
        assert (tc.n_views, tc.select, tc.mode, tc.seed) == (2, "last", "online-augment", 7)
        assert tc.momentum == 0.9  # the coop train preset underneath
    assert (first.epochs, second.epochs) == (9, 3)
    plain = ExperimentConfig.for_preset("conventional").train_config(2)
    assert (plain.epochs, plain.lr, plain.batch_size, plain.class_subset_size, plain.img_loss) == (
        100,
        0.1,
        64,
        None,
        "msp",
    )


@pytest.mark.parametrize("key", ["stage", "seed", "n_views", "select", "mode", "device"])
def test_experiment_settings_may_not_be_set_per_stage(key):
    with pytest.raises(
        ValueError, match=f"training.stage2 may not set \\['{key}'\\]: they are experiment settings"
    ):
        ExperimentConfig.for_preset("demo", stage2={key: 1})


def test_sections_may_be_given_whole_and_presets_fill_in_the_rest():
    from negprompt.experiments.config import TrainingSettings

    config = ExperimentConfig.for_preset("demo", training=TrainingSettings(epochs=4, n_neg=3))
    assert (config.training.epochs, config.training.n_neg, config.backbone.model) == (4, 3, "negprompt-mini")
    assert (
        ExperimentConfig.for_preset("demo", benchmark="cifar10").data.shots == 16
    )  # downloaded demo: 16 shots
    assert ExperimentConfig.for_preset("demo", benchmark="cifar10", shots=4).data.shots == 4
    assert ExperimentConfig.for_preset("demo").data.shots is None  # the embedded demo: all images
    assert (
        ExperimentConfig.for_preset("open-vocab", benchmark="cifar10", open_vocab_fraction=0.5).data.shots
        == 16
    )
    with pytest.raises(ValueError, match="unknown preset 'nope'; choose one of conventional, hard-ood"):
        ExperimentConfig.for_preset("nope")
    with pytest.raises(TypeError, match="ExperimentConfig.training must be a TrainingSettings or a dict"):
        ExperimentConfig(training=3)
    with pytest.raises(TypeError, match="DataSettings.ood_sets must be a list, not a string"):
        ExperimentConfig.for_preset("conventional", ood_sets="SUN")
    config = ExperimentConfig.for_preset(
        "folders", train_dir=Path("t"), ood_dirs=[Path("o")], id_dir="i", cache_dir=Path("c")
    )
    assert (config.data.train_dir, config.data.ood_dirs, config.cache.cache_dir) == ("t", ["o"], "c")


def test_command_line_values_are_parsed_and_bad_ones_named(tmp_path, capsys):
    from negprompt.experiments.config import names_value, shots_value

    assert shots_value("all") is None and shots_value("3") == 3 and shots_value("1") == 1
    with pytest.raises(ValueError, match="--shots must be >= 1 or 'all'"):
        shots_value("0")
    listing = tmp_path / "classes.txt"
    listing.write_text("# ID classes\ncat\n\n dog \n", encoding="utf-8")
    assert names_value(f"@{listing}") == ["cat", "dog"] and names_value(" a, b ,,c") == ["a", "b", "c"]
    parser = build_parser()
    for words, message in (
        (["--shots", "0"], "--shots must be >= 1 or 'all'"),
        (["--stage2", "epochs"], "expected KEY=VALUE (e.g. epochs=20), got 'epochs'"),
        (["--id-classes", "@" + str(tmp_path / "missing.txt")], "missing.txt"),
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "demo", *words])
        assert message in capsys.readouterr().err
    args = parser.parse_args(
        ["run", "demo", "--stage2", "lr=0.5", "--stage2", "img_loss=oe", "--stage2", "note=x y"]
    )
    assert settings_from_args(args) == {"stage2": {"lr": 0.5, "img_loss": "oe", "note": "x y"}}
