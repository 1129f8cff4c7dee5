#!/usr/bin/env python3
"""Memory benchmark: what podku's parts and N small apps take on a host.

Boots a disposable test host, installs podku, pushes N copies of the example app, and sums
the proportional set size (PSS, shared pages split fairly) of the processes in each unit's
cgroup. Run as root:  sudo python3 benchmarks/memory.py [--apps 10]
"""

import argparse
import platform
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "host"))
import testhost

# Sums PSS per unit of the deploy user's manager, from inside the host.
PSS_BY_UNIT = r"""
base=$(find /sys/fs/cgroup -maxdepth 6 -type d -path "*user@$(id -u podku).service/app.slice" | head -1)
for unit in "$base"/*.service; do
  total=0
  for pid in $(find "$unit" -name cgroup.procs -exec cat {} +); do
    kb=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup 2>/dev/null)
    total=$((total + ${kb:-0}))
  done
  echo "$(basename "$unit") $total"
done
"""


def pss_by_unit(host: testhost.TestHost) -> dict[str, int]:
    lines = host.sh(PSS_BY_UNIT).stdout.split("\n")
    return {name: int(kb) for name, kb in (line.split() for line in lines if line.strip())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=10)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    host = testhost.TestHost("membench", *testhost.build_images())
    workdir = Path(tempfile.mkdtemp(prefix="podku-membench-"))
    try:
        host.boot()
        host.install()
        for number in range(args.apps):
            testhost.AppRepo(workdir / f"app{number}", host, f"app{number}").deploy(f"app{number}")
        for number in range(args.apps):
            host.http_get(f"app{number}.podku.localhost")
        units = pss_by_unit(host)
        apps = [kb for unit, kb in units.items() if unit.startswith("app") and "-r" in unit]
        print(f"machine: {platform.node()} {platform.machine()}, kernel {platform.release()}; "
              f"test host: Debian 12 in systemd-nspawn, podman 4.3, Caddy 2.6")
        print(f"| Caddy (podku-caddy.service) | {units.get('podku-caddy.service', 0) / 1024:.1f} MiB |")
        print(f"| one running app: conmon + python3 http.server (mean of {len(apps)}) | "
              f"{sum(apps) / max(len(apps), 1) / 1024:.1f} MiB |")
        print(f"| {len(apps)} running apps in all | {sum(apps) / 1024:.1f} MiB |")
        print("| podku between deploys | 0 MiB (no daemon) |")
        host.reboot()  # socket activation: after a boot, apps start on their first request
        idle = [kb for unit, kb in pss_by_unit(host).items() if unit.startswith("app") and "-r" in unit]
        print(f"| {args.apps} apps after a reboot, before any request (socket-activated) | "
              f"{sum(idle) / 1024:.1f} MiB |")
    finally:
        host.destroy()


if __name__ == "__main__":
    main()
