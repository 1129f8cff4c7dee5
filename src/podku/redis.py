"""Redis as a podku service: redis:create, destroy, list, info, link, unlink.

Like postgres.py: a rootless container of `localhost/podku/redis:7` (Debian's redis-server)
run by podku-redis@NAME.service, enabled and restarted on failure, with no network at all
(`port 0`): only its unix socket, whose directory a link mounts into the app. Sized for a
1 GB host: maxmemory 32mb with allkeys-lru, an append-only file. Its password is in its
config file (~/.local/share/podku/services/redis/NAME/redis.conf, mounted read-only), never
on a command line."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, ClassVar

from podku import names, naming, output, services
from podku.errors import UsageError
from podku.host import podman, records, state, systemd, templates
from podku.host.commands import last_line
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

# What redis:set changes (a restart applies it).
TUNABLE = {"maxmemory": services.Setting("maxmemory", 32, 8, 2048, "mb")}


@dataclass(frozen=True)
class Service(services.Named):
    KIND: ClassVar[str] = KIND
    name: str
    password: str
    created: float
    version: str = VERSION
    settings: dict[str, int] = field(default_factory=dict)

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
    return {**services.record_schema(name, VERSION), "settings": records.Field(services.settings_check(TUNABLE))}


def from_record(data: object, name: str, where: Path | str) -> Service:
    return Service(**records.parse(data, schema(name), where))


def exists(name: str) -> bool:
    return services.exists(KIND, name)


def load(name: str) -> Service:
    return services.load_record(KIND, name, from_record)


def save(service: Service) -> None:
    services.save_record(service, from_record)


def all_names() -> list[str]:
    return services.all_names(KIND)


def config_text(service: Service) -> str:
    checked = from_record(asdict(service), service.name, "the new service")
    own = {TUNABLE[key].server: TUNABLE[key].shown(value)
           for key, value in services.effective(TUNABLE, checked.settings).items()}
    lines = [f"{key} {own.get(key, value)}" for key, value in SETTINGS] + [f"requirepass {checked.password}"]
    return "# Rendered by podku: redis service " + service.name + "\n" + "\n".join(lines) + "\n"


def create(name: str, restored: Service | None = None) -> Service:
    """A new service; `restored` (a backup's record, its password kept) instead of a fresh one."""
    names.service_name(name)
    with services.lock(KIND, name):
        if exists(name):
            raise UsageError(f"redis service {name} already exists")
        baseimages.ensure(BASE)
        service = restored or Service(name=name, password=secrets.token_hex(24), created=time.time())
        output.step(f"Creating redis {name}")
        try:
            services.prepare_directories(KIND, name)
            install_config(service)
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


# --- export, import, connect ---------------------------------------------------------------

DUMP_MAGIC = b"REDIS"
DUMP_WHAT = "a Redis RDB file (redis:export, or a dump.rdb)"
SOCKET = f"{SOCKET_MOUNT}/{SOCKET_FILE}"
IMPORT_MOUNT = "/import/dump.rdb"
# Redis 7 with appendonly reads its data from the append-only directory, not dump.rdb: the
# imported snapshot becomes the base of a new one (a base may be an RDB file), the old
# directory kept aside until the server has started on the new one.
PLACE_SCRIPT = (
    "set -e; cd " + DATA_MOUNT + "; rm -rf appendonlydir.new appendonlydir.old; mkdir appendonlydir.new; "
    "cp " + IMPORT_MOUNT + " appendonlydir.new/appendonly.aof.1.base.rdb; "
    "printf 'file appendonly.aof.1.base.rdb seq 1 type b\\n' > appendonlydir.new/appendonly.aof.manifest; "
    "if [ -d appendonlydir ]; then mv appendonlydir appendonlydir.old; fi; "
    "mv appendonlydir.new appendonlydir; cp " + IMPORT_MOUNT + " dump.rdb.new; mv dump.rdb.new dump.rdb"
)

PUT_BACK_SCRIPT = ("set -e; cd " + DATA_MOUNT + "; if [ -d appendonlydir.old ]; then rm -rf appendonlydir; "
                   "mv appendonlydir.old appendonlydir; fi")


def client_env(service: Service) -> dict[str, str]:
    return {"REDISCLI_AUTH": service.password}


def export(name: str, out: IO[bytes]) -> None:
    """An RDB snapshot of the running server (redis-cli --rdb: the server forks and sends it)."""
    services.export(KIND, name, out, load, dump)


# `redis-cli --rdb -` leaves the 40-character end mark of a diskless transfer at the end of
# its output (it cannot truncate a pipe): the snapshot goes to a file in the container first.
EXPORT_SCRIPT = ('set -e; f=$(mktemp); trap \'rm -f "$f"\' EXIT; '
                 'redis-cli -s ' + SOCKET + ' --no-auth-warning --rdb "$f" >&2; cat "$f"')
TRANSFER_MARK = 40


def dump(service: Service, out: IO[bytes]) -> None:
    podman.engine.exec_to(service.container, ["sh", "-c", EXPORT_SCRIPT], client_env(service), out)


def strip_transfer_mark(path: Path) -> None:
    """A file made by `redis-cli --rdb -` ends with the transfer's end mark (40 hex digits)
    after the snapshot. An RDB file itself never does (it ends with 0xFF and 8 checksum
    bytes), and Redis reads a base file to its very end: the mark is cut off."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - TRANSFER_MARK))
        tail = handle.read()
    if size > TRANSFER_MARK and all(chr(byte) in "0123456789abcdef" for byte in tail):
        os.truncate(path, size - TRANSFER_MARK)


def import_dump(name: str, source: IO[bytes]) -> None:
    """An RDB file from `source` replaces the service's data: checked whole by
    redis-check-rdb first (nothing changes when it fails), then the server is stopped, the
    file placed and the server started on it."""
    load(name)
    with services.staged_input(source, DUMP_MAGIC, DUMP_WHAT) as path, services.lock(KIND, name):
        restore_file(load(name), path)
    output.step(f"Restored redis {name} from the RDB file")


def check_argv(path: Path) -> list[str]:
    return ["--rm", "--network=none", f"--volume={path}:{IMPORT_MOUNT}:ro", BASE.image,
            "redis-check-rdb", IMPORT_MOUNT]


def place_argv(service: Service, path: Path, script: str = PLACE_SCRIPT) -> list[str]:
    return ["--rm", "--network=none", "--user", "redis", f"--volume={service.paths.data}:{DATA_MOUNT}:U",
            f"--volume={path}:{IMPORT_MOUNT}:ro", BASE.image, "sh", "-c", script]


def restore_file(service: Service, path: Path) -> None:
    strip_transfer_mark(path)
    checked = podman.engine.run_with_input(check_argv(path), "")
    if checked.returncode != 0:
        reason = next((line for line in checked.stdout.splitlines() if "error" in line.lower()),
                      last_line(checked.stdout, "redis-check-rdb refused it"))
        raise UsageError(f"refused: the input is not {DUMP_WHAT} ({reason.strip()}); nothing was changed")
    systemd.stop(service.unit)
    placed = podman.engine.run_with_input(place_argv(service, path), "")
    systemd.start(service.unit)
    if placed.returncode != 0:
        raise services.ServiceError(f"placing the RDB file for redis {service.name} failed, its data is "
                                    f"unchanged: {last_line(placed.stdout, 'no output')}")
    try:
        wait_ready(service)
    except services.ServiceError as error:  # the file passed redis-check-rdb, and still: the old data back
        systemd.stop(service.unit)
        podman.engine.run_with_input(place_argv(service, path, PUT_BACK_SCRIPT), "")
        systemd.start(service.unit)
        raise services.ServiceError(f"redis {service.name} did not start on the imported file, its old data "
                                    f"is back: {error}") from None
    podman.engine.unshare_remove(str(service.paths.data / "appendonlydir.old"))


def connect(name: str, tty: bool) -> int:
    service = load(name)
    services.require_running(KIND, name)
    return podman.engine.exec_interactive(service.container, ["redis-cli", "-s", SOCKET, "--no-auth-warning"],
                                          client_env(service), tty)


def restore_backup(record: Service, dump_file: Path) -> None:
    service = create(record.name, restored=record)
    with services.lock(KIND, service.name):
        restore_file(service, dump_file)


def install_config(service: Service) -> None:
    state.write_atomic(service.config_file, config_text(service), mode=0o644)


def set_value(name: str, key: str, raw: str) -> int:
    """redis:set: see services.set_value."""
    return services.set_value(KIND, TUNABLE, name, key, raw, load, save, install_config, wait_ready)
