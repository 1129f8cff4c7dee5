"""`podku run APP CMD`: a one-off container of the live release (its image and config)."""

import os
import subprocess
import sys
import tempfile
import uuid

from podku import apps, releases
from podku.errors import PodkuError
from podku.run import child_env


def run(app: apps.App, command: list[str]) -> int:
    if app.live_release is None:
        raise PodkuError(f"{app.name} has not been deployed yet: git push to it first")
    release = releases.load(app.name, app.live_release)
    with tempfile.NamedTemporaryFile("w", prefix="podku-run-", suffix=".env") as env_file:
        os.fchmod(env_file.fileno(), 0o600)
        env_file.write(release.environment_file())
        env_file.flush()
        argv = ["podman", "run", "--rm", "--interactive", "--network=host",
                "--name", f"podku-{app.name}-run-{uuid.uuid4().hex[:8]}", "--label", f"podku.app={app.name}",
                "--env-file", env_file.name]
        if sys.stdin.isatty() and sys.stdout.isatty():
            argv.append("--tty")
        return subprocess.call([*argv, release.image, *command], env=child_env())
