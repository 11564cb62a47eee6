#!/usr/bin/env bash
# The main job: the demo benchmark end to end (mini-world v2; --world v1: the embedded Fashion-MNIST
# demo), then the dashboard. Extra arguments go to `negprompt demo` (e.g. --fast, --no-app, --port 8502).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/env.sh requirements.txt
v1=0
prev=
for arg in "$@"; do
  case "$prev $arg" in
    "--world v1" | *" --world=v1" | *" --full" | *" --cifar" | *" --cifar="*) v1=1 ;;
  esac
  prev=$arg
done
if [ "$v1" = 0 ]; then
  # mini-world v2 draws its pictures with Unicode's emoji list and two emoji fonts;
  # `negprompt demo` downloads the third artist (npm's Twemoji) once itself.
  scripts/debian.sh "mini-world v2's demo (or run ./scripts/demo.sh --world v1)" \
    unicode-data:/usr/share/unicode/emoji/emoji-test.txt \
    fonts-noto-color-emoji:/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf \
    fonts-symbola:/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf || true
fi
exec .venv/bin/negprompt demo "$@"
