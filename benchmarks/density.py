#!/usr/bin/env python3
"""Density benchmark: how many small apps a 1 GB host carries when idle apps scale to zero.

Boots a test host limited to --memory (default 1G, a cgroup v1 memory group around
systemd-nspawn), installs podku, sets a short global idle timeout, then deploys small apps
(the python http.server test app) one after another. At each checkpoint it waits until
every app is idle, then requests each app once and times that first request. Reports
memory of podku and Caddy at rest, memory per running app, first-request latency after idle
(median, max), and the largest N at which every app answered within 1 s.
Run as root:  sudo python3 benchmarks/density.py [--apps 30] [--every 10] [--expose 8000] [--egress off]

With --vm the host is the 1 GiB qemu VM of tests/vm (a real kernel, cgroup v2, no swap): after
the idle checkpoints it sets the idle timeout to 0 (every app running) and pushes more apps,
one at a time, until the kernel's OOM killer or reclaim (pages scanned) shows up, or
--running-max apps run:  sudo python3 benchmarks/density.py --vm [--apps 20] [--running-max 60]
"""

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "host"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "vm"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import pss_by_unit

import testhost
import vmhost

IDLE = 20
MiB = 1024 * 1024


def per_app(units: dict[str, int]) -> dict[str, int]:
    """KiB of PSS per app: its release units together (app, proxy)."""
    apps: dict[str, int] = {}
    for unit, kb in units.items():
        if "-r" in unit and unit.startswith("app"):
            name = unit.split("-r")[0]
            apps[name] = apps.get(name, 0) + kb
    return apps


def running(host: testhost.TestHost) -> int:
    return len(host.as_deploy_user("podman ps -q").stdout.split())


