import os

import pytest

from podku import apps, domains, names
from podku.errors import UsageError
from podku.host import settings
from podku.proxy import routes


@pytest.mark.parametrize("text, name", [
    ("Example.COM", "example.com"),
    ("www.example.com.", "www.example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("ÄPFEL.de", "xn--pfel-koa.de"),
    ("a-b.c-d.example", "a-b.c-d.example"),
    ("10.0.0.1", "10.0.0.1"),
    ("web.podku.localhost", "web.podku.localhost"),
])
def test_names_are_normalised(text, name):
    assert domains.parse(text) == name


@pytest.mark.parametrize("text, reason", [
    ("*.example.com", "wildcards are not supported"),
    ("a.*.example.com", "wildcards are not supported"),
    ("", "empty"),
    ("localhost", "fully qualified"),
    ("-a.example.com", "label '-a'"),
    ("a_b.example.com", "label 'a_b'"),
    ("a..example.com", "label ''"),
    ("a b.example.com", "label"),
    ("x" * 64 + ".example.com", "longer than|label"),
    ("a." * 50 + "com", f"longer than {names.MAX_HOST_NAME}"),
    ("1.2.3", "last label may not be a number"),
    ("::1", "IPv6"),
    ("[::1]", "IPv6"),
    ("../etc.example", "label '"),
    ("a/b.example.com", "label"),
    ("xn--zz.example", "not a valid international name"),
])
def test_bad_names_are_refused_with_a_reason(text, reason):
    with pytest.raises(domains.InvalidDomain, match=reason) as raised:
        domains.parse(text)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, UsageError)


