"""The assets of mini-world v2: where each comes from, its licence, its checksum, and how it is fetched.

Debian packages provide the concept list, two artists and the opt-in clip art (installed with
``apt-get``); the npm
registry provides the others as package tarballs, which :func:`prepare` downloads once into the data
cache (``$NEGPROMPT_DATA`` or ``~/.cache/negprompt/data``, folder ``miniworld-v2``), checks against
the SHA-256 recorded here, and unpacks. After that everything works offline.

A download goes to ``<file>.partial`` and continues from its end with an HTTP ``Range`` request when
it was cut off; the finished file is checked and then renamed into place, so a cached tarball is
always whole. Unpacking writes a temporary folder and renames it, keeping only regular files under
the asset's folder (no links, no ``..``), so a hostile tarball cannot write elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from negprompt.io import file_lock

from .sources import MiniWorldDataError

DATA_ENV = "NEGPROMPT_DATA"
WORLD = "miniworld-v2"
PREPARE_COMMAND = "negprompt data prepare miniworld-v2"
CHUNK = 1 << 20


@dataclass(frozen=True)
class DebianAsset:
    """A file (or, with ``folder``, a folder) that a Debian package installs."""

    name: str
    package: str
    path: str
    licence: str
    folder: bool = False

    def installed(self) -> bool:
        """Whether the file (or folder) is there."""
        p = Path(self.path)
        return p.is_dir() if self.folder else p.is_file()

    def require(self) -> Path:
        """The path; MiniWorldDataError naming the package and its install command when missing."""
        p = Path(self.path)
        if not self.installed():
            raise MiniWorldDataError(
                f"{self.name}: {p} is missing; install it with `sudo apt-get install {self.package}`"
            )
        return p


@dataclass(frozen=True)
class NpmAsset:
    """A folder of an npm package's tarball.

    Attributes:
        name: the asset's name in the cache (``twemoji``).
        package, version: the npm package.
        sha256: SHA-256 of the tarball; size: its length in bytes.
        member: folder inside the tarball that is kept (``package/img/twitter/64``).
        licence: the licence of what is kept.
    """

    name: str
    package: str
    version: str
    sha256: str
    size: int
    member: str
    licence: str

    @property
    def url(self) -> str:
        """The tarball's URL on the npm registry."""
        base = self.package.rsplit("/", 1)[-1]
        return f"https://registry.npmjs.org/{self.package}/-/{base}-{self.version}.tgz"

    @property
    def tarball(self) -> str:
        """The tarball's file name in the cache."""
        return f"{self.package.replace('/', '+')}-{self.version}.tgz"

    @property
    def folder(self) -> str:
        """The unpacked folder's name in the cache."""
        return f"{self.name}-{self.version}"


DEBIAN: dict[str, DebianAsset] = {
    "emoji-test": DebianAsset(
        "emoji list", "unicode-data", "/usr/share/unicode/emoji/emoji-test.txt", "Unicode License v3"
    ),
    "noto": DebianAsset(
        "Noto Color Emoji font",
        "fonts-noto-color-emoji",
        "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
        "SIL Open Font License 1.1 (Google)",
    ),
    "symbola": DebianAsset(
        "Symbola font",
        "fonts-symbola",
        "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
        "free for any use (George Douros)",
    ),
    "wordnet": DebianAsset(
        "WordNet 3.0", "wordnet-base", "/usr/share/wordnet/data.noun", "WordNet 3.0 licence"
    ),
    "openclipart": DebianAsset(
        "Open Clip Art Library drawings",
        "openclipart-svg",
        "/usr/share/openclipart/svg",
        "public domain (Open Clip Art Library contributors)",
        folder=True,
    ),
}
BENCHMARK_DEBIAN = ("emoji-test", "noto", "symbola")
"""The Debian assets that writing v2's benchmark folders reads (WordNet words only pretraining captions)."""
OPT_IN_DEBIAN = ("openclipart",)
"""The Debian assets only a pretraining recipe that asks for them reads (clip art)."""


def missing_debian(keys: tuple[str, ...] | None = None) -> str | None:
    """None when the Debian assets ``keys`` (default: all but :data:`OPT_IN_DEBIAN`) are installed;
    else what is missing and the command that installs it."""
    keys = keys or tuple(k for k in DEBIAN if k not in OPT_IN_DEBIAN)
    missing = [DEBIAN[k] for k in keys if not DEBIAN[k].installed()]
    if not missing:
        return None
    return (
        ", ".join(f"{a.package} ({a.path})" for a in missing)
        + f"; install them with `sudo apt-get install {' '.join(a.package for a in missing)}`"
    )


