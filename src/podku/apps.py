"""An app's record and config: creation, lookup and the per-app lock."""

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

from podku import health, names
from podku.errors import UsageError
from podku.host import paths, state

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


def exists(name: str) -> bool:
    return paths.AppPaths(name).record.exists()


def load(name: str) -> App:
    names.app_name(name)
    data = state.read_json(paths.AppPaths(name).record)
    if data is None:
        raise UsageError(f"app {name} does not exist")
    return App(**data)


def save(app: App) -> None:
    state.write_json(app.paths.record, asdict(app))


def all_names() -> list[str]:
    if not paths.APPS.is_dir():
        return []
    return sorted(p.name for p in paths.APPS.iterdir() if (p / "app.json").exists())


def config(name: str) -> dict[str, str]:
    return state.read_json(paths.AppPaths(name).config, {})


def save_config(name: str, values: dict[str, str]) -> None:
    state.write_json(paths.AppPaths(name).config, values)


@contextlib.contextmanager
def lock(name: str, must_exist: bool = True) -> Iterator[None]:
    """Everything that changes an app holds this."""
    if must_exist:
        load(name)  # a missing app: a clear error, and no lock file left behind
    with state.locked(paths.AppPaths(name).lock, name):
        yield


def remove_state(name: str) -> None:
    app_paths = paths.AppPaths(name)
    with contextlib.suppress(FileNotFoundError):
        app_paths.stable_socket.unlink()
    shutil.rmtree(app_paths.repo, ignore_errors=True)
    shutil.rmtree(app_paths.root, ignore_errors=True)
