"""Commands for a small host: storage, resource limits, idle apps, backups. Registered on
podku.cli.base.cli. A settings change that affects the
running app is a new release, swapped in like a config change."""

import os
import sys

import click

from podku import apps, backup, output, releases
from podku.cli.base import app_argument, apply_setting, command, split_target
from podku.errors import UsageError
from podku.runtime import idle, resources, storage

# --- storage ---------------------------------------------------------------------------

@command("storage:ensure-directory")
@click.argument("name", callback=lambda _c, _p, value: storage.storage_name(value))
def storage_ensure_directory(name: str) -> None:
    """Create a storage directory (kept when apps are destroyed)."""
    created = storage.ensure_directory(name)
    output.step(f"{'Created' if created else 'Kept'} storage {name} ({storage.directory(name)})")


@command("storage:mount")
@app_argument
@click.argument("mount", callback=lambda _c, _p, value: "{}:{}".format(*storage.parse_mount(value)))
def storage_mount(app: str, mount: str) -> None:
    """Mount NAME:/container/path into the app: a new release."""
    _change_mounts(app, f"Mount {mount}", storage.with_mount(app, mount))


@command("storage:unmount")
@app_argument
@click.argument("mount", callback=lambda _c, _p, value: "{}:{}".format(*storage.parse_mount(value)))
def storage_unmount(app: str, mount: str) -> None:
    """Remove a mount from the app (its directory stays): a new release."""
    _change_mounts(app, f"Unmount {mount}", storage.without_mount(app, mount))


def _change_mounts(app: str, description: str, after: list[str]) -> None:
    before = storage.mounts(apps.load(app).name)
    apply_setting(app, description, lambda: storage.save_mounts(app, after), lambda: storage.save_mounts(app, before))


@command("storage:list")
@app_argument
def storage_list(app: str) -> None:
    """The app's mounts."""
    apps.load(app)
    output.echo(f"=====> {app} volume bind-mounts")
    for entry in storage.mounts(app):
        name, _, path = entry.partition(":")
        output.echo(f"{storage.directory(name)}:{path}")


# --- resources --------------------------------------------------------------------------

def _limits_from(memory: str | None, cpu: str | None, pids: str | None) -> resources.ContainerLimits:
    if memory is None and cpu is None and pids is None:
        raise UsageError("give at least one of --memory, --cpu, --pids")
    return resources.ContainerLimits(memory=None if memory is None else resources.parse_size(memory),
                                     cpus=None if cpu is None else resources.parse_cpus(cpu),
                                     pids=None if pids is None else resources.parse_pids(pids))


def _say_enforcement() -> None:
    reason = resources.enforcement()
    if reason:
        output.warn(f"not enforced on this host: {reason} (the limits are stored and apply where they can)")


@command("resource:limit")
@click.argument("app", required=False)
@click.option("--memory", help="like 256M or 1G")
@click.option("--cpu", help="CPUs, like 0.5 or 2")
@click.option("--pids", help="at most this many tasks")
@click.option("--global", "is_global", is_flag=True, help="The defaults of every app.")
def resource_limit(app: str | None, memory: str | None, cpu: str | None, pids: str | None, is_global: bool) -> None:
    """Limit an app's memory, CPUs and tasks (a new release), or set the defaults (--global)."""
    target, _ = split_target((app,) if app is not None else (), is_global, 0)
    limits = _limits_from(memory, cpu, pids)
    if target is None:
        resources.save_global(limits.merged_over(resources.global_defaults()))
        output.step("Set the default limits of every app (new releases get them)")
    else:
        before = resources.app_limits(apps.load(target).name)
        after = limits.merged_over(before)
        apply_setting(target, f"Limit {_describe(after.to_dict())}",
                      lambda: resources.save_app(target, after), lambda: resources.save_app(target, before))
    _say_enforcement()


@command("resource:clear")
@app_argument
def resource_clear(app: str) -> None:
    """Back to the default limits: a new release."""
    before = resources.app_limits(apps.load(app).name)
    apply_setting(app, "Clear resource limits", lambda: resources.clear_app(app),
                  lambda: resources.save_app(app, before))


@command("resource:report")
@app_argument
def resource_report(app: str) -> None:
    """The app's limits: its own, the defaults, and what its live release runs with."""
    current = apps.load(app)
    output.echo(f"=====> {app} resource information")
    output.field("Own limits", _describe(resources.app_limits(app).to_dict()) or "-")
    output.field("Default limits", _describe(resources.global_defaults().to_dict()))
    if current.live_release is not None:
        live = releases.load(app, current.live_release)
        output.field("Live release limits", _describe(live.resources) or "-")
    reason = resources.enforcement()
    output.field("Enforced", "yes" if reason is None else "not enforced on this host: " + reason)


def _describe(values: dict) -> str:
    words = []
    if values.get("memory"):
        words.append(f"memory {resources.human_size(int(values['memory']))}")
    if values.get("cpus"):
        words.append(f"cpu {values['cpus']:g}")
    if values.get("pids"):
        words.append(f"pids {values['pids']}")
    return ", ".join(words)


# --- idle -----------------------------------------------------------------------------

@command("ps:set", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1)
@click.option("--global", "is_global", is_flag=True, help="The default of every app.")
def ps_set(words: tuple[str, ...], is_global: bool) -> None:
    """Set idle-timeout DURATION (30s, 5m, 1h; 0: never) for APP, or --global."""
    target, (key, value) = split_target(words, is_global, 2)
    if key != "idle-timeout":
        raise UsageError(f"unknown setting {key[:40]!r}: ps:set knows idle-timeout")
    seconds = idle.parse_duration(value)
    if target is None:
        idle.save_global(seconds)
        output.step(f"Default idle timeout: {idle.describe(seconds)} (apps get it at their next release)")
        return
    before = idle.app_setting(apps.load(target).name)
    apply_setting(target, f"Idle timeout {idle.describe(seconds)}",
                  lambda: idle.save_app(target, seconds), lambda: idle.save_app(target, before))


# --- backups --------------------------------------------------------------------------

@command("backup:export")
@click.option("--force", is_flag=True, help="Write to a terminal anyway.")
def backup_export(force: bool) -> None:
    """Write every app (settings, keys, config, releases, repositories, storage) as one archive to stdout."""
    if sys.stdout.isatty() and not force:
        raise UsageError("the backup is binary and holds secrets: redirect it to a file (podku backup:export > FILE)")
    backup.export(sys.stdout.buffer)


@command("backup:import")
@click.option("--with-host-settings", is_flag=True,
              help="Also take the old host's limits and defaults (limits, resources, idle, builders).")
@click.option("--with-keys", is_flag=True, help="Also authorise the old host's ssh keys.")
def backup_import(with_host_settings: bool, with_keys: bool) -> None:
    """Recreate the apps of a backup (read from stdin) on this host and deploy each at its live revision."""
    if sys.stdin.isatty():
        raise UsageError("give the backup on stdin: podku backup:import < FILE")
    # limits.json has no command: a key holder must not raise the bounds of its own builds
    if with_host_settings and "SSH_ORIGINAL_COMMAND" in os.environ:
        raise UsageError("--with-host-settings is for the host's operator: run it on the host "
                         "(podku backup:import --with-host-settings < FILE)")
    backup.restore(sys.stdin.buffer, backup.Taken(host_settings=with_host_settings, keys=with_keys))
