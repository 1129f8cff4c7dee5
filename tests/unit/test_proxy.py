import json

import pytest

from podku import apps, paths, proxy
from podku.settings import Settings


def app_routes(config: dict) -> list[dict]:
    """The routes that send a host to an app (not the catch-all ones)."""
    return [route for route in config["apps"]["http"]["servers"]["podku"]["routes"] if "match" in route]


def server(config: dict) -> dict:
    return config["apps"]["http"]["servers"]["podku"]


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_render_is_valid_json_for_any_number_of_apps(home, count):
    for number in range(count):
        apps.save(apps.App(name=f"app{number}"))
    config = json.loads(proxy.render(Settings()))
    assert len(app_routes(config)) == count


def test_each_app_gets_a_route_to_its_stable_socket(home):
    apps.save(apps.App(name="one"))
    apps.save(apps.App(name="two"))
    config = json.loads(proxy.render(Settings(domain="example.com")))
    routes = app_routes(config)
    assert [route["match"] for route in routes] == [[{"host": ["one.example.com"]}],
                                                     [{"host": ["two.example.com"]}]]
    dials = [route["handle"][0]["upstreams"][0]["dial"] for route in routes]
    assert dials == ["unix/" + str(paths.AppPaths("one").stable_socket),
                     "unix/" + str(paths.AppPaths("two").stable_socket)]
    assert dials[0] == f"unix/{paths.STABLE_SOCKETS}/one.sock"
    assert all(route["handle"][0]["handler"] == "reverse_proxy" for route in routes)
    assert all(route["terminal"] is True for route in routes)


def test_route_ids_name_the_app(home):
    apps.save(apps.App(name="one"))
    config = json.loads(proxy.render(Settings()))
    assert app_routes(config)[0]["@id"] == "podku-app-one"


def test_automatic_https_is_disabled(home):
    config = json.loads(proxy.render(Settings()))
    assert server(config)["automatic_https"] == {"disable": True}


def test_listens_on_the_configured_port(home):
    assert server(json.loads(proxy.render(Settings())))["listen"] == [":80"]
    assert server(json.loads(proxy.render(Settings(http_port=8080))))["listen"] == [":8080"]


def test_admin_api_listens_on_the_unix_socket_for_localhost_only(home):
    admin = json.loads(proxy.render(Settings()))["admin"]
    assert admin["listen"] == "unix/" + str(paths.CADDY_ADMIN_SOCKET)
    assert admin["origins"] == ["localhost"]


def test_routes_lists_the_apps_that_exist(home):
    apps.save(apps.App(name="web"))
    assert proxy.routes(Settings()) == [{"app": "web", "hosts": ["web.podku.localhost"],
                                         "socket": str(paths.AppPaths("web").stable_socket)}]


def test_apply_writes_the_config_when_caddy_is_not_running(home):
    apps.save(apps.App(name="web"))
    proxy.apply()
    written = json.loads(paths.CADDY_CONFIG.read_text())
    assert [r["match"] for r in app_routes(written)] == [[{"host": ["web.podku.localhost"]}]]


def test_apply_posts_the_config_to_the_admin_api(home, http_socket, monkeypatch):
    caddy = http_socket(status=200, body=b"")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    apps.save(apps.App(name="web"))
    proxy.apply()
    [request] = caddy.requests
    assert (request["method"], request["path"]) == ("POST", "/load")
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == paths.CADDY_CONFIG.read_bytes()


def test_apply_reports_a_refusal_by_caddy(home, http_socket, monkeypatch):
    from podku.errors import PodkuError

    caddy = http_socket(status=400, body=b"bad route\n")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    with pytest.raises(PodkuError, match=r"Caddy refused the new routes \(HTTP 400\): bad route"):
        proxy.apply()


def test_an_unchanged_route_table_is_not_loaded_again(home, http_socket, monkeypatch):
    caddy = http_socket(status=200, body=b"")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    apps.save(apps.App(name="web"))
    proxy.apply()
    proxy.apply()
    assert len(caddy.requests) == 1


def test_a_refused_route_table_is_not_kept(home, http_socket, monkeypatch):
    from podku.errors import PodkuError

    proxy.apply()  # Caddy not running: the file is written
    before = paths.CADDY_CONFIG.read_text()
    caddy = http_socket(status=400, body=b"no\n")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    apps.save(apps.App(name="web"))
    with pytest.raises(PodkuError):
        proxy.apply()
    assert paths.CADDY_CONFIG.read_text() == before
