#!/usr/bin/env bash
# The venv holding the pinned linters (tests/lint-requirements.txt), cached by their versions.
#   tests/lint-venv.sh          make it if missing, print its path
#   tests/lint-venv.sh --path   print its path only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${PODKU_TEST_CACHE:-/var/cache/podku-test}
venv=$cache/lint-venv-$(sha256sum "$here/lint-requirements.txt" | cut -c1-12)
# A venv cannot be moved once made: it is made in place, and marked complete last.
if [ "${1:-}" != --path ] && [ ! -e "$venv/.complete" ]; then
  mkdir -p "$cache"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/lint-requirements.txt" >&2 2>/dev/null
  touch "$venv/.complete"
fi
echo "$venv"
