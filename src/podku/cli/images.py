"""Deploying images built elsewhere: git:load-image (an archive on stdin) and git:from-image
(a registry image). Registered on the group of podku.cli.base."""

import sys

import click

from podku import apps, deploy, names, naming
from podku.cli.base import app_argument
from podku.cli.ps import command
from podku.errors import UsageError
from podku.image import prebuilt


@command("git:load-image")
@app_argument
def git_load_image(app: str) -> None:
    """Deploy a `podman save`/`docker save` archive sent on stdin (APP < image.tar)."""
    if sys.stdin.isatty():
        raise UsageError("git:load-image reads the image archive on stdin: "
                         "podman save IMAGE | ssh ... git:load-image APP")
    with apps.lock(app):
        current = apps.load(app)
        deploy.deploy_image(current, lambda tag, release_id: prebuilt.load_archive(
            sys.stdin.buffer, tag, current.name, current.paths.build_dir(release_id)), "Load image")


@command("git:from-image")
@app_argument
@click.argument("image", callback=lambda _c, _p, value: names.image_reference(value))
def git_from_image(app: str, image: str) -> None:
    """Deploy an image pulled from a registry (REGISTRY/NAME[:TAG][@sha256:DIGEST])."""
    with apps.lock(app):
        current = apps.load(app)
        deploy.deploy_image(current, lambda tag, release_id: prebuilt.pull_reference(
            image, tag, naming.build_unit(current.name, release_id)), "Pull image")
