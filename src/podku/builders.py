"""Builders: an app without a Containerfile gets one rendered from units/builders/.

Detection, in order: the user's Containerfile/Dockerfile, Python, Node, static. The rendered
file never enters the user's tree: it is written, content-addressed, under podku's cache and
passed to `podman build --file`, with the checkout as the context. Index URLs reach the build
as --build-arg values, never as text in the file or a shell."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podku import baseimages, names, output, paths, procfile, records, state, templates
from podku.errors import PodkuError, UsageError

CONTAINERFILE, PYTHON, NODE, STATIC = "containerfile", "python", "node", "static"
BUILDERS = (CONTAINERFILE, PYTHON, NODE, STATIC)
AUTO = "auto"
BUILD_FILES = ("Containerfile", "Dockerfile")
PYTHON_LOCKS = ("uv.lock", "poetry.lock")
# Every file detect() asks about.
MARKER_FILES = (*BUILD_FILES, "requirements.txt", "pyproject.toml", *PYTHON_LOCKS, "package.json",
                "public/index.html", ".static")
LOOKED_FOR = ("Containerfile or Dockerfile, requirements.txt, pyproject.toml with uv.lock or "
              "poetry.lock, package.json, public/index.html or a .static marker")
PYTHON_BASE, NODE_BASE = "localhost/podku/python:3.11", "localhost/podku/node:18"
# A $PORT app listens here inside its own network namespace; podku bridges its socket to it.
APP_PORT = 5000
UVICORN_DEFAULT_PORT = 8000
GLOBAL_KEYS = {"pip-index-url": "PIP_INDEX_URL", "npm-registry": "npm_config_registry"}
MAX_URL = 2048
SHELL_SYNTAX = re.compile(r"[`$|&;<>\\]")
STATIC_CONTEXT = "podku"  # the --build-context name of podku's own files (the static server)


class BuilderError(PodkuError):
    pass


class NoBuilder(BuilderError):
    pass


class ProcfileError(BuilderError):
    pass


@dataclass(frozen=True)
class WebProcess:
    argv: list[str]
    port: int | None  # None: it takes the release's socket (fd 3); else it binds $PORT


# --- detection ----------------------------------------------------------------------------

def detect(exists: Callable[[str], bool]) -> str:
    """The builder for a tree, given whether a repository-relative file exists in it."""
    if any(exists(name) for name in BUILD_FILES):
        return CONTAINERFILE
    if exists("requirements.txt") or (exists("pyproject.toml") and any(exists(n) for n in PYTHON_LOCKS)):
        return PYTHON
    if exists("package.json"):
        return NODE
    if exists("public/index.html") or exists(".static"):
        return STATIC
    raise NoBuilder(f"no builder matches this repository: podku looked for a {LOOKED_FOR}")


def in_tree(source: Path) -> Callable[[str], bool]:
    return lambda name: (source / name).is_file() and not (source / name).is_symlink()


def chosen(source: Path, app: str | None) -> str:
    """The builder a deploy uses: the one set by builder:set, or the one detected."""
    return (selected(app) if app else None) or detect(in_tree(source))


# --- per-app and global settings ----------------------------------------------------------

def app_settings_path(app: str) -> Path:
    return paths.AppPaths(app).root / "builder.json"


def global_settings_path() -> Path:
    return paths.CONFIG / "builders.json"


def app_record() -> records.Check:
    return records.record({"builder": records.Field(records.one_of(*BUILDERS))})


def global_record() -> records.Check:
    return records.record({key: records.Field(records.validated(index_url)) for key in GLOBAL_KEYS})


def selected(app: str) -> str | None:
    return records.read(app_settings_path(app), app_record(), {}).get("builder")


def builder_name(value: str) -> str:
    if value not in BUILDERS + (AUTO,):
        raise UsageError(f"unknown builder {_shown(value)}: use one of {', '.join(BUILDERS + (AUTO,))}")
    return value


def set_selected(app: str, value: str) -> None:
    builder_name(value)
    data = {} if value == AUTO else {"builder": value}
    state.write_json(app_settings_path(app), records.validate(data, app_record(), app_settings_path(app)))


def global_settings() -> dict[str, str]:
    return records.read(global_settings_path(), global_record(), {})


def global_key(key: str) -> str:
    if key not in GLOBAL_KEYS:
        raise UsageError(f"unknown builder setting {_shown(key)}: use one of {', '.join(GLOBAL_KEYS)}")
    return key


def index_url(value: str) -> str:
    """An index or registry URL: http(s), printable ASCII without spaces, no credentials."""
    if len(value) > MAX_URL or not all(0x21 <= ord(ch) < 0x7f for ch in value):
        raise UsageError(f"invalid URL {_shown(value)}: use printable characters without spaces")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid URL {_shown(value)}: use an http:// or https:// URL with a host")
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


def _shown(value: str, limit: int = 40) -> str:
    """A user's value in an error message: one line, bounded."""
    return repr(value[:limit] + ("..." if len(value) > limit else ""))


