"""Per-app resource limits (memory, CPUs, tasks), applied as podman flags on every release.

An app's own limits (`resource:limit APP`) override the host-wide defaults
(`resource:limit --global`, default memory 256M); both are plain JSON. A release records
the limits in force when it was made, and its unit passes them to `podman run`.

Rootless podman can enforce limits only on cgroup v2 with the memory, cpu and pids
controllers delegated to the user manager (install.sh asks systemd for that). Elsewhere
podman accepts the flags, warns and ignores them: `enforcement()` says so, in words."""

import functools
import math
import os
import re
from dataclasses import asdict, dataclass

from podku.errors import UsageError
from podku.host import paths, podman, records, state

DEFAULT_MEMORY = 256 * 1024 ** 2
MIN_MEMORY = 6 * 1024 ** 2  # podman refuses less
MAX_PIDS = 4_194_304
UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
SIZE = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,3}))?([KMGT]?)B?", re.IGNORECASE)
NEEDED_CONTROLLERS = ("memory", "pids", "cpu")
FILE_NAME = "resources.json"


class ResourceError(UsageError):
    pass


@dataclass(frozen=True)
class ContainerLimits:
    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int | None = None

    def merged_over(self, base: "ContainerLimits") -> "ContainerLimits":
        return ContainerLimits(*(mine if mine is not None else theirs
                        for mine, theirs in zip(astuple(self), astuple(base), strict=True)))

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


def astuple(limits: ContainerLimits) -> tuple:
    return (limits.memory, limits.cpus, limits.pids)


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str) -> int:
    """A memory size like 512M, 1G, 1.5G or 300000000 (bytes); at least 6M, at most 4x RAM."""
    match = SIZE.fullmatch(text or "")
    if not match:
        raise ResourceError(f"invalid memory size {text!r}: use a number with K, M, G or T, like 512M")
    whole, fraction, unit = match.groups()
    value = (int(whole) + (int(fraction) / 10 ** len(fraction) if fraction else 0)) * UNITS[unit.upper()]
    size = int(value)
    if size < MIN_MEMORY:
        raise ResourceError(f"invalid memory size {text!r}: at least 6M")
    if size > 4 * host_memory():
        raise ResourceError(f"invalid memory size {text!r}: more than four times this host's memory")
    return size


def parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,3})?", text or "") or not 0.01 <= value <= (os.cpu_count() or 1):
        raise ResourceError(f"invalid CPU count {text!r}: a number from 0.01 to {os.cpu_count() or 1}")
    return value


def parse_pids(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", text or "") or not 16 <= int(text) <= MAX_PIDS:
        raise ResourceError(f"invalid task limit {text!r}: a whole number from 16 to {MAX_PIDS}")
    return int(text)


def human_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)


# --- stored limits ---------------------------------------------------------------------------

def _global_file():
    return paths.CONFIG / FILE_NAME


def _app_file(app: str):
    return paths.AppPaths(app).root / FILE_NAME


MAX_MEMORY = 2 ** 50  # parse_size allows four times the host's memory: a record is read anywhere
MAX_CPUS = 1024
# resources.json (an app's and the host's) and a release's `resources`: null means unset.
RECORD = records.record({
    "memory": records.Field(records.optional(records.integer(MIN_MEMORY, MAX_MEMORY))),
    "cpus": records.Field(records.optional(records.number(0.01, MAX_CPUS))),
    "pids": records.Field(records.optional(records.integer(16, MAX_PIDS))),
})


def _read(path) -> ContainerLimits:
    data = records.read(path, RECORD, {})
    return ContainerLimits(**{key: value for key, value in data.items() if value is not None})


def global_defaults() -> ContainerLimits:
    stored = _read(_global_file())
    return stored if stored.memory is not None else ContainerLimits(DEFAULT_MEMORY, stored.cpus, stored.pids)


def app_limits(app: str) -> ContainerLimits:
    return _read(_app_file(app))


def effective(app: str) -> dict:
    """What a new release of `app` gets: its own limits over the host's defaults."""
    return app_limits(app).merged_over(global_defaults()).to_dict()


def save_app(app: str, limits: ContainerLimits) -> None:
    _save(_app_file(app), limits)


def save_global(limits: ContainerLimits) -> None:
    _save(_global_file(), limits)


def _save(path, limits: ContainerLimits) -> None:
    state.write_json(path, records.validate(limits.to_dict(), RECORD, path))


def clear_app(app: str) -> None:
    _app_file(app).unlink(missing_ok=True)


# --- in the unit ------------------------------------------------------------------------

def podman_flags(recorded: dict) -> list[str]:
    """`podman run` flags for the limits a release recorded."""
    flags = []
    if recorded.get("memory"):
        flags += [f"--memory={int(recorded['memory'])}", f"--memory-swap={int(recorded['memory'])}"]
    if recorded.get("cpus"):
        flags.append(f"--cpus={float(recorded['cpus'])}")
    if recorded.get("pids"):
        flags.append(f"--pids-limit={int(recorded['pids'])}")
    return flags


@functools.cache
def enforcement() -> str | None:
    """None when this host enforces rootless limits, else why it does not."""
    version, controllers = podman.engine.cgroups()
    return enforcement_from(f"{version} {controllers}" if version else "")


def enforcement_from(podman_info: str) -> str | None:
    words = podman_info.replace("[", " ").replace("]", " ").split()
    if not words:
        return "podman could not say which cgroups this host has"
    if words[0] != "v2":
        return ("cgroup v1 (or hybrid): rootless podman ignores resource limits here; "
                "a cgroup v2 host with controllers delegated to the user manager enforces them")
    missing = [name for name in NEEDED_CONTROLLERS if name not in words[1:]]
    if missing:
        return (f"the controllers {', '.join(missing)} are not delegated to the deploy user's "
                "systemd (install.sh writes /etc/systemd/system/user@.service.d/delegate.conf; reboot)")
    return None
