"""What install.sh asks of podku as the deploy user: settings, Caddy's unit and routes, and
the boot-time reconcile unit."""

import dataclasses
import sys
import time

from podku import domains, proxyconf, sshkeys
from podku.errors import PodkuError
from podku.host import paths, settings, systemd, templates, unixhttp
from podku.proxy import routes

CADDY_UNIT = "podku-caddy.service"
RECONCILE_UNIT = "podku-reconcile.service"
AUTH_SOCKET_UNIT = "podku-auth.socket"
AUTH_SERVICE_UNIT = "podku-auth.service"
CADDY_START_TIMEOUT = 30.0


def setup(domain: str, http_port: int, restart_proxy: bool = False) -> None:
    """Idempotent. Caddy restarts (dropping what is in flight) only when its unit changed or
    install.sh put a new Caddy binary in place: an upgrade, never a plain rerun."""
    settings.save(dataclasses.replace(settings.load(), domain=domain, http_port=http_port))
    for directory in (paths.APPS, paths.REPOS, paths.STABLE_SOCKETS):
        directory.mkdir(parents=True, exist_ok=True)
    # Caddy's admin socket and the apps' sockets live below: other local users keep out.
    paths.STATE.chmod(0o700)
    sshkeys.name_older_lines()  # keys added before keys carried their name (events.py)
    caddy_changed, reconcile_changed = _install_units()
    auth_changed = _install_auth_units()
    if caddy_changed or reconcile_changed or auth_changed:
        systemd.reload()
    domains.relink_all()  # the hosts directory Caddy routes by (made here on an upgrade)
    proxyconf.rerender_all()  # each app's proxy settings, as files Caddy reads
    routes.access_log().parent.mkdir(parents=True, exist_ok=True)
    if auth_changed:
        systemd.stop(AUTH_SERVICE_UNIT)  # a new checker starts with the next request
    if auth_changed or systemd.active_state(AUTH_SOCKET_UNIT) != "active":
        systemd.start(AUTH_SOCKET_UNIT)
    running = systemd.active_state(CADDY_UNIT) == "active"
    if running and (caddy_changed or restart_proxy):
        domains.write_proxy()  # a new unit or binary: the config goes to the new process, not the old
        systemd.restart(CADDY_UNIT)
    else:
        domains.load_proxy()  # writes the config; loads it into Caddy if it is running
        if not running:
            systemd.start(CADDY_UNIT)
    _wait_for_admin_api()


def _install_units() -> tuple[bool, bool]:
    """Caddy's unit and the reconcile unit, both started at boot; whether each changed."""
    caddy = templates.render(CADDY_UNIT + ".j2", config=paths.CADDY_CONFIG,
                             admin_socket=paths.CADDY_ADMIN_SOCKET)
    reconcile = templates.render(RECONCILE_UNIT + ".j2", podku=paths.PODKU_EXECUTABLE)
    changed = [systemd.write_unit(CADDY_UNIT, caddy), systemd.write_unit(RECONCILE_UNIT, reconcile)]
    for unit in (CADDY_UNIT, RECONCILE_UNIT):
        systemd.enable(unit, "default.target")
    return changed[0], changed[1]


def _install_auth_units() -> bool:
    """The basic-auth checker's socket (enabled) and service; whether either changed."""
    socket = templates.render(AUTH_SOCKET_UNIT + ".j2", socket_path=routes.auth_socket())
    service = templates.render(AUTH_SERVICE_UNIT + ".j2", python=sys.executable)
    changed = [systemd.write_unit(AUTH_SOCKET_UNIT, socket), systemd.write_unit(AUTH_SERVICE_UNIT, service)]
    systemd.enable(AUTH_SOCKET_UNIT, "sockets.target")
    return any(changed)


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
