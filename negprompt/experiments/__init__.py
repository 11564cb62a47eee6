"""The paper's experiments end to end: presets, data, both training stages, baselines, run directory.

Presets (:data:`PRESETS`): ``conventional`` (ImageNet-1k vs iNaturalist / SUN / Places / Textures),
``hard-ood`` (ImageNet open-set protocols P1-P4 and MCM's tasks), ``open-vocab`` (prompts learned
on a fraction of the classes, evaluated on all), ``demo`` (the embedded Fashion-MNIST benchmark),
the ``mini-*`` presets (the offline mini-world) and ``folders`` (your own image folders, what
``negprompt train`` and ``negprompt zeroshot`` run). Every run reports zero-shot MCM, CoOp + MCM
(the stage-1 prompts) and NegPrompt side by side, with the configured baselines. The training
flow of every command and notebook is :class:`Experiment` (``experiment.py``).

    from negprompt.experiments import ExperimentConfig, run_experiment
    path = run_experiment(ExperimentConfig.for_preset("demo"), "runs/demo")

or step by step (see :class:`Experiment`)::

    exp = Experiment(ExperimentConfig.for_preset("hard-ood", protocol="P1", data_root="data"))
    exp.prepare(); exp.train(); exp.evaluate(); print(exp.table()); exp.write("runs/p1")
"""

import importlib

from .config import (
    BENCHMARKS,
    DEMO_EPOCHS,
    PRESET_DEFAULTS,
    PRESETS,
    SECTIONS,
    BackboneSettings,
    CacheSettings,
    DataSettings,
    EvaluationSettings,
    ExperimentConfig,
    TrainingSettings,
)

_LAZY = {  # name -> submodule; imported on first use, so the settings load without torch
    "ExperimentData": "data",
    "Features": "data",
    "extract_all": "data",
    "load_data": "data",
    "METHODS": "experiment",
    "Experiment": "experiment",
    "learned_method": "methods",
    "zeroshot_method": "methods",
    "WorkDirError": "run",
    "free_run_path": "run",
    "run_experiment": "run",
    "work_dir_for": "run",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BENCHMARKS",
    "DEMO_EPOCHS",
    "METHODS",
    "PRESETS",
    "PRESET_DEFAULTS",
    "SECTIONS",
    "BackboneSettings",
    "CacheSettings",
    "DataSettings",
    "EvaluationSettings",
    "TrainingSettings",
    "Experiment",
    "ExperimentConfig",
    "ExperimentData",
    "Features",
    "WorkDirError",
    "extract_all",
    "free_run_path",
    "learned_method",
    "load_data",
    "run_experiment",
    "work_dir_for",
    "zeroshot_method",
]
