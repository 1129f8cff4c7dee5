"""What install.sh asks of podku as the deploy user: settings, Caddy's unit and routes."""

import dataclasses
import time

from podku import domains, paths, proxy, settings, state, systemd, templates, unixhttp
from podku.errors import PodkuError

CADDY_UNIT = "podku-caddy.service"
CADDY_START_TIMEOUT = 30.0


def setup(domain: str, http_port: int) -> None:
    settings.save(dataclasses.replace(settings.load(), domain=domain, http_port=http_port))
    for directory in (paths.APPS, paths.REPOS, paths.STABLE_SOCKETS):
        directory.mkdir(parents=True, exist_ok=True)
    # Caddy's admin socket and the apps' sockets live below: other local users keep out.
    paths.STATE.chmod(0o700)
    unit = templates.render(CADDY_UNIT + ".j2", config=paths.CADDY_CONFIG,
                            admin_socket=paths.CADDY_ADMIN_SOCKET)
    unit_changed = _write_if_changed(systemd.unit_file(CADDY_UNIT), unit)
    systemd.enable(CADDY_UNIT, "default.target")
    if unit_changed:
        systemd.reload()
    domains.reconcile()  # the hosts directory Caddy routes by (made here on an upgrade)
    if unit_changed and systemd.active_state(CADDY_UNIT) == "active":
        proxy.write()  # an upgraded unit (the hosts/ working directory): Caddy must restart
        systemd.restart(CADDY_UNIT)
    else:
        proxy.apply()  # writes the config; loads it into Caddy if it is running
    if systemd.active_state(CADDY_UNIT) != "active":
        systemd.start(CADDY_UNIT)
    _wait_for_admin_api()


def _write_if_changed(path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    state.write_atomic(path, text)
    return True


def _wait_for_admin_api() -> None:
    deadline = time.monotonic() + CADDY_START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            status, _ = unixhttp.request(str(paths.CADDY_ADMIN_SOCKET), "GET", "/config/", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise PodkuError(f"Caddy did not answer on {paths.CADDY_ADMIN_SOCKET}: "
                     f"see journalctl --user-unit {CADDY_UNIT}")
