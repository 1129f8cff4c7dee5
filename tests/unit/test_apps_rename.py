"""apps:rename and apps:clone against the fakes: what follows the app, what is refused, and a
rename cut off after any request to the manager ends with the app whole under one name."""

import json

import pytest

import fakes
from podku import apps, deploy, domains, lifecycle, proxyconf, releases, rename, services
from podku.errors import UsageError
from podku.host import paths, settings, state, systemd
from podku.proxy import routes
from podku.releases import Outcome
from podku.runtime import links, storage

REVS = ("a" * 40, "b" * 40)


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def deployed(name: str = "web") -> apps.App:
    lifecycle.create(name, quiet=True)
    apps.save_config(name, {"GREETING": "hello"})
    storage.ensure_directory("files")
    storage.save_mounts(name, ["files:/data"])
    with apps.lock(name):
        apps.save(apps.load(name).updated(scale={"web": 1}, keep_images=3))
    domains.save(name, domains.Domains(custom=["shop.example.com"]))
    domains.link("shop.example.com", name)
    for rev in REVS:
        with apps.lock(name):
            deploy.deploy_revision(apps.load(name), rev)
    return apps.load(name)


def host_target(name: str) -> str | None:
    return routes.targets().get(name)


def snapshot(home) -> dict:
    return {path: path.read_bytes() if path.is_file() else None for path in home.rglob("*") if path.name != "lock"}


def test_rename_moves_the_app_whole(host):
    before = deployed()
    old_releases = releases.all_of("web")
    rename.rename("web", "shop")
    assert not apps.exists("web") and not paths.AppPaths("web").root.exists()
    app = apps.load("shop")
    live = fakes.assert_consistent(host, "shop")
    assert live.description == "Rename from web" and live.rev == REVS[1]
    assert [r.id for r in releases.all_of("shop")] == [3, 2, 1]
    assert releases.load("shop", 1).outcome == Outcome.RETIRED
    assert (app.scale, app.keep_images, app.checks) == (before.scale, before.keep_images, before.checks)
    assert apps.config("shop") == {"GREETING": "hello"} and storage.mounts("shop") == ["files:/data"]
    assert live.mounts == ["files:/data"] and live.image == "localhost/podku/shop:r2"
    assert host.podman.images == {"localhost/podku/shop:r1", "localhost/podku/shop:r2"}
    assert host_target("shop.example.com") == "shop.sock"
    assert host_target(settings.load().app_host("shop")) == "shop.sock"
    assert host_target(settings.load().app_host("web")) is None
    assert not any(fakes.units_exist(r) for r in old_releases)
    assert not any(unit.startswith("web-") for unit in host.manager.active)
    assert fakes.stable_target("web") is None
    assert systemd.link_target(systemd.unit_file("web.service")) is None
    assert "git-hook shop" in (paths.AppPaths("shop").repo / "hooks" / "pre-receive").read_text()
    assert not paths.AppPaths("web").repo.exists()
    assert rename.pending() == []
    assert host.drained, "OLD's in-flight requests had wait-to-retire to finish"


def test_a_push_after_the_rename_deploys_under_the_new_name(host):
    deployed()
    rename.rename("web", "shop")
    with apps.lock("shop"):
        release = deploy.deploy_revision(apps.load("shop"), "c" * 40)
    assert release.id == 4 and release.image == "localhost/podku/shop:r4"
    fakes.assert_consistent(host, "shop")


def test_a_linked_service_follows(host):
    deployed()
    links.save("web", [{"kind": "postgres", "name": "db", "variable": "DATABASE_URL"}])
    rename.rename("web", "shop")
    assert services.linked_apps("postgres", "db") == ["shop"]
    assert releases.load("shop", apps.load("shop").live_release).links == ["postgres:db"]


def test_an_app_never_deployed_is_renamed_too(host):
    lifecycle.create("web", quiet=True)
    rename.rename("web", "shop")
    assert apps.all_names() == ["shop"] and apps.load("shop").live_release is None
    assert host_target(settings.load().app_host("shop")) == "shop.sock"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("web", "web", "already called"),
    ("web", "other", "already exists"),
    ("nope", "shop", "does not exist"),
    ("web", "Shop", "invalid app name"),
    ("web", "-shop", "invalid app name"),
])
def test_refusals_change_nothing(host, home, old, new, message):
    deployed()
    lifecycle.create("other", quiet=True)
    before = snapshot(home)
    calls = list(host.manager.calls)
    with pytest.raises(UsageError, match=message):
        rename.rename(old, new)
    with pytest.raises(UsageError, match=message):
        rename.clone(old, new)
    assert snapshot(home) == before and host.manager.calls == calls


def test_a_stopped_app_is_refused(host, home):
    deployed()
    with apps.lock("web"):
        apps.save(apps.load("web").updated(stopped=True))
    before = snapshot(home)
    with pytest.raises(UsageError, match="ps:start web"):
        rename.rename("web", "shop")
    assert snapshot(home) == before


def test_a_failed_check_leaves_the_old_app_serving(host):
    deployed()
    host.health.failing.add(3)
    with pytest.raises(deploy.DeployFailed, match="release 2 is still serving"):
        rename.rename("web", "shop")
    assert apps.all_names() == ["web"] and not paths.AppPaths("shop").root.exists()
    fakes.assert_consistent(host, "web")
    assert host_target("shop.example.com") == "web.sock"
    assert not any(image.startswith("localhost/podku/shop:") for image in host.podman.images)
    assert rename.pending() == []


