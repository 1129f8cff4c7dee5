"""One deploy as data walking through the pipeline: build -> release -> swap -> report.
Callers hold the app's lock. Every deploy first reconciles the app with its record, so that
whatever a cut-off swap left behind is healed before anything new starts."""

import dataclasses
from collections.abc import Callable

from podku import appjson, apps, deploytasks, naming, output, processes, reconcile, releases, swap
from podku.errors import PodkuError, UsageError
from podku.host import settings
from podku.image import build, builders, prebuilt, procfile, source
from podku.image.builders import static
from podku.releases import Release


class DeployFailed(PodkuError):
    pass


def deploy_revision(app: apps.App, rev: str) -> Release:
    """A pushed revision: build its image, then release it."""
    heal(app)
    release_id = releases.next_id(app.name)
    tag = releases.image_tag(app.name, release_id)
    subdirectory = source.load(app.name).build_dir
    app_json = _app_json(app, rev)
    procs = _procfile(app, rev)
    release = releases.new(app.name, rev, tag, f"Deploy {rev[:7]}", apps.effective_config(app.name), app_json,
                           release_id=release_id)
    output.step(f"Building {app.name} from {rev[:7]} ...")
    try:
        built = build.build_release(app.paths.repo, rev, tag, app.paths.build_dir(release_id), subdirectory)
    except PodkuError as error:
        releases.save(release.with_outcome(releases.Outcome.FAILED))
        raise DeployFailed(f"{error}; {_still_serving(app)}") from error
    kept = _runtime_processes(built.builder, procs)
    release = dataclasses.replace(release, port=built.port, processes=kept,
                                  static_root=subdirectory if _serves_files(built.builder, kept) else None)
    releases.save(release)
    return release_to(app, release, tasks=True)


def deploy_image(app: apps.App, fetch: Callable[[str, int], prebuilt.Loaded], description: str) -> Release:
    """An image built elsewhere (image/prebuilt.py), stored by `fetch(tag, release id)` as
    the release's image, then released like a push: same swap, check and rollback. A refused
    image leaves nothing behind: no release is recorded before it is stored."""
    release_id = releases.next_id(app.name)
    tag = releases.image_tag(app.name, release_id)
    loaded = fetch(tag, release_id)
    heal(app)
    release = releases.new(app.name, loaded.image_id.removeprefix("sha256:"), tag,
                           description, apps.config(app.name),
                           port=build.exposed_port(tag), release_id=release_id, source=loaded.source)
    return release_to(app, release, tasks=True)


def deploy_again(app: apps.App, release: Release) -> Release:
    """Make `release`'s image anew from where it came from (ps:rebuild, backup:import): its
    revision built again, or its registry image pulled again. A loaded archive is not kept:
    only the image is, and that may be gone."""
    if release.source.startswith(prebuilt.PULLED):
        reference = release.source.removeprefix(prebuilt.PULLED)
        return deploy_image(app, lambda tag, release_id: prebuilt.pull_reference(
            reference, tag, naming.build_unit(app.name, release_id)), "Pull the image again")
    if release.source:
        raise UsageError(f"release {release.id} of {app.name} is an image sent with git:load-image: "
                         f"send it again (git:load-image {app.name} < image.tar), or ps:restart the live one")
    return deploy_revision(app, release.rev)


def redeploy(app: apps.App, description: str, source: Release | None = None,
             config: dict[str, str] | None = None) -> Release:
    """A new release from a kept image: config changes (`config`: the app's own new values),
    restarts and setting changes (the app's config as stored), rollbacks (`source`'s config).
    Every release but a rollback runs with the global config under the app's own."""
    heal(app)
    base = source or live_release(app)
    environment = source.config if source is not None and config is None else apps.effective_config(app.name, config)
    release = releases.new(app.name, base.rev, base.image, description, environment, base.app_json, base.port,
                           release_id=releases.next_id(app.name), processes=base.processes, source=base.source,
                           static_root=base.static_root)
    return release_to(app, release, tasks=config is not None)


