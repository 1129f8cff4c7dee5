"""What every service kind (postgres.py, redis.py) shares: its lock, its links to apps and
its removal. A link gives an app a config key holding the service's URL and mounts the
service's socket directory into the app's containers (runtime/links.py): a new release,
swapped in like config:set."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, TypeVar

from podku import apps, deploy, names, naming, output
from podku.errors import PodkuError, UsageError
from podku.host import paths, podman, records, state, systemd
from podku.host.commands import CommandFailed, last_line
from podku.runtime import links


class Named:
    """What a service's kind and name make of it: its paths, its unit, its container. A
    service record (postgres.Service, redis.Service) has `name` and its module's KIND."""

    KIND: ClassVar[str]
    name: str
    settings: dict[str, int]

    @property
    def paths(self) -> paths.ServicePaths:
        return paths.ServicePaths(self.KIND, self.name)

    @property
    def unit(self) -> str:
        return naming.service_unit(self.KIND, self.name)

    @property
    def container(self) -> str:
        return naming.service_container(self.KIND, self.name)


class ServiceError(PodkuError):
    pass


@contextlib.contextmanager
def lock(kind: str, name: str) -> Iterator[None]:
    """Everything that changes a service, or its links, holds this (before an app's lock)."""
    with state.locked(paths.ServicePaths(kind, names.service_name(name)).lock, f"{kind} {name}"):
        yield


# --- a service's record (0600: it holds its password) -------------------------------------

PASSWORD = r"[0-9a-f]{32,64}"


def record_schema(name: str, version: str) -> records.Schema:
    """The fields every service record has: its name (its file's), password, creation time
    and the server's version."""
    return {
        "name": records.Field(records.every(records.validated(names.service_name),
                                            records.equal_to(name, "the file's name")), True),
        "password": records.Field(records.text(64, PASSWORD, "32 to 64 hex digits"), True),
        "created": records.Field(records.TIMESTAMP, True),
        "version": records.Field(records.one_of(version)),
    }


def exists(kind: str, name: str) -> bool:
    return paths.ServicePaths(kind, names.service_name(name)).record.is_file()


def load_record(kind: str, name: str, parse: Callable[[object, str, Path], ServiceT]) -> ServiceT:
    """The service's record, parsed through its kind's schema (`parse`: the kind's
    from_record); a one-line error when there is none."""
    path = paths.ServicePaths(kind, names.service_name(name)).record
    data = records.read_json(path)
    if data is None:
        raise UsageError(f"{kind} service {name} does not exist: {kind}:create {name} first")
    return parse(data, name, path)


def save_record(service: ServiceT, parse: Callable[[object, str, Path], ServiceT]) -> None:
    """Write the record (0600: it holds the role's password), never what load would refuse."""
    data = dataclasses.asdict(service)  # type: ignore[call-overload]
    parse(data, service.name, service.paths.record)
    write_record(service.paths.record, data)


def write_record(path: Path, data: dict) -> None:
    """The caller has parsed `data` through its schema: never write what load would refuse."""
    state.write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)


def linked_apps(kind: str, name: str) -> list[str]:
    return [app for app in apps.all_names()
            if any(link["kind"] == kind and link["name"] == name for link in links.load(app))]


def refuse_destroy_while_linked(kind: str, name: str) -> None:
    linked = linked_apps(kind, name)
    if linked:
        raise UsageError(f"{kind} {name} is linked to {', '.join(linked)}: {kind}:unlink {name} {linked[0]} first")


def link(kind: str, name: str, app: str, url: Callable[[], str]) -> str:
    """Give `app` the service's URL (`url()` also says the service exists) and its socket.
    Returns the config key set."""
    with lock(kind, name):
        value = url()
        with apps.lock(app):
            current = apps.load(app)
            before = links.load(app)
            if any(entry["kind"] == kind and entry["name"] == name for entry in before):
                raise UsageError(f"{kind} {name} is already linked to {app}")
            config = apps.config(app)
            variable = link_variable(kind, name, before, config)
            after = [*before, {"kind": kind, "name": name, "variable": variable}]
            _apply(current, f"Link {kind} {name} as {variable}", before, after, {**config, variable: value})
    return variable


def link_variable(kind: str, name: str, existing: list[dict], config: dict[str, str]) -> str:
    """Dokku's name (DATABASE_URL, REDIS_URL) for an app's first link of a kind, unless its
    config has that key of its own; KIND_NAME_URL otherwise. A key the config has is refused."""
    first = naming.service_url_variable(kind, name, first=True)
    if first not in config and not any(entry["variable"] == first for entry in existing):
        return first
    variable = names.env_key(naming.service_url_variable(kind, name, first=False))
    if variable in config:
        raise UsageError(f"the app's config already has {variable}: config:unset it first")
    return variable


