"""Apply a finished run to new images: its prompts, its backbone, and a threshold by a recorded rule.

    from negprompt.detect import Detector
    detector = Detector.from_run("runs/demo")            # threshold keeping 95% of the ID validation images
    table = detector.decide(["photos/"])                 # path, every score, decision, predicted class

The methods are those the run evaluated, rebuilt from what the run stores: the zero-shot prompts
"a photo of a <class>" of the run's class names, the learned contexts of ``prompts/<method>`` (CoOp,
LoCoOp, NegPrompt), NegLabel's mined words (``config.experiment.neglabel.words``) and, on ViT
backbones, the GL-MCM scores the run computed. Each image gets every ``<method>/<score>`` column of
the run, computed by the same code (`negprompt.evaluate.evaluate`), so the run's own test images get
the run's own scores.

**Threshold rule.** An image is accepted as in-distribution when its score >= t (ties accepted, as
in FPR95). By default t is the score keeping a fraction ``tpr`` = 0.95 of the run's ID *validation*
images (`negprompt.metrics.threshold_at_tpr`: the validation score ranked ceil(tpr · n) from the
top), read from ``validation_scores.parquet``. A run without it (a zero-shot run, which has no
validation images, or a run written before it was recorded) falls back to the run's ID *test*
images, and the recorded rule says so (``source: "id-test"``); ``threshold=`` fixes t instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.detect_images import UNDECODABLE, ImageInputs, collect_images
from negprompt.detect_methods import DetectError, open_run, rebuild_methods

log = logging.getLogger("negprompt.detect")

DEFAULT_TPR = 0.95
DECISION_ORDER = ("negprompt/negprompt", "neglabel/neglabel", "locoop/mcm", "coop/mcm", "zeroshot/mcm")
"""The score that decides by default: the first of these the run has."""
__all__ = ["DEFAULT_TPR", "DECISION_ORDER", "DetectError", "Detector", "Threshold", "run_threshold"]


@dataclass
class Threshold:
    """The threshold rule of a detector, as recorded in the output's ``config.json``.

    Attributes:
        score: the ``<method>/<score>`` column that decides.
        value: t; an image is ID when its score >= t.
        rule: ``tpr`` (t keeps ``tpr`` of the ID images of ``source``) or ``fixed`` (given).
        tpr: the kept fraction (rule ``tpr``).
        source: ``validation`` or ``id-test`` (rule ``tpr``); ``images``: how many ID images.
        note: why the source is what it is.
        values: t of every score column under the same rule (rule ``tpr``).
    """

    score: str
    value: float
    rule: str = "tpr"
    tpr: float | None = DEFAULT_TPR
    source: str | None = "validation"
    images: int | None = None
    note: str = ""
    values: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        if self.rule == "fixed":
            return f"{self.score} >= {self.value:.6g} (a fixed threshold)"
        return (
            f"{self.score} >= {self.value:.6g}, keeping {100 * self.tpr:g}% of the run's {self.images} ID "
            f"{'validation' if self.source == 'validation' else 'test'} images"
            + (f" ({self.note})" if self.note else "")
        )


def run_threshold(
    run, score: str, *, tpr: float | None = DEFAULT_TPR, value: float | None = None
) -> Threshold:
    """The threshold rule of ``run`` for ``score``: fixed ``value``, or the one keeping ``tpr`` of its
    ID validation images (its ID test images when it recorded no validation scores, noted)."""
    if value is not None:
        if not np.isfinite(value):
            raise ValueError(f"the threshold must be a finite number, got {value}")
        return Threshold(score, float(value), rule="fixed", tpr=None, source=None)
    if tpr is None or not 0 < tpr <= 1:
        raise ValueError(f"the true-positive rate must be in (0, 1], got {tpr}")
    from negprompt.metrics import threshold_at_tpr

    table = run.validation_scores
    source, note = "validation", ""
    if table is None or len(table) == 0:
        table = run.scores.loc[run.scores["split"] == "id"]
        source = "id-test"
        note = (
            "the run recorded no ID validation scores: "
            + (
                "a zero-shot run has no validation images"
                if run.config.get("kind") == "zeroshot"
                else "it has no validation images or was written before they were recorded"
            )
            + "; give a fixed threshold to avoid using test images"
        )
    columns = [c for c in table.columns if "/" in c and c in run.scores.columns]
    values = {c: float(threshold_at_tpr(table[c].to_numpy(), tpr)) for c in columns}
    if score not in values:
        raise ValueError(f"the run has no score {score!r}; its scores: {', '.join(columns)}")
    return Threshold(score, values[score], "tpr", tpr, source, len(table), note, values)


class Detector:
    """A finished run's methods and threshold, applied to new images.

    Build it with :meth:`from_run`. :meth:`scores` gives every score of every image,
    :meth:`decide` adds the decision and the predicted ID class.

    Attributes:
        run: the source run (`negprompt.rundir.Run`).
        backbone: the run's frozen backbone.
        methods: the run's methods (`negprompt.evaluate.Method`), text features ``[C, D]`` / ``[C, M, D]``.
        class_names: the C ID classes.
        threshold: the decision rule (:class:`Threshold`).
    """

    def __init__(self, run, backbone, methods, class_names, threshold: Threshold, settings) -> None:
        self.run, self.backbone, self.methods = run, backbone, list(methods)
        self.class_names, self.threshold, self.settings = list(class_names), threshold, settings
        self.last_inputs: ImageInputs | None = None

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.methods)
        return f"Detector(run={self.run.name!r}, methods=[{names}], rule: {self.threshold.describe()})"

    @classmethod
    def from_run(
        cls,
        path: str | os.PathLike,
        *,
        score: str | None = None,
        tpr: float | None = DEFAULT_TPR,
        threshold: float | None = None,
        device: str = "auto",
        progress: bool = True,
    ) -> Detector:
        """The detector of the run directory ``path``.

        Args:
            score: the ``<method>/<score>`` column that decides (default: the first of
                :data:`DECISION_ORDER` the run has).
            tpr: the rule's fraction of ID validation images kept (ignored with ``threshold``).
            threshold: a fixed threshold t instead of the rule.
            device: where the backbone runs (``auto``: cuda when available).

        Raises:
            DetectError: the run is missing, damaged, unfinished, or its backbone's weights differ.
        """
        from negprompt.backbone import load_backbone
        from negprompt.defaults import resolve_device
        from negprompt.experiments import ExperimentConfig

        run = open_run(path)
        settings = run.config.get("experiment", {}).get("settings")
        if not isinstance(settings, dict):
            raise DetectError(
                f"{run.path / 'config.json'} records no experiment settings (experiment.settings): only "
                "runs of negprompt's experiments (demo, run, train, zeroshot) can be applied to new images"
            )
        try:
            config = ExperimentConfig.from_dict(settings)
        except (TypeError, ValueError) as err:
            raise DetectError(
                f"{run.path / 'config.json'}: its experiment settings are invalid ({err})"
            ) from err
        b = config.backbone
        backbone = load_backbone(b.model, b.pretrained, device=resolve_device(device), precision=b.precision)
        recorded = run.config["backbone"].get("weights")
        if recorded is not None and recorded != backbone.weights:
            raise DetectError(
                f"the run {run.path} was made with {b.model} weights {recorded!r}, but {backbone.weights!r} "
                "loaded here; install the run's weights (or point --pretrained of the run at them)"
            )
        class_names = list(run.config["data"]["class_names"])
        methods = rebuild_methods(run, backbone, class_names, config, progress=progress)
        columns = [c for c in run.score_columns]
        if score is None:
            score = next((c for c in DECISION_ORDER if c in columns), columns[0] if columns else None)
        if score not in columns:
            raise ValueError(f"the run has no score {score!r}; its scores: {', '.join(columns)}")
        rule = run_threshold(run, score, tpr=tpr, value=threshold)
        return cls(run, backbone, methods, class_names, rule, config)

    # ------------------------------------------------------------------ scoring

    def scores(
        self,
        images: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Every score of the run for every readable image of ``images`` (folders, recursive, or files).

        Returns a table, one row per image: ``input`` (the folder's name), ``path`` (absolute),
        ``pred.<method>`` (class index) and ``<method>/<score>`` (higher = more ID) columns, plus
        ``<method>.best_region`` / ``.top_negative`` where the run has them. Unreadable files are
        left out and listed in ``self.last_inputs.skipped`` by reason. Features are cached.
        """
        table, _ = self.scores_and_features(images, cache_dir=cache_dir, progress=progress)
        return table

    def decide(
        self,
        images: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> pd.DataFrame:
        """:meth:`scores` with the decision: ``decision`` (``id`` when the score >= the threshold,
        else ``ood``), ``score``, ``threshold`` and ``predicted_class`` (the deciding method's class)."""
        table, _ = self.scores_and_features(images, cache_dir=cache_dir, progress=progress)
        return self.add_decisions(table)

    def add_decisions(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (of :meth:`scores`) with ``decision``, ``score``, ``threshold``, ``predicted_class``."""
        t = self.threshold
        method = t.score.split("/", 1)[0]
        score = table[t.score].to_numpy()
        front = pd.DataFrame(
            {
                "path": table["path"],
                "input": table["input"],
                "decision": np.where(score >= t.value, "id", "ood"),
                "predicted_class": [self.class_names[i] for i in table[f"pred.{method}"].tolist()],
                "score": score,
                "threshold": t.value,
            }
        )
        rest = table.drop(columns=["path", "input"])
        return pd.concat([front, rest], axis=1)

    def scores_and_features(
        self,
        images: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """:meth:`scores` and the images' features ``[N, D]`` (float16, rows as the table's)."""
        from negprompt.evaluate import EvalSet, evaluate
        from negprompt.experiments.methods import add_local_scores

        inputs = collect_images([images] if isinstance(images, str | os.PathLike) else list(images))
        self.last_inputs = inputs
        sets = []
        for imageset in inputs.sets:
            feats = self._features(imageset, inputs, cache_dir, progress)
            if feats is not None and len(feats):
                sets.append(EvalSet(imageset.name, feats, imageset.root))
        if inputs.skipped:
            log.warning("%s", inputs.skipped_summary())
        if not sets:
            raise ValueError("no readable image among the inputs" + _skipped_tail(inputs))
        local = [m for m in self.methods if m.name in self._local_methods()]
        for m in self.methods:
            m.local_scores = None
        if local:
            add_local_scores(local, self.backbone, sets, temperature=self.temperature, progress=progress)
        ev = evaluate(self.methods, sets[0], sets[1:], self.class_names, temperature=self.temperature)
        found = ev.scores
        keep = [c for c in found.columns if "/" in c or "." in c]  # scores, pred.<m>, <m>.best_region …
        table = pd.concat([found[["path"]], found["dataset"].rename("input"), found[keep]], axis=1)
        return table, ev.image_features

    @property
    def temperature(self) -> float:
        return float(self.settings.evaluation.temperature)

    def _local_methods(self) -> set[str]:
        return {c.split("/", 1)[0] for c in self.run.score_columns if c.endswith("/gl_mcm")}

    def _features(self, imageset, inputs: ImageInputs, cache_dir, progress):
        from negprompt.distributed import extract_features_distributed

        cache = Path(cache_dir).expanduser() if cache_dir is not None else self.settings.cache_path()
        try:
            feats = extract_features_distributed(
                self.backbone, imageset, cache_dir=cache, batch_size=self.settings.cache.batch_size,
                num_workers=self.settings.cache.num_workers, progress=progress, max_bad_fraction=1.0,
            )  # fmt: skip
        except ValueError as err:
            if "cannot be read" not in str(err):
                raise
            for p in imageset.abspaths():  # not one image of the set could be decoded
                inputs.skip(UNDECODABLE, p)
            return None
        kept = set(feats.paths)
        for rel in imageset.paths:
            if rel not in kept:
                inputs.skip(UNDECODABLE, imageset.root / rel)
        return feats


def _skipped_tail(inputs: ImageInputs) -> str:
    return f"; {inputs.skipped_summary()}" if inputs.skipped else " (the inputs hold no image files)"
