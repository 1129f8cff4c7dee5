"""An export as Kubernetes manifests: one object per template in units/export/kube/, its values
rendered as JSON (tojson), read back as YAML and emitted by PyYAML's emitter, one document each.

The release's predeploy and release commands are a Job, not init containers: an init container
runs once per pod, at every restart and on every replica, while podku runs them once per
release before the swap; a Job named by the release runs once, and the README's commands wait
for it before the Deployments roll out."""

import yaml

from podku import cron, deploytasks
from podku.export.model import Export, Task
from podku.host import templates

TEMPLATES = "export/kube"
DEFAULT_STORAGE_SIZE = "1Gi"
ACCESS_MODE = "ReadWriteOnce"  # one node mounts it: podku's storage is on one host too


def manifests(export: Export, *, storage_size: str = DEFAULT_STORAGE_SIZE, tls_issuer: str = "",
              ingress_class: str = "") -> list[dict]:
    """Every object, in the order `kubectl apply -f` should create them."""
    objects = [_secret(export)]
    objects += [_pvc(export, mount.volume, storage_size) for mount in export.mounts]
    if export.deploy_tasks:
        objects.append(_job(export))
    objects += [_deployment(export, process) for process in export.processes]
    objects.append(_service(export))
    if export.domains:
        objects.append(_ingress(export, tls_issuer, ingress_class))
    objects += [_cronjob(export, number, task) for number, task in enumerate(export.cron, 1)]
    return objects


def dump(objects: list[dict], export: Export) -> str:
    header = (f"# podku export of {export.app}, release {export.release}: "
              f"{len(objects)} objects (apps:export {export.app} --format kube)\n")
    return header + yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True, allow_unicode=True,
                                       default_flow_style=False, width=120)


def _render(kind: str, **values) -> dict:
    return yaml.safe_load(templates.render(f"{TEMPLATES}/{kind}.yaml.j2", **values))


# --- the pieces every pod shares -------------------------------------------------------------

def _secret_name(export: Export) -> str:
    return export.object_name("config")


def _volumes(export: Export) -> list[dict]:
    return [{"name": mount.volume, "persistentVolumeClaim": {"claimName": mount.volume}} for mount in export.mounts]


def _resources(export: Export) -> dict:
    limits: dict[str, str] = {}
    if export.resources.get("memory"):
        limits["memory"] = str(int(export.resources["memory"]))
    if export.resources.get("cpus"):
        limits["cpu"] = f"{round(float(export.resources['cpus']) * 1000)}m"
    return {"requests": dict(limits), "limits": limits} if limits else {}


def _container(export: Export, name: str, process_type: str, command: list[str] | None) -> dict:
    env = [{"name": key, "value": value} for key, value in export.environment(process_type).items()]
    container: dict = {"name": name, "image": export.image}
    if command:
        container["command"] = list(command)
    container |= {"env": env, "envFrom": [{"secretRef": {"name": _secret_name(export)}}]}
    if export.mounts:
        container["volumeMounts"] = [{"name": mount.volume, "mountPath": mount.path} for mount in export.mounts]
    resources = _resources(export)
    if resources:
        container["resources"] = resources
    return container


def _probes(export: Export) -> dict:
    """podku's health check as both probes: readiness as the check before a swap, liveness
    as its restart of a process that stopped answering (given the check's whole time)."""
    checks = export.checks
    if not checks.enabled:
        return {}
    # the port's number, not its name: podman before 4.6 (kube play) reads only numbers
    http = {"path": checks.path, "port": export.port}
    attempts = max(checks.attempts, 1)
    timing = {"timeoutSeconds": max(checks.timeout, 1), "periodSeconds": max(checks.wait, 1),
              "failureThreshold": attempts}
    return {"readinessProbe": {"httpGet": http, "initialDelaySeconds": checks.initial_delay, **timing},
            "livenessProbe": {"httpGet": http, "initialDelaySeconds": checks.longest_seconds, **timing}}


# --- the objects -------------------------------------------------------------------------------

def _secret(export: Export) -> dict:
    return _render("secret", name=_secret_name(export), labels=export.labels("config"), config=export.config)


def _pvc(export: Export, volume: str, size: str) -> dict:
    return _render("pvc", name=volume, volume=volume, labels=export.labels("storage"), size=size,
                   access_mode=ACCESS_MODE)


def _deployment(export: Export, process) -> dict:
    command = export.web_command(process.command) if process.web else process.command
    container = _container(export, process.type.replace("_", "-"), process.type, command)
    if process.web:
        container["ports"] = [{"name": "http", "containerPort": export.port, "protocol": "TCP"}]
        container |= _probes(export)
    return _render("deployment", type=process.type, name=process.name, labels=export.labels(process.type),
                   selector=export.selector(process.type), replicas=process.replicas, container=container,
                   volumes=_volumes(export))


def _service(export: Export) -> dict:
    return _render("service", name=export.object_name("web"), labels=export.labels("web"),
                   selector=export.selector("web"))


def _ingress(export: Export, tls_issuer: str, ingress_class: str) -> dict:
    tls_secret = export.object_name("tls")
    annotations = {"cert-manager.io/cluster-issuer": tls_issuer} if tls_issuer else {}
    return _render("ingress", name=export.object_name("web"), labels=export.labels("web"), annotations=annotations,
                   hosts=export.domains, service=export.object_name("web"), tls=bool(tls_issuer),
                   tls_secret=tls_secret, ingress_class=ingress_class)


def _cronjob(export: Export, number: int, task: Task) -> dict:
    labels = export.labels("cron")
    return _render("cronjob", name=task.name, number=number, labels=labels, schedule=task.schedule,
                   timeout=cron.RUN_TIMEOUT, container=_container(export, "cron", "cron", task.command),
                   volumes=_volumes(export))


def _job(export: Export) -> dict:
    containers = [_container(export, task.name, task.name, task.command) for task in export.deploy_tasks]
    return _render("job", name=export.object_name(f"r{export.release}", "deploy"), labels=export.labels("deploy"),
                   timeout=deploytasks.TASK_TIMEOUT * len(containers), init_containers=containers[:-1],
                   container=containers[-1], volumes=_volumes(export))
