"""Looking inside a live app: `enter` (podman exec into one of the live release's
containers) and `ps:inspect` (podman's inspect of them, the app's config values redacted)."""

import sys

from podku import apps, processes, releases
from podku.errors import PodkuError, UsageError
from podku.host import podman
from podku.image import procfile
from podku.releases import Release

REDACTED = "[redacted]"
# Shorter config values are replaced only where they are an environment variable's value:
# replacing "1" or "on" everywhere in the inspect output would hide everything else.
MIN_REDACTED_ELSEWHERE = 6
MAX_INSTANCE = 1000
DEFAULT_COMMAND = ["/bin/sh"]


def live(app: apps.App) -> Release:
    if app.live_release is None:
        raise PodkuError(f"{app.name} has not been deployed yet: nothing runs to look into")
    return releases.load(app.name, app.live_release)


def container_name(release: Release, process_type: str, instance: int) -> str:
    """The container of one instance of a process type (process.service.j2, release.service.j2)."""
    if process_type == processes.WEB and instance == 1:
        return release.container
    return f"{release.container}-{process_type}-{instance}"


def target(app: apps.App, process_type: str, instance: str) -> str:
    """The running container `enter` goes into; a one-line error if there is none."""
    procfile.type_name(process_type)
    if not (instance.isascii() and instance.isdigit()) or not 1 <= int(instance) <= MAX_INSTANCE:
        raise UsageError(f"invalid instance {instance!r}: expected a number from 1 to {MAX_INSTANCE}")
    release = live(app)
    if process_type not in processes.types(release):
        raise UsageError(f"release {release.id} of {app.name} has no process type {process_type!r} "
                         f"(it has {', '.join(processes.types(release))})")
    name = container_name(release, process_type, int(instance))
    if name not in podman.engine.running(app.name, release.id):
        raise PodkuError(f"{process_type} {instance} of {app.name} is not running (ps:report shows what runs; "
                         "an idle app starts on its next request)")
    return name


def enter(app: apps.App, process_type: str, instance: str, command: list[str]) -> int:
    """podman exec into a live container, on this session's terminal when it has one."""
    name = target(app, process_type, instance)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return podman.engine.exec_interactive(name, command or DEFAULT_COMMAND, {}, tty)


def inspected(app: apps.App) -> list[dict]:
    """podman inspect of the live release's running containers, config values redacted."""
    release = live(app)
    found = podman.engine.inspect(sorted(podman.engine.running(app.name, release.id)))
    return [redact(item, release.config) for item in found]


def redact(value: dict, config: dict[str, str]) -> dict:
    """`value` with every config value replaced: an environment entry KEY=VALUE of a config
    key keeps its key, and longer values are replaced wherever else they appear."""
    secrets = sorted((v for v in config.values() if len(v) >= MIN_REDACTED_ELSEWHERE), key=len, reverse=True)

    def walk(item: object) -> object:
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        if isinstance(item, str):
            key, sep, _value = item.partition("=")
            if sep and key in config:
                return f"{key}={REDACTED}"
            for secret in secrets:
                item = item.replace(secret, REDACTED)
        return item
    redacted = walk(value)
    assert isinstance(redacted, dict)
    return redacted

