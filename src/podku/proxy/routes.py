"""The proxy's routing contract: a request whose Host header is NAME goes to the unix socket
that `hosts/NAME` links to. Caddy's one route looks the file up and dials it, so a name is
routed, moved or dropped by a symlink change, never by a config load (HOSTS.md: a load drops
requests on keep-alive connections). Which names exist is domains.py's business."""

import contextlib
import os
import shutil
from pathlib import Path

from podku.host import paths, state


def hosts_dir() -> Path:
    """One symlink per routed name (Caddy's working directory)."""
    return paths.STATE / "hosts"


def link(name: str, socket: Path) -> None:
    """Route `name` to `socket` (relative, so that the link survives a moved home)."""
    state.symlink_atomic(os.path.relpath(socket, hosts_dir()), hosts_dir() / name)


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (hosts_dir() / name).unlink()


def targets() -> dict[str, str]:
    """name -> the file name of the socket it routes to, as the hosts directory says now."""
    if not hosts_dir().is_dir():
        return {}
    return {entry.name: os.path.basename(os.readlink(entry)) for entry in hosts_dir().iterdir()
            if entry.is_symlink() and not entry.name.startswith(".")}


# --- per-app proxy settings, read by Caddy per request like the hosts links ------------------
# sites/APP/ holds the files that say what Caddy does for an app before it dials it
# (proxyconf.py writes them); hostconf/NAME links to it, one link per routed name, so a
# setting changes by a file, and an app's names share its settings by their links.

def conf_dir() -> Path:
    """One symlink per routed name to its app's site directory."""
    return paths.STATE / "hostconf"


def site_dir(app: str) -> Path:
    return paths.STATE / "sites" / app


def link_conf(name: str, app: str) -> None:
    state.symlink_atomic(os.path.relpath(site_dir(app), conf_dir()), conf_dir() / name)


def unlink_conf(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (conf_dir() / name).unlink()


def conf_targets() -> dict[str, str]:
    """name -> the app whose site directory it links to, as hostconf/ says now."""
    if not conf_dir().is_dir():
        return {}
    return {entry.name: os.path.basename(os.readlink(entry)) for entry in conf_dir().iterdir()
            if entry.is_symlink() and not entry.name.startswith(".")}


def site_directories(app: str) -> list[Path]:
    """The app's rendered directories, sites/.APP-N (the link names one of them)."""
    parent = site_dir(app).parent
    if not parent.is_dir():
        return []
    prefix = f".{app}-"
    return [entry for entry in parent.iterdir()
            if entry.name.startswith(prefix) and entry.name[len(prefix):].isdigit() and entry.is_dir()]


def remove_site(app: str) -> None:
    """The app's site directories and the link to them (apps:destroy)."""
    with contextlib.suppress(FileNotFoundError):
        site_dir(app).unlink()
    for directory in site_directories(app):
        shutil.rmtree(directory, ignore_errors=True)


def auth_socket() -> Path:
    """Where podku's basic-auth checker listens (authcheck.py, socket-activated)."""
    return paths.STATE / "auth.sock"


def access_log() -> Path:
    """Caddy's access log of every app (caddy.ACCESS_LOG_MB, rolled)."""
    return paths.STATE / "logs" / "access.log"
