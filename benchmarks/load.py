#!/usr/bin/env python3
"""Bounded HTTP load generator for loopback targets.

Host tests and benchmarks use it to prove that a deploy causes no downtime:
N client threads send GET requests back to back, every request is recorded,
and the summary reports failures and the longest interval without any
successful response.

    python3 benchmarks/load.py --url http://127.0.0.1:80/ \
        --host-header app.podku.localhost --clients 8 --keepalive mix \
        --duration 120 --out /path/results.json \
        [--stop-file PATH] [--ready-file PATH] [--timeout 30] [--path /]
        [--post-every 4 --post-bytes 512 [--post-answer 405]]

With --post-every N, every Nth request of each client is a POST of --post-bytes bytes
(an app may answer it without reading the body: the proxy must still deliver its answer).
A POST answered with a --post-answer status counts as served too (a static site answers
every POST 405): any other answer, or none, is a failure, as for a GET that is not 2xx.

The URL supplies scheme, host and port; the request target is --path.
Only loopback targets (127.0.0.0/8, ::1, localhost) are accepted.

Stdlib only; runs on Python 3.11 (Debian 12's python3).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import itertools
import json
import math
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_CLIENTS = 64
MAX_DURATION_S = 900.0
KEEPALIVE_MODES = ("on", "off", "mix")
POLL_INTERVAL_S = 0.05
# Without a pause, a refused connection fails in microseconds and a client
# would record tens of thousands of identical errors per second.
ERROR_BACKOFF_S = 0.01
# Extra time granted to in-flight requests after stopping, on top of --timeout.
JOIN_GRACE_S = 2.0
BODY_CHARS = 200
MAX_POST_BYTES = 16 * 1024 * 1024
USER_AGENT = "podku-load/1"
SUMMARY_KEYS = (
    "requests",
    "ok",
    "non2xx",
    "errors",
    "retried",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "longest_gap_s",
    "rps",
)
# Errors that mean a reused keep-alive connection had already been closed by
# the server before it read our request (e.g. an idle connection dropped by a
# proxy reload).
STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)

Record = dict[str, Any]


class LoadConfigError(ValueError):
    """Invalid load configuration; the CLI reports it in one line, exit 2."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    host_header: str | None
    timeout: float
    post_every: int = 0
    post_bytes: int = 512
    post_answers: frozenset[int] = frozenset()  # POST statuses besides 2xx that count as served
    tls: ssl.SSLContext | None = None  # https://: verified against --cacert, SNI from the Host header


# --------------------------------------------------------------------------
# Configuration checks (all happen before any connection is opened)
# --------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # IPv4: 127.0.0.0/8; IPv6: ::1 only.
    return address.is_loopback


