"""Process types over real ssh: a Procfile app with web, worker, release and a cron entry;
ps:scale under load; hostile arguments; a reboot comes back at the scale with its timers.
The tests run in file order on one app (the last one reboots the shared host)."""

import json
import re
import shlex
import shutil
import time

import pytest

import testhost

APP = "procs"
DOMAIN = f"{APP}.podku.localhost"
PROCFILE = """# the host tests' Procfile
web: python3 /app/testapp.py
worker: python3 /app/procs.py worker '$HOME %n; literal'

release: python3 /app/procs.py release
"""
APP_JSON = {"cron": [{"command": "python3 /app/procs.py cron", "schedule": "* * * * *"}]}


@pytest.fixture(scope="module")
def repo(host, tmp_path_factory):
    app_repo = testhost.AppRepo(tmp_path_factory.mktemp("procs") / APP, host, APP)
    shutil.copy(testhost.APPS_DIR / "procs.py", app_repo.path / "procs.py")
    (app_repo.path / "Procfile").write_text(PROCFILE)
    (app_repo.path / "app.json").write_text(json.dumps(APP_JSON))
    return app_repo


def deploy(repo, message: str, check: bool = True, **env: str):
    repo.write(env={"MESSAGE": message, **env}, extra="COPY procs.py /app/procs.py")
    return repo.push(check=check)


def containers(host, release: int) -> list[str]:
    found = host.as_deploy_user(f"podman ps --filter label=podku.release={release} "
                                f"--filter label=podku.app={APP} --format '{{{{.Names}}}}'").stdout
    return sorted(found.split())


def web_containers(host, release: int) -> list[str]:
    return [name for name in containers(host, release) if "-worker-" not in name]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_push_runs_the_release_task_once_then_web_and_worker(host, repo):
    pushed = deploy(repo, "one")
    assert pushed.stderr.count("release: ran for r1 GREETING=-") == 1, pushed.stderr
    assert host.http_get(DOMAIN) == (200, "one r1")
    logs = wait_for(lambda: (out := host.ssh("logs", APP, "-p", "worker").stdout) and "worker: started" in out
                    and out, 30, "the worker's line")
    assert "worker: started r1 instance 1 argv=['$HOME %n; literal']" in logs  # exec form, no shell
    units = host.as_deploy_user(f"systemctl --user list-units --no-legend --plain '{APP}-*'").stdout
    assert f"{APP}-r1-worker@1.service" in units and f"{APP}-r1.socket" in units
    assert f"{APP}-cron@1.timer" in units
    status = host.as_deploy_user(f"systemctl --user status {APP} --no-pager", check=False).stdout
    assert f"{APP}-r1.service" in status


def test_a_config_change_runs_the_release_task_with_the_new_config(host, repo):
    changed = host.ssh("config:set", APP, "GREETING=hi")
    output = changed.stdout + changed.stderr
    assert output.count("release: ran for r2 GREETING=hi") == 1, output
    assert host.http_get(DOMAIN, "/config") == (200, "hi")
    wait_for(lambda: "worker: started r2" in host.ssh("logs", APP, "-p", "worker").stdout, 30, "r2's worker")
    wait_for(lambda: [n for n in containers(host, 2) if "-worker-" in n] == [f"podku-{APP}-r2-worker-1"]
             and not [n for n in containers(host, 1) if "-worker-" in n], 30, "only r2's worker")


def test_a_failing_release_task_rejects_the_push_and_the_old_release_serves(host, repo):
    rejected = deploy(repo, "broken", check=False, FAIL_RELEASE="1")
    assert rejected.returncode != 0
    assert "release: failing as asked" in rejected.stderr
    assert "release 2 is still serving" in rejected.stderr
    assert host.http_get(DOMAIN) == (200, "one r2")
    assert [n for n in containers(host, 2) if "-worker-" in n] == [f"podku-{APP}-r2-worker-1"]


def test_cron_runs_on_demand_and_on_its_schedule(host, repo):
    listing = host.ssh("cron:list", APP).stdout
    assert "* * * * *" in listing and "python3 /app/procs.py cron" in listing
    ran = host.ssh("cron:run", APP, "1")
    assert "cron: ran in r2" in ran.stdout + ran.stderr
    runs = lambda: host.ssh("logs", APP, "-p", "cron", "-n", "1000").stdout.count("cron: ran in r2")  # noqa: E731
    before = runs()
    assert before >= 1
    wait_for(lambda: runs() > before, 75, "a scheduled cron run")


