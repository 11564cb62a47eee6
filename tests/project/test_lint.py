"""The code base, tests and notebooks pass ruff's lint rules and are ruff-formatted (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [["check", "--no-cache"], ["format", "--check", "--no-cache"]])
def test_ruff(command):
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"ruff {' '.join(command)} found problems (fix: ruff {command[0]} .):\n"
        + (done.stdout + done.stderr)[-4000:]
    )
