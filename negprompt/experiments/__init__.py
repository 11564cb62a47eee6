"""The paper's experiments end to end: presets, data, both training stages, baselines, run directory.

Presets (:data:`PRESETS`): ``conventional`` (ImageNet-1k vs iNaturalist / SUN / Places / Textures),
``hard-ood`` (ImageNet open-set protocols P1-P4 and MCM's tasks), ``open-vocab`` (prompts learned
on a fraction of the classes, evaluated on all) and ``demo`` (the embedded Fashion-MNIST benchmark).
Every run reports zero-shot MCM, CoOp + MCM (the stage-1 prompts) and NegPrompt side by side.

    from negprompt.experiments import ExperimentConfig, run_experiment
    path = run_experiment(ExperimentConfig.for_preset("demo"), "runs/demo")

or step by step (see :class:`Experiment`)::

    exp = Experiment(ExperimentConfig.for_preset("hard-ood", protocol="P1", data_root="data"))
    exp.prepare(); exp.train(); exp.evaluate(); print(exp.table()); exp.write("runs/p1")
"""

from .config import BENCHMARKS, DEMO_EPOCHS, PRESET_DEFAULTS, PRESETS, ExperimentConfig
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
