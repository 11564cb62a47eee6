"""The dashboard's Runs page on hostile run folders: time and peak memory of one page run.

Three runs folders, each holding one synthetic run (940 images, like the damaged run of the fault
pass) and nothing else:

- ``plain``: the run as written;
- ``log-512mb``: its ``log.txt`` replaced by a sparse 512 MB file (one line at the end);
- ``features-1gb``: its ``image_features.npy`` replaced by a sparse 1 GB file whose header claims
  940 × 571,139 float16 values (one row per scores row, so the row count agrees with scores).

Each case runs in a fresh process (`streamlit.testing.v1.AppTest`, the Runs page) so that the peak
resident memory (``ru_maxrss``) is that page's. Results go to a JSON file and are copied into
``benchmarks/RESULTS.md`` by hand.

    python -m benchmarks.bench_runs_page --out benchmarks/results-runs-page.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
N_ROWS, FEATURE_WIDTH = 940, 571_139


def make_cases(base: Path) -> dict[str, Path]:
    """The three runs folders (see the module docstring) under ``base``."""
    import numpy as np

    from negprompt.synthetic import synthetic_run

    cases = {}
    for case in ("plain", "log-512mb", "features-1gb"):
        root = base / case
        run = synthetic_run(
            root / "run", seed=3, n_id=N_ROWS - 240, ood_sets={"far": 240}, image_dir=base / "img" / case
        )
        if case == "log-512mb":
            with open(run / "log.txt", "wb") as fh:
                fh.truncate(512 << 20)
                fh.seek(0, os.SEEK_END)
                fh.write(b"last line\n")
        if case == "features-1gb":
            header = {"descr": "<f2", "fortran_order": False, "shape": (N_ROWS, FEATURE_WIDTH)}
            with open(run / "image_features.npy", "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                fh.truncate(fh.tell() + N_ROWS * FEATURE_WIDTH * 2)
        cases[case] = root
    return cases


def page_run(root: Path, timeout: float) -> dict:
    """Run the Runs page once on ``root`` (in this process); seconds, exceptions and errors shown."""
    from streamlit.testing.v1 import AppTest

    os.environ["NEGPROMPT_RUNS_DIR"] = str(root)
    start = time.perf_counter()
    at = AppTest.from_file(str(REPO / "app" / "app.py"), default_timeout=timeout).run()
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "exceptions": [e.message[:200] for e in at.exception],
        "errors": [e.value[:200] for e in at.error],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a page run fails")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: one case, this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(page_run(args.one, args.timeout)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, root in make_cases(Path(tmp)).items():
            env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
            cmd = [sys.executable, "-m", "benchmarks.bench_runs_page", "--one", str(root)]
            cmd += ["--timeout", str(args.timeout)]
            done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            lines = done.stdout.strip().splitlines()
            try:
                results[case] = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                results[case] = {"failed": (done.stderr or done.stdout)[-500:]}
            print(case, results[case], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
