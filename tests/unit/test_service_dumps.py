"""postgres:/redis: export, import and connect against the fakes, and services in backups:
each service's record and dump travel, a failing dump fails the export, and a staged
service entry (name, record, dump) is checked like every other member of an archive."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from test_backup import deployed_app, export_bytes, python_storage_stream, wipe
from test_postgres_services import HOSTILE_NAMES

import fakes
from fakes import cli_run
from podku import apps, backup, postgres, redis, releases, services
from podku.host import paths

GOOD_DUMP = b"PGDMP\x01\x0e\x00 a custom-format archive"
GOOD_RDB = b"REDIS0011\xfa\x09redis-ver"


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    monkeypatch.setattr(backup, "storage_stream", python_storage_stream)
    monkeypatch.setattr(backup.gitrepo, "prepare", lambda repo, name: repo.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(backup.domains, "load_proxy", lambda: None)
    monkeypatch.setattr(services, "sleep", lambda seconds: None)
    fake = fakes.install(monkeypatch)
    fake.podman.images |= {postgres.BASE.image, redis.BASE.image}
    fake.podman.exec_output = "PONG\n"
    return fake


class Stdin:
    """What click's command sees as sys.stdin: a pipe carrying bytes."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def run_with_stdin(capsys, monkeypatch, data: bytes, *args: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", Stdin(data))
    code, _out, err = cli_run(capsys, *args)
    return code, err


# --- postgres:export, import, connect -------------------------------------------------------

def test_postgres_export_is_pg_dump_as_the_services_role_with_the_password_on_no_command_line(host):
    service = postgres.create("db")
    host.podman.dump_bytes = GOOD_DUMP
    out = io.BytesIO()
    postgres.export("db", out)
    assert out.getvalue() == GOOD_DUMP
    [(container, argv, env)] = host.podman.dumped
    assert container == service.container and argv == [f"{postgres.BIN}/pg_dump", "--format=custom"]
    assert env == {"PGHOST": "/run/postgresql", "PGUSER": "db", "PGDATABASE": "db", "PGPASSWORD": service.password}
    assert service.password not in " ".join(argv)


def test_a_failing_pg_dump_is_one_line(host, capsys):
    postgres.create("db")
    host.podman.dump_fails = True
    with pytest.raises(services.ServiceError, match="postgres:export db failed: pg_dump: error: connection failed"):
        postgres.export("db", io.BytesIO())


def test_postgres_import_lists_then_restores_in_one_transaction(host, capsys, monkeypatch):
    postgres.create("db")
    code, err = run_with_stdin(capsys, monkeypatch, GOOD_DUMP, "postgres:import", "db")
    assert code == 0, err
    listed, restored = host.podman.restored
    assert listed[1] == [f"{postgres.BIN}/pg_restore", "--list", "--file=/dev/null"] and listed[3] == GOOD_DUMP
    assert restored[1] == [f"{postgres.BIN}/pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
                           "--single-transaction", "--exit-on-error", "--dbname=db"]
    assert restored[3] == GOOD_DUMP and restored[2]["PGPASSWORD"] == postgres.load("db").password
    assert not list(paths.CACHE.glob("service-import-*"))  # the staged input is gone


@pytest.mark.parametrize("data", [b"", b"PGDM", b"-- PostgreSQL database dump\nCREATE TABLE x();\n",
                                  b"REDIS0011", b"\x1f\x8b\x08\x00 gzip"])
def test_postgres_import_refuses_what_is_not_a_custom_format_archive_in_one_line(host, capsys, monkeypatch, data):
    postgres.create("db")
    code, err = run_with_stdin(capsys, monkeypatch, data, "postgres:import", "db")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not a pg_dump archive" in err, err
    assert host.podman.restored == []


def test_a_damaged_archive_or_a_failed_restore_is_one_line_and_said_unchanged(host, capsys, monkeypatch):
    postgres.create("db")
    host.podman.restore_results = [(1, "pg_restore: error: could not read input file: end of file\n")]
    code, err = run_with_stdin(capsys, monkeypatch, GOOD_DUMP, "postgres:import", "db")
    assert code != 0 and "not a pg_dump archive" in err and "end of file" in err
    assert len(host.podman.restored) == 1  # listed only: never restored
    host.podman.restore_results = [(0, ""), (1, "pg_restore: error: could not execute query: ERROR: boom\n")]
    code, err = run_with_stdin(capsys, monkeypatch, GOOD_DUMP, "postgres:import", "db")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "its database is unchanged" in err and "boom" in err


