#!/usr/bin/env bash
# The whole test suite: unit, property, end-to-end, notebook, dashboard and browser tests.
# Extra arguments go to pytest (e.g. -k metrics, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/env.sh requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser test needs Chromium at /usr/bin/chromium: sudo apt-get install chromium" >&2
  fi
fi
if [ ! -f /usr/share/wordnet/data.noun ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's wordnet-base (WordNet 3.0) for the NegLabel tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null
  else
    echo "the NegLabel tests need WordNet 3.0: sudo apt-get install wordnet-base" >&2
  fi
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
