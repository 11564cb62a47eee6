"""Writing run directories: validated parts, written atomically, never over an existing run."""

from __future__ import annotations

import copy
import os
import platform
import re
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.io import clean_stale_temps, publish_dir, temp_name
from negprompt.metrics import FPR_CONVENTION
from negprompt.rundir.schema import (
    CHECKS_FILE,
    CONFIG_FILE,
    CONFIG_ORDER,
    CONTEXT_TOKENS_FILE,
    FORMAT_VERSION,
    IMAGE_FEATURES_FILE,
    LOG_FILE,
    METRICS_FILE,
    NAME_PATTERN,
    PROMPTS_DIR,
    SCORES_FILE,
    STANDARD_FILES,
    TABLE_NAME,
    TEXT_FEATURES_FILE,
    TMP_MARK,
    RunDirError,
    RunExistsError,
    check_arrays,
    check_config,
    check_labels,
    check_metric_rows,
    check_metrics,
    check_scores,
    ood_set_names,
    to_json,
)

# --------------------------------------------------------------------------- small helpers


def software_versions(device: str | None = None) -> dict[str, str]:
    """Versions of Python, the main packages and the platform, for ``config.json``'s ``software``.

    Reads installed package metadata only (imports nothing heavy). ``device``, if given, is recorded
    as ``"device"`` (e.g. ``"cuda:0 (NVIDIA H100)"``).
    """

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    info = {
        "negprompt": version("negprompt"),
        "python": platform.python_version(),
        "torch": version("torch"),
        "open_clip": version("open_clip_torch"),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    if device is not None:
        info["device"] = device
    return info


# --------------------------------------------------------------------------- writing


def free_run_path(path: str | os.PathLike, unique: bool = False) -> Path:
    """``path`` (made absolute) if nothing has that name; else with ``unique`` the first free
    ``path-2``, ``path-3``, …

    Raises:
        RunExistsError: ``path`` exists and ``unique`` is False (nothing is touched).
    """
    path = Path(os.path.abspath(os.path.expanduser(path)))
    candidate, k = path, 1
    while os.path.lexists(candidate):
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    if candidate != path and not unique:
        raise RunExistsError(
            f"run directory {path} already exists and is never overwritten; choose another name "
            f"(e.g. {candidate.name}), or ask for a fresh one (--unique, unique=True) to write "
            f"{candidate.name} (nothing was changed)"
        )
    return candidate


def write_run(
    path: str | os.PathLike,
    *,
    config: Mapping,
    metrics: pd.DataFrame,
    scores: pd.DataFrame,
    image_features: np.ndarray | None = None,
    text_features: Mapping[str, np.ndarray] | None = None,
    prompt_files: Mapping[str, tuple[os.PathLike, os.PathLike]] | None = None,
    context_tokens: Mapping | None = None,
    log: str = "",
    unique: bool = False,
    checks: Mapping | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Validate the parts of a run and write them as one run directory, atomically.

    Everything is written into ``.<name>.tmp-<pid>@<host>-<random>`` beside ``path`` and renamed to
    the final name at the end; on any error the temporary folder is removed and no folder with the
    final name appears. Temporary folders of writers that were killed are removed on the next write
    beside them (`negprompt.io.clean_stale_temps`).

    Args:
        path: the run directory to create; its parent folders are created.
        config: ``config.json`` content; needs ``kind``, ``backbone.random_weights`` and ``data.roots``.
            ``format``, ``name`` (the folder name), ``created``, ``software``, ``fpr_convention``,
            ``methods`` and ``scores`` (both from the score columns) are filled in when absent;
            data roots are stored as absolute paths.
        metrics: one row per (method, score, dataset), columns `METRICS_COLUMNS` (+ extras).
        scores: one row per image, ID rows first, columns `SCORES_COLUMNS`, ``pred.<method>``,
            ``<method>/<score>`` (+ extras).
        image_features: [N, D] features, row i = scores row i; stored as float16.
        text_features: ``{"<method>.pos": [C, D], "<method>.neg": [C, M, D]}``; stored as float32.
        prompt_files: ``{method: (file.safetensors, file.json)}`` copied to ``prompts/<method>.*``.
        context_tokens: ``context_tokens.json`` content.
        log: the text of ``log.txt``.
        checks: ``checks.json`` content (`negprompt.checks.to_json`), or None.
        unique: if ``path`` exists, write ``path-2``, ``path-3``, … instead of raising.
        tables: further tables by file name (``validation_scores.parquet``, ``decisions.csv`` …),
            each written as CSV or parquet by its name's suffix.

    Returns:
        The path of the written run directory.

    Raises:
        RunExistsError: ``path`` exists and ``unique`` is False.
        RunDirError: a part breaks the contract (the message names it).
    """
    path = Path(os.path.abspath(os.path.expanduser(path)))
    check_config(config, "config")
    metrics = check_metrics(metrics)
    pairs = check_scores(scores)
    check_metric_rows(metrics, pairs, ood_set_names(scores))
    check_labels(scores, (config.get("data") or {}).get("class_names"))
    feats, texts = check_arrays(image_features, text_features, len(scores))
    prompts = {}
    for method, files in (prompt_files or {}).items():
        if (
            not re.fullmatch(NAME_PATTERN, method)
            or len(files) != 2
            or not all(Path(f).is_file() for f in files)
        ):
            raise RunDirError(
                f"prompt_files[{method!r}] must be (existing .safetensors file, existing .json file)"
            )
        prompts[method] = tuple(Path(f) for f in files)
    context_json = None if context_tokens is None else to_json(context_tokens, "context_tokens")
    checks_json = None if checks is None else to_json(checks, "checks")
    for name, table in (tables or {}).items():
        if not TABLE_NAME.match(name) or name in STANDARD_FILES or not isinstance(table, pd.DataFrame):
            raise RunDirError(
                f"tables[{name!r}] must be a DataFrame named '<name>.csv' or '<name>.parquet' "
                "(letters, digits, _ and -), not a standard part of the run"
            )

    cfg = {"format": FORMAT_VERSION, **copy.deepcopy(dict(config))}
    cfg["data"] = {
        **cfg["data"],
        "roots": [os.path.abspath(os.path.expanduser(r)) for r in cfg["data"]["roots"]],
    }
    cfg.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    cfg.setdefault("software", software_versions())
    cfg.setdefault("fpr_convention", FPR_CONVENTION)
    cfg.setdefault("methods", list(dict.fromkeys(m for m, _ in pairs)))
    cfg.setdefault("scores", list(dict.fromkeys(s for _, s in pairs)))
    unknown = sorted({m for m, _ in pairs} - set(cfg["methods"]))
    if unknown:
        raise RunDirError(
            f"score columns name method(s) {unknown} missing from config['methods'] {cfg['methods']}"
        )
    auto_name = "name" not in cfg

    final = free_run_path(path, unique)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent, path.name + TMP_MARK)
    while True:
        tmp = temp_name(path)
        try:
            tmp.mkdir()
            break
        except FileExistsError:
            continue
    try:
        metrics.to_csv(tmp / METRICS_FILE, index=False)
        scores.reset_index(drop=True).to_parquet(tmp / SCORES_FILE, index=False)
        if feats is not None:
            np.save(tmp / IMAGE_FEATURES_FILE, feats)
        if texts:
            np.savez(tmp / TEXT_FEATURES_FILE, **texts)
        if prompts:
            (tmp / PROMPTS_DIR).mkdir()
            for method, (weights, meta) in prompts.items():
                shutil.copyfile(weights, tmp / PROMPTS_DIR / f"{method}.safetensors")
                shutil.copyfile(meta, tmp / PROMPTS_DIR / f"{method}.json")
        if context_json is not None:
            (tmp / CONTEXT_TOKENS_FILE).write_text(context_json, encoding="utf-8")
        (tmp / LOG_FILE).write_text(log, encoding="utf-8")
        if checks_json is not None:
            (tmp / CHECKS_FILE).write_text(checks_json, encoding="utf-8")
        for name, table in (tables or {}).items():
            if name.endswith(".csv"):
                table.to_csv(tmp / name, index=False)
            else:
                table.reset_index(drop=True).to_parquet(tmp / name, index=False)
        for _attempt in range(100):
            if auto_name:
                cfg["name"] = final.name
            ordered = {k: cfg[k] for k in CONFIG_ORDER if k in cfg} | cfg
            (tmp / CONFIG_FILE).write_text(to_json(ordered, "config"), encoding="utf-8")
            if publish_dir(tmp, final, keep=True):
                return final
            final = free_run_path(path, unique)  # taken by another writer meanwhile: never replace it
        raise RunExistsError(f"found no free name for run directory {path} after 100 attempts")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
