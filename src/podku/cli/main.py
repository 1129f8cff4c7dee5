"""The podku command: Dokku's command names, one handler for every error."""

import dataclasses
import os
import signal
import sys
import time
import traceback
from typing import NoReturn

import click

from podku import (
    apps,
    deploy,
    domains,
    events,
    health,
    hostsetup,
    lifecycle,
    names,
    oneoff,
    output,
    processes,
    receive,
    reconcile,
    releases,
    rename,
    sshkeys,
    swap,
)
from podku.cli import (  # noqa: F401  (each registers its commands on the group)
    builder,
    config,
    export,
    git,
    host,
    images,
    network,
    proxy,
    ps,
    services,
    static,
)
from podku.cli import domains as domains_commands  # noqa: F401
from podku.cli.base import app_argument, cli, command
from podku.errors import PodkuError, UsageError
from podku.host import settings, state
from podku.host.commands import debugging, interactive
from podku.runtime import bridge

# --- apps ---------------------------------------------------------------------------

@command("apps:create")
@app_argument
def apps_create(app: str) -> None:
    """Create an app (a push to a new name does this too)."""
    lifecycle.create(app)


@command("apps:destroy")
@app_argument
@click.option("--force", is_flag=True, help="Do not ask; required when not on a terminal.")
def apps_destroy(app: str, force: bool) -> None:
    """Stop an app and delete its releases, images, repository and routes."""
    apps.load(app)
    if not force:
        if not sys.stdin.isatty():
            raise UsageError(f"destroying {app} deletes everything of it: add --force to confirm")
        click.confirm(f"Destroy {app} and everything of it?", abort=True)
    lifecycle.destroy(app)


@command("apps:rename")
@app_argument
@click.argument("new", callback=lambda _c, _p, value: names.app_name(value))
def apps_rename(app: str, new: str) -> None:
    """Rename an app: it keeps serving on its own domains; APP.DOMAIN becomes NEW.DOMAIN."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped ssh session must not cut it in half
    rename.rename(app, new)


@command("apps:clone")
@app_argument
@click.argument("new", callback=lambda _c, _p, value: names.app_name(value))
def apps_clone(app: str, new: str) -> None:
    """A new app NEW with APP's config and settings, serving APP's live release (not its domains)."""
    rename.clone(app, new)


@command("apps:list")
def apps_list() -> None:
    """List the apps."""
    output.echo("=====> My Apps")
    for name in apps.all_names():
        output.echo(name)


@command("urls")
@app_argument
def urls(app: str) -> None:
    """The app's URLs, one per name."""
    apps.load(app)
    current = settings.load()
    for name in domains.names_of(app, current):
        output.echo(current.url(name))


@command("domains:set-global")
@click.argument("domain", callback=lambda _c, _p, value: names.domain(value))
@click.option("--http-port", type=click.IntRange(1, 65535), default=None)
def domains_set_global(domain: str, http_port: int | None) -> None:
    """Set the domain app URLs live under (APP.DOMAIN)."""
    current = settings.load()
    wanted = dataclasses.replace(current, domain=domain, http_port=http_port or current.http_port)
    with state.locked(domains.lock_path(), "domains"):
        domains.load_proxy(wanted)  # Caddy accepts the routes first: a refused change is not kept
        settings.save(wanted)
        domains.relink_all()
    output.step(f"Set global domain to {domain}")


# --- deploys, releases, config ----------------------------------------------------------

@command("releases")
@app_argument
def releases_list(app: str) -> None:
    """The app's releases, newest first."""
    current = apps.load(app).live_release
    output.echo(f"=====> {app} releases")
    for release in releases.all_of(app):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(release.created))
        marker = "*" if release.id == current else " "
        output.echo(f"{marker} v{release.id:<4} {when}  {release.outcome:<8} {release.origin}  {release.description}")


@command("releases:set")
@app_argument
@click.argument("key", type=click.Choice(["keep-images"]))
@click.argument("value", type=click.IntRange(1, 100))
def releases_set(app: str, key: str, value: int) -> None:
    """How many releases' images to keep for rollbacks (default 5)."""
    with apps.lock(app):
        current = apps.load(app).updated(keep_images=value)
        apps.save(current)
        swap.prune_images(current)
    output.step(f"{app} keeps the images of its last {value} releases")


@command("rollback")
@app_argument
@click.argument("release", required=False)
def rollback(app: str, release: str | None) -> None:
    """Swap back to an earlier release's image and config (default: the one before)."""
    with apps.lock(app):
        current = apps.load(app)
        target = deploy.rollback_target(current, names.release_id(release) if release else None)
        deploy.redeploy(current, f"Rollback to v{target.id}", source=target)


@command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@app_argument
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(app: str, command: tuple[str, ...]) -> None:
    """Run a one-off command in a new container of the live release (image and config)."""
    sys.exit(oneoff.run_command(apps.load(app), list(command)))


