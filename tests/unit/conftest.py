"""Shared fixtures for podku's unit tests: no root, no podman, no systemd.

pystemd may be missing here: podku.host.systemd imports it only inside its real manager
(UserManager), so podku.swap, deploy, lifecycle, reconcile and hostsetup import without it.
A test that reaches the user manager or podman must first put the fakes in place
(tests/unit/fakes.py: `fakes.install(monkeypatch)` after the `home` fixture), never the real ones.
"""

from __future__ import annotations

import http.server
import socketserver
import sys
import tempfile
import threading
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
sys.path.insert(0, str(SRC))

from podku.host import paths, templates  # noqa: E402

# The templates of this checkout, not of an installed podku (templates.UNITS_DIR's one rule
# is where the package installs them).
templates.UNITS_DIR = SRC.parent / "units"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HOME and XDG tree under tmp_path, seen by podku.host.paths and by child processes."""
    home = tmp_path / "home"
    home.mkdir()
    state = home / ".local" / "state"
    config = home / ".config"
    data = home / ".local" / "share"
    cache = home / ".cache"
    runtime = tmp_path / "run"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))

    # podku.host.paths computed its constants at import time: point each one at the tmp tree.
    values = {
        "HOME": home,
        "STATE": state / "podku",
        "CONFIG": config / "podku",
        "DATA": data / "podku",
        "CACHE": cache / "podku",
        "SYSTEMD_UNITS": config / "systemd" / "user",
        "RUNTIME": runtime / "podku",
    }
    values.update(
        APPS=values["STATE"] / "apps",
        REPOS=values["DATA"] / "repos",
        STATIC=values["DATA"] / "static",
        BUILDS=values["CACHE"] / "build",
        STABLE_SOCKETS=values["STATE"] / "sock",
        SETTINGS=values["CONFIG"] / "podku.json",
        CADDY_CONFIG=values["CONFIG"] / "caddy.json",
        CADDY_ADMIN_SOCKET=values["STATE"] / "caddy-admin.sock",
        IMAGES_LOCK=values["STATE"] / "images.lock",
        RENAMES=values["STATE"] / "renames",
        SSH_AUTHORIZED_KEYS=home / ".ssh" / "authorized_keys",
    )
    for name, value in values.items():
        monkeypatch.setattr(paths, name, value)
    escaped = [name for name, value in vars(paths).items()  # the program itself is not state
               if isinstance(value, Path) and name != "PODKU_EXECUTABLE" and not value.is_relative_to(tmp_path)]
    assert not escaped, f"podku.host.paths constants not redirected by this fixture: {escaped}"
    return home


# --- a tiny HTTP server on a unix socket ------------------------------------------------


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up early
            super().handle_error(request, client_address)


class SocketServer:
    """Answers every GET with `status` and `body`; records the requests it saw."""

    def __init__(self, path: Path, status: int = 200, body: bytes = b"ok\n"):
        self.path = path
        self.status = status
        self.body = body
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append({
                    "method": self.command, "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length) if length else b"",
                })
                self.send_response(server.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                if server.body:
                    self.wfile.write(server.body)

            do_GET = do_POST = _answer

            def log_message(self, format, *args) -> None:  # client_address is '' on unix sockets
                pass

        self.httpd = _UnixHTTPServer(str(path), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def socket_dir(tmp_path) -> Path:
    """A directory for unix sockets: tmp_path, unless its path is too long for one."""
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="podku-", dir="/tmp") as short:
        yield Path(short)


@pytest.fixture
def http_socket(socket_dir):
    """Start a server on a unix socket: http_socket(status=..., body=...) -> SocketServer."""
    started: list[SocketServer] = []

    def start(status: int = 200, body: bytes = b"ok\n", name: str = "web.sock") -> SocketServer:
        server = SocketServer(socket_dir / name, status, body)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
