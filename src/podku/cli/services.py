"""KIND:create, destroy, list, info, link and unlink for postgres and redis (registered on
podku's CLI)."""

from __future__ import annotations

import sys
from types import ModuleType

import click

from podku import output, postgres, redis
from podku.cli.base import app_argument, command
from podku.errors import UsageError
from podku.names import service_name
from podku.services import describe


def service_argument(function):
    return click.argument("name", callback=lambda _ctx, _param, value: service_name(value))(function)


def register(kind: ModuleType, title: str, variable: str, dump: str, client: str) -> None:
    """The commands of one service kind (a module with create, destroy, load, ...)."""
    prefix = kind.KIND

    @command(f"{prefix}:create")
    @service_argument
    def create(name: str) -> None:
        kind.create(name)
    create.help = f"Create a {title} service (its own container, reached by unix socket only)."

    @command(f"{prefix}:destroy")
    @service_argument
    @click.option("--force", is_flag=True, help="Do not ask; required when not on a terminal.")
    def destroy(name: str, force: bool) -> None:
        kind.load(name)
        if not force:
            if not sys.stdin.isatty():
                raise UsageError(f"destroying {prefix} {name} deletes its data: add --force to confirm")
            click.confirm(f"Destroy {prefix} {name} and its data?", abort=True)
        kind.destroy(name)
    destroy.help = "Stop a service and delete its data (refused while an app is linked to it)."

    @command(f"{prefix}:list")
    def list_() -> None:
        output.echo(f"=====> {title} services")
        for name in kind.all_names():
            output.echo(f"{name:<30} {kind.status(kind.load(name))}")
    list_.help = f"The {title} services and whether each runs."

    @command(f"{prefix}:info")
    @service_argument
    def info(name: str) -> None:
        service = kind.load(name)
        output.echo(f"=====> {name} {prefix} service information")
        output.field("Status", kind.status(service))
        output.field("Version", service.version)
        output.field("Image", kind.BASE.image)
        output.field("Unit", service.unit)
        output.field("Data dir", service.paths.data)
        output.field("Socket dir", service.paths.sockets)
        output.field("Links", " ".join(kind.linked_apps(name)))
        output.field("Settings", describe(kind.TUNABLE, service.settings))
        output.field("Dsn", service.url)
    info.help = "A service's status, version, directories, links and URL."

    @command(f"{prefix}:link")
    @service_argument
    @app_argument
    def link(name: str, app: str) -> None:
        kind.link(name, app)
    link.help = f"Give APP the service's {variable} and socket: a new release."

    @command(f"{prefix}:unlink")
    @service_argument
    @app_argument
    def unlink(name: str, app: str) -> None:
        kind.unlink(name, app)
    unlink.help = "Take the service's URL and socket away from APP: a new release."

    @command(f"{prefix}:set")
    @service_argument
    @click.argument("key")
    @click.argument("value")
    def set_(name: str, key: str, value: str) -> None:
        kind.set_value(name, key, value)
    set_.help = f"Set {', '.join(kind.TUNABLE)} (bounded; the server restarts to apply it)."

    @command(f"{prefix}:export")
    @service_argument
    @click.option("--force", is_flag=True, help="Write to a terminal anyway.")
    def export(name: str, force: bool) -> None:
        if sys.stdout.isatty() and not force:
            raise UsageError(f"the dump is binary: redirect it to a file (podku {prefix}:export {name} > FILE)")
        kind.export(name, sys.stdout.buffer)
    export.help = f"Write the service's data to stdout ({dump})."

    @command(f"{prefix}:import")
    @service_argument
    def import_(name: str) -> None:
        if sys.stdin.isatty():
            raise UsageError(f"give the dump on stdin: podku {prefix}:import {name} < FILE")
        kind.import_dump(name, sys.stdin.buffer)
    import_.help = f"Replace the service's data with a dump read from stdin ({dump})."

    @command(f"{prefix}:connect")
    @service_argument
    def connect(name: str) -> None:
        sys.exit(kind.connect(name, tty=sys.stdin.isatty() and sys.stdout.isatty()))
    connect.help = f"{client} in the service's container (ssh -t for a terminal; or SQL/commands on stdin)."


register(postgres, "Postgres", "DATABASE_URL", "pg_dump's custom format", "psql")
register(redis, "Redis", "REDIS_URL", "an RDB snapshot", "redis-cli")
