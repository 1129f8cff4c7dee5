"""One schema per JSON record, checked field by field wherever the record is read.

A record on disk may have been edited by hand, written by an older podku or brought by
`backup:import`: its fields become unit lines, paths, unit names and command arguments, so
nothing in it is trusted. Each record module declares its schema (a check per field, built
from the small checks below and the validators in names.py) and uses it in the command that
writes the record, in its load and in the import's staged check alike. A refused record is a
one-line RecordInvalid naming the file and the field."""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from podku import names
from podku.errors import PodkuError
from podku.host import state

Check = Callable[[Any], Any]  # returns the value to keep, or raises Invalid saying why
# C0 and C1 control characters (tab too), DEL and lone surrogates: never in a record's text.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_RECORD_BYTES = 64 * 1024 ** 2
MAX_SHOWN = 160
MAX_RELEASE_ID = 999_999_999  # names.release_id: at most 9 digits
MAX_TIME = 2 ** 40  # seconds since 1970: far beyond any clock, far below float's precision
MAX_CONFIG_KEYS = 4096


class RecordInvalid(state.StateCorrupt):
    """A record podku would not have written; the message names the file and the field."""


class Invalid(Exception):
    """Why a value is refused; `where` is the path inside the field (`web[2]`, `FOO`)."""

    def __init__(self, reason: str, where: str = ""):
        super().__init__(reason)
        self.reason, self.where = reason, where

    def inside(self, part: str) -> "Invalid":
        inner = self.where if not self.where or self.where.startswith("[") else f".{self.where}"
        return Invalid(self.reason, f"{part}{inner}")


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = False


Schema = Mapping[str, Field]


# --- reading and checking a record ----------------------------------------------------------

def read(path: Path, check: Check, default: Any = None) -> Any:
    """The record at `path` passed through `check`; `default` when there is no file."""
    data = read_json(path)
    return default if data is None else validate(data, check, path)


def read_json(path: Path) -> Any:
    """The JSON at `path`, bounded in size; None when there is no file (JSON null is refused
    by every schema, so it cannot pass for a missing file)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > MAX_RECORD_BYTES:
        raise RecordInvalid(f"the state file {path} is larger than {MAX_RECORD_BYTES // 1024 ** 2} MiB")
    data = state.read_json(path)
    if data is None and path.exists():
        raise RecordInvalid(f"the state file {path} is invalid: expected an object, found null")
    return data


def validate(data: Any, check: Check, where: Path | str) -> Any:
    """`check(data)`, its refusal a RecordInvalid naming `where` and the field."""
    try:
        return check(data)
    except Invalid as error:
        field_name = f"field {error.where}: " if error.where else ""
        message = f"the state file {where} is invalid: {field_name}{error.reason}"
        raise RecordInvalid(message[:4 * MAX_SHOWN]) from None


def parse(data: Any, schema: Schema, where: Path | str) -> dict:
    return validate(data, record(schema), where)


def record(schema: Schema, obsolete: tuple[str, ...] = ()) -> Check:
    """An object with these fields: each present one checked, required ones present, no
    others (but `obsolete` ones, which older podku versions wrote: dropped)."""
    def check(value: Any) -> dict:
        data = an_object(value)
        unknown = sorted(set(data) - set(schema) - set(obsolete), key=str)
        if unknown:
            raise Invalid(f"unknown field {shown(unknown[0])}")
        missing = [key for key, spec in schema.items() if spec.required and key not in data]
        if missing:
            raise Invalid(f"the field {missing[0]} is missing")
        checked = {}
        for key, spec in schema.items():
            if key in data:
                try:
                    checked[key] = spec.check(data[key])
                except Invalid as error:
                    raise error.inside(key) from None
        return checked
    return check


def covers(schema: Schema, record_class: type) -> bool:
    """Whether `schema` has a check for every field of the dataclass (a test asks)."""
    return set(schema) == {item.name for item in fields(record_class)}


# --- checks ------------------------------------------------------------------------------------

def kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """A value in a message: repr'd (escapes included), bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def an_object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, found {kind(value)}")
    return value


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if type(value) is not int or not low <= value <= high:
            raise Invalid(f"expected a whole number from {low} to {high}, found {_found(value)}")
        return value
    return check


