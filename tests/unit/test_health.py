import contextlib
import socket
import threading
import time

import pytest

from podku import health
from podku.errors import PodkuError, UsageError
from podku.health import Checks, HealthCheckFailed
from podku.host import records, unixhttp

FAST = Checks(attempts=3, timeout=2, wait=0, initial_delay=0)


# --- settings ------------------------------------------------------------------------

def test_defaults_follow_dokku():
    checks = Checks()
    assert checks.enabled is True
    assert (checks.path, checks.attempts, checks.timeout, checks.wait) == ("/", 5, 5, 2)
    assert (checks.initial_delay, checks.content, checks.wait_to_retire) == (0, "", 5)


def test_dict_round_trip_refuses_unknown_keys():
    checks = Checks(attempts=2, content="hi", enabled=False)
    assert Checks.from_dict(checks.to_dict()) == checks
    assert Checks.from_dict({"attempts": 9}) == Checks(attempts=9)
    with pytest.raises(records.Invalid, match="no_such_setting"):
        Checks.from_dict({"attempts": 9, "no_such_setting": 1})


@pytest.mark.parametrize("key, field", [("wait-to-retire", "wait_to_retire"), ("attempts", "attempts"),
                                        ("timeout", "timeout"), ("wait", "wait"),
                                        ("initial-delay", "initial_delay"),
                                        ("initial_delay", "initial_delay")])
def test_with_setting_changes_one_numeric_setting(key, field):
    changed = Checks().with_setting(key, "17")
    assert getattr(changed, field) == 17
    assert changed == Checks(**{field: 17})


def test_with_setting_leaves_the_original_alone():
    original = Checks()
    original.with_setting("attempts", "1")
    assert original.attempts == 5


@pytest.mark.parametrize("key, value", [("wait", "0"), ("wait", "200"), ("attempts", "100"),
                                        ("wait-to-retire", "3600")])
def test_with_setting_accepts_the_bounds(key, value):
    assert getattr(Checks(attempts=1).with_setting(key, value), key.replace("-", "_")) == int(value)


@pytest.mark.parametrize("key, value", [("wait", "601"), ("attempts", "101"), ("timeout", "99999999"),
                                        ("wait-to-retire", "3601")])
def test_with_setting_refuses_values_above_each_bound(key, value):
    with pytest.raises(UsageError, match=f"invalid value for {key}"):
        Checks().with_setting(key, value)


def test_a_whole_check_is_bounded_in_time():
    with pytest.raises(UsageError, match="health checks could take 1215s"):
        Checks(attempts=3, timeout=5).with_setting("wait", "600")
    app_json = {"healthchecks": {"web": [{"attempts": 100, "timeout": 60}]}}
    with pytest.raises(UsageError, match="the most is 900s"):
        health.from_app_json(app_json, Checks())


@pytest.mark.parametrize("web", [[1], "x", [{"path": "no-slash"}], [{"path": "/a b"}],
                                 [{"content": "x" * 2000}], [{"path": "/\x1b[2J"}]])
def test_app_json_healthchecks_of_the_wrong_shape_are_refused(web):
    with pytest.raises(UsageError, match="app.json healthchecks"):
        health.from_app_json({"healthchecks": {"web": web}}, Checks())


@pytest.mark.parametrize("key", ["path", "content", "enabled", "retries", "", "wait-to-Retire"])
def test_with_setting_refuses_unknown_keys_and_lists_the_known(key):
    with pytest.raises(UsageError, match="unknown check setting") as error:
        Checks().with_setting(key, "3")
    assert "wait-to-retire" in str(error.value)


@pytest.mark.parametrize("value", ["", "x", "-1", "1.5", "101", " 3", "3s", "1" * 40])
def test_with_setting_refuses_non_numeric_or_huge_values(value):
    with pytest.raises(UsageError, match="invalid value for attempts"):
        Checks().with_setting("attempts", value)


def test_app_json_healthchecks_override_the_app_settings():
    app_json = {"healthchecks": {"web": [{"path": "/health", "attempts": 3, "timeout": 2, "wait": 1,
                                           "initialDelay": 4, "content": "ok"}]}}
    base = Checks(wait_to_retire=9)
    checks = health.from_app_json(app_json, base)
    assert checks == Checks(path="/health", attempts=3, timeout=2, wait=1, initial_delay=4,
                            content="ok", wait_to_retire=9)


