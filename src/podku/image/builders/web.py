"""The web process of a Procfile: how the command a builder runs gets its traffic. gunicorn
and uvicorn take the release's socket (fd 3); anything else binds $PORT, bridged by podku."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from podku.image import procfile
from podku.image.builders.base import ProcfileError, shown

# A $PORT app listens here inside its own network namespace; podku bridges its socket to it.
APP_PORT = 5000
UVICORN_DEFAULT_PORT = 8000
SHELL_SYNTAX = re.compile(r"[`$|&;<>\\]")


@dataclass(frozen=True)
class WebProcess:
    argv: list[str]
    port: int | None  # None: it takes the release's socket (fd 3); else it binds $PORT


def command_argv(command: str, port: int = APP_PORT) -> list[str]:
    """A Procfile command as an argument list: no shell runs it, so $PORT is the only
    substitution and other shell syntax is refused."""
    text = re.sub(r"\$PORT\b|\$\{PORT\}", str(port), command)
    if SHELL_SYNTAX.search(text):
        raise ProcfileError(f"the Procfile command {shown(command, 80)} needs a shell "
                            "(podku runs it without one): only $PORT is substituted")
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise ProcfileError(f"cannot parse the Procfile command {shown(command, 80)}: {error}") from error
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
        raise ProcfileError(f"uvicorn --port {shown(port)} is not a port number")
    return WebProcess(argv, int(port))


def procfile_web(source: Path) -> str | None:
    path = source / "Procfile"
    if not path.is_file() or path.is_symlink():
        return None
    return procfile.commands(path.read_text(errors="replace")).get("web")
