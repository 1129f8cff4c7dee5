"""podku's gunicorn settings file: mounted into every app's containers, and what it does
when gunicorn loads it (it is run here as gunicorn runs a config file: exec'd in a dict)."""

import io
import shlex

import pytest

import fakes
from podku import apps, deploy
from podku.host import systemd, templates
from podku.runtime import gunicorn

SHIPPED = templates.units_dir() / "runtime" / "gunicorn.conf.py"


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def exec_start(unit: str) -> list[str]:
    line = next(line for line in systemd.unit_file(unit).read_text().splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_every_web_container_gets_the_file_and_gunicorn_cmd_args(host):
    fakes.new_app()
    with apps.lock("web"):
        release = deploy.deploy_revision(apps.load("web"), "a" * 40)
    argv = exec_start(release.app_unit)
    assert f"--volume={gunicorn.host_copy()}:/run/podku/gunicorn.conf.py:ro" in argv
    assert "--env=GUNICORN_CMD_ARGS=--config=/run/podku/gunicorn.conf.py" in argv
    assert gunicorn.host_copy().read_text() == SHIPPED.read_text()


def test_an_app_that_sets_gunicorn_cmd_args_keeps_its_own(host):
    assert gunicorn.podman_flags({"GUNICORN_CMD_ARGS": "--workers 3"}) == []
    assert len(gunicorn.podman_flags({"OTHER": "x"})) == 2


class Body:
    def __init__(self, data: bytes):
        self.stream, self.reads = io.BytesIO(data), 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        return self.stream.read(size)


class Request:
    def __init__(self, data: bytes):
        self.body = Body(data)


def load_settings(cwd, monkeypatch) -> dict:
    """As gunicorn's load_config_from_file does it."""
    monkeypatch.chdir(cwd)
    namespace = {"__builtins__": __builtins__, "__name__": "__config__", "__file__": str(SHIPPED)}
    exec(compile(SHIPPED.read_text(), str(SHIPPED), "exec"), namespace, namespace)
    return namespace


def test_post_request_reads_the_rest_of_the_body(tmp_path, monkeypatch):
    settings = load_settings(tmp_path, monkeypatch)
    request = Request(b"x" * 300_000)
    settings["post_request"](None, request, {}, None)
    assert request.body.stream.tell() == 300_000


def test_post_request_reads_at_most_the_limit(tmp_path, monkeypatch):
    settings = load_settings(tmp_path, monkeypatch)
    monkeypatch.setitem(settings, "MAX_DRAIN_BYTES", 100_000)
    request = Request(b"x" * 300_000)
    settings["post_request"](None, request, {}, None)
    assert request.body.stream.tell() == 100_000


def test_a_body_that_fails_to_read_is_left_as_gunicorn_would_leave_it(tmp_path, monkeypatch):
    settings = load_settings(tmp_path, monkeypatch)

    class Broken:
        def read(self, size):
            raise OSError("connection reset")

    request = Request(b"")
    request.body = Broken()
    settings["post_request"](None, request, {}, None)  # no exception


def test_the_apps_own_gunicorn_conf_is_loaded_and_its_hook_still_runs(tmp_path, monkeypatch):
    (tmp_path / "gunicorn.conf.py").write_text(
        "workers = 3\nseen = []\ndef post_request(worker, req, environ, resp):\n    seen.append(req)\n")
    settings = load_settings(tmp_path, monkeypatch)
    assert settings["workers"] == 3
    request = Request(b"body")
    settings["post_request"](None, request, {}, None)
    assert settings["seen"] == [request] and request.body.stream.tell() == 4


def test_the_file_never_loads_itself(monkeypatch):
    settings = load_settings(SHIPPED.parent, monkeypatch)  # cwd holds a file of that name: itself
    assert "post_request" in settings
