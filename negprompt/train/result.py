"""What a training stage returns, and its one-line-per-epoch log format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from negprompt.prompts import PromptLearner

from .config import TrainConfig
from .validate import CRITERION


@dataclass
class TrainResult:
    """What one stage produced.

    Attributes:
        learner: the prompt learner holding the selected contexts.
        config: the stage's configuration.
        history: one record per finished epoch: ``epoch``, the mean training loss terms (``loss``;
            stage 2 also ``img``, ``pd``, ``nn``), the validation values, ``lr`` (of the epoch's last
            step) and ``seconds``.
        selected: ``val`` (best epoch on validation data, see :data:`CRITERION`) or ``last``.
        selected_epoch: the epoch (1-based) whose contexts the learner holds.
        completed: False when the run was stopped before its last epoch (resume it).
        checkpoint: the checkpoint file, or None.
        steps_per_epoch: optimisation steps (batches) per epoch.
    """

    learner: PromptLearner
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    selected: str = "last"
    selected_epoch: int = 0
    completed: bool = True
    checkpoint: Path | None = None
    steps_per_epoch: int = 0

    @property
    def stage(self) -> int:
        return self.config.stage

    def summary(self) -> dict:
        """JSON-ready description: config, selection and per-epoch history."""
        return {
            "stage": self.stage,
            "config": self.config.to_dict(),
            "selected": self.selected,
            "selection_criterion": CRITERION[self.stage] if self.selected == "val" else None,
            "selected_epoch": self.selected_epoch,
            "epochs_run": len(self.history),
            "steps": self.steps_per_epoch * len(self.history),
            "completed": self.completed,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "history": self.history,
        }


def run_label(stage: int, locoop: bool = False) -> str:
    """What an epoch line calls the training: ``stage 1`` (CoOp), ``stage 2`` (NegPrompt) or ``LoCoOp``
    (stage 1 with LoCoOp's OOD regularisation, a baseline of its own)."""
    return "LoCoOp" if locoop else f"stage {stage}"


def format_epoch(record: dict, stage: int, epochs: int, label: str | None = None) -> str:
    """One readable log line for an epoch record: the training loss terms, the validation criterion
    (:data:`CRITERION`; stage 1 shows ``val_acc``), the learning rate and the time, e.g.
    ``stage 2 epoch   3/100  loss 0.713  img 0.6931  pd -0.012  nn -0.004  val_loss 0.705  lr 0.0998  3.1s``.
    ``label`` replaces ``stage <stage>`` (`run_label`: ``LoCoOp``).
    """
    terms = [k for k in ("loss", "img", "pd", "nn") if k in record]
    terms += [k for k in (CRITERION[stage],) if k in record]
    text = "  ".join(f"{k} {record[k]:.4g}" for k in terms)
    return f"{label or f'stage {stage}'} epoch {record['epoch']:>3}/{epochs}  {text}  lr {record['lr']:.3g}  {record['seconds']:.1f}s"
