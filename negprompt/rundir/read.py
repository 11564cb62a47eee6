"""Reading run directories: lazy, cached parts; finding runs; mapping image paths into data roots."""

from __future__ import annotations

import json
import os
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.rundir.schema import (
    CONFIG_FILE,
    CONTEXT_TOKENS_FILE,
    IMAGE_FEATURES_FILE,
    LOG_FILE,
    METRIC_VALUES,
    METRICS_COLUMNS,
    METRICS_FILE,
    PROMPTS_DIR,
    SCORE_COLUMN,
    SCORES_FILE,
    TEXT_FEATURES_FILE,
    RunDirError,
    check_config,
)

# --------------------------------------------------------------------------- reading


class Run:
    """A run directory opened for reading; parts load lazily on first access and are cached.

    Opening checks what every reader relies on (folder, ``config.json``, format version, presence of
    metrics and scores, and that ``image_features.npy`` has one row per scores row) and raises
    `RunDirError` naming the problem.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(path)))
        if not self.path.is_dir():
            raise RunDirError(f"no run directory at {self.path}")
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            raise RunDirError(f"{self.path} is not a run directory: it has no {CONFIG_FILE}")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{config_path} is corrupt (not valid JSON: {err})") from err
        check_config(config, str(config_path))
        self.config: dict = config
        for name in (METRICS_FILE, SCORES_FILE):
            if not (self.path / name).is_file():
                raise RunDirError(f"run {self.path} is incomplete: {name} is missing")
        n_rows = self._n_scores_rows()
        if (self.path / IMAGE_FEATURES_FILE).exists():
            shape = self._load_npy(mmap_mode="r").shape
            if len(shape) != 2 or shape[0] != n_rows:
                raise RunDirError(
                    f"run {self.path}: {IMAGE_FEATURES_FILE} has shape {shape}, but {SCORES_FILE} has "
                    f"{n_rows} rows; features and scores must align row by row"
                )

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, path={str(self.path)!r})"

    def _n_scores_rows(self) -> int:
        import pyarrow.parquet as pq

        try:
            return pq.read_metadata(self.path / SCORES_FILE).num_rows
        except Exception as err:
            raise RunDirError(f"{self.path / SCORES_FILE} is corrupt: {err}") from err

    def _load_npy(self, mmap_mode: str | None) -> np.ndarray:
        try:
            return np.load(self.path / IMAGE_FEATURES_FILE, mmap_mode=mmap_mode, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise RunDirError(f"{self.path / IMAGE_FEATURES_FILE} is corrupt: {err}") from err

    @property
    def name(self) -> str:
        """The run's name (``config.name``, else the folder name)."""
        return str(self.config.get("name") or self.path.name)

    @property
    def random_weights(self) -> bool:
        """True when the model had random weights: every number of the run is then meaningless."""
        return bool(self.config["backbone"]["random_weights"])

    @property
    def data_roots(self) -> list[Path]:
        """The data roots the run's images come from (``config.data.roots``)."""
        return [Path(r) for r in self.config["data"]["roots"]]

    @property
    def methods(self) -> list[str]:
        """Method names (``config.methods``, else those of the score columns)."""
        return list(self.config.get("methods") or dict.fromkeys(c.split("/")[0] for c in self.score_columns))

    @cached_property
    def score_columns(self) -> list[str]:
        """The ``<method>/<score>`` columns of ``scores.parquet`` (read from its schema only)."""
        import pyarrow.parquet as pq

        return [c for c in pq.read_schema(self.path / SCORES_FILE).names if SCORE_COLUMN.match(c)]

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: one row per (method, score, dataset)."""
        try:
            frame = pd.read_csv(
                self.path / METRICS_FILE,
                keep_default_na=False,
                na_values={c: ["", "nan", "NaN"] for c in METRIC_VALUES},
                dtype={c: str for c in METRICS_COLUMNS[:3]},
            )
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise RunDirError(f"{self.path / METRICS_FILE} is corrupt: {err}") from err
        missing = [c for c in METRICS_COLUMNS if c not in frame.columns]
        if missing:
            raise RunDirError(f"{self.path / METRICS_FILE} lacks column(s) {missing}")
        return frame

    @cached_property
    def scores(self) -> pd.DataFrame:
        """``scores.parquet``: one row per evaluated image, ID images first."""
        try:
            return pd.read_parquet(self.path / SCORES_FILE)
        except Exception as err:
            raise RunDirError(f"{self.path / SCORES_FILE} is corrupt: {err}") from err

    @cached_property
    def image_features(self) -> np.ndarray | None:
        """[N, D] float16 image features, memory-mapped read-only, or None if the run has none."""
        return self._load_npy(mmap_mode="r") if (self.path / IMAGE_FEATURES_FILE).exists() else None

    @cached_property
    def text_features(self) -> dict[str, np.ndarray]:
        """``{"<method>.pos": [C, D], "<method>.neg": [C, M, D]}`` (empty if the run has none)."""
        file = self.path / TEXT_FEATURES_FILE
        if not file.exists():
            return {}
        try:
            with np.load(file, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as err:
            raise RunDirError(f"{file} is corrupt: {err}") from err

    def text_features_of(self, method: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(pos [C, D], neg [C, M, D] or None)`` of one method."""
        if f"{method}.pos" not in self.text_features:
            raise RunDirError(f"run {self.name} has no text features of method {method!r}")
        return self.text_features[f"{method}.pos"], self.text_features.get(f"{method}.neg")

    @cached_property
    def context_tokens(self) -> dict:
        """``context_tokens.json``: nearest vocabulary tokens of each learned context vector ({} if none)."""
        file = self.path / CONTEXT_TOKENS_FILE
        try:
            return json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{file} is corrupt: {err}") from err

    @cached_property
    def log(self) -> str:
        """The text of ``log.txt`` ('' if absent)."""
        file = self.path / LOG_FILE
        return file.read_text(encoding="utf-8", errors="replace") if file.exists() else ""

    @cached_property
    def prompt_files(self) -> dict[str, tuple[Path, Path]]:
        """``{method: (prompts/<method>.safetensors, prompts/<method>.json)}`` of the saved prompts."""
        folder = self.path / PROMPTS_DIR
        return {
            f.stem: (f, f.with_suffix(".json"))
            for f in sorted(folder.glob("*.safetensors"))
            if f.with_suffix(".json").is_file()
        }


