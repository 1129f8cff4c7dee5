"""Postgres as a podku service: postgres:create, destroy, list, info, link, unlink.

A service is a rootless container of `localhost/podku/postgres:15` (built on the host from
Debian's postgresql-15, like the builders' bases) run by a user unit, podku-postgres@NAME,
enabled in default.target and restarted on failure. Its data directory and its socket
directory are podku's data (~/.local/share/podku/services/postgres/NAME/{data,run}). It
has no network at all (--network=none, listen_addresses empty): it is reached only through
its unix socket, whose directory a link mounts read-only into the app's containers, so an
app that is not linked has no path to it.

A service's database and role are its name ('_' for '-'); the role owns the database and
is not a superuser; it logs in with a password (scram-sha-256) kept in the service's
record (0600). No one can log in as the superuser: it has no password."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, ClassVar

from podku import names, naming, output, services
from podku.errors import UsageError
from podku.host import paths, podman, records, systemd, templates
from podku.host.commands import last_line
from podku.image import baseimages

KIND = "postgres"
VERSION = "15"
# Debian's postgresql-15 creates a cluster `main` when it is installed: the image has none.
# Nor has it LLVM and z3 (140 MB, only for the JIT, which the service turns off: jit=off),
# documentation, manual pages, translations or locale sources (the cluster is C.UTF-8).
SLIMMING = ('rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main "$1"/usr/lib/*/libLLVM-*.so* '
            '"$1"/usr/lib/*/libz3.so* "$1"/usr/lib/postgresql/15/lib/llvmjit* "$1"/usr/lib/postgresql/15/lib/bitcode '
            '"$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale "$1"/usr/share/i18n')
BASE = baseimages.Base(KIND, f"localhost/podku/postgres:{VERSION}", ("postgresql-15",), hooks=(SLIMMING,))
BIN = f"/usr/lib/postgresql/{VERSION}/bin"
DATA_MOUNT = "/var/lib/postgresql/data"
SOCKET_MOUNT = "/run/postgresql"
STOP_TIMEOUT = 30
READY_TIMEOUT = 90.0
# Sized for a 1 GB host that also runs Caddy and the apps: about 40 MiB at rest.
SETTINGS = (
    "listen_addresses=",  # no TCP at all: the unix socket only
    f"unix_socket_directories={SOCKET_MOUNT}",
    "shared_buffers=32MB",
    "max_connections=20",
    "work_mem=2MB",
    "maintenance_work_mem=16MB",
    "effective_cache_size=128MB",
    "wal_buffers=1MB",
    "min_wal_size=32MB",
    "max_wal_size=256MB",
    "max_worker_processes=2",
    "max_parallel_workers=1",
    "max_parallel_workers_per_gather=0",
    "autovacuum_max_workers=2",
    "jit=off",  # LLVM's JIT pays off on big analytic queries, not here; it costs memory per backend
    "huge_pages=off",
)
IDENTIFIER = r"[a-z0-9_]{1,63}"
# What postgres:set changes (a restart applies it): defaults as in SETTINGS, bounds for a small host.
TUNABLE = {
    "shared-buffers": services.Setting("shared_buffers", 32, 16, 1024, "MB"),
    "max-connections": services.Setting("max_connections", 20, 5, 200),
}


ServiceError = services.ServiceError


@dataclass(frozen=True)
class Service(services.Named):
    KIND: ClassVar[str] = KIND
    name: str
    user: str
    database: str
    password: str
    created: float
    version: str = VERSION
    settings: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """DATABASE_URL as a linked app sees it: libpq's URI with the socket directory as the
        `host` parameter, which psycopg 2 and 3, SQLAlchemy, dj-database-url and
        node-postgres all read (a percent-encoded host is not read by SQLAlchemy)."""
        return (f"postgresql://{self.user}:{self.password}@/{self.database}"
                f"?host={naming.service_socket_mount(KIND, self.name)}")


def schema(name: str) -> records.Schema:
    return {
        **services.record_schema(name, VERSION),
        "user": records.Field(records.text(63, IDENTIFIER, "an SQL name"), True),
        "database": records.Field(records.text(63, IDENTIFIER, "an SQL name"), True),
        "settings": records.Field(services.settings_check(TUNABLE)),
    }


def from_record(data: object, name: str, where: Path | str) -> Service:
    return Service(**records.parse(data, schema(name), where))


# --- records -------------------------------------------------------------------------------

def service_paths(name: str) -> paths.ServicePaths:
    return paths.ServicePaths(KIND, names.service_name(name))


def exists(name: str) -> bool:
    return services.exists(KIND, name)


def load(name: str) -> Service:
    return services.load_record(KIND, name, from_record)


def save(service: Service) -> None:
    services.save_record(service, from_record)


def all_names() -> list[str]:
    return services.all_names(KIND)


def linked_apps(name: str) -> list[str]:
    return services.linked_apps(KIND, name)


# --- create and destroy -------------------------------------------------------------------

def create(name: str, restored: Service | None = None) -> Service:
    """A new service; `restored` (a backup's record: the same role and password, so that
    the URL its apps hold still works) instead of a fresh one."""
    names.service_name(name)
    with services.lock(KIND, name):
        if exists(name):
            raise UsageError(f"postgres service {name} already exists")
        baseimages.ensure(BASE)
        identifier = naming.service_identifier(name)
        service = restored or Service(name=name, user=identifier, database=identifier,
                                      password=secrets.token_hex(24), created=time.time())
        output.step(f"Creating postgres {name}")
        try:
            services.prepare_directories(KIND, name)
            _initialise(service)
            install_unit(service)
            save(service)
            systemd.start(service.unit)
            wait_ready(service)
            systemd.enable(service.unit, "default.target")
        except BaseException:
            _remove(service)
            raise
    output.detail(f"postgres {name} is running: postgres:link {name} APP gives an app its DATABASE_URL")
    return service


def init_argv(service: Service) -> list[str]:
    """`podman run` arguments of the one-off container that makes the cluster, its role and
    its database (initdb, then the SQL on stdin through single-user mode: no socket yet)."""
    script = (f"set -e; {BIN}/initdb -D {DATA_MOUNT} -U postgres -E UTF8 --locale=C.UTF-8 "
              f"--auth-local=scram-sha-256 --auth-host=reject >/dev/null; "
              f"exec {BIN}/postgres --single -D {DATA_MOUNT} -c listen_addresses= postgres")
    return ["--rm", "--replace", "--name", naming.service_init_container(KIND, service.name), "--network=none",
            "--user", "postgres", f"--volume={service.paths.data}:{DATA_MOUNT}:U", BASE.image,
            "sh", "-c", script]


def init_sql(service: Service) -> str:
    """One statement a line (single-user mode's input). Names and password are checked by the
    record's schema: [a-z0-9_] and hex digits only; quoted all the same."""
    checked = from_record(asdict(service), service.name, "the new service")
    return (f"CREATE ROLE \"{checked.user}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"PASSWORD '{checked.password}';\n"
            f"CREATE DATABASE \"{checked.database}\" OWNER \"{checked.user}\";\n")


def _initialise(service: Service) -> None:
    result = podman.engine.run_with_input(init_argv(service), init_sql(service))
    failed = [line for line in result.stdout.splitlines() if "ERROR:" in line or "FATAL:" in line]
    if result.returncode != 0 or failed:
        raise ServiceError(f"initialising postgres {service.name} failed: "
                           f"{(failed or [last_line(result.stdout, 'no output')])[0].strip()}")


def unit_values(service: Service) -> dict:
    return dict(name=service.name, image=BASE.image, container=service.container, stop_timeout=STOP_TIMEOUT,
                sockets=service.paths.sockets, postgres=f"{BIN}/postgres", data_mount=DATA_MOUNT,
                volumes=[f"{service.paths.data}:{DATA_MOUNT}:U", f"{service.paths.sockets}:{SOCKET_MOUNT}:U"],
                settings=server_settings(service))


def server_settings(service: Service) -> tuple[str, ...]:
    """SETTINGS with the service's own values (postgres:set) in place of the defaults."""
    own = {TUNABLE[key].server: TUNABLE[key].shown(value)
           for key, value in services.effective(TUNABLE, service.settings).items()}
    return tuple(f"{name}={own[name]}" if name in own else line
                 for line in SETTINGS for name in [line.partition("=")[0]])


def set_value(name: str, key: str, raw: str) -> int:
    """postgres:set: see services.set_value."""
    return services.set_value(KIND, TUNABLE, name, key, raw, load, save, install_unit, wait_ready)


def install_unit(service: Service) -> None:
    systemd.write_unit(service.unit, templates.render("service-postgres.service.j2", **unit_values(service)))
    systemd.reload()


def wait_ready(service: Service, timeout: float = READY_TIMEOUT) -> None:
    """Until the server accepts connections on its socket."""
    probe = [f"{BIN}/pg_isready", "--quiet", "-h", SOCKET_MOUNT]
    services.wait_until(lambda: podman.engine.exec_in(service.container, probe).returncode == 0,
                        KIND, service.name, service.unit, timeout)


def destroy(name: str) -> None:
    with services.lock(KIND, name):
        service = load(name)
        services.refuse_destroy_while_linked(KIND, name)
        _remove(service)
    output.step(f"Destroying postgres {name}... done")


def _remove(service: Service) -> None:
    services.remove(KIND, service.name, [service.container, naming.service_init_container(KIND, service.name)])


# --- links and reports -------------------------------------------------------------------

def link(name: str, app: str) -> str:
    """Give `app` DATABASE_URL (or POSTGRES_NAME_URL) and the socket: a new release."""
    return services.link(KIND, names.service_name(name), app, lambda: load(name).url)


def unlink(name: str, app: str) -> str:
    return services.unlink(KIND, names.service_name(name), app)


def status(service: Service) -> str:
    return services.status(KIND, service.name)


# --- export, import, connect ---------------------------------------------------------------

DUMP_MAGIC = b"PGDMP"
DUMP_WHAT = "a pg_dump archive (custom format: postgres:export or pg_dump --format=custom)"


def client_env(service: Service) -> dict[str, str]:
    """What psql, pg_dump and pg_restore in the service's container connect with: the
    service's role, through an --env-file (the password on no command line)."""
    return {"PGHOST": SOCKET_MOUNT, "PGUSER": service.user, "PGDATABASE": service.database,
            "PGPASSWORD": service.password}


def export(name: str, out: IO[bytes]) -> None:
    """pg_dump's custom format of the service's database to `out`: one snapshot, consistent
    while apps write."""
    services.export(KIND, name, out, load, dump)


def dump(service: Service, out: IO[bytes]) -> None:
    podman.engine.exec_to(service.container, [f"{BIN}/pg_dump", "--format=custom"], client_env(service), out)


def import_dump(name: str, source: IO[bytes]) -> None:
    """A pg_dump archive from `source` restored into the service's database in one
    transaction (objects it has dropped and made again, owned by the service's role): a
    file that is not one, or a restore that fails, leaves the database as it was."""
    load(name)
    with services.staged_input(source, DUMP_MAGIC, DUMP_WHAT) as path, services.lock(KIND, name):
        service = load(name)
        services.require_running(KIND, name)
        restore_file(service, path)
    output.step(f"Restored postgres {name} from the archive")


def restore_file(service: Service, path: Path) -> None:
    env = client_env(service)
    with open(path, "rb") as source:  # its table of contents read whole first: a damaged one changes nothing
        listed = podman.engine.exec_from(service.container, [f"{BIN}/pg_restore", "--list", "--file=/dev/null"],
                                         env, source)
    if listed.returncode != 0:
        raise UsageError(f"refused: the input is not {DUMP_WHAT} ({_error_line(listed.stdout)}); nothing was changed")
    with open(path, "rb") as source:
        restored = podman.engine.exec_from(service.container, restore_argv(service), env, source)
    if restored.returncode != 0:
        raise ServiceError(f"restoring postgres {service.name} failed, its database is unchanged: "
                           f"{_error_line(restored.stdout)}")


def restore_argv(service: Service) -> list[str]:
    return [f"{BIN}/pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
            "--single-transaction", "--exit-on-error", f"--dbname={service.database}"]


def _error_line(text: str) -> str:
    errors = [line for line in text.splitlines() if "error" in line.lower()]
    return (errors or [last_line(text, "no output")])[0].strip()


def connect(name: str, tty: bool) -> int:
    """psql in the service's container, as its role, on podku's terminal (or pipes)."""
    service = load(name)
    services.require_running(KIND, name)
    return podman.engine.exec_interactive(service.container, [f"{BIN}/psql"], client_env(service), tty)


def restore_backup(record: Service, dump_file: Path) -> None:
    """A backup's service made again on this host, with its data."""
    service = create(record.name, restored=record)
    with services.lock(KIND, service.name):
        restore_file(service, dump_file)
