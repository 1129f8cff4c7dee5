"""Issue 14, holes 5, 9 and 10, against an installed host over real ssh: builds cannot reach
the host's loopback services (RUN steps, ADD URLs) but still reach a mirror on the host's
network; a health check that trickles its answer fails within its configured bound; deploy
tasks run with the release's storage mounts and limits."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import builderapps
import pytest

DOMAIN = "podku.localhost"
HOME = "/home/podku"
# Every way a RUN step could reach the host's own loopback: its own 127.0.0.1 (the build's
# namespace, not the host's), slirp4netns' gateway (the host's 127.0.0.1 unless disabled),
# its IPv6 gateway, and the host's ask server behind it (on 127.0.0.1:2020, or :8 since
# issue 14's Caddy round).
LOOPBACK_PROBES = (("127.0.0.1", 22), ("10.0.2.2", 22), ("10.0.2.2", 2020), ("10.0.2.2", 8), ("fd00::2", 22),
                   ("::1", 22))
PROBE = ("import socket, sys\n"
         "reached = False\n"
         "for host, port in {probes!r}:\n"
         "    try:\n"
         "        socket.create_connection((host, port), timeout=3).close()\n"
         "        print('PROBE reached', host, port)\n"
         "        reached = True\n"
         "    except OSError as error:\n"
         "        print('PROBE refused', host, port, type(error).__name__)\n"
         "sys.exit(1 if sys.argv[1:] == ['--need-loopback'] and not reached else 0)\n")
FETCH = ("import ssl, sys, urllib.request\n"
         "context = ssl.create_default_context(cafile='/etc/ssl/certs/ca-certificates.crt')\n"
         "print('MIRROR', urllib.request.urlopen(sys.argv[1], timeout=10, context=context).status)\n")


def one_line_reason(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("remote:  !     ")]


def write_probe(app_repo, *arguments: str) -> None:
    (app_repo.path / "probe.py").write_text(PROBE.format(probes=LOOPBACK_PROBES))
    app_repo.write(env={"MESSAGE": "probed"}, extra=" ".join(["COPY probe.py /probe.py\nRUN python3 /probe.py",
                                                               *arguments]))


def build_networks_left(host) -> str:
    """Build network containers, and slirp4netns processes whose namespace is no running
    container's (apps' containers have one each: egress, issue 16)."""
    containers = host.as_deploy_user("podman ps --all --filter label=podku.build-network --format '{{.Names}}'")
    namespaces = set(host.as_deploy_user("podman ps --quiet | xargs -r podman inspect --format "
                                         "'{{.NetworkSettings.SandboxKey}}'").stdout.split())
    slirps = host.run(["pgrep", "-a", "slirp4netns"], check=False).stdout.splitlines()
    orphans = [line for line in slirps if not namespaces & set(line.split())]
    return containers.stdout.strip() + "\n".join(orphans)


# --- hole 5: builds leave the host's network ---------------------------------------------------

def test_run_steps_reach_no_loopback_service_of_the_host_and_the_build_completes(host, app_repo):
    app_repo.deploy("before")
    write_probe(app_repo)
    started = time.monotonic()
    pushed = app_repo.push()
    print(f"build with a probing RUN step: push took {time.monotonic() - started:.1f}s")
    probes = [line.removeprefix("remote: ").strip() for line in pushed.stderr.splitlines() if "PROBE " in line]
    assert len(probes) == len(LOOPBACK_PROBES), pushed.stderr
    assert all(line.startswith("PROBE refused") for line in probes), probes
    assert host.http_get(f"{app_repo.app}.{DOMAIN}") == (200, "probed r2")
    assert build_networks_left(host) == ""  # its slirp4netns lived only while it built


def test_a_run_step_that_needs_the_hosts_loopback_fails_the_push(host, app_repo):
    app_repo.deploy("before")
    write_probe(app_repo, "--need-loopback")
    pushed = app_repo.push(check=False)
    assert pushed.returncode != 0
    assert "PROBE reached" not in pushed.stderr
    assert host.http_get(f"{app_repo.app}.{DOMAIN}") == (200, "before r1")


@pytest.mark.parametrize("add", ["ADD http://127.0.0.1:2020/check?domain=x /x", "add HTTP://0x7f.1:22/ /x",
                                 "ADD http://[::1]:2020/ /x", "ADD \\\n  http://localhost:2020/ /x"])
def test_add_of_a_url_is_refused_naming_the_line_and_nothing_is_fetched(host, app_repo, add):
    app_repo.deploy("before")
    app_repo.write(env={"MESSAGE": "after"}, extra=add)
    pushed = app_repo.push(check=False)
    assert pushed.returncode != 0
    reasons = one_line_reason(pushed.stderr)
    assert reasons and reasons[0].startswith("remote:  !     Containerfile: line 4: ADD of a URL is not supported"), \
        pushed.stderr
    assert "STEP 1/" not in pushed.stderr  # refused before podman ran
    assert host.http_get(f"{app_repo.app}.{DOMAIN}") == (200, "before r1")


@pytest.fixture(scope="module")
def mirror(host):
    server = builderapps.PackageServer(host)
    try:
        yield f"https://{builderapps.PKG_ADDRESS}:{builderapps.PKG_PORT}"
    finally:
        server.close()


def test_outbound_connections_from_run_steps_reach_a_mirror_on_the_hosts_network(host, app_repo, mirror):
    (app_repo.path / "fetch.py").write_text(FETCH)
    app_repo.write(env={"MESSAGE": "outbound"},
                   extra=f"COPY fetch.py /fetch.py\nRUN python3 /fetch.py {mirror}/simple/flask/")
    pushed = app_repo.push()
    assert "MIRROR 200" in pushed.stderr, pushed.stderr
    assert host.http_get(f"{app_repo.app}.{DOMAIN}") == (200, "outbound r1")


# --- hole 9: one deadline for a whole health check ----------------------------------------------

TRICKLING_CHECK = {"healthchecks": {"web": [{"path": "/trickle", "attempts": 2, "timeout": 2, "wait": 1}]}}


def test_a_trickling_health_check_fails_within_its_bound_and_the_old_release_serves(host, app_repo):
    (app_repo.path / "app.json").write_text(json.dumps(TRICKLING_CHECK))
    app_repo.deploy("steady")  # /trickle answers at once without TRICKLE
    app_repo.write(env={"MESSAGE": "trickling", "TRICKLE": "0.5"})  # a byte each 0.5 s, for ever
    started = time.monotonic()
    pushed = app_repo.push(check=False)
    took = time.monotonic() - started
    print(f"push of a release whose check trickles (bound 5 s): {took:.1f}s")
    assert pushed.returncode != 0
    assert "health check /trickle failed 2 times: TimeoutError" in pushed.stderr, pushed.stderr
    assert took < 60, took  # without the deadline: never (a million bytes at 2 a second)
    assert host.http_get(f"{app_repo.app}.{DOMAIN}") == (200, "steady r1")
    assert host.http_get(f"{app_repo.app}.{DOMAIN}", "/trickle") == (200, "steady r1")


# --- hole 10: deploy tasks get the release's mounts and limits ------------------------------------

TASK = ("import os, sys, time\n"
        "with open('/data/from-predeploy.txt', 'w') as out:\n"
        "    out.write('written by the predeploy task of r' + os.environ['PODKU_RELEASE'])\n"
        "for path in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):\n"
        "    if os.path.exists(path):\n"
        "        print('TASK memory limit', path, open(path).read().strip(), flush=True)\n"
        "time.sleep(float(sys.argv[1]))\n")
MEMORY = 96 * 1024 * 1024


def task_podman(host, app: str) -> str:
    found = host.run(["pgrep", "-a", "-u", "podku", "-f", f"podman run .*podku-{app}-r[0-9]+-predeploy"], check=False)
    return found.stdout


def test_a_predeploy_task_sees_the_apps_storage_and_gets_its_memory_limit(host, app_repo):
    app = app_repo.app
    app_repo.deploy("before")
    host.ssh("storage:ensure-directory", f"{app}-data")
    host.ssh("storage:mount", app, f"{app}-data:/data")
    host.ssh("resource:limit", app, "--memory", "96M")
    (app_repo.path / "task.py").write_text(TASK)
    (app_repo.path / "app.json").write_text(json.dumps({"scripts": {"dokku": {"predeploy": "python3 /app/task.py 6"}}}))
    app_repo.write(env={"MESSAGE": "tasked"}, extra="COPY task.py /app/task.py")
    result: dict[str, subprocess.CompletedProcess] = {}
    pusher = threading.Thread(target=lambda: result.update(push=app_repo.push(check=False)))
    pusher.start()
    try:
        deadline, seen = time.monotonic() + 120, ""
        while not seen and pusher.is_alive() and time.monotonic() < deadline:
            seen = task_podman(host, app)
            time.sleep(0.2)
    finally:
        pusher.join(timeout=300)
    pushed = result["push"]
    assert pushed.returncode == 0, pushed.stderr
    assert f"--memory={MEMORY}" in seen and f"/storage/{app}-data:/data:U" in seen, seen
    limits = [line for line in pushed.stderr.splitlines() if "TASK memory limit" in line]
    # Enforced (cgroup v2: memory.max is the limit) or, on this cgroup v1 hybrid host, podman
    # says it ignores the limit it was given: either way the task got it.
    enforced = any(line.endswith(str(MEMORY)) for line in limits)
    assert enforced or "Resource limits are not supported and ignored on cgroups V1 rootless" in pushed.stderr, \
        pushed.stderr
    print(f"predeploy task memory limit: {'enforced' if enforced else 'passed to podman, not enforced (cgroup v1)'}")
    status, body = host.http_get(f"{app}.{DOMAIN}")
    assert status == 200 and body.startswith("tasked r"), (status, body)
    written = host.ssh("run", app, "cat", "/data/from-predeploy.txt").stdout
    assert written == f"written by the predeploy task of {body.removeprefix('tasked ')}"
