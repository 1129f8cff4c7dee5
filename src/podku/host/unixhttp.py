"""HTTP over a unix socket: for health checks on a release's socket and Caddy's admin API."""

import http.client
import socket

MAX_BODY_BYTES = 64 * 1024  # more of a response body is never read


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def request(socket_path: str, method: str, path: str, *, host: str = "localhost",
            body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10.0) -> tuple[int, bytes]:
    """One request on a new connection; returns (status, body), the body cut at MAX_BODY_BYTES."""
    connection = UnixHTTPConnection(socket_path, timeout)
    try:
        connection.request(method, path, body=body,
                           headers={"Host": host, "Connection": "close", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read(MAX_BODY_BYTES)
    finally:
        connection.close()
