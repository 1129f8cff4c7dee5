"""Static sites served by Caddy from the live release's tree: the copy's refusals, the swap
between static and container releases (a crash after each step healed), ps on a static
site, the fallback setting and what the site directory links to."""

import os
import shutil

import pytest
from test_swap import crash_and_heal

import fakes
from podku import apps, deploy, lifecycle, processes, proxyconf, releases, rename, staticsite, swap
from podku.image import gitrepo, statictree
from podku.image.builders import static
from podku.proxy import routes

STATIC, CONTAINER = static.BUILDER.name, "containerfile"


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def push(host: fakes.FakeHost, builder: str, rev: str) -> releases.Release:
    host.podman.builder = builder
    with apps.lock("web"):
        return deploy.deploy_revision(apps.load("web"), rev)


def restart() -> releases.Release:
    with apps.lock("web"):
        return deploy.redeploy(apps.load("web"), "Restart")


# --- the copy -------------------------------------------------------------------------------

def site(tmp_path, files: dict[str, str]):
    root = tmp_path / "checkout"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def gather(root, tmp_path):
    out = tmp_path / "tree"
    out.mkdir()
    statictree.gather(root, out, statictree.Budget())
    return out


def test_the_copy_keeps_regular_files_and_directories_and_leaves_hidden_entries_out(tmp_path):
    root = site(tmp_path, {"index.html": "i", "a/b/c.css": "c", ".env": "S=1", ".git/config": "x", "a/.hidden": "h"})
    os.chmod(root / "index.html", 0o600)
    out = gather(root, tmp_path)
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert found == ["a", "a/b", "a/b/c.css", "index.html"]
    assert (out / "index.html").stat().st_mode & 0o777 == 0o644  # Caddy reads it


@pytest.mark.parametrize("kind", ["symlink to a secret", "symlink to a directory", "dangling symlink", "fifo"])
def test_the_copy_refuses_anything_but_files_and_directories(tmp_path, kind):
    root = site(tmp_path, {"index.html": "i"})
    secret = tmp_path / "secret"
    secret.write_text("password")
    (root / "sub").mkdir()
    if kind == "symlink to a secret":
        (root / "sub" / "keys").symlink_to(secret)
    elif kind == "symlink to a directory":
        (root / "sub" / "home").symlink_to(tmp_path)
    elif kind == "dangling symlink":
        (root / "sub" / "gone").symlink_to(tmp_path / "nothing")
    else:
        os.mkfifo(root / "sub" / "pipe")
    with pytest.raises(statictree.TreeRefused) as refused:
        gather(root, tmp_path)
    assert "sub/" in str(refused.value) and "\n" not in str(refused.value)
    assert not any(p.is_symlink() for p in (tmp_path / "tree").rglob("*"))


def test_the_copy_is_bounded_in_files_and_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(statictree, "MAX_FILES", 3)
    with pytest.raises(statictree.TreeRefused, match="more than 3 files"):
        gather(site(tmp_path / "many", {f"f{n}": "x" for n in range(4)}), tmp_path / "many")
    monkeypatch.setattr(statictree, "MAX_BYTES", 1024 ** 2)
    with pytest.raises(statictree.TreeRefused, match="larger than 1 MiB"):
        gather(site(tmp_path / "big", {"big.bin": "x" * (1024 ** 2 + 1)}), tmp_path / "big")


def test_public_is_served_when_it_is_a_directory_and_refused_as_a_symlink(tmp_path):
    root = site(tmp_path, {"public/index.html": "i", "sub/.static": ""})
    assert statictree.served_dir(root, "") == "public"
    assert statictree.served_dir(root, "sub") == "sub"
    (root / "sub" / "public").symlink_to(tmp_path)
    with pytest.raises(statictree.TreeRefused, match="is a symlink"):
        statictree.served_dir(root, "sub")


# --- swaps ----------------------------------------------------------------------------------