def test_scaling_web_up_and_down_under_load_fails_no_request(host, repo, tmp_path):
    with testhost.LoadRun(host, APP, tmp_path) as run:
        scaled = host.ssh("ps:scale", APP, "web=3").stdout
        assert "web:" in scaled and "3" in scaled
        wait_for(lambda: len(web_containers(host, 2)) == 3, 30, "3 web containers")
        time.sleep(3)
    run.assert_no_failures()
    assert len(web_containers(host, 2)) == 3
    with testhost.LoadRun(host, APP, tmp_path) as run:
        host.ssh("ps:scale", APP, "web=1")
        time.sleep(3)
    run.assert_no_failures()
    assert web_containers(host, 2) == [f"podku-{APP}-r2"]
    assert re.search(r"web:\s+1\n", host.ssh("ps:scale", APP).stdout)


def test_hostile_scale_and_process_arguments_are_refused_in_one_line(host, repo):
    """One end-to-end case of each kind; every word: tests/unit/test_processes_scale.py and
    tests/unit/test_hostile_words.py."""
    before = host.ssh("ps:scale", APP).stdout
    for argv in (["ps:scale", APP, "web=1;id"], ["ps:scale", APP, "web=1\nworker=2"], ["ps:scale", APP, "web=11"],
                 ["cron:run", APP, "../1"], ["logs", APP, "-p", "../x"]):
        refused = host.ssh(*map(shlex.quote, argv), check=False)
        assert refused.returncode != 0, argv
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert host.ssh("ps:scale", APP).stdout == before


def test_stop_and_start(host, repo):
    host.ssh("ps:stop", APP)
    assert containers(host, 2) == []
    assert host.http_get(DOMAIN)[0] != 200
    host.ssh("ps:start", APP)
    assert host.http_get(DOMAIN) == (200, "one r2")
    wait_for(lambda: f"podku-{APP}-r2-worker-1" in containers(host, 2), 30, "the worker back")


def test_rebuild_builds_the_live_revision_and_runs_the_release_task(host, repo):
    live = int(re.search(r"Live release:\s+(\d+)", host.ssh("ps:report", APP).stdout).group(1))
    rebuilt = host.ssh("ps:rebuild", APP)
    assert f"release: ran for r{live + 2} GREETING=hi" in rebuilt.stdout + rebuilt.stderr  # r{live+1} failed
    assert host.http_get(DOMAIN) == (200, f"one r{live + 2}")


def test_after_a_reboot_the_app_is_back_at_its_scale_with_its_timers(host, repo):
    live = int(re.search(r"Live release:\s+(\d+)", host.ssh("ps:report", APP).stdout).group(1))
    host.ssh("ps:scale", APP, "web=2", "worker=2")
    host.reboot()
    timers = lambda: host.as_deploy_user(f"systemctl --user is-active {APP}-cron@1.timer",  # noqa: E731
                                         check=False).stdout.strip() == "active"
    wanted = sorted(f"podku-{APP}-r{live}{suffix}" for suffix in ("", "-web-2", "-worker-1", "-worker-2"))
    try:
        wait_for(timers, 60, "the cron timer")
        wait_for(lambda: host.http_get(DOMAIN)[0] == 200, 90, "an answer after the reboot")
        wait_for(lambda: [name for name in containers(host, live) if "cron" not in name] == wanted,
                 90, "web=2 worker=2 after the reboot")
    except AssertionError as error:
        units = host.as_deploy_user(f"systemctl --user list-units --all --no-legend --plain '{APP}-*';"
                                    "podman ps -a --format '{{.Names}} {{.Status}}';"
                                    "systemctl --user status podku-caddy --no-pager | tail -5;"
                                    f"ls -l ~/.config/systemd/user/default.target.wants;"
                                    "journalctl --user -u podku-reconcile --no-pager | tail -20;"
                                    f"journalctl --user -u '{APP}-r*-worker@*' --no-pager | tail -30",
                                    check=False)
        raise AssertionError(f"{error}\n{units.stdout}\n{units.stderr}") from None
