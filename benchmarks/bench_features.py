"""Image feature extraction throughput (images/s) through ``negprompt.features.extract_features``.

Synthetic PIL images (smooth random colour fields, 320 × 256 JPEG) are written to a temporary folder
and encoded by ViT-B-16 (random weights) at batch 32, reading, decoding and preprocessing included;
the model alone (preprocessed tensors) is timed too.

    python -m benchmarks.bench_features --device cpu --images 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import environment, load_vit, setup, sync, timeit


def write_images(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` JPEG images in two class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
        image = Image.fromarray(low).resize((320, 256), Image.BICUBIC)
        out = folder / f"class{i % 2}"
        out.mkdir(parents=True, exist_ok=True)
        image.save(out / f"img{i:05d}.jpg", quality=90)


def run(device: torch.device, images: int = 64, batch_size: int = 32, num_workers: int = 0) -> dict:
    """Images/s of a cold extraction (fresh cache) and of the model alone."""
    from negprompt.data import image_folder
    from negprompt.features import extract_features

    backbone = load_vit(device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_images(tmp / "warm", batch_size)
        write_images(tmp / "bench", images, seed=1)
        kwargs = dict(batch_size=batch_size, num_workers=num_workers, progress=False)
        extract_features(backbone, image_folder(tmp / "warm"), cache_dir=tmp / "cache", **kwargs)
        imageset = image_folder(tmp / "bench")
        sync(device)
        start = time.perf_counter()
        cached = extract_features(backbone, imageset, cache_dir=tmp / "cache", **kwargs)
        sync(device)
        elapsed = time.perf_counter() - start
        assert len(cached) == images
    pixels = torch.randn(batch_size, 3, backbone.image_size, backbone.image_size)
    model = timeit(lambda: backbone.encode_images(pixels), device, warmup=1, repeats=2)
    return {
        "images": images,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "seconds": elapsed,
        "images_per_s": images / elapsed,
        "model_only_images_per_s": batch_size / model["median_s"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    result = run(device, args.images, args.batch_size, args.workers)
    print(json.dumps({"environment": environment(device), "features": result}, indent=1))


if __name__ == "__main__":
    main()
