"""builder:set and builder:set-global: the builder an app is pinned to, and the package
index and registry every build uses (passed as --build-arg values, never as file text)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from podku.errors import UsageError
from podku.host import paths, records, state
from podku.image.builders.base import shown

AUTO = "auto"
GLOBAL_KEYS = {"pip-index-url": "PIP_INDEX_URL", "npm-registry": "npm_config_registry"}
MAX_URL = 2048


def app_settings_path(app: str) -> Path:
    return paths.AppPaths(app).root / "builder.json"


def global_settings_path() -> Path:
    return paths.CONFIG / "builders.json"


def global_record() -> records.Check:
    return records.record({key: records.Field(records.validated(index_url)) for key in GLOBAL_KEYS})


def global_settings() -> dict[str, str]:
    return records.read(global_settings_path(), global_record(), {})


def global_key(key: str) -> str:
    if key not in GLOBAL_KEYS:
        raise UsageError(f"unknown builder setting {shown(key)}: use one of {', '.join(GLOBAL_KEYS)}")
    return key


def index_url(value: str) -> str:
    """An index or registry URL: http(s), printable ASCII without spaces, no credentials."""
    if len(value) > MAX_URL or not all(0x21 <= ord(ch) < 0x7f for ch in value):
        raise UsageError(f"invalid URL {shown(value)}: use printable characters without spaces")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid URL {shown(value)}: use an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UsageError("invalid URL: credentials in it would be kept in every image's history")
    return value


def set_global(key: str, value: str | None) -> None:
    global_key(key)
    current = global_settings()
    if value is None:
        current.pop(key, None)
    else:
        current[key] = index_url(value)
    state.write_json(global_settings_path(), records.validate(current, global_record(), global_settings_path()))


def build_args(keys: tuple[str, ...]) -> list[str]:
    """--build-arg for the global index settings a builder uses (values, never file text)."""
    current = global_settings()
    return [arg for key in keys if current.get(key)
            for arg in ("--build-arg", f"{GLOBAL_KEYS[key]}={index_url(current[key])}")]
