"""What an exported app is, in terms of no platform: read once from the app's record and its
live release, then rendered by kube.py (Kubernetes) or compose.py. Nothing here names a path
on this host: storage is a volume name, the config a set of keys (values only when asked)."""

import re
from dataclasses import dataclass, field

from podku import apps, cron, deploy, deploytasks, domains, health, processes
from podku.errors import UsageError
from podku.image import procfile
from podku.image.builders import web
from podku.releases import Release
from podku.runtime import storage

LAUNCHER = "/podku/listen.py"  # where the export image has units/export/listen.py
# A Kubernetes object name: a DNS-1123 label that starts with a letter (a Service's rule),
# at most 52 characters (a CronJob's, whose Jobs add 11).
MAX_NAME = 52
OBJECT_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")


class ExportInvalid(UsageError):
    pass


@dataclass(frozen=True)
class Process:
    type: str
    name: str  # the object's name: APP-TYPE
    command: list[str] | None  # None: the image's own entrypoint and command
    replicas: int
    web: bool = False


@dataclass(frozen=True)
class Task:
    """A one-off command: a cron entry or a deploy task (predeploy, release)."""

    name: str  # a cron entry's object name; a deploy task's kind (predeploy, release)
    command: list[str]
    schedule: str = ""


@dataclass(frozen=True)
class Mount:
    volume: str  # podku's storage name: the claim's name
    path: str


@dataclass(frozen=True)
class Export:
    app: str
    release: int
    image: str  # the image the manifests name
    port: int
    socket_activated: bool  # the app takes fd 3: its web command runs under the launcher
    processes: list[Process]
    config: dict[str, str]  # values "" unless the secrets were asked for
    checks: health.Checks
    resources: dict  # memory (bytes), cpus, pids: the release's limits
    mounts: list[Mount]
    domains: list[str]
    cron: list[Task]
    deploy_tasks: list[Task]  # predeploy then release, in podku's order
    postdeploy: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # what the export leaves out, for stderr

    def object_name(self, *parts: str) -> str:
        return object_name(self.app, *parts)

    def labels(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.app, "app.kubernetes.io/component": component,
                "app.kubernetes.io/managed-by": "podku", "podku.app": self.app, "podku.release": str(self.release)}

    def selector(self, component: str) -> dict[str, str]:
        """What a Deployment's selector matches: never the release (a selector is immutable)."""
        return {"app.kubernetes.io/name": self.app, "app.kubernetes.io/component": component}

    def environment(self, process_type: str) -> dict[str, str]:
        """What podku sets beside the config; PORT for every process, as the app may read it."""
        return {"PODKU_APP": self.app, "PODKU_RELEASE": str(self.release),
                "PODKU_PROCESS_TYPE": process_type, "PORT": str(self.port)}

    def web_command(self, command: list[str] | None) -> list[str] | None:
        """An fd 3 app's web command, run by the launcher that binds the port."""
        if not self.socket_activated:
            return command
        return ["python3", LAUNCHER, str(self.port), "--", *(command or [])]


def object_name(app: str, *parts: str) -> str:
    """APP-PART-...: a valid Kubernetes object name, or ExportInvalid saying why not."""
    name = "-".join([app, *parts]).replace("_", "-")
    if len(name) > MAX_NAME or not OBJECT_NAME.fullmatch(name) or "--" in name:
        raise ExportInvalid(f"cannot export {app}: {name!r} is not a Kubernetes object name "
                            f"(a letter first, then a-z, 0-9 and single dashes, at most {MAX_NAME} characters)")
    return name


def build(app: apps.App, image: str, include_secrets: bool, image_command: list[str] | None = None) -> Export:
    """The export of `app`'s live release. `image_command` is the image's entrypoint and
    command, needed only for an fd 3 app without a Procfile web command."""
    release = deploy.live_release(app)
    socket_activated = release.port is None
    if socket_activated and not release.processes.get(processes.WEB) and not image_command:
        raise ExportInvalid(f"cannot export {app.name}: its image has no command and its Procfile no web line")
    scale = processes.scale_of(app, release)
    process_list = [_process(app.name, release, name, scale[name], image_command) for name in processes.types(release)]
    if len({p.name for p in process_list}) < len(process_list):
        raise ExportInvalid(f"cannot export {app.name}: two process types differ only in '_' and '-'")
    tasks = deploytasks.scripts(release.app_json)
    deploy_tasks = [Task(name, argv) for name, argv in
                    (("predeploy", tasks.get("predeploy")), ("release", release.processes.get(procfile.RELEASE)))
                    if argv]
    return Export(
        app=app.name, release=release.id, image=image,
        port=release.port or web.APP_PORT, socket_activated=socket_activated,
        processes=process_list,
        config={key: value if include_secrets else "" for key, value in sorted(release.config.items())},
        checks=health.from_app_json(release.app_json, app.health_checks),
        resources=dict(release.resources),
        mounts=[Mount(*storage.parse_mount(entry)) for entry in release.mounts],
        domains=[name for name in domains.names_of(app.name) if not name.replace(".", "").isdigit()],
        cron=[Task(object_name(app.name, "cron", str(item.id)), item.argv, item.schedule)
              for item in cron.entries(release.app_json)],
        deploy_tasks=deploy_tasks, postdeploy=tasks.get("postdeploy"),
        notes=_notes(release, app, include_secrets),
    )


def _process(app: str, release: Release, process_type: str, replicas: int,
             image_command: list[str] | None) -> Process:
    is_web = process_type == processes.WEB
    command = release.processes.get(process_type) or (image_command if is_web and release.port is None else None)
    return Process(process_type, object_name(app, process_type), command, replicas, is_web)


def _notes(release: Release, app: apps.App, include_secrets: bool) -> list[str]:
    notes = []
    if release.config and not include_secrets:
        notes.append(f"the Secret {object_name(app.name, 'config')} lists the config keys with empty values: "
                     "add --include-secrets to export the values")
    if release.resources.get("pids"):
        notes.append("Kubernetes has no per-container task limit: the pids limit is not exported")
    if app.health_checks.content or health.from_app_json(release.app_json, app.health_checks).content:
        notes.append("a probe cannot check the response body: the health check's content is not exported")
    if deploytasks.scripts(release.app_json).get("postdeploy"):
        notes.append("postdeploy is not exported: run it after the rollout (kubectl exec or a Job of your own)")
    if release.links:
        notes.append("linked services (postgres, redis) are not exported: their sockets are on this host")
    return notes
