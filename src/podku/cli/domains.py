"""domains:* and certs:report (Dokku's names), and the installer's TLS settings.

Registered on the command group of podku.cli.base."""

import dataclasses

import click

from podku import apps, domains, output, proxyconf
from podku import names as podku_names
from podku.cli import base as cli
from podku.errors import UsageError
from podku.host import settings
from podku.proxy import certs


def _names(_ctx, _param, values: tuple[str, ...]) -> list[str]:
    return domains.parse_all(values)


names_argument = click.argument("names", nargs=-1, required=True, callback=_names)


@cli.command("domains:add")
@cli.app_argument
@names_argument
def domains_add(app: str, names: list[str]) -> None:
    """Add names the app answers to (no Caddy reload; HTTPS certificates on first use)."""
    with domains.changing(app):
        current = domains.load(app)
        wanted = _with_names(app, current, names, add=True)
        added, _ = domains.change(app, wanted)
        proxyconf.names_changed(app)
    for name in names:
        output.step(f"Added {name} to {app}" if name in added else f"{name} was already a domain of {app}")
        if name in added and not settings.is_internal(name):
            domains.report_dns(name)


@cli.command("domains:remove")
@cli.app_argument
@names_argument
def domains_remove(app: str, names: list[str]) -> None:
    """Remove names (APP.DOMAIN too: the app then answers only to its own names)."""
    with domains.changing(app):
        current = domains.load(app)
        missing = [name for name in names if name not in domains.names_of(app, domains=current)]
        if missing:
            raise UsageError(f"{', '.join(missing)} is not a domain of {app}")
        domains.change(app, _with_names(app, current, names, add=False))
        proxyconf.names_changed(app)
    for name in names:
        output.step(f"Removed {name} from {app}")


@cli.command("domains:set")
@cli.app_argument
@names_argument
def domains_set(app: str, names: list[str]) -> None:
    """Make these the app's only names (list APP.DOMAIN to keep it)."""
    default = settings.load().app_host(app)
    with domains.changing(app):
        domains.change(app, domains.Domains(default=default in names,
                                            custom=[name for name in names if name != default]))
        proxyconf.names_changed(app)
    output.step(f"Set {', '.join(names)} for {app}")


@cli.command("domains:clear")
@cli.app_argument
def domains_clear(app: str) -> None:
    """Remove every name the app was given: it answers to APP.DOMAIN only."""
    with domains.changing(app):
        domains.change(app, domains.Domains())
        proxyconf.names_changed(app)
    output.step(f"Cleared domains of {app}")


@cli.command("domains:report")
@click.argument("app", required=False)
@click.option("--global", "global_", is_flag=True, help="Only the host-wide settings.")
def domains_report(app: str | None, global_: bool) -> None:
    """The app's names, or (--global) the host-wide domain and TLS mode."""
    current = settings.load()
    if global_:
        output.echo("=====> Global domains information")
    elif app is None:
        raise UsageError("domains:report needs an app (or --global)")
    else:
        apps.load(podku_names.app_name(app))
        names = domains.names_of(app, current)
        output.echo(f"=====> {app} domains information")
        output.field("Domains app enabled", str(bool(names)).lower())
        output.field("Domains app vhosts", " ".join(names))
    output.field("Domains global enabled", "true")
    output.field("Domains global vhosts", current.domain)
    output.field("Domains global tls", current.tls)


def _with_names(app: str, current: domains.Domains, names: list[str], add: bool) -> domains.Domains:
    default = settings.load().app_host(app)
    custom = [name for name in names if name != default]
    if add:
        return domains.Domains(default=current.default or default in names,
                               custom=list(dict.fromkeys(current.custom + custom)))
    return domains.Domains(default=current.default and default not in names,
                           custom=[name for name in current.custom if name not in custom])


@cli.command("certs:report")
@cli.app_argument
def certs_report(app: str) -> None:
    """The certificates Caddy holds for the app's names: issuer, names, expiry."""
    apps.load(app)
    current = settings.load()
    output.echo(f"=====> {app} certificates (TLS {current.tls})")
    for name in domains.names_of(app, current):
        output.echo(certs.describe(name))


# Run by install.sh only (hidden, so never over ssh): a push key may not switch the CA.
@cli.command("setup:tls", hidden=True)
@click.option("--tls", "mode", required=True)
@click.option("--acme-email", default="")
@click.option("--acme-ca", default="")
@click.option("--acme-ca-root", default="")
def setup_tls(mode: str, acme_email: str, acme_ca: str, acme_ca_root: str) -> None:
    """Run by install.sh before setup: how certificates are got (Caddy is loaded by setup)."""
    settings.save(dataclasses.replace(settings.load(), tls=mode, acme_email=acme_email,
                                      acme_ca=acme_ca, acme_ca_root=acme_ca_root))