def parse_loopback_url(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of an http:// or https:// URL, refusing non-loopback hosts."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise LoadConfigError(f"invalid --url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise LoadConfigError(f"invalid --url {url!r}: only http:// and https:// are supported")
    if not host or not is_loopback_host(host):
        raise LoadConfigError(
            f"refusing non-loopback target {host!r}: only 127.0.0.0/8, ::1 and localhost are allowed"
        )
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def tls_context(scheme: str, cacert: str | None) -> ssl.SSLContext | None:
    if scheme == "http":
        if cacert:
            raise LoadConfigError("--cacert is for https:// URLs")
        return None
    if not cacert:
        raise LoadConfigError("an https:// URL needs --cacert (the CA that signed the server's certificate)")
    try:
        return ssl.create_default_context(cafile=cacert)
    except (OSError, ssl.SSLError) as exc:
        raise LoadConfigError(f"cannot load --cacert {cacert!r}: {exc}") from None


def build_target(url: str, host_header: str | None, timeout: float, path: str,
                 post_every: int = 0, post_bytes: int = 512, cacert: str | None = None,
                 post_answers: Iterable[int] = ()) -> Target:
    scheme, host, port = parse_loopback_url(url)
    if not path.startswith("/"):
        raise LoadConfigError(f"--path must start with '/', got {path!r}")
    if not timeout > 0:
        raise LoadConfigError(f"--timeout must be > 0, got {timeout}")
    if post_every < 0 or not 0 <= post_bytes <= MAX_POST_BYTES:
        raise LoadConfigError(f"--post-every must be >= 0 and --post-bytes 0..{MAX_POST_BYTES}")
    answers = frozenset(post_answers)
    if not all(100 <= status <= 599 for status in answers):
        raise LoadConfigError(f"--post-answer must be an HTTP status 100..599, got {sorted(answers)}")
    return Target(host=host, port=port, path=path, host_header=host_header or None, timeout=timeout,
                  post_every=post_every, post_bytes=post_bytes, post_answers=answers,
                  tls=tls_context(scheme, cacert))


def request_method(target: Target, seq: int) -> tuple[str, bytes | None]:
    """(method, body) of a client's request number `seq`."""
    if target.post_every and seq % target.post_every == target.post_every - 1:
        return "POST", b"x" * target.post_bytes
    return "GET", None


def validate_load_shape(clients: int, keepalive: str, duration: float) -> None:
    if not 1 <= clients <= MAX_CLIENTS:
        raise LoadConfigError(f"--clients must be between 1 and {MAX_CLIENTS}, got {clients}")
    if keepalive not in KEEPALIVE_MODES:
        raise LoadConfigError(f"--keepalive must be one of {'|'.join(KEEPALIVE_MODES)}, got {keepalive!r}")
    if not 0 < duration <= MAX_DURATION_S:
        raise LoadConfigError(f"--duration must be > 0 and <= {MAX_DURATION_S:g} seconds, got {duration:g}")


def client_uses_keepalive(client_id: int, keepalive: str) -> bool:
    if keepalive == "mix":
        return client_id % 2 == 0
    return keepalive == "on"


# --------------------------------------------------------------------------
# One request
# --------------------------------------------------------------------------


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a loopback address with the SNI and certificate name of the Host header."""

    def __init__(self, target: Target):
        super().__init__(target.host, target.port, timeout=target.timeout, context=target.tls)
        self.server_name = target.host_header or target.host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        assert self._context is not None
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


def new_connection(target: Target) -> http.client.HTTPConnection:
    if target.tls is not None:
        return NamedHTTPSConnection(target)
    return http.client.HTTPConnection(target.host, target.port, timeout=target.timeout)


def request_headers(target: Target, keep_alive: bool) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if target.host_header:
        headers["Host"] = target.host_header
    if not keep_alive:
        headers["Connection"] = "close"
    return headers


def clip_body(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").strip()[:BODY_CHARS]


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def get_over_fresh_connection(target: Target, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    connection = new_connection(target)
    try:
        connection.request(method, target.path, body=body, headers=request_headers(target, keep_alive=False))
        response = connection.getresponse()
        return response.status, clip_body(response.read())
    finally:
        connection.close()


def get_over_persistent_connection(
    connection: http.client.HTTPConnection, target: Target, method: str = "GET", body: bytes | None = None
) -> tuple[int, str, bool]:
    """GET on a keep-alive connection; returns (status, body, retried).

    If a *reused* connection turns out to have been closed by the server
    before any response byte arrived, the request is sent once more on a
    fresh connection, as browsers and HTTP libraries do for idempotent
    requests. Only the outcome of that second attempt is recorded.
    """
    headers = request_headers(target, keep_alive=True)
    reused = connection.sock is not None
    retried = False
    try:
        connection.request(method, target.path, body=body, headers=headers)
        response = connection.getresponse()
    except STALE_CONNECTION_ERRORS:
        if not reused:
            raise
        connection.close()
        retried = True
        connection.request(method, target.path, body=body, headers=headers)
        response = connection.getresponse()
    body = clip_body(response.read())
    # http.client drops the socket itself when the server asked to close it
    # (Connection: close or HTTP/1.0); the next request reconnects.
    return response.status, body, retried


def timed_request(
    client_id: int, seq: int, target: Target, connection: http.client.HTTPConnection | None
) -> Record:
    status: int | None = None
    body: str | None = None
    error: str | None = None
    retried = False
    method, payload = request_method(target, seq)
    start = time.monotonic()
    try:
        if connection is None:
            status, body = get_over_fresh_connection(target, method, payload)
        else:
            status, body, retried = get_over_persistent_connection(connection, target, method, payload)
    except Exception as exc:  # every failure becomes part of the record
        error = describe_error(exc)
        if connection is not None:
            connection.close()  # resets http.client's state; next request reconnects
    end = time.monotonic()
    return {
        "client": client_id,
        "seq": seq,
        "start": start,
        "end": end,
        "status": status,
        "body": body,
        "error": error,
        "retried": retried,
        "method": method,
        "answer_expected": method == "POST" and status in target.post_answers,
    }


# --------------------------------------------------------------------------
# Clients and the run loop
# --------------------------------------------------------------------------


def client_loop(
    client_id: int, keep_alive: bool, target: Target, stop: threading.Event, sink: list[Record]
) -> None:
    connection = new_connection(target) if keep_alive else None
    seq = 0
    try:
        while not stop.is_set():
            record = timed_request(client_id, seq, target, connection)
            sink.append(record)
            seq += 1
            if record["error"] is not None:
                stop.wait(ERROR_BACKOFF_S)
    finally:
        if connection is not None:
            connection.close()


def start_clients(
    clients: int, keepalive: str, target: Target, stop: threading.Event
) -> tuple[list[threading.Thread], list[list[Record]]]:
    sinks: list[list[Record]] = [[] for _ in range(clients)]
    threads = []
    for client_id in range(clients):
        thread = threading.Thread(
            target=client_loop,
            args=(client_id, client_uses_keepalive(client_id, keepalive), target, stop, sinks[client_id]),
            name=f"load-client-{client_id}",
            daemon=True,  # a request stuck past the join deadline must not keep the process alive
        )
        thread.start()
        threads.append(thread)
    return threads, sinks


class StopRequest:
    """Set from a signal handler. A plain flag, because taking a lock (as
    threading.Event.set does) inside a handler can deadlock the main thread."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: Any) -> None:
        self.requested = True


@contextlib.contextmanager
def stop_on_signals(stop_request: StopRequest) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    watched = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, stop_request.handle) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def every_client_answered(sinks: list[list[Record]]) -> bool:
    return all(sinks)


