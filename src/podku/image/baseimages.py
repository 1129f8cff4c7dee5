"""Base images the builders build on, made on the host from Debian packages: rootless
mmdebstrap piped into `podman import` (no registry is needed, none is trusted)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from podku import output
from podku.errors import PodkuError
from podku.host import podman
from podku.host.commands import child_env, last_line

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# what an error quotes when the command printed nothing
NO_OUTPUT = "no output"


@dataclass(frozen=True)
class Base:
    name: str
    image: str
    packages: tuple[str, ...]
    # More mmdebstrap --customize-hook commands ("$1" is the root), run after the cleanup.
    hooks: tuple[str, ...] = ()


class BaseImageFailed(PodkuError):
    pass


def exists(image: str) -> bool:
    return podman.engine.image_exists(image)


def mmdebstrap_argv(chosen: Base, mirror: str) -> list[str]:
    return ["mmdebstrap", "--quiet", "--mode=unshare", "--variant=apt", "--format=tar",
            f"--include={','.join(chosen.packages)}",
            "--customize-hook=rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
            *(f"--customize-hook={hook}" for hook in chosen.hooks),
            SUITE, "-", mirror]


def build(chosen: Base, mirror: str = DEFAULT_MIRROR) -> None:
    """mmdebstrap ... - MIRROR | podman import - IMAGE, without a shell between them."""
    output.step(f"Building the base image {chosen.image} from Debian packages (a minute or two)")
    env = child_env()
    with subprocess.Popen(mmdebstrap_argv(chosen, mirror), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env) as debootstrap:
        assert debootstrap.stdout is not None and debootstrap.stderr is not None
        imported = podman.engine.import_image(chosen.image, debootstrap.stdout)
        debootstrap.stdout.close()
        errors = debootstrap.stderr.read().decode(errors="replace").strip()
    if debootstrap.returncode != 0:
        raise BaseImageFailed(f"mmdebstrap failed for {chosen.image}: {last_line(errors, NO_OUTPUT)}")
    if imported.returncode != 0:
        raise BaseImageFailed(f"podman import of {chosen.image} failed: {last_line(imported.stdout, NO_OUTPUT)}")
    output.detail(f"built {chosen.image}")


def ensure(chosen: Base) -> None:
    """Build a builder's base on first use; a build holds the images lock shared already."""
    if not exists(chosen.image):
        build(chosen)
