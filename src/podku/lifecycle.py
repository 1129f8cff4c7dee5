"""Apps coming and going: create, destroy. Routes in Caddy change only here."""

import contextlib

from podku import apps, cron, domains, names, oneoff, output, releases, staticsite, swap
from podku.errors import UsageError
from podku.host import paths, systemd
from podku.image import build, gitrepo


class AppExists(UsageError):
    pass


def create(name: str, quiet: bool = False) -> apps.App:
    names.app_name(name)
    refuse_unit_clash(name)
    app = apps.App(name=name)
    with apps.lock(name, must_exist=False):
        if apps.exists(name):  # asked under the lock: two pushes to a new name create it once
            raise AppExists(f"app {name} already exists")
        app.paths.releases.mkdir(parents=True, exist_ok=True)
        gitrepo.prepare(app.paths.repo, name)
        apps.save(app)
        try:
            domains.app_created(name)  # a link in the hosts directory: no Caddy reload
        except BaseException:
            apps.remove_state(name)  # no app without its route
            raise
    if not quiet:
        output.step(f"Creating {name}... done")
    return app


def destroy(name: str) -> None:
    app = apps.load(name)
    with apps.lock(name):
        for release in releases.all_of(name):
            swap.stop_release(release)
        with contextlib.suppress(FileNotFoundError):
            systemd.unit_file(f"{name}.service").unlink()
        cron.remove_all(name)
        oneoff.remove_all(name)
        build.remove_images(sorted({r.image for r in releases.all_of(name)}), wait=True)
        domains.app_destroyed(name)
        staticsite.remove_app(name)
        apps.remove_state(name)
    output.step(f"Destroying {app.name}... done")


def refuse_unit_clash(name: str) -> None:
    """`systemctl --user status APP` must mean the app: refuse names systemd already knows."""
    if systemd.load_state(f"{name}.service") not in ("not-found", ""):
        raise UsageError(f"invalid app name {name!r}: the unit {name}.service already exists")
    if (paths.SYSTEMD_UNITS / f"{name}.service").exists():
        raise UsageError(f"invalid app name {name!r}: {name}.service is already a unit file")
