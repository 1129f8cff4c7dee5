"""config:* (Dokku's names): the app's environment. A change is a new release swapped in like
a deploy (`--no-restart` stores only); reading it never changes anything."""

from __future__ import annotations

import base64
import json
import shlex

import click

from podku import apps, deploy, names, output
from podku.cli.base import app_argument, command
from podku.errors import PodkuError, UsageError

EXPORT_FORMATS = ("shell", "envfile", "json")


GLOBAL_HELP = "Host-wide values every app gets (an app's own value wins), from its next release on."


def _split(words: tuple[str, ...], is_global: bool, what: str) -> tuple[str | None, list[str]]:
    """APP followed by the rest, or the rest alone with --global."""
    if is_global:
        return None, list(words)
    if not words:
        raise UsageError(f"expected APP (or --global) and {what}")
    return names.app_name(words[0]), list(words[1:])


@command("config:show")
@click.argument("app", required=False)
@click.option("--global", "is_global", is_flag=True, help=GLOBAL_HELP)
def config_show(app: str | None, is_global: bool) -> None:
    """The app's config (and the global values it gets), or the global config."""
    target, rest = _split((app,) if app is not None else (), is_global, "nothing else")
    if rest or (target is None) != is_global:
        raise UsageError("config:show takes APP or --global")
    if target is None:
        output.echo("=====> global env vars")
        _show(apps.global_config())
        return
    apps.load(target)
    own = apps.config(target)
    output.echo(f"=====> {target} env vars")
    _show(own)
    inherited = {key: value for key, value in apps.global_config().items() if key not in own}
    if inherited:
        output.echo("=====> global env vars it gets (config:set --global)")
        _show(inherited)


def _show(values: dict[str, str]) -> None:
    for key, value in sorted(values.items()):
        output.echo(f"{key + ':':<20}{output.printable(value)}")


@command("config:get")
@click.argument("words", nargs=-1)
@click.option("--encoded", is_flag=True, help="Print the value base64-encoded: its exact bytes.")
@click.option("--global", "is_global", is_flag=True, help=GLOBAL_HELP)
def config_get(words: tuple[str, ...], encoded: bool, is_global: bool) -> None:
    """One config value: the app's own, else the global one it gets (line breaks and control
    characters shown escaped, as \\x0a; --encoded: base64 of its exact bytes)."""
    app, rest = _split(words, is_global, "KEY")
    if len(rest) != 1:
        raise UsageError("config:get takes APP KEY or --global KEY")
    key = names.env_key(rest[0])
    if app is not None:
        apps.load(app)
    values = apps.global_config() if app is None else apps.effective_config(app)
    if key not in values:
        raise PodkuError(f"{key} is not set {'globally' if app is None else 'for ' + app}")
    if encoded:
        output.echo(base64.b64encode(values[key].encode()).decode())
    else:
        output.echo(output.printable(values[key]))


@command("config:set")
@click.argument("words", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True, help="Store only; the next release picks it up.")
@click.option("--encoded", is_flag=True,
              help="Values are base64 (KEY=BASE64): any UTF-8 text, line breaks and tabs included.")
@click.option("--global", "is_global", is_flag=True, help=GLOBAL_HELP)
def config_set(words: tuple[str, ...], no_restart: bool, encoded: bool, is_global: bool) -> None:
    """Set config values (APP KEY=VALUE ..., or --global KEY=VALUE ...): a new release of the app."""
    app, assignments = _split(words, is_global, "KEY=VALUE")
    if not assignments:
        raise UsageError("config:set takes at least one KEY=VALUE")
    parse = names.env_encoded_assignment if encoded else names.env_assignment
    changes = dict(parse(text) for text in assignments)
    _change_config(app, lambda values: {**values, **changes}, "Set " + ", ".join(changes), no_restart)


@command("config:unset")
@click.argument("words", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True)
@click.option("--global", "is_global", is_flag=True, help=GLOBAL_HELP)
def config_unset(words: tuple[str, ...], no_restart: bool, is_global: bool) -> None:
    """Remove config values (APP KEY ..., or --global KEY ...): a new release of the app."""
    app, keys = _split(words, is_global, "KEY")
    if not keys:
        raise UsageError("config:unset takes at least one KEY")
    for key in keys:
        names.env_key(key)
    _change_config(app, lambda values: {k: v for k, v in values.items() if k not in keys},
                   "Unset " + ", ".join(keys), no_restart)


def _change_config(app: str | None, change, description: str, no_restart: bool) -> None:
    if app is None:
        _change_global_config(change, description)
        return
    with apps.lock(app):
        current = apps.load(app)
        new_config = change(apps.config(app))
        if current.live_release is not None and not no_restart:
            deploy.redeploy(current, description, config=new_config)
        apps.save_config(app, new_config)
        output.step(description)


def _change_global_config(change, description: str) -> None:
    """Stored only, as Dokku does: each app gets it with its next release (a push, a config
    change, ps:restart or a settings change); a rollback keeps the config it had."""
    with apps.global_config_lock():
        apps.save_global_config(change(apps.global_config()))
    output.step(f"{description} (global): each app gets it with its next release (ps:restart APP to apply now)")


MERGED_HELP = "With the global values the app gets (what its next release runs with)."


def _values(app: str, merged: bool) -> dict[str, str]:
    apps.load(app)
    return apps.effective_config(app) if merged else apps.config(app)


@command("config:keys")
@app_argument
@click.option("--merged", is_flag=True, help=MERGED_HELP)
def config_keys(app: str, merged: bool) -> None:
    """The names of the app's config values, one a line."""
    for key in sorted(_values(app, merged)):
        output.echo(key)


@command("config:export")
@app_argument
@click.option("--format", "format_", type=click.Choice(EXPORT_FORMATS), default="shell", show_default=True,
              help="shell: export KEY='VALUE' lines; envfile: KEY=VALUE lines; json: one object.")
@click.option("--merged", is_flag=True, help=MERGED_HELP)
def config_export(app: str, format_: str, merged: bool) -> None:
    """The app's config for another tool: `eval "$(ssh podku@HOST config:export APP)"`."""
    for line in export_lines(_values(app, merged), format_):
        output.echo(line)


def export_lines(values: dict[str, str], format_: str) -> list[str]:
    """Values are as their schema allows: UTF-8 without control characters but tab and
    newline. A shell gets a newline inside its quotes; an env file gets a value with one
    double-quoted, `\\n` for the newline (as docker compose and python-dotenv read it)."""
    ordered = dict(sorted(values.items()))
    if format_ == "json":
        return [json.dumps(ordered, ensure_ascii=False, indent=2)]
    if format_ == "envfile":
        return [f"{key}={_envfile_value(value)}" for key, value in ordered.items()]
    return [f"export {key}={shlex.quote(value)}" for key, value in ordered.items()]


def _envfile_value(value: str) -> str:
    if "\n" not in value:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@command("config:clear")
@app_argument
@click.option("--no-restart", is_flag=True, help="Store only; the next release picks it up.")
def config_clear(app: str, no_restart: bool) -> None:
    """Remove every config value: a new release."""
    _change_config(app, lambda values: {}, "Cleared the config", no_restart)