def test_a_rename_cut_off_anywhere_ends_under_one_name(host, home, monkeypatch):
    """Kill podku before each request to the manager in turn; the next doctor finishes it."""
    for crash_at in range(200):
        for directory in (home, ):
            for path in sorted(directory.rglob("*"), reverse=True):
                if path.is_symlink() or path.is_file():
                    path.unlink()
                else:
                    path.rmdir()
        fresh = fakes.install(monkeypatch)
        deployed()
        fresh.manager.crash_at = len(fresh.manager.calls) + crash_at
        try:
            rename.rename("web", "shop")
        except fakes.SimulatedCrash:
            pass
        else:
            assert crash_at > 10  # the loop reached the end of a whole rename
            return
        fresh.restart_after_crash()
        rename.finish_pending()
        assert rename.pending() == []
        [name] = apps.all_names()
        other = "web" if name == "shop" else "shop"
        fakes.assert_consistent(fresh, name)
        assert host_target("shop.example.com") == f"{name}.sock", crash_at
        leftover = paths.AppPaths(other).root  # at most the lock file a lock leaves
        assert not leftover.exists() or [p.name for p in leftover.iterdir()] == ["lock"], crash_at
        assert not any(unit.startswith(f"{other}-") for unit in fresh.manager.active), crash_at
        assert not any(image.startswith(f"localhost/podku/{other}:") for image in fresh.podman.images), crash_at
    raise AssertionError("the rename never ran to its end")


def test_doctor_finishes_a_rename_cut_off_after_its_commit(host, capsys, monkeypatch):
    deployed()
    monkeypatch.setenv("PODKU_CRASH_AFTER", "rename-record")
    monkeypatch.setattr(rename.swap, "_die", lambda: (_ for _ in ()).throw(fakes.SimulatedCrash("killed")))
    with pytest.raises(fakes.SimulatedCrash):
        rename.rename("web", "shop")
    monkeypatch.delenv("PODKU_CRASH_AFTER")
    assert json.loads((paths.RENAMES / "web.json").read_text())["new"] == "shop"
    code, _out, err = fakes.cli_run(capsys, "doctor")
    assert code == 0, err
    assert apps.all_names() == ["shop"] and rename.pending() == []
    fakes.assert_consistent(host, "shop")


# --- apps:clone ----------------------------------------------------------------------------

def test_clone_serves_the_live_release_with_the_settings_but_not_the_domains(host):
    deployed()
    links.save("web", [{"kind": "postgres", "name": "db", "variable": "DATABASE_URL"}])
    apps.save_config("web", {"GREETING": "hello", "DATABASE_URL": "postgres://x"})
    with apps.lock("web"):
        apps.save(apps.load("web").updated(checks={**apps.load("web").checks, "wait_to_retire": 9}))
    rename.clone("web", "copy")
    live = fakes.assert_consistent(host, "copy")
    source = releases.load("web", apps.load("web").live_release)
    assert (live.id, live.rev, live.image) == (1, source.rev, "localhost/podku/copy:r1")
    assert live.description == "Clone of web v2" and live.config == {"GREETING": "hello"}
    assert storage.mounts("copy") == ["files:/data"] and links.load("copy") == []
    assert apps.load("copy").health_checks.wait_to_retire == 9
    assert domains.load("copy").custom == [] and host_target("shop.example.com") == "web.sock"
    assert host_target(settings.load().app_host("copy")) == "copy.sock"
    fakes.assert_consistent(host, "web")
    assert "localhost/podku/web:r2" in host.podman.images


def test_a_clone_that_fails_leaves_nothing(host):
    deployed()
    host.health.failing.add(1)
    with pytest.raises(deploy.DeployFailed):
        rename.clone("web", "copy")
    assert apps.all_names() == ["web"] and not paths.AppPaths("copy").repo.exists()
    fakes.assert_consistent(host, "web")


def test_a_new_default_name_another_app_holds_is_not_taken(host):
    deployed()
    lifecycle.create("other", quiet=True)
    taken = settings.load().app_host("shop")
    domains.save("other", domains.Domains(custom=[taken]))
    domains.link(taken, "other")
    rename.rename("web", "shop")
    assert domains.load("shop") == domains.Domains(default=False, custom=["shop.example.com"])
    assert host_target(taken) == "other.sock" and host_target("shop.example.com") == "shop.sock"


@pytest.mark.parametrize("journal", [{"old": "../etc", "new": "shop"}, {"old": "web", "new": "a;id"},
                                     {"old": "other", "new": "shop"}, {"old": "web"}])
def test_a_crafted_journal_is_refused_before_anything_is_touched(host, home, journal):
    deployed()
    paths.RENAMES.mkdir(parents=True)
    (paths.RENAMES / "web.json").write_text(json.dumps(journal))
    before = snapshot(home)
    with pytest.raises(state.StateCorrupt, match="renames/web.json"):
        rename.rename("web", "shop")
    assert snapshot(home) == before


def test_proxy_settings_follow_and_the_old_site_goes(host):
    deployed()
    wanted = proxyconf.ProxySettings(maintenance=True, body_max=1024,
                                     redirects={"shop.example.com": proxyconf.Redirect(to="www.example.com", code=308)})
    with apps.lock("web"):
        proxyconf.change("web", wanted, page="<p>back soon</p>")
    rename.rename("web", "shop")
    assert proxyconf.load("shop") == wanted
    site = routes.site_dir("shop")
    assert (site / "maintenance.html").read_text() == "<p>back soon</p>" and (site / "body-max" / "1024").exists()
    assert (routes.conf_dir() / "shop.example.com").resolve() == site.resolve()
    assert not routes.site_dir("web").exists() and routes.site_directories("web") == []