def test_app_json_without_healthchecks_keeps_the_base():
    base = Checks(attempts=2)
    for app_json in ({}, {"healthchecks": None}, {"healthchecks": {}}, {"healthchecks": {"web": []}},
                     {"healthchecks": {"worker": [{"path": "/x"}]}}):
        assert health.from_app_json(app_json, base) is base


def test_app_json_ignores_unknown_keys_and_cannot_disable_checks():
    app_json = {"healthchecks": {"web": [{"type": "startup", "name": "web check", "enabled": False,
                                           "path": "/up"}]}}
    checks = health.from_app_json(app_json, Checks())
    assert checks == Checks(path="/up")


def test_only_the_first_web_check_counts():
    app_json = {"healthchecks": {"web": [{"path": "/first"}, {"path": "/second"}]}}
    assert health.from_app_json(app_json, Checks()).path == "/first"


# --- check() against a real unix socket ------------------------------------------------------

def test_health_check_failure_is_a_podku_error():
    assert issubclass(HealthCheckFailed, PodkuError)


def test_check_passes_on_200(http_socket):
    server = http_socket(status=200)
    lines = []
    health.check(str(server.path), "app.podku.localhost", FAST, log=lines.append)
    assert len(server.requests) == 1
    assert server.requests[0]["path"] == "/"
    assert server.requests[0]["headers"]["Host"] == "app.podku.localhost"
    assert lines == ["Health check / passed (attempt 1/3)"]


def test_check_asks_for_the_configured_path(http_socket):
    server = http_socket()
    health.check(str(server.path), "h", Checks(path="/health?deep=1", attempts=1, wait=0))
    assert [r["path"] for r in server.requests] == ["/health?deep=1"]


def test_check_fails_on_500_after_every_attempt(http_socket):
    server = http_socket(status=500)
    lines = []
    with pytest.raises(HealthCheckFailed, match="failed 3 times: HTTP 500"):
        health.check(str(server.path), "h", FAST, log=lines.append)
    assert len(server.requests) == 3
    assert lines[-1] == "Health check attempt 3/3 failed: HTTP 500"


def test_check_passes_once_the_server_recovers(http_socket):
    server = http_socket(status=503)
    seen = []

    def log(line):
        seen.append(line)
        server.status = 200  # the next attempt finds it healthy

    health.check(str(server.path), "h", FAST, log=log)
    assert len(server.requests) == 2
    assert seen[-1] == "Health check / passed (attempt 2/3)"


@pytest.mark.parametrize("status", [200, 204, 301, 404, 418])
def test_any_answer_below_500_is_good(http_socket, status):
    server = http_socket(status=status, body=b"" if status == 204 else b"whatever")
    health.check(str(server.path), "h", FAST)
    assert len(server.requests) == 1


def test_check_fails_when_the_content_is_missing(http_socket):
    server = http_socket(status=200, body=b"starting up")
    checks = Checks(attempts=2, timeout=2, wait=0, content="ready")
    with pytest.raises(HealthCheckFailed, match="does not contain 'ready'"):
        health.check(str(server.path), "h", checks)
    assert len(server.requests) == 2


def test_check_passes_when_the_content_is_present(http_socket):
    server = http_socket(status=200, body=b"status: ready\n")
    health.check(str(server.path), "h", Checks(attempts=1, wait=0, content="ready"))


def test_check_fails_when_nothing_listens(tmp_path):
    checks = Checks(attempts=2, timeout=1, wait=0)
    with pytest.raises(HealthCheckFailed, match="failed 2 times: FileNotFoundError"):
        health.check(str(tmp_path / "missing.sock"), "h", checks)


def test_check_fails_when_the_socket_refuses(socket_dir):
    path = socket_dir / "dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    with pytest.raises(HealthCheckFailed, match="ConnectionRefusedError"):
        health.check(str(path), "h", Checks(attempts=1, timeout=1, wait=0))


def test_check_fails_when_the_answer_does_not_come_in_time(socket_dir):
    path = socket_dir / "silent.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(path))
    silent.listen()
    try:
        with pytest.raises(HealthCheckFailed, match="failed 1 times: TimeoutError"):
            health.check(str(path), "h", Checks(attempts=1, timeout=1, wait=0))
    finally:
        silent.close()


