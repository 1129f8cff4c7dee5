"""Process types against the fake manager: units per release, the scale in the record,
reconcile deriving instances and enable links, release tasks before the swap."""

import pytest

import fakes
from podku import apps, deploy, deploytasks, processes, reconcile, releases, swap
from podku.errors import PodkuError, UsageError
from podku.host import systemd
from podku.image import build

PROCFILE = "web: python3 app.py\nworker: python3 worker.py\nclock: python3 clock.py\nrelease: ./migrate\n"


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    fake = fakes.install(monkeypatch)
    files = {"Procfile": PROCFILE}
    monkeypatch.setattr(build, "read_file_at", lambda repo, rev, name: files.get(name))
    tasks: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(deploytasks, "run_task", lambda release, name, argv, env: tasks.append((name, argv)))
    fake.files, fake.tasks = files, tasks  # type: ignore[attr-defined]
    fakes.new_app()
    return fake


def push(rev: str = "a" * 40) -> releases.Release:
    with apps.lock("web"):
        return deploy.deploy_revision(apps.load("web"), rev)


def scale(*words: str) -> None:
    with apps.lock("web"):
        current = apps.load("web")
        changes = processes.parse_scale(deploy.live_release(current), list(words))
        current = current.updated(scale={**current.scale, **changes})
        apps.save(current)
        reconcile.reconcile(current)


def wants() -> list[str]:
    return systemd.enabled("default.target")


def test_a_push_writes_one_template_per_type_and_starts_workers_after_the_swap(host):
    release = push()
    assert release.processes["worker"] == ["python3", "worker.py"]
    assert host.tasks == [("release", ["./migrate"])]
    assert '"python3" "app.py"' in systemd.unit_file("web-r1.service").read_text()
    for name in ("web-r1-web@.service", "web-r1-worker@.service", "web-r1-clock@.service"):
        assert systemd.unit_file(name).exists(), name
    assert not systemd.unit_file("web-r1-release@.service").exists()
    assert "Sockets=web-r1.socket" in systemd.unit_file("web-r1-web@.service").read_text()
    assert {"web-r1-worker@1.service", "web-r1-clock@1.service"} <= host.manager.active
    assert wants() == ["web-r1-clock@1.service", "web-r1-worker@1.service"]
    starts = [unit for op, unit in host.manager.calls if op == "start"]
    assert starts.index("web-r1-worker@1.service") > starts.index("web-r1.socket")
    fakes.assert_consistent(host, "web")


def test_scale_is_kept_across_deploys_restarts_and_rollbacks(host):
    push()
    scale("web=3", "worker=2", "clock=0")
    assert {"web-r1-web@2.service", "web-r1-web@3.service", "web-r1-worker@2.service"} <= host.manager.active
    assert "web-r1-clock@1.service" not in host.manager.active
    assert wants() == ["web-r1-web@2.service", "web-r1-web@3.service", "web-r1-worker@1.service",
                       "web-r1-worker@2.service"]
    push("b" * 40)
    assert wants() == ["web-r2-web@2.service", "web-r2-web@3.service", "web-r2-worker@1.service",
                       "web-r2-worker@2.service"]
    assert not {"web-r1-worker@1.service", "web-r1-worker@2.service"} & host.manager.active  # stopped now
    assert "web-r1-web@2.service" in host.manager.active  # old web drains until retired
    host.fire_retirements()
    assert not any(unit.startswith("web-r1") for unit in host.manager.active)
    assert not systemd.unit_file("web-r1-worker@.service").exists()
    with apps.lock("web"):
        deploy.redeploy(apps.load("web"), "Rollback", source=releases.load("web", 1))
    assert wants() == ["web-r3-web@2.service", "web-r3-web@3.service", "web-r3-worker@1.service",
                       "web-r3-worker@2.service"]
    assert host.tasks == [("release", ["./migrate"])] * 2  # not on a rollback
    scale("web=1")
    assert "web-r3-web@2.service" not in host.manager.active and "web-r3.socket" in host.manager.active
    fakes.assert_consistent(host, "web")


def test_reconcile_restores_instances_and_links_after_a_reboot(host):
    push()
    scale("worker=2")
    host.manager.active.clear()
    for link in wants():
        systemd.disable(link, "default.target")
    fixed = reconcile.reconcile(apps.load("web"))
    assert "started web-r1-worker@2.service" in fixed
    assert {"web-r1.socket", "web-r1-worker@1.service", "web-r1-worker@2.service"} <= host.manager.active
    assert "web-r1.service" not in host.manager.active  # web=1: socket-activated, lazily
    assert len(wants()) == 3
    scale("web=2")
    host.manager.active.clear()  # a reboot: web@2 takes the socket, systemd would never start web 1
    reconcile.reconcile(apps.load("web"))
    assert {"web-r1.service", "web-r1-web@2.service"} <= host.manager.active