def heal(app: apps.App) -> None:
    """Reconcile before a swap starts, and say what had to be fixed. A live release that
    cannot serve does not stop the deploy: the new release replaces it."""
    try:
        fixed = reconcile.reconcile(app)
    except reconcile.ReconcileError as error:
        output.warn(str(error))
        return
    for line in fixed:
        output.warn(f"repaired: {line}")


def live_release(app: apps.App) -> Release:
    if app.live_release is None:
        raise PodkuError(f"{app.name} has not been deployed yet: git push to it first")
    return releases.load(app.name, app.live_release)


def release_to(app: apps.App, release: Release, tasks: bool = False) -> Release:
    """Start `release` beside the live one and swap to it, or leave everything as it was.
    With `tasks`, its predeploy and release tasks run before and postdeploy after the swap."""
    output.step(f"Releasing {app.name} (release {release.id}) ...")
    try:
        swap.install_units(release)
        swap.step_done("units")
        if tasks:
            deploytasks.before_swap(release, str(swap.env_file(release)))
        output.step(f"Checking release {release.id}'s files" if release.static
                    else f"Checking release {release.id} through its own socket")
        swap.start_and_check(app, release)
        swap.step_done("checked")
    except BaseException as error:
        swap.abandon(release)
        if isinstance(error, PodkuError):
            raise DeployFailed(f"release {release.id} was not started: {error}; {_still_serving(app)}") from error
        raise
    output.step(f"Switching {app.name} to release {release.id}")
    app = swap.go_live(app, release)  # it schedules the old release's retirement too
    if tasks:
        deploytasks.after_swap(release, str(swap.env_file(release)))
    output.step("Application deployed:")
    output.detail(settings.load().app_url(app.name))
    return release


def rollback_target(app: apps.App, wanted: int | None) -> Release:
    """The release named, or else the newest one before the live one that once served."""
    if app.live_release is None:
        raise UsageError(f"{app.name} has not been deployed yet: nothing to roll back to")
    if wanted is None:
        earlier = [r for r in releases.all_of(app.name)
                   if r.id < app.live_release and releases.was_live(r)]
        if not earlier:
            raise UsageError(f"{app.name} has no earlier release to roll back to")
        target = earlier[0]
    else:
        target = releases.load(app.name, wanted)
        if not releases.was_live(target):
            raise UsageError(f"release {wanted} of {app.name} never served ({target.outcome}): not a rollback target")
    if target.id == app.live_release:
        raise UsageError(f"release {target.id} is already live")
    if not build.image_exists(target.image):
        raise UsageError(f"the image of release {target.id} was pruned: it cannot be rolled back to")
    return target


def _still_serving(app: apps.App) -> str:
    if app.live_release is None:
        return "the app has no running release"
    return f"release {app.live_release} is still serving"


def _runtime_processes(builder: str, procs: procfile.Processes) -> procfile.Processes:
    """A builder already made the Procfile's web line the image's command, adapted to the
    release's socket (gunicorn, uvicorn --fd 3, or $PORT): it must not be overridden again."""
    if builder == builders.CONTAINERFILE:
        return procs
    return {name: argv for name, argv in procs.items() if name != processes.WEB}


def _serves_files(builder: str, procs: procfile.Processes) -> bool:
    """A static site with no other process type is served by Caddy from its files; its image
    (podku's small server) is still built, for apps:export and a later switch."""
    return builder == static.BUILDER.name and not procs


def _procfile(app: apps.App, rev: str) -> procfile.Processes:
    """The Procfile at `rev` (in the build-dir), checked before anything is built ({} without one)."""
    text = build.read_file_at(app.paths.repo, rev, source.in_build_dir(source.load(app.name).build_dir, "Procfile"))
    return {} if text is None else procfile.parse(text)


def _app_json(app: apps.App, rev: str) -> dict:
    text = build.read_file_at(app.paths.repo, rev, source.in_build_dir(source.load(app.name).build_dir, "app.json"))
    if text is None:
        return {}
    return appjson.parse(text)
