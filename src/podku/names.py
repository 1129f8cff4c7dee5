"""Validation of every name that reaches a path, a unit name, a Caddy route or a command line."""

import base64
import re

from podku import naming
from podku.errors import UsageError

APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ASCII_NUMBER = re.compile(r"[0-9]+")
# A host name as podku routes it. Caddy dials it as a unix socket path relative to the hosts
# directory (at most 107 bytes), hence 100 characters rather than DNS's 253. The pattern is
# also Caddy's guard on every Host, SNI and ask query (proxy/caddy.py): valid in Python and in RE2.
MAX_HOST_NAME = 100
HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME_PATTERN = rf"^{HOST_LABEL}(?:\.{HOST_LABEL})*$"
# Unit names a user's systemd already has, or podku's own: an app may not shadow them.
RESERVED_APP_NAMES = frozenset(
    {"caddy", "podku", "podku-caddy", "dbus", "podman", "default", "basic", "sockets",
     "timers", "paths", "exit", "shutdown", "init", "systemd", "pipewire", "pulseaudio",
     "gpg-agent", "ssh-agent", "git", "app", "apps", "root"}
)


def app_name(name: str) -> str:
    """An app name: lower-case letters, digits and inner dashes, at most 63 characters."""
    if not APP_NAME.fullmatch(name or ""):
        raise UsageError(
            f"invalid app name {name!r}: use 1-63 lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit"
        )
    if name in RESERVED_APP_NAMES:
        raise UsageError(f"invalid app name {name!r}: the name is reserved")
    if re.search(r"-r[0-9]+(-|$)", name):
        raise UsageError(f"invalid app name {name!r}: '-rN' (N a number) is kept for release units")
    return name


def service_name(name: str) -> str:
    """A service's name (postgres:create NAME): the rules of an app name. It becomes a unit,
    a container, a directory and a path inside linked apps' containers."""
    try:
        return app_name(name)
    except UsageError as error:
        raise UsageError(str(error).replace("app name", "service name", 1)) from None


def env_key(key: str) -> str:
    if not ENV_KEY.fullmatch(key or ""):
        raise UsageError(
            f"invalid config key {key!r}: use letters, digits and underscores, not starting with a digit"
        )
    return key


MAX_ENV_VALUE = 32 * 1024
# Control characters but tab, and lone surrogates (what Python makes of bytes that are not UTF-8).
FORBIDDEN_IN_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
# A value set with config:set --encoded may hold line breaks too (a PEM key): control
# characters but tab and newline. Such a value reaches containers as a podman secret.
FORBIDDEN_IN_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def env_value(key: str, value: str, multiline: bool = False) -> str:
    """A config value: UTF-8 text without control characters (but tab, and newline when
    `multiline`), at most 32 KiB."""
    bad = (FORBIDDEN_IN_MULTILINE if multiline else FORBIDDEN_IN_VALUE).search(value)
    if bad and "\ud800" <= bad.group() <= "\udfff":
        raise UsageError(f"invalid value for {key}: it is not valid UTF-8")
    if bad:
        allowed = "control characters but newline and tab" if multiline else "line breaks or control characters"
        hint = "" if multiline or bad.group() != "\n" else "; config:set --encoded takes line breaks"
        raise UsageError(f"invalid value for {key}: it may not contain {allowed} "
                         f"(found \\x{ord(bad.group()):02x}){hint}")
    if len(value.encode()) > MAX_ENV_VALUE:
        raise UsageError(f"invalid value for {key}: longer than {MAX_ENV_VALUE // 1024} KiB")
    return value


def env_assignment(text: str) -> tuple[str, str]:
    """KEY=VALUE as given on a command line."""
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"invalid config assignment {text!r}: expected KEY=VALUE")
    return env_key(key), env_value(key, value)


def env_encoded_assignment(text: str) -> tuple[str, str]:
    """KEY=BASE64 (config:set --encoded): the value is the decoded bytes, which must be UTF-8
    text; newlines and tabs are kept."""
    key, sep, encoded = text.partition("=")
    if not sep:
        raise UsageError(f"invalid config assignment {text[:80]!r}: expected KEY=BASE64")
    env_key(key)
    if len(encoded) > 2 * MAX_ENV_VALUE:
        raise UsageError(f"invalid value for {key}: longer than {MAX_ENV_VALUE // 1024} KiB")
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise UsageError(f"invalid value for {key}: it is not base64") from None
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"invalid value for {key}: the decoded bytes are not UTF-8 text") from None
    return key, env_value(key, value, multiline=True)


