"""Numbered release records: what ran, from which revision, image and config, and how it went."""

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

from podku import names, naming, runtime
from podku.errors import UsageError
from podku.host import paths, records, state
from podku.image import procfile
from podku.image import source as build_source
from podku.runtime import idle, links, network, resources, storage


class Outcome(str, Enum):
    """How a release went. A str, so release records keep plain strings in their JSON."""

    PENDING = "pending"  # created; not (yet) live
    LIVE = "live"  # the app record's live_release: see swap.py
    DRAINING = "draining"  # swapped out, still finishing its in-flight requests until retired
    FAILED = "failed"  # never served: its build, start or check failed, or a deploy was cut off
    RETIRED = "retired"  # served once; its units are gone, its image may be kept for rollbacks

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


PENDING, LIVE, DRAINING, FAILED, RETIRED = (Outcome.PENDING, Outcome.LIVE, Outcome.DRAINING,
                                            Outcome.FAILED, Outcome.RETIRED)


@dataclass(frozen=True)
class Release:
    app: str
    id: int
    rev: str
    image: str
    description: str
    config: dict[str, str] = field(default_factory=dict)
    app_json: dict = field(default_factory=dict)
    port: int | None = None  # an EXPOSEd port: the app binds $PORT, bridged to the socket
    created: float = field(default_factory=time.time)
    outcome: Outcome = Outcome.PENDING
    processes: dict[str, list[str]] = field(default_factory=dict)  # the Procfile: {type: argv}
    # The app's runtime settings when the release was made (resources, storage, idle, egress).
    resources: dict = field(default_factory=dict)  # memory (bytes), cpus, pids
    mounts: list[str] = field(default_factory=list)  # NAME:/container/path
    idle_timeout: int = 0  # seconds; 0: never stopped for being idle
    links: list[str] = field(default_factory=list)  # KIND:NAME of each linked service
    # Outbound network (runtime/network.py); records older than it ran without any network.
    egress: bool = False
    # Where the image came from: "" a build of `rev` (every record older than this field),
    # "load-image sha256:ID" an archive sent by git:load-image, "image REF" git:from-image.
    # For those two, `rev` is the image's ID (hex).
    source: str = ""
    # A static site served by Caddy from the files of the revision (staticsite.py): the
    # build-dir its files are under ("" the repository's root). None: a container serves.
    static_root: str | None = None

    @property
    def origin(self) -> str:
        """Where the release came from, as `releases` shows it."""
        return f"image: {self.source}" if self.source else self.rev[:7]

    @property
    def static(self) -> bool:
        """Served by Caddy's file server: no socket, no container for web."""
        return self.static_root is not None

    @property
    def unit(self) -> str:
        """The release's systemd unit name, without the .socket/.service suffix."""
        return naming.release_unit(self.app, self.id)

    @property
    def container(self) -> str:
        return naming.container(self.app, self.id)

    @property
    def socket_unit(self) -> str:
        return f"{self.unit}.socket"

    @property
    def web_unit(self) -> str:
        """The service the socket starts: the app itself, or the bridge to a $PORT app."""
        return f"{self.unit}.service"

    @property
    def bridged(self) -> bool:
        """Served through a proxy unit: a $PORT app, or any app that may go idle (idle.py)."""
        return bool(self.port or self.idle_timeout)

    @property
    def inner_socket_unit(self) -> str | None:
        """An fd 3 app behind the idle proxy takes this socket as its fd 3."""
        return f"{self.unit}-inner.socket" if self.idle_timeout and not self.port else None

    @property
    def units(self) -> list[str]:
        """Every unit of the release, the socket first (stopping it stops what it feeds).
        A static site has none: Caddy serves its files."""
        if self.static:
            return []
        names = [self.socket_unit, self.web_unit]
        names += [f"{self.unit}-app.service"] if self.bridged else []
        return names + ([self.inner_socket_unit] if self.inner_socket_unit else [])

    @property
    def app_unit(self) -> str:
        """The unit whose processes are the app's (what `systemctl --user status APP` shows)."""
        return f"{self.unit}-app.service" if self.bridged else self.web_unit

    @property
    def network(self) -> str:
        """`podman run --network=` of every container of the release: its own slirp4netns, or none."""
        return network.network_mode(self.egress)

    def podman_flags(self) -> list[str]:
        """What every container of the release gets from its runtime settings: its limits,
        its storage mounts, the sockets of the services it is linked to, and its multi-line
        config values (as podman secrets)."""
        secrets = [f"--secret={name},type=env,target={key}" for key, name in self.secret_names().items()]
        return runtime.podman_flags(self.resources, self.mounts, self.links) + secrets

    def environment_file(self) -> str:
        """The app's one-line environment in podman's --env-file format: its config and who
        it is. Checked again here: a line break in a key or value would make podman read the
        rest as another line, and a bare KEY line imports that variable from the host.
        Values with line breaks go as podman secrets instead (`secrets`)."""
        env = {**self.config, "PODKU_APP": self.app, "PODKU_RELEASE": str(self.id)}
        env = {key: value for key, value in env.items() if key not in self.secret_names()}
        for key, value in env.items():
            names.env_value(names.env_key(key), value)
        return "".join(f"{key}={value}\n" for key, value in sorted(env.items()))

    def secret_names(self) -> dict[str, str]:
        """{KEY: podman secret name} of each config value with a line break."""
        return {key: naming.secret(self.app, self.id, names.env_key(key))
                for key, value in sorted(self.config.items()) if "\n" in value}

    def secrets(self) -> dict[str, str]:
        """{podman secret name: value} of each config value with a line break."""
        return {name: names.env_value(key, self.config[key], multiline=True)
                for key, name in self.secret_names().items()}

    def with_outcome(self, outcome: Outcome) -> "Release":
        return replace(self, outcome=outcome)