def unlink(kind: str, name: str, app: str) -> str:
    """Withdraw the URL and the socket from `app`: a new release. Returns the key removed."""
    with lock(kind, name):
        with apps.lock(app):
            current = apps.load(app)
            before = links.load(app)
            found = [entry for entry in before if entry["kind"] == kind and entry["name"] == name]
            if not found:
                raise UsageError(f"{kind} {name} is not linked to {app}")
            variable = found[0]["variable"]
            after = [entry for entry in before if entry not in found]
            config = {key: value for key, value in apps.config(app).items() if key != variable}
            _apply(current, f"Unlink {kind} {name} ({variable})", before, after, config)
    return variable


def _apply(app: apps.App, description: str, before: list[dict], after: list[dict], config: dict[str, str]) -> None:
    """Store the links, then release with the new config; a failed release puts the old
    links back (the live release still serves, config untouched)."""
    links.save(app.name, after)
    if app.live_release is not None:
        try:
            deploy.redeploy(app, description, config=config)
        except BaseException:
            links.save(app.name, before)
            raise
    apps.save_config(app.name, config)
    output.step(description)


# --- running one ----------------------------------------------------------------------------

def prepare_directories(kind: str, name: str) -> None:
    """Fresh data and socket directories (what an interrupted create left is removed)."""
    where = paths.ServicePaths(kind, name)
    if where.root.exists():
        output.warn(f"removing {where.root}, left by an earlier {kind}:create {name} that did not finish")
        podman.engine.unshare_remove(str(where.root))
    where.data.mkdir(parents=True, mode=0o700)
    where.sockets.mkdir(mode=0o755)


