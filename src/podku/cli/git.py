"""git:set and git:report (Dokku's names): which branch deploys and which subdirectory builds."""

from __future__ import annotations

import dataclasses

import click

from podku import apps, output
from podku.cli.base import app_argument, command
from podku.errors import UsageError
from podku.image import gitrepo, source

# git:set's keys: the validator of each, and the GitSettings field it sets
KEYS = {"deploy-branch": (source.branch_name, "deploy_branch"), "build-dir": (source.build_dir, "build_dir")}


@command("git:set")
@app_argument
@click.argument("key")
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Back to the default (main or master; the repository's top).")
def git_set(app: str, key: str, value: str | None, unset: bool) -> None:
    """deploy-branch NAME (only NAME deploys; other branches are refused) or build-dir PATH
    (the build, Procfile and app.json come from that subdirectory). It takes effect at the next push."""
    if key not in KEYS:
        raise UsageError(f"unknown git setting {output.printable(key[:40])!r}: use {' or '.join(KEYS)}")
    if (value is None) != unset:
        raise UsageError(f"git:set APP {key} takes a value or --unset")
    check, field = KEYS[key]
    checked = "" if value is None else check(value)
    with apps.lock(app):
        settings = dataclasses.replace(source.load(app), **{field: checked})
        source.save(app, settings)
        if key == "deploy-branch":
            gitrepo.set_head(apps.load(app).paths.repo, settings.branches[0])
    output.step(f"{key} of {app} {'set to ' + checked if checked else 'unset'}: the next push uses it")


@command("git:report")
@app_argument
def git_report(app: str) -> None:
    """The app's deploy branch and build directory."""
    apps.load(app)
    settings = source.load(app)
    output.echo(f"=====> {app} git information")
    output.field("Git deploy branch", settings.deploy_branch or " or ".join(source.DEFAULT_BRANCHES))
    output.field("Git build dir", settings.build_dir or "(the repository's top)")
