"""The Procfile at a repository's root: `name: command` lines, parsed strictly.

Each command is split like a shell splits words (shlex) into an argument list that podman
runs as is: no shell ever sees it, so `$VAR`, `;`, `|` and `&&` mean nothing unless the app
writes `sh -c '...'` itself. `web` overrides the image's command, `release` runs once per
deploy before the swap, every other name is a process type of its own."""

import re
import shlex

from podku.errors import UsageError
from podku.host import templates

MAX_TYPES = 20  # process types in one Procfile, `release` included
MAX_LINE_CHARS = 4096
MAX_BYTES = 64 * 1024
MAX_ARGS = 256
TYPE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,29}")
LINE = re.compile(r"([^:\s]*)\s*:\s*(.*)")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
WEB = "web"
RELEASE = "release"

Processes = dict[str, list[str]]


class ProcfileInvalid(UsageError):
    pass


class UnknownProcessType(UsageError):
    pass


def parse(text: str) -> Processes:
    """{type: argv} in file order, or ProcfileInvalid naming the first bad line."""
    return {name: argv for name, _, argv in entries(text)}


def commands(text: str) -> dict[str, str]:
    """{type: command as written}, checked exactly as parse() checks it."""
    return {name: command for name, command, _ in entries(text)}


def entries(text: str) -> list[tuple[str, str, list[str]]]:
    """(type, command, argv) for each process line, in file order."""
    if len(text.encode(errors="replace")) > MAX_BYTES:
        raise ProcfileInvalid(f"Procfile is larger than {MAX_BYTES // 1024} KiB")
    found: list[tuple[str, str, list[str]]] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = parse_line(line, number)
        if any(entry[0] == name for name, _, _ in found):
            raise ProcfileInvalid(f"Procfile line {number}: process type {entry[0]!r} is defined twice")
        found.append(entry)
        if len(found) > MAX_TYPES:
            raise ProcfileInvalid(f"Procfile line {number}: more than {MAX_TYPES} process types")
    return found


def parse_line(line: str, number: int) -> tuple[str, str, list[str]]:
    where = f"Procfile line {number}"
    if len(line) > MAX_LINE_CHARS:
        raise ProcfileInvalid(f"{where}: longer than {MAX_LINE_CHARS} characters")
    if CONTROL.search(line):
        raise ProcfileInvalid(f"{where}: control characters are not allowed")
    found = LINE.fullmatch(line.strip())
    if found is None:
        raise ProcfileInvalid(f"{where}: expected `name: command`")
    name, command = type_name(found.group(1), where), found.group(2)
    try:
        argv = shlex.split(command, comments=False, posix=True)
    except ValueError as error:
        raise ProcfileInvalid(f"{where}: cannot split the command: {error}") from None
    if not argv:
        raise ProcfileInvalid(f"{where}: process type {name!r} has no command")
    if len(argv) > MAX_ARGS:
        raise ProcfileInvalid(f"{where}: more than {MAX_ARGS} arguments")
    return name, command, argv


def type_name(name: str, where: str = "process type") -> str:
    if not isinstance(name, str) or not TYPE_NAME.fullmatch(name):
        shown = name[:40] if isinstance(name, str) else name
        raise ProcfileInvalid(f"{where}: invalid process type name {shown!r}: expected "
                              f"a lowercase letter, then up to 29 of a-z, 0-9, _ and -")
    return name


def split_command(command: object, what: str) -> list[str]:
    """A command given as a string (app.json scripts and cron), as an argument list."""
    if not isinstance(command, str):
        raise UsageError(f"{what} must be a string, not {type(command).__name__}")
    if len(command) > MAX_LINE_CHARS:
        raise UsageError(f"{what} is longer than {MAX_LINE_CHARS} characters")
    if CONTROL.search(command) or "\n" in command:
        raise UsageError(f"{what} contains control characters")
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"{what} cannot be split into words: {error}") from None
    if not argv or len(argv) > MAX_ARGS:
        raise UsageError(f"{what} must have between 1 and {MAX_ARGS} words")
    return argv


def exec_args(argv: list[str]) -> templates.Quoted:
    """Arguments for a unit's ExecStart= line, each quoted so that systemd passes it on
    literally: no `%` specifier, `$` variable, `;` separator or escape is interpreted."""
    return templates.Quoted("".join(" " + systemd_quote(arg) for arg in argv))


def systemd_quote(arg: str) -> str:
    if CONTROL.search(arg) or "\n" in arg or "\t" in arg:
        raise ProcfileInvalid(f"invalid argument {arg[:40]!r}: control characters are not allowed")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'