# --- Procfile and the web process ---------------------------------------------------------

def command_argv(command: str, port: int = APP_PORT) -> list[str]:
    """A Procfile command as an argument list: no shell runs it, so $PORT is the only
    substitution and other shell syntax is refused."""
    text = re.sub(r"\$PORT\b|\$\{PORT\}", str(port), command)
    if SHELL_SYNTAX.search(text):
        raise ProcfileError(f"the Procfile command {_shown(command, 80)} needs a shell "
                            "(podku runs it without one): only $PORT is substituted")
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise ProcfileError(f"cannot parse the Procfile command {_shown(command, 80)}: {error}") from error
    if not argv:
        raise ProcfileError("the Procfile's web command is empty")
    return argv


def _program(argv: list[str]) -> str:
    """gunicorn or uvicorn, also as `python -m NAME`; else the command's own name."""
    name = os.path.basename(argv[0])
    if re.fullmatch(r"python3?(\.[0-9]+)?", name) and argv[1:2] == ["-m"] and len(argv) > 2:
        return argv[2]
    return name


def _option(argv: list[str], *flags: str) -> str | None:
    """The value of the last of `flags` (as `--flag V`, `--flag=V` or `-fV`), if given."""
    value = None
    for index, word in enumerate(argv):
        for flag in flags:
            if word == flag and index + 1 < len(argv):
                value = argv[index + 1]
            elif word.startswith(flag + "=") or (len(flag) == 2 and word.startswith(flag) and word != flag):
                value = word[len(flag) + (word[len(flag):].startswith("=")):]
    return value


