"""The swap against the fake manager: the order of go_live, the abandon path, retirement,
and a crash between any two steps, healed by the next command."""

import pytest

import fakes
from podku import apps, deploy, reconcile, releases, swap
from podku.host import systemd
from podku.releases import Outcome


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def push(name: str = "web", rev: str = "a" * 40) -> releases.Release:
    with apps.lock(name):
        return deploy.deploy_revision(apps.load(name), rev)


def restart(name: str = "web") -> releases.Release:
    with apps.lock(name):
        return deploy.redeploy(apps.load(name), "Restart")


def snapshot(name: str) -> tuple:
    app = apps.load(name)
    outcomes = tuple(r.outcome.value for r in reversed(releases.all_of(name)))
    alias = systemd.link_target(systemd.unit_file(f"{name}.service"))
    return (app.live_release, fakes.stable_target(name), alias,
            tuple(sorted(fakes.app_sockets_enabled(name))), outcomes)


def test_a_first_deploy_goes_live(host):
    fakes.new_app()
    release = push()
    assert release.id == 1 and apps.load("web").live_release == 1
    fakes.assert_consistent(host, "web")


def test_go_live_writes_the_record_first_then_derives_the_rest_in_order(host, monkeypatch):
    fakes.new_app()
    push()
    seen = []
    monkeypatch.setattr(swap, "step_done", lambda step: seen.append((step, snapshot("web"))))
    restart()
    sock = lambda n: str(apps.load("web").paths.release_socket(n))  # noqa: E731
    assert [step for step, _ in seen[:2]] == ["units", "checked"]
    assert seen[1][1][0] == 1  # checked, and the record still names the old release
    assert seen[2:] == [
        ("record", (2, sock(1), "web-r1.service", ("web-r1.socket",), ("live", "pending"))),
        ("enable", (2, sock(1), "web-r1.service", ("web-r1.socket", "web-r2.socket"), ("live", "pending"))),
        ("symlink", (2, sock(2), "web-r1.service", ("web-r1.socket", "web-r2.socket"), ("live", "pending"))),
        ("links", (2, sock(2), "web-r2.service", ("web-r2.socket",), ("live", "pending"))),
        ("outcomes", (2, sock(2), "web-r2.service", ("web-r2.socket",), ("draining", "live"))),
        ("retire", (2, sock(2), "web-r2.service", ("web-r2.socket",), ("draining", "live"))),
    ]
    assert list(host.manager.timers) == ["podku-retire-web-r1"]


def test_the_new_socket_is_checked_before_the_record_names_it(host, monkeypatch):
    fakes.new_app()
    push()
    host.manager.calls.clear()
    order = []
    monkeypatch.setattr(swap, "step_done", lambda step: order.append(step))
    restart()
    starts = host.manager.ops("start")
    assert starts == [("start", "web-r2.socket")]
    assert order[:3] == ["units", "checked", "record"]
    assert host.health.passed == [1, 2]
    assert ("stop", "web-r1.socket") not in host.manager.calls  # retirement comes later


def test_a_failed_health_check_abandons_the_release_and_leaves_the_live_one(host):
    fakes.new_app()
    push()
    before = snapshot("web")
    host.health.failing.add(2)
    host.manager.journal["web-r2.service"] = "boom: exiting"
    with pytest.raises(deploy.DeployFailed, match="release 1 is still serving"):
        restart()
    failed = releases.load("web", 2)
    assert failed.outcome == Outcome.FAILED
    assert not fakes.units_exist(failed) and not swap.env_file(failed).exists()
    assert "web-r2.socket" not in host.manager.active
    assert snapshot("web")[:4] == before[:4]
    assert releases.load("web", 1).outcome == Outcome.LIVE
    assert not [call for call in host.manager.calls if call[1].startswith("web-r1") and call[0] == "stop"]
    fakes.assert_consistent(host, "web")


def test_a_release_whose_socket_does_not_start_is_abandoned(host):
    fakes.new_app()
    push()
    host.manager.fail_start.add("web-r2.socket")
    with pytest.raises(deploy.DeployFailed, match="was not started"):
        restart()
    assert releases.load("web", 2).outcome == Outcome.FAILED
    fakes.assert_consistent(host, "web")


def test_a_failed_build_keeps_the_live_release(host, monkeypatch):
    fakes.new_app()
    push()
    def broken(*args):
        raise deploy.PodkuError("image build failed")
    monkeypatch.setattr(deploy.build, "build_release", broken)
    with pytest.raises(deploy.DeployFailed, match="release 1 is still serving"):
        push(rev="b" * 40)
    assert releases.load("web", 2).outcome == Outcome.FAILED
    fakes.assert_consistent(host, "web")


def test_release_ids_are_allocated_once_per_deploy(host, monkeypatch):
    fakes.new_app()
    calls = []
    real = releases.next_id

    def counted(app: str) -> int:
        calls.append(app)
        return real(app)

    monkeypatch.setattr(releases, "next_id", counted)
    push()
    restart()
    assert calls == ["web", "web"]
    assert [r.image for r in releases.all_of("web")] == ["localhost/podku/web:r1"] * 2


