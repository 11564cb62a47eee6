"""The settings of one experiment: an :class:`ExperimentConfig` in five typed sections, and the presets.

Like open_clip's nested vision and text configs, the settings are grouped by what they act on:

- :class:`BackboneSettings`: the frozen CLIP (architecture, weights, device, precision);
- :class:`DataSettings`: which images, the few-shot split, the OOD sets;
- :class:`TrainingSettings`: the two prompt-learning stages (nothing that is only recorded);
- :class:`EvaluationSettings`: the scores and the zero-shot baselines computed after training;
- :class:`CacheSettings`: where and how image features are computed and cached.

Every field carries its help text, so the command line is generated from these dataclasses: a field
``n_neg`` is the flag ``--n-neg`` and nothing else maps names (`negprompt.commands.options`). Field
names are unique across the sections, so ``ExperimentConfig.for_preset("demo", epochs=5)`` needs no
section either. ``config.json`` stores the sections as they are, and resuming a run compares them
section by section (:meth:`ExperimentConfig.differences`). Adding a setting means adding one field.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from negprompt.defaults import DEMO_DATA_ROOT, check_device_name, resolve_device

if typing.TYPE_CHECKING:  # the settings stay importable without torch (the command line's --help)
    from negprompt.train import TrainConfig

TRAIN_PRESETS: tuple[str, ...] = ("negprompt", "coop")
"""Names of `negprompt.train.PRESETS` (spelled out here so that this module does not import torch;
a test checks that both agree)."""
SELECT: tuple[str, ...] = ("val", "last")
"""`negprompt.train.config.SELECT`, spelled out for the same reason."""
MODES: tuple[str, ...] = ("cached", "online-augment")
"""`negprompt.train.config.MODES`, spelled out for the same reason."""

PRESETS: dict[str, str] = {
    "conventional": "ImageNet-1k (16 shots per class) vs iNaturalist, SUN, Places and Textures",
    "hard-ood": "an ImageNet open-set protocol (P1-P4, or MCM's ImageNet-10/20/100 tasks)",
    "open-vocab": "prompts learned on a fraction of the ID classes, evaluated on all of them",
    "demo": "the embedded Fashion-MNIST benchmark: 6 clothing classes vs 4 held-out ones and digits",
    "mini-conventional": "mini-world v2: 152 emoji concepts vs near OOD, far OOD, textures and clothing "
    "(negprompt-mini2; v1's 10 clothing classes with --benchmark mini)",
    "mini-hard-ood": "mini-world v2: a subgroup split in an ID and an OOD half, protocols P1-P4 (negprompt-mini2; "
    "v1's 6 clothing classes vs their 4 siblings with --benchmark mini-hard)",
    "mini-open-vocab": "mini-world v2: prompts learned on the published 10%, 20% or 50% of the 152 classes "
    "(negprompt-mini2; v1's half of 10 clothing classes with --benchmark mini)",
    "folders": "your own image folders: ID classes as sub-folders, OOD folders, optional training folder",
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
    "mini2": "mini-world v2: 152 emoji concepts vs near OOD, far OOD, textures and clothing (data_root/mini2)",
    "mini2-hard": "mini-world v2: a subgroup split in an ID and an OOD half, P1-P4 (data_root/mini2)",
    "folders": "image folders: train_dir / val_dir / id_dir (one sub-folder per class) and ood_dirs",
}
"""Where the images of an experiment come from."""

_ALLOWED_BENCHMARKS = {
    "conventional": ("imagenet", "openood"),
    "hard-ood": ("protocol",),
    "open-vocab": ("imagenet", "mini", "demo", "demo-full", "cifar10", "cifar100"),
    "demo": ("demo", "demo-full", "cifar10", "cifar100"),
    "mini-conventional": ("mini2", "mini"),
    "mini-hard-ood": ("mini2-hard", "mini-hard"),
    "mini-open-vocab": ("mini2", "mini"),
    "folders": ("folders",),
}
MINI_MODEL = "negprompt-mini"
DEMO_EPOCHS = 50
"""Epochs per stage of the demo preset (fits the ~10-minute CPU budget; features are cached)."""
STAGES = ("none", "1", "2", "both")
"""What a run trains: nothing (zero-shot methods only), stage 1, stage 2 (from ``init_prompts``), both."""


def setting(default=None, help: str = "", *, factory=None, resume_free: bool = False, **cli):
    """A field of a settings section with its help text.

    Args:
        default: the default value (or ``factory`` for a mutable one).
        help: the text of ``--help`` and of the docs.
        resume_free: the setting may change when an interrupted run resumes (it does not change
            what is trained).
        cli: how the command line reads it: ``choices``, ``parse`` (a function of the text),
            ``aliases`` (other flags), ``append`` (a repeatable flag collecting a list),
            ``metavar``.
    """
    meta = {"help": help, "resume_free": resume_free, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def shots_value(text: str) -> int | None:
    """``--shots``: a number of images per class >= 1, or ``all`` (None)."""
    if text == "all":
        return None
    value = int(text)
    if value < 1:
        raise ValueError("--shots must be >= 1 or 'all'")
    return value


def names_value(text: str) -> list[str]:
    """A comma-separated list, or ``@FILE`` with one name per line (``#`` starts a comment line)."""
    if text.startswith("@"):
        lines = Path(text[1:]).expanduser().read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class BackboneSettings:
    """The frozen CLIP (see `negprompt.backbone.load_backbone`)."""

    model: str = setting("ViT-B-16", "open_clip architecture or hf-hub:org/repo")
    pretrained: str = setting(
        "auto", "weights: an open_clip tag, a hub id, a checkpoint file, 'none' (random) or 'auto'"
    )
    device: str = setting("auto", "cpu, cuda, cuda:1, … or auto: cuda when available", resume_free=True)
    precision: str = setting("fp32", "model weight dtype", choices=("fp32", "fp16", "bf16"))


@dataclass
class DataSettings:
    """Which images an experiment learns from and tests on."""

    data_root: str = setting("data", "folder holding ImageNet1k/, the OOD sets, demo/, mini/ …")
    benchmark: str | None = setting(
        None, "where the images come from (default: the preset's)", choices=tuple(BENCHMARKS)
    )
    protocol: str | None = setting(None, "hard-ood: the protocol (P1 … P4, 'ImageNet-10 vs ImageNet-20', …)")
    ood_sets: list[str] | None = setting(
        None, "OOD sets under the data root (default: all four)", parse=names_value
    )
    classes: int | None = setting(None, "keep only the first N ID classes (quick runs)")
    id_classes: list[str] | None = setting(
        None, "ID classes: synsets, indices or names, comma-separated or @FILE", parse=names_value
    )
    open_vocab_fraction: float | None = setting(
        None, "open-vocab: fraction of the ID classes the prompts learn on", aliases=("--fraction",)
    )
    open_vocab_mode: str = setting(
        "first", "open-vocab: which classes (the first, a random choice, or the benchmark's published list)",
        choices=("first", "random", "published"),
        aliases=("--class-choice",),
    )  # fmt: skip
    open_vocab_seed: int | None = setting(
        None, "open-vocab: seed of a random choice (default: the seed)", aliases=("--class-seed",)
    )
    shots: int | None = setting(16, "training images per class, or 'all'", parse=shots_value)
    val_per_class: int = setting(4, "validation images per class for epoch selection (never test images)")
    train_dir: str | None = setting(None, "folders: training images, one sub-folder per class")
    val_dir: str | None = setting(None, "folders: validation images (default: drawn from train_dir)")
    id_dir: str | None = setting(None, "folders: ID test images, one sub-folder per class")
    ood_dirs: list[str] | None = setting(
        None, "folders: an OOD image folder (repeatable)", append=True, aliases=("--ood-dir",)
    )


@dataclass
class TrainingSettings:
    """The two prompt-learning stages (see `negprompt.train.TrainConfig` for each stage's settings)."""

    stages: str = setting(
        "both",
        "what to train: none (zero-shot only), 1, 2 (from init_prompts) or both",
        choices=STAGES,
        aliases=("--stage",),
    )
    train_preset: str = setting("negprompt", "training defaults of both stages", choices=tuple(TRAIN_PRESETS))
    epochs: int | None = setting(None, "epochs of each stage (default: the train preset's)")
    lr: float | None = setting(None, "learning rate of both stages (default: the train preset's)")
    train_batch_size: int | None = setting(None, "images per training step (default: the train preset's)")
    class_subset_size: int | None = setting(None, "classes whose prompts a step encodes (default: all)")
    img_loss: str | None = setting(None, "stage-2 L_img variant (default msp)", choices=("msp", "oe"))
    n_views: int = setting(1, "feature views per training image: the plain one + N-1 augmented")
    n_neg: int = setting(2, "negative contexts M")
    neg_noise: float = setting(1e-3, "initial noise of the negative contexts, times the context's std")
    select: str = setting("val", "keep the best epoch on validation images, or the last", choices=SELECT)
    mode: str = setting(
        "cached", "cached features, or the image encoder on augmented images every step", choices=MODES
    )
    init_prompts: str | None = setting(
        None, "stage 2 only: the prompts file (of stage 1) whose positives stage 2 keeps"
    )
    locoop: bool = setting(True, "also train LoCoOp (stage 1 with its OOD regularisation)", resume_free=True)
    stage1: dict = setting(
        factory=dict, help="a TrainConfig setting of stage 1 only, e.g. epochs=20 (repeatable)", append=True,
        metavar="KEY=VALUE",
    )  # fmt: skip
    stage2: dict = setting(
        factory=dict, help="a TrainConfig setting of stage 2 only, e.g. lr=0.05 (repeatable)", append=True,
        metavar="KEY=VALUE",
    )  # fmt: skip


@dataclass
class EvaluationSettings:
    """The scores computed after training, and the zero-shot baselines beside them."""

    temperature: float = setting(1.0, "score temperature T")
    local_scores: bool = setting(
        True, "GL-MCM scores of the zero-shot and CoOp prompts (ViT backbones)", resume_free=True
    )
    neglabel: bool = setting(True, "NegLabel with WordNet's labels (shipped)", resume_free=True)
    neglabel_n_neg: int = setting(10_000, "NegLabel's M negative labels", resume_free=True)
    neglabel_groups: int = setting(100, "NegLabel's G groups", resume_free=True)
    wordnet_dir: str | None = setting(
        None, "WordNet 3.0 folder ($NEGPROMPT_WORDNET, /usr/share/wordnet, else shipped)", resume_free=True
    )
    csp: bool = setting(False, "CSP: NegLabel with adjective phrases and prompt ensembles", resume_free=True)
    csp_fraction: float = setting(0.15, "CSP's share of nouns and of adjectives kept", resume_free=True)
    adaneg: bool = setting(False, "AdaNeg: negative labels that adapt on the test stream", resume_free=True)
    adaneg_pool: str = setting(
        "neglabel",
        "the labels AdaNeg adapts (that method must be on)",
        choices=("neglabel", "csp"),
        resume_free=True,
    )
    adaneg_memory: int = setting(
        10, "AdaNeg's memory slots per label (the text feature included)", resume_free=True
    )
    adaneg_groups: int = setting(5, "AdaNeg's G groups of negative labels", resume_free=True)
    adaneg_batch_size: int = setting(256, "test images AdaNeg reads at a time", resume_free=True)
    tanl: bool = setting(
        False, "TANL: WordNet labels activated by the test stream (adapts on it)", resume_free=True
    )
    tanl_labels: int = setting(1000, "TANL's β negative labels chosen per batch", resume_free=True)
    tanl_memory: int = setting(300, "TANL's L rows per activation queue", resume_free=True)
    tanl_gamma: int = setting(
        1, "TANL's γ: negatives added per softmax of its score (0: one softmax)", resume_free=True
    )
    tanl_alpha: float = setting(
        0.0, "TANL's α: weight of the queues against the batch (0: batch-adaptive)", resume_free=True
    )
    tanl_batch_size: int = setting(256, "test images TANL reads at a time", resume_free=True)
    tanl_stream: str = setting(
        "per_set",
        "TANL's test streams: one per OOD set with the ID images, fresh queues each (official), or joint",
        choices=("per_set", "joint"),
        resume_free=True,
    )
    adaneg_stream: str = setting(
        "per_set",
        "AdaNeg's test streams: one per OOD set with the ID images, fresh memory each (official), or joint",
        choices=("per_set", "joint"),
        resume_free=True,
    )
    adaneg_coop: bool = setting(
        False, "also AdaNeg over CoOp's learned ID prompts (row adaneg_coop; needs stage 1)", resume_free=True
    )
    stream_seed: int = setting(
        0, "seed of the test stream's order for methods that adapt on it", resume_free=True
    )
    bootstrap: int = setting(
        1000,
        "bootstrap resamples of the test images for every interval (>= 1000 recommended)",
        resume_free=True,
    )
    bootstrap_seed: int = setting(0, "seed of the bootstrap resamples", resume_free=True)
    ci_level: float = setting(0.95, "confidence level of every interval", resume_free=True)


@dataclass
class CacheSettings:
    """Feature extraction and the feature cache (none of it changes a result)."""

    cache_dir: str | None = setting(
        None, "feature cache (default $NEGPROMPT_CACHE or ~/.cache/negprompt/features)", resume_free=True
    )
    batch_size: int = setting(64, "images per batch of feature extraction", resume_free=True)
    num_workers: int = setting(0, "image loading processes of feature extraction", resume_free=True)


SECTIONS: dict[str, type] = {
    "backbone": BackboneSettings,
    "data": DataSettings,
    "training": TrainingSettings,
    "evaluation": EvaluationSettings,
    "cache": CacheSettings,
}
"""The sections of an :class:`ExperimentConfig`, in the order ``config.json`` and ``--help`` list them."""
TOP_LEVEL = ("preset", "seed")


def section_of(name: str) -> str:
    """The section holding setting ``name`` (ValueError naming the valid settings otherwise)."""
    for section, cls in SECTIONS.items():
        if name in {f.name for f in fields(cls)}:
            return section
    valid = sorted(f.name for cls in SECTIONS.values() for f in fields(cls))
    raise ValueError(f"unknown setting {name!r}; valid: {', '.join(valid)}")


PRESET_DEFAULTS: dict[str, dict] = {
    "conventional": {},
    "hard-ood": {},
    "open-vocab": {"open_vocab_fraction": 0.1},
    "demo": {
        "benchmark": "demo",
        "data_root": DEMO_DATA_ROOT,
        "model": MINI_MODEL,
        "shots": None,
        "val_per_class": 8,
        "epochs": DEMO_EPOCHS,
        "neglabel": False,  # encoding WordNet's ~79k labels takes minutes on a CPU; opt in
    },
    "folders": {"data_root": "."},
}
MINI2_PROTOCOLS = ("P1", "P2", "P3", "P4")
"""`negprompt.miniworld.benchmark_v2.PROTOCOLS`, spelled out so that this module stays light."""
MINI2_MODEL = "negprompt-mini2"
MINI2_TAG = "miniworld-v2"
"""The model and weights of the mini presets on mini-world v2 (their default benchmarks)."""
for _name, _benchmark in (
    ("mini-conventional", "mini2"),
    ("mini-hard-ood", "mini2-hard"),
    ("mini-open-vocab", "mini2"),
):
    PRESET_DEFAULTS[_name] = {
        "benchmark": _benchmark,
        "data_root": DEMO_DATA_ROOT,
        "model": MINI2_MODEL,
        "pretrained": MINI2_TAG,
        "shots": 16,
        "val_per_class": 8,
        "epochs": DEMO_EPOCHS,
        "neglabel": False,  # opt in with --neglabel (needs WordNet; its 79k labels take about 1.5 min to encode on a CPU)
    }
PRESET_DEFAULTS["mini-hard-ood"]["protocol"] = "P1"
PRESET_DEFAULTS["mini-open-vocab"] |= {"open_vocab_fraction": 0.1, "open_vocab_mode": "published"}
"""What each preset changes from the section defaults (the paper's settings), by setting name."""
V1_BENCHMARKS = ("mini", "mini-hard")
"""Mini-world v1's benchmarks, which the mini presets run with ``--benchmark``."""
V1_DEFAULTS = {
    "mini-hard-ood": {"protocol": None},
    "mini-open-vocab": {"open_vocab_fraction": 0.5, "open_vocab_mode": "first"},
}
"""What a mini preset's defaults are on mini-world v1 (``--benchmark mini`` or ``mini-hard``)."""


def _mini_world_defaults(preset: str, values: dict, given: dict) -> None:
    """A mini preset's model, weights and world defaults where the caller gave none.

    On v1's benchmarks: v1's defaults (:data:`V1_DEFAULTS`) and ``negprompt-mini`` (``auto`` weights,
    which are ``miniworld-v1``). On either world, a model given without weights takes ``auto`` weights
    (the world's tag belongs to the world's model).
    """
    if preset not in PRESET_KIND:
        return
    v1 = values.get("benchmark") in V1_BENCHMARKS
    if v1:
        for name, value in V1_DEFAULTS.get(preset, {}).items():
            if name not in given:
                values[name] = value
        if "model" not in given:
            values["model"] = MINI_MODEL
    if "pretrained" not in given and (v1 or "model" in given):
        values["pretrained"] = "auto"


@dataclass
class ExperimentConfig:
    """Everything that defines an experiment run (recorded by sections in the run directory).

    The section defaults are the paper's settings (16 shots, the authors' training preset,
    ViT-B-16); :meth:`for_preset` applies a preset's own defaults (:data:`PRESET_DEFAULTS`) first.

    Attributes:
        preset: one of :data:`PRESETS`.
        seed: seed of sampling, feature views and training.
        backbone, data, training, evaluation, cache: the sections (each a dataclass; a dict is
            converted).
    """

    preset: str = "conventional"
    seed: int = 0
    backbone: BackboneSettings = field(default_factory=BackboneSettings)
    data: DataSettings = field(default_factory=DataSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _section_from_dict(cls, name, value))
            elif not isinstance(value, cls):
                raise TypeError(f"ExperimentConfig.{name} must be a {cls.__name__} or a dict")
        d = self.data
        d.data_root = os.fspath(d.data_root)
        for name in ("train_dir", "val_dir", "id_dir", "wordnet_dir", "cache_dir", "init_prompts"):
            section = getattr(self, section_of(name))
            if getattr(section, name) is not None:
                setattr(section, name, os.fspath(getattr(section, name)))
        if d.benchmark is None:
            d.benchmark = _ALLOWED_BENCHMARKS.get(self.preset, ("imagenet",))[0]
        for name in ("ood_sets", "id_classes", "ood_dirs"):
            value = getattr(d, name)
            if isinstance(value, str | os.PathLike):
                raise TypeError(f"DataSettings.{name} must be a list, not a string")
            if value is not None:
                setattr(d, name, [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value])
        for k in (1, 2):
            value = getattr(self.training, f"stage{k}")
            setattr(self.training, f"stage{k}", dict(value or {}))
        self.validate()

    # ------------------------------------------------------------------ construction

    @classmethod
    def for_preset(cls, preset: str, **settings) -> ExperimentConfig:
        """The config of a preset: :data:`PRESET_DEFAULTS` of ``preset``, then ``settings``.

        ``settings`` are setting names of any section (``shots=4, epochs=5, model="ViT-B-32"``) or
        whole sections (``training={"epochs": 5}``); ``seed`` is top-level. A demo on a downloaded
        benchmark (``demo-full``, CIFAR) samples 16 shots per class unless ``shots`` is given.
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values = dict(PRESET_DEFAULTS[preset])
        for name, value in settings.items():
            if name in SECTIONS:
                section = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
                values.update(section)
            else:
                values[name] = value
        if preset == "demo" and values.get("benchmark", "demo") != "demo" and "shots" not in settings:
            values["shots"] = 16
        _mini_world_defaults(preset, values, settings)
        top = {k: values.pop(k) for k in TOP_LEVEL if k in values}
        by_section: dict[str, dict] = {name: {} for name in SECTIONS}
        for name, value in values.items():
            by_section[section_of(name)][name] = value
        return cls(preset=preset, **top, **by_section)

    def replace(self, **settings) -> ExperimentConfig:
        """A copy with some settings changed (setting names of any section, or ``seed``)."""
        values = self.to_dict()
        for name, value in settings.items():
            if name in TOP_LEVEL:
                values[name] = value
            else:
                values[section_of(name)][name] = value
        return ExperimentConfig.from_dict(values)

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting and its valid values."""
        d, t, e = self.data, self.training, self.evaluation
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        allowed = _ALLOWED_BENCHMARKS[self.preset]
        if d.benchmark not in allowed:
            raise ValueError(
                f"preset {self.preset!r} runs on {', '.join(allowed)}, not benchmark {d.benchmark!r}"
            )
        for section, cls in SECTIONS.items():
            for f in fields(cls):
                choices = f.metadata.get("choices")
                value = getattr(getattr(self, section), f.name)
                if choices and value is not None and value not in choices:
                    raise ValueError(
                        f"{section}.{f.name}={value!r} is not one of {', '.join(map(str, choices))}"
                    )
        if self.base_preset == "hard-ood" and d.benchmark == "mini-hard":
            if d.protocol is not None:
                raise ValueError("the mini-world v1 hard-OOD split is fixed; a protocol cannot be given")
        elif self.base_preset == "hard-ood" and d.benchmark == "mini2-hard":
            if d.protocol not in MINI2_PROTOCOLS:
                raise ValueError(
                    f"mini-world v2's hard-OOD protocol must be one of {', '.join(MINI2_PROTOCOLS)}, "
                    f"got {d.protocol!r} (--protocol P1)"
                )
        elif self.base_preset == "hard-ood":
            from negprompt.data import protocol, protocol_names

            if not d.protocol:
                raise ValueError(
                    "the hard-ood preset needs a protocol (--protocol); valid names: "
                    + ", ".join(repr(n) for n in protocol_names())
                )
            protocol(d.protocol)  # raises, listing the valid names
            if d.id_classes is not None:
                raise ValueError("a hard-OOD protocol defines its ID classes; id_classes cannot be given")
        elif d.protocol is not None:
            raise ValueError(f"a protocol only applies to the hard-ood preset, not {self.preset!r}")
        if d.open_vocab_fraction is not None:
            if self.base_preset != "open-vocab":
                raise ValueError("open_vocab_fraction only applies to the open-vocab preset")
            if not 0 < d.open_vocab_fraction <= 1:
                raise ValueError(f"open_vocab_fraction must be in (0, 1], got {d.open_vocab_fraction}")
        elif self.base_preset == "open-vocab":
            raise ValueError("the open-vocab preset needs open_vocab_fraction (e.g. 0.1)")
        if d.ood_sets is not None and d.benchmark not in ("imagenet", "protocol", "openood"):
            raise ValueError(f"ood_sets apply to ImageNet benchmarks; {d.benchmark!r} has its own")
        if d.ood_sets is not None and not d.ood_sets:
            raise ValueError("ood_sets is empty: name at least one OOD set, or leave it unset")
        self._validate_folders()
        if d.classes is not None and d.classes < 1:
            raise ValueError(f"classes must be >= 1, got {d.classes}")
        if d.classes is not None and d.id_classes is not None:
            raise ValueError("give either classes (a count) or id_classes (a list), not both")
        if d.id_classes is not None and not d.id_classes:
            raise ValueError("id_classes is empty")
        if d.shots is not None and d.shots < 1:
            raise ValueError(f"shots must be >= 1 or None (all), got {d.shots}")
        if d.val_per_class < 0:
            raise ValueError(f"val_per_class must be >= 0, got {d.val_per_class}")
        if t.select == "val" and d.val_per_class == 0 and d.val_dir is None and self.trains:
            raise ValueError("select='val' needs validation images: set val_per_class >= 1 or select='last'")
        if not t.neg_noise >= 0:
            raise ValueError(f"neg_noise must be >= 0, got {t.neg_noise}")
        if t.n_neg < 1:
            raise ValueError(f"n_neg must be >= 1, got {t.n_neg}")
        check_device_name(self.backbone.device)
        for k in (1, 2):
            _check_stage_settings(k, getattr(t, f"stage{k}"))
        if (t.init_prompts is not None) != (t.stages == "2"):
            raise ValueError(
                "stages='2' trains the negatives on the positives of a prompts file: give init_prompts "
                "with stages='2', and only then"
            )
        if e.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {e.temperature}")
        if e.bootstrap < 2 or not 0 < e.ci_level < 1:
            raise ValueError(
                f"intervals need bootstrap >= 2 resamples and 0 < ci_level < 1, got {e.bootstrap} and {e.ci_level}"
            )
        if e.neglabel_n_neg < 1 or not 1 <= e.neglabel_groups <= e.neglabel_n_neg:
            raise ValueError(
                f"NegLabel needs neglabel_n_neg >= 1 and 1 <= neglabel_groups <= neglabel_n_neg, got "
                f"{e.neglabel_n_neg} and {e.neglabel_groups}"
            )
        if e.adaneg_coop and not (e.adaneg and 1 in self.stage_numbers):
            raise ValueError(
                "adaneg_coop runs AdaNeg over CoOp's prompts: it needs adaneg=True (--adaneg) and stage 1 in "
                f"training.stages, got adaneg={e.adaneg} and stages={self.training.stages!r}"
            )
        if e.adaneg and not getattr(e, e.adaneg_pool):
            raise ValueError(
                f"AdaNeg adapts the labels of {e.adaneg_pool}, which is off: turn it on ({e.adaneg_pool}=True, "
                f"--{e.adaneg_pool}) or set adaneg_pool"
            )
        if (
            not 0 < e.csp_fraction <= 1
            or e.adaneg_memory < 2
            or e.adaneg_groups < 1
            or e.adaneg_batch_size < 1
        ):
            raise ValueError(
                "CSP and AdaNeg need 0 < csp_fraction <= 1, adaneg_memory >= 2, adaneg_groups >= 1 and "
                f"adaneg_batch_size >= 1; got {e.csp_fraction}, {e.adaneg_memory}, {e.adaneg_groups}, "
                f"{e.adaneg_batch_size}"
            )
        if e.tanl and (
            e.tanl_labels < 1
            or e.tanl_memory < 1
            or e.tanl_gamma < 0
            or not 0 <= e.tanl_alpha <= 1
            or e.tanl_batch_size < 1
        ):
            raise ValueError(
                "TANL needs tanl_labels >= 1, tanl_memory >= 1, tanl_gamma >= 0, 0 <= tanl_alpha <= 1 and "
                f"tanl_batch_size >= 1; got {e.tanl_labels}, {e.tanl_memory}, {e.tanl_gamma}, {e.tanl_alpha}, "
                f"{e.tanl_batch_size}"
            )
        if self.cache.batch_size < 1 or self.cache.num_workers < 0:
            raise ValueError(
                f"batch_size must be >= 1 and num_workers >= 0, got {self.cache.batch_size} and "
                f"{self.cache.num_workers}"
            )
        self.train_config(1)
        self.train_config(2)  # raises on an invalid setting

    def _validate_folders(self) -> None:
        d = self.data
        given = [n for n in ("train_dir", "val_dir", "id_dir", "ood_dirs") if getattr(d, n) is not None]
        if d.benchmark != "folders":
            if given:
                raise ValueError(
                    f"{', '.join(given)} apply to image folders (preset 'folders'), not {self.preset!r}"
                )
            return
        if self.trains and d.train_dir is None:
            raise ValueError("training needs train_dir (--train-dir: one sub-folder of images per class)")
        if not self.trains and d.id_dir is None:
            raise ValueError("a zero-shot run needs id_dir (--id-dir: ID images, one sub-folder per class)")
        if d.ood_dirs and d.id_dir is None:
            raise ValueError(
                "OOD folders are compared with ID test images: give id_dir (--id-dir) too (the validation "
                "images choose the epoch, so they are not test images)"
            )
        if d.ood_dirs is not None and not d.ood_dirs:
            raise ValueError("ood_dirs is empty: name at least one OOD folder, or leave it unset")

    # ------------------------------------------------------------------ derived

    @property
    def trains(self) -> bool:
        """Whether this run trains prompts (``training.stages`` is not ``none``)."""
        return self.training.stages != "none"

    @property
    def stage_numbers(self) -> tuple[int, ...]:
        """The stages this run trains: (), (1,), (2,) or (1, 2)."""
        return {"none": (), "1": (1,), "2": (2,), "both": (1, 2)}[self.training.stages]

    def bootstrap(self):
        """The bootstrap of every interval (`negprompt.uncertainty.Bootstrap`) from the evaluation settings."""
        from negprompt.uncertainty import Bootstrap

        e = self.evaluation
        return Bootstrap(n_resamples=e.bootstrap, level=e.ci_level, seed=e.bootstrap_seed)

    def train_config(self, stage: int) -> TrainConfig:
        """The :class:`TrainConfig` of stage 1 or 2: train preset, the training section, ``stage<k>``."""
        from negprompt.train.config import for_stage, make_config

        t = self.training
        own = getattr(t, f"stage{stage}")
        clash = sorted(STAGE_RESERVED & set(own))
        if clash:
            raise ValueError(
                f"training.stage{stage} may not set {clash}: they are experiment settings "
                "(set seed, n_views, select or mode instead)"
            )
        common = {
            "epochs": t.epochs,
            "lr": t.lr,
            "batch_size": t.train_batch_size,
            "class_subset_size": t.class_subset_size,
            "img_loss": t.img_loss,
        }
        overrides = {k: v for k, v in common.items() if v is not None}
        overrides.update(own)
        config = make_config(
            t.train_preset, **overrides, seed=self.seed, n_views=t.n_views, select=t.select, mode=t.mode
        )
        return for_stage(config, stage)

    def prompt_config(self):
        """The :class:`~negprompt.prompts.PromptConfig` of this experiment (M, initial noise)."""
        from negprompt.prompts import PromptConfig

        return PromptConfig(n_neg=self.training.n_neg, neg_noise=self.training.neg_noise)

    @property
    def base_preset(self) -> str:
        """The paper's experiment this preset runs (``mini-hard-ood`` -> ``hard-ood``)."""
        return PRESET_KIND.get(self.preset, self.preset)

    @property
    def kind(self) -> str:
        """The run kind recorded in the run directory: the preset's name (``zeroshot`` for image folders
        without training)."""
        return "zeroshot" if self.preset == "folders" and not self.trains else self.preset

    @property
    def device(self) -> str:
        """The device this run uses (``auto`` resolved)."""
        return resolve_device(self.backbone.device)

    def data_root_path(self) -> Path:
        """The data root as an absolute path (``~`` expanded)."""
        return Path(os.path.abspath(os.path.expanduser(self.data.data_root)))

    def cache_path(self) -> Path:
        """The feature cache folder (``~`` expanded; the default when unset)."""
        from negprompt.defaults import feature_cache_dir

        return feature_cache_dir(self.cache.cache_dir)

    # ------------------------------------------------------------------ records

    def to_dict(self) -> dict:
        """JSON-ready copy, by sections: ``{"preset", "seed", "backbone": {…}, "data": {…}, …}``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`; unknown sections or settings raise ValueError naming them."""
        known = set(TOP_LEVEL) | set(SECTIONS)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown ExperimentConfig key(s) {unknown}; valid: {sorted(known)} (a config.json written "
                "by negprompt 0.1, with flat settings, cannot be read by this version)"
            )
        return cls(**values)

    def differences(self, saved: dict) -> list[str]:
        """``section.setting: X before, Y now`` for every setting that differs from a saved
        :meth:`to_dict` (settings marked ``resume_free`` may differ)."""
        mine = self.to_dict()
        out = []
        for key in TOP_LEVEL:
            if saved.get(key, "<absent>") != mine[key]:
                out.append(f"{key}: {saved.get(key, '<absent>')!r} before, {mine[key]!r} now")
        for section, cls in SECTIONS.items():
            before = saved.get(section)
            if not isinstance(before, dict):
                out.append(f"{section}: absent before (a run of another negprompt version)")
                continue
            for f in fields(cls):
                if f.metadata.get("resume_free"):
                    continue
                a, b = before.get(f.name, "<absent>"), mine[section][f.name]
                if a != b:
                    out.append(f"{section}.{f.name}: {a!r} before, {b!r} now")
        return out


def _section_from_dict(cls: type, name: str, values: dict):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {name} setting(s) {unknown}; valid: {sorted(known)}")
    return cls(**values)


def field_types(cls: type) -> dict[str, object]:
    """The resolved type annotations of a settings section (for the command line)."""
    return typing.get_type_hints(cls)


STAGE_RESERVED = frozenset({"stage", "seed", "n_views", "select", "mode", "device"})
"""Training settings that are experiment settings and may not be set per stage."""


def _check_stage_settings(stage: int, own: dict) -> None:
    """Each ``stage<k>`` setting (``--stage1 KEY=VALUE``) names a training setting and has its type."""
    if not own:
        return
    import typing
    from dataclasses import fields as dataclass_fields

    from negprompt.train.config import TrainConfig  # imported only when stage settings are given

    known = {f.name: f for f in dataclass_fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    for key, value in own.items():
        if key not in known or key in STAGE_RESERVED:
            continue  # unknown and reserved keys are named by make_config / train_config
        kinds = tuple(a for a in typing.get_args(hints[key]) if a is not type(None)) or (hints[key],)
        if value is None and type(None) in typing.get_args(hints[key]):
            continue
        ok = any(
            (kind is int and isinstance(value, int) and not isinstance(value, bool))
            or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind not in (int, float) and isinstance(kind, type) and isinstance(value, kind))
            for kind in kinds
        )
        if not ok:
            wanted = " or ".join(getattr(kind, "__name__", str(kind)) for kind in kinds)
            raise ValueError(
                f"--stage{stage} {key}={value!r}: {key} must be {wanted}, got {type(value).__name__}"
            )
