"""Mini-world v2's data preparation: fetching and unpacking the npm asset, its size, and rendering speed.

    python -m benchmarks.bench_miniworld_v2 --root /tmp/mw2 [--url twemoji=file:///…/x.tgz] [--pictures 2000]

Writes ``benchmarks/results-miniworld-v2.json``. The first call downloads (unless ``--url`` points at a
local copy); the glyph cache is cold for the rendering measurement, as in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

from benchmarks.common import REPO, write_json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="an empty cache folder (deleted first)")
    ap.add_argument("--url", default=None, help="twemoji=URL: fetch from a local copy instead of npm")
    ap.add_argument("--pictures", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-miniworld-v2.json")
    args = ap.parse_args(argv)
    from negprompt.miniworld import assets, splits
    from negprompt.miniworld import world_v2 as W
    from negprompt.miniworld.emoji import load_hierarchy
    from negprompt.miniworld.lexicon import WordNet

    if args.root.name != assets.WORLD:  # it is deleted first: never an unrelated folder
        raise SystemExit(f"--root must end in {assets.WORLD}")
    shutil.rmtree(args.root, ignore_errors=True)
    asset = assets.NPM["twemoji"]
    t0 = time.perf_counter()
    folder = assets.prepare_npm(asset, args.root, url=args.url.split("=", 1)[1] if args.url else None)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    assets.prepare_npm(asset, args.root)
    again_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in args.root.rglob("*") if f.is_file())
    unpacked = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    os.environ["NEGPROMPT_DATA"] = str(args.root.parent)
    t0 = time.perf_counter()
    h = load_hierarchy()
    wn = WordNet()
    setup_s = time.perf_counter() - t0
    pairs = W.pretraining_pairs(h, splits.published())
    step = max(len(pairs) // (args.pictures // 4), 1)
    chosen = pairs[::step][: args.pictures // 4]
    t0 = time.perf_counter()
    d = W.pictures("bench", chosen, 4, "pretrain", h, wn)
    render_s = time.perf_counter() - t0
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "source": "local file:// copy" if args.url else "npm registry",
        "prepare_s": round(prepare_s, 2),
        "prepare_again_s": round(again_s, 3),
        "cache_bytes": size,
        "unpacked_bytes": unpacked,
        "hierarchy_and_wordnet_s": round(setup_s, 2),
        "pretraining_pairs": len(pairs),
        "pictures": len(d),
        "render_s": round(render_s, 2),
        "pictures_per_s": round(len(d) / render_s, 1),
    }
    write_json(args.json, result)
    print(result)


if __name__ == "__main__":
    main()
