"""The names each app answers to, as one symlink per name that Caddy's single route follows.

~/.local/state/podku/hosts/NAME -> ../sock/APP.sock. Caddy routes a request when the file
named by its Host header exists there and dials it: adding or removing a name is a symlink
change, never a Caddy config load (HOSTS.md: a load drops requests on keep-alive
connections). Internal names under --tls auto too: Caddy's internal-CA policy covers every
one there can be (proxy.caddy.internal_subjects)."""

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import idna

from podku import apps, names, naming, output
from podku.errors import UsageError
from podku.host import paths, records, settings, state
from podku.proxy import caddy as proxy
from podku.proxy import routes


def lock_path():
    return paths.STATE / "domains.lock"

RESOLVE_TIMEOUT = 2.0


class InvalidDomain(UsageError):
    """A name that cannot be routed: says why."""


class DomainTaken(UsageError):
    """A name another app answers to."""


@dataclass(frozen=True)
class Domains:
    default: bool = True                       # APP.DOMAIN
    custom: list[str] = field(default_factory=list)


# --- names -----------------------------------------------------------------------------

def parse(text: str) -> str:
    """A host name as routed: lower case, IDN labels in punycode (UTS #46), no trailing dot."""
    if "*" in (text or ""):
        raise InvalidDomain(f"invalid domain {text!r}: wildcards are not supported, add each name")
    name = (text or "").removesuffix(".")
    if not name:
        raise InvalidDomain("invalid domain '': empty")
    if _is_ipv4(name):
        return str(ipaddress.IPv4Address(name))
    if ":" in name or name.startswith("["):
        raise InvalidDomain(f"invalid domain {text!r}: IPv6 literals are not supported")
    return _check_labels(text, _to_ascii(text, name))


def _to_ascii(text: str, name: str) -> str:
    """IDNA 2008 with UTS #46 mapping, as browsers do: `faß.de` is `xn--fa-hia.de`, never
    `fass.de` (IDNA 2003, Python's own codec); an xn-- label must decode to a valid name."""
    lower = name.lower()
    if name.isascii() and not any(label.startswith("xn--") for label in lower.split(".")):
        return lower
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise InvalidDomain(f"invalid domain {text!r}: not a valid international name ({error})") from None


def _check_labels(text: str, name: str) -> str:
    problem = names.host_name_problem(name)
    if problem:
        raise InvalidDomain(f"invalid domain {text!r}: {problem}")
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidDomain(f"invalid domain {text!r}: use a fully qualified name like app.example.com")
    if labels[-1].isdigit():
        raise InvalidDomain(f"invalid domain {text!r}: the last label may not be a number")
    return name


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def parse_all(texts: Iterable[str]) -> list[str]:
    """Every name checked before anything changes; duplicates dropped, order kept."""
    return list(dict.fromkeys(parse(text) for text in texts))


# --- state ------------------------------------------------------------------------------

def _record(app: str):
    return paths.AppPaths(app).root / "domains.json"


MAX_CUSTOM = 1000


def routed_name(value: object) -> str:
    """A name as `parse` stores it: each becomes a file name in the hosts directory."""
    name = records.validated(parse)(value)
    if parse(name) != name:
        raise records.Invalid(f"expected a host name as podku stores it, found {records.shown(name, 40)}")
    return name


RECORD = records.record({
    "default": records.Field(records.boolean),
    "custom": records.Field(records.list_of(routed_name, MAX_CUSTOM)),
})


def load(app: str) -> Domains:
    return Domains(**records.read(_record(app), RECORD, {}))


def save(app: str, domains: Domains) -> None:
    data = asdict(domains)
    state.write_json(_record(app), records.validate(data, RECORD, _record(app)))


def names_of(app: str, current: settings.Settings | None = None, domains: Domains | None = None) -> list[str]:
    """What the app answers to: its default name (unless removed), then its own names."""
    current = current or settings.load()
    domains = domains if domains is not None else load(app)
    default = [current.app_host(app)] if domains.default else []
    return list(dict.fromkeys(default + domains.custom))


def owners(current: settings.Settings | None = None, skip: str | None = None) -> dict[str, str]:
    """Every routed name -> its app (leaving out the app `skip`)."""
    current = current or settings.load()
    held: dict[str, str] = {}
    for app in apps.all_names():
        if app == skip:
            continue
        for name in names_of(app, current):
            held.setdefault(name, app)
    return held


@contextlib.contextmanager
def changing(app: str) -> Iterator[None]:
    """The app's lock, then the host-wide domains lock (names are unique across apps)."""
    with apps.lock(app), state.locked(lock_path(), "domains"):
        yield


# --- links --------------------------------------------------------------------------------

def link(name: str, app: str) -> None:
    try:
        routed_name(name)  # the name becomes a file name: it was checked when read, and is again
    except records.Invalid as error:
        raise InvalidDomain(f"invalid domain: {error.reason}") from None
    routes.link_conf(name, names.app_name(app))  # its proxy settings first, then its route
    routes.link(name, paths.AppPaths(names.app_name(app)).stable_socket)