# journalctl --since/--until as systemd.time(7) writes them: an absolute date/time, a
# keyword, @EPOCH, or a relative span ("-1h", "2 days ago", "+5min").
JOURNAL_TIME = re.compile(
    r"(now|today|yesterday|tomorrow"
    r"|@[0-9]{1,12}(\.[0-9]{1,6})?"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?( UTC)?"
    r"|[0-9]{2}:[0-9]{2}(:[0-9]{2})?"
    r"|[+-]?([0-9]{1,9} ?[a-z]{1,7} ?){1,6}(ago)?)")


def journal_time(text: str) -> str:
    """A time as journalctl's --since/--until take it, and nothing else (it is passed as one
    `--since=TEXT` word, so a leading dash is a relative time, never an option)."""
    if len(text) > 64 or not JOURNAL_TIME.fullmatch(text):
        raise UsageError(f"invalid time {text[:80]!r}: use a journalctl time such as "
                         "'2026-11-29 14:00', 'today', '-1h' or '2 hours ago'")
    return text


def domain(name: str) -> str:
    """A host name exactly as routed: dot-separated lower-case labels of 1-63 letters, digits
    and inner dashes, at most 100 characters in all. Nothing else reaches a file or a dial."""
    problem = host_name_problem(name)
    if problem:
        raise UsageError(f"invalid domain {name!r}: {problem}")
    return name


def host_name_problem(name: str) -> str | None:
    """Why `name` is not a host name as routed (None when it is one)."""
    if not name:
        return "empty"
    if len(name) > MAX_HOST_NAME:
        return f"longer than {MAX_HOST_NAME} characters"
    for label in name.split("."):
        if not re.fullmatch(HOST_LABEL, label):
            return f"label {label!r} must be 1-63 lower-case letters, digits or inner dashes"
    return None


def release_id(text: str) -> int:
    """A release number as typed by a user: 7 or r7 or v7."""
    digits = text[1:] if text[:1] in ("r", "v") else text
    if not ASCII_NUMBER.fullmatch(digits) or len(digits) > 9 or int(digits) < 1:
        raise UsageError(f"invalid release {text!r}: expected a release number like 7")
    return int(digits)


def container(name: str) -> str:
    """A release's container name, as podku's own units pass it (podku-APP-rN)."""
    parsed = naming.parse_container(name)
    if parsed is None:
        raise UsageError(f"invalid container name {name!r}: expected podku-APP-rN")
    app_name(parsed[0])
    return name


# An image reference as `git:from-image` pulls it: a registry host (a dot or a port in it,
# so podman never resolves a short name against its search list or the local store), then
# lower-case path components, then a tag and/or a digest. Never localhost: that is the
# host's own store, and podku's images live there.
MAX_IMAGE_REFERENCE = 255
_REGISTRY = r"(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)*(?::[0-9]{1,5})?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?P<registry>{_REGISTRY})/(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")


def image_reference(reference: str) -> str:
    """A registry image's full name: REGISTRY[:PORT]/PATH[:TAG][@sha256:DIGEST]."""
    match = IMAGE_REFERENCE.fullmatch(reference or "") if len(reference or "") <= MAX_IMAGE_REFERENCE else None
    if match is None:
        raise UsageError(f"invalid image reference {reference!r}: expected REGISTRY/NAME[:TAG][@sha256:DIGEST], "
                         "the registry named in full (ghcr.io/owner/app:1.2, registry.example:5000/app)")
    registry = match.group("registry")
    if "." not in registry and ":" not in registry:
        raise UsageError(f"invalid image reference {reference!r}: name the registry in full "
                         "(a host with a dot or a port), podku never guesses one")
    if registry.split(":")[0] == "localhost":
        raise UsageError(f"invalid image reference {reference!r}: localhost names the host's own images")
    return reference
