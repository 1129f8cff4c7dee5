"""maintenance:*, http-auth:*, redirect:*, proxy:set/report and logs:access (registered on
podku's CLI): an app's proxy settings, each a file change Caddy sees on its next request
(proxyconf.py), never a config load nor a release."""

import dataclasses
import sys

import click

from podku import apps, domains, output, proxyconf
from podku.cli.base import app_argument, command
from podku.errors import UsageError
from podku.proxy import accesslog, caddy

PROXY_KEYS = ("client-max-body-size", "read-timeout", "https-only", "hsts")


def _changed(app: str, change, message: str, page: str | None = None) -> None:
    """Apply `change` (settings -> settings) to the app's settings under its lock."""
    with apps.lock(app):
        current = proxyconf.load(app)
        proxyconf.change(app, change(current), page)
    output.step(message)


# --- maintenance ---------------------------------------------------------------------------

@command("maintenance:enable")
@app_argument
def maintenance_enable(app: str) -> None:
    """Answer every request with 503 and the app's maintenance.html (or podku's page)."""
    apps.load(app)
    page = proxyconf.app_page(app)
    _changed(app, lambda current: dataclasses.replace(current, maintenance=True),
             f"Maintenance on for {app}: 503 with Retry-After", page)


@command("maintenance:disable")
@app_argument
def maintenance_disable(app: str) -> None:
    """Serve the app again."""
    apps.load(app)
    _changed(app, lambda current: dataclasses.replace(current, maintenance=False), f"Maintenance off for {app}")


# --- http-auth -----------------------------------------------------------------------------

def _read_password() -> bytes:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, default="", show_default=False).encode()
    return sys.stdin.buffer.read(proxyconf.MAX_PASSWORD_BYTES + 3)


@command("http-auth:enable")
@app_argument
@click.argument("user", callback=lambda _c, _p, value: proxyconf.parse_user(value))
def http_auth_enable(app: str, user: str) -> None:
    """Ask for USER and a password (read from stdin, kept only as a bcrypt hash)."""
    apps.load(app)
    password = proxyconf.parse_password(_read_password())
    auth = proxyconf.Auth(user=user, hash=proxyconf.hash_password(password))
    _changed(app, lambda current: dataclasses.replace(current, auth=auth),
             f"Basic auth on for {app} (user {user})")


@command("http-auth:disable")
@app_argument
def http_auth_disable(app: str) -> None:
    """Stop asking for a password."""
    apps.load(app)
    _changed(app, lambda current: dataclasses.replace(current, auth=None), f"Basic auth off for {app}")


@command("http-auth:report")
@app_argument
def http_auth_report(app: str) -> None:
    """Whether the app asks for a password, and for which user."""
    apps.load(app)
    auth = proxyconf.load(app).auth
    output.echo(f"=====> {app} http-auth information")
    output.field("Http auth enabled", "true" if auth else "false")
    output.field("Http auth user", auth.user if auth else "-")


# --- redirects -----------------------------------------------------------------------------

@command("redirect:set")
@app_argument
@click.argument("source")
@click.argument("target")
@click.argument("code", default="301")
def redirect_set(app: str, source: str, target: str, code: str) -> None:
    """Redirect requests for SOURCE (one of the app's names) to TARGET, path and query kept."""
    source, target = domains.parse(source), domains.parse(target)
    status = proxyconf.parse_code(code)
    apps.load(app)
    proxyconf.check_redirect(app, source, target)  # before the locks, and again under them
    with domains.changing(app):
        apps.load(app)
        current = proxyconf.load(app)
        proxyconf.check_redirect(app, source, target)
        back = current.redirects.get(target)
        if back is not None and back.to == source:
            raise proxyconf.ProxySettingError(f"{target} redirects to {source}: the two would loop")
        redirects = {**current.redirects, source: proxyconf.Redirect(to=target, code=status)}
        proxyconf.change(app, dataclasses.replace(current, redirects=redirects))
    output.step(f"Redirect {source} -> {target} ({status})")


@command("redirect:unset")
@app_argument
@click.argument("source")
def redirect_unset(app: str, source: str) -> None:
    """Stop redirecting SOURCE."""
    source = domains.parse(source)
    with apps.lock(app):
        current = proxyconf.load(app)
        if source not in current.redirects:
            raise UsageError(f"{source} has no redirect in {app}")
        redirects = {name: value for name, value in current.redirects.items() if name != source}
        proxyconf.change(app, dataclasses.replace(current, redirects=redirects))
    output.step(f"Redirect from {source} removed")


