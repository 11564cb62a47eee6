"""The settings of one experiment: an :class:`ExperimentConfig` and the presets that fill it in."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from negprompt.train import PRESETS as TRAIN_PRESETS
from negprompt.train import TrainConfig, for_stage, make_config

PRESETS: dict[str, str] = {
    "conventional": "ImageNet-1k (16 shots per class) vs iNaturalist, SUN, Places and Textures",
    "hard-ood": "an ImageNet open-set protocol (P1-P4, or MCM's ImageNet-10/20/100 tasks)",
    "open-vocab": "prompts learned on a fraction of the ID classes, evaluated on all of them",
    "demo": "the embedded Fashion-MNIST benchmark: 6 clothing classes vs 4 held-out ones and digits",
    "mini-conventional": "the mini-world: 10 clothing classes vs digits, shapes and textures (negprompt-mini)",
    "mini-hard-ood": "the mini-world: 6 clothing classes vs their 4 held-out siblings (negprompt-mini)",
    "mini-open-vocab": "the mini-world: prompts learned on half of the 10 clothing classes (negprompt-mini)",
}
"""The experiment presets and what each runs."""
PRESET_KIND: dict[str, str] = {
    "mini-conventional": "conventional",
    "mini-hard-ood": "hard-ood",
    "mini-open-vocab": "open-vocab",
}
"""The paper's experiment each mini-world preset reproduces (other presets are their own kind)."""
MINI_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Seeds the mini-world presets run by default (results as mean ± standard deviation)."""

BENCHMARKS: dict[str, str] = {
    "imagenet": "ImageNet-1k under data_root, OOD sets data_root/<name>/images",
    "openood": "OpenOOD v1.5's ImageNet-1k image lists under data_root/openood (near- and far-OOD)",
    "protocol": "ImageNet-1k classes split by a hard-OOD protocol",
    "demo": "the embedded demo (data_root/demo, written on first use)",
    "demo-full": "the whole Fashion-MNIST + all digits (downloaded once by torchvision)",
    "cifar10": "CIFAR-10 as ID, CIFAR-100 as OOD (downloaded once by torchvision)",
    "cifar100": "CIFAR-100 as ID, CIFAR-10 as OOD (downloaded once by torchvision)",
    "mini": "the mini-world: 10 clothing classes vs held-out digits, shapes and textures (data_root/mini)",
    "mini-hard": "the mini-world: 6 clothing classes vs their 4 held-out siblings (data_root/mini)",
}
"""Where the images of an experiment come from."""

_ALLOWED_BENCHMARKS = {
    "conventional": ("imagenet", "openood"),
    "hard-ood": ("protocol",),
    "open-vocab": ("imagenet", "mini", "demo", "demo-full", "cifar10", "cifar100"),
    "demo": ("demo", "demo-full", "cifar10", "cifar100"),
    "mini-conventional": ("mini",),
    "mini-hard-ood": ("mini-hard",),
    "mini-open-vocab": ("mini",),
}
MINI_MODEL = "negprompt-mini"
DEMO_EPOCHS = 50
"""Epochs per stage of the demo preset (fits the ~10-minute CPU budget; features are cached)."""

DEFAULT_DEMO_DATA_ROOT = "~/.cache/negprompt/data"
RESUME_FREE = frozenset(
    {"device", "cache_dir", "batch_size", "num_workers", "local_scores", "neglabel", "neglabel_n_neg",
     "neglabel_groups", "wordnet_dir", "locoop"}
)  # fmt: skip
"""Settings that may change when a run resumes (they do not change its training)."""
PRESET_DEFAULTS: dict[str, dict] = {
    "conventional": {},
    "hard-ood": {},
    "open-vocab": {"open_vocab_fraction": 0.1},
    "demo": {
        "benchmark": "demo",
        "data_root": DEFAULT_DEMO_DATA_ROOT,
        "model": MINI_MODEL,
        "shots": None,
        "val_per_class": 8,
        "train": {"epochs": DEMO_EPOCHS},
        "neglabel": False,  # encoding WordNet's ~79k labels takes minutes on a CPU; opt in
    },
}
for _name, _benchmark in (
    ("mini-conventional", "mini"),
    ("mini-hard-ood", "mini-hard"),
    ("mini-open-vocab", "mini"),
):
    PRESET_DEFAULTS[_name] = {
        "benchmark": _benchmark,
        "data_root": DEFAULT_DEMO_DATA_ROOT,
        "model": MINI_MODEL,
        "shots": 16,
        "val_per_class": 8,
        "train": {"epochs": DEMO_EPOCHS},
        "neglabel": False,  # opt in with --neglabel (needs WordNet; the mini model knows few of its words)
    }
PRESET_DEFAULTS["mini-open-vocab"]["open_vocab_fraction"] = 0.5
"""What each preset changes from the :class:`ExperimentConfig` defaults (the paper's settings)."""


@dataclass
class ExperimentConfig:
    """Everything that defines an experiment run (recorded in the run directory).

    The defaults are the paper's settings (16 shots, the authors' training preset, ViT-B-16);
    :meth:`for_preset` applies a preset's own defaults (``PRESET_DEFAULTS``) first.

    Attributes:
        preset: one of :data:`PRESETS`.
        data_root: the folder holding ``ImageNet1k/``, the OOD sets and the demo data.
        benchmark: where the images come from (:data:`BENCHMARKS`); None = the preset's default.
        protocol: hard-OOD protocol name (``P1`` … ``P4``, ``ImageNet-10 vs ImageNet-20``, …).
        ood_sets: OOD set names under ``data_root`` for ImageNet ID (default: all four
            conventional sets, each required).
        classes: keep only the first N ID classes (hard-OOD: also the first N unknown classes);
            for quick smoke runs.
        id_classes: explicit ID classes (ImageNet: synsets, class indices or clean names; other
            benchmarks: class names), in label order.
        open_vocab_fraction: fraction of the ID classes the prompts are learned on (open-vocab).
        open_vocab_mode: ``first`` (the paper: the first classes in class order) or ``random``.
        open_vocab_seed: seed of ``random`` (defaults to ``seed``).
        model, pretrained, device, precision: the frozen backbone (see ``negprompt.backbone``).
        shots: training images per class (None: all images not drawn for validation).
        val_per_class: validation images per class for epoch selection (never test data).
        seed: seed of sampling, feature views and training.
        n_views: feature views per training image (the plain one + n_views-1 augmented).
        n_neg: negative contexts M.
        neg_noise: initial noise of the negative contexts, times the context's std (see
            ``negprompt.prompts.PromptConfig``).
        train_preset: training defaults (``negprompt`` or ``coop``, see ``negprompt.train.PRESETS``).
        train: TrainConfig overrides for both stages (``{"epochs": 20, "lr": 0.05}``).
        stage1, stage2: TrainConfig overrides for one stage only (applied after ``train``).
        select: ``val`` (best epoch on validation data) or ``last``.
        temperature: score temperature T.
        batch_size, num_workers: feature extraction.
        cache_dir: feature cache (default ``$NEGPROMPT_CACHE`` or ``~/.cache/negprompt/features``).
        local_scores: also score zero-shot and CoOp prompts with GL-MCM / local MCM (one more
            pass over the test images; ViT backbones only).
        neglabel: add NegLabel (zero-shot negative labels from WordNet; needs ``wordnet-base``).
        neglabel_n_neg, neglabel_groups: NegLabel's M negative labels and G groups (the paper's
            ImageNet settings: 10,000 and 100).
        wordnet_dir: the WordNet folder (default ``$NEGPROMPT_WORDNET`` or ``/usr/share/wordnet``).
        locoop: also train LoCoOp (stage 1 again, with its OOD regularisation on the training
            images' local features; ViT backbones only).
    """

    preset: str = "conventional"
    data_root: str = "data"
    benchmark: str | None = None
    protocol: str | None = None
    ood_sets: list[str] | None = None
    classes: int | None = None
    id_classes: list[str] | None = None
    open_vocab_fraction: float | None = None
    open_vocab_mode: str = "first"
    open_vocab_seed: int | None = None
    model: str = "ViT-B-16"
    pretrained: str = "auto"
    device: str = "auto"
    precision: str = "fp32"
    shots: int | None = 16
    val_per_class: int = 4
    seed: int = 0
    n_views: int = 1
    n_neg: int = 2
    neg_noise: float = 1e-3
    train_preset: str = "negprompt"
    train: dict = field(default_factory=dict)
    stage1: dict = field(default_factory=dict)
    stage2: dict = field(default_factory=dict)
    select: str = "val"
    temperature: float = 1.0
    batch_size: int = 64
    num_workers: int = 0
    cache_dir: str | None = None
    local_scores: bool = True
    neglabel: bool = True
    neglabel_n_neg: int = 10_000
    neglabel_groups: int = 100
    wordnet_dir: str | None = None
    locoop: bool = True

    def __post_init__(self) -> None:
        self.data_root = os.fspath(self.data_root)
        if self.cache_dir is not None:
            self.cache_dir = os.fspath(self.cache_dir)
        if self.benchmark is None:
            self.benchmark = _ALLOWED_BENCHMARKS.get(self.preset, ("imagenet",))[0]
        for name in ("ood_sets", "id_classes"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"ExperimentConfig.{name} must be a list of names, not a string")
            if value is not None:
                setattr(self, name, [str(v) for v in value])
        self.validate()

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> ExperimentConfig:
        """The config of a preset: :data:`PRESET_DEFAULTS` of ``preset``, then ``overrides``.

        ``train`` overrides are merged into the preset's (e.g. the demo's epochs stay unless
        ``train={"epochs": …}`` is given). A demo on a downloaded benchmark (``demo-full``,
        CIFAR) samples 16 shots per class unless ``shots`` is given.
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESET_DEFAULTS[preset].items()}
        train = {**values.get("train", {}), **overrides.pop("train", {})}
        values.update(overrides, preset=preset)
        if train:
            values["train"] = train
        if preset == "demo" and values.get("benchmark", "demo") != "demo" and "shots" not in overrides:
            values["shots"] = 16
        return cls(**values)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting and its valid values."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        allowed = _ALLOWED_BENCHMARKS[self.preset]
        if self.benchmark not in allowed:
            raise ValueError(
                f"preset {self.preset!r} runs on {', '.join(allowed)}, not benchmark {self.benchmark!r}"
            )
        if self.base_preset == "hard-ood" and self.benchmark == "mini-hard":
            if self.protocol is not None:
                raise ValueError("the mini-world hard-OOD split is fixed; a protocol cannot be given")
        elif self.base_preset == "hard-ood":
            from negprompt.data import protocol, protocol_names

            if not self.protocol:
                raise ValueError(
                    "the hard-ood preset needs a protocol (--protocol); valid names: "
                    + ", ".join(repr(n) for n in protocol_names())
                )
            protocol(self.protocol)  # raises, listing the valid names
            if self.id_classes is not None:
                raise ValueError("a hard-OOD protocol defines its ID classes; id_classes cannot be given")
        elif self.protocol is not None:
            raise ValueError(f"a protocol only applies to the hard-ood preset, not {self.preset!r}")
        if self.open_vocab_fraction is not None:
            if self.base_preset != "open-vocab":
                raise ValueError("open_vocab_fraction only applies to the open-vocab preset")
            if not 0 < self.open_vocab_fraction <= 1:
                raise ValueError(f"open_vocab_fraction must be in (0, 1], got {self.open_vocab_fraction}")
        elif self.base_preset == "open-vocab":
            raise ValueError("the open-vocab preset needs open_vocab_fraction (e.g. 0.1)")
        if self.open_vocab_mode not in ("first", "random"):
            raise ValueError(f"open_vocab_mode must be 'first' or 'random', got {self.open_vocab_mode!r}")
        if self.ood_sets is not None and self.benchmark not in ("imagenet", "protocol", "openood"):
            raise ValueError(f"ood_sets apply to ImageNet benchmarks; {self.benchmark!r} has its own")
        if self.ood_sets is not None and not self.ood_sets:
            raise ValueError("ood_sets is empty: name at least one OOD set, or leave it unset")
        if self.classes is not None and self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")
        if self.classes is not None and self.id_classes is not None:
            raise ValueError("give either classes (a count) or id_classes (a list), not both")
        if self.id_classes is not None and not self.id_classes:
            raise ValueError("id_classes is empty")
        if self.shots is not None and self.shots < 1:
            raise ValueError(f"shots must be >= 1 or None (all), got {self.shots}")
        if self.val_per_class < 0:
            raise ValueError(f"val_per_class must be >= 0, got {self.val_per_class}")
        if self.select == "val" and self.val_per_class == 0:
            raise ValueError("select='val' needs validation images: set val_per_class >= 1 or select='last'")
        if not self.neg_noise >= 0:
            raise ValueError(f"neg_noise must be >= 0, got {self.neg_noise}")
        if self.n_neg < 1:
            raise ValueError(f"n_neg must be >= 1, got {self.n_neg}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.neglabel_n_neg < 1 or not 1 <= self.neglabel_groups <= self.neglabel_n_neg:
            raise ValueError(
                f"NegLabel needs neglabel_n_neg >= 1 and 1 <= neglabel_groups <= neglabel_n_neg, got "
                f"{self.neglabel_n_neg} and {self.neglabel_groups}"
            )
        if self.train_preset not in TRAIN_PRESETS:
            raise ValueError(
                f"unknown train_preset {self.train_preset!r}; choose one of {sorted(TRAIN_PRESETS)}"
            )
        self.train_config(1)
        self.train_config(2)  # raises on an invalid override

    def train_config(self, stage: int) -> TrainConfig:
        """The :class:`TrainConfig` of stage 1 or 2 (train preset, then ``train``, then ``stage<k>``)."""
        reserved = {"stage", "shots", "val_per_class", "seed", "n_views", "select"}
        for where, values in (("train", self.train), (f"stage{stage}", getattr(self, f"stage{stage}"))):
            clash = sorted(reserved & set(values))
            if clash:
                raise ValueError(
                    f"ExperimentConfig.{where} may not set {clash}: they are experiment settings "
                    "(set ExperimentConfig.shots, .seed, … instead)"
                )
        overrides = {**self.train, **getattr(self, f"stage{stage}")}
        config = make_config(
            self.train_preset,
            **overrides,
            shots=self.shots,
            val_per_class=self.val_per_class,
            seed=self.seed,
            n_views=self.n_views,
            select=self.select,
        )
        return for_stage(config, stage)

    def prompt_config(self):
        """The :class:`~negprompt.prompts.PromptConfig` of this experiment (M, initial noise)."""
        from negprompt.prompts import PromptConfig

        return PromptConfig(n_neg=self.n_neg, neg_noise=self.neg_noise)

    @property
    def base_preset(self) -> str:
        """The paper's experiment this preset runs (``mini-hard-ood`` -> ``hard-ood``)."""
        return PRESET_KIND.get(self.preset, self.preset)

    @property
    def kind(self) -> str:
        """The run kind recorded in the run directory (the preset's name)."""
        return self.preset

    def data_root_path(self) -> Path:
        """The data root as an absolute path (``~`` expanded)."""
        return Path(os.path.abspath(os.path.expanduser(self.data_root)))

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ExperimentConfig field(s) {unknown}; valid: {sorted(known)}")
        return cls(**values)

    def differences(self, other: dict) -> list[str]:
        """``field: X before, Y now`` for every setting (but :data:`RESUME_FREE`) that differs from a
        saved :meth:`to_dict`."""
        mine = self.to_dict()
        out = []
        for key in sorted(set(mine) | set(other)):
            if key in RESUME_FREE:
                continue
            a, b = other.get(key, "<absent>"), mine.get(key, "<absent>")
            if a != b:
                out.append(f"{key}: {a!r} before, {b!r} now")
        return out