def wait_until(ready: Callable[[], bool], kind: str, name: str, unit: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            logs = systemd.journal_tail(unit)
            raise ServiceError(f"{kind} {name} did not accept connections within {timeout:.0f}s"
                               + (f": {last_line(logs)}" if logs else ""))
        sleep(0.3)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def remove(kind: str, name: str, containers: list[str]) -> None:
    """Stop and forget a service: its unit, containers, data and record."""
    unit = naming.service_unit(kind, name)
    where = paths.ServicePaths(kind, name)
    if systemd.load_state(unit) not in ("not-found", ""):
        systemd.stop(unit)
        systemd.reset_failed(unit)
    systemd.remove_unit(unit)
    systemd.reload()
    podman.engine.remove_containers(containers)
    if where.root.exists():
        podman.engine.unshare_remove(str(where.root))
    with contextlib.suppress(FileNotFoundError):
        where.record.unlink()


def all_names(kind: str) -> list[str]:
    directory = paths.service_records(kind)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.glob("*.json"):
        with contextlib.suppress(UsageError):
            found.append(names.service_name(entry.stem))
    return sorted(found)


def status(kind: str, name: str) -> str:
    return systemd.active_state(naming.service_unit(kind, name)) or "unknown"


def require_running(kind: str, name: str) -> None:
    state_ = status(kind, name)
    if state_ != "active":
        raise ServiceError(f"{kind} {name} is not running ({state_}): systemctl --user start "
                           f"{naming.service_unit(kind, name)}, or see its journal")


# --- dumps: KIND:export, KIND:import and backups ------------------------------------------

MAX_DUMP_BYTES = 8 * 1024 ** 3  # what one KIND:import reads (backup.MAX_MEMBER_BYTES alike)
CHUNK = 1024 * 1024


@contextlib.contextmanager
def staged_input(source: IO[bytes], magic: bytes, what: str, limit: int = MAX_DUMP_BYTES) -> Iterator[Path]:
    """`source` read whole into a private file (at most `limit` bytes) that starts with
    `magic`, before anything is changed; removed on leaving. The file is readable by a
    container's own user (its directory is the deploy user's alone)."""
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="service-import-", dir=paths.CACHE) as directory:
        target = Path(directory) / "dump"
        size = 0
        with open(target, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UsageError(f"refused: the input is larger than {limit} bytes")
                out.write(chunk)
        require_magic(target, magic, what)
        os.chmod(target, 0o644)
        yield target


def require_magic(path: Path, magic: bytes, what: str) -> None:
    with open(path, "rb") as handle:
        if handle.read(len(magic)) != magic:
            raise UsageError(f"refused: the input is not {what}; nothing was changed")


def dump_to(kind: str, name: str, dump: Callable[[IO[bytes]], None], target: Path) -> None:
    """A service's dump written to `target` (for a backup); a failure is one line naming it."""
    try:
        with open(target, "wb") as out:
            dump(out)
    except CommandFailed as error:
        raise ServiceError(f"{kind} {name} could not be dumped: {last_line(error.output, str(error))}") from None


# --- per-service settings (KIND:set NAME KEY VALUE) ------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One setting a service's server takes: the server's name for it, its default, its
    bounds and the unit its value is written in (sizes in megabytes)."""

    server: str
    default: int
    low: int
    high: int
    unit: str = ""

    def shown(self, value: int) -> str:
        return f"{value}{self.unit}"

    def parse(self, key: str, raw: str) -> int:
        text = raw.strip()
        if self.unit and text.lower().endswith(self.unit.lower()):
            text = text[: -len(self.unit)]
        if not (text.isascii() and text.isdigit()) or len(text) > 7 or not self.low <= int(text) <= self.high:
            raise UsageError(f"{key} takes a whole number from {self.shown(self.low)} to {self.shown(self.high)}, "
                             f"not {output.printable(raw[:40])!r}")
        return int(text)


def settings_check(table: dict[str, Setting]) -> records.Check:
    """A record's `settings`: only the table's keys, each within its bounds."""
    def check(value: object) -> dict[str, int]:
        data = records.an_object(value)
        checked = {}
        for key, item in data.items():
            if key not in table:
                raise records.Invalid(f"unknown setting {records.shown(key, 40)}")
            setting = table[key]
            try:
                checked[key] = records.integer(setting.low, setting.high)(item)
            except records.Invalid as error:
                raise error.inside(key) from None
        return checked
    return check


def setting_key(table: dict[str, Setting], kind: str, key: str) -> str:
    if key not in table:
        raise UsageError(f"{kind} services have no setting {output.printable(key[:40])!r}: "
                         f"{', '.join(table)}")
    return key


def effective(table: dict[str, Setting], settings: dict[str, int]) -> dict[str, int]:
    return {key: settings.get(key, setting.default) for key, setting in table.items()}


def describe(table: dict[str, Setting], settings: dict[str, int]) -> str:
    return ", ".join(f"{key} {table[key].shown(value)}" for key, value in effective(table, settings).items())


ServiceT = TypeVar("ServiceT", bound=Named)


def export(kind: str, name: str, out: IO[bytes], load: Callable[[str], ServiceT],
           dump: Callable[[ServiceT, IO[bytes]], None]) -> None:
    """postgres:export, redis:export: the running service's dump to `out` (a regular file is
    made private before a byte is written)."""
    with lock(kind, name):
        service = load(name)
        require_running(kind, name)
        state.make_private(out, "the dump's file")
        try:
            dump(service, out)
        except CommandFailed as error:
            raise ServiceError(f"{kind}:export {name} failed: {last_line(error.output, str(error))}") from None


def set_value(kind: str, table: dict[str, Setting], name: str, key: str, raw: str,
              load: Callable[[str], ServiceT], save: Callable[[ServiceT], None],
              install: Callable[[ServiceT], None], wait: Callable[[ServiceT], None]) -> int:
    """postgres:set, redis:set: a bounded value stored in the record (so in backups), put
    where the server reads it, applied by a restart."""
    setting_key(table, kind, key)
    value = table[key].parse(key, raw)
    with lock(kind, name):
        before = load(name)
        after = dataclasses.replace(before, settings={**before.settings, key: value})  # type: ignore[type-var]
        apply_settings(kind, before, after, save, install, wait)
    output.step(f"{kind} {name}: {key} {table[key].shown(value)} (restarted)")
    return value


def apply_settings(kind: str, before: ServiceT, after: ServiceT, save: Callable[[ServiceT], None],
                   install: Callable[[ServiceT], None], wait: Callable[[ServiceT], None]) -> None:
    """Store `after`, render what the server reads and restart it; a server that does not
    come up is given `before` back and restarted, and the change is refused."""
    save(after)
    install(after)
    try:
        systemd.restart(after.unit)
        wait(after)
    except PodkuError as error:
        save(before)
        install(before)
        systemd.restart(before.unit)
        raise ServiceError(f"{kind} {after.name} did not start with the new setting, the old one is back: "
                           f"{error}") from None
