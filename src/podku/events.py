"""Who did what: a host-wide log of every command a key holder ran and every push, one JSON
line each (time, key name, command, app, outcome), kept bounded: past MAX_BYTES the log is
renamed to events.log.1 (the one older generation kept) and a new one begun. Appends and the
rotation happen under one lock; a line is one write(2) of an O_APPEND file, fsynced.

Only the command's name and its app are kept, never its other words: `config:set` carries
secrets."""

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from podku import names, sshkeys
from podku.errors import PodkuError
from podku.host import paths, records

FILE_NAME = "events.log"  # in paths.STATE, with events.log.1 and events.lock beside it
MAX_BYTES = 1024 * 1024
MAX_LINE = 1024
UNNAMED = "-"  # a key line written before keys carried their name, or a command run on the host
COMMAND = re.compile(r"[a-z][a-z0-9:-]{0,39}")
KEY_ENV = "PODKU_KEY_NAME"  # set by ssh-command for the git hook a push runs


def key_name_or_unnamed(value: str) -> str:
    return value if value == UNNAMED else sshkeys.key_name(value)


RECORD = records.record({
    "time": records.Field(records.TIMESTAMP, True),
    "key": records.Field(records.validated(key_name_or_unnamed), True),
    "command": records.Field(records.text(40, rf"\?|{COMMAND.pattern}", "a command name"), True),
    "app": records.Field(records.text(63), True),
    "outcome": records.Field(records.text(200), True),
})


def app_of(words: list[str]) -> str:
    """The app a command names (its first argument when that is an app's name), or ''."""
    candidate = words[1] if len(words) > 1 else ""
    try:
        return names.app_name(candidate)
    except PodkuError:
        return ""


def log_path(suffix: str = "") -> Path:
    return paths.STATE / (FILE_NAME + suffix)


def record(key: str, command: str, app: str, outcome: str) -> None:
    """Append one event. Never raises: a full disk must not fail the command it records."""
    entry = {"time": round(time.time(), 3), "key": key, "command": command if COMMAND.fullmatch(command) else "?",
             "app": app, "outcome": outcome[:200]}
    try:
        line = (json.dumps(records.validate(entry, RECORD, log_path()), ensure_ascii=True) + "\n").encode()
        with _locked():
            _rotate_if_full()
            descriptor = os.open(log_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
    except (OSError, PodkuError):
        pass


def last(count: int) -> list[dict]:
    """The newest `count` events, oldest first; a line podku would not have written is skipped."""
    with _locked():
        lines = _tail(log_path(".1"), count) + _tail(log_path(), count)
    events = []
    for line in lines[-count:]:
        with contextlib.suppress(ValueError, PodkuError):
            events.append(records.validate(json.loads(line), RECORD, log_path()))
    return events


def _tail(path: Path, count: int) -> list[str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + MAX_LINE)
    except FileNotFoundError:
        return []
    return [line.decode(errors="replace") for line in data.splitlines()[-count:] if len(line) <= MAX_LINE]


def _rotate_if_full() -> None:
    with contextlib.suppress(FileNotFoundError):
        if log_path().stat().st_size >= MAX_BYTES:
            os.replace(log_path(), log_path(".1"))


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    lock = log_path(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shown(event: dict) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["time"]))
    return f"{when}  {event['key']:<16} {event['command']:<20} {event['app'] or '-':<20} {event['outcome']}"
