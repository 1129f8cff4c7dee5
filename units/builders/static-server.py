"""podku's static file server: serves one directory on the socket systemd passes as fd 3.
No code of the app's runs; hidden files, directory listings and links out of the root are 404."""

import http.server
import os
import signal
import socket
import socketserver
import sys

ROOT = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else "/srv/www")
# A body sent with a method the site does not take is read before the answer (up to this
# much): closing with it unread made Caddy's write of it fail, and the client got a 502.
MAX_DRAINED = 64 * 1024 * 1024
CHUNK = 64 * 1024


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=ROOT, **kwargs)

    def send_head(self):
        path = os.path.realpath(self.translate_path(self.path))
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        inside = path == ROOT or path.startswith(ROOT + os.sep)
        hidden = any(part.startswith(".") for part in os.path.relpath(path, ROOT).split(os.sep))
        if not inside or hidden or not os.path.isfile(path):
            self.send_error(404)
            return None
        return super().send_head()

    def refuse_method(self):
        """405 for anything but GET and HEAD, after reading the body the client sent."""
        try:
            left = min(int(self.headers.get("Content-Length") or 0), MAX_DRAINED)
        except ValueError:
            left = 0
        while left > 0:
            chunk = self.rfile.read(min(left, CHUNK))
            if not chunk:
                break
            left -= len(chunk)
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_DELETE = refuse_method

    def list_directory(self, path):
        self.send_error(404)
        return None

    def log_message(self, format, *args):
        pass  # a log line per request would flood the journal


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def server_bind(self):
        self.server_name, self.server_port = "podku", 0


def listening_socket() -> socket.socket:
    if os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        sys.exit("podku static server: no socket from systemd (LISTEN_FDS=1) to serve on")
    return socket.socket(fileno=3)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores SIGTERM without this
    server = Server(None, Handler, bind_and_activate=False)
    server.socket.close()  # the unbound one socketserver made
    server.socket = listening_socket()
    server.serve_forever()


if __name__ == "__main__":
    main()
