"""The zero-downtime swap: start a release beside the live one, check it through its own
socket, move the app's stable socket symlink to it in one rename, retire the old one later.

Caddy dials the stable path for every new connection, so the rename is the whole handoff:
its config is never touched here."""

import contextlib
import sys

from podku import apps, build, health, output, paths, releases, settings, state, systemd, templates
from podku.releases import Release
from podku.run import run

STOP_TIMEOUT = 10


def env_file(release: Release):
    return paths.AppPaths(release.app).releases / f"{release.id}.env"


def install_units(release: Release) -> None:
    """Render the release's units; they are inert until its socket is started."""
    app_paths = paths.AppPaths(release.app)
    state.write_atomic(env_file(release), release.environment_file(), mode=0o600)
    values = dict(app=release.app, release=release.id, unit=release.unit, image=release.image,
                  container=release.container, env_file=env_file(release), port=release.port,
                  socket_path=app_paths.release_socket(release.id), stop_timeout=STOP_TIMEOUT,
                  podku=paths.PODKU_EXECUTABLE)
    systemd.write_unit(release.socket_unit, templates.render("release.socket.j2", **values))
    if release.port:
        systemd.write_unit(release.web_unit, templates.render("release-bridge.service.j2", **values))
        systemd.write_unit(release.app_unit, templates.render("release-app.service.j2", **values))
    else:
        systemd.write_unit(release.web_unit, templates.render("release.service.j2", **values))
    systemd.reload()


def start_and_check(app: apps.App, release: Release, app_json: dict) -> None:
    """Start the new release's socket and prove, through that socket, that it serves."""
    systemd.start(release.socket_unit)
    checks = health.from_app_json(app_json, app.health_checks)
    host = settings.load().app_host(app.name)
    socket_path = str(app.paths.release_socket(release.id))
    health.check(socket_path, host, checks, log=output.detail)


def go_live(app: apps.App, release: Release) -> apps.App:
    """The handoff: from here on every new connection reaches `release`."""
    state.symlink_atomic(app.paths.release_socket(release.id), app.paths.stable_socket)
    systemd.link(systemd.unit_file(f"{app.name}.service"), release.app_unit)
    systemd.enable(release.socket_unit, "sockets.target")
    if app.live_release is not None:
        previous = releases.load(app.name, app.live_release)
        systemd.disable(previous.socket_unit, "sockets.target")
        releases.save(previous.with_outcome(releases.DRAINING))
    systemd.reload()
    releases.save(release.with_outcome(releases.LIVE))
    live = app.updated(live_release=release.id)
    apps.save(live)
    return live


def stop_release(release: Release) -> None:
    """Stop and forget a release's units (not its record or image)."""
    for unit in release.units:
        if systemd.load_state(unit) != "not-found":
            systemd.stop(unit)
            systemd.reset_failed(unit)
        systemd.remove_unit(unit)
    with contextlib.suppress(FileNotFoundError):
        env_file(release).unlink()
    systemd.reload()


def abandon(release: Release) -> None:
    """A release that failed before the swap: its last log lines, then gone."""
    logs = systemd.journal_tail(release.app_unit)
    if logs:
        output.detail(f"Last log lines of release {release.id}:")
        output.detail(logs)
    stop_release(release)
    releases.save(release.with_outcome(releases.FAILED))


def schedule_retire(app: apps.App, after_seconds: int) -> None:
    """Retire every release but the live one once in-flight requests had time to finish,
    without holding up the push: a transient systemd timer runs `podku ps:retire` later.
    Releases whose retirement failed before are picked up again here."""
    for release_id in _releases_with_units(app):
        scheduled = run(["systemd-run", "--user", "--collect", "--quiet",
                         f"--unit=podku-retire-{app.name}-r{release_id}",
                         f"--on-active={max(after_seconds, 1)}s", "--timer-property=AccuracySec=100ms",
                         sys.executable, "-m", "podku", "ps:retire", app.name, str(release_id)],
                        check=False)
        if scheduled.returncode != 0 and "already" not in scheduled.stdout:
            output.warn(f"could not schedule the retirement of release {release_id}: {scheduled.stdout.strip()}")


def _releases_with_units(app: apps.App) -> list[int]:
    return [release.id for release in releases.all_of(app.name)
            if release.id != app.live_release and systemd.unit_file(release.web_unit).exists()]


def retire(app: apps.App, release_id: int) -> None:
    if app.live_release == release_id:
        return  # rolled back to meanwhile: never stop what serves
    release = releases.load(app.name, release_id)
    stop_release(release)
    if release.outcome in (releases.LIVE, releases.DRAINING):
        releases.save(release.with_outcome(releases.RETIRED))
    prune_images(app)  # its image may have been in use at the swap


def prune_images(app: apps.App) -> None:
    """Keep the images of the newest `keep_images` releases that went live, and the live one's.
    An image still used by a running container stays until that release is retired."""
    every_release = releases.all_of(app.name)
    history = [r for r in every_release if releases.was_live(r)]
    keep = {r.image for r in history[: app.keep_images]}
    keep |= {r.image for r in history if r.id == app.live_release}
    unwanted = {r.image for r in every_release} - keep
    build.remove_images(sorted(unwanted))
