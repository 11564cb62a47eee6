#!/usr/bin/env bash
# Mutation testing of the core (mutmut): scripts/mutation.sh [MODULE|all] [--max-children N] [NAMES...]
# MODULE: metrics, scores, losses, prompts, features, train, backbone, config, rundir (default: all).
# NAMES (optional): only mutants whose name matches a glob, e.g. 'negprompt.train.checkpoint*'.
# Slow (minutes to an hour per module) and so outside CI and outside the pytest suite; results go
# to .mutation/<module>/ (summary.json, survivors.txt; `mutmut show NAME` there prints a mutant).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if ! "$PYTHON" -c "import mutmut" 2>/dev/null; then
  echo "mutmut is not installed for $PYTHON: pip install -r requirements-dev.txt" >&2
  exit 1
fi
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"  # the runs start in a scratch folder
export PYTHON
module="${1:-all}"
shift || true
exec nice -n 10 "$PYTHON" scripts/mutation.py "$module" "$@"
