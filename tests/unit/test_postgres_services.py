"""Postgres services against the fakes: names, create/destroy, and links through the swap."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import fakes
from fakes import cli_run
from podku import apps, deploy, naming, postgres, releases, services
from podku.host import paths, records, systemd
from podku.image import baseimages
from podku.runtime import links

HOSTILE_NAMES = [";", "a;b", "$(id)", "`id`", "../x", "a/../b", "--", "-x", "--force", "a\nb", "a\rb",
                 "a\x1bb", "a\x00b", "x" * 64, "x" * 5000, "", "A", "a_b", "a b", ".x", "a.b", "db-r1",
                 "caddy", "é"]


def cli_ok(capsys, *args: str) -> str:
    code, out, err = cli_run(capsys, *args)
    assert code == 0, err
    return out + err


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    fakes.new_app("web")
    fake = fakes.install(monkeypatch)
    fake.podman.images.add(postgres.BASE.image)
    monkeypatch.setattr(services, "sleep", lambda seconds: None)
    return fake


def push(app: str = "web", rev: str = "a" * 40) -> releases.Release:
    with apps.lock(app):
        return deploy.deploy_revision(apps.load(app), rev)


def unit_text(unit: str) -> str:
    return systemd.unit_file(unit).read_text()


def service_files() -> list[str]:
    found = []
    for root in (paths.STATE / "services", paths.DATA / "services", paths.SYSTEMD_UNITS):
        if root.exists():
            found += [str(p) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    return found


# --- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("command", [["postgres:create"], ["postgres:destroy", "--force"], ["postgres:info"],
                                     ["postgres:link", "@", "web"], ["postgres:unlink", "@", "web"]])
def test_hostile_service_names_are_refused_in_one_line(host, capsys, command, name):
    args = [word if word != "@" else name for word in command] + ([] if "@" in command else [name])
    if command[0] == "postgres:destroy":
        args = ["postgres:destroy", name, "--force"]
    code, _out, err = cli_run(capsys, *args)
    assert code == 2, (args, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "\x1b" not in err and "\x00" not in err
    assert service_files() == []
    assert host.podman.fed == [] and host.manager.ops("start") == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_app_names_are_refused_by_link(host, capsys, name):
    cli_ok(capsys, "postgres:create", "db")
    before = service_files()
    for command in ("postgres:link", "postgres:unlink"):
        code, _out, err = cli_run(capsys, command, "db", name)
        assert code == 2 and len(err.strip().splitlines()) == 1, (name, err)
    assert service_files() == before


@pytest.mark.parametrize("name", ["db", "a", "0", "my-db-2", "x" * 63])
def test_good_names_make_good_things(name):
    assert postgres.service_paths(name).root.name == name
    assert naming.service_container("postgres", name) == f"podku-postgres.{name}"
    assert naming.parse_service_unit(naming.service_unit("postgres", name)) == ("postgres", name)
    socket = f"{naming.service_socket_mount('postgres', name)}/.s.PGSQL.5432"
    assert len(socket.encode()) <= paths.UNIX_PATH_MAX
    assert naming.service_identifier(name) == name.replace("-", "_")


def test_service_units_and_containers_never_match_an_apps():
    unit = naming.service_unit("postgres", "x-cron-1")
    assert naming.process_unit_pattern("podku-postgres").fullmatch(unit) is None
    assert naming.parse_container(naming.service_container("postgres", "x")) is None


# --- create and destroy -----------------------------------------------------------------------

def test_create_runs_a_small_socket_only_postgres_under_systemd(host, capsys):
    cli_ok(capsys, "postgres:create", "my-db")
    service = postgres.load("my-db")
    assert (service.user, service.database) == ("my_db", "my_db")
    assert stat.S_IMODE(service.paths.record.stat().st_mode) == 0o600
    text = unit_text("podku-postgres@my-db.service")
    for expected in ("--network=none", "-c listen_addresses=", "-c shared_buffers=32MB", "-c max_connections=20",
                     "Restart=on-failure", "WantedBy=default.target", "--user postgres", "--stop-signal=SIGINT",
                     f"--volume {service.paths.sockets}:/run/postgresql:U", postgres.BASE.image):
        assert expected in text, expected
    assert "podku-postgres@my-db.service" in systemd.enabled("default.target")
    assert ("start", "podku-postgres@my-db.service") in host.manager.calls
    [(argv, sql)] = host.podman.fed
    assert "--network=none" in argv and postgres.BASE.image in argv
    assert 'CREATE ROLE "my_db" LOGIN NOSUPERUSER' in sql and f"PASSWORD '{service.password}'" in sql
    assert 'CREATE DATABASE "my_db" OWNER "my_db"' in sql
    assert host.podman.executed[-1][0] == "podku-postgres.my-db"  # waited for pg_isready
    assert "my-db" in cli_ok(capsys, "postgres:list")
    info = cli_ok(capsys, "postgres:info", "my-db")
    assert service.url in info and "Status:" in info


def test_a_second_create_of_the_same_name_is_refused(host, capsys):
    cli_ok(capsys, "postgres:create", "db")
    before = postgres.load("db")
    code, _out, err = cli_run(capsys, "postgres:create", "db")
    assert code == 2 and "already exists" in err
    assert postgres.load("db") == before and len(host.podman.fed) == 1


def test_a_failed_initialisation_leaves_nothing(host, capsys):
    host.podman.input_result = (0, 'backend> ERROR:  role "db" already exists\n')
    code, _out, err = cli_run(capsys, "postgres:create", "db")
    assert code == 1 and "initialising postgres db failed: backend> ERROR:" in err
    assert service_files() == [] and not postgres.exists("db")
    assert not (paths.DATA / "services" / "postgres" / "db").exists()


def test_a_server_that_never_gets_ready_leaves_nothing(host, capsys, monkeypatch):
    host.podman.exec_result = 1
    monkeypatch.setattr(postgres, "READY_TIMEOUT", 0.0)
    monkeypatch.setattr(postgres.wait_ready, "__defaults__", (0.0,))
    code, _out, err = cli_run(capsys, "postgres:create", "db")
    assert code == 1 and "did not accept connections" in err
    assert service_files() == [] and "podku-postgres@db.service" not in systemd.enabled("default.target")
    assert "podku-postgres@db.service" not in host.manager.active


def test_destroy_removes_unit_data_and_record(host, capsys):
    cli_ok(capsys, "postgres:create", "db")
    code, _out, err = cli_run(capsys, "postgres:destroy", "db")  # not a terminal: --force needed
    assert code == 2 and "--force" in err and postgres.exists("db")
    cli_ok(capsys, "postgres:destroy", "db", "--force")
    assert service_files() == [] and not postgres.exists("db")
    assert "podku-postgres@db.service" not in host.manager.active
    assert "podku-postgres.db" in host.podman.removed_containers
    code, _out, err = cli_run(capsys, "postgres:destroy", "db", "--force")
    assert code == 2 and "does not exist" in err


def test_a_crafted_service_record_is_one_line(host, capsys):
    cli_ok(capsys, "postgres:create", "db")
    path = postgres.service_paths("db").record
    data = json.loads(path.read_text())
    for field, value in (("user", 'x"; DROP'), ("password", "' OR '1"), ("name", "other"), ("extra", 1)):
        path.write_text(json.dumps({**data, field: value}))
        code, _out, err = cli_run(capsys, "postgres:info", "db")
        assert code == 1 and "is invalid" in err and len(err.strip().splitlines()) == 1, err


# --- links ------------------------------------------------------------------------------------

def test_link_is_a_release_with_the_url_and_the_socket(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    service = postgres.load("db")
    app = apps.load("web")
    assert app.live_release == 2
    release = releases.load("web", 2)
    assert release.config["DATABASE_URL"] == service.url and release.links == ["postgres:db"]
    assert apps.config("web")["DATABASE_URL"] == service.url
    assert f"--volume={service.paths.sockets}:/run/podku/postgres/db:ro" in unit_text("web-r2.service")
    assert "/run/podku/postgres" not in unit_text("web-r1.service")
    fakes.assert_consistent(host, "web")
    assert postgres.linked_apps("db") == ["web"]
    assert "web" in cli_ok(capsys, "postgres:info", "db")


def test_the_url_works_unchanged_with_libpq_style_parsers(host, capsys):
    cli_ok(capsys, "postgres:create", "db-1")
    url = urlsplit(postgres.load("db-1").url)
    assert url.scheme == "postgresql" and url.hostname is None and url.path == "/db_1"
    assert parse_qs(url.query) == {"host": ["/run/podku/postgres/db-1"]}
    assert url.username == "db_1" and len(url.password) == 48


def test_a_second_link_of_the_same_pair_is_refused_and_changes_nothing(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    code, _out, err = cli_run(capsys, "postgres:link", "db", "web")
    assert code == 2 and "already linked" in err
    assert [r.id for r in releases.all_of("web")] == [2, 1]


def test_a_second_postgres_gets_a_prefixed_name(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:create", "stats-2")
    cli_ok(capsys, "postgres:link", "db", "web")
    cli_ok(capsys, "postgres:link", "stats-2", "web")
    config = apps.config("web")
    assert config["DATABASE_URL"] == postgres.load("db").url
    assert config["POSTGRES_STATS_2_URL"] == postgres.load("stats-2").url
    assert releases.load("web", 3).links == ["postgres:db", "postgres:stats-2"]
    # the first unlinked: DATABASE_URL goes, the other stays under its own name
    cli_ok(capsys, "postgres:unlink", "db", "web")
    assert "DATABASE_URL" not in apps.config("web") and "POSTGRES_STATS_2_URL" in apps.config("web")


def test_a_database_url_of_the_users_own_is_never_overwritten(host, capsys):
    push()
    cli_ok(capsys, "config:set", "web", "DATABASE_URL=postgresql://elsewhere/x")
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    config = apps.config("web")
    assert config["DATABASE_URL"] == "postgresql://elsewhere/x"
    assert config["POSTGRES_DB_URL"] == postgres.load("db").url


def test_destroy_is_refused_while_linked(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    code, _out, err = cli_run(capsys, "postgres:destroy", "db", "--force")
    assert code == 2 and "linked to web" in err and len(err.strip().splitlines()) == 1
    assert postgres.exists("db") and postgres.load("db").paths.data.is_dir()
    assert "podku-postgres@db.service" in host.manager.active
    cli_ok(capsys, "postgres:unlink", "db", "web")
    release = releases.load("web", apps.load("web").live_release)
    assert release.links == [] and "DATABASE_URL" not in release.config
    assert "/run/podku/postgres" not in unit_text(f"web-r{release.id}.service")
    cli_ok(capsys, "postgres:destroy", "db", "--force")
    assert not postgres.exists("db")


def test_linking_a_missing_app_or_service_is_one_line(host, capsys):
    cli_ok(capsys, "postgres:create", "db")
    for args in (["postgres:link", "db", "nope"], ["postgres:link", "nope", "web"],
                 ["postgres:unlink", "db", "web"], ["postgres:unlink", "db", "nope"]):
        code, _out, err = cli_run(capsys, *args)
        assert code != 0 and len(err.strip().splitlines()) == 1, (args, err)
    assert links.load("web") == []


def test_a_failed_link_release_keeps_the_old_links_and_config(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    host.health.failing.add(2)
    code, _out, err = cli_run(capsys, "postgres:link", "db", "web")
    assert code == 1 and "release 1 is still serving" in err
    assert links.load("web") == [] and "DATABASE_URL" not in apps.config("web")
    assert apps.load("web").live_release == 1
    code, _out, err = cli_run(capsys, "postgres:destroy", "db", "--force")
    assert code == 0, err


def test_a_link_before_the_first_push_reaches_the_first_release(host, capsys):
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    release = push()
    assert release.links == ["postgres:db"] and release.config["DATABASE_URL"] == postgres.load("db").url
    assert "/run/podku/postgres/db:ro" in unit_text("web-r1.service")


def test_a_rollback_to_before_the_link_drops_the_socket_with_the_url(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    cli_ok(capsys, "rollback", "web", "1")
    release = releases.load("web", 3)
    assert "DATABASE_URL" not in release.config
    # the release's config comes from release 1; its links from the app's settings now: the
    # socket is there, and the URL comes back with the next config change or link
    assert release.links == ["postgres:db"]


def test_destroying_an_app_drops_its_links(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "postgres:link", "db", "web")
    cli_ok(capsys, "apps:destroy", "web", "--force")
    assert postgres.linked_apps("db") == []
    cli_ok(capsys, "postgres:destroy", "db", "--force")


@pytest.mark.parametrize("entry", ["postgres:../x", "postgres:a;b", "redis2:db", "postgres:", "db",
                                   "postgres:DB", "postgres:x\ny"])
def test_a_crafted_release_link_is_refused(home, entry):
    fakes.new_app("web")
    data = {"app": "web", "id": 1, "rev": "a" * 40, "image": "localhost/podku/web:r1", "description": "x",
            "links": [entry]}
    with pytest.raises(records.RecordInvalid, match="field links"):
        releases.from_record(data, "web", 1, "1.json")


@pytest.mark.parametrize("entry", [{"kind": "postgres", "name": "../x", "variable": "DATABASE_URL"},
                                   {"kind": "postgres", "name": "db", "variable": "A=B"},
                                   {"kind": "mysql", "name": "db", "variable": "DATABASE_URL"},
                                   {"kind": "postgres", "name": "db"},
                                   {"kind": "postgres", "name": "db", "variable": "X", "extra": 1}])
def test_a_crafted_links_file_is_refused(home, entry):
    app = fakes.new_app("web")
    (app.paths.root / "links.json").write_text(json.dumps([entry]))
    with pytest.raises(records.RecordInvalid, match="links.json"):
        links.load("web")


def test_the_test_hosts_postgres_image_is_built_by_podkus_recipe():
    """make-images.sh builds the image the host tests import: the same packages and hook as
    postgres.BASE, which `postgres:create` builds with mmdebstrap on a real host."""
    script = (Path(__file__).resolve().parents[1] / "host" / "make-images.sh").read_text()
    assert f"postgres_base_packages=({' '.join(postgres.BASE.packages)})" in script
    [hook] = postgres.BASE.hooks
    assert f"postgres_base_hook='{hook}'" in script
    argv = baseimages.mmdebstrap_argv(postgres.BASE, baseimages.DEFAULT_MIRROR)
    assert f"--customize-hook={hook}" in argv and "--include=postgresql-15" in argv
