"""apps:rename OLD NEW and apps:clone OLD NEW.

Every name podku gives an app's things (units, containers, images, sockets, timers) is
derived from the app's name (naming.py), and every store lives in its state directory
(stores.APP_STORES). So a rename is a new app beside the old one, swapped in like a release:

    journal     renames/OLD.json says OLD becomes NEW (before anything else changes)
    staged      NEW's state directory: OLD's stores, its release records and images under
                NEW's name (image tags, not copies); no app.json yet, so NEW is not an app
    checked     the live release's image and config as NEW's next release, started beside
                OLD's and checked through its own socket (deploy.release_to)
    record      NEW's app.json names that release live: THE COMMIT POINT; reconcile then
                points sock/NEW.sock at it and starts NEW's workers and timers at OLD's scale
    finish      OLD's app.json goes; the repository moves; every name OLD answered to is
                relinked to NEW's stable socket (one rename each), OLD.DOMAIN is unlinked,
                NEW.DOMAIN linked; after wait-to-retire OLD's units stop, its image tags
                go, its state directory goes; the journal goes last

Until `record`, OLD is the app and serves untouched; a cut-off rename is rolled back (NEW's
units, tags and directory removed). From `record` on, NEW is the app; a cut-off rename is
rolled forward (every finishing step may run again). Whichever applies is done by the next
`apps:rename` and by `podku doctor` (the boot unit runs it) before anything else. Both apps'
locks are held throughout, taken in name order."""

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from podku import (
    apps,
    cron,
    deploy,
    domains,
    lifecycle,
    names,
    naming,
    output,
    proxyconf,
    reconcile,
    releases,
    staticsite,
    stores,
    swap,
)
from podku.errors import UsageError
from podku.host import paths, podman, records, state, systemd
from podku.image import gitrepo
from podku.proxy import routes
from podku.runtime import links

JOURNAL = records.record({
    "old": records.Field(records.APP_NAME, True),
    "new": records.Field(records.APP_NAME, True),
    "routed": records.Field(records.optional(records.TIMESTAMP)),
})


# --- checks before anything changes ----------------------------------------------------------

def _checked_names(old: str, new: str) -> None:
    names.app_name(old)
    names.app_name(new)
    if old == new:
        raise UsageError(f"{old} is already called {new}")
    finish_pending()  # a cut-off rename decides which of its names is an app
    apps.load(old)
    _refuse_taken(new)


def _refuse_taken(new: str) -> None:
    if apps.exists(new):
        raise lifecycle.AppExists(f"app {new} already exists")
    lifecycle.refuse_unit_clash(new)


@contextlib.contextmanager
def _both_locked(first: str, second: str) -> Iterator[None]:
    """Both apps' locks, in name order (two renames of a pair never wait on each other)."""
    with contextlib.ExitStack() as stack:
        for name in sorted((first, second)):
            stack.enter_context(apps.lock(name, must_exist=False))
        yield


# --- apps:rename -------------------------------------------------------------------------------

def rename(old: str, new: str) -> None:
    _checked_names(old, new)
    _refuse_stopped(apps.load(old))
    with _both_locked(old, new):
        _refuse_taken(new)  # asked again under the locks
        current = apps.load(old)
        _refuse_stopped(current)
        deploy.heal(current)
        _write_journal(old, new, None)
        try:
            staged = _stage(current, new)
            swap.step_done("rename-staged")
            _swap_in(staged, current)
        except BaseException:
            if not apps.exists(new):
                _roll_back(old, new)
            raise
        swap.step_done("rename-record")
        _finish(old, new, None)
    output.step(f"Renamed {old} to {new}: push to {new} from now on (git remote set-url)")


def _refuse_stopped(app: apps.App) -> None:
    if app.stopped:
        raise UsageError(f"{app.name} is stopped: `podku ps:start {app.name}` first, then rename it")


