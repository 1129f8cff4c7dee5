"""A small host: storage that survives deploys, rollbacks and reboots; idle apps scaled to
zero; resource limits (or the plain word that this host cannot enforce them); a backup
moved to a fresh host; hostile input to every new command."""

from __future__ import annotations

import statistics
import subprocess
import time

import pytest

import testhost

DOMAIN = "podku.localhost"
USER_IMAGE = "USER 1000:1000"  # an image that does not run as root


def host_bytes(machine: testhost.TestHost, argv: list[str], stdin: bytes | None = None
               ) -> subprocess.CompletedProcess:
    """A command inside the host as root, with binary stdin/stdout (backups)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "HOME": "/root"}
    return subprocess.run(["nsenter", "-t", str(machine._leader()), "-a", "--", *argv], input=stdin,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)


def containers(machine: testhost.TestHost, app: str) -> list[str]:
    listing = machine.as_deploy_user(f"podman ps --filter label=podku.app={app} --format '{{{{.Names}}}}'")
    return listing.stdout.split()


def in_container(machine: testhost.TestHost, app: str, script: str) -> str:
    """Run `script` in the app's one container, once the release before it has retired."""
    wait_until(lambda: len(containers(machine, app)) == 1, 60, f"{app} to run one container")
    [name] = containers(machine, app)
    return machine.as_deploy_user(f"podman exec {name} sh -c '{script}'").stdout


def get(machine: testhost.TestHost, app: str, path: str = "/") -> tuple[int, str]:
    return machine.http_get(f"{app}.{DOMAIN}", path)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_storage_survives_redeploys_rollbacks_and_restarts_for_a_non_root_user(host, app_repo):
    app = app_repo.app
    app_repo.deploy("one", extra=USER_IMAGE)
    host.ssh("checks:set", app, "wait-to-retire", "1")
    host.ssh("storage:ensure-directory", f"{app}-data")
    mounted = host.ssh("storage:mount", app, f"{app}-data:/data")
    assert "Mount" in mounted.stderr + mounted.stdout
    assert in_container(host, app, "id -u; echo first > /data/f; cat /data/f") == "1000\nfirst\n"
    app_repo.deploy("two", extra=USER_IMAGE)
    assert in_container(host, app, "echo second >> /data/f; cat /data/f") == "first\nsecond\n"
    host.ssh("rollback", app, "1")  # release 1 had no mount: mounts are the app's, not the release's
    assert get(host, app) == (200, "one r4")
    host.ssh("ps:restart", app)
    assert in_container(host, app, "cat /data/f") == "first\nsecond\n"
    listing = host.ssh("storage:list", app).stdout
    assert f"/home/podku/.local/share/podku/storage/{app}-data:/data" in listing
    host.ssh("storage:unmount", app, f"{app}-data:/data")
    assert in_container(host, app, "test -e /data/f && echo present || echo absent") == "absent\n"


@pytest.mark.parametrize("expose", [None, 8000], ids=["fd3", "port"])
def test_an_idle_app_has_no_container_and_answers_its_next_request(host, app_repo, expose):
    app = app_repo.app
    app_repo.deploy("sleepy", expose=expose)
    host.ssh("checks:set", app, "wait-to-retire", "1")
    host.ssh("ps:set", app, "idle-timeout", "5s")
    latencies = []
    for _ in range(3):
        assert get(host, app) == (200, "sleepy r2")
        wait_until(lambda: containers(host, app) == [], 60, "the idle app to stop")
        assert "idle (no container" in host.ssh("ps:report", app).stdout
        started = time.monotonic()
        assert get(host, app) == (200, "sleepy r2")
        latencies.append(time.monotonic() - started)
    print(f"first request after idle ({'$PORT' if expose else 'fd 3'}): median "
          f"{statistics.median(latencies):.2f}s, max {max(latencies):.2f}s")
    assert max(latencies) < 10
    host.ssh("ps:set", app, "idle-timeout", "0")
    time.sleep(8)
    assert len(containers(host, app)) == 1 and "running" in host.ssh("ps:report", app).stdout


def test_memory_limits_are_enforced_or_said_plainly_not_to_be(host, app_repo):
    app = app_repo.app
    app_repo.deploy("limited")
    limited = host.ssh("resource:limit", app, "--memory", "64M", "--pids", "128")
    report = host.ssh("resource:report", app).stdout
    assert "memory 64M, pids 128" in report
    if "not enforced on this host" in report:
        assert "not enforced on this host: cgroup v1" in limited.stderr
        assert get(host, app) == (200, "limited r2")
        return
    oom_kill_restarts_the_app_while_others_answer(host, app_repo)


