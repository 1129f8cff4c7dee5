"""The app host tests deploy: standard library only, its behaviour set by environment.

MESSAGE       the body it answers (with the release number)
START_DELAY   seconds to wait before serving (a slow start)
EXIT_AT_START exit at once with this code (a broken release)
STATUS        the HTTP status it answers (500: fails its health check)
GET /allocate/N  holds N more MiB, touched (to meet its memory limit); says so on stdout first
TRICKLE       GET /trickle then answers one byte every TRICKLE seconds, for ever (a health
              check no per-read timeout ends); without it, /trickle answers like any path
LISTEN_ALSO   also serve on 0.0.0.0:LISTEN_ALSO in its own network namespace (a target for
              other apps' containers, which must not reach it)
GET /connect/HOST/PORT      whether this container opens a TCP connection there (egress tests)
GET /fetch/HOST/PORT/PATH   GET http://HOST:PORT/PATH from this container, its body
GET /log/TEXT  prints TEXT on stdout (a line in the app's journal)
POST /length   answers how many body bytes it read (Content-Length or chunked)
It serves on fd 3 when systemd passes a socket (LISTEN_FDS=1), else it binds $PORT."""

import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HELD: list[bytes] = []
STOPPING = threading.Event()
# After SIGTERM: how long requests already on their way are still answered (each with
# Connection: close) before the process exits: an app that drains, as the contract asks.
DRAIN_SECONDS = 1.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_GET(self) -> None:
        if self.path == "/trickle" and os.environ.get("TRICKLE"):
            return self.trickle(float(os.environ["TRICKLE"]))
        body = f"{os.environ.get('MESSAGE', 'hello')} r{os.environ.get('PODKU_RELEASE', '?')}".encode()
        if self.path.startswith("/allocate/"):
            print(f"allocating {self.path.rsplit('/', 1)[1]} MiB", flush=True)  # each delivery: one journal line
            HELD.append(b"x" * (int(self.path.rsplit("/", 1)[1]) << 20))
        if self.path == "/config":
            body = os.environ.get("GREETING", "-").encode()
        if self.path.startswith("/log/"):
            print(self.path.removeprefix("/log/"), flush=True)
        if self.path.startswith(("/connect/", "/fetch/")):
            body = probe(self.path).encode()
        self.send_response(int(os.environ.get("STATUS", "200")))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if STOPPING.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def trickle(self, interval: float) -> None:
        self.close_connection = True
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000000
        for byte in answer:
            time.sleep(interval)
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return  # the client gave up

    def do_POST(self) -> None:
        """Reads the body (a keep-alive server must), then answers like GET."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            length = self.read_chunked()
        else:
            length = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if length is None:  # cut off mid-body: nothing to answer on
            self.close_connection = True
            return
        if self.path.partition("?")[0] == "/length":
            body = str(length).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.do_GET()

    def read_chunked(self) -> int | None:
        """The length of a chunked body, read to its end; None when it ends early."""
        length = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while (trailer := self.rfile.readline(1024)) not in (b"\r\n", b"\n"):
                    if not trailer:
                        return None
                return length
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(1024) not in (b"\r\n", b"\n"):
                return None
            length += size

    def log_message(self, format: str, *args) -> None:
        pass


def probe(path: str) -> str:
    """What this container reaches: /connect/HOST/PORT or /fetch/HOST/PORT/PATH."""
    kind, host, port, *rest = path.split("/")[1:] + ["", ""]
    try:
        if kind == "fetch":
            url = f"http://{host}:{int(port)}/{'/'.join(rest).strip('/')}"
            with urllib.request.urlopen(url, timeout=5) as answer:
                return "fetched " + answer.read().decode(errors="replace").strip()
        socket.create_connection((host, int(port)), timeout=3).close()
        return "reached"
    except Exception as error:  # the test reads which
        return f"refused {type(error).__name__}"


def main() -> None:
    if os.environ.get("EXIT_AT_START"):
        print("testapp: exiting at start as asked", flush=True)
        sys.exit(int(os.environ["EXIT_AT_START"]))
    time.sleep(float(os.environ.get("START_DELAY", "0")))
    server = ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
    if os.environ.get("LISTEN_FDS") == "1":
        server.socket = socket.socket(fileno=3)
    else:
        server.socket = socket.create_server(("127.0.0.1", int(os.environ["PORT"])), backlog=1024)
    def stop(*_ignored):
        STOPPING.set()
        threading.Thread(target=server.shutdown).start()

    if os.environ.get("LISTEN_ALSO"):
        other = ThreadingHTTPServer(("0.0.0.0", int(os.environ["LISTEN_ALSO"])), Handler)
        threading.Thread(target=other.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    print(f"testapp: serving {os.environ.get('MESSAGE')}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # no new connections; the open ones drain
    time.sleep(DRAIN_SECONDS)


if __name__ == "__main__":
    main()