HOSTILE = [
    "a;b.example.com", "$(reboot).example.com", "`id`.example.com", "../etc.example.com",
    "x/../app.example.com", "app.example.com/", "/app.example.com", "x%2f..%2fapp.example.com",
    "--help", "--config=x.example.com", "-app.example.com", "app-.example.com",
    "app.example.com\n", "app\n.example.com", "\napp.example.com", " app.example.com",
    "app.example.com ", "app\x00.example.com", "app\x1b[31m.example.com", "app\x7f.example.com",
    "app.example.com\r\nX-Injected: 1", "a..example.com", ".example.com", "example.com..",
    "x" * 64 + ".example.com", ("a" * 60 + ".") * 4 + "com", "a." * 127 + "com",
    "app\u202e.example.com", "\u2603.example.com", "app_1.example.com",
    "app.example.com:80", "[::1]", "app.example.com?x=1", "app.example.com#x", "app@example.com",
    "app.example.com\\x", "xn--zz.example.com", "xn--ab-m1t.com",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_are_refused_in_one_line(text):
    with pytest.raises(domains.InvalidDomain) as raised:
        domains.parse(text)
    message = str(raised.value)
    assert message.startswith("invalid domain ") and message.isprintable(), message


@pytest.mark.parametrize("text, name", [
    ("faß.de", "xn--fa-hia.de"),                 # IDNA 2003 made it fass.de: someone else's name
    ("FASS.de", "fass.de"),
    ("xn--fa-hia.de", "xn--fa-hia.de"),
    ("XN--FA-HIA.DE", "xn--fa-hia.de"),
    ("ｅｘａｍｐｌｅ.com", "example.com"),         # UTS #46 maps full-width letters, as browsers do
    ("bücher。example", "xn--bcher-kva.example"),
    ("app\u200b.example.com", "app.example.com"),  # UTS #46 drops a zero-width space, as browsers do
    ("βόλος.com", "xn--nxasmm1c.com"),
    ("ab--cd.example.com", "ab--cd.example.com"),  # plain LDH: DNS allows it, IDNA rules do not apply
])
def test_international_names_follow_uts46_and_idna2008(text, name):
    assert domains.parse(text) == name


@pytest.mark.parametrize("text", ["a\u200db.com", "a\u200cb.com", "a\u0627.com", "\u0301a.com", "xn--a.com",
                                  "xn--ss-.de", "-bücher.example"])
def test_names_idna_2008_refuses_get_one_line(text):
    with pytest.raises(domains.InvalidDomain) as raised:
        domains.parse(text)
    assert "\n" not in str(raised.value)


def test_parse_all_checks_every_name_and_drops_duplicates():
    assert domains.parse_all(["A.example.com", "a.example.com", "b.example.com"]) == ["a.example.com", "b.example.com"]
    with pytest.raises(domains.InvalidDomain):
        domains.parse_all(["ok.example.com", "*.bad.example.com"])


def make_app(name: str) -> None:
    apps.save(apps.App(name=name))
    domains.app_created(name)


def test_a_new_app_answers_to_its_default_name_through_one_link(home):
    make_app("web")
    link = routes.hosts_dir() / "web.podku.localhost"
    assert os.readlink(link) == "../sock/web.sock"
    assert domains.names_of("web") == ["web.podku.localhost"]
    assert domains.linked() == {"web.podku.localhost": "web"}


def test_change_links_and_unlinks_names(home):
    make_app("web")
    added, removed = domains.change("web", domains.Domains(default=False, custom=["www.example.com"]))
    assert (added, removed) == (["www.example.com"], ["web.podku.localhost"])
    assert domains.linked() == {"www.example.com": "web"}


def test_a_name_another_app_holds_is_refused_and_nothing_changes(home):
    make_app("one")
    make_app("two")
    domains.change("one", domains.Domains(custom=["shop.example.com"]))
    before = domains.linked()
    for taken in ("shop.example.com", "one.podku.localhost"):
        with pytest.raises(domains.DomainTaken, match=f"{taken} is already used by app one"):
            domains.change("two", domains.Domains(custom=["new.example.com", taken]))
    assert domains.linked() == before
    assert domains.load("two") == domains.Domains()


def test_an_app_whose_default_name_is_taken_gets_none(home):
    make_app("one")
    domains.change("one", domains.Domains(custom=["two.podku.localhost"]))
    make_app("two")
    assert domains.names_of("two") == []
    assert domains.linked()["two.podku.localhost"] == "one"


def test_destroying_an_app_removes_its_links_only(home):
    make_app("one")
    make_app("two")
    domains.change("one", domains.Domains(custom=["a.example.com"]))
    domains.app_destroyed("one")
    assert domains.linked() == {"two.podku.localhost": "two"}


def test_reconcile_follows_the_global_domain(home):
    make_app("web")
    settings.save(settings.Settings(domain="apps.example.com"))
    (routes.hosts_dir() / "stale.example.com").symlink_to("../sock/gone.sock")
    domains.relink_all()
    assert domains.linked() == {"web.apps.example.com": "web"}


def test_report_dns_says_where_a_name_points(capsys):
    domains.report_dns("localhost")
    assert "(this host)" in capsys.readouterr().out
    domains.report_dns("name.invalid")
    assert "does not resolve" in capsys.readouterr().err


def test_local_addresses():
    assert domains.is_local_address("127.0.0.1")
    assert not domains.is_local_address("192.0.2.1")


# --- the commands, in-process ----------------------------------------------------------------

def podku(capsys, *args: str) -> tuple[int, str, str]:
    from podku.cli import main as cli
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_domains_commands_round_trip(home, capsys, monkeypatch):
    monkeypatch.setattr(domains, "report_dns", lambda name: None)
    settings.save(settings.Settings(tls="internal"))
    make_app("web")
    code, out, _ = podku(capsys, "domains:add", "web", "WWW.Example.com", "web.test")
    assert code == 0 and "Added www.example.com to web" in out
    assert podku(capsys, "urls", "web")[1].split() == [
        "http://web.podku.localhost/", "http://www.example.com/", "http://web.test/"]
    assert "web.podku.localhost www.example.com web.test" in podku(capsys, "domains:report", "web")[1]
    assert podku(capsys, "domains:remove", "web", "web.podku.localhost")[0] == 0
    assert domains.linked() == {"www.example.com": "web", "web.test": "web"}
    assert podku(capsys, "domains:set", "web", "only.example.com")[0] == 0
    assert domains.linked() == {"only.example.com": "web"}
    assert podku(capsys, "domains:clear", "web")[0] == 0
    assert domains.linked() == {"web.podku.localhost": "web"}
    assert "Domains global tls:" in podku(capsys, "domains:report", "--global")[1]


def test_domains_commands_refuse_in_one_line_and_change_nothing(home, capsys):
    make_app("web")
    make_app("api")
    before = domains.linked()
    for args, message in [
        (("domains:add", "web", "ok.example.com", "*.example.com"), "wildcards are not supported"),
        (("domains:add", "web", "api.podku.localhost"), "already used by app api"),
        (("domains:remove", "web", "nope.example.com"), "is not a domain of web"),
        (("domains:add", "nope", "x.example.com"), "app nope does not exist"),
    ]:
        code, out, err = podku(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert domains.linked() == before


def test_domains_add_routes_the_idna_2008_name(home, capsys, monkeypatch):
    monkeypatch.setattr(domains, "report_dns", lambda name: None)
    make_app("web")
    code, out, _ = podku(capsys, "domains:add", "web", "faß.de")
    assert code == 0 and "Added xn--fa-hia.de to web" in out
    assert domains.linked()["xn--fa-hia.de"] == "web"
    assert "fass.de" not in domains.linked()


@pytest.mark.parametrize("text", ["a\u200db.com", "x/../web.podku.localhost", "web.podku.localhost/",
                                  "bad\x1b[2J.example.com", "a" * 101 + ".com"])
def test_domains_add_refuses_a_non_name_in_one_line_and_changes_nothing(home, capsys, text):
    make_app("web")
    before = domains.linked()
    code, out, err = podku(capsys, "domains:add", "web", text)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "\x1b" not in err, err
    assert "Traceback" not in err
    assert domains.linked() == before and domains.load("web") == domains.Domains()


def test_setup_tls_stores_the_mode_and_refuses_nonsense(home, capsys):
    assert podku(capsys, "setup:tls", "--tls", "auto", "--acme-ca", "https://ca.test/dir")[0] == 0
    assert settings.load().acme_ca == "https://ca.test/dir"
    code, _, err = podku(capsys, "setup:tls", "--tls", "nonsense")
    assert code == 2 and "invalid TLS mode" in err
    assert settings.load().tls == "auto"


def test_an_app_whose_default_name_would_be_too_long_gets_none(home, capsys):
    settings.save(settings.Settings(domain="d" * 60 + ".example.com"))
    make_app("a" * 30)
    assert domains.names_of("a" * 30) == [] and domains.linked() == {}
    assert "cannot be routed (longer than 100 characters)" in capsys.readouterr().err
