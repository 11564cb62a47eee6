#!/usr/bin/env bash
# The whole test suite: unit, property, end-to-end, notebook, dashboard and browser tests.
# Extra arguments go to pytest (e.g. -k metrics, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/env.sh requirements-dev.txt
# Debian packages the tests read: the browser for the browser tests, WordNet 3.0 for NegLabel,
# Fashion-MNIST for the mini-world (pretraining and the shipped weights' held-out accuracy);
# Unicode's emoji list and two emoji fonts for mini-world v2; its opt-in clip art and the library
# that draws it.
scripts/debian.sh "the tests" \
  chromium:/usr/bin/chromium \
  wordnet-base:/usr/share/wordnet/data.noun \
  dataset-fashion-mnist:/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
  unicode-data:/usr/share/unicode/emoji/emoji-test.txt \
  fonts-noto-color-emoji:/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf \
  fonts-symbola:/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf \
  openclipart-svg:/usr/share/openclipart/svg \
  libcairo2:/usr/lib/"$(uname -m)"-linux-gnu/libcairo.so.2 || true
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