def test_import_bounds_its_input(host, monkeypatch):
    postgres.create("db")
    monkeypatch.setattr(services, "MAX_DUMP_BYTES", 10)
    with pytest.raises(services.UsageError, match="larger than"):
        with services.staged_input(io.BytesIO(GOOD_DUMP * 3), postgres.DUMP_MAGIC, "x", limit=10):
            pass
    assert not list(paths.CACHE.glob("service-import-*"))


def test_import_of_a_service_that_does_not_exist_reads_nothing(host, capsys, monkeypatch):
    code, err = run_with_stdin(capsys, monkeypatch, GOOD_DUMP, "postgres:import", "nope")
    assert code != 0 and "does not exist" in err and host.podman.restored == []


def test_connect_is_psql_as_the_role_with_a_tty_only_on_a_terminal(host):
    postgres.create("db")
    host.podman.executed.clear()
    assert postgres.connect("db", tty=False) == 0
    assert postgres.connect("db", tty=True) == 0
    assert [argv for _c, argv in host.podman.executed] == [[f"{postgres.BIN}/psql"], ["--tty", f"{postgres.BIN}/psql"]]


def test_export_import_connect_refuse_a_service_that_is_not_running(host, capsys):
    postgres.create("db")
    host.manager.active.discard(postgres.load("db").unit)
    for call in (lambda: postgres.export("db", io.BytesIO()), lambda: postgres.connect("db", tty=False)):
        with pytest.raises(services.ServiceError, match="is not running"):
            call()


# --- redis:export, import --------------------------------------------------------------------

def test_redis_export_is_redis_cli_rdb_with_the_password_in_the_environment(host):
    service = redis.create("cache")
    host.podman.dump_bytes = GOOD_RDB
    out = io.BytesIO()
    redis.export("cache", out)
    [(_container, argv, env)] = host.podman.dumped
    assert out.getvalue() == GOOD_RDB and argv == ["sh", "-c", redis.EXPORT_SCRIPT] and "--rdb" in argv[-1]
    assert env == {"REDISCLI_AUTH": service.password} and service.password not in " ".join(argv)


@pytest.mark.parametrize("data, kept", [
    (GOOD_RDB + b"\xff" + b"\x01" * 8 + b"0123456789abcdef" * 2 + b"01234567", len(GOOD_RDB) + 9),
    (GOOD_RDB + b"\xff" + b"\x00" * 8, len(GOOD_RDB) + 9),
    (b"REDIS" + b"a" * 40, 5),
    (b"REDIS" + b"a" * 39 + b"\xff", 45),
    (b"0123456789abcdef" * 2 + b"01234567", 40),
])
def test_a_transfer_mark_after_the_snapshot_is_cut_off_and_nothing_else(tmp_path, data, kept):
    path = tmp_path / "dump.rdb"
    path.write_bytes(data)
    redis.strip_transfer_mark(path)
    assert path.read_bytes() == data[:kept]


def test_redis_import_checks_the_file_whole_then_stops_places_and_starts(host, capsys, monkeypatch):
    service = redis.create("cache")
    host.podman.fed.clear()
    code, err = run_with_stdin(capsys, monkeypatch, GOOD_RDB, "redis:import", "cache")
    assert code == 0, err
    check, place = (argv for argv, _text in host.podman.fed)
    assert check[-2:] == ["redis-check-rdb", redis.IMPORT_MOUNT] and "--network=none" in check
    assert place[-3:] == ["sh", "-c", redis.PLACE_SCRIPT] and f"--volume={service.paths.data}:/var/lib/redis:U" in place
    assert service.unit in host.manager.active


@pytest.mark.parametrize("data", [b"", b"REDI", b"*1\r\n$4\r\nPING\r\n", GOOD_DUMP])
def test_redis_import_refuses_what_is_not_an_rdb_file_and_never_stops_the_server(host, capsys, monkeypatch, data):
    redis.create("cache")
    host.podman.fed.clear()
    stops = len(host.manager.ops("stop"))
    code, err = run_with_stdin(capsys, monkeypatch, data, "redis:import", "cache")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not a Redis RDB file" in err, err
    assert host.podman.fed == [] and len(host.manager.ops("stop")) == stops