# --- the record ----------------------------------------------------------------------------

MAX_APP_JSON_BYTES = 1024 * 1024  # appjson.MAX_BYTES
MAX_APP_JSON_DEPTH = 20
MAX_TEXT = 64 * 1024
IMAGE = r"localhost/podku/[a-z0-9-]{1,63}:r[0-9]{1,9}"


def schema(app: str, release_id: int) -> records.Schema:
    """Every field of release `release_id` of `app`: each becomes unit lines, unit names or
    podman arguments. Its app.json is checked in depth where it is used (cron, checks, tasks)."""
    return {
        "app": records.Field(records.every(records.APP_NAME, records.equal_to(app, "the app's name")), True),
        "id": records.Field(records.every(records.RELEASE_ID, records.equal_to(release_id, "the file's number")),
                            True),
        "rev": records.Field(records.text(64, r"[0-9A-Za-z]+", "a git revision"), True),
        "image": records.Field(records.every(records.text(100, IMAGE, "localhost/podku/APP:rN"),
                                             _image_of(app)), True),
        "description": records.Field(records.text(MAX_TEXT), True),
        "config": records.Field(records.environment),
        "app_json": records.Field(_app_json),
        "port": records.Field(records.optional(records.integer(1, 65535))),
        "created": records.Field(records.TIMESTAMP),
        "outcome": records.Field(lambda value: Outcome(records.one_of(*(o.value for o in Outcome))(value))),
        "processes": records.Field(records.mapping(records.validated(procfile.type_name), _argv, procfile.MAX_TYPES)),
        "resources": records.Field(resources.RECORD),
        "mounts": records.Field(storage.RECORD),
        "idle_timeout": records.Field(idle.recorded_seconds),
        "links": records.Field(links.RELEASE_RECORD),
        "egress": records.Field(records.boolean),
        "source": records.Field(_source),
        "static_root": records.Field(records.optional(_static_root)),
    }


LOADED_SOURCE = re.compile(r"load-image sha256:[0-9a-f]{64}")