def test_a_static_release_starts_nothing_and_caddy_follows_its_live_link(host):
    fakes.new_app()
    first = push(host, STATIC, "a" * 40)
    assert first.static and first.units == [] and processes.wanted_units(apps.load("web"), first) == []
    fakes.assert_consistent(host, "web")
    assert host.manager.active == set() and host.health.passed == []
    second = push(host, STATIC, "b" * 40)
    fakes.assert_consistent(host, "web")
    assert (staticsite.tree("web", second.id) / "index.html").read_text() == "static bbbbbbb"
    host.fire_retirements()
    assert not staticsite.tree("web", first.id).exists()  # retired: its files removed
    assert releases.load("web", first.id).outcome == releases.Outcome.RETIRED


def test_a_rollback_to_a_retired_static_release_writes_its_files_again(host):
    fakes.new_app()
    push(host, STATIC, "a" * 40)
    push(host, STATIC, "b" * 40)
    host.fire_retirements()
    with apps.lock("web"):
        app = apps.load("web")
        back = deploy.redeploy(app, "Rollback", source=deploy.rollback_target(app, 1))
    assert back.static and (staticsite.tree("web", back.id) / "index.html").read_text() == "static aaaaaaa"
    fakes.assert_consistent(host, "web")


def test_a_static_release_without_index_html_fails_its_check_and_the_old_one_serves(host, monkeypatch):
    fakes.new_app()
    push(host, STATIC, "a" * 40)

    def empty_site(repo, rev, directory, destination):
        destination.mkdir()
        (destination / "other.html").write_text("x")
    monkeypatch.setattr(statictree, "write", empty_site)
    with pytest.raises(deploy.DeployFailed, match="has no index.html"):
        push(host, STATIC, "b" * 40)
    assert apps.load("web").live_release == 1 and not staticsite.tree("web", 2).exists()
    fakes.assert_consistent(host, "web")


@pytest.mark.parametrize("how", ["doctor", "deploy", "retire"])
@pytest.mark.parametrize("step", swap.STEPS)
@pytest.mark.parametrize("kinds", [(STATIC, STATIC), (CONTAINER, STATIC), (STATIC, CONTAINER)])
def test_a_crash_after_each_step_of_a_static_swap_is_healed(host, monkeypatch, step, how, kinds):
    fakes.new_app()
    push(host, kinds[0], "a" * 40)
    monkeypatch.setenv(swap.CRASH_AFTER_ENV, step)

    def die() -> None:
        host.manager.crash_at = 0
        raise fakes.SimulatedCrash(step)
    monkeypatch.setattr(swap, "_die", die)
    with pytest.raises(fakes.SimulatedCrash):
        push(host, kinds[1], "b" * 40)
    monkeypatch.delenv(swap.CRASH_AFTER_ENV)
    expected_live = 1 if swap.STEPS.index(step) < swap.STEPS.index("record") else 2
    assert apps.load("web").live_release == expected_live
    crash_and_heal(host, how)
    assert releases.load("web", 2).static == (kinds[1] == STATIC)


def test_ps_stop_and_start_on_a_static_site(host):
    fakes.new_app()
    push(host, STATIC, "a" * 40)
    with apps.lock("web"):
        stopped = apps.load("web").updated(stopped=True)
        apps.save(stopped)
        swap.reconcile.reconcile(stopped)
    assert not staticsite.live_link("web").is_symlink()  # the static route no longer matches
    fakes.assert_consistent(host, "web")
    with apps.lock("web"):
        started = apps.load("web").updated(stopped=False)
        apps.save(started)
        swap.reconcile.reconcile(started)
    fakes.assert_consistent(host, "web")


def test_ps_scale_on_a_static_site_is_one_line(host, capsys):
    fakes.new_app()
    push(host, STATIC, "a" * 40)
    code, _out, err = fakes.cli_run(capsys, "ps:scale", "web", "web=2")
    assert code != 0 and "static site served by Caddy" in err and len(err.strip().splitlines()) == 1


