#!/usr/bin/env python3
"""What podman's `:U` volume option costs at every container start: a service's data
directory (podku-postgres@, podku-redis@) is mounted with `:U`, which makes podman walk the
whole tree (an lstat per file) before each start and chown what the container user does not
own. Boots a test host, installs podku, then times `podman run --rm` of the base image as
the deploy user with a directory of N files mounted with and without `:U` (the first `:U`
start chowns every file; later ones only walk). Run as root:

    sudo python3 benchmarks/volume_chown.py [--files 1000,20000,100000] [--runs 3]
"""

import argparse
import platform
import signal
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "host"))
import testhost

USER = "70:70"  # any user of the container but root, as a service runs


def make_tree(host: testhost.TestHost, directory: str, files: int) -> None:
    """`files` empty files, 100 to a directory (a Postgres data directory's shape, roughly)."""
    host.as_deploy_user(f"rm -rf {directory} && mkdir -p {directory} && cd {directory} && "
                        f"seq 0 {files - 1} | awk '{{printf \"d%d/f%d\\n\", int($1/100), $1}}' > ../list && "
                        f"cut -d/ -f1 ../list | sort -u | xargs mkdir -p && xargs touch < ../list && rm ../list")


def timed_start(host: testhost.TestHost, image: str, volume: str) -> float:
    script = (f"s=$(date +%s.%N); podman run --rm --network=none --user {USER} --volume {volume} {image} true; "
              f"e=$(date +%s.%N); awk \"BEGIN {{print $e - $s}}\"")
    return float(host.as_deploy_user(script).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="1000,20000,100000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    host = testhost.TestHost("chownbench", *testhost.build_images())
    try:
        host.boot()
        host.install()
        image = host.as_deploy_user("podman images --format '{{.Repository}}:{{.Tag}}'").stdout.split()[0]
        print(f"machine: {platform.node()} {platform.machine()}, kernel {platform.release()}; test host: "
              f"Debian 12 in systemd-nspawn, podman 4.3.1; image {image}; median of {args.runs} starts")
        print("| files | start without :U s | first start with :U (chowns all) s | later starts with :U s |")
        print("| --- | --- | --- | --- |")
        for files in (int(count) for count in args.files.split(",")):
            directory = "$HOME/chown-bench/data"
            make_tree(host, directory, files)
            plain = statistics.median(timed_start(host, image, f"{directory}:/data") for _ in range(args.runs))
            first = timed_start(host, image, f"{directory}:/data:U")
            later = statistics.median(timed_start(host, image, f"{directory}:/data:U") for _ in range(args.runs))
            print(f"| {files} | {plain:.2f} | {first:.2f} | {later:.2f} |", flush=True)
            host.as_deploy_user("podman unshare rm -rf $HOME/chown-bench")
    finally:
        host.destroy()


if __name__ == "__main__":
    main()
