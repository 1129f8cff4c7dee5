"""Is a release fit to take traffic? Asked through its own socket, before the swap."""

import http.client
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from podku import names
from podku.errors import PodkuError, UsageError
from podku.host import records, unixhttp


@dataclass(frozen=True)
class Checks:
    """Dokku's names and meanings: per-attempt timeout, attempts, wait between attempts."""

    enabled: bool = True
    path: str = "/"
    attempts: int = 5
    timeout: int = 5
    wait: int = 2
    initial_delay: int = 0
    content: str = ""
    wait_to_retire: int = 5

    @classmethod
    def from_dict(cls, data: dict) -> "Checks":
        """Checks as recorded in the app record, every field checked (RECORD)."""
        return cls(**RECORD(data))

    def to_dict(self) -> dict:
        return asdict(self)

    def with_setting(self, key: str, value: str) -> "Checks":
        name = key.replace("-", "_")
        if name not in NUMERIC_SETTINGS:
            raise UsageError(f"unknown check setting {key!r}: use one of "
                             + ", ".join(sorted(s.replace("_", "-") for s in NUMERIC_SETTINGS)))
        if not names.ASCII_NUMBER.fullmatch(value) or len(value) > 5 or int(value) > MAXIMUM[name]:
            raise UsageError(f"invalid value for {key}: expected whole seconds or a count, 0 to {MAXIMUM[name]}")
        changed: dict[str, Any] = {name: int(value)}
        return replace(self, **changed).bounded()

    @property
    def longest_seconds(self) -> int:
        """How long a check may take at most, every attempt failing by its timeout."""
        attempts = max(self.attempts, 1)
        return self.initial_delay + attempts * self.timeout + (attempts - 1) * self.wait

    def bounded(self) -> "Checks":
        if self.longest_seconds > MAX_CHECK_SECONDS:
            raise UsageError(f"health checks could take {self.longest_seconds}s (initial delay + attempts x "
                             f"(timeout + wait)); the most is {MAX_CHECK_SECONDS}s")
        return self


# Bounds on each setting, and on a whole check: a deploy holds the app's lock meanwhile.
MAXIMUM = {"attempts": 100, "timeout": 600, "wait": 600, "initial_delay": 600, "wait_to_retire": 3600}
NUMERIC_SETTINGS = tuple(MAXIMUM)
MAX_CHECK_SECONDS = 900
MAX_TEXT = 1024


def _path(value: object) -> str:
    path = records.text(MAX_TEXT)(value)
    if not path.startswith("/") or " " in path:
        raise records.Invalid(f"expected a path starting with / without spaces, found {records.shown(path, 40)}")
    return path


# Older podku let checks:set store any setting up to 3600 (and no total): such records still
# load; checks:set and app.json hold to MAXIMUM, and a check's own deadline bounds the rest.
RECORDED_MAXIMUM = 3600
# The app record's `checks`.
RECORD = records.record({
    "enabled": records.Field(records.boolean),
    "path": records.Field(_path),
    "content": records.Field(records.text(MAX_TEXT)),
    **{name: records.Field(records.integer(0, RECORDED_MAXIMUM)) for name in NUMERIC_SETTINGS},
})


class HealthCheckFailed(PodkuError):
    pass


def from_app_json(app_json: dict, base: Checks) -> Checks:
    """Overrides from app.json's Dokku-style `healthchecks.web[0]`, if present."""
    section = app_json.get("healthchecks") or {}
    web = section.get("web") if isinstance(section, dict) else None
    if not web:
        return base
    if not isinstance(web, list) or not isinstance(web[0], dict):
        raise UsageError("app.json healthchecks.web must be a list of objects")
    renames = {"initialDelay": "initial_delay"}
    overrides: dict[str, Any] = {}
    for key, value in web[0].items():
        name = renames.get(key, key)
        if name in NUMERIC_SETTINGS:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAXIMUM[name]:
                raise UsageError(f"app.json healthchecks: {key} must be a whole number from 0 to {MAXIMUM[name]}")
            overrides[name] = value
        elif name in ("path", "content"):
            overrides[name] = _text_setting(key, value, must_start="/" if name == "path" else "")
    return replace(base, **overrides).bounded()


def _text_setting(key: str, value: object, must_start: str) -> str:
    if (not isinstance(value, str) or not value.startswith(must_start) or len(value) > MAX_TEXT
            or not value.isprintable() or (must_start and " " in value)):
        raise UsageError(f"app.json healthchecks: {key} must be printable text of at most {MAX_TEXT}"
                         " characters" + (f" starting with {must_start}, without spaces" if must_start else ""))
    return value


def check(socket_path: str, host: str, checks: Checks, log=lambda line: None) -> None:
    """Raise HealthCheckFailed unless one of the attempts gets a good answer in time. The
    whole check, every attempt and wait, ends by one deadline (longest_seconds, at most
    MAX_CHECK_SECONDS): an app that answers a byte at a time cannot hold the deploy longer."""
    if not checks.enabled:
        log("Health checks disabled: skipping")
        return
    deadline = time.monotonic() + min(checks.longest_seconds, MAX_CHECK_SECONDS)
    _sleep_until(min(time.monotonic() + checks.initial_delay, deadline))
    reason: str | None = "no attempt made"
    made = 0
    attempts = max(checks.attempts, 1)
    for attempt in range(1, attempts + 1):
        if time.monotonic() >= deadline:
            reason = f"{reason}; the check's time ran out"
            break
        made = attempt
        reason = _attempt(socket_path, host, checks, min(time.monotonic() + checks.timeout, deadline))
        if reason is None:
            log(f"Health check {checks.path} passed (attempt {attempt}/{checks.attempts})")
            return
        log(f"Health check attempt {attempt}/{checks.attempts} failed: {reason}")
        if attempt < attempts:
            _sleep_until(min(time.monotonic() + checks.wait, deadline))
    raise HealthCheckFailed(f"health check {checks.path} failed {made} times: {reason}")


def _sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.monotonic(), 0))


def _attempt(socket_path: str, host: str, checks: Checks, deadline: float) -> str | None:
    """None when the answer is good by `deadline`, else why not."""
    try:
        status, body = unixhttp.request(socket_path, "GET", checks.path, host=host,
                                        timeout=checks.timeout, deadline=deadline)
    except (OSError, ValueError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if status >= 500:
        return f"HTTP {status}"
    if checks.content and checks.content not in body.decode(errors="replace"):
        return f"response does not contain {checks.content!r}"
    return None
