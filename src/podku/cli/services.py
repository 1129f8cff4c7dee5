"""postgres:create, destroy, list, info, link and unlink (registered on podku's CLI)."""

from __future__ import annotations

import sys

import click

from podku import output, postgres
from podku.cli.base import app_argument, command
from podku.errors import UsageError
from podku.names import service_name


def service_argument(function):
    return click.argument("name", callback=lambda _ctx, _param, value: service_name(value))(function)


@command("postgres:create")
@service_argument
def postgres_create(name: str) -> None:
    """Create a Postgres 15 service (its own container, reached by unix socket only)."""
    postgres.create(name)


@command("postgres:destroy")
@service_argument
@click.option("--force", is_flag=True, help="Do not ask; required when not on a terminal.")
def postgres_destroy(name: str, force: bool) -> None:
    """Stop a service and delete its data (refused while an app is linked to it)."""
    postgres.load(name)
    if not force:
        if not sys.stdin.isatty():
            raise UsageError(f"destroying postgres {name} deletes its data: add --force to confirm")
        click.confirm(f"Destroy postgres {name} and its data?", abort=True)
    postgres.destroy(name)


@command("postgres:list")
def postgres_list() -> None:
    """The Postgres services and whether each runs."""
    output.echo("=====> Postgres services")
    for name in postgres.all_names():
        output.echo(f"{name:<30} {postgres.status(postgres.load(name))}")


@command("postgres:info")
@service_argument
def postgres_info(name: str) -> None:
    """A service's status, version, directories, links and URL."""
    service = postgres.load(name)
    output.echo(f"=====> {name} postgres service information")
    output.field("Status", postgres.status(service))
    output.field("Version", service.version)
    output.field("Image", postgres.BASE.image)
    output.field("Unit", service.unit)
    output.field("Data dir", service.paths.data)
    output.field("Socket dir", service.paths.sockets)
    output.field("Links", " ".join(postgres.linked_apps(name)))
    output.field("Dsn", service.url)


@command("postgres:link")
@service_argument
@app_argument
def postgres_link(name: str, app: str) -> None:
    """Give APP the service's DATABASE_URL and socket: a new release."""
    postgres.link(name, app)


@command("postgres:unlink")
@service_argument
@app_argument
def postgres_unlink(name: str, app: str) -> None:
    """Take the service's URL and socket away from APP: a new release."""
    postgres.unlink(name, app)
