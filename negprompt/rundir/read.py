"""Reading run directories: lazy, cached parts; finding runs; mapping image paths into data roots."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.io import OutsideError, confined
from negprompt.rundir.schema import (
    CHECKS_FILE,
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
    `RunDirError` naming the problem. Every part is read through `file`: a file whose real path
    (after symlinks) lies outside the run directory is refused, and any error while reading a part
    (truncated, empty, not the format it claims) becomes a `RunDirError` naming that file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(path)))
        if not self.path.is_dir():
            raise RunDirError(f"no run directory at {self.path}")
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            raise RunDirError(f"{self.path} is not a run directory: it has no {CONFIG_FILE}")
        try:
            config = json.loads(self.file(CONFIG_FILE).read_text(encoding="utf-8"))
        except RunDirError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{config_path} is corrupt (not valid JSON: {err})") from err
        check_config(config, str(config_path))
        self.config: dict = config
        for name in (METRICS_FILE, SCORES_FILE):
            if not (self.path / name).is_file():
                raise RunDirError(f"run {self.path} is incomplete: {name} is missing")
        n_rows = self._n_scores_rows()
        if self._exists(IMAGE_FEATURES_FILE):
            shape = self._load_npy(mmap_mode="r").shape
            if len(shape) != 2 or shape[0] != n_rows:
                raise RunDirError(
                    f"run {self.path}: {IMAGE_FEATURES_FILE} has shape {shape}, but {SCORES_FILE} has "
                    f"{n_rows} rows; features and scores must align row by row"
                )

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, path={str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The real path of the part ``name`` of this run, only if it lies inside the run directory.

        Raises:
            RunDirError: the part is a symlink (or ``..`` path) that leads outside the run directory.
        """
        try:
            return confined(self.path, name)
        except OutsideError as err:
            raise RunDirError(f"run {self.path}: {err}") from None

    def _exists(self, name: str) -> bool:
        return os.path.lexists(self.path / name)

    def _read(self, name: str, reader):
        """``reader(real path)`` of a part; any failure becomes a `RunDirError` naming the file."""
        file = self.file(name)
        try:
            return reader(file)
        except RunDirError:
            raise
        except Exception as err:  # EOFError, BadZipFile, pyarrow errors, …: all mean a damaged file
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise RunDirError(f"{self.path / name} is corrupt ({detail}); write the run again") from err

    def _n_scores_rows(self) -> int:
        import pyarrow.parquet as pq

        return self._read(SCORES_FILE, lambda f: pq.read_metadata(f).num_rows)

    def _load_npy(self, mmap_mode: str | None) -> np.ndarray:
        return self._read(IMAGE_FEATURES_FILE, lambda f: np.load(f, mmap_mode=mmap_mode, allow_pickle=False))

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

        names = self._read(SCORES_FILE, lambda f: pq.read_schema(f).names)
        return [c for c in names if SCORE_COLUMN.match(c)]

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: one row per (method, score, dataset).

        A file that does not end with a line break, or a row without method, score or dataset, is a
        truncated file (the writer ends every row with one) and raises `RunDirError`.
        """

        def read(file: Path) -> pd.DataFrame:
            with open(file, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 1))
                if not size or fh.read(1) != b"\n":
                    raise RunDirError(
                        f"{self.path / METRICS_FILE} is truncated (it does not end with a complete row); "
                        "write the run again"
                    )
            return pd.read_csv(
                file,
                keep_default_na=False,
                na_values={c: ["", "nan", "NaN"] for c in METRIC_VALUES},
                dtype={c: str for c in METRICS_COLUMNS[:3]},
            )

        frame = self._read(METRICS_FILE, read)
        missing = [c for c in METRICS_COLUMNS if c not in frame.columns]
        if missing:
            raise RunDirError(f"{self.path / METRICS_FILE} lacks column(s) {missing}")
        keys = frame[list(METRICS_COLUMNS[:3])]
        if (keys.isna() | (keys == "")).any(axis=None):
            raise RunDirError(
                f"{self.path / METRICS_FILE} has rows without method, score or dataset (truncated?); "
                "write the run again"
            )
        return frame

    @cached_property
    def scores(self) -> pd.DataFrame:
        """``scores.parquet``: one row per evaluated image, ID images first."""
        return self._read(SCORES_FILE, pd.read_parquet)

    @cached_property
    def image_features(self) -> np.ndarray | None:
        """[N, D] float16 image features, memory-mapped read-only, or None if the run has none."""
        return self._load_npy(mmap_mode="r") if self._exists(IMAGE_FEATURES_FILE) else None

    @cached_property
    def text_features(self) -> dict[str, np.ndarray]:
        """``{"<method>.pos": [C, D], "<method>.neg": [C, M, D]}`` (empty if the run has none)."""
        if not self._exists(TEXT_FEATURES_FILE):
            return {}

        def read(file: Path) -> dict[str, np.ndarray]:
            with np.load(file, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}

        return self._read(TEXT_FEATURES_FILE, read)

    def text_features_of(self, method: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(pos [C, D], neg [C, M, D] or None)`` of one method."""
        if f"{method}.pos" not in self.text_features:
            raise RunDirError(f"run {self.name} has no text features of method {method!r}")
        return self.text_features[f"{method}.pos"], self.text_features.get(f"{method}.neg")

    @cached_property
    def context_tokens(self) -> dict:
        """``context_tokens.json``: nearest vocabulary tokens of each learned context vector ({} if none)."""
        if not self._exists(CONTEXT_TOKENS_FILE):
            return {}
        return self._read(CONTEXT_TOKENS_FILE, lambda f: json.loads(f.read_text(encoding="utf-8")))

    @cached_property
    def checks(self) -> list | None:
        """``checks.json`` as `negprompt.checks.Check` objects, or None for a run written before checks.

        Raises:
            RunDirError: the file is damaged (naming it); the rest of the run stays readable.
        """
        if not self._exists(CHECKS_FILE):
            return None
        from negprompt.checks import parse_checks

        where = str(self.path / CHECKS_FILE)
        return self._read(
            CHECKS_FILE, lambda f: parse_checks(json.loads(f.read_text(encoding="utf-8")), where)
        )

    @cached_property
    def log(self) -> str:
        """The text of ``log.txt`` ('' if absent)."""
        if not self._exists(LOG_FILE):
            return ""
        return self._read(LOG_FILE, lambda f: f.read_text(encoding="utf-8", errors="replace"))

    @cached_property
    def prompt_files(self) -> dict[str, tuple[Path, Path]]:
        """``{method: (prompts/<method>.safetensors, prompts/<method>.json)}`` of the saved prompts."""
        if not (self.path / PROMPTS_DIR).is_dir():
            return {}
        found = {}
        for f in sorted(self.file(PROMPTS_DIR).glob("*.safetensors")):
            rel = f"{PROMPTS_DIR}/{f.name}"
            tensors, meta = self.file(rel), self.file(rel[: -len(".safetensors")] + ".json")
            if meta.is_file():
                found[f.stem] = (tensors, meta)
        return found


