import re

import pytest

from podku import names
from podku.errors import UsageError


@pytest.mark.parametrize("name", ["a", "a1", "1a", "my-app", "a--b", "a" * 63])
def test_valid_app_names_are_returned_unchanged(name):
    assert names.app_name(name) == name


@pytest.mark.parametrize("name", [
    "", "a" * 64, "Upper", "myApp", "-app", "app-", "-", "my.app", "..", "../x", "a/b", "a;b",
    "$(x)", "`x`", "my app", " app", "app ", "a_b", "a\\b", "ä",
])
def test_malformed_app_names_are_refused(name):
    with pytest.raises(UsageError, match="invalid app name"):
        names.app_name(name)


def test_app_name_error_says_what_is_allowed():
    with pytest.raises(UsageError) as error:
        names.app_name("Bad_Name")
    assert "'Bad_Name'" in str(error.value)
    assert "lower-case letters, digits and dashes" in str(error.value)


def test_none_is_refused_as_an_app_name():
    with pytest.raises(UsageError, match="invalid app name"):
        names.app_name(None)


@pytest.mark.parametrize("name", sorted(names.RESERVED_APP_NAMES))
def test_reserved_app_names_are_refused(name):
    with pytest.raises(UsageError, match="reserved"):
        names.app_name(name)


@pytest.mark.parametrize("name", ["web-r1", "app-r12", "x-r007", "web-r1-app"])
def test_app_names_ending_like_a_release_are_refused(name):
    with pytest.raises(UsageError, match=r"invalid app name .*-r.*release"):
        names.app_name(name)


@pytest.mark.parametrize("name", ["r12", "app-r", "app-rx1", "app-r1a", "caddy2", "my-podku"])
def test_names_merely_resembling_releases_or_reserved_names_are_allowed(name):
    assert names.app_name(name) == name


@pytest.mark.parametrize("key", ["A", "_", "PORT", "database_url", "X1", "_A_B_9", "K" * 128])
def test_valid_env_keys(key):
    assert names.env_key(key) == key


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A.B", "A B", "A=B", "$A", "K" * 129, "Ä"])
def test_invalid_env_keys_are_refused(key):
    with pytest.raises(UsageError, match="invalid config key"):
        names.env_key(key)


@pytest.mark.parametrize("value", ["", "plain", "with spaces", "a=b=c", "'quoted'", "$HOME", "ü"])
def test_env_values_on_one_line_are_kept(value):
    assert names.env_value("K", value) == value


@pytest.mark.parametrize("value", ["two\nlines", "carriage\rreturn", "nul\0byte", "trailing\n"])
def test_env_values_with_line_breaks_or_nul_are_refused(value):
    with pytest.raises(UsageError, match="invalid value for K"):
        names.env_value("K", value)


def test_env_assignment_splits_at_the_first_equals_sign():
    assert names.env_assignment("URL=postgres://h/db?a=b") == ("URL", "postgres://h/db?a=b")
    assert names.env_assignment("EMPTY=") == ("EMPTY", "")


def test_env_assignment_without_equals_is_refused():
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        names.env_assignment("NOEQUALS")


def test_env_assignment_checks_key_and_value():
    with pytest.raises(UsageError, match="invalid config key"):
        names.env_assignment("1BAD=x")
    with pytest.raises(UsageError, match="line breaks"):
        names.env_assignment("GOOD=x\ny")


@pytest.mark.parametrize("domain", ["localhost", "podku.localhost", "example.com", "a-b.c1.example",
                                    "x" * 63 + ".com"])
def test_valid_domains(domain):
    assert names.domain(domain) == domain


@pytest.mark.parametrize("domain", ["", ".", "example.com.", ".example.com", "a..b", "Example.com",
                                    "-a.com", "a-.com", "a_b.com", "a b.com", "x" * 64 + ".com",
                                    "a/b", "*.example.com", ("a." * 127) + "ab"])
def test_invalid_domains_are_refused(domain):
    with pytest.raises(UsageError, match="invalid domain"):
        names.domain(domain)


HOSTILE_HOST_NAMES = [
    "a;b.com", "$(id).com", "`id`.com", "../a.com", "a/../b.com", "a.com/", "/a.com", "a%2fb.com", "a%2F..%2Fb.com",
    "--help", "--a.com", "a--", "a.com\n", "a\nb.com", "\na.com", "a\rb.com", "a\x00.com", "a\tb.com",
    "a\x1b.com", "a\x7f.com", "a\x85.com", "bücher.com", "a\u200db.com", "ａ.com", "A.com", "a.COM", "a.com.",
    "..", "a..com", ".", "x" * 64 + ".com", "a." * 50 + "com", "x" * 254, "a:80", "[::1]", "*.a.com", "a b.com",
    "a\\b.com", "a.com?", "a.com#", "a@b.com", "a{b}.com", "{http.request.host}",
]


@pytest.mark.parametrize("name", HOSTILE_HOST_NAMES)
def test_hostile_host_names_are_refused_in_one_line(name):
    with pytest.raises(UsageError, match="invalid domain") as raised:
        names.domain(name)
    assert str(raised.value).isprintable()


GOOD_HOST_NAMES = ["a.com", "x" * 63 + ".com", "a" * 49 + "." + "b" * 50, "a-b.c-d", "a--b.com", "10.0.0.1",
                   "xn--fa-hia.de"]


@pytest.mark.parametrize("name", HOSTILE_HOST_NAMES + GOOD_HOST_NAMES + ["a" * 101, "a" * 50 + "." + "b" * 50])
def test_the_pattern_caddy_uses_agrees_with_the_check(name):
    """The same text guards Caddy (proxy/caddy.py): it must let through what the check lets through."""
    shape_ok = re.fullmatch(names.HOST_NAME_PATTERN, name) is not None
    assert (shape_ok and len(name) <= names.MAX_HOST_NAME) == (names.host_name_problem(name) is None)


def test_host_names_up_to_the_routing_limit_pass():
    assert names.domain("a" * 49 + "." + "b" * 50) == "a" * 49 + "." + "b" * 50
    with pytest.raises(UsageError, match="longer than 100"):
        names.domain("a" * 50 + "." + "b" * 50)


@pytest.mark.parametrize("text, number", [("7", 7), ("r7", 7), ("v7", 7), ("12", 12), ("v007", 7),
                                          ("999999999", 999999999)])
def test_release_ids_as_typed(text, number):
    assert names.release_id(text) == number


@pytest.mark.parametrize("text", ["0", "r0", "x", "-1", "", "r", "v", "rv7", "7r", "1.5", " 7",
                                  "1000000000"])
def test_invalid_release_ids_are_refused(text):
    with pytest.raises(UsageError, match="invalid release"):
        names.release_id(text)


@pytest.mark.parametrize("check, text", [(names.app_name, "my-app\n"), (names.env_key, "KEY\n"),
                                         (names.domain, "example.com\n")])
def test_a_trailing_newline_is_refused(check, text):
    with pytest.raises(UsageError):
        check(text)


@pytest.mark.parametrize("text", ["²", "٣", "r²"])
def test_release_ids_are_ascii_digits_only(text):
    with pytest.raises(UsageError):
        names.release_id(text)


@pytest.mark.parametrize("name", ["podku-web-r1", "podku-my-app-r12"])
def test_container_names_of_releases_are_accepted(name):
    assert names.container(name) == name


@pytest.mark.parametrize("name", ["web-r1", "podku-web", "podku-web-rx", "podku-Bad-r1", "podku-../x-r1", "podku--r1"])
def test_other_container_names_are_refused(name):
    with pytest.raises(UsageError):
        names.container(name)