def oom_kill_restarts_the_app_while_others_answer(host, app_repo) -> None:
    """Only where limits are enforced (cgroup v2, controllers delegated): never run on the
    build machine, whose hosts are cgroup v1 hybrid."""
    app, neighbour = app_repo.app, f"{app_repo.app}n"
    host.ssh("apps:create", neighbour)
    host.git(app_repo.path, "push", "--quiet", host.remote(neighbour), "HEAD:main")
    unit = f"{app}-r2.service"  # the release the limit made (naming.release_unit)
    restarts = f"systemctl --user show {unit} -p NRestarts --value"
    before = int(host.as_deploy_user(restarts).stdout)
    status, _ = get(host, app, "/allocate/200")  # over its 64M: the kernel kills it mid-request
    assert status != 200
    wait_until(lambda: get(host, app) == (200, "limited r2"), 60, "the app back after its OOM kill")
    assert int(host.as_deploy_user(restarts).stdout) > before
    assert get(host, neighbour)[0] == 200


HOSTILE = [
    ["storage:ensure-directory", "../etc"], ["storage:ensure-directory", "a;id"],
    ["storage:ensure-directory", "$(id)"], ["storage:ensure-directory", "a\nb"],
    ["storage:mount", "APP", "x:/a/../../etc"], ["storage:mount", "APP", "x:/"],
    ["storage:mount", "APP", "x:/proc/self"], ["storage:mount", "APP", "x:/a;id"],
    ["storage:mount", "APP", "x:/$(id)"], ["storage:mount", "APP", "x:/a\x07"],
    ["storage:mount", "APP", "../../x:/a"], ["storage:mount", "--", "APP", "x:/../a"],
    ["storage:unmount", "APP", "x:/nothing"],
    ["resource:limit", "APP", "--memory", "12zb"], ["resource:limit", "APP", "--memory", "-1G"],
    ["resource:limit", "APP", "--memory", "99999999999G"], ["resource:limit", "APP", "--cpu", "1;id"],
    ["resource:limit", "APP", "--pids", "$(id)"], ["resource:limit", "../x", "--memory", "1G"],
    ["ps:set", "APP", "idle-timeout", "-5"], ["ps:set", "APP", "idle-timeout", "5m;id"],
    ["ps:set", "APP", "idle-timeout", "9" * 40], ["ps:set", "APP", "other", "1"],
    ["ps:set", "APP/..", "idle-timeout", "5m"], ["ps:report", "a\nb"],
]


def test_hostile_input_is_one_line_and_changes_nothing(host, app_repo):
    app = app_repo.app
    app_repo.deploy("steady")
    host.ssh("storage:ensure-directory", "x")
    before = host.ssh("releases", app).stdout
    for words in HOSTILE:
        words = [word.replace("APP", app) for word in words]
        refused = host.ssh(*words, check=False)
        assert refused.returncode != 0, words
        assert len(refused.stderr.strip().splitlines()) == 1, (words, refused.stderr)
    assert host.ssh("releases", app).stdout == before
    assert host.ssh("storage:list", app).stdout.strip().endswith("bind-mounts")
    assert "Own limits:                 -" in host.ssh("resource:report", app).stdout
    for data in (b"", b"not a tar at all\n" * 50):
        refused = host_bytes(host, ["podku", "backup:import"], stdin=data)
        assert refused.returncode != 0 and b"not a podku backup" in refused.stderr


def test_a_backup_moves_apps_config_and_storage_to_a_fresh_host(host, app_repo, fresh_host):
    app = app_repo.app
    app_repo.deploy("moving")
    host.ssh("config:set", app, "GREETING=moved")
    host.ssh("storage:ensure-directory", f"{app}-files")
    host.ssh("storage:mount", app, f"{app}-files:/files")
    in_container(host, app, "echo precious > /files/kept")
    exported = host_bytes(host, ["podku", "backup:export"])
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout[:512].find(b"MANIFEST") >= 0
    archive = testhost.only_app(exported.stdout, app, f"{app}-files")

    fresh_host.install()
    truncated = host_bytes(fresh_host, ["podku", "backup:import"], stdin=archive[: len(archive) // 2])
    assert truncated.returncode != 0 and b"truncated" in truncated.stderr
    assert fresh_host.podku("apps:list").stdout.split() == ["=====>", "My", "Apps"]
    imported = host_bytes(fresh_host, ["podku", "backup:import"], stdin=archive)
    assert app.encode() in imported.stderr + imported.stdout
    assert get(fresh_host, app, "/config") == (200, "moved")
    assert in_container(fresh_host, app, "cat /files/kept") == "precious\n"
    again = host_bytes(fresh_host, ["podku", "backup:import"], stdin=archive)
    assert again.returncode != 0 and b"already exist on this host: " in again.stderr
    fresh_host.reboot()
    assert get(fresh_host, app, "/config") == (200, "moved")
    assert in_container(fresh_host, app, "cat /files/kept") == "precious\n"
