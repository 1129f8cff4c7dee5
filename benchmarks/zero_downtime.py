#!/usr/bin/env python3
"""Zero-downtime benchmark: constant concurrent load through Caddy while podku swaps.

Boots a disposable test host (the same systemd-nspawn host as the host tests), installs
podku with install.sh, pushes an app over ssh, then for each kind of swap and each
keep-alive mode runs tests/host-style load (benchmarks/load.py) during the swaps and
prints one line of figures. Run as root:

    sudo python3 benchmarks/zero_downtime.py [--swaps 5] [--clients 8] [--tls auto]

--tls auto installs with public names going to a local pebble ACME server inside the test
host (never a public CA), as tests/host/test_domains.py does; the default is --tls internal.
"""

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "host"))
from test_domains import start_pebble

import testhost


def redeploy(repo: testhost.AppRepo, state: dict) -> None:
    state["n"] += 1
    started = time.monotonic()
    if state.get("static"):
        push_static_site(repo, f"bench-{state['n']}")
    else:
        repo.deploy(f"bench-{state['n']}", **state.get("deploy", {}))
    state.setdefault("push_seconds", []).append(time.monotonic() - started)


def push_static_site(repo: testhost.AppRepo, message: str) -> None:
    """A static site (public/, no Containerfile): Caddy serves its files, no container."""
    (repo.path / "Containerfile").unlink(missing_ok=True)
    (repo.path / "public").mkdir(exist_ok=True)
    (repo.path / "public" / "index.html").write_text(message)
    repo._git("add", "-A")
    repo._git("commit", "-q", "-m", message)
    repo.push()


def config_set(repo: testhost.AppRepo, state: dict) -> None:
    state["n"] += 1
    repo.host.ssh("config:set", repo.app, f"GREETING=g{state['n']}")


def restart(repo: testhost.AppRepo, state: dict) -> None:
    repo.host.ssh("ps:restart", repo.app)


def rollback(repo: testhost.AppRepo, state: dict) -> None:
    repo.host.ssh("rollback", repo.app)


def kill(repo: testhost.AppRepo, state: dict) -> None:
    live = repo.host.ssh("releases", repo.app).stdout
    release = next(line.split()[1].lstrip("v") for line in live.splitlines() if line.startswith("*"))
    repo.host.as_deploy_user(
        f"kill -KILL $(podman inspect --format '{{{{.State.Pid}}}}' podku-{repo.app}-r{release})")
    time.sleep(2)


def other_apps(repo: testhost.AppRepo, state: dict) -> None:
    """Route changes elsewhere: another app created, given a name, and destroyed."""
    state["n"] += 1
    other = f"{repo.app}o{state['n']}"
    repo.host.ssh("apps:create", other)
    repo.host.ssh("domains:add", other, f"{other}.example.org")
    repo.host.ssh("domains:remove", other, f"{other}.example.org")
    repo.host.ssh("apps:destroy", other, "--force")


def internal_names(repo: testhost.AppRepo, state: dict) -> None:
    """Internal names (.test, .internal) added to and removed from another app: under --tls
    auto these once went into Caddy's config; now the internal CA's policy covers them all."""
    other = f"{repo.app}i"
    if not state.get("internal_app"):
        repo.host.ssh("apps:create", other)
        state["internal_app"] = other
    names = (f"{other}.test", f"a.b.{other}.internal")
    repo.host.ssh("domains:add", other, *names)
    repo.host.ssh("domains:remove", other, *names)


def proxy_settings(repo: testhost.AppRepo, state: dict) -> None:
    """Every proxy setting switched on and off on another app, and the body limit on this one."""
    other = f"{repo.app}p"
    if not state.get("proxy_app"):
        repo.host.ssh("apps:create", other)
        state["proxy_app"] = other
    ssh = repo.host.ssh
    ssh("maintenance:enable", other)
    ssh("maintenance:disable", other)
    ssh("http-auth:enable", other, "user", input="password\n")
    ssh("http-auth:disable", other)
    ssh("redirect:set", other, f"{other}.podku.localhost", "example.org", "308")
    ssh("redirect:unset", other, f"{other}.podku.localhost")
    for key, value in (("client-max-body-size", "10m"), ("https-only", "on"), ("hsts", "600")):
        ssh("proxy:set", other, key, value)
        ssh("proxy:unset", other, key)
    ssh("proxy:set", repo.app, "client-max-body-size", "50m")
    ssh("proxy:unset", repo.app, "client-max-body-size")


