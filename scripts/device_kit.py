#!/usr/bin/env python
"""What a bare GPU machine that reaches no network needs to run this repository's GPU work.

Such a machine usually has Python with torch, numpy, pandas, pillow and safetensors, but neither
open_clip nor the Debian packages mini-world v2 draws from. ``pack`` gathers them here (where the
package registries are reachable) into a folder that travels beside the checkout; ``unpack`` puts
them in place there.

    python scripts/device_kit.py pack --out .devkit                 # wheels only: enough for the GPU check
    python scripts/device_kit.py pack --out .devkit --assets base   # + fonts, emoji list, WordNet nouns
    python scripts/device_kit.py pack --out .devkit --assets all    # + Fashion-MNIST's training split
    python scripts/device_kit.py pack --out .devkit --assets clipart   # clip art only (a recipe with
                                                                      # "clipart": true), + cairosvg

    # there, from the checkout's root:
    python3 scripts/device_kit.py unpack --kit .devkit && export PYTHONPATH=/tmp/devkit-site
    python3 -m benchmarks.gpu_check --out $OUT/results-cuda.json

``pack`` prints the kit's size beside the checkout's tracked files, since both travel together and
the two must stay under the machine's transfer limit (``--limit-mib``, 64). The ``all`` assets with
this repository's tracked files go over 64 MiB: carry ``base`` in one call and Fashion-MNIST in the
next while the machine is still held (what a call leaves there stays for the next one).

``clipart`` packs the clip-art files a recipe with ``"clipart": true`` draws (only those the mapping
chose, about 500 SVG files: :mod:`negprompt.miniworld.clipart` maps that subset as it maps the whole
package) and the wheels of cairosvg; cairosvg also needs Debian's libcairo2 on that machine, which
``unpack`` looks for and names when it is missing.

``unpack`` installs the wheels into a folder of their own (``--site``), never into the system's
Python, and writes each asset to the path it has on Debian (under ``--root``, default ``/``),
checking its SHA-256 against the kit's manifest.
"""

from __future__ import annotations

import argparse
import ctypes.util
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = ("open_clip_torch==3.3.0", "ftfy==6.3.1", "wcwidth==0.9.5")
"""open_clip and what it needs beyond the packages such a machine already has (torch, timm, regex,
huggingface_hub, safetensors, tqdm)."""
CLIPART_WHEELS = ("cairosvg==2.9.1", "cairocffi==1.7.1", "cffi==2.1.1", "pycparser==3.12", "cssselect2==0.10.1",
                  "tinycss2==1.5.1", "defusedxml==0.7.1", "webencodings==0.6.1")  # fmt: skip
"""cairosvg and what it needs, for the ``clipart`` assets."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
ASSETS: dict[str, tuple[str, ...]] = {
    "base": (
        "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
        "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
        "/usr/share/unicode/emoji/emoji-test.txt",
        "/usr/share/wordnet/index.noun",
        "/usr/share/wordnet/data.noun",
    ),
    "fashion": (
        "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
        "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
    ),
}
"""Debian files v2's pretraining reads (`negprompt.miniworld.assets.DEBIAN`, the WordNet reader,
`negprompt.miniworld.sources`), by part; ``clipart`` (:func:`clipart_paths`) is worked out when packed,
and ``all`` is every part."""
PARTS = {"none": (), "base": ("base",), "fashion": ("fashion",), "clipart": ("clipart",),
         "all": ("base", "fashion", "clipart")}  # fmt: skip
MANIFEST = "manifest.json"
COMPRESSED = (".gz", ".ttf")  # already dense: stored as they are


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def clipart_paths() -> tuple[str, ...]:
    """The openclipart-svg files mapped to a concept: what a recipe with clip art draws."""
    sys.path.insert(0, str(REPO))
    from negprompt.miniworld import assets, clipart
    from negprompt.miniworld.emoji import load_hierarchy

    folder = assets.DEBIAN["openclipart"].require()
    return tuple(str(p) for files in clipart.index(load_hierarchy().concepts, folder).values() for p in files)


def _paths(part: str) -> tuple[str, ...]:
    return clipart_paths() if part == "clipart" else ASSETS[part]


def tracked_bytes(repo: Path = REPO) -> int:
    """Bytes of the checkout's tracked files (what travels besides the kit)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    return sum((repo / n).stat().st_size for n in names.decode().split("\0") if n and (repo / n).is_file())


