"""podku's example app: Python's standard library only.

It serves on the socket systemd hands it (fd 3, LISTEN_FDS=1) and otherwise binds $PORT,
and it drains in-flight requests on SIGTERM, so podku can swap it with zero downtime."""

import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MESSAGE = os.environ.get("MESSAGE", "Hello from podku")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections must not hold up a drain forever

    def do_GET(self) -> None:
        body = f"{MESSAGE} (release {os.environ.get('PODKU_RELEASE', '?')})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


def listening_socket() -> socket.socket:
    if os.environ.get("LISTEN_FDS") == "1":
        return socket.socket(fileno=3)
    return socket.create_server(("", int(os.environ.get("PORT", "5000"))), backlog=1024)


def main() -> None:
    server = ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
    server.socket = listening_socket()
    def stop(*_ignored):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # waits for in-flight requests


if __name__ == "__main__":
    main()
