"""`podku run APP CMD`: a one-off container of the live release (its image and config).

It has the network of the app's own containers (runtime/network.py: outbound only, or none
with egress off), and it ends with the ssh session that started it: a dropped
connection removes the container."""

import os
import sys
import tempfile
import uuid

from podku import apps, naming, releases
from podku.errors import PodkuError
from podku.host import podman

LABEL = "podku.oneoff"


def run_command(app: apps.App, command: list[str]) -> int:
    if app.live_release is None:
        raise PodkuError(f"{app.name} has not been deployed yet: git push to it first")
    release = releases.load(app.name, app.live_release)
    name = naming.oneoff_container(app.name, uuid.uuid4().hex[:8])
    with tempfile.NamedTemporaryFile("w", prefix="podku-run-", suffix=".env") as env_file:
        os.fchmod(env_file.fileno(), 0o600)
        env_file.write(release.environment_file())
        env_file.flush()
        argv = ["--rm", "--interactive", f"--network={release.network}", "--name", name,
                "--label", f"podku.app={app.name}", "--label", f"{LABEL}={app.name}",
                "--env-file", env_file.name,
                *release.podman_flags()]
        if sys.stdin.isatty() and sys.stdout.isatty():
            argv.append("--tty")
        return podman.engine.run_interactive([*argv, release.image, *command],
                                             on_hangup=lambda: podman.engine.remove_containers([name]))


def remove_all(app_name: str) -> None:
    """Every one-off container of an app, gone (when the app is destroyed)."""
    podman.engine.remove_containers(podman.engine.labelled(LABEL, app_name))
