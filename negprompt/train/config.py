"""Training configuration, presets and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch

from negprompt.losses import IMG_LOSSES

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
AMP_MODES = ("auto", "bf16", "none")
SELECT = ("val", "last")
MODES = ("cached", "online-augment")

# Fields that may change between an interrupted run and its resumption (they do not change results).
RESUME_FREE = frozenset({"device"})


@dataclass
class TrainConfig:
    """Settings of one training stage (METHOD.md, Training). Defaults: the authors' NegPrompt runs.

    Attributes:
        stage: 1 (CoOp: learn the positive context) or 2 (NegPrompt: learn the negative contexts).
        epochs: passes over the training features.
        batch_size: images per step.
        lr, momentum, weight_decay, optimizer: ``sgd`` or ``adamw``.
        schedule: ``cosine`` (one cosine decay from ``lr`` to 0 over the whole run after warm-up,
            stepped every batch) or ``constant``.
        warmup_epochs, warmup_lr: constant learning rate ``warmup_lr`` during the first epochs.
        img_loss: the L_img variant of stage 2 (a name in :data:`negprompt.losses.IMG_LOSSES`).
        w_img, w_pd, w_nn: stage-2 loss weights.
        seed: seeds shuffling, view choice, class subsets and the negative-context noise.
        n_views: how many feature views the trainer receives (a random one per sample each step).
        class_subset_size: None to use all C classes every step, or S to encode the prompts of S
            classes per step: the batch's labels plus classes drawn at random (cheaper, noisier).
        device: None for the backbone's device; otherwise must be the backbone's device.
        amp: ``auto`` (bf16 autocast of the text encoder on CUDA, none on CPU), ``bf16`` or ``none``.
        select: ``val`` keeps the contexts of the best epoch on validation data, ``last`` the last.
        mode: ``cached`` (features given as arrays) or ``online-augment`` (images encoded every step
            with ``backbone.train_transform``).
        encode_mode: text encoding mode (see :data:`negprompt.prompts.ENCODE_MODES`).
        locoop_weight: λ of LoCoOp's OOD regularisation in stage 1 (0: plain CoOp; the paper's
            0.25); needs the training images' local features (`negprompt.locoop`).
        locoop_top_k: LoCoOp's K (None: 20% of the classes, the paper's 200 of 1000).
    """

    stage: int = 1
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    img_loss: str = "msp"
    w_img: float = 1.0
    w_pd: float = 0.1
    w_nn: float = 0.05
    seed: int = 0
    n_views: int = 1
    class_subset_size: int | None = None
    device: str | None = None
    amp: str = "auto"
    select: str = "val"
    mode: str = "cached"
    encode_mode: str = "prefix"
    locoop_weight: float = 0.0
    locoop_top_k: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and its valid values."""
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "amp": AMP_MODES,
            "select": SELECT,
            "mode": MODES,
            "img_loss": tuple(IMG_LOSSES),
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is not one of {valid}")
        if self.stage not in (1, 2):
            raise ValueError(f"TrainConfig.stage must be 1 or 2, got {self.stage!r}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "n_views": self.n_views}
        for name, value in positive.items():
            if int(value) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {value}")
        if not self.lr > 0 or not self.warmup_lr > 0:
            raise ValueError(f"learning rates must be > 0 (lr={self.lr}, warmup_lr={self.warmup_lr})")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if self.class_subset_size is not None and self.class_subset_size < 1:
            raise ValueError(f"class_subset_size must be None or >= 1, got {self.class_subset_size}")
        if self.locoop_weight < 0 or (self.locoop_weight and self.stage != 1):
            raise ValueError(f"locoop_weight must be >= 0 and is a stage-1 setting, got {self.locoop_weight}")
        if self.locoop_top_k is not None and self.locoop_top_k < 1:
            raise ValueError(f"locoop_top_k must be None or >= 1, got {self.locoop_top_k}")

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid: {sorted(known)}")
        return cls(**values)

    def amp_dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype for ``device``, or None for full precision."""
        if self.amp == "bf16" or (self.amp == "auto" and device.type == "cuda"):
            return torch.bfloat16
        return None


PRESETS: dict[str, dict] = {
    # the authors' runs: SGD lr 0.1, no momentum, no weight decay, batch 64, 100 epochs, cosine
    "negprompt": {},
    # CoOp's ImageNet defaults (the CoOp baseline)
    "coop": {
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 32,
        "epochs": 50,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "warmup_lr": 1e-5,
    },
}
"""Named settings on top of the :class:`TrainConfig` defaults."""


def make_config(preset: str = "negprompt", **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a preset in :data:`PRESETS` plus field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return TrainConfig.from_dict({**PRESETS[preset], **overrides})


def for_stage(config: TrainConfig, stage: int) -> TrainConfig:
    """The same settings for another stage."""
    return replace(config, stage=stage)


def lr_factor(step: int, total_steps: int, warmup_steps: int, config: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based, before that step's update) divided by ``config.lr``.

    ``warmup_lr / lr`` during the ``warmup_steps`` first steps; then ``cosine``:
    ½ (1 + cos(π (step − warmup) / (total − warmup))), one decay from ``lr`` towards 0 over the run,
    or 1 for ``constant``.
    """
    if step < warmup_steps:
        return config.warmup_lr / config.lr
    if config.schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def config_differences(saved: dict, current: dict, ignore=RESUME_FREE) -> list[str]:
    """Human-readable ``field: saved X, now Y`` for every field that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: {a!r} in the checkpoint, {b!r} now")
    return out
