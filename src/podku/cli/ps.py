"""Commands for process types and cron: ps:scale, ps:report, ps:stop, ps:start, ps:rebuild,
ps:inspect, enter, cron:list, cron:run. Registered on the group of podku.cli.base."""

import json
import sys

import click

from podku import apps, containers, cron, deploy, names, output, processes, reconcile, releases
from podku.cli.base import app_argument
from podku.cli.base import command as cli_command
from podku.errors import UsageError
from podku.host import systemd
from podku.image import procfile
from podku.runtime import idle


class StrictCommand(click.Command):
    """No `--` in the arguments: none of these commands takes words that look like options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            raise UsageError(f"`--` is not an argument of {ctx.info_name}")
        return super().parse_args(ctx, args)


def command(name: str):
    return cli_command(name, cls=StrictCommand)


@command("ps:scale")
@app_argument
@click.argument("assignments", nargs=-1)
def ps_scale(app: str, assignments: tuple[str, ...]) -> None:
    """Set how many instances of each process type run (TYPE=N ...); none: print the scale."""
    if len(assignments) > procfile.MAX_TYPES:
        raise processes.ScaleInvalid(f"at most {procfile.MAX_TYPES} TYPE=N arguments")
    with apps.lock(app):
        current = apps.load(app)
        live = deploy.live_release(current)
        changes = processes.parse_scale(live, list(assignments))
        if changes:
            current = current.updated(scale={**current.scale, **changes})
            apps.save(current)
            _reconcile(current)
    output.echo(f"=====> {app} scale")
    for name, count in processes.scale_of(current, live).items():
        output.echo(f"{name + ':':<20}{count}")


@command("ps:report")
@click.argument("app", required=False, callback=lambda _c, _p, value: value and names.app_name(value))
def ps_report(app: str | None) -> None:
    """Each app's live release, whether it runs or sleeps, its process types, scale and instances."""
    for name in [app] if app else apps.all_names():
        _report(apps.load(name))


def _report(current: apps.App) -> None:
    output.echo(f"=====> {current.name} ps information")
    if current.live_release is None:
        output.field("Status", "not deployed")
        return
    live = deploy.live_release(current)
    output.field("Live release", live.id)
    output.field("Status", processes.run_state(live))
    output.field("Idle timeout", "- (a static site never starts a container)" if live.static
                 else idle.describe(live.idle_timeout))
    output.field("Stopped", "true" if current.stopped else "false")
    output.field("Socket", "- (Caddy serves the files)" if live.static else systemd.active_state(live.socket_unit))
    if live.static:
        output.field("Process web", "Caddy's file server (a static site: no container)")
        return
    for name, count in processes.scale_of(current, live).items():
        argv = live.processes.get(name)
        shown = output.printable(" ".join(argv))[:200] if argv else "(the image's command)"
        output.field("Process " + name, f"scale {count}: {shown}")
    for unit, state in processes.report(current, live):
        output.echo(f"       {unit + ':':<40}{state}")


@command("ps:stop")
@app_argument
def ps_stop(app: str) -> None:
    """Stop every process and the socket of the app until ps:start (or the next deploy)."""
    if _set_stopped(app, True).static:
        output.step(f"Stopped {app}: its static site answers 502, as a stopped app does, until ps:start")
        return
    output.step(f"Stopped {app}")


@command("ps:start")
@app_argument
def ps_start(app: str) -> None:
    """Start an app that ps:stop stopped: its socket and processes at their scale."""
    _set_stopped(app, False)
    output.step(f"Started {app}")


@command("ps:rebuild")
@app_argument
def ps_rebuild(app: str) -> None:
    """Build the live revision again (or pull its registry image again) and swap to it."""
    with apps.lock(app):
        current = apps.load(app)
        deploy.deploy_again(current, deploy.live_release(current))


@command("ps:inspect")
@app_argument
def ps_inspect(app: str) -> None:
    """podman inspect of the live release's running containers, as JSON, config values redacted."""
    output.echo(json.dumps(containers.inspected(apps.load(app)), indent=2, sort_keys=True))


class EnterCommand(click.Command):
    """`enter APP [TYPE] [INSTANCE] [-- COMMAND...]`: the words after `--` are the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["podku.enter.command"] = args[cut + 1:]
            args = args[:cut]
        return super().parse_args(ctx, args)


@cli_command("enter", cls=EnterCommand)
@app_argument
@click.argument("process_type", metavar="[TYPE]", required=False, default=processes.WEB)
@click.argument("instance", metavar="[INSTANCE]", required=False, default="1")
@click.pass_context
def enter(ctx: click.Context, app: str, process_type: str, instance: str) -> None:
    """A shell (or `-- COMMAND...`) in a live container (default web 1); its exit code."""
    command = list(ctx.meta.get("podku.enter.command", []))
    sys.exit(containers.enter(apps.load(app), process_type, instance, command))


@command("cron:list")
@app_argument
def cron_list(app: str) -> None:
    """The live release's cron entries and their timers."""
    current = apps.load(app)
    live = deploy.live_release(current)
    output.echo(f"=====> {app} cron tasks")
    for item in cron.entries(live.app_json):
        output.echo(f"{item.id:<4}{item.schedule:<20}{output.printable(item.command)[:200]}")


@command("cron:run")
@app_argument
@click.argument("entry")
def cron_run(app: str, entry: str) -> None:
    """Run a cron entry now (waits for a run already going on), in the live release."""
    current = apps.load(app)
    item = cron.find(current, deploy.live_release(current), entry)
    output.step(f"Running cron entry {item.id} of {app}")
    try:
        cron.run_now(current, item)
    finally:
        logs = systemd.journal_tail(cron.service(app, item.id), 20)
        if logs:
            output.detail(logs)


def _set_stopped(app: str, stopped: bool) -> releases.Release:
    """The live release, after the app was stopped or started."""
    with apps.lock(app):
        current = apps.load(app)
        live = deploy.live_release(current)
        current = current.updated(stopped=stopped)
        apps.save(current)
        _reconcile(current)
    return live


def _reconcile(app: apps.App) -> None:
    for line in reconcile.reconcile(app):
        output.detail(line)
