"""The benchmark scripts still run, and the recorded headline numbers are the raw results' numbers.

Speed is measured by the benchmarks, not asserted here: these tests check that the scripts work at
tiny sizes and that benchmarks/RESULTS.md quotes benchmarks/results-cpu.json faithfully.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def test_recorded_headlines_match_the_raw_results():
    raw = json.loads((BENCH / "results-cpu.json").read_text())
    text = (BENCH / "RESULTS.md").read_text(encoding="utf-8")
    step = raw["step"]
    assert step["speedup"] == step["original"]["median_s"] / step["ours"]["median_s"]
    quoted = [
        f"**Speed-up: {step['speedup']:.1f}×**",
        f"{step['speedup_min']:.1f}× between the fastest steps",
        f"{step['speedup_cpu_time']:.1f}× in process CPU",
        f"**{step['ours']['median_s']:.3f}**",
        f"**{step['original']['median_s']:.2f}**",
        f"**{100 * step['floor']['achieved_fraction']:.0f}%**",
        f"the floor is {step['floor']['floor_s']:.2f} s",
        f"**{raw['features']['images_per_s']:.2f} images/s**",
        f"alone: {raw['features']['model_only_images_per_s']:.2f} images/s",
        f"{raw['scores']['median_s']:.3f} s, **{round(raw['scores']['images_per_s'], -2):,.0f} images/s**",
    ]
    missing = [q for q in quoted if q not in text]
    assert not missing, f"RESULTS.md does not quote results-cpu.json: {missing}"


def test_scoring_benchmark_runs_at_a_tiny_size():
    from benchmarks import bench_scores

    out = bench_scores.run(torch.device("cpu"), images=40, classes=7)
    assert (out["images"], out["prompts"], out["scores"]) == (40, 21, 5)
    assert out["median_s"] > 0 and out["pairs_per_s"] == 40 * 21 / out["median_s"]


def test_step_benchmark_runs_our_pattern_at_a_tiny_size(tmp_path):
    out = tmp_path / "step.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_step", "--pattern", "ours", "--classes", "3"]
    cmd += ["--warmup", "0", "--repeats", "1", "--threads", "1", "--json-out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["pattern"], result["classes"], result["n_neg"]) == ("ours", 3, 2)
    # stage 2 encodes the 3 x 2 negative prompts, grouped by token length
    assert sum(n for n, _ in result["text_groups"]) == 6
    assert result["median_s"] > 0 and len(result["times_s"]) == 1


def test_methods_benchmark_runs_at_a_tiny_size(tiny_backbone):
    from benchmarks import bench_methods

    out = bench_methods.run(
        torch.device("cpu"), images=2, classes=5, words=30, n_neg=10, groups=2, score_images=50,
        backbone=tiny_backbone, train_classes=3,
    )  # fmt: skip
    assert (out["patches"], out["neglabel_m"], out["bank_words"]) == (16, 10, 30)
    assert out["bank_cache_mb"] == 30 * tiny_backbone.embed_dim * 2 / 2**20
    assert out["encode_global_local_images_per_s"] > 0 and out["neglabel_score_images_per_s"] > 0
    assert out["train_images"] == 48 and out["coop_epoch_s"] > 0 and out["locoop_epoch_s"] > 0
