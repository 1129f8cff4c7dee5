"""apps:export: an app's live release as Kubernetes manifests (or a compose file) on stdout,
its image pushed to a registry when one is named (podku.export)."""

import re

import click

from podku import export, output
from podku.cli.base import app_argument, command
from podku.export import ExportInvalid

SIZE = re.compile(r"[1-9][0-9]{0,5}(Mi|Gi|Ti)")
CLUSTER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?")


def _checked(pattern: re.Pattern[str], what: str):
    def check(_ctx, _param, value: str | None) -> str | None:
        if value is not None and not pattern.fullmatch(value):
            raise ExportInvalid(f"invalid {what} {value[:60]!r}")
        return value
    return check


@command("apps:export")
@app_argument
@click.option("--format", "format_", default="kube", show_default=True, metavar="kube|compose",
              help="kube: Kubernetes manifests; compose: a compose file.")
@click.option("--registry", default=None, metavar="HOST[:PORT]/PATH",
              help="Push the live image there (podman's credentials: `podman login` on this host) and name it.")
@click.option("--include-secrets", is_flag=True, help="Put the config's values in the Secret (default: keys only).")
@click.option("--storage-size", default="1Gi", show_default=True, callback=_checked(SIZE, "storage size (like 10Gi)"),
              help="What each storage mount's claim asks for.")
@click.option("--tls-issuer", default=None, callback=_checked(CLUSTER_NAME, "issuer name"),
              help="A cert-manager ClusterIssuer: the Ingress gets TLS from it.")
@click.option("--ingress-class", default=None, callback=_checked(CLUSTER_NAME, "ingress class"),
              help="The Ingress's ingressClassName (default: the cluster's default class).")
def apps_export(app: str, format_: str, registry: str | None, include_secrets: bool, storage_size: str,
                tls_issuer: str | None, ingress_class: str | None) -> None:
    """The app as Kubernetes manifests on stdout (README: Moving to Kubernetes)."""
    text, notes = export.export(app, export.Options(format_, registry, include_secrets, storage_size,
                                                    tls_issuer or "", ingress_class or ""))
    output.echo(text.rstrip("\n"))
    for note in notes:
        output.warn(note)