def test_check_fails_on_a_garbled_answer(socket_dir):
    path = socket_dir / "garbled.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def answer_garbage():
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"this is not HTTP\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        with pytest.raises(HealthCheckFailed, match="BadStatusLine"):
            health.check(str(path), "h", Checks(attempts=1, timeout=2, wait=0))
    finally:
        thread.join(5)
        listener.close()


def test_disabled_checks_pass_without_connecting(tmp_path, monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError("a disabled check connected")

    monkeypatch.setattr(unixhttp, "request", no_connection)
    lines = []
    health.check(str(tmp_path / "missing.sock"), "h", Checks(enabled=False), log=lines.append)
    assert lines == ["Health checks disabled: skipping"]


def test_zero_attempts_still_tries_once(http_socket):
    server = http_socket(status=200)
    health.check(str(server.path), "h", Checks(attempts=0, wait=0))
    assert len(server.requests) == 1


@pytest.mark.parametrize("check", [{"attempts": "3"}, {"timeout": -1}, {"wait": True}, {"path": "health"},
                                   {"content": 5}])
def test_app_json_checks_of_the_wrong_type_are_refused(check):
    with pytest.raises(UsageError, match="app.json healthchecks"):
        health.from_app_json({"healthchecks": {"web": [check]}}, health.Checks())


# --- one deadline for the whole check, against an app that trickles its answer ----------------

class Trickler:
    """A unix-socket server that answers every request one byte every `interval` seconds,
    for ever: each single wait is shorter than any timeout, the whole answer never ends."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000

    def __init__(self, path, interval: float):
        self.interval, self.connections = interval, 0
        self.stopped = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(4096)
            for byte in self.ANSWER:
                if self.stopped.wait(self.interval):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up: what the deadline is for

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def trickler(socket_dir):
    servers = []

    def start(interval: float) -> Trickler:
        servers.append(Trickler(socket_dir / f"trickle{len(servers)}.sock", interval))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def elapsed(function, *args, **kwargs) -> float:
    started = time.monotonic()
    with contextlib.suppress(HealthCheckFailed, TimeoutError):
        function(*args, **kwargs)
    return time.monotonic() - started


def test_a_request_ends_by_its_deadline_however_often_bytes_arrive(trickler, socket_dir):
    trickler(0.05)
    with pytest.raises(TimeoutError):
        unixhttp.request(str(socket_dir / "trickle0.sock"), "GET", "/", timeout=1,
                         deadline=time.monotonic() + 1)
    assert elapsed(unixhttp.request, str(socket_dir / "trickle0.sock"), "GET", "/", timeout=1,
                   deadline=time.monotonic() + 1) < 1.5


def test_a_trickling_answer_fails_the_check_within_its_configured_bound(trickler, socket_dir):
    server = trickler(0.2)  # 5 bytes a second, each well within the 1 s timeout
    checks = Checks(attempts=3, timeout=1, wait=1)
    assert checks.longest_seconds == 5
    lines: list[str] = []
    took = elapsed(health.check, str(socket_dir / "trickle0.sock"), "h", checks, log=lines.append)
    assert 4.5 < took < 5.8, took
    assert server.connections == 3
    assert lines[-1] == "Health check attempt 3/3 failed: TimeoutError: timed out"
    with pytest.raises(HealthCheckFailed, match="failed 1 times: TimeoutError"):
        health.check(str(socket_dir / "trickle0.sock"), "h", Checks(attempts=1, timeout=1, wait=0))


def test_the_initial_delay_and_the_waits_count_against_the_one_deadline(trickler, socket_dir, monkeypatch):
    trickler(0.2)
    monkeypatch.setattr(health, "MAX_CHECK_SECONDS", 2)  # the bound on every check, whatever its settings
    checks = Checks(attempts=5, timeout=1, wait=1, initial_delay=1)
    with pytest.raises(HealthCheckFailed, match="failed 1 times: TimeoutError.*time ran out"):
        health.check(str(socket_dir / "trickle0.sock"), "h", checks)
    assert elapsed(health.check, str(socket_dir / "trickle0.sock"), "h", checks) < 2.5


def test_a_slow_answer_that_ends_within_the_timeout_still_passes(socket_dir):
    server = Trickler(socket_dir / "slow.sock", 0.001)
    server.ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    try:
        health.check(str(socket_dir / "slow.sock"), "h", Checks(attempts=1, timeout=2, wait=0, content="ok"))
    finally:
        server.close()
