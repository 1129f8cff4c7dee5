"""config:* (Dokku's names): the app's environment. A change is a new release swapped in like
a deploy (`--no-restart` stores only); reading it never changes anything."""

from __future__ import annotations

import base64
import json
import shlex

import click

from podku import apps, deploy, names, output
from podku.cli.base import app_argument, command
from podku.errors import PodkuError

EXPORT_FORMATS = ("shell", "envfile", "json")


@command("config:show")
@app_argument
def config_show(app: str) -> None:
    """The app's config."""
    apps.load(app)
    output.echo(f"=====> {app} env vars")
    for key, value in sorted(apps.config(app).items()):
        output.echo(f"{key + ':':<20}{output.printable(value)}")


@command("config:get")
@app_argument
@click.argument("key", callback=lambda _c, _p, value: names.env_key(value))
@click.option("--encoded", is_flag=True, help="Print the value base64-encoded: its exact bytes.")
def config_get(app: str, key: str, encoded: bool) -> None:
    """One config value (line breaks and control characters shown escaped, as \\x0a)."""
    apps.load(app)
    values = apps.config(app)
    if key not in values:
        raise PodkuError(f"{key} is not set for {app}")
    if encoded:
        output.echo(base64.b64encode(values[key].encode()).decode())
    else:
        output.echo(output.printable(values[key]))


@command("config:set")
@app_argument
@click.argument("assignments", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True, help="Store only; the next release picks it up.")
@click.option("--encoded", is_flag=True,
              help="Values are base64 (KEY=BASE64): any UTF-8 text, line breaks and tabs included.")
def config_set(app: str, assignments: tuple[str, ...], no_restart: bool, encoded: bool) -> None:
    """Set config values (KEY=VALUE ...): a new release."""
    parse = names.env_encoded_assignment if encoded else names.env_assignment
    changes = dict(parse(text) for text in assignments)
    _change_config(app, lambda values: {**values, **changes}, "Set " + ", ".join(changes), no_restart)


@command("config:unset")
@app_argument
@click.argument("keys", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True)
def config_unset(app: str, keys: tuple[str, ...], no_restart: bool) -> None:
    """Remove config values: a new release."""
    for key in keys:
        names.env_key(key)
    _change_config(app, lambda values: {k: v for k, v in values.items() if k not in keys},
                   "Unset " + ", ".join(keys), no_restart)


def _change_config(app: str, change, description: str, no_restart: bool) -> None:
    with apps.lock(app):
        current = apps.load(app)
        new_config = change(apps.config(app))
        if current.live_release is not None and not no_restart:
            deploy.redeploy(current, description, config=new_config)
        apps.save_config(app, new_config)
        output.step(description)


@command("config:keys")
@app_argument
def config_keys(app: str) -> None:
    """The names of the app's config values, one a line."""
    apps.load(app)
    for key in sorted(apps.config(app)):
        output.echo(key)


@command("config:export")
@app_argument
@click.option("--format", "format_", type=click.Choice(EXPORT_FORMATS), default="shell", show_default=True,
              help="shell: export KEY='VALUE' lines; envfile: KEY=VALUE lines; json: one object.")
def config_export(app: str, format_: str) -> None:
    """The app's config for another tool: `eval "$(ssh podku@HOST config:export APP)"`."""
    apps.load(app)
    for line in export_lines(apps.config(app), format_):
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
