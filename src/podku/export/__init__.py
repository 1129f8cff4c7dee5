"""apps:export: an app as another platform runs it. model.py reads the app once (no host
paths, secrets only when asked), kube.py renders Kubernetes manifests, compose.py a compose
file, image.py makes and pushes the image they name. Above the core: nothing in the core
imports this package."""

from dataclasses import dataclass

from podku import apps, deploy
from podku.export import compose, image, kube, model
from podku.export.model import ExportInvalid

FORMATS = ("kube", "compose")


@dataclass(frozen=True)
class Options:
    format: str = "kube"
    registry: str | None = None
    include_secrets: bool = False
    storage_size: str = kube.DEFAULT_STORAGE_SIZE
    tls_issuer: str = ""
    ingress_class: str = ""


def export(app_name: str, options: Options) -> tuple[str, list[str]]:
    """(the manifests, notes for stderr). Everything is checked before the image is pushed."""
    if options.format not in FORMATS:
        raise ExportInvalid(f"unknown export format {options.format[:40]!r}: use one of {', '.join(FORMATS)}")
    registry = image.registry(options.registry) if options.registry is not None else None
    app = apps.load(app_name)
    release = deploy.live_release(app)
    target = image.name(release, registry)
    found = model.build(app, target, options.include_secrets, image.image_command(release))
    if options.format == "kube":
        text = kube.dump(kube.manifests(found, storage_size=options.storage_size, tls_issuer=options.tls_issuer,
                                        ingress_class=options.ingress_class), found)
    else:
        text = compose.dump(found)
    notes = list(found.notes)
    if registry is None:
        notes.append(f"the image is named {target}: add --registry HOST[:PORT]/PATH to push it"
                     + (" with the launcher layer it needs" if found.socket_activated else ""))
    else:
        image.publish(release, found.socket_activated, target)
        notes.append(f"pushed {target}")
    return text, notes
