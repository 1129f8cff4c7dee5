"""network:set and network:report (registered on podku's CLI): whether an app's containers
reach the outside network (runtime/network.py). A change is a new release, like a limit."""

from __future__ import annotations

import click

from podku import apps, output, releases
from podku.cli.base import app_argument, apply_setting, command, split_target
from podku.runtime import network


@command("network:set", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1)
@click.option("--global", "is_global", is_flag=True, help="The default of every app.")
def network_set(words: tuple[str, ...], is_global: bool) -> None:
    """Set egress on|off for APP (a new release), or the default of every app (--global)."""
    target, (key, value) = split_target(words, is_global, 2)
    network.setting_name(key)
    egress = network.parse_switch(value)
    if target is None:
        network.save_global(egress)
        output.step(f"Default egress: {network.describe(egress)} (apps get it at their next release)")
        return
    before = network.app_setting(apps.load(target).name)
    apply_setting(target, f"Egress {network.describe(egress)}",
                  lambda: network.save_app(target, egress), lambda: network.save_app(target, before))


@command("network:report")
@app_argument
def network_report(app: str) -> None:
    """The app's egress setting, the default, and the network its live release runs with."""
    current = apps.load(app)
    own = network.app_setting(app)
    output.echo(f"=====> {app} network information")
    output.field("Egress own", "-" if own is None else network.describe(own))
    output.field("Egress default", network.describe(network.global_default()))
    running = network.egress(app)  # what the next release gets; the live one's, if there is one
    output.field("Egress next release", network.describe(running))
    if current.live_release is not None:
        live = releases.load(app, current.live_release)
        running = live.egress
        output.field("Live release egress", network.describe(live.egress))
        output.field("Live release network", live.network)
    output.field("Reaches", "the outside network; not the host's loopback, not other apps' containers"
                 if running else "nothing: no network, only the socket podku hands it")
