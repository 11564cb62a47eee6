"""negprompt: out-of-distribution detection with learned negative prompts on frozen CLIP models.

The public API is re-exported here lazily (``import negprompt`` stays cheap; torch is imported on
first use of a name that needs it). See the README for a tour.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "TINY_MODEL": "negprompt.backbone",
    "Backbone": "negprompt.backbone",
    "WeightsError": "negprompt.backbone",
    "available_models": "negprompt.backbone",
    "load_backbone": "negprompt.backbone",
    "ClassNames": "negprompt.prompts",
    "PromptLearner": "negprompt.prompts",
    "TextEncoder": "negprompt.prompts",
    "extract_features": "negprompt.features",
    "default_cache_dir": "negprompt.features",
    "ExperimentConfig": "negprompt.experiments",
    "Experiment": "negprompt.experiments",
    "run_experiment": "negprompt.experiments",
    "CachedFeatures": "negprompt.features",
    "PromptConfig": "negprompt.prompts",
    "TrainConfig": "negprompt.train",
    "train_prompts": "negprompt.train",
    "save_prompts": "negprompt.promptfile",
    "load_prompts": "negprompt.promptfile",
    "learner_from_file": "negprompt.promptfile",
    "ood_metrics": "negprompt.metrics",
    "fpr_at_tpr": "negprompt.metrics",
    "score_all": "negprompt.scores",
    "evaluate": "negprompt.evaluate",
    "find_runs": "negprompt.rundir",
    "score": "negprompt.scores",
    "available_scores": "negprompt.scores",
    "load_run": "negprompt.rundir",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'negprompt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
