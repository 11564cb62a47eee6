"""The dashboard's open-vocabulary what-if: encoding C new class names with a run's learned contexts.

What one "Rescore" costs beyond the cached model: the C positive and C × M negative prompts of the
edited vocabulary through the text tower (EOT-truncated, shared prefixes), for the bundled mini
CLIP and for the ViT-B-16 architecture (random weights: speed does not depend on them); then
rescoring stored image features (`negprompt.scores.score_all`). Model loading is timed apart: the
dashboard loads the model once per server.

    python -m benchmarks.bench_whatif --device cpu --classes 10 1000 --run runs/demo-fast
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.common import environment, imagenet_names, setup, timeit

MODELS = (("negprompt-mini", "auto"), ("ViT-B-16", "none"))
"""The bundled mini CLIP and the ViT-B-16 architecture (random weights: the speed is the same)."""


def run(
    device: torch.device,
    classes: int = 10,
    n_neg: int = 2,
    images: int = 20_000,
    repeats: int = 3,
    models: tuple[tuple[str, str], ...] = MODELS,
) -> list[dict]:
    """One row per model: load time, encoding time of C × (1 + M) prompts, rescoring time."""
    from negprompt.backbone import load_backbone
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder
    from negprompt.scores import score_all

    rows = []
    for name, pretrained in models:
        start = time.perf_counter()
        backbone = load_backbone(name, pretrained, device=device)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        learner = PromptLearner(TextEncoder(backbone), PromptConfig(n_neg=n_neg))
        learner_s = time.perf_counter() - start
        names = imagenet_names(classes)

        def encode(learner=learner, names=names):
            with torch.no_grad():
                c = learner.class_names(names)
                return learner.positive_features(c), learner.negative_features(c)

        timing = timeit(encode, device, warmup=1, repeats=repeats)
        pos, neg = encode()
        gen = torch.Generator().manual_seed(0)
        feats = torch.nn.functional.normalize(torch.randn(images, pos.shape[1], generator=gen), dim=-1).to(
            device
        )
        rescore = timeit(
            lambda f=feats, p=pos, n=neg: score_all(None, f, p, n), device, warmup=1, repeats=repeats
        )
        rows.append(
            {
                "model": name,
                "classes": classes,
                "prompts": classes * (1 + n_neg),
                "load_s": load_s,
                "learner_s": learner_s,
                "encode_median_s": timing["median_s"],
                "encode_cpu_s": timing["cpu_s"],
                "rescore_images": images,
                "rescore_median_s": rescore["median_s"],
                "whatif_s": learner_s + timing["median_s"] + rescore["median_s"],
            }
        )
    return rows


def run_whatif(device: torch.device, run_dir: str, classes: int = 10, repeats: int = 3) -> dict:
    """`negprompt.live.whatif` end to end on a run: its class names plus others up to ``classes``."""
    from negprompt import live
    from negprompt.rundir import load_run

    run = load_run(run_dir)
    start = time.perf_counter()
    backbone = live.run_backbone(run.config, device)
    load_s = time.perf_counter() - start
    names = list(run.config["data"]["class_names"])
    extra = [n for n in imagenet_names(classes + len(names)) if n not in names][
        : max(0, classes - len(names))
    ]
    vocab = live.parse_vocabulary("\n".join([*names, *extra][:classes]), names)
    timing = timeit(lambda: live.whatif(run, backbone, vocab), device, warmup=1, repeats=repeats)
    return {
        "run_images": len(run.scores),
        "methods": [m for m in run.methods if f"{m}.pos" in run.text_features],
        "classes": len(vocab.names),
        "load_s": load_s,
        "whatif_median_s": timing["median_s"],
        "whatif_cpu_s": timing["cpu_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, nargs="+", default=[10])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--run", help="also time negprompt.live.whatif end to end on this run directory")
    args = parser.parse_args()
    device = setup(args.device, args.threads)
    out = {"environment": environment(device)}
    if args.run:
        out["run_whatif"] = run_whatif(device, args.run, classes=args.classes[0])
    out["whatif"] = [r for c in args.classes for r in run(device, c, images=args.images)]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