def _source(value: object) -> str:
    text = records.text(8 + names.MAX_IMAGE_REFERENCE)(value)
    if text and not LOADED_SOURCE.fullmatch(text):
        kind, _, reference = text.partition(" ")
        if kind != "image":
            raise records.Invalid(f"expected load-image sha256:ID or image REFERENCE, found {records.shown(text)}")
        records.validated(names.image_reference)(reference)
    return text


def _static_root(value: object) -> str:
    text = records.text(build_source.MAX_BUILD_DIR)(value)
    return records.validated(build_source.build_dir)(text) if text else text


def _image_of(app: str) -> records.Check:
    def check(image: str) -> str:
        if image.partition(":")[0] != f"localhost/podku/{app}":
            raise records.Invalid(f"expected an image of {app}, found {records.shown(image)}")
        return image
    return check


def _argv(value: object) -> list[str]:
    argv = records.list_of(records.text(procfile.MAX_LINE_CHARS), procfile.MAX_ARGS)(value)
    if not argv:
        raise records.Invalid("an empty command")
    return argv


def _app_json(value: object) -> dict:
    """app.json as parsed at the deploy: an object, bounded in size and depth."""
    data = records.an_object(value)
    if len(json.dumps(data)) > MAX_APP_JSON_BYTES:
        raise records.Invalid(f"larger than {MAX_APP_JSON_BYTES // 1024} KiB")
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        current, depth = pending.pop()
        if depth > MAX_APP_JSON_DEPTH:
            raise records.Invalid(f"nested deeper than {MAX_APP_JSON_DEPTH} levels")
        children = current.values() if isinstance(current, dict) else current if isinstance(current, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return data


def from_record(data: object, app: str, release_id: int, where: Path | str) -> Release:
    """A release record checked field by field (a hand-edited or restored one too)."""
    return Release(**records.parse(data, schema(app, release_id), where))


def save(release: Release) -> None:
    path = paths.AppPaths(release.app).release_record(release.id)
    data = asdict(release)
    from_record(data, release.app, release.id, path)  # never write what load would refuse
    state.write_json(path, data)


def load(app: str, release_id: int) -> Release:
    path = paths.AppPaths(names.app_name(app)).release_record(release_id)
    data = records.read_json(path)
    if data is None:
        raise UsageError(f"release {release_id} of {app} does not exist")
    return from_record(data, app, release_id, path)


def all_of(app: str) -> list[Release]:
    """Every release of an app, newest first."""
    directory = paths.AppPaths(names.app_name(app)).releases
    ids = sorted((int(p.stem) for p in directory.glob("*.json") if is_id(p.stem)), reverse=True)
    return [load(app, release_id) for release_id in ids]


def is_id(stem: str) -> bool:
    return names.ASCII_NUMBER.fullmatch(stem) is not None and len(stem) <= 9 and int(stem) >= 1


def next_id(app: str) -> int:
    existing = all_of(app)
    return existing[0].id + 1 if existing else 1


def new(app: str, rev: str, image: str, description: str, config: dict[str, str],
        app_json: dict | None = None, port: int | None = None, *, release_id: int | None = None,
        processes: dict[str, list[str]] | None = None, source: str = "",
        static_root: str | None = None) -> Release:
    """A pending release, saved. A deploy allocates `release_id` once (its image tag and build
    directory are named from it too) and passes it; without it the next free id is taken."""
    release = Release(app=app, id=next_id(app) if release_id is None else release_id,
                      rev=rev, image=image, description=description,
                      config=dict(config), app_json=dict(app_json or {}), port=port,
                      processes=dict(processes or {}), source=source, static_root=static_root,
                      **runtime.snapshot(app))
    save(release)
    return release


def image_tag(app: str, release_id: int) -> str:
    return naming.image(app, release_id)


SERVED = (Outcome.LIVE, Outcome.DRAINING, Outcome.RETIRED)


def was_live(release: Release) -> bool:
    return release.outcome in SERVED