@command("ps:restart")
@app_argument
def ps_restart(app: str) -> None:
    """Restart the app through a zero-downtime swap."""
    with apps.lock(app):
        deploy.redeploy(apps.load(app), "Restart")


@command("ps:retire", hidden=True)
@app_argument
@click.argument("release", type=int)
def ps_retire(app: str, release: int) -> None:
    """Stop a release that no longer serves (run by a timer after a swap)."""
    with apps.lock(app):
        swap.retire(apps.load(app), release)


# --- checks --------------------------------------------------------------------------

@command("checks:report")
@app_argument
def checks_report(app: str) -> None:
    """The app's health check settings."""
    checks = apps.load(app).health_checks
    output.echo(f"=====> {app} checks information")
    for key, value in checks.to_dict().items():
        output.field("Checks " + key.replace("_", " "), value)


@command("checks:set")
@app_argument
@click.argument("key")
@click.argument("value")
def checks_set(app: str, key: str, value: str) -> None:
    """Set wait-to-retire, timeout, attempts, wait or initial-delay."""
    _change_checks(app, lambda checks: checks.with_setting(key, value))


@command("checks:disable")
@app_argument
def checks_disable(app: str) -> None:
    """Deploy without health checks (a release takes traffic once it has started)."""
    _change_checks(app, lambda checks: health.Checks.from_dict({**checks.to_dict(), "enabled": False}))


@command("checks:enable")
@app_argument
def checks_enable(app: str) -> None:
    """Health-check every release before it takes traffic (the default)."""
    _change_checks(app, lambda checks: health.Checks.from_dict({**checks.to_dict(), "enabled": True}))


def _change_checks(app: str, change) -> None:
    with apps.lock(app):
        current = apps.load(app)
        apps.save(current.updated(checks=change(current.health_checks).to_dict()))


# --- logs, keys, entry points ----------------------------------------------------------------

@command("logs")
@app_argument
@click.option("-n", "--num", default=100, type=click.IntRange(1, 100000))
@click.option("-t", "--tail", "-f", "--follow", "follow", is_flag=True,
              help="Follow: new lines as they come, until the ssh session ends.")
@click.option("-p", "--process", default=None, help="Only this process type (web, worker, cron, ...).")
@click.option("--since", default=None, callback=lambda _c, _p, value: value and names.journal_time(value),
              help="From this time on (journalctl's forms: '2026-11-29 14:00', 'today', '-1h').")
@click.option("--until", default=None, callback=lambda _c, _p, value: value and names.journal_time(value),
              help="Up to this time (the same forms).")
def logs(app: str, num: int, follow: bool, process: str | None, since: str | None, until: str | None) -> None:
    """The app's log (all its releases), from the journal; -p proxy: Caddy's access log."""
    current = apps.load(app)
    every = releases.all_of(app)
    if process == "proxy" or (process in (None, processes.WEB) and _live_is_static(current, every)):
        if process != "proxy":
            output.warn(f"{app} is a static site served by Caddy: its log is Caddy's access log (logs -p proxy)")
        proxy.show_access_log(app, num, follow)
        return
    units = processes.log_units(app, every, process)
    if not units:  # journalctl without a unit filter would print every unit's log
        raise PodkuError(f"{app} has no logs yet: it has never been deployed")
    argv = ["journalctl", "--quiet", "--no-pager", "--output", "short-iso", "--lines", str(num)]
    for unit in units:
        argv += ["--user-unit", unit]
    # one word each (`--since=-1h`): a time is never read as an option
    argv += [f"--since={since}"] if since else []
    argv += [f"--until={until}"] if until else []
    # journalctl ends when the ssh session does: sshd's hangup, or podku's parent gone
    sys.exit(interactive([*argv, "--follow"] if follow else argv))


def _live_is_static(app: apps.App, every: list[releases.Release]) -> bool:
    return any(release.id == app.live_release and release.static for release in every)


@command("ssh-keys:add")
@click.argument("name", callback=lambda _c, _p, value: sshkeys.key_name(value))
@click.option("--if-new", is_flag=True, help="Succeed quietly when the key is already authorised.")
def ssh_keys_add(name: str, if_new: bool) -> None:
    """Authorise a public key, read from stdin, to push and run commands."""
    if sshkeys.add(name, sshkeys.read_public_key(sys.stdin), if_new=if_new):
        output.step(f"Added key {name}")


@command("setup", hidden=True)
@click.option("--domain", required=True, callback=lambda _c, _p, value: names.domain(value))
@click.option("--http-port", type=click.IntRange(1, 65535), default=80)
@click.option("--restart-proxy", is_flag=True, help="Caddy's binary changed: restart it.")
def setup(domain: str, http_port: int, restart_proxy: bool) -> None:
    """Run by install.sh: settings, Caddy's unit and routes (idempotent)."""
    hostsetup.setup(domain, http_port, restart_proxy)