def unlink(name: str) -> None:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise InvalidDomain(f"invalid domain {name[:80]!r}: not a name in the hosts directory")
    routes.unlink(name)
    routes.unlink_conf(name)


def linked() -> dict[str, str]:
    """name -> app, as the hosts directory says now."""
    found = {name: naming.parse_stable_socket_file(socket) for name, socket in routes.targets().items()}
    return {name: app for name, app in found.items() if app}


def relink_all() -> None:
    """Make the hosts directory say what the apps' records say (setup, set-global)."""
    routes.hosts_dir().mkdir(parents=True, exist_ok=True)
    wanted = owners()
    for name, app in linked().items():
        if wanted.get(name) != app:
            unlink(name)
    for name, app in routes.conf_targets().items():
        if wanted.get(name) != app:
            unlink(name)
    for name, app in wanted.items():
        link(name, app)


# --- Caddy's config ------------------------------------------------------------------------

def load_proxy(current: settings.Settings | None = None) -> None:
    """Caddy's config for these host settings, loaded only when it changed (proxy.caddy.apply):
    no app or name is in it."""
    proxy.apply(current or settings.load())


def write_proxy() -> None:
    """Only the file Caddy reads when it starts (before a restart)."""
    proxy.write(settings.load())


# --- what the commands do ------------------------------------------------------------------

def _refuse_taken(app: str, names: list[str], current: settings.Settings) -> None:
    held = owners(current, skip=app)
    for name in names:
        if name in held:
            raise DomainTaken(f"domain {name} is already used by app {held[name]}")


def change(app: str, wanted: Domains) -> tuple[list[str], list[str]]:
    """Give the app exactly the names `wanted` says; returns (added, removed)."""
    current = settings.load()
    before = names_of(app, current)
    after = names_of(app, current, wanted)
    _refuse_taken(app, after, current)
    added = [name for name in after if name not in before]
    removed = [name for name in before if name not in after]
    for name in removed:
        unlink(name)
    save(app, wanted)
    for name in added:
        link(name, app)
    return added, removed


def app_created(app: str) -> None:
    """A new app answers to APP.DOMAIN, unless another app already has that name."""
    with state.locked(lock_path(), "domains"):
        current = settings.load()
        name = current.app_host(app)
        holder = owners(current, skip=app).get(name)
        if holder is not None:
            save(app, Domains(default=False))
            output.warn(f"{name} is a domain of app {holder}: {app} has no default name")
            return
        if names.host_name_problem(name):  # a long app name under a long global domain
            save(app, Domains(default=False))
            output.warn(f"{name} cannot be routed ({names.host_name_problem(name)}): {app} has no default name")
            return
        save(app, Domains())
        link(name, app)


def app_renamed(old: str, new: str) -> None:
    """apps:rename: NEW answers to NEW.DOMAIN (as a new app would) and to OLD's own names;
    OLD.DOMAIN goes. Each name moves with one rename of its link (NEW's stable socket exists
    and listens by now), so a request on a custom name never meets a missing route."""
    with state.locked(lock_path(), "domains"):
        current = settings.load()
        wanted = load(new)
        default = current.app_host(new)
        holder = owners(current, skip=new).get(default)
        problem = names.host_name_problem(default)
        if wanted.default and (holder is not None or problem):
            save(new, Domains(default=False, custom=wanted.custom))
            why = f"is a domain of app {holder}" if holder is not None else f"cannot be routed ({problem})"
            output.warn(f"{default} {why}: {new} has no default name")
        for name in names_of(new, current):
            link(name, new)
        for name, owner in linked().items():
            if owner == old:
                unlink(name)


def app_destroyed(app: str) -> None:
    with state.locked(lock_path(), "domains"):
        for name, owner in linked().items():
            if owner == app:
                unlink(name)
        for name, owner in routes.conf_targets().items():
            if owner == app:
                unlink(name)
        routes.remove_site(app)


# --- DNS -----------------------------------------------------------------------------------

def resolve(name: str, timeout: float = RESOLVE_TIMEOUT) -> list[str] | None:
    """The addresses `name` resolves to; None when the lookup takes longer than `timeout`."""
    found: dict[str, list[str]] = {}

    def lookup() -> None:
        with contextlib.suppress(OSError, UnicodeError):
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            found["addresses"] = list(dict.fromkeys(info[4][0] for info in infos))
    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None
    return found.get("addresses", [])


def is_local_address(address: str) -> bool:
    """Whether this host has `address` (binding to it succeeds only then)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def report_dns(name: str) -> None:
    """Say where `name` points, and warn when that is not here."""
    addresses = resolve(name)
    if addresses is None:
        output.warn(f"{name}: DNS lookup timed out; point it at this host before requesting HTTPS")
    elif not addresses:
        output.warn(f"{name} does not resolve; point it at this host before requesting HTTPS")
    elif not any(is_local_address(address) for address in addresses):
        output.warn(f"{name} resolves to {', '.join(addresses)}, not to this host: "
                    "requests and certificates will fail until DNS points here")
    else:
        output.detail(f"{name} resolves to {', '.join(addresses)} (this host)")
