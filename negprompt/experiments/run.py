"""Run an experiment end to end into a run directory, with a resumable work folder beside it.

While a run is in progress, its checkpoints, learned prompts and log live in ``<out>.partial/``
(with ``experiment.json``, the settings it was started with). The run directory ``<out>`` is written
atomically at the very end, then the work folder is removed. An interrupted run continues with
``resume=True`` (``--resume``) from the last finished epoch, with the same result as an
uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from negprompt.backbone import Backbone
from negprompt.io import atomic_write
from negprompt.rundir import free_run_path

from .config import ExperimentConfig
from .data import load_data
from .experiment import Experiment

log = logging.getLogger("negprompt.experiments")
WORK_SUFFIX = ".partial"
SETTINGS_FILE = "experiment.json"


class WorkDirError(FileExistsError):
    """A work folder that holds another run, or an interrupted run that was not asked to resume."""


def work_dir_for(out: str | os.PathLike) -> Path:
    """The work folder of run directory ``out``: ``<out>.partial`` beside it."""
    out = Path(os.path.abspath(os.path.expanduser(out)))
    return out.with_name(out.name + WORK_SUFFIX)


def _has_progress(work: Path) -> bool:
    return any((work / "checkpoints").rglob("checkpoint.pt")) if (work / "checkpoints").is_dir() else False


def check_work_dir(config: ExperimentConfig, out: Path, resume: bool) -> Path:
    """Check that the work folder of ``out`` may be used; returns its path (nothing is written).

    A work folder with training checkpoints is continued only with ``resume`` and the same settings;
    one without checkpoints (a run that failed before training) is simply started again.
    """
    work = work_dir_for(out)
    if not _has_progress(work):
        return work
    if not resume:
        raise WorkDirError(
            f"{work} holds an unfinished run of {out.name}; pass --resume (resume=True) to continue it, "
            "or delete that folder to start afresh (nothing was changed)"
        )
    settings = work / SETTINGS_FILE
    saved = json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else {}
    diffs = config.differences(saved)
    if diffs:
        raise WorkDirError(
            f"cannot resume {work}: it was started with other settings ("
            + "; ".join(diffs)
            + "). Resume with the same settings, or choose another --out."
        )
    return work


def open_work_dir(config: ExperimentConfig, out: Path, resume: bool) -> Path:
    """Create (or, resuming, check and reuse) the work folder of ``out``; returns it."""
    work = check_work_dir(config, out, resume)
    if _has_progress(work):
        log.info("resuming the unfinished run in %s", work)
    else:
        (work / "log.txt").unlink(missing_ok=True)  # the log of an attempt that trained nothing
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(work / SETTINGS_FILE, json.dumps(config.to_dict(), indent=2))
    return work


def run_experiment(
    config: ExperimentConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    unique: bool = False,
    backbone: Backbone | None = None,
) -> Path:
    """Run an experiment end to end and write its run directory; returns the directory's path.

    Lists the data (a wrong layout fails here, before any model is loaded), loads the backbone,
    computes or reuses the cached image features, trains both stages (checkpoints in
    ``<out>.partial/``), evaluates zero-shot MCM, CoOp + MCM and NegPrompt on every OOD set and
    writes ``out`` atomically. The work folder is removed once the run directory exists.

    Args:
        config: the settings (:meth:`ExperimentConfig.for_preset`).
        out: the run directory to create; an existing one is never overwritten.
        resume: continue an interrupted run of the same settings from ``<out>.partial/``.
        progress: show progress bars.
        unique: if ``out`` exists, write ``out-2``, ``out-3`` … instead of refusing.
        backbone: an already loaded backbone (must be ``config.backbone.model``).

    Raises:
        RunExistsError: ``out`` exists and ``unique`` is False.
        WorkDirError: an unfinished run is in the work folder and ``resume`` is False, or it was
            started with other settings.
    """
    from negprompt.distributed import barrier, broadcast_object, get_info

    main = get_info().is_main
    out = broadcast_object(free_run_path(out, unique) if main else None)  # every rank: one path
    check_work_dir(config, out, resume)
    data = load_data(config)  # a wrong data layout fails here, before anything is written
    work = open_work_dir(config, out, resume) if main else work_dir_for(out)
    barrier()
    experiment = Experiment(
        config, work_dir=work, resume=True, progress=progress and main, backbone=backbone, data=data
    )
    try:
        experiment.prepare()  # every rank: features (sharded under torchrun), then training
        if not experiment.trained:
            experiment.train()
        if not main:  # rank 0 evaluates and writes the run directory
            return out
        experiment.evaluate()
        path = experiment.write(out, unique=False)
    except KeyboardInterrupt:  # the message is shown once, by whoever catches it
        raise KeyboardInterrupt(
            f"interrupted: finished epochs are kept in {work}; rerun with resume=True (--resume) to continue"
        ) from None
    shutil.rmtree(work, ignore_errors=True)
    return path
