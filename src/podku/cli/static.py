"""static:set, static:unset, static:report (registered on podku's CLI): a static site served
by Caddy from the live release's files (staticsite.py); its fallback page is a proxy setting,
a file change Caddy sees on its next request (proxyconf.py), never a config load."""

import dataclasses

import click

from podku import apps, output, proxyconf, releases, staticsite
from podku.cli.base import app_argument, command

STATIC_KEYS = ("fallback",)


def _key(key: str) -> str:
    if key not in STATIC_KEYS:
        raise proxyconf.ProxySettingError(f"unknown setting {key[:40]!r}: static:set knows {', '.join(STATIC_KEYS)}")
    return key


@command("static:set")
@app_argument
@click.argument("key")
@click.argument("value")
def static_set(app: str, key: str, value: str) -> None:
    """Set fallback PATH: the page answered for a path with no file (an SPA's /index.html)."""
    apps.load(app)
    _key(key)
    fallback = proxyconf.parse_fallback(value)
    with apps.lock(app):
        current = proxyconf.load(app)
        proxyconf.change(app, dataclasses.replace(current, static_fallback=fallback))
        live = _live(apps.load(app))
    output.step(f"fallback for {app}: {fallback}")
    if live is None or not live.static:
        output.warn(f"{app} is not a static site now: the fallback applies once a static release is live")
    elif not (staticsite.tree(app, live.id) / fallback.lstrip("/")).is_file():
        output.warn(f"release {live.id} has no {fallback.lstrip('/')}: such paths answer 404 until a release has it")


def _live(current: apps.App) -> releases.Release | None:
    return releases.load(current.name, current.live_release) if current.live_release is not None else None


@command("static:unset")
@app_argument
@click.argument("key")
def static_unset(app: str, key: str) -> None:
    """Remove the fallback: a path with no file answers 404."""
    apps.load(app)
    _key(key)
    with apps.lock(app):
        current = proxyconf.load(app)
        proxyconf.change(app, dataclasses.replace(current, static_fallback=None))
    output.step(f"fallback for {app}: none (404)")


@command("static:report")
@app_argument
def static_report(app: str) -> None:
    """Whether Caddy serves the app's files, from which release, how many, and the fallback."""
    current = apps.load(app)
    fallback = proxyconf.load(app).static_fallback
    output.echo(f"=====> {app} static site")
    live = _live(current)
    if live is None or not live.static:
        output.field("Static site", "no (a container serves the app)" if live else "no (not deployed)")
    else:
        files, size = staticsite.usage(live)
        output.field("Static site", "stopped (ps:start serves it again)" if current.stopped else "yes, served by Caddy")
        output.field("Release", live.id)
        output.field("Files", f"{files} ({size} bytes)")
    output.field("Fallback", fallback or "- (404)")
