"""Persistent storage: named directories under one root owned by the deploy user, mounted
into an app's containers. Mounts are app settings: a change is a new release (the swap),
and every release after it mounts them too, rollbacks included.

A directory is mounted with podman's `U` option: at each start podman gives the directory
to the user the container runs as (root in the container is the deploy user; an image's
USER is one of the deploy user's subordinate ids), so the app can always write to it.
Storage is host-wide: `apps:destroy` leaves it in place."""

import posixpath
import re

from podku import names
from podku.errors import UsageError
from podku.host import paths, records, state

FILE_NAME = "storage.json"
CONTAINER_PATH = re.compile(r"/[A-Za-z0-9._@+=~/-]{1,4095}")
FORBIDDEN_UNDER = ("/proc", "/sys", "/dev")
MAX_MOUNTS = 32


class StorageError(UsageError):
    pass


def root():
    return paths.DATA / "storage"


def storage_name(name: str) -> str:
    """A storage directory's name: the rules of an app name."""
    try:
        return names.app_name(name)
    except UsageError as error:
        raise StorageError(str(error).replace("app name", "storage name", 1)) from None


def container_path(path: str) -> str:
    """An absolute, normalised path inside the container, not / and not under /proc, /sys, /dev."""
    if not CONTAINER_PATH.fullmatch(path or "") or posixpath.normpath(path) != path or path.startswith("//"):
        raise StorageError(f"invalid container path {path[:80]!r}: an absolute, normalised path of "
                           "letters, digits and ._@+=~/- (no '..', no trailing '/')")
    if ".." in path.split("/"):
        raise StorageError(f"invalid container path {path!r}: '..' is not allowed")
    if any(path == top or path.startswith(top + "/") for top in FORBIDDEN_UNDER):
        raise StorageError(f"invalid container path {path!r}: not under /proc, /sys or /dev")
    return path


def parse_mount(text: str) -> tuple[str, str]:
    """NAME:/container/path, as typed."""
    name, sep, path = (text or "").partition(":")
    if not sep:
        raise StorageError(f"invalid mount {text[:80]!r}: expected NAME:/container/path")
    return storage_name(name), container_path(path)


def directory(name: str):
    return root() / storage_name(name)


def ensure_directory(name: str) -> bool:
    """Create the directory if it is missing; True when it was created."""
    path = directory(name)
    if path.is_dir() and not path.is_symlink():
        return False
    if path.exists() or path.is_symlink():
        raise StorageError(f"{path} exists and is not a directory")
    path.mkdir(parents=True, mode=0o700)
    return True


# --- an app's mounts ------------------------------------------------------------------

def _app_file(app: str):
    return paths.AppPaths(app).root / FILE_NAME


# storage.json and a release's `mounts`: NAME:/container/path each, as parse_mount reads them.
RECORD = records.list_of(records.validated(parse_mount), MAX_MOUNTS)


def mounts(app: str) -> list[str]:
    """The app's mounts, as NAME:/container/path, in the order they were added."""
    return records.read(_app_file(app), RECORD, [])


def with_mount(app: str, text: str) -> list[str]:
    name, path = parse_mount(text)
    current = mounts(app)
    if any(existing.partition(":")[2] == path for existing in current):
        raise StorageError(f"{app} already has a mount at {path}")
    if not directory(name).is_dir():
        raise StorageError(f"storage {name} does not exist: `storage:ensure-directory {name}` first")
    if len(current) >= MAX_MOUNTS:
        raise StorageError(f"{app} has {MAX_MOUNTS} mounts already")
    return [*current, f"{name}:{path}"]


def without_mount(app: str, text: str) -> list[str]:
    name, path = parse_mount(text)
    current = mounts(app)
    if f"{name}:{path}" not in current:
        raise StorageError(f"{app} has no mount {name}:{path}")
    return [entry for entry in current if entry != f"{name}:{path}"]


def save_mounts(app: str, entries: list[str]) -> None:
    state.write_json(_app_file(app), records.validate(entries, RECORD, _app_file(app)))


def podman_flags(recorded: list[str]) -> list[str]:
    """`podman run` flags for the mounts a release recorded."""
    flags = []
    for entry in recorded:
        name, path = parse_mount(entry)
        flags.append(f"--volume={directory(name)}:{path}:U")
    return flags
