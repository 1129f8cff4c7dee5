#!/usr/bin/env python3
"""git:load-image on a booted test host (as root): an image built on the host from the
python base plus the test app, saved with `podman save`, then sent over ssh N times. For
each run: the archive's size, the seconds until `git:load-image` returned (received, checked,
loaded, health-checked, swapped) and until the new release answered through Caddy, and the
deploy user's podku's peak resident memory while it received (sampled from /proc).

    sudo python3 benchmarks/load_image.py [--runs 3] [--out load_image.json]"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "host"))

import testhost

WORK = "/var/tmp/bench-image"


def build_archive(machine: testhost.TestHost) -> bytes:
    context = machine.root / WORK.lstrip("/")
    context.mkdir(parents=True, exist_ok=True)
    (context / "testapp.py").write_bytes((testhost.APPS_DIR / "testapp.py").read_bytes())
    (context / "Containerfile").write_text("FROM localhost/podku/python:3.11\nCOPY testapp.py /app/testapp.py\n"
                                           "ENV MESSAGE=bench\nCMD [\"python3\", \"/app/testapp.py\"]\n")
    machine.run(["chown", "-R", "podku:podku", WORK])
    machine.as_deploy_user(f"cd {WORK} && podman build --quiet --network=none --tag localhost/bench/app:1 . && "
                           f"podman save --output {WORK}/image.tar localhost/bench/app:1 && "
                           "podman rmi localhost/bench/app:1")
    return (context / "image.tar").read_bytes()


def peak_rss(machine: testhost.TestHost, stop: threading.Event, peaks: list[int]) -> None:
    """The largest VmRSS (KiB) of a `podku ssh-command` process, sampled every 0.1 s."""
    script = ("for p in $(pgrep -u podku -f 'ssh-command'); do grep VmRSS /proc/$p/status; done 2>/dev/null"
              " | awk '{print $2}'")
    while not stop.is_set():
        found = machine.run(["sh", "-c", script], check=False).stdout.split()
        peaks.append(max((int(value) for value in found), default=0))
        time.sleep(0.1)


def timed_load(machine: testhost.TestHost, app: str, data: bytes, release: int) -> dict:
    argv = ["ssh", "-i", str(machine.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "podku@127.0.0.1", "git:load-image", app]
    stop, peaks = threading.Event(), []
    sampler = threading.Thread(target=peak_rss, args=(machine, stop, peaks), daemon=True)
    sampler.start()
    start = time.monotonic()
    result = subprocess.run(["ip", "netns", "exec", machine.netns, *argv], input=data, capture_output=True)
    returned = time.monotonic() - start
    stop.set()
    sampler.join()
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode(errors="replace"))
    while machine.http_get(f"{app}.podku.localhost") != (200, f"bench r{release}"):
        time.sleep(0.05)
    return {"archive_mib": round(len(data) / 2 ** 20, 1), "returned_s": round(returned, 2),
            "answered_s": round(time.monotonic() - start, 2), "peak_rss_mib": round(max(peaks, default=0) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    machine = testhost.TestHost("benchimage", *testhost.build_images())
    try:
        machine.boot()
        machine.install()
        data = build_archive(machine)
        machine.ssh("apps:create", "bench")
        results = [timed_load(machine, "bench", data, run) for run in range(1, args.runs + 1)]
    finally:
        machine.destroy()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
