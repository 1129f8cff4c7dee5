"""Scale to zero: an app with no request for its idle timeout is stopped, and its socket
keeps listening, so the next request starts it again.

podku cannot see inside an app whether it is busy, so an app with an idle timeout is
served through systemd-socket-proxyd (`--exit-idle-time`), which exits when no connection
has been open for that long; the app's unit is `StopWhenUnneeded=yes`, so it stops with the
proxy. A $PORT app has that proxy anyway (the bridge); an fd 3 app gets it in front of an
inner socket that systemd hands to the app as fd 3. `0` means never (the default)."""

import re

from podku.errors import UsageError
from podku.host import paths, records, state  # releases imports this module too

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


def recorded_seconds(value: object) -> int:
    """An idle timeout as recorded: 0 (never), or MIN_SECONDS to MAX_SECONDS."""
    if value != 0 or type(value) is not int:
        records.integer(MIN_SECONDS, MAX_SECONDS)(value)
    return value  # type: ignore[return-value]


RECORD = records.record({"idle_timeout": records.Field(recorded_seconds, required=True)})


def _app_file(app: str):
    return paths.AppPaths(app).root / FILE_NAME


def _global_file():
    return paths.CONFIG / GLOBAL_FILE_NAME


def app_setting(app: str) -> int | None:
    return records.read(_app_file(app), RECORD, {}).get("idle_timeout")


def global_default() -> int:
    return records.read(_global_file(), RECORD, {}).get("idle_timeout", 0)


def timeout(app: str) -> int:
    """The idle timeout a new release of `app` gets, in seconds (0: never idle)."""
    own = app_setting(app)
    return own if own is not None else global_default()


def save_app(app: str, timeout_seconds: int | None) -> None:
    if timeout_seconds is None:
        _app_file(app).unlink(missing_ok=True)
    else:
        _save(_app_file(app), timeout_seconds)


def save_global(timeout_seconds: int) -> None:
    _save(_global_file(), timeout_seconds)


def _save(path, timeout_seconds: int) -> None:
    state.write_json(path, records.validate({"idle_timeout": timeout_seconds}, RECORD, path))


def describe(seconds: int) -> str:
    if not seconds:
        return "never"
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
