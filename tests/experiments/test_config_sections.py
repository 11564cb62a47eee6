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
    assert "data: absent before" in config.differences({k: v for k, v in saved.items() if k != "data"})[0]


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
