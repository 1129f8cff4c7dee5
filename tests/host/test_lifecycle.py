"""Releases, rollback limits, image pruning, app.json health checks, checks settings, destroy."""

import json
import re
import shlex
import subprocess
import time


def images_of(host, app: str) -> list[str] | None:
    """The app's image tags, or None when podman's listing raced with an image removal."""
    listing = host.as_deploy_user(f"podman images --format '{{{{.Tag}}}}' localhost/podku/{app}", check=False)
    if listing.returncode != 0:
        assert "image not known" in listing.stderr, listing.stderr
        return None
    return sorted(listing.stdout.split())


def wait_for_images(host, app: str, expected: list[str], timeout: float = 60) -> None:
    """Old releases retire (and their images go) a few seconds after a swap."""
    deadline = time.monotonic() + timeout
    seen = images_of(host, app)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = images_of(host, app)
    assert seen == expected


def test_old_images_are_pruned_and_rollback_to_them_is_refused(host, app_repo):
    app = app_repo.app
    app_repo.deploy("one")
    host.ssh("releases:set", app, "keep-images", "2")
    host.ssh("checks:set", app, "wait-to-retire", "1")
    for message in ("two", "three", "four"):
        app_repo.deploy(message)
    wait_for_images(host, app, ["r3", "r4"])
    refused = host.ssh("rollback", app, "1", check=False)
    assert refused.returncode != 0 and "was pruned" in refused.stderr
    host.ssh("rollback", app)
    assert host.http_get(f"{app}.podku.localhost") == (200, "three r5")
    wait_for_images(host, app, ["r3", "r4"])  # r5 reuses r3's image


def test_rollback_refuses_what_cannot_be_rolled_back_to(host, app_repo):
    app = app_repo.app
    app_repo.deploy("only")
    for words, message in ((["rollback", app], "no earlier release"),
                           (["rollback", app, "7"], "does not exist"),
                           (["rollback", app, "1"], "already live"),
                           (["rollback", app, "x1"], "invalid release")):
        refused = host.ssh(*words, check=False)
        assert refused.returncode != 0 and message in refused.stderr, (words, refused.stderr)
    assert host.http_get(f"{app}.podku.localhost") == (200, "only r1")


def test_app_json_health_checks_are_used(host, app_repo):
    checks = {"healthchecks": {"web": [{"type": "startup", "path": "/config", "content": "expected-greeting",
                                        "attempts": 2, "timeout": 2, "wait": 1}]}}
    (app_repo.path / "app.json").write_text(json.dumps(checks))
    app_repo.write(env={"MESSAGE": "checked", "GREETING": "something-else"})
    rejected = app_repo.push(check=False)
    assert rejected.returncode != 0
    assert "does not contain 'expected-greeting'" in rejected.stderr
    app_repo.write(env={"MESSAGE": "checked", "GREETING": "expected-greeting"})
    accepted = app_repo.push()
    assert "Health check /config passed" in accepted.stderr


def test_checks_report_set_disable_enable(host, app_repo):
    app = app_repo.app
    app_repo.deploy("checks")
    host.ssh("checks:set", app, "wait-to-retire", "9")
    host.ssh("checks:disable", app)
    report = host.ssh("checks:report", app).stdout
    assert re.search(r"Checks wait to retire:\s+9", report) and re.search(r"Checks enabled:\s+False", report)
    unhealthy = app_repo.deploy("unchecked", env={"STATUS": "500"})
    assert "Health checks disabled" in unhealthy.stderr
    host.ssh("checks:enable", app)
    refused = host.ssh("checks:set", app, "bogus", "1", check=False)
    assert refused.returncode != 0 and "unknown check setting" in refused.stderr


def test_destroy_removes_the_app_its_units_and_its_route(host, app_repo):
    app = app_repo.app
    app_repo.deploy("doomed")
    refused = host.ssh("apps:destroy", app, check=False)
    assert refused.returncode != 0 and "--force" in refused.stderr
    host.ssh("apps:destroy", app, "--force")
    assert host.as_deploy_user("podman ps -a --format '{{.Names}}'").stdout.count(app) == 0
    assert app not in host.ssh("apps:list").stdout.split()
    assert host.http_get(f"{app}.podku.localhost")[0] == 404
    units = host.as_deploy_user("ls ~/.config/systemd/user").stdout.split()
    assert not [unit for unit in units if unit.startswith(f"{app}-r") or unit == f"{app}.service"]
    wait_for_images(host, app, [], timeout=5)  # destroy removes them itself; 5 s only for the listing race