def _without_bind(argv: list[str]) -> list[str]:
    """gunicorn's --bind/-b dropped: the systemd socket wins over it anyway, and fd://3 as
    well would close that socket twice (EBADF)."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in ("-b", "--bind"):
            skip = True
        elif not (word.startswith("--bind=") or (word.startswith("-b") and not word.startswith("--"))):
            kept.append(word)
    return kept


def web_process(command: str) -> WebProcess:
    argv = command_argv(command)
    program = _program(argv)
    if program == "gunicorn":
        return WebProcess(_without_bind(argv), None)  # PID 1 with LISTEN_FDS: it takes fd 3 itself
    if program == "uvicorn":
        return _uvicorn(argv)
    return WebProcess(argv, APP_PORT)


def _uvicorn(argv: list[str]) -> WebProcess:
    if _option(argv, "--uds") is not None:
        raise ProcfileError("uvicorn --uds: podku hands uvicorn its socket; drop --uds")
    if _option(argv, "--fd") is not None:
        return WebProcess(argv, None)
    if _option(argv, "--host") is None and _option(argv, "--port") is None:
        return WebProcess(argv + ["--fd", "3"], None)
    port = _option(argv, "--port") or str(UVICORN_DEFAULT_PORT)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ProcfileError(f"uvicorn --port {_shown(port)} is not a port number")
    return WebProcess(argv, int(port))


def procfile_web(source: Path) -> str | None:
    path = source / "Procfile"
    if not path.is_file() or path.is_symlink():
        return None
    return procfile.commands(path.read_text(errors="replace")).get("web")


def node_default_command(source: Path) -> str:
    try:
        package = json.loads((source / "package.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BuilderError(f"package.json is not valid JSON: {error}") from error
    if not isinstance(package, dict):
        raise BuilderError("package.json is not a JSON object")
    if isinstance(package.get("scripts"), dict) and "start" in package["scripts"]:
        return "npm start"
    main = package.get("main")
    return shlex.join(["node", main if isinstance(main, str) else "server.js"])


# --- rendering ----------------------------------------------------------------------------

def render(builder: str, source: Path) -> str:
    """The Containerfile of a builder for the tree at `source`."""
    if builder == PYTHON:
        return _render_python(source)
    if builder == NODE:
        return _render_node(source)
    if builder == STATIC:
        return templates.render("builders/static.Containerfile.j2", base=PYTHON_BASE, context=STATIC_CONTEXT,
                                root="public" if (source / "public").is_dir() else ".")
    raise BuilderError(f"builder {builder} renders no Containerfile")


def _render_python(source: Path) -> str:
    command = procfile_web(source)
    if command is None:
        raise ProcfileError("a Python app needs a Procfile with a web: line (e.g. web: gunicorn app:app)")
    web = web_process(command)
    dependency_files, installer = _python_dependencies(source)
    return templates.render("builders/python.Containerfile.j2", base=PYTHON_BASE, web=web,
                            dependency_files=dependency_files, installer=installer,
                            pip_index=bool(global_settings().get("pip-index-url")), cmd=json.dumps(web.argv))


def _python_dependencies(source: Path) -> tuple[list[str], str]:
    """The files of the dependency layer and what installs them (pip, uv or poetry)."""
    if (source / "requirements.txt").is_file():
        return ["requirements.txt"], "pip"
    for lock in PYTHON_LOCKS:
        if (source / lock).is_file() and (source / "pyproject.toml").is_file():
            return ["pyproject.toml", lock], lock.removesuffix(".lock")
    raise BuilderError("the python builder needs requirements.txt, or pyproject.toml with uv.lock or poetry.lock")


def _render_node(source: Path) -> str:
    command = procfile_web(source) or node_default_command(source)
    web = WebProcess(command_argv(command), APP_PORT)
    has_lock = (source / "package-lock.json").is_file()
    return templates.render("builders/node.Containerfile.j2", base=NODE_BASE, web=web,
                            dependency_files=["package.json"] + (["package-lock.json"] if has_lock else []),
                            install="npm ci" if has_lock else "npm install",
                            registry=bool(global_settings().get("npm-registry")), cmd=json.dumps(web.argv))


def build_args(builder: str) -> list[str]:
    """--build-arg for the global index settings the builder uses (values, never file text)."""
    wanted = {PYTHON: ["pip-index-url"], NODE: ["npm-registry"]}.get(builder, [])
    settings = global_settings()
    return [arg for key in wanted if settings.get(key)
            for arg in ("--build-arg", f"{GLOBAL_KEYS[key]}={index_url(settings[key])}")]


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
    builder = chosen(source, app)
    if builder == CONTAINERFILE:
        found = next((source / n for n in BUILD_FILES if (source / n).is_file()), None)
        if found is None:
            raise BuilderError("the containerfile builder is set, but there is no Containerfile or Dockerfile")
        return Prepared(builder, ["--file", str(found)])
    output.detail(f"Using the {builder} builder (set by builder:set)" if forced else
                  f"No Containerfile: using the {builder} builder")
    baseimages.ensure(NODE if builder == NODE else PYTHON)
    argv = ["--file", str(write_rendered(render(builder, source))), *build_args(builder)]
    if builder == STATIC:
        argv += ["--build-context", f"{STATIC_CONTEXT}={templates.units_dir() / 'builders'}"]
    return Prepared(builder, argv)


def app_from_tag(tag: str) -> str | None:
    """The app of a release image tag (localhost/podku/APP:rN)."""
    match = re.fullmatch(r"localhost/podku/([a-z0-9-]+):r[0-9]+", tag)
    return match[1] if match else None