def _stage(current: apps.App, new: str) -> apps.App:
    """NEW's state directory from OLD's, without the record that would make NEW an app."""
    target = paths.AppPaths(new)
    for leftover in target.root.iterdir():  # not an app's (it has no record): never mixed in
        if leftover.is_dir():
            _remove_directory(leftover)
        elif leftover.name != "lock":
            leftover.unlink()
    _remove_directory(target.repo)  # left by an app of that name once: OLD's moves there
    target.releases.mkdir(parents=True, exist_ok=True)
    for name in stores.APP_STORES:
        source = current.paths.root / name
        if source.is_file():
            state.write_atomic(target.root / name, source.read_text(), mode=source.stat().st_mode & 0o777)
    for release in releases.all_of(current.name):
        image = _image_as(release.image, new)
        _tag(release.image, image)
        releases.save(dataclasses.replace(release, app=new, image=image))
    return dataclasses.replace(current, name=new)


def _image_as(image: str, app: str) -> str:
    parsed = naming.parse_image(image)
    if parsed is None:
        raise UsageError(f"{image} is not an image podku made")
    return naming.image(app, parsed[1])


def _tag(image: str, tag: str) -> None:
    with state.locked(paths.IMAGES_LOCK, "images", shared=True):
        if podman.engine.image_exists(image):  # a stale tag of that name moves onto this image
            podman.engine.tag_image(image, tag)


def _swap_in(staged: apps.App, current: apps.App) -> None:
    """The commit: NEW's record. With a live release, only once NEW serves it too."""
    if current.live_release is None:
        apps.save(staged)
        return
    live = releases.load(staged.name, current.live_release)
    release = releases.new(staged.name, live.rev, live.image, f"Rename from {current.name}", live.config,
                           live.app_json, live.port, processes=live.processes, static_root=live.static_root)
    if release.static:  # NEW's repository is OLD's until the commit: the files OLD serves
        staticsite.copy_tree(releases.load(current.name, live.id), release)
    deploy.release_to(staged, release)  # its record write (swap.go_live) is the commit


def _roll_back(old: str, new: str) -> None:
    """Before the commit: OLD never stopped serving; what was made for NEW goes."""
    output.warn(f"rename of {old} to {new} undone: {old} is unchanged")
    every = releases.all_of(new) if paths.AppPaths(new).releases.is_dir() else []
    for release in every:
        if reconcile.has_units(release):
            swap.stop_release(release)
    for image in sorted({release.image for release in every}):
        if image.startswith(f"localhost/podku/{new}:"):
            podman.engine.untag_image(image)
    _remove_directory(paths.AppPaths(new).root)
    _journal(old).unlink(missing_ok=True)


def _finish(old: str, new: str, routed: float | None) -> None:
    """After the commit: NEW is the app. Every step may run again after a cut-off one."""
    paths.AppPaths(old).record.unlink(missing_ok=True)
    for line in reconcile.reconcile(apps.load(new)):  # NEW's stable socket before any route names it
        output.warn(f"{new}: {line}")
    _move_repository(old, new)
    if routed is None:
        proxyconf.app_renamed(old, new)
        domains.app_renamed(old, new)
        routed = time.time()
        _write_journal(old, new, routed)
    swap.step_done("rename-routes")
    wait = routed + apps.load(new).health_checks.wait_to_retire - time.time()
    if wait > 0:
        swap.sleep(wait)  # requests OLD accepted before the routes moved finish
    _retire_old(old, new)
    _journal(old).unlink(missing_ok=True)


def _move_repository(old: str, new: str) -> None:
    source, target = paths.AppPaths(old).repo, paths.AppPaths(new).repo
    if source.is_dir() and not target.exists():
        os.rename(source, target)
    gitrepo.prepare(target, new)  # its hook deploys NEW


def _retire_old(old: str, new: str) -> None:
    """OLD's units, timers, image tags and state: gone (its storage and services stay NEW's)."""
    old_paths = paths.AppPaths(old)
    every = releases.all_of(old) if old_paths.releases.is_dir() else []
    for release in every:
        timer = f"{reconcile.retire_timer(old, release.id)}.timer"
        if systemd.active_state(timer) in ("active", "activating"):
            systemd.stop(timer)
        swap.stop_release(release)
    with contextlib.suppress(FileNotFoundError):
        systemd.unit_file(f"{old}.service").unlink()
    cron.remove_all(old)
    routes.remove_site(old)
    staticsite.remove_app(old)
    for image in sorted({release.image for release in every}):
        if podman.engine.image_exists(_image_as(image, new)):
            podman.engine.untag_image(image)  # the image stays, under NEW's name
        else:
            podman.engine.remove_image(image)
    with contextlib.suppress(FileNotFoundError):
        old_paths.stable_socket.unlink()
    _remove_directory(old_paths.root)