def wait_idle(host: testhost.TestHost, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while running(host) and time.monotonic() < deadline:
        time.sleep(1)


def first_requests(host: testhost.TestHost, count: int) -> list[float]:
    latencies = []
    for number in range(count):
        started = time.monotonic()
        status, _ = host.http_get(f"app{number}.podku.localhost")
        latencies.append(time.monotonic() - started if status == 200 else float("inf"))
    return latencies


def host_memory(host: testhost.TestHost) -> float:
    """The host's memory use without page cache, MiB (its cgroup, from outside; in a VM, what
    its kernel cannot give back at once: MemTotal - MemAvailable)."""
    if host.memory_cgroup is None:
        return host.used_mib()
    stats = dict(line.split() for line in (host.memory_cgroup / "memory.stat").read_text().splitlines())
    return (int(stats["total_rss"]) + int(stats.get("total_shmem", 0))) / MiB


USER_MANAGER_PSS = ("for pid in $(pgrep -u podku -x systemd) $(pgrep -u podku -x '(sd-pam)'); do "
                    "awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup; done")


def platform_with_one_idle_app(host: testhost.TestHost) -> str:
    """What podku costs with one idle app: Caddy, the deploy user's systemd, the idle app's
    units (listening sockets only: no process), all PSS (binary pages included)."""
    units = pss_by_unit(host)
    caddy = units.get("podku-caddy.service", 0)
    app = sum(per_app(units).values())
    manager = sum(int(kb) for kb in host.sh(USER_MANAGER_PSS).stdout.split())
    return (f"platform + one idle app: Caddy {caddy / 1024:.1f} + user manager {manager / 1024:.1f} "
            f"+ idle app {app / 1024:.1f} = {(caddy + manager + app) / 1024:.1f} MiB PSS")


def pressure(host) -> tuple[int, int]:
    """(OOM kills, pages scanned by reclaim) since the VM booted."""
    vmstat = dict(line.split() for line in host.run(["cat", "/proc/vmstat"]).stdout.splitlines())
    scanned = sum(int(value) for key, value in vmstat.items() if key.startswith("pgscan_"))
    return int(vmstat.get("oom_kill", 0)), scanned


def running_until_pressure(host, repo: testhost.AppRepo, deployed: int, most: int) -> None:
    """Every app running (idle timeout 0), then one more app at a time until the OOM killer
    or reclaim shows up: the largest count that ran without either."""
    host.podku("ps:set", "--global", "idle-timeout", "0")
    count, fitted = deployed, 0
    kills0, scanned0 = pressure(host)
    print("| apps | containers running | used MiB | available MiB | OOM kills | pages scanned | all answer |",
          flush=True)
    while count <= most:
        answers = [host.http_get(f"app{number}.podku.localhost")[0] for number in range(count)]
        time.sleep(5)
        kills, scanned = pressure(host)
        info = host.meminfo()
        ok = all(status == 200 for status in answers)
        print(f"| {count} | {running(host)} | {host.used_mib():.0f} | {info['MemAvailable'] / 1024:.0f} | "
              f"{kills - kills0} | {scanned - scanned0} | {ok} |", flush=True)
        if kills > kills0 or scanned > scanned0 or not ok:
            break
        fitted = count
        host.git(repo.path, "push", "--quiet", host.remote(f"app{count}"), "HEAD:main")
        count += 1
    print(f"largest N running with no OOM kill and no reclaim: {fitted}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--memory", default=str(1024 * MiB))
    parser.add_argument("--expose", type=int, default=None,
                        help="apps bind $PORT=N (through podku's bridge) instead of taking fd 3")
    parser.add_argument("--egress", choices=("on", "off"), default="on",
                        help="the apps' outbound network (network:set --global egress; on: a slirp4netns "
                             "per running container)")
    parser.add_argument("--vm", action="store_true", help="the 1 GiB qemu VM of tests/vm, not a nspawn host")
    parser.add_argument("--running-max", type=int, default=60, help="--vm: most apps to run at once")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if args.vm:
        host = vmhost.VmHost("density", vmhost.VmImage())
    else:
        host = testhost.TestHost("density", *testhost.build_images(), memory_max=int(args.memory))
    workdir = Path(tempfile.mkdtemp(prefix="podku-density-"))
    rows, within = [], 0
    try:
        host.boot()
        if args.vm:
            host.prepare()
        host.install()
        host.podku("ps:set", "--global", "idle-timeout", f"{IDLE}s")
        host.podku("network:set", "--global", "egress", args.egress)
        repo = (vmhost.VmAppRepo if args.vm else testhost.AppRepo)(workdir / "app", host, "app0")
        repo.write(env={"MESSAGE": "dense"}, expose=args.expose)
        wait_idle(host)
        units = pss_by_unit(host)
        print(f"at rest, no app: Caddy {units.get('podku-caddy.service', 0) / 1024:.1f} MiB PSS, "
              f"host without page cache {host_memory(host):.0f} MiB", flush=True)
        for number in range(args.apps):
            host.git(repo.path, "push", "--quiet", host.remote(f"app{number}"), "HEAD:main")
            if number == 0:
                wait_idle(host)
                print(platform_with_one_idle_app(host), flush=True)
            if (number + 1) % args.every and number + 1 != args.apps:
                continue
            count = number + 1
            first_requests(host, count)  # every app awake, for its memory
            awake = per_app(pss_by_unit(host))
            wait_idle(host)
            at_rest = host_memory(host)
            latencies = first_requests(host, count)
            ok = all(latency < 1 for latency in latencies)
            within = count if ok else within
            rows.append((count, statistics.median(latencies), max(latencies), at_rest,
                         statistics.mean(awake.values()) / 1024 if awake else 0))
            print(f"| {count} | {rows[-1][1]:.2f} | {rows[-1][2]:.2f} | {at_rest:.0f} | {rows[-1][4]:.1f} |",
                  flush=True)
        print(f"largest N with every first request after idle under 1 s: {within} of {args.apps}")
        if args.vm:
            running_until_pressure(host, repo, args.apps, args.running_max)
    finally:
        host.destroy()


if __name__ == "__main__":
    main()
