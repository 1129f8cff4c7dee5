"""Tests for benchmarks/load.py against a real in-process HTTP server.

No assertions on latencies or throughput: the machine is shared and noisy.
Only counts, contents and generous upper bounds on wall time are checked.
"""

from __future__ import annotations

import http.client
import http.server
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOAD_SCRIPT = REPO_ROOT / "benchmarks" / "load.py"
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import load  # noqa: E402

RUN_SECONDS = 0.8
SUMMARY_KEYS = ["requests", "ok", "non2xx", "errors", "retried", "p50_ms", "p99_ms", "max_ms", "longest_gap_s", "rps"]


class ServerState:
    """What the test server answers; tests change it while load is running."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.body = "v1"
        self.fail_every = 0  # answer 500 to every n-th request when > 0
        self.down = False  # drop connections without answering
        self.requests = 0
        self.host_headers: set[str] = set()

    def next_answer(self, host_header: str) -> tuple[int, str] | None:
        with self.lock:
            if self.down:
                return None
            self.requests += 1
            self.host_headers.add(host_header)
            if self.fail_every and self.requests % self.fail_every == 0:
                return 500, "boom"
            return 200, self.body


def make_handler(state: ServerState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answer = state.next_answer(self.headers.get("Host", ""))
            if answer is None:
                self.close_connection = True
                return
            status, body = answer
            payload = (body + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class LoadTestServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class RunningServer:
    def __init__(self) -> None:
        self.state = ServerState()
        self.httpd = LoadTestServer(("127.0.0.1", 0), make_handler(self.state))
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.stopped = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.state.down = True  # keep-alive handler threads outlive shutdown()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = RunningServer()
    try:
        yield running
    finally:
        running.stop()


def run_in_background(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        started = time.monotonic()
        outcome["records"] = fn(*args, **kwargs)
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def make_record(client, seq, start, end, status=200, body="v1", error=None) -> dict:
    return {"client": client, "seq": seq, "start": start, "end": end, "status": status, "body": body, "error": error}


# ---------------------------------------------------------------- analysis


def test_summarize_counts_and_gap_on_synthetic_records():
    records = [
        make_record(0, 0, 0.0, 0.1),
        make_record(1, 0, 0.0, 0.2, status=503, body="down"),
        make_record(0, 1, 0.1, 0.3, status=None, body=None, error="ConnectionRefusedError: refused"),
        make_record(1, 1, 0.2, 1.1),
        make_record(0, 2, 0.3, 1.2),
    ]
    summary = load.summarize(records)
    assert list(summary) == SUMMARY_KEYS
    assert (summary["requests"], summary["ok"], summary["non2xx"], summary["errors"]) == (5, 3, 1, 1)
    assert summary["longest_gap_s"] == pytest.approx(1.0)  # success at 0.1, next at 1.1
    assert summary["max_ms"] == pytest.approx(900.0)
    assert summary["rps"] == pytest.approx(5 / 1.2, abs=0.1)
    assert [r["seq"] for r in load.failures(records)] == [0, 1]


def test_longest_gap_counts_from_run_start_and_with_no_success():
    late_first_success = [make_record(0, 0, 0.0, 0.1, status=500), make_record(0, 1, 0.1, 2.0)]
    assert load.summarize(late_first_success)["longest_gap_s"] == pytest.approx(2.0)
    only_errors = [make_record(0, 0, 1.0, 1.5, status=None, error="TimeoutError: timed out")]
    assert load.summarize(only_errors)["longest_gap_s"] == pytest.approx(0.5)
    assert load.summarize([])["requests"] == 0


def test_body_switches_collapses_consecutive_duplicates_per_client():
    records = [
        make_record(0, 0, 0, 1, body="v1"),
        make_record(0, 1, 1, 2, body="v1"),
        make_record(0, 2, 2, 3, body="v2"),
        make_record(0, 3, 3, 4, body="v2"),
        make_record(1, 0, 0, 1, body="v1"),
        make_record(1, 1, 1, 2, body="v2"),
        make_record(1, 2, 2, 3, status=502, body="bad gateway"),
        make_record(1, 3, 3, 4, body="v1"),
        make_record(2, 0, 0, 1, status=None, body=None, error="OSError: x"),
    ]
    assert load.body_switches(records) == {0: ["v1", "v2"], 1: ["v1", "v2", "v1"], 2: []}


# ---------------------------------------------------------------- run()


@pytest.mark.parametrize("keepalive", ["on", "off", "mix"])
def test_run_against_healthy_server_only_succeeds(server, keepalive, tmp_path):
    ready = tmp_path / "ready.json"
    records = load.run(server.url, "app.podku.localhost", 4, keepalive, RUN_SECONDS, ready_file=str(ready))

    summary = load.summarize(records)
    assert summary["requests"] == len(records) > 0
    assert summary["ok"] == len(records)
    assert summary["non2xx"] == summary["errors"] == 0
    assert load.failures(records) == []
    assert {r["client"] for r in records} == {0, 1, 2, 3}
    for client in range(4):
        seqs = [r["seq"] for r in records if r["client"] == client]
        assert sorted(seqs) == list(range(len(seqs)))
    assert all(r["body"] == "v1" and r["status"] == 200 for r in records)
    assert server.state.host_headers == {"app.podku.localhost"}
    assert server.state.requests == len(records)
    assert json.loads(ready.read_text())["clients"] == 4


def test_body_switch_mid_run_is_seen_by_every_client(server):
    thread, outcome = run_in_background(load.run, server.url, "app.podku.localhost", 4, "mix", 1.2)
    wait_for(lambda: server.state.requests >= 40)
    server.state.body = "v2"
    thread.join(10)

    records = outcome["records"]
    assert load.failures(records) == []
    assert load.body_switches(records) == {client: ["v1", "v2"] for client in range(4)}


def test_500_answers_are_counted_as_non2xx(server):
    server.state.fail_every = 5
    records = load.run(server.url, None, 4, "mix", RUN_SECONDS)

    summary = load.summarize(records)
    failed = load.failures(records)
    assert summary["non2xx"] > 0
    assert summary["errors"] == 0
    assert summary["non2xx"] == len(failed) == sum(1 for r in records if r["status"] == 500)
    assert summary["ok"] + summary["non2xx"] == summary["requests"] == server.state.requests
    assert all(r["body"] == "boom" and r["error"] is None for r in failed)


def test_server_shut_down_mid_run_gives_errors_and_run_still_ends(server):
    duration, timeout = 1.2, 2.0
    thread, outcome = run_in_background(load.run, server.url, None, 4, "mix", duration, timeout=timeout)
    wait_for(lambda: server.state.requests >= 40)
    server.stop()
    thread.join(duration + timeout + 10)
    assert not thread.is_alive()

    records = outcome["records"]
    summary = load.summarize(records)
    assert summary["ok"] > 0
    assert summary["errors"] > 0
    assert summary["ok"] + summary["non2xx"] + summary["errors"] == len(records)
    assert all(r["status"] is None and ": " in r["error"] for r in load.failures(records))
    assert {r["client"] for r in load.failures(records)} == {0, 1, 2, 3}
    # Bounded: the duration plus at most one request timeout and the join grace.
    assert outcome["elapsed"] < duration + timeout + load.JOIN_GRACE_S + 1


def test_stop_file_ends_the_run_early(server, tmp_path):
    stop_file = tmp_path / "stop"
    thread, outcome = run_in_background(load.run, server.url, None, 2, "on", 60, stop_file=str(stop_file))
    wait_for(lambda: server.state.requests >= 10)
    stop_file.touch()
    thread.join(20)
    assert not thread.is_alive()
    assert outcome["elapsed"] < 30
    assert load.failures(outcome["records"]) == []


def test_run_rejects_bad_configuration_before_connecting(monkeypatch):
    def refuse_to_connect(self) -> None:
        raise AssertionError("load.py opened a connection")

    monkeypatch.setattr(http.client.HTTPConnection, "connect", refuse_to_connect)
    for url in ["http://10.1.2.3/", "http://example.com/", "https://127.0.0.1/", "http://127.0.0.1.nip.io/"]:
        with pytest.raises(ValueError):
            load.run(url, None, 1, "on", 1)
    with pytest.raises(ValueError):
        load.run("http://127.0.0.1:9/", None, 1, "on", 901)
    with pytest.raises(ValueError):
        load.run("http://127.0.0.1:9/", None, 65, "on", 1)
    assert load.main(["--url", "http://10.1.2.3/", "--out", "/nonexistent/never-written.json"]) == 2
    for host in ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"]:
        assert load.is_loopback_host(host)


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_sends_the_host_header_as_sni_and_verifies_the_certificate(server, tmp_path):
    cert, key = self_signed(tmp_path, "app.podku.localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    url = f"https://127.0.0.1:{server.port}/"
    records = load.run(url, "app.podku.localhost", 2, "mix", RUN_SECONDS, cacert=str(cert))
    assert records and load.failures(records) == []
    wrong_name = load.run(url, "other.podku.localhost", 1, "on", RUN_SECONDS, cacert=str(cert))
    assert wrong_name and all("certificate" in (record["error"] or "") for record in wrong_name)
    with pytest.raises(ValueError, match="--cacert"):
        load.run(url, "app.podku.localhost", 1, "on", 1)


# ---------------------------------------------------------------- CLI


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LOAD_SCRIPT), *args], capture_output=True, text=True, timeout=timeout
    )


def test_cli_refuses_non_loopback_url(tmp_path):
    out = tmp_path / "out.json"
    started = time.monotonic()
    result = run_cli("--url", "http://10.1.2.3/", "--duration", "5", "--out", str(out))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "loopback" in result.stderr
    assert not out.exists()
    assert time.monotonic() - started < 5  # no load was run


def test_cli_refuses_duration_over_900(server, tmp_path):
    out = tmp_path / "out.json"
    result = run_cli("--url", server.url, "--duration", "901", "--out", str(out))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--duration" in result.stderr
    assert not out.exists()
    assert server.state.requests == 0


def test_cli_writes_json_and_prints_one_summary_line(server, tmp_path):
    out = tmp_path / "results" / "out.json"
    ready = tmp_path / "ready"
    result = run_cli(
        "--url", server.url, "--host-header", "app.podku.localhost", "--clients", "3",
        "--keepalive", "mix", "--duration", "1", "--out", str(out), "--ready-file", str(ready),
    )
    assert result.returncode == 0, result.stderr

    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    printed = dict(field.split("=", 1) for field in lines[0].split(" "))
    assert list(printed) == SUMMARY_KEYS

    results = load.load_results(str(out))
    assert set(results) == {"records", "summary"}
    assert results["summary"] == load.summarize(results["records"])
    assert int(printed["requests"]) == len(results["records"]) == server.state.requests
    assert int(printed["ok"]) == results["summary"]["ok"] == len(results["records"])
    assert int(printed["errors"]) == int(printed["non2xx"]) == 0
    assert {r["client"] for r in results["records"]} == {0, 1, 2}
    assert load.body_switches(results["records"]) == {0: ["v1"], 1: ["v1"], 2: ["v1"]}
    assert ready.exists()
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # no temp files left


def test_cli_sigterm_stops_gracefully_and_writes_results(server, tmp_path):
    out = tmp_path / "out.json"
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, str(LOAD_SCRIPT), "--url", server.url, "--clients", "2", "--duration", "60",
         "--out", str(out), "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(ready.exists, timeout=20)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout.startswith("requests=")
    records = load.load_results(str(out))["records"]
    assert records and load.failures(records) == []


@pytest.mark.parametrize("keepalive", ["on", "off"])
def test_a_post_answer_named_counts_as_served_and_no_other(server, keepalive):
    # The test server has no do_POST: http.server answers every POST 501, its body unread.
    records = load.run(server.url, None, 2, keepalive, RUN_SECONDS, post_every=2)
    posts = [r for r in records if r["method"] == "POST"]
    assert posts and {r["status"] for r in posts} == {501}
    assert load.failures(records) == posts

    records = load.run(server.url, None, 2, keepalive, RUN_SECONDS, post_every=2, post_answers=[501])
    assert any(r["method"] == "POST" for r in records) and load.failures(records) == []
    assert load.summarize(records)["non2xx"] == 0
    assert load.body_switches(records) == {0: ["v1"], 1: ["v1"]}  # a POST's answer is not a body served

    records = load.run(server.url, None, 2, keepalive, RUN_SECONDS, post_every=2, post_answers=[405])
    assert load.failures(records) == [r for r in records if r["method"] == "POST"] != []


def test_a_post_answer_must_be_an_http_status():
    for status in (0, 99, 600, -405):
        with pytest.raises(ValueError):
            load.run("http://127.0.0.1:9/", None, 1, "on", 1, post_every=2, post_answers=[status])
    assert load.main(["--url", "http://127.0.0.1:9/", "--post-answer", "1000", "--out", "/tmp/never.json"]) == 2
