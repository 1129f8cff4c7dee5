import json
import re

import pytest

from podku import apps, domains, names
from podku.host import paths
from podku.host.settings import Settings
from podku.proxy import caddy as proxy
from podku.proxy import routes


def servers(config: dict) -> dict:
    return config["apps"]["http"]["servers"]


def app_route(server: dict) -> dict:
    [route] = [route for route in server["routes"] if route.get("@id") == "podku-apps"]
    return route


def config_text(settings: Settings) -> str:
    return proxy.render(settings)


def render(**settings) -> dict:
    return json.loads(config_text(Settings(**settings)))


@pytest.mark.parametrize("count", [0, 1, 3])
def test_creating_apps_changes_nothing_in_the_config(home, count):
    before = config_text(Settings(tls="internal"))
    for number in range(count):
        apps.save(apps.App(name=f"app{number}"))
        domains.app_created(f"app{number}")
    assert config_text(Settings(tls="internal")) == before
    assert config_text(Settings(tls="auto")) == config_text(Settings(tls="auto"))


def test_one_route_dials_the_host_name_when_its_link_exists(home):
    route = app_route(servers(render())["podku"])
    assert route["match"] == [{"vars_regexp": {"{http.request.host}": {"pattern": names.HOST_NAME_PATTERN}},
                               "file": {"root": str(routes.hosts_dir()), "try_files": ["{http.request.host}"]}}]
    [handler] = route["handle"]
    assert handler["handler"] == "reverse_proxy"
    assert handler["upstreams"] == [{"dial": "unix/{http.request.host}"}]
    assert route["terminal"] is True


def test_tls_off_is_plain_http_only(home):
    config = render(tls="off")
    assert list(servers(config)) == ["podku"]
    assert "tls" not in config["apps"]
    assert servers(config)["podku"]["automatic_https"] == {"disable": True}


def test_tls_internal_signs_every_name_with_the_internal_ca_on_demand(home):
    config = render(tls="internal")
    assert servers(config)["podku-tls"]["listen"] == [":443"]
    assert servers(config)["podku-ask"]["listen"] == [proxy.ASK_ADDRESS]
    automation = config["apps"]["tls"]["automation"]
    assert automation["on_demand"] == {"ask": f"http://{proxy.ASK_ADDRESS}/check"}
    assert automation["policies"] == [{"issuers": [{"module": "internal"}], "on_demand": True}]
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    assert all(r.get("@id") != "podku-https-redirect" for r in servers(config)["podku"]["routes"])


def match_wildcard(subject: str, wildcard: str) -> bool:
    """certmagic v0.17.2's MatchWildcard (Caddy 2.6.2 picks an automation policy by it)."""
    subject, wildcard = subject.lower(), wildcard.lower()
    if subject == wildcard:
        return True
    if "*" not in wildcard:
        return False
    labels = subject.split(".")
    for index, label in enumerate(labels):
        if label == "":
            continue
        labels[index] = "*"
        if ".".join(labels) == wildcard:
            return True
    return False


def policy_for(policies: list[dict], name: str) -> dict:
    """Caddy's TLS.getAutomationPolicyForName: the first policy with no subjects or a match."""
    return next(policy for policy in policies
                if not policy.get("subjects") or any(match_wildcard(name, s) for s in policy["subjects"]))


def test_tls_auto_keeps_internal_names_away_from_acme(home):
    config = render(tls="auto", acme_ca="https://ca.example/dir", acme_email="me@example.com",
                    acme_ca_root="/r.pem")
    internal, public = config["apps"]["tls"]["automation"]["policies"]
    subjects = internal.pop("subjects")
    assert internal == {"issuers": [{"module": "internal"}], "on_demand": True}
    assert subjects[:4] == ["", "localhost", "*.localhost", "*.*.localhost"]
    assert subjects[-1] == "*." * 47 + "local" and "*." * 48 + "test" in subjects
    assert len(subjects) == len(set(subjects)) == 2 + 45 + 48 + 46 + 47
    assert not any(subject.replace("*.", "").replace("*", "") in ("", "*") for subject in subjects[2:])
    assert public == {"issuers": [{"module": "acme", "ca": "https://ca.example/dir", "email": "me@example.com",
                                   "trusted_roots_pem_files": ["/r.pem"]}], "on_demand": True}


@pytest.mark.parametrize("name", ["a.test", "a.b.test", "a.b.c.test", "web.podku.localhost", "x.y.internal",
                                  "printer.local", "localhost", "", "a." * 48 + "test", "a." * 45 + "localhost"])
def test_every_internal_name_gets_the_internal_ca(home, name):
    policies = render(tls="auto")["apps"]["tls"]["automation"]["policies"]
    assert policy_for(policies, name)["issuers"] == [{"module": "internal"}]


