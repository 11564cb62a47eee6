"""Reading run directories: a run opened lazily, every part validated on first access."""

from __future__ import annotations

import csv
import io
import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.io import OutsideError, confined
from negprompt.rundir.files import (
    LOG_TAIL,
    MAX_FEATURE_WIDTH,
    TEXT_LIMITS,
    check_regular,
    read_tail,
    read_text,
)
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
    VALIDATION_SCORES_FILE,
    RunDirError,
    check_arrays,
    check_config,
    check_labels,
    check_metric_rows,
    check_metrics,
    check_scores,
    ood_set_names,
)
from negprompt.rundir.tokens import check_context_tokens

# --------------------------------------------------------------------------- reading


class Run:
    """A run directory opened for reading; parts load lazily on first access and are cached.

    Opening checks what every reader relies on (folder, ``config.json`` and its types, format
    version, presence of metrics and scores, and that ``image_features.npy`` holds floats, one row
    per scores row, at most `MAX_FEATURE_WIDTH` wide) and raises `RunDirError` naming the problem.
    Every part is read through `file`: a file whose real path (after symlinks) lies outside the run
    directory is refused, and so is anything but a regular file (a FIFO, a device); text read whole
    has a size limit (`negprompt.rundir.files.TEXT_LIMITS`). Each part is validated on first
    access (columns, types, finite values, metrics in [0, 1], rows and class counts agreeing
    between files), and any failure (truncated, empty, not the format it claims, breaking a rule)
    becomes a `RunDirError` naming that file and the rule.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(path)))
        if not self.path.is_dir():
            raise RunDirError(f"no run directory at {self.path}")
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            raise RunDirError(f"{self.path} is not a run directory: it has no {CONFIG_FILE}")
        try:
            config = json.loads(read_text(self.file(CONFIG_FILE), TEXT_LIMITS[CONFIG_FILE], config_path))
        except RunDirError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{config_path} is corrupt (not valid JSON: {err})", file=config_path) from err
        check_config(config, str(config_path))
        self.config: dict = config
        for name in (METRICS_FILE, SCORES_FILE):
            if not (self.path / name).is_file():
                raise RunDirError(f"run {self.path} is incomplete: {name} is missing")
        n_rows = self._n_scores_rows()
        if self._exists(IMAGE_FEATURES_FILE):
            feats = self._load_npy(mmap_mode="r")
            shown = self.path / IMAGE_FEATURES_FILE
            if feats.ndim != 2 or feats.shape[0] != n_rows:
                raise RunDirError(
                    f"run {self.path}: {IMAGE_FEATURES_FILE} has shape {feats.shape}, but {SCORES_FILE} has "
                    f"{n_rows} rows; features and scores must align row by row",
                    file=shown,
                    rule="rows match scores",
                )
            if not np.issubdtype(feats.dtype, np.floating) or not 0 < feats.shape[1] <= MAX_FEATURE_WIDTH:
                raise RunDirError(
                    f"{shown} claims {feats.shape[0]} × {feats.shape[1]} values of type {feats.dtype}; "
                    f"features are floats at most {MAX_FEATURE_WIDTH} wide: the file is damaged, "
                    "write the run again",
                    file=shown,
                    rule="feature width",
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
        shown = self.path / name
        try:
            check_regular(file, shown)
            return reader(file)
        except RunDirError as err:
            if err.file is not None and str(shown) in str(err):
                raise
            raise RunDirError(f"{shown}: {err}", file=shown, rule=err.rule) from None
        except Exception as err:  # EOFError, BadZipFile, pyarrow errors, …: all mean a damaged file
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise RunDirError(f"{shown} is corrupt ({detail}); write the run again", file=shown) from err

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

    @property
    def class_names(self) -> list[str]:
        """The ID class names (``config.data.class_names``; [] when the run records none)."""
        return list((self.config.get("data") or {}).get("class_names") or [])

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: one row per (method, score, dataset), checked against the scores.

        Raises `RunDirError` when the file is truncated (it does not end with a line break, or a row
        has fewer fields than the header), a value is not a fraction in [0, 1] (interval columns
        ``*_low`` / ``*_high`` included), a key is empty or repeated, or rows that the score columns
        need (one per OOD set and ``mean``) are missing.
        """
        shown = self.path / METRICS_FILE
        scores = self.scores  # damage of the scores is named as theirs, not as the metrics'

        def read(file: Path) -> pd.DataFrame:
            text = read_text(file, TEXT_LIMITS[METRICS_FILE], shown)
            if not text.endswith("\n"):
                raise RunDirError(
                    f"{shown} is truncated (it does not end with a complete row); write the run again",
                    file=shown,
                    rule="complete rows",
                )
            rows = list(csv.reader(io.StringIO(text)))
            short = [i for i, row in enumerate(rows[1:], start=2) if len(row) != len(rows[0])]
            if short:
                raise RunDirError(
                    f"{shown}: line {short[0]} has {len(rows[short[0] - 1])} fields, the header "
                    f"{len(rows[0])} (a row was cut); write the run again",
                    file=shown,
                    rule="complete rows",
                )
            frame = pd.read_csv(
                io.StringIO(text),
                keep_default_na=False,
                na_values={c: ["", "nan", "NaN"] for c in METRIC_VALUES},
                dtype={c: str for c in METRICS_COLUMNS[:3]},
            )
            missing = [c for c in METRICS_COLUMNS if c not in frame.columns]
            if missing:
                raise RunDirError(f"{shown} lacks column(s) {missing}", file=shown, rule="columns")
            keys = frame[list(METRICS_COLUMNS[:3])]
            if (keys.isna() | (keys == "")).any(axis=None):
                raise RunDirError(
                    f"{shown} has rows without method, score or dataset (truncated?); write the run again",
                    file=shown,
                    rule="complete rows",
                )
            check_metrics(frame)
            pairs = [tuple(c.split("/", 1)) for c in scores.columns if SCORE_COLUMN.match(c)]
            check_metric_rows(frame, pairs, ood_set_names(scores))
            return frame

        return self._read(METRICS_FILE, read)

    @cached_property
    def scores(self) -> pd.DataFrame:
        """``scores.parquet``: one row per evaluated image, ID images first.

        Checked on read like on write (required columns, split, labels, numeric and finite scores),
        and class indices against ``config.data.class_names``.
        """

        def read(file: Path) -> pd.DataFrame:
            frame = pd.read_parquet(file)
            check_scores(frame)
            check_labels(frame, self.class_names)
            return frame

        return self._read(SCORES_FILE, read)

    @cached_property
    def validation_scores(self) -> pd.DataFrame | None:
        """``validation_scores.parquet``: the ID validation images' scores, or None (runs without
        validation images, and runs written before it was recorded)."""
        if not self._exists(VALIDATION_SCORES_FILE):
            return None
        return self._read(VALIDATION_SCORES_FILE, pd.read_parquet)

    @cached_property
    def image_features(self) -> np.ndarray | None:
        """[N, D] float image features, memory-mapped read-only, or None if the run has none.

        Checked on first access: finite values only, and the width D of the text features.
        """
        if not self._exists(IMAGE_FEATURES_FILE):
            return None
        feats = self._load_npy(mmap_mode="r")
        shown = self.path / IMAGE_FEATURES_FILE
        step = max(1, (8 << 20) // max(1, feats.shape[1] * feats.itemsize))
        for start in range(0, feats.shape[0], step):  # 8 MB at a time: memory stays flat
            block = np.asarray(feats[start : start + step], dtype=np.float32)
            if not np.isfinite(block).all():
                raise RunDirError(
                    f"{shown} holds NaN or infinite values (from row {start}); every image feature must "
                    "be finite: write the run again",
                    file=shown,
                    rule="finite values",
                )
        widths = {v.shape[-1] for v in self.text_features.values()}
        if widths and widths != {feats.shape[1]}:
            raise RunDirError(
                f"{shown} is {feats.shape[1]} wide, but {TEXT_FEATURES_FILE} is {sorted(widths)[0]} wide; "
                "image and text features of a run share one width",
                file=shown,
                rule="widths agree",
            )
        return feats

    @cached_property
    def text_features(self) -> dict[str, np.ndarray]:
        """``{"<method>.pos": [C, D], "<method>.neg": [C, M, D]}`` (empty if the run has none).

        Checked like on write (keys, shapes, one width, finite values) and C against the class names.
        """
        if not self._exists(TEXT_FEATURES_FILE):
            return {}

        n = len(self.class_names)
        labels = self.scores["label"].to_numpy() if not n else np.empty(0, dtype=np.int64)
        top = int(labels.max()) if labels.size else -1  # without class names: the largest ID label

        def read(file: Path) -> dict[str, np.ndarray]:
            with np.load(file, allow_pickle=False) as npz:
                texts = {key: npz[key] for key in npz.files}
            _, texts = check_arrays(None, texts, 0)
            counts = {arr.shape[0] for arr in texts.values()}
            if len(counts) > 1:
                raise RunDirError(
                    f"the methods' text features hold different class counts {sorted(counts)}; one run "
                    "has one list of classes",
                    rule="class counts agree",
                )
            for key, arr in texts.items():
                if (n and arr.shape[0] != n) or arr.shape[0] <= top:
                    have = f"{n} class names (config data.class_names)" if n else f"ID labels up to {top}"
                    raise RunDirError(
                        f"text_features[{key!r}] holds {arr.shape[0]} classes, but the run has {have}",
                        rule="class counts agree",
                    )
            return texts

        return self._read(TEXT_FEATURES_FILE, read)

    def text_features_of(self, method: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(pos [C, D], neg [C, M, D] or None)`` of one method."""
        if f"{method}.pos" not in self.text_features:
            raise RunDirError(f"run {self.name} has no text features of method {method!r}")
        return self.text_features[f"{method}.pos"], self.text_features.get(f"{method}.neg")

    @cached_property
    def context_tokens(self) -> dict:
        """``context_tokens.json``: nearest vocabulary tokens of each learned context vector ({} if none).

        The structure is checked (`negprompt.rundir.tokens.check_context_tokens`).
        """
        if not self._exists(CONTEXT_TOKENS_FILE):
            return {}

        def read(file: Path) -> dict:
            tokens = json.loads(
                read_text(file, TEXT_LIMITS[CONTEXT_TOKENS_FILE], self.path / CONTEXT_TOKENS_FILE)
            )
            check_context_tokens(tokens)
            return tokens

        return self._read(CONTEXT_TOKENS_FILE, read)

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
        """The text of ``log.txt`` ('' if absent); of a long log only its last `LOG_TAIL` bytes."""
        if not self._exists(LOG_FILE):
            return ""
        text, skipped = self._read(LOG_FILE, lambda f: read_tail(f, LOG_TAIL, self.path / LOG_FILE))
        if skipped:
            text = (
                f"[… {skipped / (1 << 20):.1f} MiB left out: the log's last {LOG_TAIL >> 20} MiB follow]\n"
                + text
            )
        return text

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
