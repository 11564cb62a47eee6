#!/usr/bin/env bash
# The whole test suite: unit, property, end-to-end, notebook, dashboard and browser tests.
# Extra arguments go to pytest (e.g. -k metrics, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/env.sh requirements-dev.txt
# Debian packages the tests read: the browser for the browser tests, WordNet 3.0 for NegLabel,
# Fashion-MNIST for the mini-world (pretraining and the shipped weights' held-out accuracy);
# Unicode's emoji list and two emoji fonts for mini-world v2.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/wordnet/data.noun ] || missing+=(wordnet-base)
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ -f /usr/share/unicode/emoji/emoji-test.txt ] || missing+=(unicode-data)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
[ -f /usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf ] || missing+=(fonts-symbola)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's ${missing[*]} for the tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "the tests need: sudo apt-get install ${missing[*]}" >&2
  fi
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
