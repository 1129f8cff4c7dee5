"""Scale to zero: an app with no request for its idle timeout is stopped, and its socket
keeps listening, so the next request starts it again.

podku cannot see inside an app whether it is busy, so an app with an idle timeout is
served through systemd-socket-proxyd (`--exit-idle-time`), which exits when no connection
has been open for that long; the app's unit is `StopWhenUnneeded=yes`, so it stops with the
proxy. A $PORT app has that proxy anyway (the bridge); an fd 3 app gets it in front of an
inner socket that systemd hands to the app as fd 3. `0` means never (the default)."""

import re

from podku.errors import UsageError
from podku.host import paths, state

FILE_NAME = "idle.json"
GLOBAL_FILE_NAME = "idle.json"
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"([0-9]{1,6})([smhd]?)")
MIN_SECONDS = 5
MAX_SECONDS = 30 * 86400


class IdleError(UsageError):
    pass


def parse_duration(text: str) -> int:
    """Seconds from 30s, 5m, 1h, 2d or a plain number of seconds; 0 means never."""
    match = DURATION.fullmatch(text or "")
    if not match:
        raise IdleError(f"invalid duration {text[:40]!r}: use a whole number with s, m, h or d, like 5m (0: never)")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds and not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise IdleError(f"invalid duration {text!r}: from {MIN_SECONDS}s to 30d, or 0 for never")
    return seconds


def _app_file(app: str):
    return paths.AppPaths(app).root / FILE_NAME


def _global_file():
    return paths.CONFIG / GLOBAL_FILE_NAME


def app_setting(app: str) -> int | None:
    return state.read_json(_app_file(app), {}).get("idle_timeout")


def global_default() -> int:
    return int(state.read_json(_global_file(), {}).get("idle_timeout", 0))


def timeout(app: str) -> int:
    """The idle timeout a new release of `app` gets, in seconds (0: never idle)."""
    own = app_setting(app)
    return int(own) if own is not None else global_default()


def save_app(app: str, seconds: int | None) -> None:
    if seconds is None:
        _app_file(app).unlink(missing_ok=True)
    else:
        state.write_json(_app_file(app), {"idle_timeout": seconds})


def save_global(seconds: int) -> None:
    state.write_json(_global_file(), {"idle_timeout": seconds})


def describe(seconds: int) -> str:
    if not seconds:
        return "never"
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
