"""Per-app proxy settings (proxyconf.py, authcheck.py, accesslog.py): the values each command
takes, the files Caddy reads, the checker's answers and the access log's lines."""

import base64
import dataclasses
import io
import json
import os

import pytest

import fakes
from podku import apps, domains, proxyconf
from podku.proxy import accesslog, authcheck, routes


@pytest.fixture
def web(home):
    apps.save(apps.App(name="web"))
    domains.app_created("web")
    return "web"


def site_files(app: str) -> set[str]:
    if not routes.site_dir(app).is_symlink():
        return set()
    root = routes.site_dir(app).resolve()
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("text", ["", "a:b", "a\tb", "a\x1bb", " a", "x" * 65])
def test_bad_user_names_are_refused(text):
    with pytest.raises(proxyconf.ProxySettingError, match="invalid user name"):
        proxyconf.parse_user(text)


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n"])
def test_an_empty_password_is_refused(data):
    with pytest.raises(proxyconf.ProxySettingError, match="empty password"):
        proxyconf.parse_password(data)


def test_sizes_and_ages():
    assert proxyconf.parse_size("50m") == 50 * 1024 ** 2 and proxyconf.parse_size("1K") == 1024
    assert proxyconf.parse_size("1048576") == 1024 ** 2 and proxyconf.parse_size("64g") == 64 * 1024 ** 3
    assert proxyconf.parse_size("30m") == 30 * 1024 ** 2 and proxyconf.parse_size("1025") == 1025
    for bad in ["", "50x", "1.5m", "0", "100", "1023", "65g", "m", "-1k", "128g", "9" * 13]:
        with pytest.raises(proxyconf.ProxySettingError, match="invalid size"):
            proxyconf.parse_size(bad)
    assert proxyconf.parse_max_age("31536000") == 31536000
    for bad in ["1y", "-1", "", "99999999999"]:
        with pytest.raises(proxyconf.ProxySettingError, match="invalid max-age"):
            proxyconf.parse_max_age(bad)
    assert proxyconf.describe_size(50 * 1024 ** 2) == "50m"
    assert proxyconf.parse_read_timeout("60s") == proxyconf.parse_read_timeout("1m") == 60
    assert proxyconf.parse_read_timeout("3600") == 3600
    for bad in ["", "5s", "61s", "1d", "sixty", "-60", "60 s"]:
        with pytest.raises(proxyconf.ProxySettingError, match="invalid read-timeout"):
            proxyconf.parse_read_timeout(bad)


def test_settings_become_files_caddy_finds_through_each_name(web):
    domains.change("web", domains.Domains(custom=["www.web.test"]))
    wanted = proxyconf.ProxySettings(
        maintenance=True, auth=proxyconf.Auth("alice", proxyconf.hash_password(b"pw")),
        redirects={"www.web.test": proxyconf.Redirect("web.podku.localhost", 308)},
        body_max=1024, https_only=True, hsts=300, read_timeout=60)
    proxyconf.change("web", wanted, "<p>page</p>")
    assert site_files("web") == {"maintenance.html", "auth", "redirect/www.web.test/308/web.podku.localhost",
                                 "body-max/1024", "body-cap/1024", "https-only", "hsts/300", "read-timeout/60"}
    assert (routes.conf_dir() / "www.web.test" / "maintenance.html").read_text() == "<p>page</p>"
    assert proxyconf.load("web") == wanted
    old = routes.site_dir("web").resolve()
    proxyconf.change("web", dataclasses.replace(wanted, hsts=None))  # the page is kept
    assert (routes.site_dir("web") / "maintenance.html").read_text() == "<p>page</p>"
    assert old.exists() and "hsts/300" not in site_files("web")  # kept for lookups under way
    proxyconf.change("web", proxyconf.ProxySettings())
    kept = routes.site_directories("web")
    assert len(kept) == 2 and not any((directory / "hsts" / "300").exists() for directory in kept)


def test_a_redirect_goes_with_the_name(web):
    domains.change("web", domains.Domains(custom=["www.web.test"]))
    proxyconf.change("web", proxyconf.ProxySettings(redirects={"www.web.test": proxyconf.Redirect("a.test", 301)}))
    domains.change("web", domains.Domains())
    proxyconf.names_changed("web")
    assert proxyconf.load("web").redirects == {} and site_files("web") == set()
    assert "www.web.test" not in routes.conf_targets()


def test_redirect_checks(web):
    with pytest.raises(proxyconf.ProxySettingError, match="not a domain of web"):
        proxyconf.check_redirect("web", "other.test", "a.test")
    with pytest.raises(proxyconf.ProxySettingError, match="loop"):
        proxyconf.check_redirect("web", "web.podku.localhost", "web.podku.localhost")


