"""``negprompt data prepare WORLD``: fetch, check and cache what a world needs, once; then offline.

``miniworld-v2`` needs Debian's ``unicode-data``, ``fonts-noto-color-emoji``, ``fonts-symbola`` and
``wordnet-base`` (checked, with the install command when missing) and npm's
``emoji-datasource-twitter`` (downloaded with resume, checked against its SHA-256, unpacked into
the data cache). Running it again does nothing once everything is in place.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from negprompt.commands.common import UserError

WORLDS = ("miniworld-v2",)


def register(sub) -> None:
    p = sub.add_parser(
        "data",
        help="prepare a world's data once (downloads, checksums, cache)",
        description="Download, check and cache what a world needs; afterwards it runs offline.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    prep = actions.add_parser("prepare", help="fetch and check a world's assets")
    prep.add_argument("world", help=f"one of: {', '.join(WORLDS)}")
    prep.add_argument("--root", type=Path, default=None, help="cache folder (default: the data cache)")
    prep.add_argument("--url", action="append", default=[], metavar="ASSET=URL",
                      help="fetch an npm asset from another address (a mirror or a local file:// copy)")  # fmt: skip
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) != "prepare":
        raise UserError("choose an action: negprompt data prepare miniworld-v2")
    if args.world not in WORLDS:
        raise UserError(f"unknown world {args.world!r}; valid worlds: {', '.join(WORLDS)}")
    from negprompt.miniworld import assets
    from negprompt.progress import tqdm

    urls = {}
    for item in args.url:
        name, sep, url = item.partition("=")
        if not sep or name not in assets.NPM:
            raise UserError(f"--url {item!r}: expected ASSET=URL with ASSET one of {sorted(assets.NPM)}")
        urls[name] = url
    t0 = time.perf_counter()
    missing = assets.missing_debian()
    if missing:
        raise UserError(f"missing Debian packages: {missing}")
    root = assets.data_root(args.root)
    for name, asset in assets.NPM.items():
        with tqdm(total=asset.size, unit="B", unit_scale=True, desc=f"{asset.package} {asset.version}",
                  disable=args.no_progress) as bar:  # fmt: skip
            folder = assets.prepare_npm(asset, root, urls.get(name), progress=bar.update)
        print(f"{name}: {folder} ({sum(1 for _ in folder.iterdir()) - 1} files)")
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"{args.world} ready in {root}: {size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s")
    for name, text in assets.licences().items():
        print(f"  {name}: {text}")
    return 0
