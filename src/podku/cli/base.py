"""The podku command group, its decorators, and what several namespaces' commands share.
Every file of this package registers its commands on `cli`; main.py imports them all and
runs the group."""

from collections.abc import Callable

import click

from podku import __version__, apps, deploy, names, output
from podku.errors import UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="podku")
def cli() -> None:
    """podku: git push to deploy rootless Podman apps behind Caddy."""


def command(name: str, hidden: bool = False, **options):
    return cli.command(name, hidden=hidden, **options)


def app_argument(function):
    return click.argument("app", callback=lambda _ctx, _param, value: names.app_name(value))(function)


# --- settings that make a release (resource:limit, ps:set, network:set, storage:mount) ---

def apply_setting(app: str, description: str, save: Callable[[], None], restore: Callable[[], None]) -> None:
    """Store a runtime setting, then make a release that uses it; a failed release puts the
    old setting back (the old release still serves)."""
    with apps.lock(app):
        current = apps.load(app)
        save()
        if current.live_release is not None:
            try:
                deploy.redeploy(current, description)
            except BaseException:
                restore()
                raise
    output.step(description)


def split_target(words: tuple[str, ...], is_global: bool, rest: int) -> tuple[str | None, list[str]]:
    """[APP] followed by `rest` words; no APP with --global."""
    wanted = rest + (0 if is_global else 1)
    if len(words) != wanted:
        shape = "--global" if is_global else "APP"
        raise UsageError(f"expected {shape} and {rest} more argument(s), got {len(words)} in all")
    if is_global:
        return None, list(words)
    return names.app_name(words[0]), list(words[1:])