SCENARIOS = {"redeploy": redeploy, "config:set": config_set, "ps:restart": restart,
             "rollback": rollback, "SIGKILL": kill, "other apps": other_apps, "proxy settings": proxy_settings,
             "internal names": internal_names}


HTTPS_SCENARIOS = ("redeploy", "other apps", "proxy settings", "internal names")
# Test hosts use Caddy's internal CA (install.sh --tls internal): its root verifies the load.
CADDY_ROOT = "home/podku/.local/share/caddy/pki/authorities/local/root.crt"


def measure(host: testhost.TestHost, repo: testhost.AppRepo, name: str, swaps: int, keepalive: str,
            clients: int, workdir: Path, state: dict, https: bool = False) -> str:
    cacert = host.root / CADDY_ROOT if https else None
    with testhost.LoadRun(host, repo.app, workdir, clients=clients, keepalive=keepalive, cacert=cacert,
                          post_every=0) as run:  # GETs: the README's figures are for GETs
        for _ in range(swaps):
            SCENARIOS[name](repo, state)
        time.sleep(1)
    summary = run.summary
    figures = " ".join(f"{key}={summary[key]}" for key in
                       ("requests", "non2xx", "errors", "p50_ms", "p99_ms", "max_ms", "longest_gap_s"))
    return f"| {name}{' (HTTPS)' if https else ''} | {repo.app} | {keepalive} | {swaps} | {figures} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of: {', '.join(SCENARIOS)} (HTTPS rows: {', '.join(HTTPS_SCENARIOS)})")
    parser.add_argument("--apps", default="fdapp,portapp",
                        help="comma-separated, of: fdapp, portapp, staticapp (no SIGKILL row: no container)")
    parser.add_argument("--tls", choices=("internal", "auto"), default="internal",
                        help="auto: public names from a local pebble inside the test host")
    args = parser.parse_args()
    chosen = args.scenarios.split(",")
    if not set(chosen) <= set(SCENARIOS):
        parser.error(f"unknown scenario in {args.scenarios!r}")
    rootfs, base = testhost.build_images()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still remove the test host
    host = testhost.TestHost("bench", rootfs, base)
    workdir = Path(tempfile.mkdtemp(prefix="podku-bench-"))
    try:
        host.boot()
        if args.tls == "auto":
            start_pebble(host)
            host.install("--tls", "auto", "--acme-ca", "https://localhost:14000/dir",
                         "--acme-ca-root", "/etc/pebble/ca.pem")
        else:
            host.install()
        cores = os.cpu_count()
        print(f"machine: {platform.node()} {platform.machine()}, {cores} cores; "
              f"kernel {platform.release()}; test host: Debian 12 in systemd-nspawn, --tls {args.tls}", flush=True)
        for app, deploy_options in (("fdapp", {}), ("portapp", {"expose": 8000}), ("staticapp", None)):
            if app not in args.apps.split(","):
                continue
            repo = testhost.AppRepo(workdir / app, host, app)
            state = {"n": 0, "deploy": deploy_options or {}, "static": deploy_options is None}
            redeploy(repo, state)
            state["push_seconds"] = []
            names = [name for name in chosen if not (state["static"] and name == "SIGKILL")]
            rows = [(name, False) for name in names] + [(name, True) for name in HTTPS_SCENARIOS if name in names]
            for name, https in rows:
                if https:
                    host.in_netns(["curl", "-sS", "-o", "/dev/null", "--cacert", str(host.root / CADDY_ROOT),
                                   "--resolve", f"{app}.podku.localhost:443:127.0.0.1",
                                   f"https://{app}.podku.localhost/"])  # the certificate, issued on demand
                for keepalive in ("on", "off"):
                    print(measure(host, repo, name, args.swaps, keepalive, args.clients, workdir, state, https),
                          flush=True)
            pushes = state["push_seconds"]
            if not pushes:  # no redeploy scenario chosen
                continue
            print(f"{app}: code-only redeploy (git push to app answering from the new release): "
                  f"median {statistics.median(pushes):.2f}s, max {max(pushes):.2f}s over {len(pushes)} pushes",
                  flush=True)
    finally:
        host.destroy()


if __name__ == "__main__":
    main()
