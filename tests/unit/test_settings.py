import pytest

from podku.errors import UsageError
from podku.host import paths, settings
from podku.host.settings import Settings


def test_defaults():
    assert Settings() == Settings(domain="podku.localhost", http_port=80)


def test_app_host():
    assert Settings(domain="example.com").app_host("my-app") == "my-app.example.com"


def test_app_url_omits_port_80():
    assert Settings(domain="example.com", tls="off").app_url("web") == "http://web.example.com/"


def test_app_url_shows_other_ports():
    assert Settings(domain="example.com", http_port=8080, tls="off").app_url("web") == "http://web.example.com:8080/"


def test_public_names_are_https_under_tls_auto_and_internal_ones_stay_http():
    current = Settings(domain="example.com", tls="auto")
    assert current.app_url("web") == "https://web.example.com/"
    assert current.url("web.podku.localhost") == "http://web.podku.localhost/"
    assert current.url("10.0.0.1") == "http://10.0.0.1/"
    assert Settings(domain="example.com", tls="internal").app_url("web") == "http://web.example.com/"


@pytest.mark.parametrize("name", ["a.localhost", "localhost", "x.y.test", "a.internal", "printer.local", "127.0.0.1"])
def test_internal_names(name):
    assert settings.is_internal(name)


@pytest.mark.parametrize("name", ["example.com", "localhost.example.com", "test.org", "local.dev"])
def test_public_names(name):
    assert not settings.is_internal(name)


def test_tls_settings_survive_a_round_trip_and_are_checked(home):
    settings.save(Settings(tls="auto", acme_email="a@example.com", acme_ca="https://ca.test/dir",
                           acme_ca_root="/x/root.pem"))
    assert settings.load().acme_ca == "https://ca.test/dir"
    with pytest.raises(UsageError, match="invalid TLS mode"):
        settings.save(Settings(tls="nonsense"))
    with pytest.raises(UsageError, match="invalid ACME CA"):
        settings.save(Settings(acme_ca="http://plain"))
    assert settings.load().acme_email == "a@example.com"


def test_an_old_settings_file_loads_with_the_new_defaults(home):
    paths.SETTINGS.parent.mkdir(parents=True, exist_ok=True)
    paths.SETTINGS.write_text('{"domain": "example.com", "http_port": 80}')
    assert settings.load() == Settings(domain="example.com")


def test_load_without_a_file_gives_the_defaults(home):
    assert settings.load() == Settings()


def test_save_and_load_round_trip(home):
    settings.save(Settings(domain="apps.example.com", http_port=8080))
    assert settings.load() == Settings(domain="apps.example.com", http_port=8080)
    assert paths.SETTINGS.exists()


@pytest.mark.parametrize("domain", ["", "Example.com", "a..b", "x.com.", "a b", "a/../b.com", "b.com/",
                                    "d" * 50 + "." + "e" * 49, "faß.de", "x\n.com"])
def test_save_refuses_a_bad_domain(home, domain):
    with pytest.raises(UsageError, match="invalid domain"):
        settings.save(Settings(domain=domain))
    assert not paths.SETTINGS.exists()


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_save_refuses_a_bad_port(home, port):
    with pytest.raises(ValueError, match="invalid port"):
        settings.save(Settings(http_port=port))
    assert not paths.SETTINGS.exists()
