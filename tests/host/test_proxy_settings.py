"""Per-app proxy settings through Caddy on an installed host (issue 20): maintenance, basic
auth, redirects, body limit, HTTPS-only, HSTS and access logs, each a file change Caddy reads
per request: not one config load, not one failed request on another app under load."""

import shlex
import threading
import time

from builderapps import SourceRepo, static_site
from test_domains import CADDY_ROOT, caddy_state

import testhost


def curl(host, name: str, *args: str, path: str = "/") -> tuple[int, dict[str, str], str]:
    """(status, headers lower-cased, body) of one request through Caddy's HTTP port."""
    result = host.in_netns(["curl", "-sS", "--max-time", "30", "-D", "-", "-H", f"Host: {name}", *args,
                            f"http://127.0.0.1{path}"])
    head, _, body = result.stdout.partition("\n\n")  # text mode: curl's CRLFs are newlines
    lines = head.split("\n")
    assert lines and lines[0].startswith("HTTP/"), (result.stdout[-300:], result.stderr)
    headers = {key.strip().lower(): value.strip() for key, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def status(host, name: str, *args: str, path: str = "/") -> int:
    return curl(host, name, *args, path=path)[0]


def deploy_with_page(app_repo, message: str) -> None:
    (app_repo.path / "maintenance.html").write_text("<h1>Back soon: our own page</h1>\n")
    app_repo.deploy(message)


def test_maintenance_answers_503_while_the_app_is_stopped_and_redeployed(host, app_repo):
    app = app_repo.app
    name = f"{app}.podku.localhost"
    deploy_with_page(app_repo, "one")
    before = caddy_state(host)
    assert host.http_get(name) == (200, "one r1")
    host.ssh("maintenance:enable", app)
    code, headers, body = curl(host, name)
    assert (code, headers.get("retry-after"), body) == (503, "120", "<h1>Back soon: our own page</h1>\n")
    assert status(host, name, "--data-binary", "x=1") == 503
    host.ssh("ps:stop", app)
    assert status(host, name) == 503
    seen: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.add(status(host, name, path="/during"))
            time.sleep(0.05)
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        app_repo.deploy("two")
    finally:
        done.set()
        poller.join()
    assert seen == {503}
    host.ssh("maintenance:disable", app)
    assert host.http_get(name) == (200, "two r2")
    assert caddy_state(host) == before


def test_http_auth_asks_for_the_password_and_keeps_only_its_hash(host, app_repo):
    app = app_repo.app
    name = f"{app}.podku.localhost"
    app_repo.deploy("secret")
    before = caddy_state(host)
    host.ssh("http-auth:enable", app, "alice", input="s3cret-pass\n")
    code, headers, _ = curl(host, name)
    assert code == 401 and headers["www-authenticate"].startswith("Basic ")
    assert status(host, name, "-u", "alice:wrong") == 401
    assert status(host, name, "-u", "bob:s3cret-pass") == 401
    assert curl(host, name, "-u", "alice:s3cret-pass")[::2] == (200, "secret r1")
    assert curl(host, name, "-u", "alice:s3cret-pass", "--data-binary", "b" * 100_000)[0] == 200
    assert status(host, name, path="/.well-known/acme-challenge/token") != 401
    report = host.ssh("http-auth:report", app).stdout
    assert "alice" in report and "true" in report
    stored = host.as_deploy_user(f"cat ~/.local/state/podku/apps/{app}/proxy.json "
                                 f"~/.local/state/podku/sites/{app}/auth").stdout
    assert "s3cret-pass" not in stored and "$2b$" in stored
    host.ssh("http-auth:disable", app)
    assert host.http_get(name) == (200, "secret r1")
    assert caddy_state(host) == before


def test_redirect_body_limit_hsts_and_https_only(host, app_repo):
    app = app_repo.app
    apex, www = f"{app}.podku.localhost", f"www.{app}.test"
    app_repo.deploy("settings")
    host.ssh("domains:add", app, www)
    before = caddy_state(host)
    host.ssh("redirect:set", app, www, apex, "308")
    code, headers, _ = curl(host, www, path="/a/b?c=1&d=two")
    assert (code, headers["location"]) == (308, f"http://{apex}/a/b?c=1&d=two")
    assert f"{www} {apex} 308" in host.ssh("redirect:report", app).stdout
    host.ssh("redirect:unset", app, www)
    assert host.http_get(www) == (200, "settings r1")

    host.ssh("proxy:set", app, "client-max-body-size", "1k")
    assert status(host, apex, "--data-binary", "x" * 2048) == 413
    assert status(host, apex, "--data-binary", "x" * 100) == 200
    host.ssh("proxy:unset", app, "client-max-body-size")
    assert status(host, apex, "--data-binary", "x" * 2048) == 200

    host.ssh("proxy:set", app, "hsts", "300")
    https = host.in_netns(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", str(host.root / CADDY_ROOT),
                           "--resolve", f"{apex}:443:127.0.0.1", f"https://{apex}/"]).stdout.lower()
    assert "strict-transport-security: max-age=300" in https, https
    host.ssh("proxy:set", app, "https-only", "on")
    code, headers, _ = curl(host, apex, path="/p?q=1")
    assert (code, headers["location"]) == (308, f"https://{apex}/p?q=1")
    report = host.ssh("proxy:report", app).stdout
    assert "Https only:" in report and "300" in report
    host.ssh("proxy:set", app, "https-only", "off")
    host.ssh("proxy:set", app, "hsts", "0")
    assert curl(host, apex)[0] == 200 and "strict-transport-security" not in curl(host, apex)[1]
    assert caddy_state(host) == before


