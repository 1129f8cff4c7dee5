import shlex
from pathlib import Path

import jinja2
import pytest

from podku.host import templates

REPO = Path(__file__).resolve().parents[2]

VALUES = dict(app="my-app", release=7, network="none", unit="my-app-r7", image="localhost/podku/my-app:r7",
              container="podku-my-app-r7", pidfile=Path("/run/user/1000/podku/podku-my-app-r7.pid"),
              env_file=Path("/home/podku/.local/state/podku/apps/my-app/releases/7.env"),
              socket_path=Path("/run/user/1000/podku/my-app/web-r7.sock"), stop_timeout=10,
              extra_flags=[], idle_timeout=0, inner_socket=None,
              inner_socket_path=Path("/run/user/1000/podku/my-app/app-r7.sock"),
              socket_proxyd="/usr/lib/systemd/systemd-socket-proxyd")


def directives(text: str) -> dict[str, list[str]]:
    """Unit-file `Key=value` lines, comments left out; a key may repeat."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def service() -> str:
    return templates.render("release.service.j2", **VALUES)


@pytest.fixture
def socket_unit() -> str:
    return templates.render("release.socket.j2", **VALUES)


def test_units_dir_has_the_templates():
    names = {path.name for path in templates.units_dir().iterdir()}
    assert {"release.socket.j2", "release.service.j2", "caddy.json.j2", "pre-receive.j2",
            "podku-caddy.service.j2"} <= names


def test_service_runs_podman_without_a_network_and_with_sdnotify(service):
    [exec_start] = directives(service)["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:2] == ["/usr/bin/podman", "run"]
    assert "--network=none" in argv
    assert "--sdnotify=conmon" in argv
    assert argv[-1] == "localhost/podku/my-app:r7"


def test_service_passes_the_env_file_name_and_labels(service):
    argv = shlex.split(directives(service)["ExecStart"][0])
    assert argv[argv.index("--env-file") + 1] == str(VALUES["env_file"])
    assert argv[argv.index("--name") + 1] == "podku-my-app-r7"
    assert argv[argv.index("--stop-timeout") + 1] == "10"
    labels = [argv[i + 1] for i, word in enumerate(argv) if word == "--label"]
    assert labels == ["podku.app=my-app", "podku.release=7"]


def test_service_needs_its_socket_and_stops_its_container(service):
    found = directives(service)
    assert found["Requires"] == ["my-app-r7.socket"]
    assert found["After"] == ["my-app-r7.socket"]
    assert found["Type"] == ["notify"]
    assert found["ExecStop"] == ["/usr/bin/podman stop --ignore -t 10 podku-my-app-r7"]
    assert found["ExecStopPost"] == ["/usr/bin/podman rm --ignore -f podku-my-app-r7"]
    assert found["TimeoutStopSec"] == ["25"]


def test_socket_listens_on_the_given_path(socket_unit):
    found = directives(socket_unit)
    assert found["ListenStream"] == ["/run/user/1000/podku/my-app/web-r7.sock"]
    assert found["SocketMode"] == ["0600"]


def test_rendering_keeps_the_trailing_newline(service, socket_unit):
    assert service.endswith("\n") and socket_unit.endswith("\n")


def test_no_placeholder_is_left_unrendered(service, socket_unit):
    for text in (service, socket_unit):
        assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("template, missing", [("release.service.j2", "image"),
                                               ("release.service.j2", "env_file"),
                                               ("release.socket.j2", "socket_path")])
def test_a_missing_value_raises(template, missing):
    values = {key: value for key, value in VALUES.items() if key != missing}
    with pytest.raises(jinja2.UndefinedError, match=missing):
        templates.render(template, **values)


def test_values_are_not_html_escaped():
    hook = templates.render("pre-receive.j2", app="a&b", podku="/opt/<podku>")
    assert "exec /opt/<podku> git-hook a&b" in hook


def test_caddy_unit_points_at_the_config():
    unit = templates.render("podku-caddy.service.j2", config="/x/caddy.json", admin_socket="/x/a.sock")
    assert directives(unit)["ExecStart"] == ["/usr/local/lib/podku/caddy run --config /x/caddy.json"]
    assert directives(unit)["WorkingDirectory"] == ["/x/hosts"]  # Caddy dials names relative to it


PORT_VALUES = dict(VALUES, port=5000, podku=Path("/opt/podku/bin/podku"))


def test_every_template_renders_with_the_values_podku_passes():
    for path in sorted(templates.units_dir().glob("release*.j2")):
        text = templates.render(path.name, **PORT_VALUES)
        assert "{{" not in text and "{%" not in text, path.name


def test_a_port_app_gets_port_in_its_environment_and_no_network():
    unit = templates.render("release.service.j2", **PORT_VALUES)  # with a port: the app behind the bridge
    argv = shlex.split(directives(unit)["ExecStart"][0])
    assert "--network=none" in argv
    assert argv[argv.index("--env") + 1] == "PORT=5000"
    assert argv[argv.index("--pidfile") + 1] == "/run/user/1000/podku/podku-my-app-r7.pid"  # the bridge reads it
    assert argv[-1] == "localhost/podku/my-app:r7"
    assert directives(unit)["ExecStartPost"] == ["/opt/podku/bin/podku internal:wait-port podku-my-app-r7 5000"]


def test_the_bridge_needs_the_socket_and_the_app():
    unit = templates.render("release-bridge.service.j2", **PORT_VALUES)
    found = directives(unit)
    assert found["Requires"] == ["my-app-r7.socket my-app-r7-app.service"]
    assert found["BindsTo"] == ["my-app-r7-app.service"]
    assert found["ExecStart"] == ["/opt/podku/bin/podku internal:bridge podku-my-app-r7 5000"]
