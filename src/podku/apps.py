"""An app's record and config: creation, lookup and the per-app lock."""

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from podku import health, names
from podku.errors import UsageError
from podku.host import paths, records, state
from podku.image import procfile

DEFAULT_KEEP_IMAGES = 5


@dataclass(frozen=True)
class App:
    name: str
    created: float = field(default_factory=time.time)
    live_release: int | None = None
    checks: dict = field(default_factory=lambda: health.Checks().to_dict())
    keep_images: int = DEFAULT_KEEP_IMAGES
    scale: dict[str, int] = field(default_factory=dict)  # ps:scale's settings (processes.py)
    stopped: bool = False  # ps:stop: reconcile keeps nothing of it running until ps:start

    @property
    def paths(self) -> paths.AppPaths:
        return paths.AppPaths(self.name)

    @property
    def health_checks(self) -> health.Checks:
        return health.Checks.from_dict(self.checks)

    def updated(self, **changes) -> "App":
        return replace(self, **changes)


MAX_SCALE = 10  # processes.MAX_SCALE
# ps:scale keeps what it set across Procfiles: more types than one Procfile may have.
MAX_SCALE_ENTRIES = 1000


def schema(name: str) -> records.Schema:
    """The app record's fields. `name` builds every path and unit name of the app: it must
    be the name of the directory the record is in."""
    return {
        "name": records.Field(records.every(records.APP_NAME, records.equal_to(name, "its directory's name")),
                              required=True),
        "created": records.Field(records.TIMESTAMP),
        "live_release": records.Field(records.optional(records.RELEASE_ID)),
        "checks": records.Field(health.RECORD),
        "keep_images": records.Field(records.integer(1, 100)),
        "scale": records.Field(records.mapping(records.validated(procfile.type_name),
                                               records.integer(0, MAX_SCALE), MAX_SCALE_ENTRIES)),
        "stopped": records.Field(records.boolean),
    }


def from_record(data: object, name: str, where: Path | str) -> App:
    return App(**records.parse(data, schema(name), where))


def exists(name: str) -> bool:
    return paths.AppPaths(names.app_name(name)).record.exists()


def load(name: str) -> App:
    record = paths.AppPaths(names.app_name(name)).record
    data = records.read_json(record)
    if data is None:
        raise UsageError(f"app {name} does not exist")
    return from_record(data, name, record)


def save(app: App) -> None:
    data = asdict(app)
    from_record(data, app.name, app.paths.record)  # never write what load would refuse
    state.write_json(app.paths.record, data)


def all_names() -> list[str]:
    """The apps: directories with a record, named as an app may be (anything else there is
    not podku's, and its name must not become a path or a unit name)."""
    if not paths.APPS.is_dir():
        return []
    return sorted(p.name for p in paths.APPS.iterdir() if _is_app_name(p.name) and (p / "app.json").exists())


def _is_app_name(name: str) -> bool:
    try:
        names.app_name(name)
    except UsageError:
        return False
    return True


def config(name: str) -> dict[str, str]:
    return records.read(paths.AppPaths(names.app_name(name)).config, records.environment, {})


def save_config(name: str, values: dict[str, str]) -> None:
    path = paths.AppPaths(names.app_name(name)).config
    state.write_json(path, records.validate(values, records.environment, path))


# --- host-wide config (config:set --global): every app gets it, an app's own value wins ---

GLOBAL_CONFIG_FILE = "config.json"  # in ~/.config/podku


def global_config_path() -> Path:
    return paths.CONFIG / GLOBAL_CONFIG_FILE


def global_config() -> dict[str, str]:
    return records.read(global_config_path(), records.environment, {})


def save_global_config(values: dict[str, str]) -> None:
    state.write_json(global_config_path(), records.validate(values, records.environment, global_config_path()))


@contextlib.contextmanager
def global_config_lock() -> Iterator[None]:
    with state.locked(paths.STATE / "global-config.lock", "the global config"):
        yield


def effective_config(name: str, own: dict[str, str] | None = None) -> dict[str, str]:
    """What the app's next release runs with: the global values, then its own (`own`, or its
    stored config) over them."""
    return {**global_config(), **(config(name) if own is None else own)}


@contextlib.contextmanager
def lock(name: str, must_exist: bool = True) -> Iterator[None]:
    """Everything that changes an app holds this."""
    if must_exist:
        load(name)  # a missing app: a clear error, and no lock file left behind
    with state.locked(paths.AppPaths(name).lock, name):
        if must_exist:
            load(name)  # destroyed or renamed while we waited for the lock
        yield


def remove_state(name: str) -> None:
    app_paths = paths.AppPaths(name)
    with contextlib.suppress(FileNotFoundError):
        app_paths.stable_socket.unlink()
    shutil.rmtree(app_paths.repo, ignore_errors=True)
    shutil.rmtree(app_paths.root, ignore_errors=True)
