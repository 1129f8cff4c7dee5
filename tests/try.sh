#!/usr/bin/env bash
# Try podku with one command, as root:
#  - on a host with systemd (a VPS, a VM): installs podku and deploys the example app;
#  - on a machine without systemd as PID 1 (a container, a build box): boots a disposable
#    Debian test host (systemd-nspawn), installs podku and the example in it, and keeps it
#    running until Ctrl-C, then removes it.
#   tests/try.sh          (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests/try.sh: run as root" >&2; exit 2; }
if [ -d /run/systemd/system ]; then
  exec ./install.sh --example "$@"
fi
tests/host/install-test-deps.sh
exec /usr/bin/python3 tests/host/demo.py
