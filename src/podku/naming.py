"""Every name podku gives a thing on the host, each parser beside its formatter.

An app's name is part of its units, containers, image tags, sockets, env files and timers;
this module is the one place that spells them, so that `apps:rename` (and anything else that
must find an app's things) reads them here. Names are built from validated parts
(names.app_name, a release number, a Procfile type): nothing here validates."""

import re

APP = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
ID = r"[0-9]+"
TYPE = r"[a-z][a-z0-9_-]*"

# --- systemd units ------------------------------------------------------------------------


def release_unit(app: str, release: int | str) -> str:
    """A release's units share this stem: APP-rN.socket, APP-rN.service, APP-rN-app.service."""
    return f"{app}-r{release}"


def release_socket_pattern(app: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(app)}-r{ID}\.socket")


def process_unit(app: str, release: int | str, kind: str, instance: int | str) -> str:
    """An instance of a Procfile type (and web instances 2..): APP-rN-TYPE@I.service
    (`*` in any part but the app: a glob for systemd; "" instance: the template)."""
    return f"{release_unit(app, release)}-{kind}@{instance}.service"


def process_unit_pattern(app: str) -> re.Pattern[str]:
    """Matches process_unit names of `app`: groups release, type, instance."""
    return re.compile(rf"{re.escape(app)}-r({ID})-({TYPE})@({ID})\.service")


def cron_unit(app: str, entry: int | str, suffix: str) -> str:
    """APP-cron@ID.service and .timer (ID: the entry's place in app.json, from 1)."""
    return f"{app}-cron@{entry}.{suffix}"


def cron_unit_pattern(app: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(app)}-cron@{ID}\.(service|timer)")


def retire_unit(app: str, release: int) -> str:
    """The transient timer (and service) that retires a swapped-out release."""
    return f"podku-retire-{app}-r{release}"


def build_unit(app: str, release: int) -> str:
    """The transient scope a release's build runs in."""
    return f"podku-build-{app}-r{release}"


def build_slice(unit: str) -> str:
    """The transient slice a build's limits are on (cgroup v2), in podku-build.slice: the
    build unit's dashes, which would nest slices (`--` is no slice name at all), become `_`."""
    prefix = "podku-build-"
    return prefix + unit.removeprefix(prefix).replace("-", "_") + ".slice"


# --- containers and images ----------------------------------------------------------------


def container(app: str, release: int) -> str:
    return f"podku-{app}-r{release}"


def parse_container(name: str) -> tuple[str, int] | None:
    """(app, release) of a release's container name, or None."""
    match = re.fullmatch(rf"podku-({APP})-r({ID})", name)
    return (match.group(1), int(match.group(2))) if match else None


def cron_container(app: str, entry: int) -> str:
    return f"podku-{app}-cron-{entry}"


def secret(app: str, release: int, key: str) -> str:
    """The podman secret that carries config value KEY (one with line breaks) into release N's
    containers: podman's --env-file holds one line per value."""
    return f"{container(app, release)}-env-{key}"


def oneoff_container(app: str, token: str) -> str:
    return f"podku-{app}-run-{token}"


def image(app: str, release: int) -> str:
    return f"localhost/podku/{app}:r{release}"


def parse_image(tag: str) -> tuple[str, int] | None:
    """(app, release) of a release image tag, or None for any other image."""
    match = re.fullmatch(rf"localhost/podku/({APP}):r({ID})", tag)
    return (match.group(1), int(match.group(2))) if match else None


# --- files --------------------------------------------------------------------------------


def release_socket_file(release: int) -> str:
    """The socket systemd listens on for release N (in the app's runtime directory)."""
    return f"web-r{release}.sock"


def inner_socket_file(release: int) -> str:
    """The socket an idle-stopping fd 3 app takes as fd 3, behind its proxy."""
    return f"app-r{release}.sock"


def env_file(release: int) -> str:
    """Release N's environment in podman's --env-file format, beside its record."""
    return f"{release}.env"


def static_tree(release: int) -> str:
    """A static release's files, under ~/.local/share/podku/static/APP/ (staticsite.py)."""
    return f"r{release}"


def stable_socket_file(app: str) -> str:
    """The symlink Caddy dials for the app: it points at the live release's socket."""
    return f"{app}.sock"


def parse_stable_socket_file(name: str) -> str | None:
    """The app of a stable socket's file name, or None."""
    match = re.fullmatch(rf"({APP})\.sock", name)
    return match.group(1) if match else None


def build_dir(app: str, release: int) -> str:
    return f"{app}-r{release}"


# --- services (postgres:create and the like) ----------------------------------------------
# A service's name follows the app-name rules (names.service_name). Its unit and container
# names hold a character no app's can ('@', '.'), so a service never shadows an app's thing.


def service_unit(kind: str, name: str) -> str:
    """The user unit that runs a service: podku-postgres@NAME.service."""
    return f"podku-{kind}@{name}.service"


def parse_service_unit(unit: str) -> tuple[str, str] | None:
    """(kind, name) of a service's unit name, or None."""
    match = re.fullmatch(rf"podku-([a-z]+)@({APP})\.service", unit)
    return (match.group(1), match.group(2)) if match else None


def service_container(kind: str, name: str) -> str:
    """podku-postgres.NAME (app containers never hold a dot)."""
    return f"podku-{kind}.{name}"


def service_init_container(kind: str, name: str) -> str:
    """The one-off container that initialises a service's data directory."""
    return f"podku-{kind}.{name}.init"


def service_socket_mount(kind: str, name: str) -> str:
    """Where a linked app's containers see the service's socket directory."""
    return f"/run/podku/{kind}/{name}"


def service_identifier(name: str) -> str:
    """A service's database and role name: its name with '_' for '-' (an SQL identifier,
    quoted all the same where it is used)."""
    return name.replace("-", "_")


def service_url_variable(kind: str, name: str, first: bool) -> str:
    """The config key a link sets: Dokku's DATABASE_URL for an app's first link of a kind,
    POSTGRES_NAME_URL for further ones (NAME upper-cased, '_' for '-')."""
    if first:
        return {"postgres": "DATABASE_URL", "redis": "REDIS_URL"}[kind]
    return f"{kind.upper()}_{name.upper().replace('-', '_')}_URL"
