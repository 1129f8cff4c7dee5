"""What the service host tests share: the Postgres and Redis images (built once on this
machine by make-images.sh and imported into a test host, which has no route out), a host
prepared for builder apps with both, and asking an app through Caddy."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import builderapps

HERE = Path(__file__).resolve().parent
DOMAIN = "podku.localhost"
POSTGRES_IMAGE = "localhost/podku/postgres:15"
REDIS_IMAGE = "localhost/podku/redis:7"
# image -> its tarball's place in make-images.sh's output line
TARBALLS = {POSTGRES_IMAGE: 3, REDIS_IMAGE: 4}


def base_tar(image: str) -> Path:
    out = subprocess.run(["bash", str(HERE / "make-images.sh")], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.split()
    return Path(out[TARBALLS[image]])


def import_image(machine, image: str) -> None:
    """What `postgres:create` / `redis:create` would build with mmdebstrap on a host with a route out."""
    if machine.as_deploy_user(f"podman image exists {image}", check=False).returncode == 0:
        return
    target = machine.root / "var" / "tmp" / "podku-service-base.tar"
    shutil.copy(base_tar(image), target)
    target.chmod(0o644)
    machine.as_deploy_user(f"podman import --quiet - {image} < /var/tmp/podku-service-base.tar")
    target.unlink()


def import_postgres_image(machine) -> None:
    import_image(machine, POSTGRES_IMAGE)


def import_redis_image(machine) -> None:
    import_image(machine, REDIS_IMAGE)


@contextlib.contextmanager
def prepared(machine, *images: str) -> Iterator:
    """`machine` ready for builder apps (the package server) with these service images."""
    server = builderapps.prepare_host(machine)
    try:
        for image in images:
            import_image(machine, image)
        yield machine
    finally:
        server.close()


def get(machine, app: str, path: str) -> tuple[int, str]:
    return machine.http_get(f"{app}.{DOMAIN}", path)


def wait_for(machine, app: str, path: str, expected: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    answer = None
    while time.monotonic() < deadline:
        answer = get(machine, app, path)
        if answer == (200, expected):
            return
        time.sleep(0.5)
    raise AssertionError(f"{app}{path} answered {answer}, not {expected!r}")
