"""Deploys, redeploys and rollbacks against the fakes: what becomes live, and from what."""

import pytest

import fakes
from podku import apps, deploy, releases
from podku.errors import UsageError
from podku.releases import Outcome


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    fakes.new_app()
    return fakes.install(monkeypatch)


def push(rev: str) -> releases.Release:
    with apps.lock("web"):
        return deploy.deploy_revision(apps.load("web"), rev)


def rollback(wanted: int | None = None) -> releases.Release:
    with apps.lock("web"):
        app = apps.load("web")
        target = deploy.rollback_target(app, wanted)
        return deploy.redeploy(app, f"Rollback to v{target.id}", source=target)


def test_a_push_builds_an_image_tagged_with_the_release_id(host):
    release = push("a" * 40)
    assert release.image == "localhost/podku/web:r1" and host.podman.images == {release.image}
    assert release.outcome == Outcome.PENDING  # the object handed in; the record says live
    assert releases.load("web", 1).outcome == Outcome.LIVE


def test_a_config_change_is_a_new_release_of_the_same_image_with_the_new_config(host):
    push("a" * 40)
    with apps.lock("web"):
        release = deploy.redeploy(apps.load("web"), "Set A", config={"A": "1"})
    assert (release.id, release.image, release.config) == (2, "localhost/podku/web:r1", {"A": "1"})
    fakes.assert_consistent(host, "web")


def test_rollback_goes_to_the_newest_earlier_release_that_served(host):
    push("a" * 40)
    push("b" * 40)
    host.health.failing.add(3)
    with pytest.raises(deploy.DeployFailed):
        push("c" * 40)
    push("d" * 40)
    host.fire_retirements()
    release = rollback()
    assert release.description == "Rollback to v2" and release.rev == "b" * 40
    assert release.image == "localhost/podku/web:r2"
    assert fakes.assert_consistent(host, "web").id == 5


def test_rollback_to_a_named_release_and_its_refusals(host):
    push("a" * 40)
    push("b" * 40)
    host.health.failing.add(3)
    with pytest.raises(deploy.DeployFailed):
        push("c" * 40)
    with pytest.raises(UsageError, match="never served"):
        rollback(3)
    with pytest.raises(UsageError, match="already live"):
        rollback(2)
    assert rollback(1).image == "localhost/podku/web:r1"
    host.podman.images.discard("localhost/podku/web:r2")
    with pytest.raises(UsageError, match="was pruned"):
        rollback(2)
    fakes.assert_consistent(host, "web")


def test_a_redeploy_of_an_app_never_deployed_says_so(host):
    with apps.lock("web"), pytest.raises(deploy.PodkuError, match="has not been deployed yet"):
        deploy.redeploy(apps.load("web"), "Restart")


def test_a_deploy_first_repairs_what_a_crash_left_and_says_so(host, capsys):
    push("a" * 40)
    apps.load("web").paths.stable_socket.unlink()
    push("b" * 40)
    assert "repaired: pointed the stable socket at release 1" in capsys.readouterr().err
    fakes.assert_consistent(host, "web")


def test_a_deploy_replaces_a_live_release_whose_units_are_gone(host, capsys):
    push("a" * 40)
    host.manager.active.clear()  # a reboot ...
    for unit in releases.load("web", 1).units:  # ... and someone deleted the unit files
        (fakes.systemd.unit_file(unit)).unlink()
    push("b" * 40)
    assert "release 1 of web is live but its units are gone" in capsys.readouterr().err
    fakes.assert_consistent(host, "web")
