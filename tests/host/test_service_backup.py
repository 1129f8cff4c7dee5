"""Services' data moved and restored, on booted hosts over real ssh: postgres:export and
postgres:import round trip through a Flask+psycopg app's rows, redis:export and
redis:import through a key, connect with SQL or commands on stdin (and on a tty), bad
input refused in one line with the data unchanged; and backup:export on the shared host,
backup:import on a fresh one: the app answers with its row through the restored link, the
Redis key is there, and both survive that host's reboot."""

from __future__ import annotations

import os
import select
import subprocess
import time

import builderapps
import pytest
from builderapps import SourceRepo
from servicetools import POSTGRES_IMAGE, REDIS_IMAGE, get, import_postgres_image, import_redis_image, prepared, wait_for
from test_postgres import pg_app
from test_small_host import host_bytes

import testhost


@pytest.fixture(scope="module")
def svc_host(host):
    with prepared(host, POSTGRES_IMAGE, REDIS_IMAGE) as machine:
        yield machine


def ssh_argv(machine: testhost.TestHost, *words: str, tty: bool = False) -> list[str]:
    return ["ssh", *(["-tt"] if tty else []), "-i", str(machine.key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"{testhost.DEPLOY_USER}@127.0.0.1", *words]


def ssh_bytes(machine: testhost.TestHost, *words: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """`ssh podku@HOST WORDS` with binary stdin and stdout (a dump)."""
    return machine.in_netns(ssh_argv(machine, *words), input=stdin, text=False, timeout=600)


def ssh_on_terminal(machine: testhost.TestHost, *words: str, prompt: bytes, typed: bytes) -> tuple[int, bytes]:
    """`ssh -tt podku@HOST WORDS`, `typed` only once `prompt` shows: a program that puts its
    terminal in raw mode flushes what was typed before it did."""
    child = subprocess.Popen(["ip", "netns", "exec", machine.netns, *ssh_argv(machine, *words, tty=True)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdin is not None and child.stdout is not None
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while prompt not in seen:
            assert time.monotonic() < deadline, f"no prompt {prompt!r} in {seen!r}"
            ready, _, _ = select.select([child.stdout], [], [], 1)
            if ready:
                chunk = os.read(child.stdout.fileno(), 4096)
                assert chunk, f"the session ended before its prompt: {seen!r}"
                seen += chunk
        child.stdin.write(typed)
        child.stdin.flush()
        rest, _ = child.communicate(timeout=60)
    finally:
        child.kill()
    return child.wait(), seen + rest


def one_line_refusal(result: subprocess.CompletedProcess, expected: bytes) -> None:
    assert result.returncode != 0, result
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert b"Traceback" not in result.stderr


def redis_command(machine, service: str, command: str) -> str:
    result = ssh_bytes(machine, "redis:connect", service, stdin=f"{command}\n".encode())
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


def test_postgres_export_then_import_round_trips_and_bad_input_changes_nothing(svc_host, tmp_path, app_name):
    service = f"db-{app_name[:40]}"
    repo = SourceRepo(tmp_path / app_name, svc_host, app_name)
    try:
        svc_host.ssh("postgres:create", service)
        repo.write(pg_app("v1"))
        repo.push()
        svc_host.ssh("postgres:link", service, app_name)
        assert get(svc_host, app_name, "/write?body=one") == (200, "written")
        svc_host.ssh("ps:restart", app_name)  # a redeploy: the row is the service's, not the release's
        assert get(svc_host, app_name, "/read") == (200, "one")

        exported = ssh_bytes(svc_host, "postgres:export", service)
        assert exported.returncode == 0, exported.stderr
        dump = exported.stdout
        assert dump.startswith(b"PGDMP") and len(dump) > 500
        print(f"\npostgres:export of one table, one row: {len(dump)} bytes")
        assert get(svc_host, app_name, "/write?body=two") == (200, "written")
        assert get(svc_host, app_name, "/read") == (200, "one,two")

        imported = ssh_bytes(svc_host, "postgres:import", service, stdin=dump)
        assert imported.returncode == 0, imported.stderr
        assert get(svc_host, app_name, "/read") == (200, "one")

        for bad, why in ((b"-- plain SQL\nDROP TABLE notes;\n", b"not a pg_dump archive"),
                         (dump[: len(dump) // 2], b""),  # cut in its table of contents or in its data
                         (b"", b"not a pg_dump archive")):
            one_line_refusal(ssh_bytes(svc_host, "postgres:import", service, stdin=bad), why)
            assert get(svc_host, app_name, "/read") == (200, "one")
        one_line_refusal(ssh_bytes(svc_host, "postgres:import", "../etc", stdin=dump), b"")
        one_line_refusal(ssh_bytes(svc_host, "postgres:export", "$(touch /tmp/owned)"), b"")
        assert svc_host.run(["test", "-e", "/tmp/owned"], check=False).returncode != 0

        counted = ssh_bytes(svc_host, "postgres:connect", service,
                            stdin=b"SELECT 'rows=' || count(*) FROM notes;\n")
        assert counted.returncode == 0 and b"rows=1" in counted.stdout, counted
        code, shown = ssh_on_terminal(svc_host, "postgres:connect", service, prompt=b"=> ",
                                      typed=b"\\pset pager off\nSELECT 6 * 7 AS answer;\n\\q\n")
        assert code == 0 and b"42" in shown and b"answer" in shown, shown
        denied = ssh_bytes(svc_host, "postgres:connect", service, stdin=b"CREATE ROLE intruder SUPERUSER;\n")
        assert b"must be superuser" in denied.stderr  # the service's role, not a superuser

        svc_host.ssh("postgres:set", service, "max-connections", "30")  # a restart applies it
        shown = ssh_bytes(svc_host, "postgres:connect", service, stdin=b"SHOW max_connections;\n")
        assert b" 30\n" in shown.stdout, shown
        assert "max-connections 30" in svc_host.ssh("postgres:info", service).stdout
        wait_for(svc_host, app_name, "/read", "one")
        one_line_refusal(ssh_bytes(svc_host, "postgres:set", service, "shared-buffers", "100000MB"),
                         b"shared-buffers takes a whole number")
    finally:
        svc_host.podku("apps:destroy", app_name, "--force", check=False)
        svc_host.podku("postgres:destroy", service, "--force", check=False)


def test_redis_export_then_import_round_trips_and_bad_input_changes_nothing(svc_host, app_name):
    service = f"cache-{app_name[:40]}"
    unit = f"podku-redis@{service}.service"
    try:
        svc_host.ssh("redis:create", service)
        assert redis_command(svc_host, service, "SET note hello") == "OK"
        exported = ssh_bytes(svc_host, "redis:export", service)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.startswith(b"REDIS"), exported.stdout[:40]
        assert redis_command(svc_host, service, "SET note changed") == "OK"

        imported = ssh_bytes(svc_host, "redis:import", service, stdin=exported.stdout)
        assert imported.returncode == 0, imported.stderr
        assert redis_command(svc_host, service, "GET note") == "hello"
        # the imported data is the server's own now: a restart keeps it
        svc_host.as_deploy_user(f"systemctl --user restart {unit}")
        deadline = time.monotonic() + 60
        while ssh_bytes(svc_host, "redis:connect", service, stdin=b"PING\n").stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "redis did not come back"
            time.sleep(0.5)
        assert redis_command(svc_host, service, "GET note") == "hello"

        for bad, why in ((b"hello\n", b"not a Redis RDB file"), (b"REDIS0011\xfa garbage", b"not a Redis RDB file"),
                         (exported.stdout[: len(exported.stdout) // 2], b"not a Redis RDB file")):
            one_line_refusal(ssh_bytes(svc_host, "redis:import", service, stdin=bad), why)
            assert redis_command(svc_host, service, "GET note") == "hello"
        one_line_refusal(ssh_bytes(svc_host, "redis:import", "a;b", stdin=exported.stdout), b"")

        svc_host.ssh("redis:set", service, "maxmemory", "64mb")
        assert redis_command(svc_host, service, "CONFIG GET maxmemory").split() == ["maxmemory", "67108864"]
        assert "maxmemory 64mb" in svc_host.ssh("redis:info", service).stdout
        assert redis_command(svc_host, service, "GET note") == "hello"
    finally:
        svc_host.podku("redis:destroy", service, "--force", check=False)


def test_a_backup_moves_services_with_their_data_and_links_to_a_fresh_host_that_then_reboots(
        svc_host, fresh_host, tmp_path, app_name):
    service, cache = f"db-{app_name[:40]}", f"cache-{app_name[:40]}"
    repo = SourceRepo(tmp_path / app_name, svc_host, app_name)
    try:
        svc_host.ssh("postgres:create", service)
        svc_host.ssh("redis:create", cache)
        repo.write(pg_app("moved"))
        repo.push()
        svc_host.ssh("postgres:link", service, app_name)
        svc_host.ssh("redis:link", cache, app_name)
        assert get(svc_host, app_name, "/write?body=precious") == (200, "written")
        assert redis_command(svc_host, cache, "SET kept yes") == "OK"
        url = svc_host.ssh("config:get", app_name, "DATABASE_URL").stdout.strip()

        exported = host_bytes(svc_host, ["podku", "backup:export"])
        assert exported.returncode == 0, exported.stderr
        assert b"service(s)" in exported.stderr
        archive = testhost.only_app(exported.stdout, app_name, "-", services=(f"postgres/{service}",
                                                                               f"redis/{cache}"))
    finally:
        svc_host.podku("apps:destroy", app_name, "--force", check=False)
        svc_host.podku("postgres:destroy", service, "--force", check=False)
        svc_host.podku("redis:destroy", cache, "--force", check=False)

    fresh_host.install()
    server = builderapps.prepare_host(fresh_host)
    try:
        import_postgres_image(fresh_host)
        import_redis_image(fresh_host)
        imported = host_bytes(fresh_host, ["podku", "backup:import"], stdin=archive)
        assert imported.returncode == 0, imported.stderr
        assert f"Restored postgres {service}".encode() in imported.stdout + imported.stderr
        wait_for(fresh_host, app_name, "/read", "precious")
        assert fresh_host.ssh("config:get", app_name, "DATABASE_URL").stdout.strip() == url
        assert app_name in fresh_host.ssh("postgres:info", service).stdout
        assert app_name in fresh_host.ssh("redis:info", cache).stdout
        assert redis_command(fresh_host, cache, "GET kept") == "yes"
        again = host_bytes(fresh_host, ["podku", "backup:import"], stdin=archive)
        assert again.returncode != 0 and b"already exist" in again.stderr

        fresh_host.reboot()
        wait_for(fresh_host, app_name, "/read", "precious")
        assert redis_command(fresh_host, cache, "GET kept") == "yes"
    finally:
        server.close()
