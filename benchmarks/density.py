#!/usr/bin/env python3
"""Density benchmark: how many small apps a 1 GB host carries when idle apps scale to zero.

Boots a test host limited to --memory (default 1G, a cgroup v1 memory group around
systemd-nspawn), installs podku, sets a short global idle timeout, then deploys small apps
(the python http.server test app) one after another. At each checkpoint it waits until
every app is idle, then requests each app once and times that first request. Reports
memory of podku and Caddy at rest, memory per running and per idle app, first-request latency
after idle (median, max), and the largest N at which every app answered within 1 s. With
--services, one Postgres and one Redis service run (images imported from the test cache: the
test host has no route out) and every app is linked to both before it is measured.
Run as root:  sudo python3 benchmarks/density.py [--apps 30] [--every 10] [--expose 8000] [--egress off]
              [--services]

With --vm the host is the 1 GiB qemu VM of tests/vm (a real kernel, cgroup v2, no swap): after
the idle checkpoints it sets the idle timeout to 0 for new apps and pushes more apps, one at a
time, each running from its first request, beside the idle ones (left idle), until the kernel's
OOM killer fires, reclaim grows sharply (SHARP_RECLAIM_PAGES scanned in one step), a push or an
app fails, --running-max apps run, or --budget-minutes of the whole run have passed. The VM's
figures in README came from two runs (TCG emulation on 2 shared cores; the second stopped by
hand at 56 running apps, thrashing, after 44 min):
    sudo python3 benchmarks/density.py --vm --apps 10 --every 5 --parallel 2    # idle apps
    sudo python3 benchmarks/density.py --vm --apps 0 --running-step 2 --running-max 80 --budget-minutes 42
"""

import argparse
import concurrent.futures
import itertools
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
    """KiB of PSS per app: its newest release's units together (app, proxy). An older release
    a link or a redeploy replaced may still be draining, until its retirement."""
    releases: dict[str, dict[int, int]] = {}
    for unit, kb in units.items():
        if "-r" in unit and unit.startswith("app"):
            name, _, rest = unit.partition("-r")
            number = int("".join(itertools.takewhile(str.isdigit, rest)) or 0)
            releases.setdefault(name, {}).setdefault(number, 0)
            releases[name][number] += kb
    return {name: by_release[max(by_release)] for name, by_release in releases.items()}


def running(host: testhost.TestHost) -> int:
    """The apps' running containers (the services' run all along)."""
    names = host.as_deploy_user("podman ps --format '{{.Names}}'").stdout.split()
    return sum(1 for name in names if name.startswith("podku-app"))


def wait_idle(host: testhost.TestHost, timeout: float = 120) -> None:
    """Until no app has a container, nor a process in its units: a container gone, its unit
    still runs `podman rm` (ExecStopPost) for a moment, tens of MiB."""
    deadline = time.monotonic() + timeout
    while (running(host) or any(per_app(pss_by_unit(host)).values())) and time.monotonic() < deadline:
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
    if getattr(host, "memory_cgroup", None) is None:
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


# A template's instances run in a slice of their own (app-podku\x2dpostgres.slice), not in
# app.slice where pss_by_unit looks: count the servers' processes by name.
SERVICE_PSS = ("for p in $(pgrep -x {process}); do awk '/^Pss:/ {{print $2}}' /proc/$p/smaps_rollup; done")
SERVICE_PROCESSES = {"postgres": "postgres", "redis": "redis-server"}


def start_services(host: testhost.TestHost) -> None:
    """One Postgres and one Redis, as `postgres:create` and `redis:create` make them."""
    from servicetools import import_postgres_image, import_redis_image
    import_postgres_image(host)
    import_redis_image(host)
    host.ssh("postgres:create", "db")
    host.ssh("redis:create", "cache")


def link_services(host: testhost.TestHost, app: str) -> None:
    host.ssh("postgres:link", "db", app)
    host.ssh("redis:link", "cache", app)


def services_memory(host: testhost.TestHost) -> str:
    parts = []
    for kind, process in SERVICE_PROCESSES.items():
        kb = sum(int(value) for value in host.sh(SERVICE_PSS.format(process=process)).stdout.split())
        parts.append(f"{kind} {kb / 1024:.1f}")
    return "services at rest: " + " + ".join(parts) + " MiB PSS"


