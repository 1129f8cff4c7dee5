#!/usr/bin/env python3
"""Deploy time of apps without a Containerfile, on a booted test host (as root):
from the start of `git push` until the push returned and the new release answers through
Caddy. For Python (Flask + gunicorn), Node (one npm dependency) and a static site:
first deploy, code-only change, dependency change (not for static).

    sudo python3 benchmarks/deploy_time.py [--runs 5] [--out deploy_time.json] [--kinds python,node]
                                           [--egress on|off]

A first deploy's dependency files are unique per run (a comment, a package.json field), so
no run reuses another's dependency layer; a dependency change edits them again."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "host"))

import builderapps
from builderapps import SourceRepo

import testhost

DOMAIN = "podku.localhost"


def python_versions(run: int) -> list[tuple[str, dict[str, str], str]]:
    """(scenario, files, the body the new release answers)."""
    marker = f"# benchmark run {run}\n"
    return [("first deploy", builderapps.flask_app("v1", marker), "flask v1"),
            ("code-only change", builderapps.flask_app("v2", marker), "flask v2"),
            ("dependency change", builderapps.flask_app("v3", marker + "six==1.16.0\n"), "flask v3")]


def node_versions(run: int) -> list[tuple[str, dict[str, str], str]]:
    return [("first deploy", builderapps.node_app("v1", f"run {run}"), "node true v1"),
            ("code-only change", builderapps.node_app("v2", f"run {run}"), "node true v2"),
            ("dependency change", builderapps.node_app("v3", f"run {run} changed"), "node true v3")]


def static_versions(run: int) -> list[tuple[str, dict[str, str], str]]:
    return [("first deploy", builderapps.static_site(f"v1 run {run}"), f"static v1 run {run}"),
            ("code-only change", builderapps.static_site(f"v2 run {run}"), f"static v2 run {run}")]


KINDS = {"python": python_versions, "node": node_versions, "static": static_versions}


def timed_push(machine, repo: SourceRepo, files: dict[str, str], expected: str, log: Path) -> float:
    """Seconds from the push's start until the new release answers; the push's output is
    kept in `log`, each line with the seconds since the start (where the time goes)."""
    repo.write(files)
    start = time.monotonic()
    argv = ["ip", "netns", "exec", machine.netns, "git", "-C", str(repo.path), "push",
            machine.remote(repo.app), "HEAD:main"]
    with subprocess.Popen(argv, env=machine.git_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as push, open(log, "a") as out:
        for line in push.stderr:
            out.write(f"[{time.monotonic() - start:6.2f}] {line}")
    if push.returncode != 0:
        raise RuntimeError(f"push of {repo.app} failed: see {log}")
    answered = builderapps.wait_for_answer(machine, f"{repo.app}.{DOMAIN}", expected) - start
    with open(log, "a") as out:
        out.write(f"[{answered:6.2f}] answered {expected!r}\n")
    return answered


def measure(machine, workdir: Path, runs: int, logs: Path, kinds: list[str]) -> list[dict]:
    records = []
    for run in range(1, runs + 1):
        for kind in kinds:
            versions = KINDS[kind]
            repo = SourceRepo(workdir / f"{kind}{run}", machine, f"bench-{kind}-{run}")
            for scenario, files, expected in versions(run):
                log = logs / f"{kind}-{run}-{scenario.replace(' ', '-')}.log"
                seconds = timed_push(machine, repo, files, expected, log)
                records.append({"kind": kind, "scenario": scenario, "run": run, "seconds": round(seconds, 3)})
                print(f"{kind:<7} {scenario:<18} run {run}: {seconds:6.2f} s", flush=True)
    return records


def table(records: list[dict]) -> str:
    rows = ["| app | deploy | runs | median s | max s |", "| --- | --- | --- | --- | --- |"]
    keys = dict.fromkeys((r["kind"], r["scenario"]) for r in records)
    for kind, scenario in keys:
        values = [r["seconds"] for r in records if (r["kind"], r["scenario"]) == (kind, scenario)]
        rows.append(f"| {kind} | {scenario} | {len(values)} | {statistics.median(values):.2f} | {max(values):.2f} |")
    return "\n".join(rows)


def machine_info() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory = next(int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores ({model}), {memory} MiB RAM, load average before: {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("deploy_time.json"))
    parser.add_argument("--logs", type=Path, default=Path("deploy_time_logs"), help="each push's output, timed")
    parser.add_argument("--kinds", default=",".join(KINDS), help="which apps, of " + ", ".join(KINDS))
    parser.add_argument("--egress", choices=("on", "off"), default="on",
                        help="the apps' outbound network (network:set --global egress)")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: one or more of {', '.join(KINDS)}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still destroys the test host
    info = machine_info()
    machine = testhost.TestHost(f"bench{os.getpid() % 100000}", *testhost.build_images())
    server = None
    try:
        machine.boot()
        machine.install()
        server = builderapps.prepare_host(machine)
        machine.podku("network:set", "--global", "egress", args.egress)
        with tempfile.TemporaryDirectory(prefix="podku-bench-") as workdir:
            args.logs.mkdir(parents=True, exist_ok=True)
            records = measure(machine, Path(workdir), args.runs, args.logs, kinds)
    finally:
        if server:
            server.close()
        machine.destroy()
    args.out.write_text(json.dumps({"machine": info, "records": records}, indent=2) + "\n")
    print(f"{info}; egress {args.egress}")
    print(table(records))


if __name__ == "__main__":
    main()
