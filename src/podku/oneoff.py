"""`podku run APP CMD`: a one-off container of the live release (its image and config).

It has no network, like the app's own containers, and it ends with the ssh session that
started it: a dropped connection removes the container."""

import os
import sys
import tempfile
import uuid

from podku import apps, naming, releases
from podku.errors import PodkuError
from podku.host.commands import interactive, run

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
        argv = ["podman", "run", "--rm", "--interactive", "--network=none", "--name", name,
                "--label", f"podku.app={app.name}", "--label", f"{LABEL}={app.name}",
                "--env-file", env_file.name,
                *release.podman_flags()]
        if sys.stdin.isatty() and sys.stdout.isatty():
            argv.append("--tty")
        return interactive([*argv, release.image, *command], on_hangup=lambda: _remove([name]))


def remove_all(app_name: str) -> None:
    """Every one-off container of an app, gone (when the app is destroyed)."""
    found = run(["podman", "ps", "--all", "--quiet", "--filter", f"label={LABEL}={app_name}"], check=False)
    _remove(found.stdout.split() if found.returncode == 0 else [])


def _remove(containers: list[str]) -> None:
    if containers:
        run(["podman", "rm", "--force", "--time", "0", *containers], check=False)
