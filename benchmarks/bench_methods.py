"""Cost of the added methods: GL-MCM's local features and scores, NegLabel's bank, mining and score.

python -m benchmarks.bench_methods --device cpu --images 8 --classes 100 --words 2000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from benchmarks.common import environment, load_vit, setup, sync, timeit


def _unit(gen: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1).to(device)


def run(
    device: torch.device,
    images: int = 64,
    classes: int = 1000,
    words: int = 79403,
    n_neg: int = 10000,
    groups: int = 100,
    score_images: int = 20000,
    backbone=None,
    train_classes: int = 100,
) -> dict:
    """Images/s of the image tower with and without the local-feature hook, of the GL-MCM and NegLabel
    scores on cached features, and the label bank's encoding rate, cache size and mining time."""
    from negprompt.local import encode_global_local
    from negprompt.neglabel import encode_label_bank, group_order, neg_mining, neglabel_score
    from negprompt.scores import score_all

    vit = backbone or load_vit(device)
    gen = torch.Generator().manual_seed(0)
    size = vit.image_size
    batch = torch.randn(images, 3, size, size, generator=gen).to(device)
    plain = timeit(lambda: vit.encode_images(batch), device, warmup=1, repeats=3)
    hooked = timeit(lambda: encode_global_local(vit, batch), device, warmup=1, repeats=3)
    _, loc = encode_global_local(vit, batch[:1])
    patches, dim = loc.shape[1], loc.shape[2]
    out = {
        "images": images,
        "patches": patches,
        "encode_images_per_s": images / plain["median_s"],
        "encode_global_local_images_per_s": images / hooked["median_s"],
        "local_overhead": hooked["median_s"] / plain["median_s"] - 1,
    }
    n = min(score_images, 1024)  # local features [n, P, D] must fit in memory
    f, pos, g = (
        _unit(gen, device, n, dim),
        _unit(gen, device, classes, dim),
        _unit(gen, device, n, patches, dim),
    )
    res = timeit(lambda: score_all(["gl_mcm", "l_mcm"], f, pos, local_features=g), device, 1, 3)
    out["gl_mcm_score_images_per_s"] = n / res["median_s"]

    k = min(n_neg, words)
    f, bank = _unit(gen, device, score_images, dim), _unit(gen, device, k, dim)

    def neglabel() -> torch.Tensor:
        parts = []
        for i in range(0, score_images, 8192):
            parts.append(neglabel_score(f[i : i + 8192] @ pos.T, f[i : i + 8192] @ bank.T, min(groups, k)))
        return torch.cat(parts)

    res = timeit(neglabel, device, 1, 3)
    out.update(
        {
            "score_images": score_images,
            "neglabel_m": k,
            "neglabel_score_images_per_s": score_images / res["median_s"],
        }
    )

    names = [f"label number {i}" for i in range(words)]
    with tempfile.TemporaryDirectory() as cache:
        sync(device)
        start = time.perf_counter()
        feats = encode_label_bank(vit, names, cache_dir=cache, progress=False)
        sync(device)
        out["bank_words"], out["bank_words_per_s"] = words, words / (time.perf_counter() - start)
        out["bank_cache_mb"] = feats.nbytes / 2**20
        cand = torch.from_numpy(feats[:]).float().to(device)
        start = time.perf_counter()
        kept = neg_mining(cand.cpu(), pos.cpu(), k)
        group_order(len(kept), min(groups, k))
        out["neg_mining_s"] = time.perf_counter() - start
    out.update(epoch_seconds(vit, gen, min(classes, train_classes), shots=16))
    return out


def epoch_seconds(vit, gen: torch.Generator, classes: int, shots: int) -> dict:
    """Seconds of one training epoch (batch 32, C classes × ``shots`` cached images) of CoOp and LoCoOp."""
    from negprompt.train import TrainConfig, train_prompts

    device = vit.device
    n, patches, dim = classes * shots, (vit.image_size // vit.model.visual.patch_size[0]) ** 2, vit.embed_dim
    feats = _unit(gen, device, n, dim)
    local = _unit(gen, torch.device("cpu"), n, patches, dim).numpy().astype("float16")
    labels = [i % classes for i in range(n)]
    names = [f"class {i}" for i in range(classes)]
    out = {"train_classes": classes, "train_images": n}
    for name, weight in (("coop", 0.0), ("locoop", 0.25)):
        config = TrainConfig(stage=1, epochs=1, batch_size=32, select="last", locoop_weight=weight)
        result = train_prompts(vit, names, feats, labels, config, local_features=local, progress=False)
        out[f"{name}_epoch_s"] = result.history[-1]["seconds"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--words", type=int, default=79403)
    parser.add_argument("--score-images", type=int, default=20000)
    parser.add_argument("--train-classes", type=int, default=100)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads if args.device == "cpu" else None)
    result = run(device, args.images, args.classes, args.words, score_images=args.score_images,
                 train_classes=args.train_classes)  # fmt: skip
    print(json.dumps({"environment": environment(device), "methods": result}, indent=1))


if __name__ == "__main__":
    main()