def pack_assets(out: Path, paths: tuple[str, ...], source_root: Path = Path("/")) -> list[dict]:
    """Copy (or xz-compress) each Debian path under ``out/assets``; returns the manifest entries."""
    entries = []
    for path in paths:
        src = source_root / path.lstrip("/")
        if not src.is_file():
            raise SystemExit(f"{src} is missing: install its Debian package here first (see README.md)")
        packed = path.endswith(COMPRESSED)
        dst = out / "assets" / (path.lstrip("/") + ("" if packed else ".xz"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        if packed:
            shutil.copyfile(src, dst)
        else:
            with open(src, "rb") as f, lzma.open(dst, "wb", preset=6) as g:
                shutil.copyfileobj(f, g)
        entries.append({"path": path, "file": str(dst.relative_to(out)), "sha256": _sha256(src),
                        "bytes": src.stat().st_size, "xz": not packed})  # fmt: skip
    return entries


def pack(out: Path, assets: str, limit_mib: float, wheels: bool = True) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    parts = PARTS[assets]
    names = list(WHEELS) + (list(CLIPART_WHEELS) if "clipart" in parts else [])
    if wheels:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", str(out / "wheels")]  # fmt: skip
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        subprocess.run(cmd + names, check=True)
    entries = [e for part in parts for e in pack_assets(out, _paths(part))]
    (out / MANIFEST).write_text(json.dumps({"wheels": names, "assets": entries}, indent=1))
    kit, tree = _size(out), tracked_bytes()
    total = (kit + tree) / 2**20
    print(f"kit {kit / 2**20:.1f} MiB + tracked files {tree / 2**20:.1f} MiB = {total:.1f} MiB "
          f"({'within' if total <= limit_mib else 'OVER'} the {limit_mib:g} MiB a call carries)")  # fmt: skip
    return 0 if total <= limit_mib else 1


def unpack(kit: Path, root: Path, site: Path) -> int:
    """Install the kit's wheels into ``site`` and write its assets under ``root``."""
    manifest_path = kit / MANIFEST
    if not manifest_path.is_file():
        raise SystemExit(f"{manifest_path} is missing: build the kit with `scripts/device_kit.py pack`")
    manifest = json.loads(manifest_path.read_text())
    wheels = sorted((kit / "wheels").glob("*.whl")) if (kit / "wheels").is_dir() else []
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site)]
                       + [str(w) for w in wheels], check=True)  # fmt: skip
        print(f"wheels installed in {site}: export PYTHONPATH={site}")
    for e in manifest["assets"]:
        src, dst = kit / e["file"], root / e["path"].lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        with lzma.open(src, "rb") if e["xz"] else open(src, "rb") as f, open(tmp, "wb") as g:
            shutil.copyfileobj(f, g)
        if _sha256(tmp) != e["sha256"]:
            tmp.unlink()
            raise SystemExit(f"{src} does not match its SHA-256 in {manifest_path}: pack the kit again")
        os.replace(tmp, dst)
        print(f"{dst} ({e['bytes']} bytes)")
    clip_art = any(w.startswith("cairosvg==") for w in manifest["wheels"])
    if clip_art and ctypes.util.find_library("cairo") is None:
        print("clip art needs Debian's libcairo2, which this machine lacks: sudo apt-get install libcairo2",
              file=sys.stderr)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="gather wheels and Debian assets here")
    p.add_argument("--out", type=Path, default=Path(".devkit"))
    p.add_argument("--assets", choices=tuple(PARTS), default="none")
    p.add_argument("--limit-mib", type=float, default=64.0)
    p.add_argument("--no-wheels", action="store_true", help="assets only")
    u = sub.add_parser("unpack", help="install the wheels and write the assets (on the GPU machine)")
    u.add_argument("--kit", type=Path, default=Path(".devkit"))
    u.add_argument("--root", type=Path, default=Path("/"))
    u.add_argument("--site", type=Path, default=Path("/tmp/devkit-site"))
    args = ap.parse_args(argv)
    if args.command == "pack":
        return pack(args.out, args.assets, args.limit_mib, wheels=not args.no_wheels)
    return unpack(args.kit, args.root, args.site)


if __name__ == "__main__":
    raise SystemExit(main())
