#!/usr/bin/env bash
# The main job: the embedded demo benchmark end to end, then the dashboard.
# Extra arguments go to `negprompt demo` (e.g. --fast, --no-app, --port 8502).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/env.sh requirements.txt
exec .venv/bin/negprompt demo "$@"