def test_retirement_stops_the_old_release_never_the_live_one(host):
    fakes.new_app()
    push()
    restart()
    restart()
    host.fire_retirements()
    assert [r.outcome for r in releases.all_of("web")] == [Outcome.LIVE, Outcome.RETIRED, Outcome.RETIRED]
    fakes.assert_only_live_has_units(host, "web")
    assert not [c for c in host.manager.calls if c[0] == "stop" and c[1].startswith("web-r3")]
    with apps.lock("web"):
        swap.retire(apps.load("web"), 3)  # the live one: a timer racing a rollback
    fakes.assert_consistent(host, "web")


def test_retirement_prunes_images_beyond_keep_images(host):
    app = fakes.new_app()
    apps.save(app.updated(keep_images=2))
    for number in range(4):
        push(rev=f"{number}" * 40)
        host.fire_retirements()
    assert host.podman.images == {"localhost/podku/web:r3", "localhost/podku/web:r4"}
    assert host.podman.removed == ["localhost/podku/web:r1", "localhost/podku/web:r2"]


# --- a crash between any two steps ----------------------------------------------------------


def heal(host: fakes.FakeHost, how: str) -> None:
    host.restart_after_crash()
    if how == "doctor":
        reconcile.doctor(["web"], quiet=True)
    elif how == "deploy":
        restart()
    elif how == "retire":
        with apps.lock("web"):
            swap.retire(apps.load("web"), 1)


def crash_and_heal(host: fakes.FakeHost, how: str) -> None:
    """After the heal: consistent at once, and after the retirements only the live one runs."""
    heal(host, how)
    live = fakes.assert_consistent(host, "web")
    host.fire_retirements()
    fakes.assert_only_live_has_units(host, "web")
    assert fakes.assert_consistent(host, "web") == live
    restart()  # and the app still swaps
    fakes.assert_consistent(host, "web")


@pytest.mark.parametrize("how", ["doctor", "deploy", "retire"])
@pytest.mark.parametrize("step", swap.STEPS)
def test_a_crash_after_each_named_step_is_healed(host, monkeypatch, step, how):
    fakes.new_app()
    push()
    monkeypatch.setenv(swap.CRASH_AFTER_ENV, step)

    def die() -> None:
        host.manager.crash_at = 0  # a killed process makes no more requests (nor cleans up)
        raise fakes.SimulatedCrash(step)

    monkeypatch.setattr(swap, "_die", die)
    with pytest.raises(fakes.SimulatedCrash):
        restart()
    monkeypatch.delenv(swap.CRASH_AFTER_ENV)
    expected_live = 1 if swap.STEPS.index(step) < swap.STEPS.index("record") else 2
    assert apps.load("web").live_release == expected_live
    crash_and_heal(host, how)
    if how != "deploy":
        assert releases.load("web", expected_live).outcome in (Outcome.DRAINING, Outcome.RETIRED)


def requests_in_one_swap(monkeypatch) -> int:
    with monkeypatch.context() as patch:
        patch.chdir("/")
        host = fakes.install(patch)
        fakes.new_app("probe")
        push("probe")
        before = len(host.manager.calls)
        restart("probe")
        return len(host.manager.calls) - before


def test_a_crash_before_each_request_to_the_manager_is_healed(home, monkeypatch):
    total = requests_in_one_swap(monkeypatch)
    assert total >= 6  # reconcile, reload, start, check, reload, retire timer
    for crash_at in range(total + 1):
        host = fakes.install(monkeypatch)
        name = f"w{crash_at}"
        fakes.new_app(name)
        push(name)
        host.manager.crash_at = len(host.manager.calls) + crash_at
        try:
            restart(name)
        except fakes.SimulatedCrash:
            pass
        host.restart_after_crash()
        reconcile.doctor([name], quiet=True)
        fakes.assert_consistent(host, name)
        host.fire_retirements()
        fakes.assert_only_live_has_units(host, name)
        restart(name)
        fakes.assert_consistent(host, name)


def test_retiring_the_release_a_cut_off_swap_left_serving_moves_the_symlink_then_drains(host, monkeypatch):
    fakes.new_app()
    push()
    monkeypatch.setenv(swap.CRASH_AFTER_ENV, "record")

    def die() -> None:
        host.manager.crash_at = 0
        raise fakes.SimulatedCrash("record")

    monkeypatch.setattr(swap, "_die", die)
    with pytest.raises(fakes.SimulatedCrash):
        restart()
    host.restart_after_crash()
    assert fakes.stable_target("web").endswith("web-r1.sock")  # the old one still takes connections
    stopped_at = []
    monkeypatch.setattr(swap, "sleep", lambda seconds: stopped_at.append((seconds, fakes.stable_target("web"))))
    with apps.lock("web"):
        swap.retire(apps.load("web"), 1)
    [(waited, target)] = stopped_at
    assert 4 < waited <= 5 and target.endswith("web-r2.sock")  # moved first, then a full drain
    assert releases.load("web", 1).outcome == Outcome.RETIRED
    fakes.assert_consistent(host, "web")