def test_redis_import_refuses_a_file_redis_check_rdb_refuses(host, capsys, monkeypatch):
    redis.create("cache")
    host.podman.fed.clear()
    host.podman.input_result = (1, "--- RDB ERROR DETECTED ---\n[offset 9] Unexpected EOF reading RDB file\n")
    stops = len(host.manager.ops("stop"))
    code, err = run_with_stdin(capsys, monkeypatch, GOOD_RDB, "redis:import", "cache")
    assert code != 0 and "RDB ERROR DETECTED" in err and len(host.podman.fed) == 1
    assert len(host.manager.ops("stop")) == stops


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_by_export_import_connect(host, capsys, monkeypatch, name):
    for kind in ("postgres", "redis"):
        for command in ("export", "import", "connect"):
            code, err = run_with_stdin(capsys, monkeypatch, GOOD_DUMP, f"{kind}:{command}", name, *(
                ["--force"] if command == "export" else []))
            assert code == 2 and len(err.strip().splitlines()) == 1, (kind, command, err)
    assert host.podman.dumped == [] and host.podman.restored == []


# --- backups -----------------------------------------------------------------------------------

def linked_services() -> tuple[postgres.Service, redis.Service]:
    deployed_app()
    db, cache = postgres.create("db"), redis.create("cache")
    postgres.link("db", "web")
    redis.link("cache", "web")
    return db, cache


def members_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isreg()}  # type: ignore[union-attr]


