"""Rebuilding a finished run's methods for `negprompt.detect`: open the run, re-encode its prompts
on its backbone, check them against the text features the run stored."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from negprompt.rundir import RunDirError, load_run

LEARNED = ("coop", "locoop", "negprompt")
"""Methods whose contexts the run stores in ``prompts/<method>.safetensors``."""


class DetectError(RunDirError):
    """The run cannot be applied (damaged, unfinished, not from the experiment pipeline, other weights)."""


def open_run(path: str | os.PathLike):
    """The finished run at ``path``; an unfinished or damaged one is a `DetectError` saying what to do."""
    from negprompt.experiments import work_dir_for

    folder = Path(os.path.abspath(os.path.expanduser(path)))
    work = work_dir_for(folder)
    if not folder.exists() and work.is_dir():
        raise DetectError(
            f"the run {folder} is unfinished (its work folder {work} exists, the run directory does not): "
            f"finish it with the command that started it plus --resume --out {folder}"
        )
    suffix = work.name[len(folder.name) :]
    if folder.name.endswith(suffix) and not (folder / "config.json").exists():
        final = folder.with_name(folder.name[: -len(suffix)])
        raise DetectError(
            f"{folder} is the work folder of an unfinished run: finish it with the command that started "
            f"it plus --resume --out {final}, then apply {final}"
        )
    try:
        run = load_run(folder)
        run.scores  # noqa: B018 (reads and checks scores.parquet now)
    except RunDirError as err:
        raise DetectError(f"{err}; apply a finished run directory (one that holds config.json)") from err
    if run.config.get("kind") == "detect":
        raise DetectError(f"{folder} holds detections, not a trained run: apply the run it came from")
    return run


def rebuild_methods(run, backbone, class_names: list[str], config, *, progress: bool = True) -> list:
    """The run's methods on ``backbone``: zero-shot prompts, learned contexts, NegLabel's words.

    When the run has ``text_features.npz``, the rebuilt text features are checked against it (a
    difference above 1e-3 means other weights or a changed prompts file: `DetectError`) and the
    stored ones are used: they are what the run scored with, so its own images get its own scores
    bit for bit (re-encoding agrees to ~1e-7, not exactly). NegLabel's negative labels are not
    stored and are re-encoded (`negprompt.neglabel.encode_label_bank`, cached).
    """
    import torch

    from negprompt.evaluate import Method
    from negprompt.experiments.methods import zeroshot_method
    from negprompt.promptfile import learner_from_file

    methods = []
    files = run.prompt_files
    for name in run.methods:
        if name == "zeroshot":
            methods.append(zeroshot_method(backbone, class_names, config.prompt_config()))
        elif name in LEARNED:
            if name not in files:
                raise DetectError(
                    f"the run {run.path} scored {name} but has no prompts/{name}.safetensors: "
                    "the run directory is incomplete; write it again"
                )
            try:
                learner = learner_from_file(files[name][0], backbone)
            except (ValueError, OSError) as err:
                raise DetectError(f"{files[name][0]}: {err}") from err
            with torch.no_grad():
                names = learner.class_names(class_names)
                pos = learner.positive_features(names).float().cpu()
                neg = learner.negative_features(names).float().cpu() if name == "negprompt" else None
            methods.append(Method(name, pos, neg))
        elif name == "neglabel":
            methods.append(_neglabel(run, backbone, methods, config, progress))
        else:
            raise DetectError(f"the run {run.path} has a method {name!r} that cannot be rebuilt")
    _use_run_features(run, methods)
    return methods


def _neglabel(run, backbone, methods, config, progress):
    import torch

    from negprompt.evaluate import Method
    from negprompt.neglabel import encode_label_bank

    record = run.config.get("experiment", {}).get("neglabel") or {}
    words, groups = record.get("words"), record.get("groups")
    zeroshot = next((m for m in methods if m.name == "zeroshot"), None)
    if not words or not groups or zeroshot is None:
        raise DetectError(
            f"{run.path / 'config.json'} lacks NegLabel's words and groups (experiment.neglabel)"
        )
    bank = encode_label_bank(backbone, words, cache_dir=config.cache_path(), progress=progress)
    feats = torch.nn.functional.normalize(torch.from_numpy(np.asarray(bank, dtype=np.float32)), dim=-1)
    return Method(
        "neglabel", zeroshot.pos, None, neg_labels=feats, neg_label_words=words, neg_groups=int(groups)
    )


def _use_run_features(run, methods, tolerance: float = 1e-3) -> None:
    """Check each method's text features against the run's stored ones, then use the stored ones."""
    import torch

    stored = run.text_features
    for m in methods:
        for part in ("pos", "neg"):
            mine, key = getattr(m, part), f"{m.name}.{part}"
            if mine is None or key not in stored or (m.name == "neglabel" and part == "neg"):
                continue
            saved = np.asarray(stored[key], dtype=np.float32)
            ours = mine.detach().float().cpu().numpy()
            gap = float(np.abs(saved - ours).max()) if saved.shape == ours.shape else np.inf
            if gap > tolerance:
                diff = (
                    f"max difference {gap:.3g}"
                    if np.isfinite(gap)
                    else f"shape {saved.shape} vs {ours.shape}"
                )
                raise DetectError(
                    f"the prompts of {m.name!r} encoded by the backbone here differ from the run's "
                    f"{run.path / 'text_features.npz'} ({diff}): the backbone's weights are not the run's "
                    "(or its prompts/ files were replaced); use the weights the run was made with"
                )
            setattr(m, part, torch.from_numpy(saved))
