"""gunicorn apps get podku's settings file (units/runtime/gunicorn.conf.py), which reads the
rest of a request body the app ignored before gunicorn closes the connection: without it,
Caddy answers 502 to some such POSTs instead of passing on the app's own answer."""

from collections.abc import Mapping
from pathlib import Path

from podku.host import paths, state, templates

ENV = "GUNICORN_CMD_ARGS"
CONTAINER_PATH = "/run/podku/gunicorn.conf.py"


def host_copy() -> Path:
    """A copy at a path that survives reinstalls of the venv, for containers to mount."""
    return paths.DATA / "runtime" / "gunicorn.conf.py"


def install() -> None:
    shipped = templates.units_dir() / "runtime" / "gunicorn.conf.py"
    state.write_if_changed(host_copy(), shipped.read_text())


def podman_flags(config: Mapping[str, str]) -> list[str]:
    """The file and GUNICORN_CMD_ARGS pointing at it, unless the app sets that itself
    (an app whose command line passes -c/--config loads only its own file)."""
    if ENV in config:
        return []
    return [f"--volume={host_copy()}:{CONTAINER_PATH}:ro", f"--env={ENV}=--config={CONTAINER_PATH}"]