def post_without_length(host, name: str, size: int, *args: str,
                        url: str = "http://127.0.0.1/length") -> tuple[int, str]:
    """(status, body) of a POST of `size` bytes with no Content-Length (curl -T -: chunked over
    HTTP/1.1, none over HTTP/2); /length answers how many bytes the app read."""
    result = host.in_netns(["curl", "-sS", "--max-time", "30", "-X", "POST", "-T", "-", "-H", "Expect:",
                            "-H", f"Host: {name}", "-o", "-", "-w", "\n%{http_code}", *args, url], input="x" * size)
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


def test_a_body_without_content_length_over_the_limit_is_refused_too(host, app_repo):
    app = app_repo.app
    name = f"{app}.podku.localhost"
    app_repo.deploy("chunks")
    before = caddy_state(host)
    host.ssh("proxy:set", app, "client-max-body-size", "1k")
    assert post_without_length(host, name, 1024) == (200, "1024")  # through unchanged
    assert post_without_length(host, name, 1025)[0] == 413
    assert post_without_length(host, name, 4096)[0] == 413
    http2 = ("--http2", "--cacert", str(host.root / CADDY_ROOT), "--resolve", f"{name}:443:127.0.0.1")
    assert post_without_length(host, name, 1024, *http2, url=f"https://{name}/length") == (200, "1024")
    # Caddy answers 413 and resets the stream (RFC 9113 8.1 allows it): curl 7.88, still sending,
    # sometimes drops the answer and says "empty reply" (0). Caddy's access log says what it sent.
    marker = f"/length?h2={time.monotonic_ns()}"
    assert post_without_length(host, name, 1025, *http2, url=f"https://{name}{marker}")[0] in (0, 413)
    deadline = time.monotonic() + 2
    while f" POST {name} {marker} 413 " not in host.ssh("logs:access", app, "-n", "3").stdout:
        assert time.monotonic() < deadline, host.ssh("logs:access", app, "-n", "3").stdout
        time.sleep(0.1)
    host.ssh("proxy:set", app, "client-max-body-size", "2k")
    assert post_without_length(host, name, 2048) == (200, "2048")
    assert post_without_length(host, name, 2049)[0] == 413
    host.ssh("proxy:set", app, "client-max-body-size", "3k")  # not a cap of its own: capped at 4k
    assert post_without_length(host, name, 4096) == (200, "4096")
    assert post_without_length(host, name, 4097)[0] == 413
    host.ssh("proxy:unset", app, "client-max-body-size")
    assert post_without_length(host, name, 100_000) == (200, "100000")
    assert caddy_state(host) == before


def test_read_timeout_answers_504_when_the_headers_are_late(host, app_repo):
    app = app_repo.app
    name = f"{app}.podku.localhost"
    app_repo.deploy("slow", env={"TRICKLE": "1"})  # /trickle: its status line one byte a second
    host.ssh("proxy:set", app, "read-timeout", "10s")
    started = time.monotonic()
    assert status(host, name, path="/trickle") == 504
    assert 9 < time.monotonic() - started < 20
    assert host.http_get(name) == (200, "slow r1")
    assert "Read timeout:" in host.ssh("proxy:report", app).stdout
    host.ssh("proxy:unset", app, "read-timeout")
    assert "read-timeout" not in host.as_deploy_user(f"ls ~/.local/state/podku/sites/{app}/").stdout


def test_an_access_log_line_within_a_second(host, app_repo):
    app = app_repo.app
    app_repo.deploy("logged")
    marker = f"/seen-{time.monotonic_ns()}?x=1"
    assert status(host, f"{app}.podku.localhost", path=marker) == 200
    deadline = time.monotonic() + 1
    while True:
        lines = host.ssh("logs:access", app, "-n", "5").stdout
        if marker in lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    line = next(line for line in lines.splitlines() if marker in line)
    assert f" GET {app}.podku.localhost {marker} 200 " in line and "127.0.0.1" in line and "ms" in line
    assert marker in host.ssh("logs", app, "-p", "proxy", "-n", "5").stdout


