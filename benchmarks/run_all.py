"""Every benchmark in one command; writes the raw results as JSON and prints Markdown tables.

    python -m benchmarks.run_all --device cpu --out benchmarks/results-cpu.json     # ~15 min on 2 cores
    python -m benchmarks.run_all --device cuda --out benchmarks/results-cuda.json   # C = 1000

Defaults per device: CPU: C = 100 (text and step), 64 images, 2 threads; CUDA: C = 1000, 2048 images
with 8 loader workers, more repeats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import bench_features, bench_scores, bench_step, bench_text
from benchmarks.common import environment, setup, write_json

CPU = {"classes": 100, "images": 64, "workers": 0, "score_images": 20000, "text_repeats": 5}
CUDA = {"classes": 1000, "images": 2048, "workers": 8, "score_images": 200000, "text_repeats": 10}


def markdown(results: dict) -> str:
    """The results as Markdown tables (what benchmarks/RESULTS.md records)."""
    env, lines = results["environment"], []
    lines += [
        f"- date: {env['date']}",
        f"- device: {env['device']}",
        f"- load average at start: {env['loadavg']}",
    ]
    lines += [
        f"- python {env['python']}, torch {env['torch']}, open_clip {env['open_clip']}, numpy {env['numpy']}"
    ]
    lines += [
        "",
        "| mode | pass | prompts | tokens | groups | GFLOP | median s | min s | CPU s | prompts/s | GFLOP/s | max abs diff vs full |",
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["text"]:
        lines.append(
            f"| {r['mode']} | {r['pass']} | {r['prompts']} | {r['tokens']} | {r['groups']} | {r['gflop']:.1f} | "
            f"{r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_s']:.2f} | {r['prompts_per_s']:.1f} | {r['gflop_per_s']:.1f} | {r['max_abs_diff_vs_full']:.1e} |"
        )
    f = results["features"]
    lines += [
        "",
        f"Feature extraction: {f['images']} images, batch {f['batch_size']}, {f['num_workers']} workers: "
        f"{f['images_per_s']:.2f} images/s end to end, {f['model_only_images_per_s']:.2f} images/s model only.",
    ]
    s = results["scores"]
    lines += [
        f"Scoring (all {s['scores']} scores): {s['images']} images × {s['prompts']} prompts in "
        f"{s['median_s']:.3f} s: {s['images_per_s']:.0f} images/s, {s['pairs_per_s'] / 1e6:.1f} M pairs/s."
    ]
    vp = results.get("scores_vs_plain")
    if vp:
        lines.append(
            f"score('negprompt') vs plain torch, {vp['images']} images × {vp['prompts']} prompts: "
            f"{vp['score_s']:.3f} s vs {vp['plain_s']:.3f} s, overhead {vp['overhead']:.2f}x."
        )
    st = results["step"]
    lines += [
        "",
        "| pattern | C | median step s | min s | CPU s | timed steps | image part s | peak memory GB | text GFLOP |",
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for name in ("ours", *st.get("speedups", {})):
        r = st[name]
        time_s = r.get("extrapolated_median_s", r.get("median_s"))
        mem = r.get("memory", {}).get("peak_gb", float("nan"))
        lines.append(
            f"| {name} | {r['classes']} | {time_s:.3f} | {r.get('min_s', float('nan')):.3f} | "
            f"{r.get('cpu_s', float('nan')):.2f} | {r.get('repeats', 0)} (+{r.get('warmup', 0)} warm-up) | "
            f"{_s(r.get('image_part_s'))} | {mem:.2f} | {r['text_flops'] / 1e9:.1f} |"
        )
    fl = st["floor"]
    lines.append("")
    for name, ratio in st.get("speedups", {}).items():
        lines.append(
            f"Speed-up over {name}: {ratio['speedup']:.1f}x (medians), {_x(ratio.get('speedup_min'))} "
            f"(fastest steps), {_x(ratio.get('speedup_cpu_time'))} (CPU time)."
        )
    lines += [
        f"Matmul rate ({st['matmul']['dtype']}): "
        f"{st['matmul']['tflop_per_s'] * 1e3:.0f} GFLOP/s. Floor of our step: {fl['floor_s']:.3f} s; "
        f"achieved {100 * fl['achieved_fraction']:.0f}% of the matmul rate "
        f"({100 * fl.get('achieved_fraction_min', float('nan')):.0f}% in the fastest step).",
    ]
    return "\n".join(lines)


def release(device) -> None:
    """Free what this process holds on the GPU."""
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _s(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _x(value) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    cfg = CUDA if cuda else CPU
    device = setup(args.device, None if cuda else args.threads)
    results = {"environment": environment(device)}
    print("[run_all] text encoding", file=sys.stderr)
    results["text"] = bench_text.run(
        device,
        cfg["classes"],
        repeats=cfg["text_repeats"],
        full_warmup=int(cuda),
        full_repeats=2 if cuda else 1,
    )
    release(device)
    print("[run_all] feature extraction", file=sys.stderr)
    results["features"] = bench_features.run(device, cfg["images"], 32, cfg["workers"])
    release(device)
    print("[run_all] scoring", file=sys.stderr)
    results["scores"] = bench_scores.run(device, cfg["score_images"])
    results["scores_vs_plain"] = bench_scores.vs_plain(device, 50000)
    release(device)  # the step's processes need the GPU memory this process has cached
    step_args = ["--device", args.device, "--threads", str(args.threads), "--classes", str(cfg["classes"])]
    step_args += ["--baselines", "faithful,all_prompts"]
    step_args = bench_step.parse(step_args)
    results["step"] = bench_step.side_by_side(step_args)
    results["environment"]["loadavg_end"] = environment(device)["loadavg"]
    if args.out:
        write_json(args.out, results)
    print(markdown(results))


if __name__ == "__main__":
    main()
