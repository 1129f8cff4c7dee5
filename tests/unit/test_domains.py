import os

import pytest

from podku import apps, domains, settings
from podku.errors import UsageError


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
    ("a." * 50 + "com", f"longer than {domains.MAX_NAME_LENGTH}"),
    ("1.2.3", "last label may not be a number"),
    ("::1", "IPv6"),
    ("[::1]", "IPv6"),
    ("../etc.example", "label '"),
    ("a/b.example.com", "label"),
    ("xn--zz.example", "punycode"),
])
def test_bad_names_are_refused_with_a_reason(text, reason):
    with pytest.raises(domains.InvalidDomain, match=reason) as raised:
        domains.parse(text)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, UsageError)


def test_parse_all_checks_every_name_and_drops_duplicates():
    assert domains.parse_all(["A.example.com", "a.example.com", "b.example.com"]) == ["a.example.com", "b.example.com"]
    with pytest.raises(domains.InvalidDomain):
        domains.parse_all(["ok.example.com", "*.bad.example.com"])


def make_app(name: str) -> None:
    apps.save(apps.App(name=name))
    domains.app_created(name)


def test_a_new_app_answers_to_its_default_name_through_one_link(home):
    make_app("web")
    link = domains.hosts_dir() / "web.podku.localhost"
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
    (domains.hosts_dir() / "stale.example.com").symlink_to("../sock/gone.sock")
    domains.reconcile()
    assert domains.linked() == {"web.apps.example.com": "web"}


def test_report_dns_says_where_a_name_points(capsys):
    domains.report_dns("localhost")
    assert "(this host)" in capsys.readouterr().out
    domains.report_dns("name.invalid")
    assert "does not resolve" in capsys.readouterr().err


def test_local_addresses():
    assert domains.is_local_address("127.0.0.1")
    assert not domains.is_local_address("192.0.2.1")