def test_bad_input_gets_one_line_and_changes_nothing(host, app_repo):
    app = app_repo.app
    app_repo.deploy("bad")
    before = (host.ssh("proxy:report", app).stdout, host.ssh("redirect:report", app).stdout, caddy_state(host))
    refused = [
        (("http-auth:enable", app, "a:b"), "pw\n", "invalid user name"),
        (("http-auth:enable", app, shlex.quote("a\x01b")), "pw\n", "invalid user name"),  # quoted: ssh joins words
        (("http-auth:enable", app, "alice"), "\n", "empty password"),
        (("redirect:set", app, f"{app}.podku.localhost", f"{app}.podku.localhost"), None, "would loop"),
        (("redirect:set", app, f"other-{app}.test", f"{app}.podku.localhost"), None, "is not a domain of"),
        (("redirect:set", app, "../etc", f"{app}.podku.localhost"), None, "invalid domain"),
        (("redirect:set", app, f"{app}.podku.localhost", "x.test", "303"), None, "invalid redirect code"),
        (("proxy:set", app, "client-max-body-size", "50x"), None, "invalid size"),
        (("proxy:set", app, "client-max-body-size", "$(reboot)"), None, "invalid size"),
        (("proxy:set", app, "client-max-body-size", "65g"), None, "invalid size"),
        (("proxy:set", app, "hsts", "1y"), None, "invalid max-age"),
        (("proxy:set", app, "https-only", "yes"), None, "use on or off"),
        (("proxy:set", app, "read-timeout", "sixty"), None, "invalid read-timeout"),
        (("proxy:set", app, "read-timeout", "5s"), None, "invalid read-timeout"),
        (("proxy:set", app, "keepalive", "60s"), None, "unknown setting"),
        (("maintenance:enable", "no;such"), None, "invalid app name"),
    ]
    for words, stdin, reason in refused:
        result = host.ssh(*words, check=False, input=stdin)
        assert result.returncode != 0, (words, result)
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, (words, result.stderr)
    after = (host.ssh("proxy:report", app).stdout, host.ssh("redirect:report", app).stdout, caddy_state(host))
    assert after == before


def test_every_setting_toggled_on_b_fails_nothing_on_a_under_load(host, app_repo, load_run, tmp_path):
    a = app_repo.app
    app_repo.deploy("a")
    b = f"{a}b"
    other = testhost.AppRepo(tmp_path / b, host, b)
    other.deploy("b")
    host.ssh("domains:add", b, f"www.{b}.test")
    before = caddy_state(host)
    with load_run(a) as run:
        for words, stdin in [
                (("maintenance:enable", b), None), (("maintenance:disable", b), None),
                (("http-auth:enable", b, "u"), "p\n"), (("http-auth:disable", b), None),
                (("redirect:set", b, f"www.{b}.test", f"{b}.podku.localhost"), None),
                (("redirect:unset", b, f"www.{b}.test"), None),
                (("proxy:set", b, "client-max-body-size", "10m"), None),
                (("proxy:unset", b, "client-max-body-size"), None),
                (("proxy:set", b, "https-only", "on"), None), (("proxy:set", b, "https-only", "off"), None),
                (("proxy:set", b, "hsts", "600"), None), (("proxy:set", b, "hsts", "0"), None),
                (("proxy:set", b, "read-timeout", "30s"), None), (("proxy:unset", b, "read-timeout"), None),
                (("proxy:set", a, "client-max-body-size", "50m"), None), (("proxy:set", a, "hsts", "60"), None),
                (("logs:access", a, "-n", "3"), None),
                (("proxy:unset", a, "client-max-body-size"), None), (("proxy:set", a, "hsts", "0"), None)]:
            host.ssh(*words, input=stdin)
        time.sleep(1)
    run.assert_no_failures()
    print(f"proxy settings under load: {run.summary}")
    assert caddy_state(host) == before


def test_a_post_to_a_static_site_is_answered_not_502(host, tmp_path, app_name):
    """podku's static server once closed with the body unread: Caddy's write failed, a 502."""
    repo = SourceRepo(tmp_path / app_name, host, app_name)
    repo.write(static_site("v1"))
    repo.push()
    name = f"{app_name}.podku.localhost"
    for _ in range(6):
        answer = host.in_netns(["curl", "-sS", "-H", "Expect:", "-o", "/dev/null", "-w", "%{http_code}",
                                "-H", f"Host: {name}", "--data-binary", "@-", "http://127.0.0.1/"],
                               input="x" * (2 << 20))
        assert answer.stdout == "405", answer.stderr
    assert host.http_get(name) == (200, "static v1")
