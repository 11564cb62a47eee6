"""Finding run directories under a folder, and mapping a run's image paths to files it may show."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from negprompt.rundir.files import TEXT_LIMITS, read_text
from negprompt.rundir.read import Run, load_run
from negprompt.rundir.schema import CONFIG_FILE, RunDirError


def _created(run_dir: Path) -> float:
    try:
        created = json.loads(read_text(run_dir / CONFIG_FILE, TEXT_LIMITS[CONFIG_FILE]))["created"]
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


def resolve_image_path(
    run: Run | str | os.PathLike,
    path: str | os.PathLike,
    allowed: Sequence[str | os.PathLike] | None = None,
) -> Path:
    """The real path of an image of ``run``, only if it is a file inside one of the run's data roots
    and, when ``allowed`` is given, inside one of those folders too.

    Symlinks and ``..`` in the image path, the roots and ``allowed`` are resolved before the check, so
    no path can escape them. A relative ``path`` is taken relative to each root in turn. ``allowed``
    is how a reader limits what runs may show: a run's roots (its own ``config.json``) narrow it but
    cannot widen it.

    Raises:
        RunDirError: the run records no data roots, the path lies outside them or outside
            ``allowed``, or no file is there.
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
            f"{path} lies outside the data roots of run {run.name} ({', '.join(map(str, roots))})",
            rule="inside the data roots",
        )
    if allowed is not None:
        folders = [Path(os.path.expanduser(a)).resolve() for a in allowed]
        inside = [c for c in inside if any(c.is_relative_to(f) for f in folders)]
        if not inside:
            raise RunDirError(
                f"{path} lies outside the folders images are served from "
                f"({', '.join(map(str, folders)) or 'none'}); allow its folder with "
                "`negprompt app --images FOLDER` (or $NEGPROMPT_IMAGE_DIRS)",
                rule="inside the allowed folders",
            )
    for candidate in inside:
        if candidate.is_file():
            return candidate
    raise RunDirError(f"no image file at {path} (inside the data roots of run {run.name})")
