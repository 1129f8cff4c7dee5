"""An app's links to services (postgres:link): which services its containers reach, and the
config key each link set. A link mounts the service's socket directory, read-only, into
every container of the app's releases from the next release on (a release records its links
as it records its storage mounts), so that only linked apps can reach a service: it listens
on no network, only on that socket.

links.json, in the app's state directory: [{"kind": "postgres", "name": NAME, "variable": KEY}]."""

from podku import names, naming
from podku.errors import UsageError
from podku.host import paths, records, state

FILE_NAME = "links.json"
KINDS = ("postgres", "redis")
MAX_LINKS = 16

LINK = records.record({
    "kind": records.Field(records.one_of(*KINDS), True),
    "name": records.Field(records.validated(names.service_name), True),
    "variable": records.Field(records.validated(names.env_key), True),
})
RECORD = records.list_of(LINK, MAX_LINKS)


def parse_recorded(text: str) -> tuple[str, str]:
    """KIND:NAME, as a release records a link."""
    kind, sep, name = (text or "").partition(":")
    if not sep or kind not in KINDS:
        raise UsageError(f"invalid link {text[:80]!r}: expected KIND:NAME, KIND one of {', '.join(KINDS)}")
    return kind, names.service_name(name)


# A release's `links`: KIND:NAME each.
RELEASE_RECORD = records.list_of(records.validated(parse_recorded), MAX_LINKS)


def _app_file(app: str):
    return paths.AppPaths(app).root / FILE_NAME


def load(app: str) -> list[dict]:
    """The app's links, in the order they were made."""
    return records.read(_app_file(names.app_name(app)), RECORD, [])


def save(app: str, entries: list[dict]) -> None:
    path = _app_file(names.app_name(app))
    state.write_json(path, records.validate(entries, RECORD, path))


def recorded(app: str) -> list[str]:
    """The app's links as a new release records them."""
    return [f"{entry['kind']}:{entry['name']}" for entry in load(app)]


def podman_flags(recorded_links: list[str]) -> list[str]:
    """`podman run` flags for a release's links: each service's socket directory, read-only
    (connecting to a unix socket needs no write access to its file system)."""
    flags = []
    for entry in recorded_links:
        kind, name = parse_recorded(entry)
        flags.append(f"--volume={paths.ServicePaths(kind, name).sockets}:{naming.service_socket_mount(kind, name)}:ro")
    return flags
