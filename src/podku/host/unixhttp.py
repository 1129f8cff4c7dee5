"""HTTP over a unix socket: for health checks on a release's socket and Caddy's admin API."""

import http.client
import math
import socket
import time

MAX_BODY_BYTES = 64 * 1024  # more of a response body is never read


class DeadlineSocket(socket.socket):
    """A socket whose every blocking call waits at most `timeout` and never past `deadline`
    (time.monotonic()): a peer that sends one byte just before each timeout cannot stretch
    the whole exchange beyond the deadline."""

    def __init__(self, timeout: float, deadline: float):
        super().__init__(socket.AF_UNIX, socket.SOCK_STREAM)
        self.per_call, self.deadline = timeout, deadline

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        self.settimeout(min(self.per_call, remaining))

    def connect(self, address) -> None:
        self._arm()
        super().connect(address)

    def sendall(self, data, flags: int = 0) -> None:
        self._arm()
        super().sendall(data, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(size, flags)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float, deadline: float = math.inf):
        super().__init__("localhost", timeout=timeout)
        self.socket_path, self.per_call, self.deadline = socket_path, timeout, deadline

    def connect(self) -> None:
        sock = DeadlineSocket(self.per_call, self.deadline)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def request(socket_path: str, method: str, path: str, *, host: str = "localhost",
            body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10.0, deadline: float = math.inf) -> tuple[int, bytes]:
    """One request on a new connection; returns (status, body), the body cut at MAX_BODY_BYTES.
    Each wait lasts at most `timeout`; past `deadline` (time.monotonic()) it raises TimeoutError."""
    connection = UnixHTTPConnection(socket_path, timeout, deadline)
    try:
        connection.request(method, path, body=body,
                           headers={"Host": host, "Connection": "close", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read(MAX_BODY_BYTES)
    finally:
        connection.close()
