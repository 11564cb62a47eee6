"""The image sets of an experiment: few-shot training and validation images, ID test set, OOD sets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from negprompt.backbone import Backbone
from negprompt.data import (
    OOD_SETS,
    ImageSet,
    Protocol,
    class_subset,
    few_shot_split,
    hard_ood_sets,
    imagenet_classes,
    imagenet_split,
    materialize_demo,
    ood_folder,
    protocol,
)
from negprompt.data.names import check_class_names
from negprompt.evaluate import EvalSet
from negprompt.features import CachedFeatures

from .config import ExperimentConfig

log = logging.getLogger("negprompt.experiments")


@dataclass
class ExperimentData:
    """What an experiment trains and evaluates on (image lists only, no pixels).

    Attributes:
        benchmark: a readable name of the benchmark (``ImageNet-1k``, ``P1``, ``demo`` …).
        class_names: the C ID class names the test images are labelled with, in label order.
        train_classes: indices into ``class_names`` of the classes the prompts are learned on
            (all of them, except in open-vocabulary runs).
        train: few-shot training images, labels 0..len(train_classes)-1 in ``train_classes`` order.
        val: validation images (same labels as ``train``, disjoint from it; empty with 0 per class).
        id_test: ID test images, labels over ``class_names``.
        ood: OOD test sets by name; unlabelled (labels -1), or labelled among their own OOD
            classes (hard-OOD protocols, the demo's near-OOD clothing).
        facts: JSON-ready details recorded with the run (protocol lists, counts …).
        shifted: ID classes under covariate shift (labels over ``class_names``), reported as
            accuracy only, never as OOD (mini-world v2: the ID concepts by the held-out artist).
    """

    benchmark: str
    class_names: list[str]
    train_classes: list[int]
    train: ImageSet
    val: ImageSet
    id_test: ImageSet
    ood: dict[str, ImageSet]
    facts: dict = field(default_factory=dict)
    shifted: dict[str, ImageSet] = field(default_factory=dict)

    @property
    def train_class_names(self) -> list[str]:
        """Names of the classes the prompts are learned on."""
        return [self.class_names[i] for i in self.train_classes]

    @property
    def roots(self) -> list[Path]:
        """Distinct roots of the evaluated sets (the folders the dashboard may serve images from)."""
        sets = [self.id_test, *self.ood.values(), *self.shifted.values()]
        return list(dict.fromkeys(s.root for s in sets))

    def describe(self) -> dict:
        """JSON-ready counts and names."""
        return {
            "benchmark": self.benchmark,
            "n_classes": len(self.class_names),
            "n_train_classes": len(self.train_classes),
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_id_test": len(self.id_test),
            "ood": {name: len(s) for name, s in self.ood.items()},
            **({"shifted": {name: len(s) for name, s in self.shifted.items()}} if self.shifted else {}),
            **self.facts,
        }

    def __repr__(self) -> str:
        return self.summary(trains=len(self.train) > 0)

    def summary(self, trains: bool = True) -> str:
        """One line on the images; a run that trains nothing (zero-shot) names no training split."""
        ood = ", ".join(f"{name} ({len(s)})" for name, s in self.ood.items())
        learned = (
            f", prompts learned on {len(self.train_classes)}; train {len(self.train)}, val {len(self.val)}"
            if trains
            else " (zero-shot: nothing is trained)"
        )
        return (
            f"ExperimentData({self.benchmark}: {len(self.class_names)} ID classes{learned}; "
            f"ID test {len(self.id_test)}; OOD {ood})"
        )


def _imagenet_classes(config: ExperimentConfig) -> list[int]:
    """ImageNet class indices of the ID classes: all 1000, the first ``classes``, or ``id_classes``."""
    if config.data.id_classes is None:
        return list(range(config.data.classes or 1000))
    info = imagenet_classes()
    by_synset = {c.synset: c.index for c in info}
    by_name: dict[str, list[int]] = {}
    for c in info:
        by_name.setdefault(c.name.lower(), []).append(c.index)
    out = []
    for item in config.data.id_classes:
        text = item.strip()
        if text.isdigit() and int(text) < 1000:
            out.append(int(text))
        elif text in by_synset:
            out.append(by_synset[text])
        elif len(by_name.get(text.lower(), [])) == 1:
            out.append(by_name[text.lower()][0])
        elif text.lower() in by_name:
            raise ValueError(
                f"ImageNet class name {text!r} is ambiguous (classes {by_name[text.lower()]}); "
                "give the synset or the class index instead"
            )
        else:
            raise ValueError(
                f"ID class {text!r} is not an ImageNet-1k class: give synsets (n01440764), class "
                "indices (0-999) or clean class names (see negprompt.data.imagenet_classes())"
            )
    if len(set(out)) != len(out):
        raise ValueError(f"id_classes lists a class twice: {config.data.id_classes}")
    return out


def _conventional_ood(config: ExperimentConfig) -> dict[str, ImageSet]:
    names = config.data.ood_sets or list(OOD_SETS)
    sets = [ood_folder(config.data_root_path(), n) for n in names]
    return {s.name: s for s in sets}


def _restrict(imageset: ImageSet, keep: list[int], names: list[str]) -> ImageSet:
    """Keep the classes ``keep`` (old labels, in new label order), relabelled 0..len(keep)-1."""
    return imageset.with_labels_remapped(keep, names, drop_unmapped=True)


def _named_classes(config: ExperimentConfig, available: tuple[str, ...], what: str) -> list[int] | None:
    """Label indices of ``id_classes`` (or the first ``classes``) among ``available``; None = all."""
    if config.data.id_classes is None:
        if config.data.classes is None or config.data.classes >= len(available):
            return None
        return list(range(config.data.classes))
    missing = [c for c in config.data.id_classes if c not in available]
    if missing:
        raise ValueError(
            f"ID classes {missing} are not classes of the {what} ID set; its classes are: "
            + ", ".join(repr(c) for c in available)
        )
    return [available.index(c) for c in config.data.id_classes]


def _limited_protocol(config: ExperimentConfig) -> Protocol:
    p = protocol(config.data.protocol or "")
    if config.data.classes is None:
        return p
    n = config.data.classes
    return Protocol(p.name, p.known[:n], p.negative, p.unknown[:n])


def load_data(config: ExperimentConfig) -> ExperimentData:
    """List the images of an experiment and draw its few-shot and validation splits.

    Nothing is decoded: this only checks the layout (a missing folder is an error that shows the
    expected tree) and lists files, so it fails fast before any model is loaded.
    """
    root = config.data_root_path()
    facts: dict = {}
    shifted: dict[str, ImageSet] = {}
    if config.data.benchmark == "imagenet":
        classes = _imagenet_classes(config)
        train_all = imagenet_split(root, "train", classes)
        id_test = imagenet_split(root, "val", classes)
        ood = _conventional_ood(config)
        benchmark = "ImageNet-1k"
        facts["imagenet_classes"] = classes
    elif config.data.benchmark == "openood":
        from negprompt.data.openood import openood_imagenet

        classes = _imagenet_classes(config)
        names = [c.name for c in imagenet_classes()]
        train_all, id_test, ood = openood_imagenet(root, names, classes, config.data.ood_sets)
        benchmark = "OpenOOD v1.5 ImageNet-1k"
        facts["imagenet_classes"] = classes
    elif config.data.benchmark == "protocol":
        p = _limited_protocol(config)
        sets = hard_ood_sets(root, p)
        train_all, id_test = sets.id_train, sets.id_test
        ood = {sets.ood_test.name: sets.ood_test} if sets.ood_test is not None else _conventional_ood(config)
        benchmark = p.name
        facts["protocol"] = {"name": p.name, "known": p.known, "negative": p.negative, "unknown": p.unknown}
    elif config.data.benchmark == "folders":
        return _folders(config)
    else:
        train_all, id_test, ood, benchmark = _small_benchmark(config)
        shifted = _shifted_sets(config)
        keep = _named_classes(config, train_all.class_names, benchmark)
        if keep is not None:
            names = [train_all.class_names[i] for i in keep]
            train_all, id_test = _restrict(train_all, keep, names), _restrict(id_test, keep, names)
            shifted = {k: _restrict(v, keep, names) for k, v in shifted.items()}
    class_names = list(id_test.class_names)
    if list(train_all.class_names) != class_names:
        raise ValueError(
            f"the training and test sets of {benchmark} have different classes "
            f"({list(train_all.class_names)[:5]} … vs {class_names[:5]} …)"
        )
    train_classes = list(range(len(class_names)))
    if config.data.open_vocab_fraction is not None:
        seed = None
        if config.data.open_vocab_mode == "random":
            seed = config.seed if config.data.open_vocab_seed is None else config.data.open_vocab_seed
        if config.data.open_vocab_mode == "published":
            train_classes = _published_open_vocab(config, class_names)
        else:
            train_classes = class_subset(
                len(class_names), config.data.open_vocab_fraction, seed, config.data.open_vocab_mode
            )
        facts["open_vocab"] = {
            "fraction": config.data.open_vocab_fraction,
            "mode": config.data.open_vocab_mode,
            "seed": seed,
            "train_classes": train_classes,
        }
        train_all = _restrict(train_all, train_classes, [class_names[i] for i in train_classes])
    train, val = few_shot_split(train_all, config.data.shots, config.data.val_per_class, config.seed)
    for name, s in shifted.items():
        if list(s.class_names) != class_names:
            raise ValueError(f"the covariate-shift set {name!r} has other classes than the ID test set")
    return ExperimentData(benchmark, class_names, train_classes, train, val, id_test, ood, facts, shifted)


def _published_open_vocab(config: ExperimentConfig, class_names: list[str]) -> list[int]:
    """The classes mini-world v2's split file publishes for ``open_vocab_fraction`` (10%, 20%, 50%)."""
    if config.data.benchmark != "mini2":
        raise ValueError(
            f"open_vocab_mode='published' needs a benchmark with published open-vocabulary lists (mini2), "
            f"not {config.data.benchmark!r}; use --class-choice first or random"
        )
    from negprompt.miniworld.splits import published

    lists = published()["open_vocab"]
    key = f"{round(100 * config.data.open_vocab_fraction)}%"
    if key not in lists:
        raise ValueError(
            f"mini-world v2 publishes open-vocabulary lists for {', '.join(lists)} of its ID classes, not "
            f"{key}; use --fraction {' or '.join(str(int(k[:-1]) / 100) for k in lists)}"
        )
    index = {n: i for i, n in enumerate(class_names)}
    missing = [n for n in lists[key] if n not in index]
    if missing:
        raise ValueError(f"the published open-vocabulary list names classes not in the ID set: {missing[:5]}")
    return sorted(index[n] for n in lists[key])


def _folders(config: ExperimentConfig) -> ExperimentData:
    """Image folders: ``train_dir`` (few shots and validation drawn from it, or ``val_dir``),
    ``id_dir`` (ID test images) and ``ood_dirs``; class names are the sub-folder names, ``_`` as
    spaces. Without ``id_dir`` the validation images are scored, for the ID accuracy only."""
    from negprompt.data import image_folder

    d = config.data
    train_all = image_folder(_path(d.train_dir)) if d.train_dir else None
    id_test = image_folder(_path(d.id_dir)) if d.id_dir else None
    reference = train_all if train_all is not None else id_test
    assert reference is not None  # validate() asks for one of them
    folder_names = list(reference.class_names)
    if id_test is not None and list(id_test.class_names) != folder_names:
        raise ValueError(
            f"--id-dir classes {list(id_test.class_names)} differ from --train-dir's {folder_names}: "
            "give both the same sub-folders"
        )
    empty = ImageSet(name="none", root=reference.root, paths=[], labels=np.zeros(0, dtype=np.int64),
                     class_names=reference.class_names)  # fmt: skip
    train, val = empty, empty
    if train_all is not None and config.trains:
        if d.val_dir:
            val = image_folder(_path(d.val_dir))
            if list(val.class_names) != folder_names:
                raise ValueError(
                    f"--val-dir classes {list(val.class_names)} differ from --train-dir's {folder_names}"
                )
            train, _ = few_shot_split(train_all, d.shots, 0, config.seed)
        else:
            train, val = few_shot_split(train_all, d.shots, d.val_per_class, config.seed)
    facts = {"folders": {k: getattr(d, k) for k in ("train_dir", "val_dir", "id_dir", "ood_dirs")}}
    if id_test is None:
        id_test = val
        facts["id_test"] = "the validation images (no id_dir given): ID accuracy only"
    ood = {}
    for folder in d.ood_dirs or []:
        s = image_folder(_path(folder), ood=True)
        if s.name in ood:
            raise ValueError(
                f"two OOD folders are named {s.name!r}; rename one (the tables name sets by folder)"
            )
        ood[s.name] = s
    names = [n.replace("_", " ") for n in folder_names]
    check_class_names(names, folder_names, where=f"image folder {d.train_dir or d.id_dir!r}")
    return ExperimentData("folders", names, list(range(len(names))), train, val, id_test, ood, facts)


def _shifted_sets(config: ExperimentConfig) -> dict[str, ImageSet]:
    """ID classes under covariate shift, measured as accuracy (mini-world v2's held-out artist)."""
    if config.data.benchmark != "mini2":
        return {}
    from negprompt.miniworld.benchmark_v2 import covariate_set

    s = covariate_set(config.data_root_path())
    return {s.name: s}


def _path(folder: str) -> Path:
    return Path(os.path.abspath(os.path.expanduser(folder)))


def _small_benchmark(config: ExperimentConfig) -> tuple[ImageSet, ImageSet, dict[str, ImageSet], str]:
    """The mini-world, the demo, the full Fashion-MNIST demo or CIFAR: (ID train, ID test, OOD sets, name)."""
    root = config.data_root_path()
    if config.data.benchmark in ("mini", "mini-hard"):
        from negprompt.miniworld.benchmark import mini_sets

        return mini_sets(root, hard=config.data.benchmark == "mini-hard")
    if config.data.benchmark in ("mini2", "mini2-hard"):
        from negprompt.miniworld.benchmark_v2 import mini2_sets

        return mini2_sets(
            root, protocol=config.data.protocol if config.data.benchmark == "mini2-hard" else None
        )
    if config.data.benchmark in ("demo", "demo-full"):
        demo = materialize_demo(root, full=config.data.benchmark == "demo-full")
        return demo.id_train, demo.id_test, demo.ood, config.data.benchmark
    from negprompt.data import cifar

    which = 10 if config.data.benchmark == "cifar10" else 100
    data = cifar(root, which)
    return data.id_train, data.id_test, {data.ood.name: data.ood}, f"CIFAR-{which}"


@dataclass
class Features:
    """Cached image features of an experiment.

    Attributes:
        train: one :class:`CachedFeatures` per view of the training images (view 0 = test transform).
        val: validation features, or None when there are no validation images.
        id_test: ID test features with their set.
        ood: OOD test features, one per OOD set.
    """

    train: list[CachedFeatures]
    val: CachedFeatures | None
    id_test: EvalSet
    ood: list[EvalSet]
    shifted: list[EvalSet] = field(default_factory=list)


def extract_all(
    backbone: Backbone, data: ExperimentData, config: ExperimentConfig, *, progress: bool = True
) -> Features:
    """Image features of every set of ``data`` (computed once, then read from the cache).

    The training images get ``config.training.n_views`` views (view 0 = test transform, the others seeded
    augmentations); the validation, ID test and OOD images the test transform only.
    """
    from negprompt.distributed import extract_features_distributed

    cache = config.cache_path()

    def extract(imageset: ImageSet, view: int = 0) -> CachedFeatures:
        return extract_features_distributed(  # split across ranks under torchrun, else one process
            backbone,
            imageset,
            cache_dir=cache,
            view=view,
            seed=config.seed,
            batch_size=config.cache.batch_size,
            num_workers=config.cache.num_workers,
            progress=progress,
        )

    if config.training.mode == "online-augment" or not config.trains:
        views = []  # online augmentation encodes the training images every step
    else:
        views = [extract(data.train, v) for v in range(config.training.n_views)]
    if any(not np.array_equal(v.labels, views[0].labels) for v in views[1:]):
        raise ValueError("the feature views of the training images disagree (unreadable files?)")
    val = extract(data.val) if len(data.val) and config.trains else None
    id_test = EvalSet(data.id_test.name, extract(data.id_test), data.id_test.root)
    ood = [EvalSet(name, extract(s), s.root, s.class_names) for name, s in data.ood.items()]
    shifted = [EvalSet(name, extract(s), s.root) for name, s in data.shifted.items()]
    log.info("image features ready (cache %s)", cache)
    return Features(views, val, id_test, ood, shifted)
