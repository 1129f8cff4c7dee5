"""An app's proxy settings (maintenance, basic auth, redirects, body limit, HTTPS-only,
HSTS), taking effect without a Caddy config load.

The record, apps/APP/proxy.json, says what is set. What Caddy reads is derived from it:
sites/APP, a symlink to a directory rendered whole (sites/.APP-N), and hostconf/NAME, one
link per routed name to sites/APP (proxy/routes.py). Caddy's config has one route per kind
of setting, matching on a file under hostconf/{host}/ and taking values from file names
(caddy.json.j2): a change is a new directory and one rename, so the next request sees the
new settings, the one before saw the old, and no connection is touched."""

import contextlib
import dataclasses
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bcrypt

from podku import apps, domains, releases
from podku.errors import UsageError
from podku.host import paths, records, settings, state
from podku.image import gitrepo
from podku.proxy import caddy, routes

FILE_NAME = "proxy.json"
MAINTENANCE_PAGE = "maintenance.html"
MAX_PAGE_BYTES = 256 * 1024
REDIRECT_CODES = (301, 302, 307, 308)
MAX_REDIRECTS = 1000
MAX_USER_CHARS = 64
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further
BCRYPT_HASH = r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}"
BCRYPT_ROUNDS = 10
SIZE = re.compile(r"([0-9]{1,12})([kmg]?)", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
MAX_HSTS = 2 * 365 * 86400
DURATION = re.compile(r"([0-9]{1,5})([smh]?)")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
FALLBACK = re.compile(r"(/[A-Za-z0-9_~@+,=-][A-Za-z0-9._~@+,=-]{0,99}){1,20}")
MAX_FALLBACK = 255
STATIC_LINK = "static"  # in a site directory: a static release is live (staticsite.py)
FILES_LINK = "files"  # the tree Caddy serves a static site's files from
FALLBACK_LINK = "fallback"
DEFAULT_PAGE = ("<!doctype html>\n<title>Down for maintenance</title>\n"
                "<h1>Down for maintenance</h1>\n<p>This site will be back shortly.</p>\n")


class ProxySettingError(UsageError):
    pass


@dataclass(frozen=True)
class Auth:
    user: str
    hash: str


@dataclass(frozen=True)
class Redirect:
    to: str
    code: int


@dataclass(frozen=True)
class ProxySettings:
    maintenance: bool = False
    auth: Auth | None = None
    redirects: dict[str, Redirect] = field(default_factory=dict)
    body_max: int | None = None
    https_only: bool = False
    hsts: int | None = None
    read_timeout: int | None = None
    static_fallback: str | None = None  # a static site's page for paths without a file


# --- values as typed ----------------------------------------------------------------------

def parse_user(text: str) -> str:
    if not text or len(text) > MAX_USER_CHARS or ":" in text or records.CONTROL.search(text) or text != text.strip():
        raise ProxySettingError(f"invalid user name {text[:40]!r}: 1 to {MAX_USER_CHARS} characters, "
                                "no ':', no control characters, no surrounding spaces")
    return text


def parse_password(data: bytes) -> bytes:
    password = data.removesuffix(b"\n").removesuffix(b"\r")
    if not password:
        raise ProxySettingError("empty password: give one on stdin")
    if len(password) > MAX_PASSWORD_BYTES or b"\n" in password or b"\0" in password:
        raise ProxySettingError(f"invalid password: one line of at most {MAX_PASSWORD_BYTES} bytes")
    return password


def parse_size(text: str) -> int:
    """A body size: 50m, 512k, 1g or bytes; from 1 KiB to 64 GiB."""
    match = SIZE.fullmatch(text or "")
    size = int(match.group(1)) * SIZE_UNITS[match.group(2).lower()] if match else 0
    if not caddy.MIN_BODY <= size <= caddy.MAX_BODY:
        raise ProxySettingError(f"invalid size {text[:40]!r}: a number with k, m or g, like 50m (1k to 64g)")
    return size


def parse_max_age(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text or "") or int(text) > MAX_HSTS:
        raise ProxySettingError(f"invalid max-age {text[:40]!r}: seconds, from 0 to {MAX_HSTS} (0: off)")
    return int(text)


def parse_read_timeout(text: str) -> int:
    """Seconds from 60s, 5m, 1h or a number, one of caddy.READ_TIMEOUTS."""
    match = DURATION.fullmatch(text or "")
    seconds = int(match.group(1)) * DURATION_UNITS[match.group(2)] if match else None
    if seconds not in caddy.READ_TIMEOUTS:
        choices = ", ".join(describe_seconds(value) for value in caddy.READ_TIMEOUTS)
        raise ProxySettingError(f"invalid read-timeout {text[:40]!r}: one of {choices}")
    return seconds


def parse_fallback(text: str) -> str:
    """A file of the static site, as a path from its root: /index.html, /app/200.html."""
    if len(text or "") > MAX_FALLBACK or not FALLBACK.fullmatch(text or ""):
        raise ProxySettingError(f"invalid fallback {records.shown(text[:60])}: a path of the site's files like "
                                "/index.html (letters, digits and ._~@+,=- parts, none hidden or '..')")
    return text


def describe_seconds(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_switch(text: str) -> bool:
    if text not in ("on", "off"):
        raise ProxySettingError(f"invalid value {text[:40]!r}: use on or off")
    return text == "on"


def parse_code(text: str) -> int:
    if text not in {str(code) for code in REDIRECT_CODES}:
        raise ProxySettingError(f"invalid redirect code {text[:40]!r}: use 301, 302, 307 or 308")
    return int(text)


def describe_size(size: int) -> str:
    for unit in ("g", "m", "k"):
        if size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return str(size)


# --- the record ---------------------------------------------------------------------------

def _host_name(value: object) -> str:
    return domains.routed_name(value)


def _read_timeout(value: object) -> int:
    if type(value) is not int or value not in caddy.READ_TIMEOUTS:
        raise records.Invalid(f"expected one of {', '.join(map(str, caddy.READ_TIMEOUTS))}, "
                              f"found {records.shown(value)}")
    return value


def _redirect_code(value: object) -> int:
    if type(value) is not int or value not in REDIRECT_CODES:
        raise records.Invalid(f"expected one of {', '.join(map(str, REDIRECT_CODES))}, found {records.shown(value)}")
    return value


RECORD = records.record({
    "maintenance": records.Field(records.boolean),
    "auth": records.Field(records.optional(records.record({
        "user": records.Field(records.validated(parse_user), True),
        "hash": records.Field(records.text(60, BCRYPT_HASH, "a bcrypt hash"), True)}))),
    "redirects": records.Field(records.mapping(_host_name, records.record({
        "to": records.Field(_host_name, True),
        "code": records.Field(_redirect_code, True)}), MAX_REDIRECTS)),
    "body_max": records.Field(records.optional(records.integer(caddy.MIN_BODY, caddy.MAX_BODY))),
    "https_only": records.Field(records.boolean),
    "hsts": records.Field(records.optional(records.integer(0, MAX_HSTS))),
    "read_timeout": records.Field(records.optional(_read_timeout)),
    "static_fallback": records.Field(records.optional(records.validated(parse_fallback))),
})


def _file(app: str) -> Path:
    return paths.AppPaths(app).root / FILE_NAME


def load(app: str) -> ProxySettings:
    data = records.read(_file(app), RECORD, {})
    auth = data.get("auth")
    return ProxySettings(
        maintenance=data.get("maintenance", False),
        auth=Auth(**auth) if auth else None,
        redirects={name: Redirect(**value) for name, value in data.get("redirects", {}).items()},
        body_max=data.get("body_max"), https_only=data.get("https_only", False), hsts=data.get("hsts"),
        read_timeout=data.get("read_timeout"), static_fallback=data.get("static_fallback"))


def save(app: str, wanted: ProxySettings) -> None:
    data = records.validate(asdict(wanted), RECORD, _file(app))
    state.write_json(_file(app), data)


# --- changes: validated, recorded, rendered, all under the app's lock ---------------------------

def change(app: str, wanted: ProxySettings, page: str | None = None) -> None:
    """Record `wanted` and make it what Caddy reads (with `page` as the maintenance page)."""
    save(app, wanted)
    render(app, wanted, page)


def hash_password(password: bytes) -> str:
    return bcrypt.hashpw(password, bcrypt.gensalt(BCRYPT_ROUNDS)).decode("ascii")


def check_redirect(app: str, source: str, target: str) -> None:
    held = domains.names_of(app)
    if source not in held:
        raise ProxySettingError(f"{source} is not a domain of {app}")
    if source == target:
        raise ProxySettingError(f"a redirect from {source} to itself would loop")


def app_page(app: str) -> str:
    """maintenance.html at the root of the live release's tree, or podku's own page."""
    current = apps.load(app)
    if current.live_release is None:
        return DEFAULT_PAGE
    rev = releases.load(app, current.live_release).rev
    try:
        found = gitrepo.read_file(paths.AppPaths(app).repo, rev, MAINTENANCE_PAGE, MAX_PAGE_BYTES)
    except gitrepo.RepoError as error:
        raise ProxySettingError(f"cannot use the app's {MAINTENANCE_PAGE}: {error}") from None
    return found if found is not None else DEFAULT_PAGE


# --- what Caddy reads ----------------------------------------------------------------------

def render(app: str, wanted: ProxySettings, page: str | None = None) -> None:
    """A new site directory for `app`, swapped in by one rename. The one before stays until
    the next change: a lookup that resolved the link just before the rename (Caddy's match,
    then the auth checker's read) still finds its files."""
    link = routes.site_dir(app)
    old = _current_target(link)
    if page is None and wanted.maintenance and old is not None:
        with contextlib.suppress(OSError):
            page = (old / MAINTENANCE_PAGE).read_text()
    for stale in routes.site_directories(app):
        if stale != old:
            shutil.rmtree(stale, ignore_errors=True)
    fresh = _new_directory(link)
    _write_files(fresh, wanted, page if page is not None else DEFAULT_PAGE)
    _static_links(fresh, app, wanted)
    state.fsync_dir(fresh)
    state.symlink_atomic(fresh.name, link)


def _current_target(link: Path) -> Path | None:
    if not link.is_symlink():
        return None
    return link.parent / os.readlink(link)


def _new_directory(link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1_000_000):
        candidate = link.parent / f".{link.name}-{number}"
        with contextlib.suppress(FileExistsError):
            candidate.mkdir(mode=0o755)
            return candidate
    raise ProxySettingError(f"no free site directory for {link.name}")


def _write_files(directory: Path, wanted: ProxySettings, page: str) -> None:
    if wanted.maintenance:
        state.write_atomic(directory / MAINTENANCE_PAGE, page)
    if wanted.auth is not None:
        state.write_atomic(directory / "auth", f"{wanted.auth.user}\n{wanted.auth.hash}\n", mode=0o600)
    for source, redirect in wanted.redirects.items():
        _mark(directory / "redirect" / source / str(redirect.code) / redirect.to)
    if wanted.body_max is not None:
        _mark(directory / "body-max" / str(wanted.body_max))
        _mark(directory / "body-cap" / str(caddy.body_cap(wanted.body_max)))
    if wanted.https_only:
        _mark(directory / "https-only")
    if wanted.hsts is not None:
        _mark(directory / "hsts" / str(wanted.hsts))
    if wanted.read_timeout is not None:
        _mark(directory / "read-timeout" / str(wanted.read_timeout))


def _static_links(directory: Path, app: str, wanted: ProxySettings) -> None:
    """`static` to the app's live static tree (dangling unless a static release is live),
    `files` to the tree its files come from, and `fallback` through that to the fallback
    page: Caddy's static route follows them."""
    app_paths = paths.AppPaths(app)
    os.symlink(os.path.relpath(app_paths.static_live, directory), directory / STATIC_LINK)
    os.symlink(os.path.relpath(app_paths.static_files, directory), directory / FILES_LINK)
    if wanted.static_fallback is not None:
        os.symlink(f"{FILES_LINK}{wanted.static_fallback}", directory / FALLBACK_LINK)


def _mark(path: Path) -> None:
    """An empty file whose name is the value: Caddy's file matcher finds it by a glob."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def names_changed(app: str) -> None:
    """After the app's names changed: redirects from names it no longer holds are dropped."""
    current = load(app)
    held = set(domains.names_of(app))
    kept = {source: redirect for source, redirect in current.redirects.items() if source in held}
    if kept != current.redirects:
        change(app, dataclasses.replace(current, redirects=kept))


def app_renamed(old: str, new: str) -> None:
    """apps:rename: NEW's site directory from the record that moved with the app (and the
    maintenance page OLD showed), before any of the names links to it."""
    shown = _current_target(routes.site_dir(old))
    page = None
    if shown is not None:
        with contextlib.suppress(OSError):
            page = (shown / MAINTENANCE_PAGE).read_text()
    render(new, load(new), page)


def ensure_rendered(app: str) -> None:
    """The app's site directory, rendered from its record if it has none yet (or one from
    before static sites): a static site is served through its `static` link."""
    if not (routes.site_dir(app) / FILES_LINK).is_symlink():
        render(app, load(app))


def rerender_all() -> None:
    """Every app's site directory from its record (setup: a host upgraded to this version)."""
    for app in apps.all_names():
        ensure_rendered(app)


def https_available() -> bool:
    return settings.load().tls != "off"
