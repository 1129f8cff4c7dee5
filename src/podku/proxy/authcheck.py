"""The basic-auth checker Caddy asks before it proxies a request to an app under
http-auth:enable (caddy.json.j2, route podku-auth): a small HTTP server on the socket
systemd hands it (podku-auth.socket). It reads the app's user and bcrypt hash from
hostconf/HOST/auth on every request, so enabling, changing or disabling auth is a file
change, never a Caddy load; a password once checked against a hash is remembered (by a
digest of both) so that bcrypt runs once per credential, not per request."""

import base64
import hashlib
import hmac
import os
import socket
import sys
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt

from podku import names
from podku.proxy import routes

SYSTEMD_FIRST_FD = 3
REMEMBERED = 1024
REALM = "restricted"


class Checked:
    """Digests of (Authorization header, hash) that bcrypt accepted: least recently used first."""

    def __init__(self) -> None:
        self.digests: OrderedDict[bytes, None] = OrderedDict()

    def accepts(self, header: str, user: str, hashed: str) -> bool:
        digest = hashlib.sha256(f"{header}\0{user}\0{hashed}".encode()).digest()
        if digest in self.digests:
            self.digests.move_to_end(digest)
            return True
        if not credentials_match(header, user, hashed):
            return False
        self.digests[digest] = None
        while len(self.digests) > REMEMBERED:
            self.digests.popitem(last=False)
        return True


def credentials_match(header: str, user: str, hashed: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given_user, separator, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except ValueError:
        return False
    if not separator or not hmac.compare_digest(given_user, user.encode()):
        return False
    try:
        return bcrypt.checkpw(password, hashed.encode("ascii"))
    except ValueError:
        return False


def account_for(host: str, root: Path) -> tuple[str, str] | None:
    """(user, hash) of the app `host` routes to, or None when its auth is off."""
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    if names.host_name_problem(name):
        return None
    try:
        user, hashed = (root / name / "auth").read_text().splitlines()[:2]
    except (OSError, ValueError):
        return None
    return user, hashed


def handler(checked: Checked, root: Path) -> type[BaseHTTPRequestHandler]:
    class Check(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            account = account_for(self.headers.get("Host", ""), root)
            allowed = account is None or checked.accepts(self.headers.get("Authorization", ""), *account)
            self.send_response(200 if allowed else 401)
            if not allowed:
                self.send_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            body = b"" if allowed else b"401 Unauthorized\n"
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Check


class SocketServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        pass  # systemd bound it

    def server_activate(self) -> None:
        pass


def main() -> int:
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        print("authcheck: run by podku-auth.socket (no socket from systemd)", file=sys.stderr)
        return 1
    server = SocketServer(("", 0), handler(Checked(), routes.conf_dir()), bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=SYSTEMD_FIRST_FD)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
