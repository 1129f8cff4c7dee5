"""Renders the templates in units/ (systemd units, the Caddy config, the git hook)."""

import functools
import sys
from pathlib import Path

import jinja2

# Installed: pyproject's data-files put units/ under <prefix>/share/podku. From a source
# tree (tests, development): the repository's own units/.
CANDIDATE_DIRS = (Path(sys.prefix) / "share" / "podku" / "units",
                  Path(__file__).resolve().parents[3] / "units")


def units_dir() -> Path:
    for candidate in CANDIDATE_DIRS:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("podku's units/ templates are not installed")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(units_dir()),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def render(template: str, **values) -> str:
    return _environment().get_template(template).render(**values)