def write_ready_file(path: str, clients: int) -> None:
    write_atomically(path, json.dumps({"ready": True, "clients": clients}) + "\n")


def wait_for_stop(
    deadline: float, stop_file: str | None, stop_request: StopRequest, on_tick: Callable[[], None]
) -> str:
    """Block until the duration passes, a signal arrives or the stop file exists."""
    while not stop_request.requested:
        now = time.monotonic()
        if now >= deadline:
            return "duration"
        if stop_file and os.path.exists(stop_file):
            return "stop-file"
        on_tick()
        time.sleep(min(POLL_INTERVAL_S, deadline - now))
    return "signal"


def join_clients(threads: Iterable[threading.Thread], join_deadline: float) -> None:
    for thread in threads:
        thread.join(max(0.0, join_deadline - time.monotonic()))


def merge_records(sinks: list[list[Record]]) -> list[Record]:
    # list() copies a sink even if an abandoned thread were still appending to it.
    merged = [record for sink in sinks for record in list(sink)]
    merged.sort(key=lambda record: (record["start"], record["client"], record["seq"]))
    return merged


def run(
    url: str,
    host_header: str | None,
    clients: int,
    keepalive: str,
    duration: float,
    stop_file: str | None = None,
    ready_file: str | None = None,
    timeout: float = 30.0,
    path: str = "/",
    post_every: int = 0,
    post_bytes: int = 512,
    cacert: str | None = None,
    post_answers: Iterable[int] = (),
) -> list[Record]:
    """Generate load in-process and return every request record.

    Raises LoadConfigError (a ValueError) before opening any connection if
    the configuration is invalid or the target is not loopback. Takes at most
    about duration + timeout + JOIN_GRACE_S seconds.
    """
    target = build_target(url, host_header, timeout, path, post_every, post_bytes, cacert, post_answers)
    validate_load_shape(clients, keepalive, duration)

    stop_clients = threading.Event()
    stop_request = StopRequest()
    ready_written = False

    def write_ready_once() -> None:
        nonlocal ready_written
        if ready_file and not ready_written and every_client_answered(sinks):
            ready_written = True
            try:
                write_ready_file(ready_file, clients)
            except OSError as exc:
                # Losing the whole run over the ready marker would be worse.
                sys.stderr.write(f"load.py: warning: cannot write ready file: {exc}\n")

    with stop_on_signals(stop_request):
        deadline = time.monotonic() + duration
        threads, sinks = start_clients(clients, keepalive, target, stop_clients)
        try:
            wait_for_stop(deadline, stop_file, stop_request, write_ready_once)
        finally:
            # In-flight requests finish (bounded by their socket timeout).
            stop_clients.set()
            join_clients(threads, time.monotonic() + timeout + JOIN_GRACE_S)
    return merge_records(sinks)


# --------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------


def is_2xx(record: Record) -> bool:
    status = record.get("status")
    return record.get("error") is None and isinstance(status, int) and 200 <= status < 300


def is_success(record: Record) -> bool:
    """Served: a 2xx, or a POST's answer that --post-answer named."""
    return is_2xx(record) or (record.get("error") is None and bool(record.get("answer_expected")))


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def longest_success_gap(records: list[Record]) -> float:
    """Longest interval in which no request anywhere succeeded.

    Measured between successive successful request end times, from the start
    of the run (first request start) to the first success, and from the last
    success to the end of the run (last request end), so an outage at the
    very end is not hidden.
    """
    if not records:
        return 0.0
    run_start = min(record["start"] for record in records)
    run_end = max(record["end"] for record in records)
    success_ends = sorted(record["end"] for record in records if is_success(record))
    marks = [run_start, *success_ends, run_end]
    return max(later - earlier for earlier, later in itertools.pairwise(marks))