def load_run(path: str | os.PathLike) -> Run:
    """Open the run directory at ``path`` (see `Run`); raises `RunDirError` if it is missing or damaged."""
    return Run(path)


def _created(run_dir: Path) -> float:
    try:
        created = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["created"]
        return datetime.fromisoformat(created).timestamp()
    except Exception:
        return (run_dir / CONFIG_FILE).stat().st_mtime


def find_runs(root: str | os.PathLike, max_depth: int = 3) -> list[Path]:
    """Run directories (folders with a ``config.json``) under ``root``, newest first.

    Looks at ``root`` itself and folders up to ``max_depth`` levels below it, does not descend into a
    run directory, and skips hidden folders (so unfinished ``.<name>.tmp-…`` folders) and symlinked
    folders. Order: ``config.created``, else the config file's modification time. A missing ``root``
    gives an empty list.
    """
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if (folder / CONFIG_FILE).is_file():
            found.append(folder)
            return
        if depth >= max_depth:
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), depth + 1)

    root = Path(os.path.abspath(os.path.expanduser(root)))
    if root.is_dir():
        walk(root, 0)
    return sorted(found, key=lambda p: (_created(p), str(p)), reverse=True)


def resolve_image_path(run: Run | str | os.PathLike, path: str | os.PathLike) -> Path:
    """The real path of an image of ``run``, only if it is a file inside one of the run's data roots.

    Symlinks and ``..`` in both the image path and the roots are resolved before the check, so no
    path can escape the roots. A relative ``path`` is taken relative to each root in turn.

    Raises:
        RunDirError: the run records no data roots, the path lies outside them, or no file is there.
    """
    run = run if isinstance(run, Run) else load_run(run)
    roots = [r.resolve() for r in run.data_roots]
    if not roots:
        raise RunDirError(f"run {run.name} records no data roots (config.data.roots); it serves no images")
    raw = Path(os.path.expanduser(path))
    candidates = [raw] if raw.is_absolute() else [r / raw for r in roots]
    inside = [c.resolve() for c in candidates]
    inside = [c for c in inside if any(c.is_relative_to(r) for r in roots)]
    if not inside:
        raise RunDirError(
            f"{path} lies outside the data roots of run {run.name} ({', '.join(map(str, roots))})"
        )
    for candidate in inside:
        if candidate.is_file():
            return candidate
    raise RunDirError(f"no image file at {path} (inside the data roots of run {run.name})")