def test_run_starts_a_one_off_container_of_the_live_release(host, app_repo):
    app = app_repo.app
    app_repo.deploy("oneoff", env={"GREETING": "from-the-image"})
    host.ssh("config:set", app, "SECRET=from-config")
    ran = host.ssh("run", app, "python3", "-c", shlex.quote("import os; print(os.environ['SECRET'], 40 + 2)"))
    assert ran.stdout.strip() == "from-config 42"
    failed = host.ssh("run", app, "python3", "-c", shlex.quote("raise SystemExit(7)"), check=False)
    assert failed.returncode == 7


def test_a_dockerfile_app_deploys_too(host, app_repo):
    app_repo.write(env={"MESSAGE": "docker"})
    (app_repo.path / "Containerfile").rename(app_repo.path / "Dockerfile")
    app_repo._git("add", "-A")
    app_repo._git("commit", "-q", "-m", "Dockerfile")
    app_repo.push()
    assert host.http_get(f"{app_repo.app}.podku.localhost") == (200, "docker r1")


def test_a_push_whose_client_goes_away_still_finishes_its_deploy(host, app_repo):
    app = app_repo.app
    app_repo.deploy("before")
    app_repo.write(env={"MESSAGE": "after"}, extra="RUN sleep 4")
    push = subprocess.Popen(["ip", "netns", "exec", host.netns, "git", "-C", str(app_repo.path), "push",
                             host.remote(app), "HEAD:main"], env=host.git_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)  # the build is running
    push.kill()
    push.wait()
    deadline = time.monotonic() + 60
    while host.http_get(f"{app}.podku.localhost") != (200, "after r2") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert host.http_get(f"{app}.podku.localhost") == (200, "after r2")
    assert re.search(r"\* v2 .* live", host.ssh("releases", app).stdout)


def test_concurrent_changes_to_one_app_wait_for_each_other(host, app_repo):
    app = app_repo.app
    app_repo.deploy("locked")
    changes = [subprocess.Popen(["ip", "netns", "exec", host.netns, "ssh", "-i", str(host.key), "-o", "BatchMode=yes",
                                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                 "-o", "LogLevel=ERROR", "podku@127.0.0.1", "config:set", app, f"N{n}={n}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(3)]
    outputs = [change.communicate(timeout=300) for change in changes]
    assert all(change.returncode == 0 for change in changes), outputs
    config = host.ssh("config:show", app).stdout
    assert all(f"N{n}:" in config for n in range(3)), config  # no change lost
    listing = host.ssh("releases", app).stdout
    assert re.search(r"\* v4 .* live", listing) and listing.count(" live ") == 1, listing


def test_config_keys_export_and_clear_over_ssh(host, app_repo):
    """The shell export gives a shell the values back; clear is a release (the app sees it)."""
    app = app_repo.app
    app_repo.deploy("config")
    value = "it's $HOME `id` ünï"
    host.ssh("config:set", app, "GREETING=hello", shlex.quote(f"TRICKY={value}"))
    assert host.ssh("config:keys", app).stdout.split() == ["GREETING", "TRICKY"]
    exported = host.ssh("config:export", app).stdout
    read_back = subprocess.run(["sh", "-c", exported + 'printf "%s" "$TRICKY"'], capture_output=True, text=True,
                               env={}, check=True).stdout
    assert read_back == value
    assert json.loads(host.ssh("config:export", app, "--format", "json").stdout)["GREETING"] == "hello"
    assert host.http_get(f"{app}.podku.localhost", "/config") == (200, "hello")
    host.ssh("config:clear", app)
    assert host.ssh("config:keys", app).stdout == ""
    assert host.http_get(f"{app}.podku.localhost", "/config") == (200, "-")
    refused = host.ssh("config:export", app, "--format", "'yaml;id'", check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