def load_run(path: str | os.PathLike) -> Run:
    """Open the run directory at ``path`` (see `Run`); raises `RunDirError` if it is missing or damaged."""
    return Run(path)


def _created(run_dir: Path) -> float:
    try:
        created = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["created"]
        return datetime.fromisoformat(created).timestamp()
    except Exception:
        try:
            return (run_dir / CONFIG_FILE).stat().st_mtime
        except OSError:
            return 0.0


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. PermissionError under /proc
        return False


def find_runs(
    root: str | os.PathLike, max_depth: int = 3, max_seconds: float = 5.0, max_folders: int = 20000
) -> list[Path]:
    """Run directories (folders with a ``config.json``) under ``root``, newest first.

    Looks at ``root`` itself and folders up to ``max_depth`` levels below it, does not descend into a
    run directory, and skips hidden folders (so unfinished ``.<name>.tmp-…`` folders), symlinked
    folders and folders it cannot read. The walk stops after ``max_seconds`` or ``max_folders``
    folders (a runs folder of ``/`` returns what was found by then). Order: ``config.created``, else
    the config file's modification time. A missing ``root`` gives an empty list.
    """
    found: list[Path] = []
    deadline = time.monotonic() + max_seconds
    seen = 0

    def walk(folder: Path, depth: int) -> None:
        nonlocal seen
        seen += 1
        if _is_file(folder / CONFIG_FILE):
            found.append(folder)
            return
        if depth >= max_depth or seen > max_folders or time.monotonic() > deadline:
            return
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            try:
                is_dir = not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                walk(Path(entry.path), depth + 1)

    root = Path(os.path.abspath(os.path.expanduser(root)))
    try:
        is_root = root.is_dir()
    except OSError:
        is_root = False
    if is_root:
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
