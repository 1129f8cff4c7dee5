"""The zero-downtime swap: start a release beside the live one, check it through its own
socket, move the app's stable socket symlink to it in one rename, retire the old one later.
Caddy dials the stable path for every new connection, so the rename is the whole handoff:
its config is never touched here.

One record says what is live: the app record's `live_release`; reconcile.py derives the rest
from it. The steps (each a value of PODKU_CRASH_AFTER, the crash tests' fault injection) and
why a crash between any two of them heals: ARCHITECTURE.md, "The swap, step by step"."""

import contextlib
import os
import time
from pathlib import Path
from typing import NoReturn

from podku import apps, health, naming, output, processes, reconcile, releases, staticsite
from podku.host import paths, podman, settings, state, systemd, templates
from podku.image import build
from podku.releases import Outcome, Release
from podku.runtime import bridge, gunicorn

STOP_TIMEOUT = 10
CRASH_AFTER_ENV = "PODKU_CRASH_AFTER"
CRASH_EXIT_CODE = 75
STEPS = ("units", "checked", "record", *reconcile.STEPS)


def _die() -> NoReturn:
    os._exit(CRASH_EXIT_CODE)


def step_done(step: str) -> None:
    """Fault injection for tests/host/test_crash_heal.py: exit at once, like a kill, right
    after the step PODKU_CRASH_AFTER names. Nothing else reads that variable."""
    if os.environ.get(CRASH_AFTER_ENV) == step:
        _die()


def env_file(release: Release) -> Path:
    return paths.AppPaths(release.app).env_file(release.id)


def install_units(release: Release) -> None:
    """Render the release's units; they are inert until its socket is started. A static
    release has its files written instead (its env file serves app.json's tasks)."""
    app_paths = paths.AppPaths(release.app)
    state.write_if_changed(env_file(release), release.environment_file(), mode=0o600)
    for name, value in release.secrets().items():
        podman.engine.put_secret(name, value)
    if release.static:
        staticsite.install(release)
        return
    gunicorn.install()
    values = dict(app=release.app, release=release.id, unit=release.unit, image=release.image,
                  container=release.container, env_file=env_file(release), port=release.port,
                  socket_path=app_paths.release_socket(release.id), stop_timeout=STOP_TIMEOUT,
                  podku=paths.PODKU_EXECUTABLE, command=processes.web_command(release),
                  pidfile=bridge.pidfile(release.container),
                  **runtime_values(release))
    systemd.write_unit(release.socket_unit, templates.render("release.socket.j2", **values))
    processes.install_units(release, values)
    systemd.write_unit(release.app_unit, templates.render("release.service.j2", **values))
    if release.bridged:
        systemd.write_unit(release.web_unit, templates.render("release-bridge.service.j2", **values))
    if release.inner_socket_unit:
        systemd.write_unit(release.inner_socket_unit, templates.render("release-inner.socket.j2", **values))
    systemd.reload()


def runtime_values(release: Release) -> dict:
    """Template values from the release's runtime settings: limits, storage, idle timeout, network."""
    return dict(extra_flags=[*release.podman_flags(), *gunicorn.podman_flags(release.config)], network=release.network,
                idle_timeout=release.idle_timeout, inner_socket=release.inner_socket_unit,
                inner_socket_path=inner_socket_path(release), socket_proxyd=bridge.SOCKET_PROXYD)


def inner_socket_path(release: Release) -> Path:
    return paths.AppPaths(release.app).release_socket(release.id).with_name(naming.inner_socket_file(release.id))


def start_and_check(app: apps.App, release: Release) -> None:
    """Start the new release's socket and prove, through that socket, that it serves (a
    static release: that its files hold what `/` answers with)."""
    if release.static:
        staticsite.check(release)
        return
    systemd.start(release.socket_unit)
    checks = health.from_app_json(release.app_json, app.health_checks)
    host = settings.load().app_host(app.name)
    socket_path = str(app.paths.release_socket(release.id))
    health.check(socket_path, host, checks, log=output.detail)


def go_live(app: apps.App, release: Release) -> apps.App:
    """The handoff: write the record, then derive everything else from it."""
    live = app.updated(live_release=release.id, stopped=False)
    apps.save(live)
    step_done("record")
    reconcile.reconcile(live, after_step=step_done)
    return live


def stop_release(release: Release) -> None:
    """Stop and forget a release's units (not its record or image)."""
    processes.forget(release)
    for unit in release.units:
        if systemd.load_state(unit) != "not-found":
            systemd.stop(unit)
            systemd.reset_failed(unit)
        systemd.remove_unit(unit)
    for leftover in (env_file(release), bridge.pidfile(release.container)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    for name in release.secret_names().values():
        podman.engine.remove_secret(name)
    staticsite.remove(release)
    systemd.reload()


def abandon(release: Release) -> None:
    """A release that failed before the swap: its last log lines, then gone."""
    logs = "" if release.static else systemd.journal_tail(release.app_unit)
    if logs:
        output.detail(f"Last log lines of release {release.id}:")
        output.detail(logs)
    stop_release(release)
    releases.save(release.with_outcome(Outcome.FAILED))


def retire(app: apps.App, release_id: int) -> None:
    """Stop a release that no longer serves (run by a timer after a swap). Reconcile first:
    after a swap cut off before its `symlink` step, new connections still reach the old
    release until reconcile moves the symlink."""
    for line in reconcile.reconcile(app):
        output.warn(f"{app.name}: {line}")
    if app.live_release != release_id:  # else rolled back to meanwhile: never stop what serves
        drain(app)
        release = releases.load(app.name, release_id)
        stop_release(release)
        releases.save(release.with_outcome(reconcile.wanted_outcome(release, app.live_release, with_units=False)))
        reconcile.reconcile(app)  # a static site's stable socket stops naming the retired one's
    prune_images(app)  # its image may have been in use at the swap


def drain(app: apps.App) -> None:
    """Stop nothing sooner than wait-to-retire after the stable symlink (or the static
    site's live link) last moved: requests accepted before the handoff may still be in flight."""
    moved = [staticsite.handoff_time(app.name)]
    with contextlib.suppress(FileNotFoundError):
        moved.append(os.lstat(app.paths.stable_socket).st_mtime)
    handoff = max((when for when in moved if when is not None), default=None)
    if handoff is None:
        return
    wait = handoff + app.health_checks.wait_to_retire - time.time()
    if wait > 0:
        sleep(wait)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def prune_images(app: apps.App) -> None:
    """Keep the images of the newest `keep_images` releases that went live, and the live one's.
    An image still used by a running container stays until that release is retired."""
    every_release = releases.all_of(app.name)
    history = [r for r in every_release if releases.was_live(r)]
    keep = {r.image for r in history[: app.keep_images]}
    keep |= {r.image for r in history if r.id == app.live_release}
    unwanted = {r.image for r in every_release} - keep
    build.remove_images(sorted(unwanted))
