"""builder:set, builder:report, builder:set-global and base:build (registered on podku's CLI)."""

from __future__ import annotations

import click

from podku import apps, output
from podku.cli.base import app_argument, command
from podku.errors import UsageError
from podku.image import baseimages, builders, gitrepo


@command("builder:set")
@app_argument
@click.argument("name", callback=lambda _c, _p, value: builders.builder_name(value))
def builder_set(app: str, name: str) -> None:
    """Force a builder (containerfile, python, node, static), or `auto` to detect again."""
    with apps.lock(app):
        builders.set_selected(app, name)
    output.step(f"{app} builds with {'detection' if name == builders.AUTO else 'the ' + name + ' builder'}")


@command("builder:report")
@app_argument
def builder_report(app: str) -> None:
    """The app's selected and detected builder, and the host's index settings."""
    current = apps.load(app)
    output.echo(f"=====> {app} builder information")
    output.field("Builder selected", builders.selected(app) or "")
    output.field("Builder detected", _detected(current))
    for key, value in sorted(builders.global_settings().items()):
        output.field("Builder global " + key, value)


def _detected(app: apps.App) -> str:
    """What a push of the branch's head would use ('' before the first push)."""
    present = gitrepo.present_at_head(app.paths.repo, builders.MARKER_FILES)
    if present is None:
        return ""
    try:
        return builders.detect(present.__contains__)
    except builders.NoBuilder:
        return "none"


@command("builder:set-global")
@click.argument("key", callback=lambda _c, _p, value: builders.global_key(value))
@click.argument("url", required=False,
                callback=lambda _c, _p, value: value if value is None else builders.index_url(value))
@click.option("--unset", is_flag=True, help="Back to the default index or registry.")
def builder_set_global(key: str, url: str | None, unset: bool) -> None:
    """Set pip-index-url or npm-registry for every build (--unset: back to the default)."""
    if (url is None) == (not unset):
        raise UsageError(f"builder:set-global {key} takes a URL or --unset")
    builders.set_global(key, url)
    output.step(f"{key} {'set to ' + url if url else 'unset: builds use the default'}")


@command("base:build")
@click.argument("name", default="all", type=click.Choice([*(base.name for base in builders.bases()), "all"]))
@click.option("--mirror", default=None, help="A Debian mirror URL (http or https).")
def base_build(name: str, mirror: str | None) -> None:
    """Build a builder's base image from Debian packages (rootless mmdebstrap)."""
    mirror = builders.index_url(mirror) if mirror else baseimages.DEFAULT_MIRROR
    for base in builders.bases(name):
        baseimages.build(base, mirror)
