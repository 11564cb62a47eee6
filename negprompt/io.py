"""Safe file handling shared by every writer and reader: atomic writes, locks, confinement, cleanup.

- `atomic_write` writes a file through a unique temporary name beside it and ``os.replace`` at the
  end: a reader sees the old file or the new one, never half of one; the file gets the mode the
  umask allows (``0o666 & ~umask``), like a file opened with ``open(path, "w")``.
- `temp_name` names every temporary file or folder ``.<name>.tmp-<pid>@<host>-<random>``, so that
  `clean_stale_temps` can later remove the ones whose process has died (same host) or that are
  older than a day (another host, or an older naming).
- `file_lock` serialises processes that build the same thing (``fcntl.flock``; a no-op where the
  platform has none: the unique names and the atomic publish still keep every file whole).
- `confined` resolves a path (symlinks, ``..``) and refuses one that leaves its base folder.
- `os_error_message` turns an `OSError` into one line naming the path and what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"
STALE_AFTER_S = 24 * 3600.0
"""A temporary file of another host (or of an unknown process) counts as stale after a day."""

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TMP_RE = re.compile(
    r"^\.(?P<name>.+?)(?:\.tmp-(?:(?P<pid>\d+)@(?P<host>[0-9a-f]{6})-)?[0-9a-f]+"  # temp_name, write_run
    r"|-[A-Za-z0-9_]{8}\.tmp)$"  # older versions: tempfile.mkstemp(prefix=".<name>-", suffix=".tmp")
)


class OutsideError(ValueError):
    """A path that resolves outside the folder it must stay in."""


# --------------------------------------------------------------------------- temporary names


def temp_name(path: str | os.PathLike) -> Path:
    """A fresh temporary path beside ``path``: ``.<name>.tmp-<pid>@<host>-<random>``."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}@{_HOST}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(path: str | os.PathLike, now: float | None = None) -> bool:
    """True for a temporary file or folder (`temp_name`) that no live writer can still finish.

    Stale: its process is gone (same host), or it is older than `STALE_AFTER_S` (another host, or a
    name without a process id, as older versions wrote).
    """
    path = Path(path)
    match = _TMP_RE.match(path.name)
    if not match:
        return False
    if match["pid"] and match["host"] == _HOST:
        return not _pid_alive(int(match["pid"]))
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


def clean_stale_temps(folder: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Remove stale temporary files and folders directly in ``folder`` (names ``.<prefix>…``).

    Returns what was removed; anything that cannot be removed is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith("." + prefix) or not is_stale(entry.path):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------- atomic writes


def atomic_write(
    path: str | os.PathLike, data: bytes | str | Callable[[Path], object], *, fsync: bool = False
) -> Path:
    """Write ``path`` atomically: a temporary file beside it, then ``os.replace``.

    Args:
        path: the file to write; its folder must exist.
        data: bytes, text (UTF-8), or a function that writes the temporary file given its path.
        fsync: flush the file to disk before the rename (checkpoints).

    The file is created with mode ``0o666`` minus the umask (never the ``0o600`` of ``mkstemp``).
    On any error the temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            if not callable(data):
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if callable(data):
            data(tmp)
            os.chmod(tmp, 0o666 & ~current_umask())  # the writer may have re-created it (0o600)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where it can be, else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_dir(tmp: str | os.PathLike, final: str | os.PathLike, *, keep: bool = False) -> bool:
    """Rename the finished folder ``tmp`` to ``final`` unless ``final`` exists; True if published.

    When another writer published ``final`` first, False is returned and the existing folder is
    never replaced; ``tmp`` is removed, or kept with ``keep`` (to publish it under another name).
    """
    tmp, final = Path(tmp), Path(final)
    if not os.path.lexists(final):
        try:
            os.rename(tmp, final)
            return True
        except OSError:
            if not os.path.lexists(final):
                raise
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return False


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[int | None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block; yields the locked descriptor.

    ``path`` is a file (created if needed) or an existing folder. A folder may be renamed while it is
    locked (a build folder published under its final name): check with `still_at` after the lock
    is granted. Yields None, locking nothing, where the platform has no ``flock``.
    """
    try:
        import fcntl
    except ImportError:  # no flock on this platform: unique names keep files whole anyway
        yield None
        return
    if os.path.isdir(path):
        fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def still_at(path: str | os.PathLike, fd: int | None) -> bool:
    """True when ``path`` still names the file or folder open as ``fd`` (None: cannot tell, True)."""
    if fd is None:
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- checks


def confined(base: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The real path of ``path`` (relative to ``base`` when relative), only if it stays inside ``base``.

    Symlinks and ``..`` are resolved on both sides first.

    Raises:
        OutsideError: the path resolves outside ``base`` (e.g. a symlink to ``/etc/passwd``).
    """
    root = Path(base).resolve()
    full = (root / path).resolve()
    if not full.is_relative_to(root):
        raise OutsideError(f"{Path(base) / path} points outside {root} (to {full}); it is not read")
    return full


def check_writable(folder: str | os.PathLike) -> Path:
    """Check that files can be created in ``folder`` (or, if it does not exist yet, where it would be
    created); returns the folder checked. Writes and removes one small temporary file.

    Raises:
        OSError: with the folder as its file name (see `os_error_message`).
    """
    folder = Path(os.path.abspath(os.path.expanduser(folder)))
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(probe))
    tmp = temp_name(probe / "write-check")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileNotFoundError:  # the folder exists, yet creating a file in it says "no such file"
        raise PermissionError(
            errno.EPERM,
            "the folder exists but its file system refuses new files (a virtual file system such as "
            "/proc or /sys)",
            str(probe),
        ) from None
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(probe)) from None
    tmp.unlink(missing_ok=True)
    return probe


_FIXES = {
    errno.EACCES: "check its permissions, or choose another location",
    errno.EPERM: "check its permissions, or choose another location",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOSPC: "the disk is full; free some space or choose another location "
    "(the feature cache: --cache-dir or $NEGPROMPT_CACHE)",
    errno.EDQUOT: "the disk quota is exceeded; free some space or choose another location",
    errno.ELOOP: "a symbolic link points back into itself; remove or fix that link",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "it is a folder; give a file",
    errno.EEXIST: "it exists already; choose another name or remove it",
    errno.EIO: "an input/output error of the device; check the disk or the network file system",
}


def os_error_message(err: OSError) -> str:
    """One line for an `OSError`: what failed, on which path, and what to do."""
    where = err.filename if err.filename is not None else ""
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    reason = err.strerror or str(err)
    fix = _FIXES.get(err.errno or 0)
    text = f"{where}: {reason}" if where else reason
    if err.strerror is None and str(err) != reason:
        text = str(err)
    return text + (f" ({fix})" if fix else "")