NPM: dict[str, NpmAsset] = {
    "twemoji": NpmAsset(
        "twemoji",
        "emoji-datasource-twitter",
        "16.0.0",
        "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
        61_683_754,
        "package/img/twitter/64",
        "Twemoji graphics CC-BY 4.0 (Twitter, Inc. and contributors); emoji-datasource MIT",
    ),
}


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The world's cache folder: ``path``, else ``$NEGPROMPT_DATA/miniworld-v2``, else
    ``~/.cache/negprompt/data/miniworld-v2``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "negprompt" / "data"
    return base / WORLD


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str, dest: Path, sha256: str, size: int | None = None, progress: Callable[[int], None] | None = None
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.partial``; check SHA-256, then rename into place.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        dest: final path (its folder is created).
        sha256: the expected hex digest; size: expected length (optional).
        progress: called with the number of bytes of each chunk written.

    Raises:
        MiniWorldDataError: network error (the partial file is kept for the next try), or a wrong
            checksum (the partial file is deleted).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".partial")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size:
        request = urllib.request.Request(url)
        if have and not url.startswith("file:"):
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status = getattr(response, "status", None) or 200
                if have and status != 206:  # the server ignored the range: start again
                    have = 0
                with open(part, "ab" if have else "wb") as f:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise MiniWorldDataError(
                f"downloading {url} failed ({exc}); run `{PREPARE_COMMAND}` again to resume "
                f"({part.stat().st_size if part.exists() else 0} bytes kept in {part})"
            ) from exc
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink()
        raise MiniWorldDataError(
            f"{url} does not match its recorded SHA-256 (got {digest}, expected {sha256}); the download "
            f"was deleted; run `{PREPARE_COMMAND}` to fetch it again"
        )
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    return dest


def unpack(tarball: Path, member: str, dest: Path) -> Path:
    """Unpack the regular files directly under ``member`` of ``tarball`` into ``dest`` (atomic rename).

    Raises:
        MiniWorldDataError: the tarball cannot be read or holds no file under ``member``.
    """
    prefix = member.rstrip("/") + "/"
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    count = 0
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for info in tar:
                if not info.isreg() or not info.name.startswith(prefix):
                    continue
                base = info.name[len(prefix) :]
                if "/" in base or base in ("", ".", "..") or base.startswith("."):
                    continue
                src = tar.extractfile(info)
                if src is None:
                    continue
                with open(tmp / base, "wb") as out:
                    shutil.copyfileobj(src, out)
                count += 1
        if count == 0:
            raise MiniWorldDataError(
                f"{tarball} holds no file under {member}; delete it and run `{PREPARE_COMMAND}`"
            )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise MiniWorldDataError(
            f"{tarball} cannot be unpacked ({type(exc).__name__}: {exc}); delete it and run `{PREPARE_COMMAND}`"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def prepare_npm(
    asset: NpmAsset,
    root: Path | None = None,
    url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Download (or resume), check and unpack one npm asset; a no-op when its folder is complete.

    Returns the unpacked folder. ``url`` replaces the registry's address (a mirror, or a test server).
    """
    root = data_root(root)
    folder = root / asset.folder
    if (folder / ".complete").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{asset.folder}.lock"):  # two runs preparing at once: one downloads
        if (folder / ".complete").is_file():
            return folder
        return _fetch_and_unpack(asset, root, folder, url, progress)


def _fetch_and_unpack(asset: NpmAsset, root: Path, folder: Path, url: str | None, progress) -> Path:
    tarball = root / asset.tarball
    if not tarball.is_file() or sha256_file(tarball) != asset.sha256:
        if tarball.exists():
            tarball.unlink()
        download(url or asset.url, tarball, asset.sha256, asset.size, progress)
    unpack(tarball, asset.member, folder)
    (folder / ".complete").write_text(f"{asset.package} {asset.version} {asset.sha256}\n", encoding="utf-8")
    return folder


def npm_folder(asset: NpmAsset, root: Path | None = None) -> Path:
    """The unpacked folder of a prepared npm asset.

    Raises:
        MiniWorldDataError: it is not prepared (naming the package and the command that prepares it).
    """
    folder = data_root(root) / asset.folder
    if not (folder / ".complete").is_file():
        raise MiniWorldDataError(
            f"{asset.name} images (npm {asset.package} {asset.version}) are not in {folder}; "
            f"run `{PREPARE_COMMAND}` once (it needs the npm registry; afterwards everything is offline)"
        )
    return folder


def licences() -> dict[str, str]:
    """Every asset's source and licence, for the model card and the data command."""
    out = {k: f"Debian {a.package}: {a.licence}" for k, a in DEBIAN.items()}
    out |= {k: f"npm {a.package} {a.version}: {a.licence}" for k, a in NPM.items()}
    return out