@command("redirect:report")
@app_argument
def redirect_report(app: str) -> None:
    """The app's redirects: FROM TO CODE, one a line."""
    apps.load(app)
    output.echo(f"=====> {app} redirects")
    for source, redirect in sorted(proxyconf.load(app).redirects.items()):
        output.echo(f"{source} {redirect.to} {redirect.code}")


# --- proxy:set -----------------------------------------------------------------------------

def _setting(current: proxyconf.ProxySettings, key: str, value: str | None) -> proxyconf.ProxySettings:
    """The settings with KEY set to VALUE (no value: the default)."""
    if key == "client-max-body-size":
        return dataclasses.replace(current, body_max=None if value is None else proxyconf.parse_size(value))
    if key == "read-timeout":
        return dataclasses.replace(current, read_timeout=None if value is None else proxyconf.parse_read_timeout(value))
    if key == "https-only":
        wanted = value is not None and proxyconf.parse_switch(value)
        if wanted and not proxyconf.https_available():
            raise proxyconf.ProxySettingError("https-only needs HTTPS: this host runs with --tls off")
        return dataclasses.replace(current, https_only=wanted)
    if key == "hsts":
        age = None if value is None else proxyconf.parse_max_age(value)
        return dataclasses.replace(current, hsts=age or None)
    raise proxyconf.ProxySettingError(f"unknown setting {key[:40]!r}: proxy:set knows {', '.join(PROXY_KEYS)}")


@command("proxy:set")
@app_argument
@click.argument("key")
@click.argument("value")
def proxy_set(app: str, key: str, value: str) -> None:
    """Set client-max-body-size SIZE, read-timeout 60s, https-only on|off or hsts MAX-AGE."""
    apps.load(app)
    _setting(proxyconf.ProxySettings(), key, value)  # every value checked before the lock
    _changed(app, lambda current: _setting(current, key, value), f"{key} for {app}: {value}")


@command("proxy:unset")
@app_argument
@click.argument("key")
def proxy_unset(app: str, key: str) -> None:
    """Put KEY back to its default (no body limit, no read timeout, HTTP served, no HSTS)."""
    apps.load(app)
    _setting(proxyconf.ProxySettings(), key, None)
    _changed(app, lambda current: _setting(current, key, None), f"{key} for {app}: default")


@command("proxy:report")
@app_argument
def proxy_report(app: str) -> None:
    """The app's proxy settings."""
    apps.load(app)
    current = proxyconf.load(app)
    output.echo(f"=====> {app} proxy information")
    output.field("Maintenance", "on" if current.maintenance else "off")
    output.field("Http auth", f"on (user {current.auth.user})" if current.auth else "off")
    output.field("Client max body size", _describe_body_max(current.body_max))
    output.field("Read timeout", proxyconf.describe_seconds(current.read_timeout) if current.read_timeout else "-")
    output.field("Https only", "on" if current.https_only else "off")
    output.field("Hsts max age", current.hsts if current.hsts is not None else "-")
    output.field("Redirects", len(current.redirects))


def _describe_body_max(limit: int | None) -> str:
    if limit is None:
        return "-"
    cap = caddy.body_cap(limit)
    if cap == limit:
        return proxyconf.describe_size(limit)
    return f"{proxyconf.describe_size(limit)} (a body without Content-Length: cut at {proxyconf.describe_size(cap)})"


# --- access logs ---------------------------------------------------------------------------

def show_access_log(app: str, num: int, follow: bool) -> None:
    hosts = set(domains.names_of(app))
    for line in accesslog.last(hosts, num):
        output.echo(line)
    if follow:
        sys.stdout.flush()
        accesslog.follow(hosts, _echo_now)


def _echo_now(line: str) -> None:
    output.echo(line)
    sys.stdout.flush()


@command("logs:access")
@app_argument
@click.option("-n", "--num", default=100, type=click.IntRange(1, 100000))
@click.option("-t", "-f", "--tail", "follow", is_flag=True, help="Follow.")
def logs_access(app: str, num: int, follow: bool) -> None:
    """The requests Caddy passed to the app: time, client, method, host, path, status, bytes, duration."""
    apps.load(app)
    show_access_log(app, num, follow)