@pytest.mark.parametrize("name", ["www.example.org", "a.b.example.com", "test.example.org", "a.test.example",
                                  "localhost.example.org", "local", "a.b.c.d", "a" * 49 + "." + "b" * 50])
def test_every_public_name_goes_to_acme(home, name):
    policies = render(tls="auto")["apps"]["tls"]["automation"]["policies"]
    assert policy_for(policies, name)["issuers"] == [{"module": "acme"}]


def test_an_ip_global_domain_gets_its_app_names_signed_internally(home):
    policies = render(tls="auto", domain="10.0.0.5")["apps"]["tls"]["automation"]["policies"]
    assert "*.10.0.0.5" in policies[0]["subjects"]
    assert policy_for(policies, "web.10.0.0.5")["issuers"] == [{"module": "internal"}]


def test_internal_names_come_and_go_without_a_config_change(home):
    before = config_text(Settings(tls="auto"))
    apps.save(apps.App(name="web"))
    domains.app_created("web")
    domains.change("web", domains.Domains(custom=["web.test", "a.b.web.internal", "10.1.2.3", "www.example.com"]))
    assert config_text(Settings(tls="auto")) == before
    domains.change("web", domains.Domains())
    assert config_text(Settings(tls="auto")) == before


def body_max_routes(server: dict) -> list[dict]:
    [route] = [route for route in server["routes"] if route.get("@id", "").startswith("podku-body-max-")]
    [subroute] = route["handle"]
    return subroute["routes"]


@pytest.mark.parametrize("mode", [{"tls": "auto"}, {"tls": "internal"}, {"tls": "off"}])
def test_every_offered_body_size_caps_bodies_without_content_length(home, mode):
    for name, server in servers(render(**mode)).items():
        if name == "podku-ask":
            continue
        content_length, caps = body_max_routes(server)
        assert content_length["match"][0]["vars_regexp"]["{http.matchers.file.relative}"]["name"] == "podku_body"
        assert caps["match"][0]["file"]["try_files"] == ["{http.request.host}/body-cap/*"]
        relative = "{http.matchers.file.relative}"
        [ladder] = caps["handle"]
        assert ladder["routes"] == [{"match": [{"vars_regexp": {relative: {"pattern": f"/body-cap/{size}$"}}}],
                                     "handle": [{"handler": "request_body", "max_size": size}]}
                                    for size in proxy.BODY_SIZES]
    assert len(proxy.BODY_SIZES) == 50 and proxy.BODY_SIZES[0] == 1024 and proxy.BODY_SIZES[-1] == 64 * 1024 ** 3


@pytest.mark.parametrize("limit, cap", [(1024, 1024), (1025, 2048), (3 * 1024, 4 * 1024),
                                        (30 * 1024 ** 2, 32 * 1024 ** 2), (513 * 1024 ** 2, 1024 ** 3),
                                        (64 * 1024 ** 3, 64 * 1024 ** 3)])
def test_a_limit_caps_a_body_without_length_at_the_next_size_offered(limit, cap):
    assert proxy.body_cap(limit) == cap


def test_tls_auto_redirects_public_names_but_not_challenges_or_internal_names(home):
    [redirect] = [r for r in servers(render(tls="auto"))["podku"]["routes"] if r.get("@id") == "podku-https-redirect"]
    match = redirect["match"][0]
    assert match["not"][0] == {"path": ["/.well-known/acme-challenge/*"]}
    pattern = match["not"][1]["vars_regexp"]["{http.request.host}"]["pattern"]
    import re
    assert re.search(pattern, "a.podku.localhost") and re.search(pattern, "10.1.2.3")
    assert not re.search(pattern, "www.example.com")
    assert redirect["handle"][0]["status_code"] == 308


def test_listens_on_the_configured_ports(home):
    assert servers(render())["podku"]["listen"] == [":80"]
    assert servers(render(http_port=8080, https_port=8443))["podku-tls"]["listen"] == [":8443"]


def test_admin_api_listens_on_the_unix_socket_for_localhost_only(home):
    admin = render()["admin"]
    assert admin["listen"] == "unix/" + str(paths.CADDY_ADMIN_SOCKET)
    assert admin["origins"] == ["localhost"]


def test_apply_writes_the_config_when_caddy_is_not_running(home):
    domains.load_proxy()
    assert json.loads(paths.CADDY_CONFIG.read_text())["apps"]["http"]["servers"]["podku"]


def test_apply_posts_the_config_to_the_admin_api(home, http_socket, monkeypatch):
    caddy = http_socket(status=200, body=b"")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    domains.load_proxy()
    [request] = caddy.requests
    assert (request["method"], request["path"]) == ("POST", "/load")
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == paths.CADDY_CONFIG.read_bytes()