@pytest.mark.parametrize("words, message", [
    (["nope=1"], "unknown process type 'nope'"), (["release=1"], "unknown process type"),
    (["web=11"], "0 to 10"), (["web=-1"], "0 to 10"), (["web"], "expected TYPE=N"),
    (["web=1;id"], "0 to 10"), (["../x=1"], "invalid process type name"), (["web=１"], "0 to 10"),
    (["web=2", "worker=x"], "worker"),
])
def test_bad_scale_changes_nothing(host, words, message):
    push()
    before = apps.load("web")
    with pytest.raises(UsageError, match=message):
        scale(*words)
    assert apps.load("web") == before


def test_a_port_app_runs_one_web_instance(host, monkeypatch):
    monkeypatch.setattr(build, "build_release", lambda *args: build.Built("containerfile", 8000))
    push()
    with pytest.raises(processes.ScaleInvalid, match=r"\$PORT"):
        scale("web=2")
    assert not systemd.unit_file("web-r1-web@.service").exists()


def test_a_failing_release_task_rejects_the_deploy_and_the_live_release_serves(host, monkeypatch):
    push()
    def fail(release, name, argv, env):
        raise deploytasks.TaskFailed("the release task failed with exit code 3")
    monkeypatch.setattr(deploytasks, "run_task", fail)
    with pytest.raises(PodkuError, match="release task failed.*release 1 is still serving"):
        push("b" * 40)
    assert apps.load("web").live_release == 1
    assert not systemd.unit_file("web-r2-worker@.service").exists()
    assert releases.load("web", 2).outcome == releases.Outcome.FAILED
    fakes.assert_consistent(host, "web")


def test_a_malformed_procfile_rejects_the_push_before_building(host):
    host.files["Procfile"] = "web: ok\nbad line\n"
    with pytest.raises(UsageError, match="Procfile line 2"):
        push()
    assert host.podman.images == set()


def test_stop_and_start(host):
    push()
    with apps.lock("web"):
        apps.save(apps.load("web").updated(stopped=True))
        reconcile.reconcile(apps.load("web"))
    assert not any(unit.startswith("web-r1") for unit in host.manager.active)
    assert wants() == [] and systemd.enabled("sockets.target") == []
    with apps.lock("web"):
        apps.save(apps.load("web").updated(stopped=False))
        reconcile.reconcile(apps.load("web"))
    assert {"web-r1.socket", "web-r1-worker@1.service"} <= host.manager.active
    fakes.assert_consistent(host, "web")


def test_logs_units_per_type(host):
    push()
    every = releases.all_of("web")
    assert processes.log_units("web", every, "worker") == ["web-r1-worker@*.service"]
    assert "web-r1-web@*.service" in processes.log_units("web", every, "web")
    assert processes.log_units("web", every, "cron") == ["web-cron@*.service"]
    with pytest.raises(UsageError):
        processes.log_units("web", every, "nope")
    with pytest.raises(UsageError):
        processes.log_units("web", every, "../x")


def test_swap_stop_release_forgets_instances(host):
    release = push()
    scale("web=2")
    swap.stop_release(release)
    assert not any(unit.startswith("web-r1") for unit in host.manager.active)
    assert wants() == []


def test_predeploy_release_and_postdeploy_run_in_order_and_postdeploy_only_warns(host, monkeypatch, capsys):
    scripts = {"scripts": {"dokku": {"predeploy": "./pre 'a b'", "postdeploy": "./post"}}}
    monkeypatch.setattr(deploy, "_app_json", lambda app, rev: scripts)
    seen = []

    def run_task(release, name, argv, env):
        seen.append((name, argv, apps.load("web").live_release))
        if name == "postdeploy":
            raise deploytasks.TaskFailed("the postdeploy task failed with exit code 1")

    monkeypatch.setattr(deploytasks, "run_task", run_task)
    push()
    assert seen == [("predeploy", ["./pre", "a b"], None), ("release", ["./migrate"], None),
                    ("postdeploy", ["./post"], 1)]
    assert "postdeploy task failed" in capsys.readouterr().err
    assert apps.load("web").live_release == 1
