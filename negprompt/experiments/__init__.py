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
from .data import ExperimentData, Features, extract_all, load_data
from .experiment import METHODS, Experiment
from .methods import learned_method, zeroshot_method
from .run import WorkDirError, free_run_path, run_experiment, work_dir_for

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