def test_a_crafted_record_is_refused(web):
    path = proxyconf._file("web")
    path.write_text(json.dumps({"redirects": {"../x": {"to": "a.test", "code": 301}}}))
    with pytest.raises(proxyconf.records.RecordInvalid, match="redirects"):
        proxyconf.load("web")
    path.write_text(json.dumps({"auth": {"user": "a", "hash": "plain"}}))
    with pytest.raises(proxyconf.records.RecordInvalid, match="hash"):
        proxyconf.load("web")
    path.write_text(json.dumps({"body_max": 65 * 1024 ** 3}))
    with pytest.raises(proxyconf.records.RecordInvalid, match="body_max"):
        proxyconf.load("web")


def test_destroy_removes_the_site(web):
    proxyconf.change("web", proxyconf.ProxySettings(https_only=True))
    domains.app_destroyed("web")
    assert not routes.site_dir("web").is_symlink() and routes.conf_targets() == {}
    assert not any(routes.site_dir("web").parent.iterdir())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_checker_accepts_only_the_user_and_password(web, monkeypatch):
    proxyconf.change("web", proxyconf.ProxySettings(auth=proxyconf.Auth("alice", proxyconf.hash_password(b"pw"))))
    account = authcheck.account_for("web.podku.localhost:80", routes.conf_dir())
    assert account is not None and account[0] == "alice"
    checked = authcheck.Checked()
    assert checked.accepts(basic("alice", "pw"), *account)
    monkeypatch.setattr(authcheck, "credentials_match", lambda *_: pytest.fail("bcrypt ran twice"))
    assert checked.accepts(basic("alice", "pw"), *account)  # remembered
    monkeypatch.undo()
    for header in [basic("alice", "px"), basic("bob", "pw"), "Bearer x", "Basic !!", "", basic("alice", "")]:
        assert not checked.accepts(header, *account), header
    assert authcheck.account_for("../web.podku.localhost", routes.conf_dir()) is None
    assert authcheck.account_for("other.test", routes.conf_dir()) is None


def test_access_log_lines_of_the_apps_names(home):
    log = routes.access_log()
    log.parent.mkdir(parents=True)
    entry = {"ts": 1700000000.5, "request": {"remote_ip": "10.0.0.9", "method": "POST", "host": "web.test:80",
                                             "uri": "/a?b=1"}, "status": 413, "size": 24, "duration": 0.0015}
    other = {**entry, "request": {**entry["request"], "host": "other.test"}}
    log.write_text("\n".join(json.dumps(item) for item in (entry, other)) + "\nnot json\n")
    assert accesslog.last({"web.test"}, 10) == [
        "2023-11-14T22:13:20.500Z 10.0.0.9 POST web.test /a?b=1 413 24B 1.5ms"]
    seen: list[str] = []

    def polls():
        yield 1  # what was there before is not shown again
        with log.open("a") as more:
            more.write(json.dumps(entry) + "\n")
        yield 2
        os.truncate(log, 0)  # rolled: read from the start, whole lines only
        log.write_text(json.dumps(entry) + "\n" + json.dumps(entry)[:10])
        yield 3
    accesslog.follow({"web.test"}, seen.append, polls=polls())
    assert len(seen) == 2


def test_commands_through_the_cli(web, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", FakeStdin(b"pw\n"))
    code, _, err = fakes.cli_run(capsys, "http-auth:enable", "web", "alice")
    assert code == 0, err
    assert "alice" in fakes.cli_run(capsys, "http-auth:report", "web")[1]
    code, _, err = fakes.cli_run(capsys, "proxy:set", "web", "client-max-body-size", "2m")
    assert code == 0 and site_files("web") == {"auth", "body-max/2097152", "body-cap/2097152"}
    code, _, err = fakes.cli_run(capsys, "redirect:set", "web", "web.podku.localhost", "web.podku.localhost")
    assert code != 0 and "loop" in err and err.count("\n") == 1
    code, out, _ = fakes.cli_run(capsys, "proxy:report", "web")
    assert "2m" in out and "alice" in out and "cut at" not in out
    code, _, err = fakes.cli_run(capsys, "proxy:set", "web", "client-max-body-size", "3m")
    assert code == 0 and site_files("web") == {"auth", "body-max/3145728", "body-cap/4194304"}
    assert "3m (a body without Content-Length: cut at 4m)" in fakes.cli_run(capsys, "proxy:report", "web")[1]


class FakeStdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def test_follow_notices_that_the_reader_went_away(monkeypatch):
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stdout:
        monkeypatch.setattr("sys.stdout", stdout)
        assert not accesslog.reader_gone()
        os.close(read_end)
        assert accesslog.reader_gone()
