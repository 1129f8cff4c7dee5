"""Renders the templates in units/ (systemd units, the Caddy config, the git hook).

No rendered value may carry a line break or a control character: in a unit a line break
starts a directive of the value's choosing (`ExecStartPre=`), in a hook a command. Values
rendered into a systemd unit have `%` doubled, so that systemd never expands a specifier
(`%h`) a value happens to hold; a value already quoted for an Exec line (`Quoted`, see
procfile.exec_args) is passed as it is. Caddy's config gets its strings through `tojson`."""

import functools
import re
import sys
from pathlib import Path
from typing import Any

import jinja2


# The templates are installed with the package: pyproject's data-files put the repository's
# units/ under <prefix>/share/podku, beside the environment podku runs from (the deploy
# user's venv). The unit tests, run from a checkout, point this at the checkout's units/.
def installed_dir() -> Path:
    return Path(sys.prefix) / "share" / "podku" / "units"


UNITS_DIR = installed_dir()
SYSTEMD_SUFFIXES = (".service.j2", ".socket.j2", ".timer.j2")
JSON_SUFFIX = ".json.j2"
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
# A JSON template's own macros render many lines: there only characters JSON never
# writes raw (tojson escapes them) are refused.
CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Words an Exec line may carry unquoted; anything else is quoted (systemd_word).
PLAIN_WORD = re.compile(r"[A-Za-z0-9/._:=@+,%-]+")


class UnsafeValue(ValueError):
    """A value that would change the meaning of the file it is rendered into."""


class Quoted(str):
    """Text already quoted for a systemd Exec line (its `%` and `$` doubled)."""


def units_dir() -> Path:
    if not UNITS_DIR.is_dir():
        raise FileNotFoundError(f"podku's templates are not installed at {UNITS_DIR}: reinstall podku (install.sh)")
    return UNITS_DIR


@jinja2.pass_context
def _finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    """Every `{{ value }}` of every template passes here."""
    name = context.name or ""
    rendered = "" if value is None else str(value)
    bad = (CONTROL_BUT_LINES if name.endswith(JSON_SUFFIX) else CONTROL).search(rendered)
    if bad:
        raise UnsafeValue(f"refused to render {name}: a value holds the control character "
                          f"\\x{ord(bad.group()) & 0xff:02x}")
    if name.endswith(SYSTEMD_SUFFIXES) and not isinstance(value, Quoted):
        return rendered.replace("%", "%%")
    return value


def systemd_word(value: Any) -> Quoted:
    """One word of an Exec line, quoted when it holds anything but plain path characters
    (a home directory with a space); `%` is doubled here, so finalize leaves it alone."""
    text = str(value)
    if PLAIN_WORD.fullmatch(text):
        return Quoted(text.replace("%", "%%"))
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return Quoted(f'"{escaped}"')


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(units_dir()),
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     autoescape=False, finalize=_finalize)
    environment.filters["word"] = systemd_word
    return environment


def render(template: str, **values) -> str:
    return _environment().get_template(template).render(**values)
