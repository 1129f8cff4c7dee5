"""app.json as pushed: parsed once, its shape checked before anything reads it."""

import json
from typing import Any

from podku import cron, deploytasks, health
from podku.errors import UsageError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 20


class AppJsonInvalid(UsageError):
    pass


def parse(text: str) -> dict[str, Any]:
    """The app.json object, or AppJsonInvalid saying in one line what is wrong with it."""
    if len(text.encode(errors="replace")) > MAX_BYTES:
        raise AppJsonInvalid(f"app.json is larger than {MAX_BYTES // 1024} KiB")
    try:
        data = json.loads(text)
    except RecursionError:
        raise AppJsonInvalid(f"app.json is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise AppJsonInvalid(f"app.json is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise AppJsonInvalid(f"app.json must be a JSON object, not {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise AppJsonInvalid(f"app.json is nested deeper than {MAX_DEPTH} levels")
    _check_healthchecks(data.get("healthchecks"))
    try:
        cron.entries(data)
        deploytasks.scripts(data)
    except UsageError as error:
        raise AppJsonInvalid(str(error)) from None
    return data


def _depth(value: Any) -> int:
    """How deeply containers nest in `value`, counted without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        current, level = pending.pop()
        if isinstance(current, (dict, list)):
            deepest = max(deepest, level)
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, level + 1) for child in children)
    return deepest


def _check_healthchecks(section: Any) -> None:
    if section is None:
        return
    if not isinstance(section, dict):
        raise AppJsonInvalid("app.json healthchecks must be an object")
    web = section.get("web")
    if web is None:
        return
    if not isinstance(web, list) or not all(isinstance(check, dict) for check in web):
        raise AppJsonInvalid("app.json healthchecks.web must be a list of objects")
    try:
        health.from_app_json({"healthchecks": section}, health.Checks())
    except UsageError as error:
        raise AppJsonInvalid(str(error)) from None
