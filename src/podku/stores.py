"""The settings podku keeps, in one table: each per-app and host-wide store's file, the
schema its load uses, and what it holds. backup:export carries them, backup:import checks
every staged one through its schema before anything is placed (a crafted field, a line for
a unit or a name that becomes a path, refuses the whole archive), and an app's stores live
in its state directory, so apps:destroy and a rename move or remove them with it. A new
store joins all of these by its line here."""

import json
from pathlib import Path
from typing import Any

from podku import appjson, apps, domains, names, postgres, proxyconf, redis, releases, services, sshkeys
from podku.errors import UsageError
from podku.host import records
from podku.image import builders, limits, source
from podku.runtime import idle, links, network, resources, storage

# An app's state directory (beside its record, app.json, and its releases/): its settings,
# and the marker backup:import writes itself (checked all the same).
APP_STORES: dict[str, tuple[records.Check, str]] = {
    "config.json": (records.environment, "the environment (config:set)"),
    "domains.json": (domains.RECORD, "the names it answers to (domains:add)"),
    "resources.json": (resources.RECORD, "memory, CPU and task limits (resource:limit)"),
    "storage.json": (storage.RECORD, "storage mounts (storage:mount)"),
    "idle.json": (idle.RECORD, "the idle timeout (ps:set idle-timeout)"),
    "links.json": (links.RECORD, "its links to services (postgres:link)"),
    "network.json": (network.RECORD, "outbound network (network:set egress)"),
    "builder.json": (builders.app_record(), "the builder it is pinned to (builder:set)"),
    "git.json": (source.RECORD, "its deploy branch and build directory (git:set)"),
    "proxy.json": (proxyconf.RECORD, "proxy settings (maintenance:, http-auth:, redirect:, proxy:set)"),
    "restored-live.json": (records.record({"live_release": records.Field(records.optional(records.RELEASE_ID))}),
                           "the release a backup:import deploys"),
}
# ~/.config/podku: the host's defaults and bounds (podku.json, the host's own domain and
# ports, never travels: a new host keeps its own).
HOST_STORES: dict[str, tuple[records.Check, str]] = {
    "limits.json": (limits.RECORD, "build and push bounds (by hand)"),
    "resources.json": (resources.RECORD, "default limits (resource:limit --global)"),
    "idle.json": (idle.RECORD, "the default idle timeout (ps:set --global)"),
    "network.json": (network.RECORD, "the default outbound network (network:set --global egress)"),
    "builders.json": (builders.global_record(), "package index and registry (builder:set-global)"),
    "config.json": (records.environment, "the global environment (config:set --global)"),
}

# Backing services: a backup carries each one's record and its dump (services/KIND/NAME.json
# and services/KIND/NAME.SUFFIX); the module makes, dumps and restores it.
SERVICE_KINDS: dict[str, tuple[Any, str]] = {
    "postgres": (postgres, ".dump"),  # pg_dump's custom format
    "redis": (redis, ".rdb"),  # an RDB snapshot
}


def check_staged(staging: Path, app_names: list[str]) -> None:
    """Raise RecordInvalid (a StateCorrupt) naming the member and the field of the first
    record podku would not have written."""
    for name in app_names:
        check_app(staging / "state" / name, name, staging)
    staged_services(staging)
    for name, (check, _what) in HOST_STORES.items():
        _check_file(staging / "config" / name, check, staging)
    keys = staging / "ssh" / "authorized_keys"
    if keys.is_file():
        sshkeys.checked_names(keys.read_text(errors="surrogateescape"), _member(keys, staging))


def check_app(directory: Path, app: str, staging: Path) -> None:
    for entry in sorted(directory.iterdir()):
        if _never_read(entry):
            continue
        if entry.name == "releases" and entry.is_dir():
            _check_releases(entry, app, staging)
        elif entry.name == "app.json" and entry.is_file():
            apps.from_record(records.read_json(entry), app, _member(entry, staging))
        elif entry.name in APP_STORES and entry.is_file():
            _check_file(entry, APP_STORES[entry.name][0], staging)
        else:
            raise records.RecordInvalid(f"{_member(entry, staging)} is not a record podku keeps")
    if not (directory / "app.json").is_file():
        raise records.RecordInvalid(f"{_member(directory, staging)} has no app.json")


def _check_releases(directory: Path, app: str, staging: Path) -> None:
    for entry in sorted(directory.iterdir()):
        if _never_read(entry):
            continue
        stem = entry.name.removesuffix(".json")
        if not (entry.is_file() and entry.name.endswith(".json") and releases.is_id(stem)):
            raise records.RecordInvalid(f"{_member(entry, staging)} is not a release record")
        where = _member(entry, staging)
        release = releases.from_record(records.read_json(entry), app, int(stem), where)
        try:  # what a deploy checked when the release was made, checked again
            appjson.parse(json.dumps(release.app_json))
        except UsageError as error:
            raise records.RecordInvalid(f"the state file {where} is invalid: field app_json: {error}") from None


def _never_read(entry: Path) -> bool:
    """The lock, and what a write cut short leaves (state.write_atomic's `.NAME.*`): files
    podku never reads."""
    return entry.is_file() and (entry.name == "lock" or entry.name.startswith("."))


def _check_file(path: Path, check: records.Check, staging: Path) -> None:
    if path.exists():
        records.validate(records.read_json(path), check, _member(path, staging))


def _member(path: Path, staging: Path) -> str:
    return f"{path.relative_to(staging)} (in the backup)"


def staged_services(staging: Path) -> list[tuple[str, str]]:
    """(kind, name) of every service in a staged backup, each checked: a known kind, a
    valid name, its record through its kind's schema, its dump beside it and starting as
    that kind's dumps do. Anything else under services/ refuses the archive."""
    root = staging / "services"
    found: list[tuple[str, str]] = []
    if not root.is_dir():
        return found
    for directory in sorted(root.iterdir()):
        if directory.name not in SERVICE_KINDS or not directory.is_dir():
            raise records.RecordInvalid(f"{_member(directory, staging)} is not a kind of service podku runs")
        found += [(directory.name, name) for name in _staged_kind(directory, staging)]
    return found


def _staged_kind(directory: Path, staging: Path) -> list[str]:
    module, suffix = SERVICE_KINDS[directory.name]
    stems: dict[str, set[str]] = {}
    for entry in sorted(directory.iterdir()):
        if not entry.is_file() or entry.suffix not in (".json", suffix) or not _is_service_name(entry.stem):
            raise records.RecordInvalid(f"{_member(entry, staging)} is not a service record or dump podku writes")
        stems.setdefault(entry.stem, set()).add(entry.suffix)
    for name, suffixes in stems.items():
        record, dump = directory / f"{name}.json", directory / f"{name}{suffix}"
        if suffixes != {".json", suffix}:
            raise records.RecordInvalid(f"{_member(record if '.json' not in suffixes else dump, staging)} "
                                        "is missing: a service comes with its record and its dump")
        module.from_record(records.read_json(record), name, _member(record, staging))
        try:
            services.require_magic(dump, module.DUMP_MAGIC, module.DUMP_WHAT)
        except UsageError:
            raise records.RecordInvalid(f"{_member(dump, staging)} is not {module.DUMP_WHAT}") from None
    return sorted(stems)


def _is_service_name(name: str) -> bool:
    try:
        names.service_name(name)
    except UsageError:
        return False
    return True