def pressure(host) -> dict[str, int]:
    """Counters since the VM booted: OOM kills; pages scanned by kswapd (background reclaim,
    mostly page cache) and by allocating processes themselves (direct reclaim: an allocation
    waited for memory); refaults (pages read again soon after reclaim took them: thrashing)."""
    vmstat = {key: int(value) for key, value in
              (line.split() for line in host.run(["cat", "/proc/vmstat"]).stdout.splitlines())}
    return {"oom": vmstat.get("oom_kill", 0),
            "kswapd": sum(value for key, value in vmstat.items() if key.startswith("pgscan_kswapd")),
            "direct": sum(value for key, value in vmstat.items() if key.startswith("pgscan_direct")),
            "refault": sum(value for key, value in vmstat.items() if key.startswith("workingset_refault"))}


# Pages scanned by direct reclaim in one step (one more app) that count as reclaim "growing
# sharply": 64 MiB of 4 KiB pages, several times what one app adds. kswapd's background
# scanning does not count: it trims page cache (the VM's disk reads) from the first tens of
# apps on, with hundreds of MiB still available.
SHARP_RECLAIM_PAGES = 16384


def push_all(host, repo: testhost.AppRepo, numbers: list[int], parallel: int) -> None:
    """The same repository pushed as each app of `numbers`, `parallel` pushes at a time (each
    its own app and lock; only idle apps' memory is measured, after every push ended)."""
    def push(number: int) -> None:
        host.git(repo.path, "push", "--quiet", host.remote(f"app{number}"), "HEAD:main")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
        list(pool.map(push, numbers))


def running_until_pressure(host, repo: testhost.AppRepo, idle_apps: int, most: int, step: int,
                           deadline: float) -> None:
    """New apps with idle timeout 0 (running from their first request on), pushed `step` at a
    time (in parallel) beside the `idle_apps` idle ones (never requested again here: they stay idle),
    until the kernel's OOM killer fires, reclaim grows sharply, an app stops answering, `most`
    run, or the deadline passes: the largest count that ran with no OOM kill and no sharp reclaim."""
    host.podku("ps:set", "--global", "idle-timeout", "0")
    wait_idle(host)  # the idle checkpoint's requests woke every app
    start = last = pressure(host)
    base = host.used_mib()
    print(f"running phase: {idle_apps} idle apps stay idle; {base:.0f} MiB used before the first running app",
          flush=True)
    print("| running apps | containers running | used MiB | available MiB | MiB per running app | OOM kills "
          "| pages scanned by kswapd, direct (this step) | refaults (this step) | all answer |", flush=True)
    count, fitted, first_reclaim, reason = 0, 0, None, f"the cap of {most} apps"
    while count < most:
        if time.monotonic() > deadline:
            reason = "the time budget"
            break
        numbers = list(range(idle_apps + count, idle_apps + min(count + step, most)))
        failed = push_failures(host, repo, numbers)
        count += len(numbers)
        answers = [host.http_get(f"app{number}.podku.localhost")[0] for number in range(idle_apps, idle_apps + count)]
        time.sleep(5)
        now, info, used = pressure(host), host.meminfo(), host.used_mib()
        delta = {key: now[key] - last[key] for key in now}
        last = now
        ok = not failed and all(status == 200 for status in answers)
        print(f"| {count} | {running(host)} | {used:.0f} | {info['MemAvailable'] / 1024:.0f} | "
              f"{(used - base) / count:.1f} | {now['oom'] - start['oom']} | {delta['kswapd']}, {delta['direct']} | "
              f"{delta['refault']} | {ok} |", flush=True)
        if (delta["kswapd"] or delta["direct"]) and first_reclaim is None:
            first_reclaim = count
        if now["oom"] > start["oom"] or not ok or delta["direct"] > SHARP_RECLAIM_PAGES:
            reason = ("an OOM kill" if now["oom"] > start["oom"] else "a failed push or an app not answering"
                      if not ok else "direct reclaim growing sharply")
            break
        fitted = count
    print(f"stopped at {reason}; largest N running (beside {idle_apps} idle) with no OOM kill and no sharp "
          f"reclaim: {fitted}; first pages scanned at {first_reclaim or '-'} running apps", flush=True)


