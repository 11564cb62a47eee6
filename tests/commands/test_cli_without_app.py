"""The command line needs neither plotly, streamlit nor umap (the dashboard's extra)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("plotly", "streamlit", "umap")


def test_cli_runs_end_to_end_without_the_app_extra(tmp_path):
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                return None

        sys.meta_path.insert(0, Block())
        from negprompt.cli import main
        code = main(sys.argv[1:])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
        print("LOADED", loaded)
        sys.exit(code)
        """
    )
    args = ["demo", "--world", "v1", "--fast", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run"),
            "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout
    assert "NegPrompt" in done.stdout and "hardest OOD classes" in done.stdout
    assert "negprompt app" in done.stdout  # the dashboard is missing: the command says how to open the run
    assert (tmp_path / "run" / "metrics.csv").is_file()
