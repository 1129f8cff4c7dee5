"""One deploy as data walking through the pipeline: build -> release -> swap -> report.
Callers hold the app's lock."""

import dataclasses

from podku import appjson, apps, build, output, releases, settings, swap
from podku.errors import PodkuError
from podku.releases import Release


class DeployFailed(PodkuError):
    pass


def deploy_revision(app: apps.App, rev: str) -> Release:
    """A pushed revision: build its image, then release it."""
    release_id = releases.next_id(app.name)
    tag = releases.image_tag(app.name, release_id)
    app_json = _app_json(app, rev)
    release = releases.new(app.name, rev, tag, f"Deploy {rev[:7]}", apps.config(app.name), app_json)
    output.step(f"Building {app.name} from {rev[:7]} ...")
    try:
        port = build.build_release(app.paths.repo, rev, tag, app.paths.build_dir(release_id))
    except PodkuError as error:
        releases.save(release.with_outcome(releases.FAILED))
        raise DeployFailed(f"{error}; {_still_serving(app)}") from error
    release = dataclasses.replace(release, port=port)
    releases.save(release)
    return release_to(app, release)


def redeploy(app: apps.App, description: str, source: Release | None = None,
             config: dict[str, str] | None = None) -> Release:
    """A new release from a kept image: config changes, restarts and rollbacks."""
    base = source or live_release(app)
    release = releases.new(app.name, base.rev, base.image, description,
                           base.config if config is None else config, base.app_json, base.port)
    return release_to(app, release)


def live_release(app: apps.App) -> Release:
    if app.live_release is None:
        raise PodkuError(f"{app.name} has not been deployed yet: git push to it first")
    return releases.load(app.name, app.live_release)


def release_to(app: apps.App, release: Release) -> Release:
    """Start `release` beside the live one and swap to it, or leave everything as it was."""
    output.step(f"Releasing {app.name} (release {release.id}) ...")
    try:
        swap.install_units(release)
        output.step(f"Checking release {release.id} through its own socket")
        swap.start_and_check(app, release, release.app_json)
    except BaseException as error:
        swap.abandon(release)
        if isinstance(error, PodkuError):
            raise DeployFailed(f"release {release.id} was not started: {error}; {_still_serving(app)}") from error
        raise
    output.step(f"Switching {app.name} to release {release.id}")
    app = swap.go_live(app, release)
    swap.schedule_retire(app, app.health_checks.wait_to_retire)  # it prunes images too
    output.step("Application deployed:")
    output.detail(settings.load().app_url(app.name))
    return release


def _still_serving(app: apps.App) -> str:
    if app.live_release is None:
        return "the app has no running release"
    return f"release {app.live_release} is still serving"


def _app_json(app: apps.App, rev: str) -> dict:
    text = build.read_file_at(app.paths.repo, rev, "app.json")
    if text is None:
        return {}
    return appjson.parse(text)
