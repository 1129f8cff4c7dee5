#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root: installs what it needs, builds
# (or reuses from /var/cache/podku-test) the test host's root filesystem and base image,
# then runs the unit tests and the host tests (booted systemd-nspawn hosts).
#   sudo tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "tests/run.sh: run as root (it boots test hosts)" >&2; exit 2; }

tests/host/install-test-deps.sh
tests/vm/install-deps.sh
PODKU_LINT_VENV=$(tests/lint-venv.sh)
export PODKU_LINT_VENV

# Debian's own Python, so the tests see the same click/jinja2/pystemd a host gets.
set +e
# The whole suite, unless test paths are given (tests/run.sh tests/host/test_x.py -x).
targets=(tests)
for arg in "$@"; do
  [ -e "${arg%%::*}" ] && targets=()
done
/usr/bin/python3 -m pytest -p no:cacheprovider -v -rfEs --durations=25 "$@" "${targets[@]}"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
