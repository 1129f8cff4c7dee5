"""A Redis service on a booted host: a Flask app using redis-py reads a key through
REDIS_URL after redis:link, across a redeploy; an unlinked app with the URL has no path to
the socket; destroy refused while linked."""

from __future__ import annotations

import pytest
from builderapps import SourceRepo
from servicetools import REDIS_IMAGE, get, prepared

APP = '''\
import os

import redis
from flask import Flask, request

app = Flask(__name__)
MESSAGE = {message!r}


def client():
    return redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)


@app.route("/")
def index():
    return MESSAGE


@app.route("/set")
def set_key():
    client().set("note", request.args["value"])
    return "set"


@app.route("/get")
def get_key():
    try:
        return client().get("note").decode()
    except Exception as error:  # the test reads why
        return f"error {{type(error).__name__}}: {{error}}", 500
'''


def redis_app(message: str) -> dict[str, str]:
    return {"requirements.txt": "flask==3.0.3\ngunicorn==23.0.0\nredis==5.0.8\n",
            "Procfile": "web: gunicorn app:app\n", "app.py": APP.format(message=message)}


@pytest.fixture(scope="module")
def redis_host(host):
    with prepared(host, REDIS_IMAGE) as machine:
        yield machine


def test_a_linked_app_reads_its_key_after_a_redeploy_and_an_unlinked_one_cannot(redis_host, tmp_path, app_name):
    service = f"cache-{app_name[:40]}"
    other = f"{app_name[:40]}-other"
    linked = SourceRepo(tmp_path / app_name, redis_host, app_name)
    unlinked = SourceRepo(tmp_path / other, redis_host, other)
    try:
        redis_host.ssh("redis:create", service)
        linked.write(redis_app("v1"))
        linked.push()
        redis_host.ssh("redis:link", service, app_name)
        url = redis_host.ssh("config:get", app_name, "REDIS_URL").stdout.strip()
        assert url.startswith(f"unix:///run/podku/redis/{service}/redis.sock?password=")
        assert get(redis_host, app_name, "/set?value=hello") == (200, "set")
        linked.write(redis_app("v2"), message="redeploy")
        linked.push()
        assert get(redis_host, app_name, "/") == (200, "v2")
        assert get(redis_host, app_name, "/get") == (200, "hello")
        # the form links made before (the password before the path) still reads with redis-py
        password = url.partition("?password=")[2]
        redis_host.ssh("config:set", app_name, f"REDIS_URL=unix://:{password}@/run/podku/redis/{service}/redis.sock")
        assert get(redis_host, app_name, "/get") == (200, "hello")

        script = ("for p in $(pgrep -x redis-server); do awk '/^Rss:/{r+=$2} /^Pss:/{s+=$2} "
                  "END{print r, s}' /proc/$p/smaps_rollup; done")
        rss, pss = (int(x) for x in redis_host.sh(script).stdout.split()[:2])
        size = redis_host.as_deploy_user(f"podman image inspect --format '{{{{.Size}}}}' {REDIS_IMAGE}").stdout.strip()
        print(f"\nidle redis as podku runs it: RSS {rss / 1024:.1f} MiB, PSS {pss / 1024:.1f} MiB; "
              f"image {int(size) / 1024 ** 2:.0f} MiB")

        unlinked.write(redis_app("unlinked"))
        unlinked.push()
        redis_host.ssh("config:set", other, f"REDIS_URL={url}")
        status, body = get(redis_host, other, "/get")
        assert status == 500 and "No such file or directory" in body, body

        refused = redis_host.ssh("redis:destroy", service, "--force", check=False)
        assert refused.returncode != 0 and f"linked to {app_name}" in refused.stderr
        redis_host.ssh("redis:unlink", service, app_name)
        redis_host.ssh("redis:destroy", service, "--force")
        assert service not in redis_host.ssh("redis:list").stdout
    finally:
        for app in (app_name, other):
            redis_host.podku("apps:destroy", app, "--force", check=False)
        redis_host.podku("redis:destroy", service, "--force", check=False)
