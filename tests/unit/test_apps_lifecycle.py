"""Apps coming and going, against the fakes: create, deploy, destroy leaves nothing behind."""

import pytest

import fakes
from podku import apps, deploy, lifecycle, releases
from podku.errors import UsageError
from podku.host import paths, systemd


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def test_create_makes_the_record_repo_and_hook(host):
    app = lifecycle.create("web", quiet=True)
    assert apps.load("web") == app and app.live_release is None
    assert (app.paths.repo / "HEAD").exists() and (app.paths.repo / "hooks" / "pre-receive").exists()
    with pytest.raises(UsageError, match="already exists"):
        lifecycle.create("web")


def test_create_refuses_a_name_systemd_already_has(host):
    systemd.write_unit("web.service", "[Service]\nExecStart=/bin/true\n")
    with pytest.raises(UsageError, match="web.service already exists"):
        lifecycle.create("web")
    assert not apps.exists("web")


def test_destroy_stops_every_release_and_removes_everything(host):
    lifecycle.create("web", quiet=True)
    for rev in ("a" * 40, "b" * 40):
        with apps.lock("web"):
            deploy.deploy_revision(apps.load("web"), rev)
    every = releases.all_of("web")
    lifecycle.destroy("web")
    assert not apps.exists("web") and host.podman.images == set()
    assert not host.manager.active
    assert not any(systemd.unit_file(unit).exists() for release in every for unit in release.units)
    assert systemd.link_target(systemd.unit_file("web.service")) is None
    assert fakes.app_sockets_enabled("web") == set()
    assert systemd.link_target(paths.AppPaths("web").stable_socket) is None