def summarize(records: list[Record]) -> dict[str, Any]:
    ok = sum(1 for record in records if is_success(record))
    errors = sum(1 for record in records if record.get("error") is not None)
    latencies_ms = sorted((record["end"] - record["start"]) * 1000.0 for record in records)
    span_s = (
        max(record["end"] for record in records) - min(record["start"] for record in records)
        if records
        else 0.0
    )
    return {
        "requests": len(records),
        "ok": ok,
        "non2xx": len(records) - ok - errors,
        "errors": errors,
        # requests resent once because a reused keep-alive connection was closed first
        "retried": sum(1 for record in records if record.get("retried")),
        "p50_ms": round(percentile(latencies_ms, 0.50), 3),
        "p99_ms": round(percentile(latencies_ms, 0.99), 3),
        "max_ms": round(latencies_ms[-1], 3) if latencies_ms else 0.0,
        "longest_gap_s": round(longest_success_gap(records), 3),
        "rps": round(len(records) / span_s, 1) if span_s > 0 else 0.0,
    }


def body_switches(records: list[Record]) -> dict[int, list[str]]:
    """Per client, the distinct bodies of its 2xx responses in order,
    consecutive duplicates collapsed. Clients with none map to []."""
    switches: dict[int, list[str]] = {}
    for record in sorted(records, key=lambda record: (record["client"], record["seq"])):
        seen = switches.setdefault(record["client"], [])
        if is_2xx(record) and (not seen or seen[-1] != record["body"]):
            seen.append(record["body"])
    return switches


def failures(records: list[Record]) -> list[Record]:
    return [record for record in records if not is_success(record)]


def format_summary_line(summary: dict[str, Any]) -> str:
    return " ".join(f"{key}={summary[key]}" for key in SUMMARY_KEYS)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(prefix=".load-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise


def write_results(path: str, records: list[Record], summary: dict[str, Any]) -> None:
    write_atomically(path, json.dumps({"records": records, "summary": summary}) + "\n")


def load_results(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


class OneLineArgumentParser(argparse.ArgumentParser):
    """Usage errors are reported in a single line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="load.py", description="Bounded HTTP load generator (loopback only).")
    parser.add_argument("--url", required=True, help="http(s)://127.0.0.1:PORT/ (loopback only)")
    parser.add_argument("--cacert", default=None, help="CA file that verifies an https:// server")
    parser.add_argument("--host-header", default=None, help="value of the Host header")
    parser.add_argument("--clients", type=int, default=8, help=f"concurrent clients, 1..{MAX_CLIENTS}")
    parser.add_argument("--keepalive", choices=KEEPALIVE_MODES, default="mix")
    parser.add_argument("--duration", type=float, default=60.0, help=f"seconds, at most {MAX_DURATION_S:g}")
    parser.add_argument("--out", required=True, help="results JSON path (written atomically)")
    parser.add_argument("--stop-file", default=None, help="stop as soon as this file exists")
    parser.add_argument("--ready-file", default=None, help="written once every client completed a request")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, seconds")
    parser.add_argument("--path", default="/", help="request path")
    parser.add_argument("--post-every", type=int, default=0, help="every Nth request is a POST (0: never)")
    parser.add_argument("--post-bytes", type=int, default=512, help="size of each POST body")
    parser.add_argument("--post-answer", type=int, action="append", default=[],
                        help="a POST answered with this status counts as served (repeatable; e.g. 405)")
    return parser


def ensure_parent_directory(path: str) -> None:
    # Fail now rather than after a long run with nowhere to write the file.
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise LoadConfigError(f"directory {directory!r} is not writable")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Everything is checked before any connection or long run starts.
        build_target(args.url, args.host_header, args.timeout, args.path, args.post_every, args.post_bytes,
                     args.cacert, args.post_answer)
        validate_load_shape(args.clients, args.keepalive, args.duration)
        ensure_parent_directory(args.out)
        if args.ready_file:
            ensure_parent_directory(args.ready_file)
    except (LoadConfigError, OSError) as exc:
        sys.stderr.write(f"load.py: error: {exc}\n")
        return 2
    records = run(
        args.url,
        args.host_header,
        args.clients,
        args.keepalive,
        args.duration,
        stop_file=args.stop_file,
        ready_file=args.ready_file,
        timeout=args.timeout,
        path=args.path,
        post_every=args.post_every,
        post_bytes=args.post_bytes,
        cacert=args.cacert,
        post_answers=args.post_answer,
    )
    summary = summarize(records)
    write_results(args.out, records, summary)
    print(format_summary_line(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
