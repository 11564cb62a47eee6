"""How fast the command line answers: ``negprompt --help``, a sub-command's help, an argument error.

Each command runs in a fresh interpreter (``python -m negprompt.cli …``, what the ``negprompt``
script runs), timed end to end with its peak memory (``/usr/bin/time``'s maximum resident set when
available, else ``ru_maxrss`` of the child). For comparison, ``import torch, open_clip`` alone: what
every one of these paid before parsing stopped importing them.

    python -m benchmarks.bench_cli --repeats 5 --out benchmarks/results-cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS: dict[str, list[str]] = {
    "negprompt --help": ["-m", "negprompt.cli", "--help"],
    "negprompt run --help": ["-m", "negprompt.cli", "run", "--help"],
    "negprompt detect --help": ["-m", "negprompt.cli", "detect", "--help"],
    "negprompt run mini-hard-ood --epocs 5 (error)": [
        "-m",
        "negprompt.cli",
        "run",
        "mini-hard-ood",
        "--epocs",
        "5",
    ],
    "python -c 'import torch, open_clip' (reference)": ["-c", "import torch, open_clip"],
}


def time_once(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB, or NaN without ``/usr/bin/time``) of ``python ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    timer = shutil.which("time", path="/usr/bin")
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        prefix = [timer, "-f", "%M", "-o", report.name] if timer else []
        start = time.perf_counter()
        subprocess.run([*prefix, sys.executable, *args], env=env, capture_output=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - start
        text = report.read().strip().splitlines()
    peak = float(text[-1]) / 1024 if timer and text and text[-1].isdigit() else float("nan")
    return wall, peak


def run(repeats: int = 5) -> dict:
    rows = []
    for name, args in COMMANDS.items():
        time_once(args)  # warm the file-system cache
        walls = []
        peaks = []
        for _ in range(repeats):
            wall, mb = time_once(args)
            walls.append(wall)
            peaks.append(mb)
        rows.append(
            {
                "command": name,
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "peak_mb": max(peaks),
                "repeats": repeats,
            }
        )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.repeats)
    for row in result["rows"]:
        print(
            f"{row['command']:<50} median {row['median_s']:.3f} s (min {row['min_s']:.3f}, max {row['max_s']:.3f}), peak {row['peak_mb']:.0f} MB"
        )
    print(f"load average {result['load_average']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