def number(low: float, high: float) -> Check:
    def check(value: Any) -> float:
        if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
            raise Invalid(f"expected a number from {low} to {high}, found {_found(value)}")
        return value
    return check


def boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise Invalid(f"expected true or false, found {_found(value)}")
    return value


def text(max_chars: int, pattern: str | None = None, what: str = "") -> Check:
    """One line of text without control characters, at most `max_chars`, matching `pattern`."""
    regex = re.compile(pattern) if pattern else None

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected text, found {kind(value)}")
        if len(value) > max_chars:
            raise Invalid(f"longer than {max_chars} characters")
        bad = CONTROL.search(value)
        if bad:
            raise Invalid(f"control characters are not allowed (found \\x{ord(bad.group()) & 0xff:02x})")
        if regex and not regex.fullmatch(value):
            raise Invalid(f"expected {what or f'text matching {pattern}'}, found {shown(value)}")
        return value
    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise Invalid(f"expected one of {', '.join(map(str, choices))}, found {_found(value)}")
        return value
    return check


def equal_to(expected: Any, what: str) -> Check:
    def check(value: Any) -> Any:
        if value != expected:
            raise Invalid(f"expected {expected!r} ({what}), found {_found(value)}")
        return value
    return check


def optional(inner: Check) -> Check:
    """null, or what `inner` accepts."""
    return lambda value: None if value is None else inner(value)


def every(*checks: Check) -> Check:
    def check(value: Any) -> Any:
        for each in checks:
            value = each(value)
        return value
    return check


def list_of(item: Check, max_items: int) -> Check:
    def check(value: Any) -> list:
        if not isinstance(value, list):
            raise Invalid(f"expected a list, found {kind(value)}")
        if len(value) > max_items:
            raise Invalid(f"more than {max_items} items")
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(item(element))
            except Invalid as error:
                raise error.inside(f"[{index}]") from None
        return checked
    return check


def mapping(key: Check, item: Check, max_items: int) -> Check:
    def check(value: Any) -> dict:
        data = an_object(value)
        if len(data) > max_items:
            raise Invalid(f"more than {max_items} entries")
        checked = {}
        for name, element in data.items():
            try:
                checked[key(name)] = item(element)
            except Invalid as error:
                raise error.inside(shown(name, 40) if not _plain(name) else name) from None
        return checked
    return check


def validated(validator: Callable[[str], Any]) -> Check:
    """Text accepted by one of podku's validators (names.app_name and the like); its own
    refusal is the reason. The text is kept as it was."""
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected text, found {kind(value)}")
        try:
            validator(value)
        except (PodkuError, ValueError) as error:
            raise Invalid(str(error)[:2 * MAX_SHOWN]) from None
        return value
    return check


def environment(value: Any) -> dict[str, str]:
    """An app's config: names.env_key keys, names.env_value values. A value may hold newlines
    and tabs (config:set --encoded), never another control character."""
    data = an_object(value)
    if len(data) > MAX_CONFIG_KEYS:
        raise Invalid(f"more than {MAX_CONFIG_KEYS} keys")
    for key, item in data.items():
        try:
            names.env_key(key)
        except PodkuError as error:
            raise Invalid(str(error)[:2 * MAX_SHOWN]) from None
        if not isinstance(item, str):
            raise Invalid(f"expected text, found {kind(item)}", key)
        try:
            names.env_value(key, item, multiline=True)
        except PodkuError as error:
            raise Invalid(str(error), key) from None
    return dict(data)


APP_NAME = validated(names.app_name)
RELEASE_ID = integer(1, MAX_RELEASE_ID)
TIMESTAMP = number(0, MAX_TIME)


def _plain(name: Any) -> bool:
    return isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.@:/-]{1,64}", name) is not None


def _found(value: Any) -> str:
    return shown(value, 40) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else kind(value)
