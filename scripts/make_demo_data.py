"""Build the embedded demo data: a small, balanced, seeded subset of Fashion-MNIST.

Reads the four original Fashion-MNIST files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``, as
shipped by Debian's ``dataset-fashion-mnist`` package) and writes

* ``negprompt/data/resources/fashion_mnist_subset.npz``: uint8 images [N, 28, 28] and labels [N] for a
  train part (drawn from the original train split) and a test part (from the original t10k split),
  ``--per-class`` images per class for all 10 classes, plus the source indices of every image;
* ``negprompt/data/resources/FASHION_MNIST_LICENSE.txt``: the dataset's MIT licence notice.

Usage::

    python scripts/make_demo_data.py [SOURCE_DIR] [--per-class 64] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
ORIGINAL_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

LICENSE_TEXT = """\
Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist)

The images in fashion_mnist_subset.npz are a subset of Fashion-MNIST, distributed under the
MIT License:

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a
copy of this software and associated documentation files (the "Software"),
to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense,
and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included
in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format): big-endian header, then uint8 data."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` images of every class, class-major, sorted within a class."""
    out = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} images, {per_class} requested")
        out.append(np.sort(rng.choice(members, size=per_class, replace=False)))
    return np.concatenate(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, read the source files and write the subset and the licence notice."""
    default_out = Path(__file__).resolve().parent.parent / "negprompt" / "data" / "resources"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default=DEFAULT_SOURCE, help="folder with the four .gz files")
    ap.add_argument("--per-class", type=int, default=64, help="images per class in each split (default 64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=default_out, help="output folder (default: package resources)"
    )
    args = ap.parse_args(argv)

    src = Path(args.source)
    files = {
        f"{split}_{kind}": src / f"{prefix}-{kind}-{idx}-ubyte.gz"
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for kind, idx in (("images", "idx3"), ("labels", "idx1"))
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise SystemExit(
            f"Missing Fashion-MNIST files: {missing}. Install Debian's 'dataset-fashion-mnist' package or "
            "pass the folder holding the original .gz files."
        )
    rng = np.random.default_rng(args.seed)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images, labels = read_idx(files[f"{split}_images"]), read_idx(files[f"{split}_labels"])
        idx = balanced_subset(labels, args.per_class, rng)
        arrays[f"{split}_images"] = np.ascontiguousarray(images[idx])
        arrays[f"{split}_labels"] = labels[idx].astype(np.uint8)
        arrays[f"{split}_source_index"] = idx.astype(np.int32)
    meta = {
        "dataset": "Fashion-MNIST",
        "source_files": {p.name: _sha256(p) for p in files.values()},
        "per_class": args.per_class,
        "seed": args.seed,
        "original_class_names": list(ORIGINAL_NAMES),
        "train_from": "train-*-ubyte.gz (original training split)",
        "test_from": "t10k-*-ubyte.gz (original test split)",
    }
    arrays["class_names"] = np.array(CLASS_NAMES)
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out_npz = args.out / "fashion_mnist_subset.npz"
    _atomic_write(out_npz, buf.getvalue())
    _atomic_write(args.out / "FASHION_MNIST_LICENSE.txt", LICENSE_TEXT.encode("utf-8"))
    n = sum(len(arrays[f"{s}_labels"]) for s in ("train", "test"))
    print(f"wrote {out_npz} ({out_npz.stat().st_size / 1024:.0f} KiB, {n} images) and the licence notice")


if __name__ == "__main__":
    main()
