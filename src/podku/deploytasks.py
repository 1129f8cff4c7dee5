"""One-off tasks of a deploy, each a container of the new release's image and config, its
output streamed into the push:
  predeploy   app.json scripts.dokku.predeploy, before the swap: a failure rejects the push
  release     the Procfile's `release` command, after predeploy, before the swap: likewise
  postdeploy  app.json scripts.dokku.postdeploy, after the swap: a failure is reported only
They run on every deploy of a pushed revision, config change and ps:rebuild, not on
ps:restart or rollback (no new code or config). Unlike Dokku, what predeploy changes in the
container is not committed to the image. The release's network (outbound only, or none with
egress off), limits and storage mounts, like every container of the release (a migration sees
the app's data, and a task cannot take more of the host than the app may)."""

from typing import Any

from podku import oneoff, output
from podku.errors import PodkuError, UsageError
from podku.host import podman
from podku.image import procfile
from podku.releases import Release

TASK_TIMEOUT = 1800  # seconds; podman kills the container after that
SCRIPTS = ("predeploy", "postdeploy")


class TaskFailed(PodkuError):
    pass


def scripts(app_json: dict[str, Any]) -> dict[str, list[str]]:
    """scripts.dokku.{predeploy,postdeploy} as argument lists, checked."""
    section = app_json.get("scripts")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise UsageError("app.json scripts must be an object")
    dokku = section.get("dokku", {})
    if not isinstance(dokku, dict):
        raise UsageError("app.json scripts.dokku must be an object")
    return {name: procfile.split_command(dokku[name], f"app.json scripts.dokku.{name}")
            for name in SCRIPTS if name in dokku}


def before_swap(release: Release, env_file: str) -> None:
    found = scripts(release.app_json)
    if "predeploy" in found:
        run_task(release, "predeploy", found["predeploy"], env_file)
    if procfile.RELEASE in release.processes:
        run_task(release, procfile.RELEASE, release.processes[procfile.RELEASE], env_file)


def after_swap(release: Release, env_file: str) -> None:
    argv = scripts(release.app_json).get("postdeploy")
    if argv is None:
        return
    try:
        run_task(release, "postdeploy", argv, env_file)
    except TaskFailed as error:
        output.warn(f"{error} (release {release.id} is live)")


def run_task(release: Release, name: str, argv: list[str], env_file: str) -> None:
    output.step(f"Running {name} task of release {release.id}: {output.one_line(' '.join(argv))[:200]}")
    container = f"{release.container}-{name}"
    options = ["--rm", "--replace", "--name", container, f"--network={release.network}",
               "--timeout", str(TASK_TIMEOUT), "--env-file", env_file,
               "--label", f"podku.app={release.app}", "--label", f"{oneoff.LABEL}={release.app}",
               *release.podman_flags()]
    try:
        podman.engine.run_task([*options, release.image, *argv], output.detail)
    except PodkuError as error:
        code = getattr(error, "returncode", None)
        raise TaskFailed(f"the {name} task failed" + (f" with exit code {code}" if code else "")) from error