def rewrite(data: bytes, change) -> bytes:
    """The archive with its members passed through change(name, bytes) -> (name, bytes) | None."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source:
            body = source.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            changed = change(member.name, body) if member.isreg() else (member.name, body)
            if changed is None:
                continue
            member.name, body = changed
            member.size = len(body)
            target.addfile(member, io.BytesIO(body))
    return out.getvalue()


def forget_services(host: fakes.FakeHost) -> None:
    for kind, name in (("postgres", "db"), ("redis", "cache")):
        services.remove(kind, name, [])


def test_a_backup_carries_each_services_record_and_dump_and_import_restores_them_and_the_links(host):
    db, cache = linked_services()
    host.podman.dump_bytes = GOOD_DUMP
    data = export_bytes()
    found = members_of(data)
    assert json.loads(found["services/postgres/db.json"])["password"] == db.password
    assert found["services/postgres/db.dump"] == GOOD_DUMP and "services/redis/cache.rdb" in found
    wipe()
    forget_services(host)
    host.podman.restored.clear()
    host.podman.fed.clear()
    data = rewrite(data, lambda name, body: (name, GOOD_RDB if name.endswith(".rdb") else body))
    backup.restore(io.BytesIO(data))
    assert postgres.load("db") == db and redis.load("cache") == cache  # the URLs the app holds still work
    assert [argv[-1] for _c, argv, _e, body in host.podman.restored if body == GOOD_DUMP] == [
        "--file=/dev/null", "--dbname=db"]
    assert any(argv[-3:] == ["sh", "-c", redis.PLACE_SCRIPT] for argv, _t in host.podman.fed)
    live = releases.load("web", apps.load("web").live_release)
    assert live.links == ["postgres:db", "redis:cache"] and live.config["DATABASE_URL"] == db.url
    fakes.assert_consistent(host, "web")


def test_a_service_that_cannot_be_dumped_fails_the_export_before_a_byte_is_written(host):
    linked_services()
    host.podman.dump_fails = True
    out = io.BytesIO()
    with pytest.raises(backup.BackupError, match="backup:export failed, no archive written: postgres db could not"):
        backup.export(out)
    assert out.getvalue() == b""
    host.podman.dump_fails = False
    host.manager.active.discard(redis.load("cache").unit)
    with pytest.raises(backup.BackupError, match="redis cache is not running"):
        backup.export(out)
    assert out.getvalue() == b""


def test_an_apps_link_to_a_service_neither_the_backup_nor_the_host_has_is_dropped_and_said(host, capsys):
    linked_services()
    data = rewrite(export_bytes(), lambda name, body: None if name.startswith("services/postgres") else (
        name, GOOD_RDB if name.endswith(".rdb") else body))
    wipe()
    forget_services(host)
    backup.restore(io.BytesIO(data))
    live = releases.load("web", apps.load("web").live_release)
    assert live.links == ["redis:cache"] and "DATABASE_URL" not in live.config
    assert "left out its link to postgres db and DATABASE_URL" in capsys.readouterr().err


@pytest.mark.parametrize("change, reason", [
    (lambda n, b: (n.replace("db.", "a;b."), b), "unexpected member 'services/postgres/a;b"),
    (lambda n, b: (n.replace("db.", "A_b."), b), "is not a service record or dump"),
    (lambda n, b: (n.replace("db.", "..db."), b), "is not a service record or dump"),
    (lambda n, b: (n.replace("services/postgres", "services/mysql"), b), "not a kind of service"),
    (lambda n, b: None if n.endswith("db.dump") else (n, b), "is missing"),
    (lambda n, b: None if n.endswith("db.json") else (n, b), "is missing"),
    (lambda n, b: (n, b"-- plain SQL\n") if n.endswith("db.dump") else (n, b), "is not a pg_dump archive"),
    (lambda n, b: (n, b"not a redis file") if n.endswith(".rdb") else (n, b), "is not a Redis RDB file"),
    (lambda n, b: (n, b.replace(b'"name": "db"', b'"name": "other"')) if n.endswith("db.json") else (n, b),
     "field name"),
    (lambda n, b: (n, b.replace(b'"user": "db"', b'"user": "db\\"; DROP"')) if n.endswith("db.json") else (n, b),
     "field user"),
    (lambda n, b: (n, b.replace(b'"password": "', b'"password": "\\n')) if n.endswith("db.json") else (n, b),
     "field password"),
    (lambda n, b: (n.replace("services/postgres/db.json", "services/postgres/db.json/x"), b), ""),
])
def test_crafted_service_entries_refuse_the_archive_and_nothing_is_made(host, capsys, change, reason):
    linked_services()
    host.podman.dump_bytes = GOOD_DUMP
    data = rewrite(export_bytes(), lambda n, b: change(*((n, GOOD_RDB) if n.endswith(".rdb") else (n, b))))
    wipe()
    forget_services(host)
    starts = len(host.manager.ops("start"))
    with pytest.raises(backup.BackupError, match=reason):
        backup.restore(io.BytesIO(data))
    assert not apps.exists("web") and postgres.all_names() == [] and redis.all_names() == []
    assert len(host.manager.ops("start")) == starts


def test_import_refuses_services_this_host_has(host):
    linked_services()
    data = rewrite(export_bytes(), lambda n, b: (n, GOOD_RDB if n.endswith(".rdb") else b))
    wipe()
    services.remove("redis", "cache", [])
    with pytest.raises(backup.BackupError, match="these services already exist on this host: postgres db"):
        backup.restore(io.BytesIO(data))
    assert not apps.exists("web") and redis.all_names() == []


def test_a_service_restore_that_fails_removes_the_services_the_import_made(host):
    linked_services()
    data = rewrite(export_bytes(), lambda n, b: (n, GOOD_RDB if n.endswith(".rdb") else b))
    wipe()
    forget_services(host)
    host.podman.restore_results = [(0, ""), (1, "pg_restore: error: boom")]
    with pytest.raises(services.ServiceError, match="boom"):
        backup.restore(io.BytesIO(data))
    assert not apps.exists("web") and postgres.all_names() == [] and redis.all_names() == []


# --- per-service settings ----------------------------------------------------------------------

def test_postgres_set_stores_a_bounded_value_renders_it_restarts_and_info_shows_it(host, capsys):
    service = postgres.create("db")
    code, _out, err = cli_run(capsys, "postgres:set", "db", "shared-buffers", "64MB")
    assert code == 0, err
    assert postgres.load("db").settings == {"shared-buffers": 64}
    text = (paths.SYSTEMD_UNITS / service.unit).read_text()
    assert "-c shared_buffers=64MB" in text and "-c shared_buffers=32MB" not in text and "-c max_connections=20" in text
    assert ("restart", service.unit) in host.manager.ops("restart")
    cli_run(capsys, "postgres:set", "db", "max-connections", "50")
    code, out, _err = cli_run(capsys, "postgres:info", "db")
    assert "shared-buffers 64MB, max-connections 50" in out


def test_redis_set_maxmemory_rewrites_its_config(host, capsys):
    service = redis.create("cache")
    code, _out, err = cli_run(capsys, "redis:set", "cache", "maxmemory", "64mb")
    assert code == 0, err
    assert "maxmemory 64mb\n" in service.config_file.read_text()
    assert "maxmemory 32mb" not in service.config_file.read_text()
    assert ("restart", service.unit) in host.manager.ops("restart")


@pytest.mark.parametrize("args", [
    ("postgres:set", "db", "shared-buffers", "0"), ("postgres:set", "db", "shared-buffers", "99999MB"),
    ("postgres:set", "db", "shared-buffers", "1GB"), ("postgres:set", "db", "shared-buffers", "-1"),
    ("postgres:set", "db", "shared-buffers", "64;id"), ("postgres:set", "db", "shared-buffers", ""),
    ("postgres:set", "db", "shared-buffers", "1e3"), ("postgres:set", "db", "shared-buffers", "٣٢"),
    ("postgres:set", "db", "max-connections", "4"), ("postgres:set", "db", "max-connections", "9" * 5000),
    ("postgres:set", "db", "work-mem", "4"), ("postgres:set", "db", "shared_buffers", "64"),
    ("postgres:set", "db", "max-connections", "20\n-c x=1"), ("redis:set", "cache", "maxmemory", "1mb"),
    ("redis:set", "cache", "maxmemory", "64mb\nrequirepass x"), ("redis:set", "cache", "save", "1"),
])
def test_bad_settings_are_one_line_and_change_nothing(host, capsys, args):
    postgres.create("db")
    redis.create("cache")
    before = {path: path.read_bytes() for path in paths.STATE.rglob("*.json")}
    restarts = len(host.manager.ops("restart"))
    code, _out, err = cli_run(capsys, *args)
    assert code != 0 and len(err.strip().splitlines()) == 1, (args, err)
    assert {path: path.read_bytes() for path in paths.STATE.rglob("*.json")} == before
    assert len(host.manager.ops("restart")) == restarts


def test_a_setting_the_server_does_not_start_with_is_put_back(host, capsys, monkeypatch):
    service = postgres.create("db")
    calls = []

    def wait_ready(service: postgres.Service, timeout: float = 1) -> None:
        calls.append(service.settings)
        if len(calls) == 1:
            raise services.ServiceError("postgres db did not accept connections within 90s: FATAL: out of memory")
    monkeypatch.setattr(postgres, "wait_ready", wait_ready)
    code, _out, err = cli_run(capsys, "postgres:set", "db", "shared-buffers", "1024")
    assert code != 0 and "the old one is back" in err and "out of memory" in err
    assert postgres.load("db").settings == {}
    assert "-c shared_buffers=32MB" in (paths.SYSTEMD_UNITS / service.unit).read_text()
    assert host.manager.ops("restart").count(("restart", service.unit)) == 2


def test_settings_travel_in_a_backup_and_are_checked_there(host):
    linked_services()
    postgres.set_value("db", "max-connections", "30")
    data = rewrite(export_bytes(), lambda n, b: (n, GOOD_RDB if n.endswith(".rdb") else b))
    wipe()
    forget_services(host)
    crafted = rewrite(data, lambda n, b: (n, b.replace(b'"max-connections": 30', b'"max-connections": 100000'))
                      if n.endswith("db.json") else (n, b))
    with pytest.raises(backup.BackupError, match="field settings.max-connections"):
        backup.restore(io.BytesIO(crafted))
    backup.restore(io.BytesIO(data))
    assert postgres.load("db").settings == {"max-connections": 30}
    assert "-c max_connections=30" in (paths.SYSTEMD_UNITS / postgres.load("db").unit).read_text()


def test_an_export_to_a_file_makes_it_private_first(host, tmp_path):
    postgres.create("db")
    target = tmp_path / "db.dump"
    target.touch(mode=0o644)
    target.chmod(0o644)
    with open(target, "wb") as out:
        postgres.export("db", out)
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_bytes() == host.podman.dump_bytes


def test_a_redis_server_that_does_not_start_on_the_imported_file_gets_its_old_data_back(host, monkeypatch):
    redis.create("cache")
    host.podman.fed.clear()

    def wait_ready(service: redis.Service, timeout: float = 1) -> None:
        raise services.ServiceError("redis cache did not accept connections within 60s: Bad file format")
    monkeypatch.setattr(redis, "wait_ready", wait_ready)
    with pytest.raises(services.ServiceError, match="its old data is back: .*Bad file format"):
        redis.import_dump("cache", io.BytesIO(GOOD_RDB))
    assert [argv[-1] for argv, _t in host.podman.fed][-2:] == [redis.PLACE_SCRIPT, redis.PUT_BACK_SCRIPT]
    assert ("start", redis.load("cache").unit) == host.manager.ops("start")[-1]