def test_apply_reports_a_refusal_by_caddy(home, http_socket, monkeypatch):
    from podku.errors import PodkuError

    caddy = http_socket(status=400, body=b"bad route\n")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    with pytest.raises(PodkuError, match=r"Caddy refused the new routes \(HTTP 400\): bad route"):
        domains.load_proxy()


def test_an_unchanged_config_is_not_loaded_again_and_new_apps_load_nothing(home, http_socket, monkeypatch):
    caddy = http_socket(status=200, body=b"")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    domains.load_proxy()
    apps.save(apps.App(name="web"))
    domains.app_created("web")
    domains.load_proxy()
    assert len(caddy.requests) == 1


def test_a_refused_config_is_not_kept(home, http_socket, monkeypatch):
    from podku.errors import PodkuError

    domains.load_proxy()  # Caddy not running: the file is written
    before = paths.CADDY_CONFIG.read_text()
    caddy = http_socket(status=400, body=b"no\n")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    with pytest.raises(PodkuError):
        domains.load_proxy(Settings(http_port=8080))
    assert paths.CADDY_CONFIG.read_text() == before


def test_write_only_writes_the_file(home, http_socket, monkeypatch):
    caddy = http_socket(status=200, body=b"")
    monkeypatch.setattr(paths, "CADDY_ADMIN_SOCKET", caddy.path)
    domains.write_proxy()
    assert json.loads(paths.CADDY_CONFIG.read_text())["apps"]["http"]
    assert caddy.requests == []


# --- only host names reach a file lookup, a dial or a certificate (issue 14, holes 4 and 6) ---

ALL_MODES = [{"tls": "auto"}, {"tls": "internal"}, {"tls": "off"}]


def file_lookups(server: dict) -> list[tuple[dict, str]]:
    """(match set, the placeholder it looks up) for every file matcher of the server (a
    setting's file is a fixed path below the name: hostconf/{host}/maintenance.html)."""
    return [(matcher_set, matcher_set["file"]["try_files"][0].split("/")[0])
            for route in server["routes"] for matcher_set in route.get("match", []) if "file" in matcher_set]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_file_lookup_checks_its_name_first(home, mode):
    for name, server in servers(render(**mode)).items():
        lookups = file_lookups(server)
        assert lookups, name
        for matcher_set, placeholder in lookups:
            assert matcher_set["vars_regexp"] == {placeholder: {"pattern": names.HOST_NAME_PATTERN}}, name


def guard_refuses(guard: dict, placeholder: str, value: str) -> bool:
    """The guard route's matcher sets, evaluated as Caddy does (sets OR'ed, `not` negates)."""
    [not_set, too_long_set] = guard["match"]
    [shape] = not_set["not"]
    shape_ok = re.search(shape["vars_regexp"][placeholder]["pattern"], value) is not None
    too_long = re.search(too_long_set["vars_regexp"][placeholder]["pattern"], value) is not None
    return not shape_ok or too_long


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_server_refuses_non_names_before_any_route(home, mode):
    for name, server in servers(render(**mode)).items():
        guard = server["routes"][0]
        placeholder = "{http.request.uri.query.domain}" if name == "podku-ask" else "{http.request.host}"
        assert guard["@id"] == "podku-not-a-host-name" and guard["terminal"] is True
        [respond] = guard["handle"]
        assert respond == {"handler": "static_response", "status_code": 404 if name == "podku-ask" else 400,
                           "close": True}
        for value in ["x/../web.podku.localhost", "web.podku.localhost/", "/web.podku.localhost", "WEB.podku.localhost",
                      "web.podku.localhost.", "", "a" * 101, "a\nb", "<nil>", "web..podku.localhost"]:
            assert guard_refuses(guard, placeholder, value), (name, value)
        for value in ["web.podku.localhost", "xn--fa-hia.de", "10.0.0.1", "a" * 49 + "." + "b" * 50]:
            assert not guard_refuses(guard, placeholder, value), (name, value)


def test_the_ask_server_checks_the_query_name_and_the_path(home):
    ask = servers(render(tls="internal"))["podku-ask"]
    check = ask["routes"][1]
    [matcher_set] = check["match"]
    assert matcher_set["path"] == ["/check"]
    assert matcher_set["file"]["try_files"] == ["{http.request.uri.query.domain}"]
    assert check["handle"] == [{"handler": "static_response", "status_code": 200}]
    assert ask["routes"][-1]["handle"][0]["status_code"] == 404


def test_the_ask_server_binds_a_port_no_other_local_user_may_take(home):
    host, port = proxy.ASK_ADDRESS.rsplit(":", 1)
    assert host == "127.0.0.1" and 0 < int(port) < 1024
    assert int(port) < 512  # glibc's bindresvport and the kernel's RPC clients take 512-1023
    assert servers(render(tls="auto"))["podku-ask"]["listen"] == [proxy.ASK_ADDRESS]
