#!/usr/bin/env bash
# Install the Debian packages whose files are missing: as root with apt-get, otherwise print the
# command that installs them (and exit 1).
# Usage: scripts/debian.sh "WHAT NEEDS THEM" package:/file/it/installs ...
set -euo pipefail
why=$1
shift
missing=()
for pair in "$@"; do
  [ -e "${pair#*:}" ] || missing+=("${pair%%:*}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's ${missing[*]} for $why"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "$why need: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