def _remove_directory(directory: Path) -> None:
    """Out of the way with one rename, then deleted: never half an app's directory under its name."""
    if not directory.exists():
        return
    doomed = directory.with_name(f".{directory.name}.removed")
    shutil.rmtree(doomed, ignore_errors=True)
    os.rename(directory, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# --- the journal ---------------------------------------------------------------------------------

def _journal(old: str) -> Path:
    return paths.RENAMES / f"{old}.json"


def _write_journal(old: str, new: str, routed: float | None) -> None:
    state.write_json(_journal(old), {"old": old, "new": new, "routed": routed})


def pending() -> list[dict]:
    """Renames under way or cut off, as their journals say (checked like any record)."""
    if not paths.RENAMES.is_dir():
        return []
    found = []
    for path in sorted(paths.RENAMES.glob("*.json")):
        entry = records.read(path, JOURNAL, {})
        if entry.get("old") != path.stem:
            raise records.RecordInvalid(f"the state file {path} is invalid: field old: expected {path.stem}")
        found.append(entry)
    return found


def finish_pending() -> None:
    """Finish each cut-off rename: forward if NEW's record was written, else back."""
    for entry in pending():
        old, new = entry["old"], entry["new"]
        with _both_locked(old, new):
            if not _journal(old).exists():
                continue  # finished by another podku meanwhile
            if apps.exists(new):
                output.warn(f"finishing the rename of {old} to {new}")
                _finish(old, new, entry.get("routed"))
            else:
                _roll_back(old, new)


# --- apps:clone ----------------------------------------------------------------------------------

# What a clone takes of OLD's settings besides its config: like Dokku's apps:clone, the
# definitions (storage mounts name the same directories: the data is shared, not copied);
# not its domains, links or scale.
CLONED_STORES = ("storage.json", "resources.json", "idle.json", "network.json", "builder.json", "git.json")


def clone(old: str, new: str) -> None:
    _checked_names(old, new)
    lifecycle.create(new, quiet=True)
    try:
        with _both_locked(old, new):
            source = apps.load(old)
            _copy_settings(source, new)
            gitrepo.copy_branches(source.paths.repo, paths.AppPaths(new).repo)
            if source.live_release is not None:
                _deploy_clone(source, apps.load(new))
    except BaseException:
        output.warn(f"clone of {old} failed: removing {new}")
        lifecycle.destroy(new)
        raise
    output.step(f"Cloned {old} to {new}")


def _copy_settings(source: apps.App, new: str) -> None:
    for name in CLONED_STORES:
        path = source.paths.root / name
        if path.is_file():
            state.write_atomic(paths.AppPaths(new).root / name, path.read_text())
    config = apps.config(source.name)
    for link in links.load(source.name):
        if config.pop(link["variable"], None) is not None:
            output.warn(f"{new} is not linked to {link['kind']} {link['name']} ({link['variable']} left out): "
                        f"`podku {link['kind']}:link {link['name']} {new}` shares it")
    apps.save_config(new, config)
    apps.save(apps.load(new).updated(checks=source.checks, keep_images=source.keep_images))


def _deploy_clone(source: apps.App, target: apps.App) -> None:
    """OLD's live release as NEW's first: its image under NEW's name, NEW's config."""
    live = releases.load(source.name, source.live_release or 0)
    release_id = releases.next_id(target.name)
    image = naming.image(target.name, release_id)
    _tag(live.image, image)
    release = releases.new(target.name, live.rev, image, f"Clone of {source.name} v{live.id}",
                           apps.config(target.name), live.app_json, live.port, release_id=release_id,
                           processes=live.processes, static_root=live.static_root)
    deploy.release_to(target, release)
