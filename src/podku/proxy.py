"""Caddy: the route table rendered from the apps that exist, loaded through the admin API."""

import json

from podku import apps, paths, settings, state, templates, unixhttp
from podku.errors import PodkuError


def routes(current: settings.Settings) -> list[dict]:
    return [{"app": name, "hosts": [current.app_host(name)],
             "socket": str(paths.AppPaths(name).stable_socket)}
            for name in apps.all_names()]


def render(current: settings.Settings) -> str:
    text = templates.render("caddy.json.j2", admin_socket=str(paths.CADDY_ADMIN_SOCKET),
                            http_port=current.http_port, routes=routes(current))
    json.loads(text)  # a template mistake must fail here, not inside Caddy
    return text


def apply(current: settings.Settings | None = None) -> None:
    """Load the route table into the running Caddy, then keep it as the file Caddy reads at
    boot. An unchanged table is not loaded again: every load reloads all of Caddy. A table
    Caddy refuses is not kept."""
    config = render(current or settings.load())
    if paths.CADDY_CONFIG.exists() and paths.CADDY_CONFIG.read_text() == config:
        return
    _load(config)
    state.write_atomic(paths.CADDY_CONFIG, config)


def _load(config: str) -> None:
    try:
        status, body = unixhttp.request(str(paths.CADDY_ADMIN_SOCKET), "POST", "/load",
                                        body=config.encode(),
                                        headers={"Content-Type": "application/json"})
    except (FileNotFoundError, ConnectionRefusedError):
        return  # Caddy is not running; it reads the file when it starts
    except OSError as error:
        raise PodkuError(f"cannot reach Caddy's admin API at {paths.CADDY_ADMIN_SOCKET}: {error}") from error
    if status != 200:
        raise PodkuError(f"Caddy refused the new routes (HTTP {status}): {body.decode(errors='replace').strip()}")
