"""The podku command group and its decorators. Every file of this package registers its
commands on `cli`; the package's __init__ imports them all and runs the group."""

import click

from podku import __version__, names


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="podku")
def cli() -> None:
    """podku: git push to deploy rootless Podman apps behind Caddy."""


def command(name: str, hidden: bool = False, **options):
    return cli.command(name, hidden=hidden, **options)


def app_argument(function):
    return click.argument("app", callback=lambda _ctx, _param, value: names.app_name(value))(function)
