"""One experiment, step by step: data and features, both training stages, evaluation, run directory.

Example::

    exp = Experiment(ExperimentConfig.for_preset("demo"))
    exp.prepare()        # lists the images, loads the backbone, computes (or reuses) cached features
    exp.train()          # stage 1 (CoOp positives), then stage 2 (NegPrompt negatives)
    exp.evaluate()       # zero-shot MCM, CoOp + MCM and NegPrompt on every OOD set
    print(exp.table())
    exp.write("runs/my-demo")
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from negprompt.backbone import Backbone, load_backbone
from negprompt.checks import Check, format_checks, run_checks
from negprompt.evaluate import (
    EvalSet,
    Evaluation,
    Method,
    evaluate,
    format_shifted,
    shifted_accuracy,
    write_evaluation,
)
from negprompt.runlog import capture_log
from negprompt.train import TrainResult, train_prompts
from negprompt.wordnet import check_wordnet

from .baselines import add_zero_shot_baselines, evidence_record, train_locoop, train_summary
from .config import ExperimentConfig
from .data import ExperimentData, Features, extract_all, load_data
from .methods import learned_method, zeroshot_method

log = logging.getLogger("negprompt.experiments")
METHODS = ("zeroshot", "coop", "negprompt")


class Experiment:
    """An experiment whose steps can be run (and inspected) one at a time.

    Args:
        config: the settings.
        work_dir: folder for checkpoints, learned prompts and the log while the run is in progress
            (``None``: checkpoints are not written and prompt files go to a temporary folder).
        resume: continue the training stages from the checkpoints in ``work_dir``.
        progress: show progress bars.
        backbone: an already loaded backbone to use instead of loading ``config.backbone.model``.
        data: the experiment's images if already listed (``load_data(config)``).

    After each step its results are attributes: ``data`` (:class:`ExperimentData`), ``backbone``,
    ``features`` (:class:`Features`), ``stage1`` / ``stage2`` (:class:`negprompt.train.TrainResult`),
    ``methods`` (:class:`negprompt.evaluate.Method` per method) and ``evaluation``.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        work_dir: str | os.PathLike | None = None,
        resume: bool = False,
        progress: bool = True,
        backbone: Backbone | None = None,
        data: ExperimentData | None = None,
    ) -> None:
        self.config = config
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.resume = resume
        self.progress = progress
        if backbone is not None and backbone.name != config.backbone.model:
            raise ValueError(
                f"the backbone given is {backbone.name!r} but config.backbone.model is {config.backbone.model!r}"
            )
        self.backbone: Backbone | None = backbone
        self.data: ExperimentData | None = data
        self.features: Features | None = None
        self.stage1: TrainResult | None = None
        self.stage2: TrainResult | None = None
        self.locoop: TrainResult | None = None
        self.methods: dict[str, Method] = {}
        self.evaluation: Evaluation | None = None
        self.validation_scores: pd.DataFrame | None = None
        self.shifted_accuracy: pd.DataFrame | None = None  # ID classes under covariate shift
        self._log: list[str] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __repr__(self) -> str:
        done = [
            step
            for step, ok in (
                ("data", self.data is not None),
                ("features", self.features is not None),
                ("stage 1", self.stage1 is not None and self.stage1.completed),
                ("stage 2", self.stage2 is not None and self.stage2.completed),
                ("evaluation", self.evaluation is not None),
            )
            if ok
        ]
        steps = ", ".join(done) or "nothing yet"
        return f"Experiment({self.config.preset!r}, model={self.config.backbone.model!r}, done: {steps})"

    # ------------------------------------------------------------------ steps

    def load_data(self) -> ExperimentData:
        """List the images and draw the few-shot split (fast; checks the data layout)."""
        if self.data is None:
            with self._capture():
                self.data = load_data(self.config)
        return self.data

    def load_backbone(self) -> Backbone:
        """Load the frozen backbone of ``config`` (once; under torchrun, on this rank's device)."""
        if self.backbone is None:
            from negprompt.distributed import get_info

            c = self.config.backbone
            info = get_info()
            device = str(info.device) if info.world > 1 else self.config.device
            with self._capture():
                self.backbone = load_backbone(c.model, c.pretrained, device=device, precision=c.precision)
                log.info("backbone %s, weights %s, on %s", c.model, self.backbone.weights, device)
        return self.backbone

    def prepare(self) -> Experiment:
        """Data, backbone and image features (computed once, then read from the cache). Returns self."""
        e = self.config.evaluation
        if e.neglabel or e.csp:  # fail before the long steps, not after training
            check_wordnet(self.config.evaluation.wordnet_dir)
        data, backbone = self.load_data(), self.load_backbone()
        if self.features is not None:
            return self
        with self._capture():
            log.info("%s", data.summary(trains=self.config.trains))
            self.features = extract_all(backbone, data, self.config, progress=self.progress)
        return self

    def train(
        self, stages: Sequence[int] | None = None, *, stop_after_epoch: int | None = None
    ) -> Experiment:
        """Train stage 1 (CoOp positives) and/or stage 2 (NegPrompt negatives). Returns self.

        Args:
            stages: which stages to run now (default: those of ``config.training.stages``); stage 2
                needs a finished stage 1, or ``config.training.init_prompts``.
            stop_after_epoch: stop each stage after this many finished epochs (for a run to be
                resumed later; the stage is then incomplete).
        """
        stages = self.config.stage_numbers if stages is None else tuple(stages)
        if self.features is None:
            self.prepare()
        assert self.features is not None and self.data is not None and self.backbone is not None
        feats, data = self.features, self.data
        common = dict(
            val_features=None if feats.val is None else feats.val.features,
            val_labels=None if feats.val is None else feats.val.labels,
            resume=self.resume,
            stop_after_epoch=stop_after_epoch,
            progress=self.progress,
            text_fn=_text_fn(self.config),
        )
        if self.config.training.mode == "online-augment":
            views, labels = data.train, None  # the image encoder runs on augmented images every step
        else:
            views, labels = [v.features for v in feats.train], feats.train[0].labels
        names = data.train_class_names
        if 2 in stages:
            self._check_stage2_memory(names)  # before stage 1: a too large --n-neg fails now, not later
        with self._capture():
            if 1 in stages:
                log.info("stage 1 (CoOp): %d images of %d classes", len(data.train), len(names))
                self.stage1 = train_prompts(
                    self.backbone, names, views, labels, self.config.train_config(1),
                    prompt_config=self.config.prompt_config(),
                    checkpoint_dir=self._checkpoints(1), **common,
                )  # fmt: skip
                if not self.stage1.completed:
                    log.info("stage 1 stopped after epoch %d", len(self.stage1.history))
                    return self
                self._add_learned("coop", self.stage1)
                if labels is not None:
                    train_locoop(self, names, views, labels, common)
            if 2 in stages:
                learner = self._stage2_start()
                log.info("stage 2 (NegPrompt): %d negative contexts", self.config.training.n_neg)
                self.stage2 = train_prompts(
                    self.backbone, names, views, labels, self.config.train_config(2),
                    learner=learner, checkpoint_dir=self._checkpoints(2), **common,
                )  # fmt: skip
                if self.stage2.completed:
                    self._add_learned("negprompt", self.stage2)
                else:
                    log.info("stage 2 stopped after epoch %d", len(self.stage2.history))
        return self

    def _check_stage2_memory(self, names: list[str]) -> int:
        """`negprompt.train.memory.check_stage2_memory` for this run's classes, M and text tower."""
        from negprompt.train.memory import check_stage2_memory

        assert self.backbone is not None
        tower = self.backbone.text_tower
        blocks = list(tower.transformer.resblocks)
        tokenizer = self.backbone.tokenizer
        prompts = self.config.prompt_config()
        return check_stage2_memory(
            n_classes=len(names),
            class_subset_size=self.config.train_config(2).class_subset_size,
            n_neg=prompts.n_neg,
            n_ctx=prompts.n_ctx,
            name_tokens=max(len(tokenizer.encode(n)) for n in names),
            width=int(tower.positional_embedding.shape[1]),
            layers=len(blocks),
            heads=int(blocks[0].attn.num_heads) if blocks else 1,
            device=self.config.device,
        )

    def _stage2_start(self):
        """The learner stage 2 starts from: stage 1's, or the one of ``init_prompts``."""
        if self.stage1 is not None and self.stage1.completed:
            return self.stage1.learner
        path = self.config.training.init_prompts
        if path is None:
            raise RuntimeError("stage 2 needs a finished stage 1: call train(stages=(1,)) first")
        from negprompt.promptfile import learner_from_file

        assert self.backbone is not None
        log.info("stage 2 starts from the prompts file %s", path)
        return learner_from_file(path, self.backbone)

    @property
    def trained(self) -> bool:
        """Whether every stage of ``config.training.stages`` has finished."""
        done = {1: self.stage1, 2: self.stage2}
        return all(done[k] is not None and done[k].completed for k in self.config.stage_numbers)

    def evaluate(self) -> Evaluation:
        """Score every ID test and OOD image with every method of the run (zero-shot MCM, CoOp + MCM,
        NegPrompt, and the baselines configured: GL-MCM, LoCoOp, NegLabel)."""
        if not self.trained:
            raise RuntimeError(
                f"train the stages of this run ({self.config.training.stages}) before evaluating (Experiment.train())"
            )
        if self.features is None:
            self.prepare()
        assert self.features is not None and self.data is not None and self.backbone is not None
        with self._capture():
            if "zeroshot" not in self.methods:
                self.methods["zeroshot"] = zeroshot_method(
                    self.backbone, self.data.class_names, self.config.prompt_config()
                )
            add_zero_shot_baselines(self)
            extra = ("locoop", "neglabel", "csp", "adaneg", "adaneg_coop", "tanl")
            methods = [self.methods[m] for m in METHODS + extra if m in self.methods]
            self.evaluation = evaluate(
                methods,
                self.features.id_test,
                self.features.ood,
                self.data.class_names,
                temperature=self.config.evaluation.temperature,
                bootstrap=self.config.bootstrap(),
            )
            log.info("evaluated %d images", len(self.evaluation.scores))
            val = self.validation_set()
            if val is not None:  # recorded for thresholds chosen on ID images that are not test images
                # not for methods that adapt on the test stream: an ID-only stream is not what they score
                fixed = [m for m in methods if m.adapt is None]
                self.validation_scores = evaluate(
                    fixed, val, [], self.data.class_names, temperature=self.config.evaluation.temperature
                ).scores
            self.shifted_accuracy = shifted_accuracy(
                methods,
                self.features.shifted,
                self.data.class_names,
                temperature=self.config.evaluation.temperature,
                bootstrap=self.config.bootstrap(),
            )
        return self.evaluation

    def validation_set(self) -> EvalSet | None:
        """The ID validation images as an evaluated set (None without validation features)."""
        if self.features is None or self.features.val is None or self.data is None:
            return None
        return EvalSet(f"validation:{self.data.val.name}", self.features.val, self.data.val.root)

    def run(self) -> Evaluation:
        """All steps: :meth:`prepare`, :meth:`train`, :meth:`evaluate`."""
        self.prepare()
        if not self.trained:
            self.train()
        return self.evaluate()

    # ------------------------------------------------------------------ results

    def table(self) -> str:
        """The results: the verdict against the best training-free score, the whole leaderboard with
        intervals, and the paper-shaped table (FPR95 / AUROC per OOD set, mean, ID accuracy)."""
        if self.evaluation is None:
            raise RuntimeError("evaluate() first")
        from negprompt.leaderboard import format_results

        metrics = self.evaluation.metrics
        text = format_results(metrics, self.config.evaluation.ci_level)
        if self.config.data.benchmark == "openood":  # OpenOOD's tables use the other FPR convention
            from negprompt.metric_conventions import fpr_conventions_table

            rows = list(self.record()["table_rows"].items())
            text += "\n" + fpr_conventions_table(self.evaluation.scores, rows)
        if self.shifted_accuracy is not None and not self.shifted_accuracy.empty:
            text += "\n\n" + format_shifted(self.shifted_accuracy)
        text += "\n\n" + format_checks(self.checks())
        if self.backbone is not None and self.backbone.warning:
            text = f"!!! {self.backbone.warning}\n{text}"
        return text

    def checks(self) -> list[Check]:
        """The run's checks (`negprompt.checks`): collapsed negatives, stages that changed nothing,
        too few steps, a training-free score that wins, ID accuracy that fell, scores below chance,
        random weights."""
        if self.evaluation is None:
            raise RuntimeError("evaluate() first")
        text = {}
        for m in self.evaluation.methods:
            text[f"{m.name}.pos"] = m.pos.detach().float().cpu().numpy()
            if m.neg is not None:
                text[f"{m.name}.neg"] = m.neg.detach().float().cpu().numpy()
        stages = [r.summary() for r in (self.stage1, self.stage2) if r is not None]
        backbone = self.backbone
        return run_checks(
            metrics=self.evaluation.metrics,
            text_features=text,
            stages=stages,
            random_weights=bool(backbone is not None and backbone.random_weights),
            warning=backbone.warning if backbone is not None else "",
        )

    @property
    def metrics(self) -> pd.DataFrame:
        """The metrics table (one row per method, score and OOD set, plus ``mean`` rows)."""
        if self.evaluation is None:
            raise RuntimeError("evaluate() first")
        return self.evaluation.metrics

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch training records of both stages (column ``stage``)."""
        rows = [
            {"stage": r.stage, **h} for r in (self.stage1, self.stage2) if r is not None for h in r.history
        ]
        return pd.DataFrame(rows)

    def record(self) -> dict:
        """The ``experiment`` section of the run's config.json: settings, data, training, selection."""
        assert self.data is not None
        stages = []
        for result in (self.stage1, self.stage2):
            if result is not None:
                summary = result.summary()
                summary.pop("checkpoint", None)
                stages.append(summary)
        return {
            "preset": self.config.preset,
            "settings": self.config.to_dict(),
            "data": self.data.describe(),
            "train_class_names": self.data.train_class_names,
            "stages": stages,
            "selection": {
                "policy": self.config.training.select,
                "selected_epochs": {f"stage{s['stage']}": s["selected_epoch"] for s in stages},
            },
            "seeds": {"sampling": self.config.seed, "training": self.config.seed},
            **({"locoop": train_summary(self.locoop)} if self.locoop is not None else {}),
            **evidence_record(self),
            **(
                {"shifted_accuracy": self.shifted_accuracy.to_dict(orient="records")}
                if self.shifted_accuracy is not None and not self.shifted_accuracy.empty
                else {}
            ),
            "table_rows": {
                m: s
                for m, s in (
                    ("zeroshot", "mcm"),
                    ("coop", "mcm"),
                    ("negprompt", "negprompt"),
                    ("neglabel", "neglabel"),
                    ("csp", "csp"),
                    ("adaneg", "adaneg"),
                    ("adaneg_coop", "adaneg"),
                    ("tanl", "tanl"),
                )
                if m in self.methods
            },
        }

    def write(self, out: str | os.PathLike, *, unique: bool = False) -> Path:
        """Write the run directory (atomically; an existing one is never overwritten). Returns its path."""
        if self.evaluation is None:
            self.evaluate()
        assert self.evaluation is not None and self.data is not None and self.backbone is not None
        log_file = self.work_dir / "log.txt" if self.work_dir is not None else None
        lines = (
            log_file.read_text(encoding="utf-8") if log_file and log_file.is_file() else "\n".join(self._log)
        )
        text = lines.rstrip("\n") + "\n\n" + self.table() + "\n"
        return write_evaluation(
            out,
            self.evaluation,
            kind=self.config.kind,
            backbone=self.backbone,
            class_names=self.data.class_names,
            data_roots=self.data.roots,
            id_name=self.data.id_test.name,
            experiment=self.record(),
            train_class_names=self.data.train_class_names,
            log=text,
            unique=unique,
            checks=self.checks(),
            tables=None
            if self.validation_scores is None
            else {"validation_scores.parquet": self.validation_scores},
        )

    # ------------------------------------------------------------------ internals

    def _checkpoints(self, stage: int) -> Path | None:
        return None if self.work_dir is None else self.work_dir / "checkpoints" / f"stage{stage}"

    def _prompt_dir(self) -> Path:
        if self.work_dir is not None:
            return self.work_dir / "prompts"
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="negprompt-prompts-")
        return Path(self._tmp.name)

    def _add_learned(self, name: str, result: TrainResult) -> None:
        assert self.data is not None and self.backbone is not None
        self.methods[name] = learned_method(
            name, result, self.backbone, self.data.class_names, self.data.train_class_names,
            self._prompt_dir(),
        )  # fmt: skip
        log.info("%s: kept epoch %d (%s)", name, result.selected_epoch, result.selected)

    def _capture(self):
        return capture_log(self._log, self.work_dir / "log.txt" if self.work_dir else None)


def _text_fn(config: ExperimentConfig):
    """Prompt encoding split across ranks under torchrun (None: one process encodes all prompts)."""
    from negprompt.distributed import ShardedTextFeatures, get_info

    if get_info().world <= 1:
        return None
    return ShardedTextFeatures(mode=config.train_config(1).encode_mode)
