"""Redis services against the fakes: what differs from Postgres (the config file holds the
password, REDIS_URL's unix:// form), and that both kinds link to one app side by side."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_postgres_services import HOSTILE_NAMES, cli_ok, cli_run, push, service_files, unit_text

import fakes
from podku import apps, postgres, redis, releases, services
from podku.image import baseimages


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    fakes.new_app("web")
    fake = fakes.install(monkeypatch)
    fake.podman.images |= {postgres.BASE.image, redis.BASE.image}
    fake.podman.exec_output = "PONG\n"
    monkeypatch.setattr(services, "sleep", lambda seconds: None)
    return fake


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_by_every_redis_command(host, capsys, name):
    for args in (["redis:create", name], ["redis:destroy", name, "--force"], ["redis:info", name],
                 ["redis:link", name, "web"], ["redis:unlink", name, "web"]):
        code, _out, err = cli_run(capsys, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err)
    assert service_files() == [] and host.manager.ops("start") == []


def test_create_keeps_the_password_off_every_command_line(host, capsys):
    cli_ok(capsys, "redis:create", "cache")
    service = redis.load("cache")
    text = unit_text("podku-redis@cache.service")
    assert service.password not in text
    for expected in ("--network=none", "--user redis", "Restart=on-failure", "WantedBy=default.target",
                     f"--volume {service.config_file}:/etc/redis/podku.conf:ro"):
        assert expected in text, expected
    config = service.config_file.read_text()
    assert f"requirepass {service.password}\n" in config and "port 0\n" in config
    assert "maxmemory 32mb\n" in config and "maxmemory-policy allkeys-lru\n" in config
    assert stat.S_IMODE(service.paths.record.stat().st_mode) == 0o600
    assert "podku-redis@cache.service" in host.manager.active


def test_postgres_and_redis_link_to_one_app_side_by_side(host, capsys):
    push()
    cli_ok(capsys, "postgres:create", "db")
    cli_ok(capsys, "redis:create", "cache")
    cli_ok(capsys, "postgres:link", "db", "web")
    cli_ok(capsys, "redis:link", "cache", "web")
    release = releases.load("web", apps.load("web").live_release)
    assert release.links == ["postgres:db", "redis:cache"]
    assert release.config["REDIS_URL"] == redis.load("cache").url
    url = urlsplit(release.config["REDIS_URL"])
    assert url.scheme == "unix" and url.path == "/run/podku/redis/cache/redis.sock" and not url.netloc
    assert parse_qs(url.query) == {"password": [redis.load("cache").password]}
    unit = unit_text(f"web-r{release.id}.service")
    assert "/run/podku/redis/cache:ro" in unit and "/run/podku/postgres/db:ro" in unit
    code, _out, err = cli_run(capsys, "redis:destroy", "cache", "--force")
    assert code == 2 and "linked to web" in err
    cli_ok(capsys, "redis:unlink", "cache", "web")
    assert "REDIS_URL" not in apps.config("web") and "DATABASE_URL" in apps.config("web")
    cli_ok(capsys, "redis:destroy", "cache", "--force")
    assert not redis.exists("cache") and postgres.exists("db")


def test_a_redis_that_never_answers_leaves_nothing(host, capsys, monkeypatch):
    monkeypatch.setattr(redis.wait_ready, "__defaults__", (0.0,))
    host.podman.exec_result = 1
    code, _out, err = cli_run(capsys, "redis:create", "cache")
    assert code == 1 and "did not accept connections" in err
    assert service_files() == []


def test_the_test_hosts_redis_image_is_built_by_podkus_recipe():
    script = (Path(__file__).resolve().parents[1] / "host" / "make-images.sh").read_text()
    assert f"redis_base_packages=({' '.join(redis.BASE.packages)})" in script
    [hook] = redis.BASE.hooks
    assert f"redis_base_hook='{hook}'" in script
    assert f"--customize-hook={hook}" in baseimages.mmdebstrap_argv(redis.BASE, baseimages.DEFAULT_MIRROR)
