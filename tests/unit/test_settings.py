import pytest

from podku import paths, settings
from podku.errors import UsageError
from podku.settings import Settings


def test_defaults():
    assert Settings() == Settings(domain="podku.localhost", http_port=80)


def test_app_host():
    assert Settings(domain="example.com").app_host("my-app") == "my-app.example.com"


def test_app_url_omits_port_80():
    assert Settings(domain="example.com").app_url("web") == "http://web.example.com/"


def test_app_url_shows_other_ports():
    assert Settings(domain="example.com", http_port=8080).app_url("web") == "http://web.example.com:8080/"


def test_load_without_a_file_gives_the_defaults(home):
    assert settings.load() == Settings()


def test_save_and_load_round_trip(home):
    settings.save(Settings(domain="apps.example.com", http_port=8080))
    assert settings.load() == Settings(domain="apps.example.com", http_port=8080)
    assert paths.SETTINGS.exists()


@pytest.mark.parametrize("domain", ["", "Example.com", "a..b", "x.com.", "a b"])
def test_save_refuses_a_bad_domain(home, domain):
    with pytest.raises(UsageError, match="invalid domain"):
        settings.save(Settings(domain=domain))
    assert not paths.SETTINGS.exists()


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_save_refuses_a_bad_port(home, port):
    with pytest.raises(ValueError, match="invalid port"):
        settings.save(Settings(http_port=port))
    assert not paths.SETTINGS.exists()
