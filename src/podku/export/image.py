"""The exported image: the live release's image, plus the launcher layer for an fd 3 app
(units/export/listen.py at model.LAUNCHER), named in a registry and pushed there by podman
with podman's own credentials."""

import re
import shutil
import tempfile
from pathlib import Path

from podku import names
from podku.export.model import LAUNCHER, ExportInvalid
from podku.host import paths, podman, state, templates
from podku.releases import Release

PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
MAX_REGISTRY = 200


def registry(text: str) -> str:
    """HOST[:PORT][/PATH] of a registry, as podman names images in it (no scheme, no tag)."""
    where, _, path = (text or "").partition("/")
    host, colon, port = where.partition(":")
    problem = None if host else "no host"
    if host and names.host_name_problem(host):
        problem = f"host {host[:60]!r}: {names.host_name_problem(host)}"
    elif colon and not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        problem = f"port {port[:20]!r}: a number from 1 to 65535"
    elif path and not all(PATH_COMPONENT.fullmatch(part) for part in path.split("/")):
        problem = f"path {path[:60]!r}: lower-case letters and digits, '/' between components"
    elif len(text) > MAX_REGISTRY:
        problem = f"longer than {MAX_REGISTRY} characters"
    if problem:
        raise ExportInvalid(f"invalid registry {text[:80]!r}: {problem} (expected HOST[:PORT]/PATH)")
    return text


def name(release: Release, in_registry: str | None) -> str:
    """The exported image's name: REGISTRY/APP:rN, or APP:rN for a registry of the user's choosing."""
    return f"{in_registry + '/' if in_registry else ''}{release.app}:r{release.id}"


def image_command(release: Release) -> list[str] | None:
    """The image's own command, when the launcher must wrap it (an fd 3 app whose Procfile
    has no web line: a builder's image)."""
    if release.port is not None or release.processes.get("web"):
        return None
    return podman.engine.image_command(release.image)


def publish(release: Release, socket_activated: bool, target: str) -> None:
    """Make `target` from the release's image (with the launcher for an fd 3 app) and push
    it; the local name goes again after the push (podku's own image stays for rollbacks)."""
    try:
        if socket_activated:
            _build_with_launcher(release, target)
        else:
            podman.engine.tag_image(release.image, target)
        podman.engine.push(target)
    finally:
        podman.engine.remove_image(target)


def _build_with_launcher(release: Release, target: str) -> None:
    (paths.CACHE / "export").mkdir(parents=True, exist_ok=True)
    # a directory of its own: two exports of one app at once must not share it
    context = Path(tempfile.mkdtemp(prefix=f"{release.app}-r{release.id}-", dir=paths.CACHE / "export"))
    try:
        shutil.copy(templates.units_dir() / "export" / "listen.py", context / "listen.py")
        state.write_atomic(context / "Containerfile",
                         templates.render("export/Containerfile.j2", image=release.image, launcher=LAUNCHER))
        podman.engine.build_layer(str(context), target)
    finally:
        shutil.rmtree(context, ignore_errors=True)