def push_failures(host, repo: testhost.AppRepo, numbers: list[int]) -> list[str]:
    """The apps of `numbers` pushed at once (one each, in parallel); the errors of those that failed."""
    def push(number: int) -> str:
        pushed = host.git(repo.path, "push", "--quiet", host.remote(f"app{number}"), "HEAD:main", check=False)
        return "" if pushed.returncode == 0 else f"push of app{number} failed: {pushed.stderr[-1500:]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(numbers)) as pool:
        failed = [error for error in pool.map(push, numbers) if error]
    for error in failed:
        print(error, flush=True)
    return failed


def checkpoints(apps: int, every: int) -> list[int]:
    """The app counts measured at: every `every`-th, and the last."""
    return sorted({*range(every, apps + 1, every), apps} - {0})


def after_push(host, args, number: int) -> None:
    if args.services:
        link_services(host, f"app{number}")


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
    parser.add_argument("--services", action="store_true",
                        help="one Postgres and one Redis service running, every app linked to both")
    parser.add_argument("--vm", action="store_true", help="the 1 GiB qemu VM of tests/vm, not a nspawn host")
    parser.add_argument("--running-max", type=int, default=60, help="--vm: most apps to run at once")
    parser.add_argument("--running-step", type=int, default=1,
                        help="--vm: apps pushed at once (in parallel) between two running checkpoints")
    parser.add_argument("--parallel", type=int, default=1,
                        help="pushes at a time between idle checkpoints (each a different app)")
    parser.add_argument("--budget-minutes", type=float, default=75,
                        help="--vm: no new running app after this many minutes of the whole run")
    args = parser.parse_args()
    started = time.monotonic()
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
        if args.services:
            start_services(host)
        repo = (vmhost.VmAppRepo if args.vm else testhost.AppRepo)(workdir / "app", host, "app0")
        repo.write(env={"MESSAGE": "dense"}, expose=args.expose)
        wait_idle(host)
        units = pss_by_unit(host)
        print(f"at rest, no app: Caddy {units.get('podku-caddy.service', 0) / 1024:.1f} MiB PSS, "
              f"host without page cache {host_memory(host):.0f} MiB", flush=True)
        rest0 = host_memory(host)
        pushed = 0
        for count in checkpoints(args.apps, args.every):
            numbers = list(range(pushed, count))
            if pushed == 0:  # the first app alone: the platform's cost with one idle app
                push_all(host, repo, numbers[:1], 1)
                after_push(host, args, 0)
                wait_idle(host)
                print(platform_with_one_idle_app(host), flush=True)
                if args.services:
                    print(services_memory(host), flush=True)
                numbers = numbers[1:]
            push_all(host, repo, numbers, args.parallel)
            for number in numbers:
                after_push(host, args, number)
            pushed = count
            first_requests(host, count)  # every app awake, for its memory
            awake = per_app(pss_by_unit(host))
            wait_idle(host)
            at_rest = host_memory(host)
            idle = sum(per_app(pss_by_unit(host)).values()) / count / 1024
            latencies = first_requests(host, count)
            ok = all(latency < 1 for latency in latencies)
            within = count if ok else within
            rows.append((count, statistics.median(latencies), max(latencies), at_rest,
                         statistics.mean(awake.values()) / 1024 if awake else 0, idle))
            print(f"| {count} | egress {args.egress}{', linked to postgres + redis' if args.services else ''} "
                  f"| {rows[-1][1]:.2f} | {rows[-1][2]:.2f} | {at_rest:.0f} | {rows[-1][4]:.1f} | {idle:.1f} |"
                  f" (host at rest {(at_rest - rest0) / count:+.2f} MiB per idle app since no app)",
                  flush=True)
        print(f"largest N with every first request after idle under 1 s: {within} of {args.apps}")
        if args.vm:
            deadline = started + args.budget_minutes * 60
            running_until_pressure(host, repo, args.apps, args.running_max, args.running_step, deadline)
    finally:
        host.destroy()


if __name__ == "__main__":
    main()
