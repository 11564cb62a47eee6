"""Write arrays as a folder of PNG files, atomically and idempotently.

A written folder carries ``MANIFEST.json``: a source key (what the pixels came from) and the sha256
of every file. `ensure_png_tree` reuses a folder whose manifest has the expected key and whose files
are exactly those listed, byte for byte; otherwise it writes the whole folder under a temporary name
beside its final place and swaps it in by renaming, so a folder with the final name is always whole.
Processes that need the same folder at once take turns (a lock file beside it): one writes it, the
others find it complete and read it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from negprompt.io import file_lock
from negprompt.progress import tqdm

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 image, [H, W] (gray) or [H, W, 3] (RGB), as PNG bytes."""
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _listing(folder: Path) -> set[str]:
    out = set()
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden entries are never read as images
        rel = os.path.relpath(dirpath, folder)
        for f in files:
            if f.startswith("."):
                continue
            out.add(f if rel == "." else f"{Path(rel).as_posix()}/{f}")
    out.discard(MANIFEST)
    return out


def _manifest_files(folder: Path, source_key: str) -> dict | None:
    """The manifest's ``files`` when it was written for ``source_key`` (None otherwise or unreadable)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    files = manifest.get("files")
    if manifest.get("source") != source_key or not isinstance(files, dict) or not files:
        return None
    return files


def tree_is_written(folder: str | os.PathLike, source_key: str) -> bool:
    """True when ``folder`` carries a manifest for ``source_key``: a cheap check, not a verification
    (`ensure_png_tree` verifies every file when the folder is used, and rewrites a damaged one)."""
    return _manifest_files(Path(folder), source_key) is not None


def tree_is_complete(folder: Path, source_key: str) -> bool:
    """True when ``folder`` holds exactly the files of its manifest, unchanged, for ``source_key``."""
    files = _manifest_files(folder, source_key)
    if files is None:
        return False
    if _listing(folder) != set(files):
        return False
    for rel, digest in files.items():
        try:
            if hashlib.sha256((folder / rel).read_bytes()).hexdigest() != digest:
                return False
        except OSError:
            return False
    return True


def ensure_png_tree(
    folder: str | os.PathLike,
    source_key: str,
    items: Callable[[], Iterable[tuple[str, np.ndarray]]],
    *,
    desc: str = "writing images",
) -> bool:
    """Make ``folder`` hold the PNG files produced by ``items()`` (pairs of relative path, image).

    ``items`` is called only when the folder must be (re)written. Returns True when files were
    written, False when the existing folder was complete and reused.
    """
    dest = Path(folder)
    if tree_is_complete(dest, source_key):
        log.debug("reusing complete image folder %s", dest)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.parent / f".{dest.name}.lock"):
        if tree_is_complete(dest, source_key):  # another process wrote it while this one waited
            log.debug("reusing image folder %s, written by another process", dest)
            return False
        return _write_tree(dest, source_key, items, desc)


def _write_tree(dest: Path, source_key: str, items, desc: str) -> bool:
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        hashes: dict[str, str] = {}
        for rel, image in tqdm(items(), desc=desc, unit="img", leave=False, mininterval=1.0):
            data = png_bytes(image)
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            hashes[rel] = hashlib.sha256(data).hexdigest()
        manifest = {"format": 1, "source": source_key, "files": dict(sorted(hashes.items()))}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=0), encoding="utf-8")
        os.chmod(tmp, 0o755)
        _swap_in(tmp, dest, source_key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d images to %s", len(hashes), dest)
    return True


def _swap_in(tmp: Path, dest: Path, source_key: str) -> None:
    """Rename ``tmp`` to ``dest``, moving an outdated ``dest`` aside first and deleting it after."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.rmdir(old)
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        # Another process finished the same folder first: keep its copy if it is complete.
        if tree_is_complete(dest, source_key):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
