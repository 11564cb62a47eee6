"""Write and read run directories: the contract between experiments and everything that shows results.

A run directory (layout in ``docs/run-directory.md``) holds one experiment's config, metrics, per-image
scores, features and learned prompts. `write_run` validates the parts and writes them atomically (a
temporary folder beside the target, renamed at the end); `load_run` opens one lazily; `find_runs`
lists them; `resolve_image_path` maps an image path of a run to a file inside the run's data roots.
`negprompt.synthetic.synthetic_run` writes a small random run with real images, for demos and tests.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import secrets
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt.metrics import FPR_CONVENTION

__all__ = [
    "FORMAT_VERSION",
    "METRICS_COLUMNS",
    "SCORES_COLUMNS",
    "Run",
    "RunDirError",
    "RunExistsError",
    "find_runs",
    "free_run_path",
    "load_run",
    "resolve_image_path",
    "software_versions",
    "write_run",
]

FORMAT_VERSION = 1
"""Version of the run-directory layout written by this module (``config.json``'s ``format``)."""

CONFIG_FILE, METRICS_FILE, SCORES_FILE = "config.json", "metrics.csv", "scores.parquet"
IMAGE_FEATURES_FILE, TEXT_FEATURES_FILE = "image_features.npy", "text_features.npz"
CONTEXT_TOKENS_FILE, LOG_FILE, PROMPTS_DIR = "context_tokens.json", "log.txt", "prompts"

METRICS_COLUMNS = ("method", "score", "dataset", "fpr95", "auroc", "aupr_in", "aupr_out", "id_acc")
"""Required columns of ``metrics.csv``, in order; the last five are fractions in [0, 1] or empty."""
_METRIC_VALUES = METRICS_COLUMNS[3:]

SCORES_COLUMNS = ("dataset", "split", "path", "label", "label_name")
"""Required columns of ``scores.parquet``; ``pred.<method>`` and ``<method>/<score>`` columns follow."""

_NAME = r"[A-Za-z0-9_+-]+"
_SCORE_COLUMN = re.compile(rf"^({_NAME})/({_NAME})$")
_PRED_COLUMN = re.compile(rf"^pred\.({_NAME})$")
_TEXT_KEY = re.compile(rf"^({_NAME})\.(pos|neg)$")
_TMP_MARK = ".tmp-"
_CONFIG_ORDER = ("format", "kind", "name", "created", "software", "backbone", "data", "methods", "scores")


class RunDirError(ValueError):
    """A run directory, or the parts given to write one, break the run-directory contract."""


class RunExistsError(RunDirError, FileExistsError):
    """The target of `write_run` exists already; run directories are never overwritten."""


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


def _json_default(obj: object) -> object:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _to_json(obj: object, what: str) -> str:
    try:
        return json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise RunDirError(f"{what} cannot be written as JSON: {err}") from err


def _check_config(config: object, where: str) -> None:
    """The keys every reader relies on: format, kind, backbone.random_weights, data.roots."""
    if not isinstance(config, Mapping):
        raise RunDirError(f"{where}: the config must be a JSON object, got {type(config).__name__}")
    fmt = config.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise RunDirError(
            f"{where}: run-directory format {fmt!r}, but this negprompt reads format {FORMAT_VERSION}; "
            "use the negprompt version that wrote the run"
        )
    if not isinstance(config.get("kind"), str) or not config["kind"]:
        raise RunDirError(f"{where}: config needs 'kind' (e.g. 'zeroshot', 'conventional', 'demo')")
    backbone = config.get("backbone")
    if not isinstance(backbone, Mapping) or not isinstance(backbone.get("random_weights"), bool):
        raise RunDirError(f"{where}: config needs 'backbone': {{'random_weights': true | false, …}}")
    data = config.get("data")
    roots = data.get("roots") if isinstance(data, Mapping) else None
    if not isinstance(roots, list | tuple) or not all(isinstance(r, str | os.PathLike) for r in roots):
        raise RunDirError(f"{where}: config needs 'data': {{'roots': [data root paths], …}}")


# --------------------------------------------------------------------------- validation of the parts


def _check_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(metrics, pd.DataFrame):
        raise RunDirError(f"metrics must be a pandas DataFrame, got {type(metrics).__name__}")
    missing = [c for c in METRICS_COLUMNS if c not in metrics.columns]
    if missing:
        raise RunDirError(f"metrics lacks column(s) {missing}; required: {list(METRICS_COLUMNS)}")
    for col in METRICS_COLUMNS[:3]:
        if metrics[col].isna().any():
            raise RunDirError(f"metrics column {col!r} has empty values")
    for col in _METRIC_VALUES:
        values = pd.to_numeric(metrics[col], errors="coerce")
        bad = metrics[col].notna() & ~values.between(0.0, 1.0)
        if bad.any():
            raise RunDirError(
                f"metrics column {col!r} must hold fractions in [0, 1], got {metrics[col][bad].tolist()[:3]}"
            )
    extra = [c for c in metrics.columns if c not in METRICS_COLUMNS]
    return metrics[[*METRICS_COLUMNS, *extra]].reset_index(drop=True)


def _check_scores(scores: pd.DataFrame) -> list[tuple[str, str]]:
    """Validate scores.parquet's frame; return its (method, score) columns."""
    if not isinstance(scores, pd.DataFrame):
        raise RunDirError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    missing = [c for c in SCORES_COLUMNS if c not in scores.columns]
    if missing:
        raise RunDirError(f"scores lacks column(s) {missing}; required: {list(SCORES_COLUMNS)}")
    split = scores["split"]
    if not split.isin(["id", "ood"]).all():
        raise RunDirError(
            f"scores 'split' must be 'id' or 'ood', got {sorted(set(split) - {'id', 'ood'})[:5]}"
        )
    is_ood = (split == "ood").to_numpy()
    if (np.maximum.accumulate(is_ood) & ~is_ood).any():
        raise RunDirError(
            "scores must list ID images first: sort the rows so every 'id' row precedes 'ood' rows"
        )
    if not pd.api.types.is_integer_dtype(scores["label"]):
        raise RunDirError(f"scores 'label' must be integers, got dtype {scores['label'].dtype}")
    labels = scores["label"].to_numpy()
    if (labels[is_ood] != -1).any() or (labels[~is_ood] < 0).any():
        raise RunDirError("scores 'label' must be -1 on OOD rows and a class index >= 0 on ID rows")
    pairs = []
    for col in scores.columns:
        if _PRED_COLUMN.match(col) and not pd.api.types.is_integer_dtype(scores[col]):
            raise RunDirError(
                f"scores column {col!r} must hold integer class indices, got {scores[col].dtype}"
            )
        if "/" in col:
            match = _SCORE_COLUMN.match(col)
            if not match:
                raise RunDirError(
                    f"score column {col!r} must be named '<method>/<score>' with letters, digits, _+-"
                )
            if not pd.api.types.is_numeric_dtype(scores[col]):
                raise RunDirError(f"score column {col!r} must be numeric, got {scores[col].dtype}")
            pairs.append((match[1], match[2]))
    return pairs


def _check_arrays(
    image_features: np.ndarray | None, text_features: Mapping[str, np.ndarray] | None, n_rows: int
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    width = None
    feats = None
    if image_features is not None:
        feats = np.asarray(image_features)
        if feats.ndim != 2 or feats.shape[0] != n_rows:
            raise RunDirError(
                f"image_features must be [N, D] with N = {n_rows} rows (one per scores row), "
                f"got {feats.shape}"
            )
        feats = feats.astype(np.float16)
        if not np.isfinite(feats).all():
            raise RunDirError("image_features contain NaN or infinite values (after conversion to float16)")
        width = feats.shape[1]
    texts = {}
    for key, value in (text_features or {}).items():
        match = _TEXT_KEY.match(key)
        arr = np.asarray(value, dtype=np.float32)
        if not match or arr.ndim != (2 if match[2] == "pos" else 3):
            raise RunDirError(
                f"text_features[{key!r}]: keys are '<method>.pos' [C, D] or '<method>.neg' [C, M, D], "
                f"got shape {arr.shape}"
            )
        width = arr.shape[-1] if width is None else width
        if arr.shape[-1] != width:
            raise RunDirError(
                f"text_features[{key!r}] has width {arr.shape[-1]}, other features have width {width}"
            )
        texts[key] = arr
    for key, arr in texts.items():
        pos = texts.get(key[: -len("neg")] + "pos")
        if key.endswith(".neg") and (pos is None or pos.shape[0] != arr.shape[0]):
            raise RunDirError(
                f"text_features[{key!r}] needs a matching '.pos' entry with the same {arr.shape[0]} classes"
            )
    return feats, texts


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
) -> Path:
    """Validate the parts of a run and write them as one run directory, atomically.

    Everything is written into ``.<name>.tmp-<random>`` beside ``path`` and renamed to the final name
    at the end; on any error the temporary folder is removed and no folder with the final name appears.

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
        unique: if ``path`` exists, write ``path-2``, ``path-3``, … instead of raising.

    Returns:
        The path of the written run directory.

    Raises:
        RunExistsError: ``path`` exists and ``unique`` is False.
        RunDirError: a part breaks the contract (the message names it).
    """
    path = Path(os.path.abspath(os.path.expanduser(path)))
    _check_config(config, "config")
    metrics = _check_metrics(metrics)
    pairs = _check_scores(scores)
    feats, texts = _check_arrays(image_features, text_features, len(scores))
    prompts = {}
    for method, files in (prompt_files or {}).items():
        if not re.fullmatch(_NAME, method) or len(files) != 2 or not all(Path(f).is_file() for f in files):
            raise RunDirError(
                f"prompt_files[{method!r}] must be (existing .safetensors file, existing .json file)"
            )
        prompts[method] = tuple(Path(f) for f in files)
    context_json = None if context_tokens is None else _to_json(context_tokens, "context_tokens")

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
    while True:
        tmp = path.parent / f".{path.name}{_TMP_MARK}{secrets.token_hex(4)}"
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
        for _attempt in range(100):
            if auto_name:
                cfg["name"] = final.name
            ordered = {k: cfg[k] for k in _CONFIG_ORDER if k in cfg} | cfg
            (tmp / CONFIG_FILE).write_text(_to_json(ordered, "config"), encoding="utf-8")
            if not os.path.lexists(final):
                try:
                    os.rename(tmp, final)
                    return final
                except OSError:
                    if not os.path.lexists(final):
                        raise
            final = free_run_path(path, unique)  # taken by another writer meanwhile: never replace it
        raise RunExistsError(f"found no free name for run directory {path} after 100 attempts")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        _check_config(config, str(config_path))
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

        return [c for c in pq.read_schema(self.path / SCORES_FILE).names if _SCORE_COLUMN.match(c)]

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: one row per (method, score, dataset)."""
        try:
            frame = pd.read_csv(
                self.path / METRICS_FILE,
                keep_default_na=False,
                na_values={c: ["", "nan", "NaN"] for c in _METRIC_VALUES},
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