# --- the fallback -----------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["/index.html", "/app/200.html", "/a-b_c~d.html"])
def test_a_fallback_is_a_path_of_the_sites_files(good):
    assert proxyconf.parse_fallback(good) == good


@pytest.mark.parametrize("bad", ["", "index.html", "/", "/../x", "/a/../../b", "/.env", "/a/.git/x", "//x",
                                 "/a\nb", "/a\x01b", "/" + "x" * 300, "/a b", "/{http.request.host}", "/a\\b"])
def test_a_fallback_outside_the_files_or_unprintable_is_refused(bad):
    with pytest.raises(proxyconf.ProxySettingError):
        proxyconf.parse_fallback(bad)


def test_the_site_directory_links_to_the_live_tree_and_the_fallback_through_it(home):
    fakes.new_app()
    proxyconf.render("web", proxyconf.ProxySettings(static_fallback="/app/index.html"))
    site_dir = routes.site_dir("web")
    assert (site_dir / "static").resolve() == staticsite.live_link("web").resolve()
    assert (site_dir / "files").resolve() == staticsite.files_link("web").resolve()
    assert os.readlink(site_dir / "fallback") == "files/app/index.html"
    proxyconf.render("web", proxyconf.ProxySettings())
    assert (site_dir / "static").is_symlink() and not (site_dir / "fallback").exists()


def test_a_switch_keeps_what_a_request_matched_just_before_until_the_old_release_retires(host):
    """Container -> static: the stable socket names the draining container until its
    retirement; static -> container: the files link names the old tree until its retirement."""
    fakes.new_app()
    app_paths = apps.load("web").paths
    push(host, CONTAINER, "a" * 40)
    push(host, STATIC, "b" * 40)
    assert os.readlink(app_paths.stable_socket) == str(app_paths.release_socket(1))
    assert os.readlink(staticsite.live_link("web")) == "r2"
    host.fire_retirements()
    assert os.readlink(app_paths.stable_socket) == str(staticsite.no_socket("web"))
    push(host, CONTAINER, "c" * 40)
    assert not staticsite.live_link("web").is_symlink()  # the static route no longer matches
    assert os.readlink(staticsite.files_link("web")) == "r2"  # but what it matched is still there
    host.fire_retirements()
    assert not staticsite.files_link("web").is_symlink() and not staticsite.tree("web", 2).exists()
    fakes.assert_only_live_has_units(host, "web")


def test_a_renamed_static_site_serves_its_files_under_the_new_name_and_the_old_ones_go(host):
    fakes.new_app()
    push(host, STATIC, "a" * 40)
    rename.rename("web", "shop")
    live = fakes.assert_consistent(host, "shop")
    assert live.static and (staticsite.tree("shop", live.id) / "index.html").read_text() == "static aaaaaaa"
    assert (routes.site_dir("shop") / "static").resolve() == staticsite.tree("shop", live.id).resolve()
    assert not staticsite.directory("web").exists()


def test_a_cloned_static_site_is_static_too(host):
    lifecycle.create("web", quiet=True)
    push(host, STATIC, "a" * 40)
    rename.clone("web", "copy")
    live = fakes.assert_consistent(host, "copy")
    assert live.static and staticsite.has_tree(live)
    fakes.assert_consistent(host, "web")


def test_a_live_tree_that_is_gone_is_written_again_or_named_in_one_line(host, monkeypatch):
    fakes.new_app()
    release = push(host, STATIC, "a" * 40)
    shutil.rmtree(staticsite.tree("web", release.id))
    assert any("again" in line for line in swap.reconcile.reconcile(apps.load("web")))
    assert staticsite.has_tree(release)
    shutil.rmtree(staticsite.tree("web", release.id))

    def gone(repo, rev, directory, destination):
        raise gitrepo.RepoError("cannot check out revision aaaaaaaaaaaa: bad object")
    monkeypatch.setattr(statictree, "write", gone)
    with pytest.raises(swap.reconcile.ReconcileError, match="its files cannot be served"):
        swap.reconcile.reconcile(apps.load("web"))
