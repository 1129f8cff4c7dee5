"""Redis as a podku service: redis:create, destroy, list, info, link, unlink.

Like postgres.py: a rootless container of `localhost/podku/redis:7` (Debian's redis-server)
run by podku-redis@NAME.service, enabled and restarted on failure, with no network at all
(`port 0`): only its unix socket, whose directory a link mounts into the app. Sized for a
1 GB host: maxmemory 32mb with allkeys-lru, an append-only file. Its password is in its
config file (~/.local/share/podku/services/redis/NAME/redis.conf, mounted read-only), never
on a command line."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from podku import names, naming, output, services
from podku.errors import UsageError
from podku.host import podman, records, state, systemd, templates
from podku.image import baseimages

KIND = "redis"
VERSION = "7"
BASE = baseimages.Base(KIND, f"localhost/podku/redis:{VERSION}", ("redis-server",),
                       hooks=('rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale',))
DATA_MOUNT = "/var/lib/redis"
SOCKET_MOUNT = "/run/redis"
SOCKET_FILE = "redis.sock"
CONFIG_MOUNT = "/etc/redis/podku.conf"
STOP_TIMEOUT = 30
READY_TIMEOUT = 60.0
SETTINGS = (
    ("port", "0"),  # no TCP at all: the unix socket only
    ("unixsocket", f"{SOCKET_MOUNT}/{SOCKET_FILE}"),
    ("unixsocketperm", "777"),
    ("dir", DATA_MOUNT),
    ("maxmemory", "32mb"),
    ("maxmemory-policy", "allkeys-lru"),
    ("appendonly", "yes"),
    ("appendfsync", "everysec"),
    ("daemonize", "no"),
    ("logfile", '""'),
)


@dataclass(frozen=True)
class Service(services.Named):
    KIND: ClassVar[str] = KIND
    name: str
    password: str
    created: float
    version: str = VERSION

    @property
    def config_file(self) -> Path:
        return self.paths.root / "redis.conf"

    @property
    def url(self) -> str:
        """REDIS_URL as a linked app sees it: the socket's path after `unix://`, the password as
        a query parameter, which redis-py (4 and later) and ioredis (5 and 6) both read. The
        password before the path (`unix://:PASSWORD@/...`, what links made before) is read by
        redis-py and ioredis 5, but ioredis 6 takes it for part of the path."""
        return f"unix://{naming.service_socket_mount(KIND, self.name)}/{SOCKET_FILE}?password={self.password}"


def schema(name: str) -> records.Schema:
    return services.record_schema(name, VERSION)


def from_record(data: object, name: str, where: Path | str) -> Service:
    return Service(**records.parse(data, schema(name), where))


def exists(name: str) -> bool:
    return services.exists(KIND, name)


def load(name: str) -> Service:
    data, path = services.read_record(KIND, name)
    return from_record(data, name, path)


def save(service: Service) -> None:
    data = asdict(service)
    from_record(data, service.name, service.paths.record)  # never write what load would refuse
    services.write_record(service.paths.record, data)


def all_names() -> list[str]:
    return services.all_names(KIND)


def config_text(service: Service) -> str:
    checked = from_record(asdict(service), service.name, "the new service")
    lines = [f"{key} {value}" for key, value in SETTINGS] + [f"requirepass {checked.password}"]
    return "# Rendered by podku: redis service " + service.name + "\n" + "\n".join(lines) + "\n"


def create(name: str) -> Service:
    names.service_name(name)
    with services.lock(KIND, name):
        if exists(name):
            raise UsageError(f"redis service {name} already exists")
        baseimages.ensure(BASE)
        service = Service(name=name, password=secrets.token_hex(24), created=time.time())
        output.step(f"Creating redis {name}")
        try:
            services.prepare_directories(KIND, name)
            state.write_atomic(service.config_file, config_text(service), mode=0o644)
            install_unit(service)
            save(service)
            systemd.start(service.unit)
            wait_ready(service)
            systemd.enable(service.unit, "default.target")
        except BaseException:
            services.remove(KIND, name, [service.container])
            raise
    output.detail(f"redis {name} is running: redis:link {name} APP gives an app its REDIS_URL")
    return service


def unit_values(service: Service) -> dict:
    return dict(name=service.name, image=BASE.image, container=service.container, stop_timeout=STOP_TIMEOUT,
                sockets=service.paths.sockets, config=CONFIG_MOUNT,
                volumes=[f"{service.paths.data}:{DATA_MOUNT}:U", f"{service.paths.sockets}:{SOCKET_MOUNT}:U",
                         f"{service.config_file}:{CONFIG_MOUNT}:ro"])


def install_unit(service: Service) -> None:
    systemd.write_unit(service.unit, templates.render("service-redis.service.j2", **unit_values(service)))
    systemd.reload()


def wait_ready(service: Service, timeout: float = READY_TIMEOUT) -> None:
    """Until the server answers on its socket (NOAUTH is an answer: no password on a command line)."""
    probe = ["redis-cli", "-s", f"{SOCKET_MOUNT}/{SOCKET_FILE}", "ping"]

    def ready() -> bool:
        result = podman.engine.exec_in(service.container, probe)
        return result.returncode == 0 and ("PONG" in result.stdout or "NOAUTH" in result.stdout)
    services.wait_until(ready, KIND, service.name, service.unit, timeout)


def destroy(name: str) -> None:
    with services.lock(KIND, name):
        service = load(name)
        services.refuse_destroy_while_linked(KIND, name)
        services.remove(KIND, name, [service.container])
    output.step(f"Destroying redis {name}... done")


def link(name: str, app: str) -> str:
    return services.link(KIND, names.service_name(name), app, lambda: load(name).url)


def unlink(name: str, app: str) -> str:
    return services.unlink(KIND, names.service_name(name), app)


def linked_apps(name: str) -> list[str]:
    return services.linked_apps(KIND, name)


def status(service: Service) -> str:
    return services.status(KIND, service.name)
