"""The proxy's routing contract: a request whose Host header is NAME goes to the unix socket
that `hosts/NAME` links to. Caddy's one route looks the file up and dials it, so a name is
routed, moved or dropped by a symlink change, never by a config load (HOSTS.md: a load drops
requests on keep-alive connections). Which names exist is domains.py's business."""

import contextlib
import os
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
