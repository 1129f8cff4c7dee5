"""Where podku keeps things: the deploy user's XDG directories, named once."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from podku import naming

HOME = Path(os.environ.get("HOME") or Path.home())


def _xdg(variable: str, default: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value and os.path.isabs(value) else HOME / default


STATE = _xdg("XDG_STATE_HOME", ".local/state") / "podku"
CONFIG = _xdg("XDG_CONFIG_HOME", ".config") / "podku"
DATA = _xdg("XDG_DATA_HOME", ".local/share") / "podku"
CACHE = _xdg("XDG_CACHE_HOME", ".cache") / "podku"
SYSTEMD_UNITS = _xdg("XDG_CONFIG_HOME", ".config") / "systemd" / "user"
RUNTIME = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}") / "podku"

APPS = STATE / "apps"
REPOS = DATA / "repos"
BUILDS = CACHE / "build"
STATIC = DATA / "static"  # static sites' trees, one directory per app (staticsite.py)
# Stable per-app socket paths live in one short directory: a unix socket path has at
# most 107 bytes, and app names may have 63.
STABLE_SOCKETS = STATE / "sock"
# apps:rename's journal: one file per rename under way (rename.py), so a cut-off one is finished.
RENAMES = STATE / "renames"
SETTINGS = CONFIG / "podku.json"
# Builds hold it shared, image removal exclusively: podman 4.3 fails a lookup by name
# ("image not known") when another image is removed meanwhile.
IMAGES_LOCK = STATE / "images.lock"
CADDY_CONFIG = CONFIG / "caddy.json"
CADDY_ADMIN_SOCKET = STATE / "caddy-admin.sock"
SSH_AUTHORIZED_KEYS = HOME / ".ssh" / "authorized_keys"
UNIX_PATH_MAX = 107
# The podku command of this installation (the venv's), for units, hooks and ssh keys.
PODKU_EXECUTABLE = Path(sys.executable).parent / "podku"


@dataclass(frozen=True)
class AppPaths:
    name: str

    @property
    def root(self) -> Path:
        return APPS / self.name

    @property
    def record(self) -> Path:
        return self.root / "app.json"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def repo(self) -> Path:
        return REPOS / f"{self.name}.git"

    @property
    def stable_socket(self) -> Path:
        """The path Caddy dials: a symlink to the live release's socket."""
        return STABLE_SOCKETS / naming.stable_socket_file(self.name)

    @property
    def static(self) -> Path:
        """A static site's trees (staticsite.py)."""
        return STATIC / self.name

    @property
    def static_live(self) -> Path:
        """The link Caddy's static route matches on (a static release is live)."""
        return self.static / "live"

    @property
    def static_files(self) -> Path:
        """The link to the tree Caddy serves files from: it outlives `static_live` until that
        tree is retired, for requests matched just before a switch to a container."""
        return self.static / "files"

    def release_record(self, release: int) -> Path:
        return self.releases / f"{release}.json"

    def env_file(self, release: int) -> Path:
        return self.releases / naming.env_file(release)

    def release_socket(self, release: int) -> Path:
        return RUNTIME / self.name / naming.release_socket_file(release)

    def build_dir(self, release: int) -> Path:
        return BUILDS / naming.build_dir(self.name, release)


@dataclass(frozen=True)
class ServicePaths:
    """A service's places: its record and lock in podku's state, its data and socket
    directory in podku's data (kept across reboots, removed by KIND:destroy)."""

    kind: str
    name: str

    @property
    def record(self) -> Path:
        return STATE / "services" / self.kind / f"{self.name}.json"

    @property
    def lock(self) -> Path:
        return STATE / "services" / self.kind / f"{self.name}.lock"

    @property
    def root(self) -> Path:
        return DATA / "services" / self.kind / self.name

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        """The directory the service's unix socket is made in, mounted into linked apps."""
        return self.root / "run"


def service_records(kind: str) -> Path:
    return STATE / "services" / kind