@command("ssh-keys:remove")
@click.argument("name", callback=lambda _c, _p, value: sshkeys.key_name(value))
def ssh_keys_remove(name: str) -> None:
    """Withdraw a key's access."""
    sshkeys.remove(name)
    output.step(f"Removed key {name}")


@command("ssh-keys:list")
def ssh_keys_list() -> None:
    """The names of the authorised keys."""
    for name in sshkeys.names():
        output.echo(name)


@command("internal:wait-port", hidden=True)
@click.argument("container", callback=lambda _c, _p, value: names.container(value))
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--timeout", default=170.0)
def internal_wait_port(container: str, port: int, timeout: float) -> None:
    """Run by a $PORT app's unit: active only once the app listens."""
    bridge.wait_listening(container, port, timeout)


@command("internal:bridge", hidden=True)
@click.argument("container", callback=lambda _c, _p, value: names.container(value))
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--exit-idle-time", type=click.IntRange(0, 30 * 86400), default=0)
def internal_bridge(container: str, port: int, exit_idle_time: int) -> None:
    """Run by a $PORT app's web unit: the release socket, proxied into the container."""
    bridge.exec_proxy(container, port, exit_idle_time)


@command("doctor")
@click.argument("app", required=False, callback=lambda _c, _p, value: value and names.app_name(value))
@click.option("--quiet", is_flag=True, help="Print only what was fixed (the boot unit runs this).")
def doctor(app: str | None, quiet: bool) -> None:
    """Make each app's socket link, unit links and release outcomes agree with its record."""
    rename.finish_pending()  # a cut-off apps:rename first: it decides which name is an app
    reconcile.doctor([app] if app else apps.all_names(), quiet=quiet)


@command("help")
@click.pass_context
def help_command(ctx: click.Context) -> None:
    """This list of commands."""
    output.echo(cli.get_help(ctx.parent or ctx))


@command("git-hook", hidden=True)
@app_argument
def git_hook(app: str) -> None:
    """The pre-receive hook: deploy what was pushed to the deploy branch (main or master)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped ssh session must not cut a swap in half
    key = _key_of_session()
    try:
        release = receive.run_hook(app, sys.stdin.read().splitlines())
    except PodkuError as error:
        events.record(key, "push", app, "failed: " + output.one_line(str(error)))
        raise
    events.record(key, "push", app, f"deployed release {release.id}" if release else "not deployed")


def _key_of_session() -> str:
    """The key name ssh-command put in the environment for this push (validated again)."""
    try:
        return events.key_name_or_unnamed(os.environ.get(events.KEY_ENV, events.UNNAMED))
    except PodkuError:
        return events.UNNAMED


@command("ssh-command", hidden=True)
@click.option("--key", default=events.UNNAMED, callback=lambda _c, _p, value: events.key_name_or_unnamed(value),
              help="The authorised key's name (its authorized_keys line passes it).")
def ssh_command(key: str) -> None:
    """The forced command of every authorised key: git, or one of the public commands."""
    os.environ[events.KEY_ENV] = key  # for the git hook of a push
    words = receive.ssh_words()
    if words[0] in receive.GIT_SERVICES:
        receive.serve_git(words)
    if words[0] not in public_commands():
        events.record(key, "?", "", "refused: not a podku command")
        raise UsageError(f"{words[0]!r} is not a podku command: `help` lists them")
    try:
        main(words)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        events.record(key, words[0], events.app_of(words), "ok" if code == 0 else f"failed (exit {code})")
        raise


@command("events")
@click.option("-n", "--num", default=50, type=click.IntRange(1, 10000), show_default=True)
def events_command(num: int) -> None:
    """Who did what: the newest commands and pushes (time, key, command, app, outcome)."""
    for event in events.last(num):
        output.echo(events.shown(event))


def public_commands() -> frozenset[str]:
    """What a key holder may run: every command but the hidden, internal ones."""
    return frozenset(name for name, command in cli.commands.items() if not command.hidden)


def main(args: list[str] | None = None) -> None:
    """Run one command. Every failure becomes one line on stderr and a non-zero exit; the
    traceback only with PODKU_DEBUG=1."""
    try:
        cli.main(args=args, prog_name="podku", standalone_mode=False)
    except PodkuError as error:
        _fail(error, str(error), error.exit_code)
    except click.exceptions.Abort:
        _fail(None, "aborted", 1)
    except click.ClickException as error:
        _fail(None, error.format_message(), error.exit_code if error.exit_code else 2)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeyboardInterrupt:
        _fail(None, "interrupted", 130)
    except Exception as error:  # a bug or an unforeseen failure: still one line
        _fail(error, f"internal error: {type(error).__name__}: {error}"
                     " (run with PODKU_DEBUG=1 for the traceback)", 1)
    sys.exit(0)


def _fail(error: BaseException | None, message: str, exit_code: int) -> NoReturn:
    if error is not None and debugging():
        traceback.print_exception(error)
    output.warn(output.one_line(message))
    sys.exit(exit_code)
