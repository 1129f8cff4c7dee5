"""reconcile: everything that says which release serves is made to agree with the app record."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import fakes
from podku import apps, deploy, hostsetup, reconcile, releases
from podku.host import paths, state, systemd
from podku.releases import Outcome

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    host = fakes.install(monkeypatch)
    fakes.new_app()
    for rev in ("a" * 40, "b" * 40):
        with apps.lock("web"):
            deploy.deploy_revision(apps.load("web"), rev)
    host.fire_retirements()
    return host


def test_a_consistent_app_needs_nothing(host):
    assert reconcile.reconcile(apps.load("web")) == []


def test_after_a_reboot_between_record_and_enable_the_recorded_release_is_started_then_linked(host, monkeypatch):
    app = apps.load("web")
    # the state a crash right after `record` leaves, then a reboot: only enabled sockets listen
    with apps.lock("web"):
        deploy.swap.install_units(releases.new("web", "c" * 40, "localhost/podku/web:r2", "Deploy c",
                                               {}, release_id=3))
    host.health.passed.append(3)
    apps.save(app.updated(live_release=3))
    host.manager.active = {"web-r2.socket"}
    seen = []

    def step(name: str) -> None:
        seen.append((name, "web-r3.socket" in host.manager.active, fakes.stable_target("web")))

    fixed = reconcile.reconcile(apps.load("web"), after_step=step)
    assert seen[0] == ("enable", True, str(app.paths.release_socket(2)))  # listening before linked
    assert seen[1][2] == str(app.paths.release_socket(3))
    assert fixed[0] == "started the socket of live release 3 (it was inactive)"
    assert "release 2 was live, is draining" in fixed and "release 3 was pending, is live" in fixed
    fakes.assert_consistent(host, "web")
    assert reconcile.reconcile(apps.load("web")) == []


def test_every_derived_thing_is_put_back(host):
    app = apps.load("web")
    state.symlink_atomic(app.paths.release_socket(1), app.paths.stable_socket)
    systemd.link(systemd.unit_file("web.service"), "web-r1.service")
    systemd.disable("web-r2.socket", "sockets.target")
    systemd.enable("web-r1.socket", "sockets.target")
    releases.save(releases.load("web", 2).with_outcome(Outcome.DRAINING))
    fixed = reconcile.reconcile(app)
    assert fixed == ["enabled web-r2.socket",
                     f"pointed the stable socket at release 2 (it pointed at {app.paths.release_socket(1)})",
                     "web.service now aliases web-r2.service (it was web-r1.service)",
                     "disabled web-r1.socket",
                     "release 2 was draining, is live"]
    assert ("reload", "") in host.manager.calls[-3:]
    fakes.assert_consistent(host, "web")


def test_a_release_left_running_by_a_cut_off_deploy_is_failed_and_retired(host):
    with apps.lock("web"):
        release = releases.new("web", "c" * 40, "localhost/podku/web:r3", "Deploy c", {}, release_id=3)
        deploy.swap.install_units(release)
    host.manager.start("web-r3.socket")
    fixed = reconcile.reconcile(apps.load("web"))
    assert fixed == ["release 3 was pending, is failed", "release 3 still has units: its retirement is scheduled"]
    host.fire_retirements()
    fakes.assert_only_live_has_units(host, "web")
    assert "web-r3.socket" not in host.manager.active


def test_an_app_with_nothing_live_has_no_links(host):
    app = apps.load("web")
    apps.save(app.updated(live_release=None))
    reconcile.reconcile(apps.load("web"))
    assert fakes.stable_target("web") is None
    assert systemd.link_target(systemd.unit_file("web.service")) is None
    assert fakes.app_sockets_enabled("web") == set()
    assert releases.load("web", 2).outcome == Outcome.DRAINING


def test_a_record_naming_a_missing_release_is_an_error(host):
    apps.save(apps.load("web").updated(live_release=9))
    with pytest.raises(reconcile.ReconcileError, match="names release 9 as live"):
        reconcile.reconcile(apps.load("web"))


def test_a_live_release_without_units_is_an_error_and_nothing_moves(host):
    app = apps.load("web")
    host.manager.active.clear()
    for unit in releases.load("web", 2).units:
        systemd.unit_file(unit).unlink()
    state.symlink_atomic(app.paths.release_socket(1), app.paths.stable_socket)
    with pytest.raises(reconcile.ReconcileError, match="units are gone"):
        reconcile.reconcile(app)
    assert fakes.stable_target("web") == str(app.paths.release_socket(1))


def test_doctor_prints_what_it_fixed_and_quiet_hides_the_rest(host, capsys):
    fakes.new_app("idle")
    apps.load("web").paths.stable_socket.unlink()
    reconcile.doctor(["idle", "web"], quiet=True)
    out = capsys.readouterr().out
    assert "idle" not in out and "web: fixed" in out and "pointed the stable socket at release 2" in out
    reconcile.doctor(["idle", "web"])
    assert capsys.readouterr().out.count("nothing to fix") == 2


def test_doctor_goes_on_past_a_broken_app_and_fails_at_the_end(host, capsys):
    fakes.new_app("broken")
    apps.save(apps.load("broken").updated(live_release=4))
    apps.load("web").paths.stable_socket.unlink()
    with pytest.raises(reconcile.ReconcileError, match="could not reconcile broken"):
        reconcile.doctor(["broken", "web"])
    assert "names release 4" in capsys.readouterr().err
    fakes.assert_consistent(host, "web")


def test_outcomes_stay_plain_strings_in_the_records(host):
    record = json.loads(apps.load("web").paths.release_record(2).read_text())
    assert record["outcome"] == "live" and type(releases.load("web", 2).outcome) is Outcome
    assert f"{Outcome.LIVE:<6}|" == "live  |" and str(Outcome.FAILED) == "failed"


def test_the_core_imports_without_pystemd():
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); sys.modules['pystemd'] = None\n"
            "import podku.swap, podku.deploy, podku.lifecycle, podku.reconcile, podku.hostsetup\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


class FakeDBusError(Exception):
    pass


def test_d_bus_failures_become_one_line_systemd_errors(monkeypatch):
    class DBus:
        def __init__(self, user_mode: bool) -> None:
            pass

        def __enter__(self) -> "DBus":
            raise FakeDBusError("Connection refused\n(no user bus)")

        def __exit__(self, *exc: object) -> None:
            pass

    package = types.ModuleType("pystemd")
    monkeypatch.setitem(sys.modules, "pystemd", package)
    monkeypatch.setitem(sys.modules, "pystemd.dbuslib", types.SimpleNamespace(DBus=DBus))
    monkeypatch.setitem(sys.modules, "pystemd.dbusexc", types.SimpleNamespace(DBusBaseError=FakeDBusError))
    with pytest.raises(systemd.SystemdError, match=r"^cannot StartUnit x.socket: Connection refused \(no user bus\)$"):
        systemd.UserManager().start("x.socket")


def test_without_pystemd_the_real_manager_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pystemd", None)
    monkeypatch.setitem(sys.modules, "pystemd.dbusexc", None)
    with pytest.raises(systemd.SystemdError, match="pystemd is not installed"):
        systemd.UserManager().active_state("x.socket")


def test_setup_installs_and_enables_the_boot_time_reconcile(home, monkeypatch):
    manager = fakes.install(monkeypatch).manager
    monkeypatch.setattr(hostsetup, "_wait_for_admin_api", lambda: None)
    hostsetup.setup("podku.localhost", 8080)
    unit = systemd.unit_file(hostsetup.RECONCILE_UNIT).read_text()
    assert f"ExecStart={paths.PODKU_EXECUTABLE} doctor --quiet" in unit and "WantedBy=default.target" in unit
    assert hostsetup.RECONCILE_UNIT in systemd.enabled("default.target")
    assert manager.ops("reload", "start") == [("reload", ""), ("start", hostsetup.AUTH_SOCKET_UNIT),
                                              ("start", hostsetup.CADDY_UNIT)]
    manager.calls.clear()
    hostsetup.setup("podku.localhost", 8080)  # a rerun: nothing changed, nothing reloaded
    assert manager.ops("reload", "start") == []
