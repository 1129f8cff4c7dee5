"""Postgres services on a booted host with no route out: postgres:create, a Flask app using
psycopg linked to it by postgres:link (DATABASE_URL, the socket directory mounted), its rows
surviving a redeploy, a crash of the server and a reboot, an unlinked app that has the URL and still
cannot reach the server, destroy refused while linked. The service image is imported from
the cache (make-images.sh builds it with podku's recipe); packages come from pkgserver.py."""

from __future__ import annotations

import pytest
from builderapps import SourceRepo
from servicetools import POSTGRES_IMAGE, get, prepared, wait_for

APP = '''\
import os

import psycopg
from flask import Flask, request

app = Flask(__name__)
MESSAGE = {message!r}


def connect():
    return psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5)


@app.route("/", methods=["GET", "POST"])
def index():
    return MESSAGE


@app.route("/write")
def write():
    with connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (request.args["body"],))
    return "written"


@app.route("/read", methods=["GET", "POST"])
def read():
    try:
        with connect() as conn:
            rows = conn.execute("SELECT body FROM notes ORDER BY body").fetchall()
    except Exception as error:  # the test reads why
        return f"error {{type(error).__name__}}: {{error}}", 500
    return ",".join(row[0] for row in rows)


@app.route("/sockets")
def sockets():
    top = "/run/podku/postgres"
    return " ".join(sorted(os.listdir(top))) if os.path.isdir(top) else "none"
'''


def pg_app(message: str) -> dict[str, str]:
    return {"requirements.txt": "flask==3.0.3\ngunicorn==23.0.0\npsycopg[binary]==3.2.3\n",
            "Procfile": "web: gunicorn app:app\n", "app.py": APP.format(message=message)}


@pytest.fixture(scope="module")
def pg_host(host):
    with prepared(host, POSTGRES_IMAGE) as machine:
        yield machine


def postgres_memory(machine) -> tuple[int, int]:
    """(RSS, PSS) in KiB of every postgres process on the host (the one service running)."""
    script = ("for p in $(pgrep -x postgres); do awk '/^Rss:/{r+=$2} /^Pss:/{s+=$2} "
              "END{print r, s}' /proc/$p/smaps_rollup; done")
    pairs = [line.split() for line in machine.sh(script).stdout.splitlines() if line.strip()]
    return sum(int(rss) for rss, _ in pairs), sum(int(pss) for _, pss in pairs)


def test_a_linked_flask_app_reads_its_rows_after_a_redeploy_and_an_unlinked_one_cannot_reach_them(
        pg_host, tmp_path, app_name, load_run):
    service = f"db-{app_name[:40]}"
    other = f"{app_name[:40]}-other"
    linked = SourceRepo(tmp_path / app_name, pg_host, app_name)
    unlinked = SourceRepo(tmp_path / other, pg_host, other)
    try:
        created = pg_host.ssh("postgres:create", service)
        assert "is running" in created.stderr + created.stdout
        info = pg_host.ssh("postgres:info", service).stdout
        assert "active" in info and f"?host=/run/podku/postgres/{service}" in info
        unit = f"podku-postgres@{service}.service"
        assert pg_host.as_deploy_user(f"systemctl --user is-enabled {unit}").stdout.strip() == "enabled"

        linked.write(pg_app("v1"))
        linked.push()
        unlinked.write(pg_app("unlinked"))
        unlinked.push()
        with load_run(app_name, path="/") as run:  # the link is a swap: no request fails
            pg_host.ssh("postgres:link", service, app_name)
        run.assert_no_failures()
        url = pg_host.ssh("config:get", app_name, "DATABASE_URL").stdout.strip()
        assert url.startswith("postgresql://") and url.endswith(f"?host=/run/podku/postgres/{service}")
        assert get(pg_host, app_name, "/write?body=hello") == (200, "written")
        assert get(pg_host, app_name, "/read") == (200, "hello")
        assert get(pg_host, app_name, "/sockets") == (200, service)

        # under load on a page that queries: a redeploy, another app linked and unlinked
        with load_run(app_name, path="/read") as run:
            linked.write(pg_app("v2"), message="redeploy")
            linked.push()
            pg_host.ssh("postgres:link", service, other)
            pg_host.ssh("postgres:unlink", service, other)
        run.assert_no_failures()
        assert {record.get("body") for record in run.records} <= {"hello", None}
        assert get(pg_host, app_name, "/") == (200, "v2")
        assert get(pg_host, app_name, "/read") == (200, "hello")

        rss, pss = postgres_memory(pg_host)
        size = pg_host.as_deploy_user(f"podman image inspect --format '{{{{.Size}}}}' {POSTGRES_IMAGE}").stdout.strip()
        print(f"\nidle postgres as podku runs it: RSS {rss / 1024:.1f} MiB, PSS {pss / 1024:.1f} MiB; "
              f"image {int(size) / 1024 ** 2:.0f} MiB")

        # the server crashes: systemd starts it again (Restart=on-failure), the rows are there
        pg_host.sh("pkill -KILL -o -x postgres")
        wait_for(pg_host, app_name, "/read", "hello", timeout=90)
        restarts = pg_host.as_deploy_user(f"systemctl --user show -p NRestarts --value {unit}").stdout.strip()
        assert int(restarts) >= 1

        # a reboot: the service starts with the deploy user's manager, the app on its first request
        pg_host.reboot()
        wait_for(pg_host, app_name, "/read", "hello", timeout=120)
        assert pg_host.as_deploy_user(f"systemctl --user is-active {unit}").stdout.strip() == "active"

        # an app that has the URL but no link has no path to the socket
        pg_host.ssh("config:set", other, f"DATABASE_URL={url}")
        status, body = get(pg_host, other, "/read")
        assert status == 500 and "No such file or directory" in body, body
        assert get(pg_host, other, "/sockets") == (200, "none")

        refused = pg_host.ssh("postgres:destroy", service, "--force", check=False)
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert f"linked to {app_name}" in refused.stderr
        assert get(pg_host, app_name, "/read") == (200, "hello")

        hostile = pg_host.ssh("postgres:create", "$(touch /tmp/owned)", check=False)
        assert hostile.returncode == 2 and len(hostile.stderr.strip().splitlines()) == 1
        assert pg_host.run(["test", "-e", "/tmp/owned"], check=False).returncode != 0

        pg_host.ssh("postgres:unlink", service, app_name)
        assert "DATABASE_URL" not in pg_host.ssh("config:show", app_name).stdout
        assert get(pg_host, app_name, "/sockets") == (200, "none")
        pg_host.ssh("postgres:destroy", service, "--force")
        assert service not in pg_host.ssh("postgres:list").stdout
        assert pg_host.as_deploy_user(f"test -e ~/.local/share/podku/services/postgres/{service}",
                                      check=False).returncode != 0
        assert pg_host.as_deploy_user(f"systemctl --user is-enabled {unit}", check=False).stdout.strip() != "enabled"
    finally:
        for app in (app_name, other):
            pg_host.podku("apps:destroy", app, "--force", check=False)
        pg_host.podku("postgres:destroy", service, "--force", check=False)
