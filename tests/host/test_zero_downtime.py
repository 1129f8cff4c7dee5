"""Every kind of swap under continuous concurrent load through Caddy: not one failed request."""

import re
import time

APP_DOMAIN = "podku.localhost"


def release_number(body: str) -> int:
    return int(re.search(r" r(\d+)$", body).group(1))


def assert_switches_once_per_release(run, expected_bodies: list[str]) -> None:
    """Each client sees releases only in order (never back to an older one), and together
    the clients saw every release that went live, ending on the last."""
    sequences = run.body_sequences()
    for client, bodies in sequences.items():
        numbers = [release_number(body) for body in bodies]
        assert numbers == sorted(set(numbers)), f"client {client} went back: {bodies}"
        assert bodies[-1] == expected_bodies[-1], f"client {client} ended on {bodies[-1]}"
    seen = {body for bodies in sequences.values() for body in bodies}
    assert seen == set(expected_bodies)


def test_twenty_redeploys_under_load_fail_no_request(host, app_repo, load_run):
    app_repo.deploy("v0")
    expected = ["v0 r1"]
    with load_run(app_repo.app) as run:
        for number in range(1, 21):
            app_repo.deploy(f"v{number}")
            expected.append(f"v{number} r{number + 1}")
    run.assert_no_failures()
    assert_switches_once_per_release(run, expected)


def test_config_set_restart_and_rollback_under_load(host, app_repo, load_run):
    app = app_repo.app
    app_repo.deploy("conf")
    with load_run(app) as run:
        host.ssh("config:set", app, "GREETING=hello-config")
        assert host.http_get(f"{app}.{APP_DOMAIN}", "/config") == (200, "hello-config")
        host.ssh("ps:restart", app)
        host.ssh("config:unset", app, "GREETING")
        assert host.http_get(f"{app}.{APP_DOMAIN}", "/config") == (200, "-")
        host.ssh("rollback", app)  # to release 3: the restart, with GREETING set
        assert host.http_get(f"{app}.{APP_DOMAIN}", "/config") == (200, "hello-config")
        host.ssh("rollback", app, "1")
        assert host.http_get(f"{app}.{APP_DOMAIN}", "/config") == (200, "-")
    run.assert_no_failures()
    assert_switches_once_per_release(run, [f"conf r{n}" for n in range(1, 7)])
    listing = host.ssh("releases", app).stdout
    assert re.search(r"\* v6 .* Rollback to v1", listing), listing
    assert "Rollback to v3" in listing and "Set GREETING" in listing and "Restart" in listing


def test_failing_releases_are_rejected_while_the_old_one_serves(host, app_repo, load_run):
    app = app_repo.app
    app_repo.deploy("steady")
    for key, value in (("attempts", "2"), ("timeout", "2"), ("wait", "1")):
        host.ssh("checks:set", app, key, value)
    with load_run(app) as run:
        app_repo.write(env={"MESSAGE": "unhealthy", "STATUS": "500"})
        unhealthy = app_repo.push(check=False)
        app_repo.write(env={"MESSAGE": "crashing", "EXIT_AT_START": "3"})
        crashing = app_repo.push(check=False)
    run.assert_no_failures()
    assert_switches_once_per_release(run, ["steady r1"])
    assert unhealthy.returncode != 0 and "HTTP 500" in unhealthy.stderr
    assert "release 1 is still serving" in unhealthy.stderr
    assert crashing.returncode != 0 and "release 1 is still serving" in crashing.stderr
    assert "exiting at start as asked" in crashing.stderr  # the new release's last log lines
    outcomes = host.ssh("releases", app).stdout
    assert re.search(r"v3 .* failed", outcomes) and re.search(r"\* v1 .* live", outcomes)


def test_a_release_that_listens_after_five_seconds_swaps_cleanly(host, app_repo, load_run):
    app_repo.deploy("quick")
    with load_run(app_repo.app) as run:
        app_repo.deploy("slow", env={"START_DELAY": "5"})
    run.assert_no_failures()
    assert_switches_once_per_release(run, ["quick r1", "slow r2"])


def kill_app_process(host, app: str, release: int) -> tuple[float, float]:
    """SIGKILL the app's own process (PID 1 in its container); the window it happened in."""
    before = time.monotonic()
    host.as_deploy_user(f"kill -KILL $(podman inspect --format '{{{{.State.Pid}}}}' podku-{app}-r{release})")
    return before, time.monotonic()


def wait_until_it_answers(host, app: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while host.http_get(f"{app}.podku.localhost")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)


def assert_only_in_flight_requests_failed(run, windows: list[tuple[float, float]], clients: int = 8) -> None:
    """A request in flight when the app died may fail: nobody is left to answer it. Every
    request made after a kill must succeed, however long it waited for the restart."""
    for failure in run.failures():
        assert any(failure["start"] <= after and failure["end"] >= before for before, after in windows), failure
    assert len(run.failures()) <= clients * len(windows)
    assert run.summary["retried"] == 0


def test_a_killed_app_is_restarted_and_requests_meanwhile_succeed(host, app_repo, load_run):
    app = app_repo.app
    app_repo.deploy("sturdy")
    windows = []
    with load_run(app) as run:
        for _ in range(3):
            windows.append(kill_app_process(host, app, 1))
            time.sleep(3)
        wait_until_it_answers(host, app)  # a busy machine may take longer than 3 s to restart it
        time.sleep(1)
    restarts = host.as_deploy_user(f"systemctl --user show -p NRestarts --value {app}-r1.service").stdout
    assert int(restarts) == 3
    assert_only_in_flight_requests_failed(run, windows)
    assert any(r["start"] > windows[-1][1] for r in run.records)
    assert_switches_once_per_release(run, ["sturdy r1"])


def test_a_port_app_swaps_and_survives_a_kill_under_load(host, app_repo, load_run):
    app = app_repo.app
    app_repo.deploy("port-a", expose=8000)
    with load_run(app) as run:
        app_repo.deploy("port-b", expose=8000)
        app_repo.deploy("port-c", expose=8000, env={"START_DELAY": "3"})
        time.sleep(1)
        window = kill_app_process(host, app, 3)
        time.sleep(3)
    assert_only_in_flight_requests_failed(run, [window])
    assert_switches_once_per_release(run, ["port-a r1", "port-b r2", "port-c r3"])
