"""Builders: an app without a Containerfile gets one rendered from units/builders/.

Every module of this package that defines BUILDER is a builder; detection tries them by
their `order` (the tree's own Containerfile first). A new builder is its module here and its
template in units/builders/. The rendered file never enters the user's tree: it is written,
content-addressed, under podku's cache and passed to `podman build --file`, with the
checkout as the context. Index URLs reach the build as --build-arg values."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podku import names, output
from podku.errors import UsageError
from podku.host import paths, records, state
from podku.image import baseimages
from podku.image.baseimages import Base
from podku.image.builders import containerfile, settings
from podku.image.builders.base import Builder, BuilderError, Exists, NoBuilder, ProcfileError, shown
from podku.image.builders.web import WebProcess, command_argv, procfile_web, web_process

__all__ = ["AUTO", "Builder", "BuilderError", "NoBuilder", "ProcfileError", "WebProcess", "command_argv",
           "procfile_web", "web_process"]

REGISTRY: tuple[Builder, ...] = tuple(sorted(
    (module.BUILDER for module in (importlib.import_module(f"{__name__}.{info.name}")
                                   for info in pkgutil.iter_modules(__path__)) if hasattr(module, "BUILDER")),
    key=lambda builder: builder.order))
BY_NAME = {builder.name: builder for builder in REGISTRY}
BUILDERS = tuple(BY_NAME)
CONTAINERFILE = containerfile.BUILDER.name
AUTO = settings.AUTO
# Every file detect() asks about.
MARKER_FILES = tuple(marker for builder in REGISTRY for marker in builder.markers)

# builder:set and builder:set-global, re-exported for the commands
app_settings_path, global_settings, global_key = settings.app_settings_path, settings.global_settings, \
    settings.global_key
index_url, set_global, global_record = settings.index_url, settings.set_global, settings.global_record


def bases(name: str = "all") -> list[Base]:
    """The base images the builders build on (`all`, or one by name)."""
    found = {builder.base.name: builder.base for builder in REGISTRY if builder.base}
    if name != "all" and name not in found:
        raise UsageError(f"unknown base image {shown(name)}: use one of {', '.join(found)} or all")
    return list(found.values()) if name == "all" else [found[name]]


# --- detection ----------------------------------------------------------------------------

def detect(exists: Exists) -> str:
    """The builder for a tree, given whether a repository-relative file exists in it."""
    for builder in REGISTRY:
        if builder.matches(exists):
            return builder.name
    looked_for = ", ".join(builder.looked_for for builder in REGISTRY)
    raise NoBuilder(f"no builder matches this repository: podku looked for a {looked_for}")


def in_tree(source: Path) -> Callable[[str], bool]:
    return lambda name: (source / name).is_file() and not (source / name).is_symlink()


def chosen(source: Path, app: str | None) -> str:
    """The builder a deploy uses: the one set by builder:set, or the one detected."""
    return (selected(app) if app else None) or detect(in_tree(source))


def builder_name(value: str) -> str:
    if value not in BUILDERS + (AUTO,):
        raise UsageError(f"unknown builder {shown(value)}: use one of {', '.join(BUILDERS + (AUTO,))}")
    return value


def app_record() -> records.Check:
    return records.record({"builder": records.Field(records.one_of(*BUILDERS))})


def selected(app: str) -> str | None:
    return records.read(app_settings_path(app), app_record(), {}).get("builder")


def set_selected(app: str, value: str) -> None:
    builder_name(value)
    data = {} if value == AUTO else {"builder": value}
    state.write_json(app_settings_path(app), records.validate(data, app_record(), app_settings_path(app)))


# --- rendering ----------------------------------------------------------------------------

def render(builder: str, source: Path) -> str:
    """The Containerfile of a builder for the tree at `source`."""
    found = BY_NAME.get(builder)
    if found is None or found.render is None:
        raise BuilderError(f"builder {builder} renders no Containerfile")
    return found.render(source)


def build_args(builder: str) -> list[str]:
    """--build-arg for the global index settings the builder uses (values, never file text)."""
    return settings.build_args(BY_NAME[builder].index_keys)


def write_rendered(text: str) -> Path:
    """Rendered files live under podku's cache, named by their content: never in the tree."""
    path = paths.CACHE / "builders" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.Containerfile"
    if not path.is_file():
        state.write_atomic(path, text)
    return path


@dataclass(frozen=True)
class Prepared:
    builder: str
    build_args: list[str]  # for `podman build`: --file and the builder's --build-arg values


def prepare(source: Path, app: str | None = None) -> Prepared:
    """The builder for the checkout at `source`, and the `podman build` arguments it needs."""
    forced = selected(names.app_name(app)) if app else None
    builder = BY_NAME[chosen(source, app)]
    if builder.render is None:
        found = next((source / n for n in containerfile.BUILD_FILES if (source / n).is_file()), None)
        if found is None:
            raise BuilderError("the containerfile builder is set, but there is no Containerfile or Dockerfile")
        return Prepared(builder.name, ["--file", str(found)])
    output.detail(f"Using the {builder.name} builder (set by builder:set)" if forced else
                  f"No Containerfile: using the {builder.name} builder")
    if builder.base:
        baseimages.ensure(builder.base)
    argv = ["--file", str(write_rendered(builder.render(source))), *build_args(builder.name),
            *builder.context_args(source)]
    return Prepared(builder.name, argv)
