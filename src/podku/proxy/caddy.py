"""Caddy: one config for every app, loaded through the admin API only when it changes.

Routing is by Host header through files (routes.py), so apps and names come and go
without a config load. What is in the config: ports, the TLS mode and ACME issuer, and
under --tls auto the internal-CA policy, whose subjects cover every internal name there can
be (so that no ACME order is ever made for one, and adding one loads nothing)."""

import json

from podku import names
from podku.errors import PodkuError
from podku.host import paths, settings, state, templates, unixhttp
from podku.proxy import routes

# The on-demand TLS "ask" endpoint: a server inside the same Caddy answering 200 for names
# that have a link in the hosts directory. Caddy 2.6 asks with a plain HTTP client over TCP
# (no unix socket), so it listens on a port below 1024 that no other local user may bind:
# one an older install used (2020) could be taken first and keep Caddy from starting. Port
# 8 is unassigned, in no /etc/services, and below the range RPC clients take (600-1023).
ASK_ADDRESS = "127.0.0.1:8"
INTERNAL_PATTERN = r"(^localhost$|\.(localhost|test|internal|local)$|^[0-9.]+$)"
# The access log (every app's requests, one JSON line each): at most this many MB in the
# current file and in each of the kept rolled ones.
ACCESS_LOG_MB = 10
ACCESS_LOG_KEEP = 3
# The read timeouts an app may choose (proxy:set APP read-timeout): how long Caddy waits for
# the app's response headers (at least Caddy's 10 s try_duration: a shorter one would send a
# GET to the app again). Each is a route of its own, since Caddy takes a timeout only
# from its config; the app's choice is a file (proxyconf.py), so a change is no load.
READ_TIMEOUTS = (10, 30, 60, 120, 300, 600, 1800, 3600)
TOO_LONG_PATTERN = rf"^(?s:.{{{names.MAX_HOST_NAME + 1}}})"
# The caps of a body without Content-Length (chunked, or HTTP/2): Caddy's request_body handler
# takes its size only from the config, so each is a route of its own, like the read timeouts.
# An app's limit (any size, checked exactly against a Content-Length) caps such a body at the
# smallest of these at least as large: exact for every size listed.
BODY_SIZE_STEPS = (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 250, 256, 500, 512)
MAX_BODY_GIB = 64
BODY_SIZES = tuple(sorted({step * 1024 ** power for step in BODY_SIZE_STEPS for power in (1, 2)}
                          | {step * 1024 ** 3 for step in BODY_SIZE_STEPS if step <= MAX_BODY_GIB}))
MIN_BODY, MAX_BODY = BODY_SIZES[0], BODY_SIZES[-1]


def body_cap(limit: int) -> int:
    """The request_body size a body without Content-Length is cut at, for a limit of `limit`."""
    return next(size for size in BODY_SIZES if size >= limit)


def issuer(current: settings.Settings) -> dict:
    if current.tls == "internal":
        return {"module": "internal"}
    acme: dict = {"module": "acme"}
    if current.acme_ca:
        acme["ca"] = current.acme_ca
    if current.acme_email:
        acme["email"] = current.acme_email
    if current.acme_ca_root:
        acme["trusted_roots_pem_files"] = [current.acme_ca_root]
    return acme


def internal_subjects(current: settings.Settings) -> list[str]:
    """The internal-CA policy's subjects under --tls auto: every name settings.is_internal
    calls internal, whatever names the apps hold. Caddy 2.6 picks a policy by
    certmagic.MatchWildcard(name, subject), which turns the name's labels into `*` one more
    at a time from the left: `*.*.test` is a.b.test, so there is one subject per depth a
    routed name can have (100 characters). "" is a handshake without SNI: an IP address
    (clients send none for one), which certmagic then names by the address dialled. An IP
    as the global domain: its apps' names, APP.IP."""
    if current.tls != "auto":
        return []
    subjects = ["", "localhost"]
    for suffix in settings.INTERNAL_SUFFIXES:
        top = suffix.removeprefix(".")
        subjects += ["*." * depth + top for depth in range(1, (names.MAX_HOST_NAME - len(top)) // 2 + 1)]
    if settings.is_ip_address(current.domain):
        subjects.append("*." + current.domain)
    return subjects


def render(current: settings.Settings) -> str:
    """The whole config."""
    text = templates.render(
        "caddy.json.j2", admin_socket=str(paths.CADDY_ADMIN_SOCKET), hosts_dir=str(routes.hosts_dir()),
        http_port=current.http_port, https_port=current.https_port, https_suffix=current.https_suffix,
        http_suffix="" if current.http_port == 80 else f":{current.http_port}",
        conf_dir=str(routes.conf_dir()), read_timeouts=READ_TIMEOUTS, body_sizes=BODY_SIZES,
        auth_socket=str(routes.auth_socket()),
        access_log=str(routes.access_log()), access_log_mb=ACCESS_LOG_MB, access_log_keep=ACCESS_LOG_KEEP,
        tls=current.tls, ask_address=ASK_ADDRESS, internal_pattern=INTERNAL_PATTERN,
        host_pattern=names.HOST_NAME_PATTERN, too_long_pattern=TOO_LONG_PATTERN,
        internal_subjects=internal_subjects(current), issuer=issuer(current))
    json.loads(text)  # a template mistake must fail here, not inside Caddy
    return text


def apply(current: settings.Settings) -> None:
    """Load the config into the running Caddy, then keep it as the file Caddy reads at boot.
    An unchanged config is not loaded again: every load reloads all of Caddy. A config
    Caddy refuses is not kept."""
    config = render(current)
    if paths.CADDY_CONFIG.exists() and paths.CADDY_CONFIG.read_text() == config:
        return
    _load(config)
    state.write_atomic(paths.CADDY_CONFIG, config)


def write(current: settings.Settings) -> None:
    """Only the file Caddy reads when it starts (before a restart)."""
    state.write_if_changed(paths.CADDY_CONFIG, render(current))


def _load(config: str) -> None:
    try:
        status, body = unixhttp.request(str(paths.CADDY_ADMIN_SOCKET), "POST", "/load",
                                        body=config.encode(),
                                        headers={"Content-Type": "application/json"})
    except (FileNotFoundError, ConnectionRefusedError):
        return  # Caddy is not running; it reads the file when it starts
    except OSError as error:
        raise PodkuError(f"cannot reach Caddy's admin API at {paths.CADDY_ADMIN_SOCKET}: {error}") from error
    if status != 200:
        raise PodkuError(f"Caddy refused the new routes (HTTP {status}): {body.decode(errors='replace').strip()}")
