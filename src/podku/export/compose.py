"""An export as a compose file (podman-compose, docker compose): a service per process type,
named volumes for storage. Compose has no cron and no one-off deploy tasks: notes say so."""

import yaml

from podku.export.model import Export


def services(export: Export) -> dict:
    found: dict = {}
    for process in export.processes:
        command = export.web_command(process.command) if process.web else process.command
        service: dict = {"image": export.image}
        if command:
            service["command"] = list(command)
        service["environment"] = {**export.config, **export.environment(process.type)}
        if process.web:
            service["ports"] = [f"{export.port}:{export.port}"]
        if export.mounts:
            service["volumes"] = [f"{mount.volume}:{mount.path}" for mount in export.mounts]
        if export.resources.get("memory"):
            service["mem_limit"] = int(export.resources["memory"])
        if export.resources.get("cpus"):
            service["cpus"] = float(export.resources["cpus"])
        service["labels"] = export.labels(process.type)
        service["restart"] = "always"
        if process.replicas != 1:
            service["deploy"] = {"replicas": process.replicas}
        found[process.name] = service
    return found


def dump(export: Export) -> str:
    document: dict = {"services": services(export)}
    if export.mounts:
        document["volumes"] = {mount.volume: {} for mount in export.mounts}
    if export.cron or export.deploy_tasks:
        export.notes.append("compose has no cron or deploy tasks: the cron entries and predeploy/release "
                            "are not in the compose file (--format kube has them)")
    return (f"# podku export of {export.app}, release {export.release} (apps:export {export.app} --format compose)\n"
            + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120))
