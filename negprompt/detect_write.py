"""The output of `negprompt detect`: a run directory (kind ``detect``) with the per-image decisions.

It is an ordinary run directory (docs/run-directory.md), so the dashboard opens it: ``scores.parquet``
holds every image with every score, its ``split`` being the *decision* (``id``: accepted, with the
predicted class as ``label``; ``ood``: rejected), not a ground truth, which new images do not have;
``metrics.csv`` therefore has only empty rows (one per score and set, and ``mean``). ``decisions.csv`` and
``decisions.parquet`` hold the decisions table of `negprompt.detect.Detector.decide`, in input
order; ``config.json``'s ``experiment.detect`` records the source run, the threshold rule and the
skipped files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.rundir import RunDirError, RunExistsError, load_run
from negprompt.rundir.schema import METRICS_COLUMNS


def check_output(out: str | os.PathLike, overwrite: bool) -> Path:
    """``out`` made absolute, after checking it may be written (before any long work).

    Raises:
        RunExistsError: ``out`` exists and ``overwrite`` is False, or it exists and is not a run
            directory of detections (those are never replaced).
    """
    out = Path(os.path.abspath(os.path.expanduser(out)))
    if not os.path.lexists(out):
        return out
    if not overwrite:
        raise RunExistsError(f"{out} exists; choose another --out, or replace it with --overwrite")
    try:
        kind = load_run(out).config.get("kind")
    except RunDirError:
        kind = None
    if kind != "detect":
        raise RunExistsError(
            f"{out} exists and is not the output of negprompt detect; --overwrite only replaces such "
            "outputs: choose another --out"
        )
    return out


def detections_frame(decisions: pd.DataFrame, class_names: list[str], method: str) -> pd.DataFrame:
    """The run directory's ``scores.parquet`` table: accepted images first (split ``id``)."""
    accepted = decisions["decision"].eq("id").to_numpy()
    pred = decisions[f"pred.{method}"].to_numpy().astype(np.int64)
    labels = np.where(accepted, pred, -1).astype(np.int64)
    frame = pd.DataFrame(
        {
            "dataset": decisions["input"],
            "split": np.where(accepted, "id", "ood"),
            "path": decisions["path"],
            "label": labels,
            "label_name": [class_names[i] if i >= 0 else "" for i in labels.tolist()],
            "ood_class": "",
        }
    )
    extra = [c for c in decisions.columns if "/" in c or c.startswith("pred.") or "." in c]
    return pd.concat([frame, decisions[extra]], axis=1)


def write_detections(
    out: str | os.PathLike,
    detector,
    decisions: pd.DataFrame,
    image_features: np.ndarray,
    *,
    overwrite: bool = False,
    log: str = "",
) -> Path:
    """Write the detections run directory ``out`` (atomically; an existing one only with ``overwrite``)."""
    from negprompt.rundir import software_versions, write_run

    out = check_output(out, overwrite)
    t = detector.threshold
    method = t.score.split("/", 1)[0]
    table = detections_frame(decisions, detector.class_names, method)
    order = np.argsort(table["split"].ne("id").to_numpy(), kind="stable")  # accepted images first
    table = table.iloc[order].reset_index(drop=True)
    feats = np.asarray(image_features)[order]
    rejected_sets = list(dict.fromkeys(table.loc[table["split"] == "ood", "dataset"]))
    metrics = pd.DataFrame(  # no ground truth: one empty row per (score, set of rejected images, mean)
        [
            {"method": c.split("/")[0], "score": c.split("/")[1], "dataset": d}
            for c in decisions.columns
            if "/" in c
            for d in [*rejected_sets, "mean"]
        ],
        columns=list(METRICS_COLUMNS),
    )
    inputs = detector.last_inputs
    run = detector.run
    config = {
        "kind": "detect",
        "name": out.name,
        "software": software_versions(str(detector.backbone.device)),
        "backbone": detector.backbone.describe(),
        "data": {
            "roots": sorted({str(Path(p).parent) for p in decisions["path"]}),
            "id": f"accepted by {run.name}",
            "ood": list(dict.fromkeys(table.loc[table["split"] == "ood", "dataset"])),
            "class_names": detector.class_names,
            "train_class_names": run.config["data"].get("train_class_names", detector.class_names),
        },
        "experiment": {
            "detect": {
                "run": str(run.path),
                "run_name": run.name,
                "run_kind": run.config.get("kind"),
                "threshold": {k: v for k, v in vars(t).items()},
                "rule": t.describe(),
                "images": len(decisions),
                "accepted": int(decisions["decision"].eq("id").sum()),
                "skipped": dict(inputs.skipped) if inputs is not None else {},
                "split_means": "split is the decision (id = accepted), not a ground truth",
            },
            **{k: v for k, v in run.config.get("experiment", {}).items() if k in ("local_grid", "neglabel")},
        },
    }
    texts = {f"{m.name}.pos": m.pos.float().numpy() for m in detector.methods}
    texts.update({f"{m.name}.neg": m.neg.float().numpy() for m in detector.methods if m.neg is not None})
    parts = dict(
        config=config,
        metrics=metrics,
        scores=table,
        image_features=feats,
        text_features=texts,
        prompt_files=run.prompt_files,
        context_tokens=run.context_tokens or None,
        log=log,
        tables={"decisions.csv": decisions, "decisions.parquet": decisions},
    )
    if not os.path.lexists(out):
        return write_run(out, **parts)
    # --overwrite: write the new run beside the old one, swap them, and only then remove the old one
    tag = uuid.uuid4().hex[:8]
    fresh = write_run(out.with_name(f".{out.name}.new-{tag}"), **parts)
    old = out.with_name(f".{out.name}.old-{tag}")
    os.replace(out, old)
    os.replace(fresh, out)
    shutil.rmtree(old, ignore_errors=True)
    return out
