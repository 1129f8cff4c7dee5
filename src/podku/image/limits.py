"""Host-wide limits on what one push may cost: build time, memory and tasks, push size.

Defaults fit a 1 GB host; an operator may override any of them in ~/.config/podku/limits.json:
{"build_timeout": 1800, "build_memory": "768M", "build_tasks": 512, "push_max_bytes": 536870912}."""

import json
import re
from dataclasses import dataclass, fields

from podku.errors import PodkuError
from podku.host import paths

LIMITS_FILE_NAME = "limits.json"

BUILD_TIMEOUT_SECONDS = 30 * 60
BUILD_MEMORY = "768M"
BUILD_TASKS = 512
PUSH_MAX_BYTES = 512 * 1024 * 1024
MEMORY_SIZE = re.compile(r"[1-9][0-9]*[KMGT]?")


class LimitsError(PodkuError):
    pass


@dataclass(frozen=True)
class Limits:
    build_timeout: int = BUILD_TIMEOUT_SECONDS
    build_memory: str = BUILD_MEMORY
    build_tasks: int = BUILD_TASKS
    push_max_bytes: int = PUSH_MAX_BYTES

    def __post_init__(self) -> None:
        for name in ("build_timeout", "build_tasks", "push_max_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise LimitsError(f"{LIMITS_FILE_NAME}: {name} must be a positive whole number")
        if not isinstance(self.build_memory, str) or not MEMORY_SIZE.fullmatch(self.build_memory):
            raise LimitsError(f"{LIMITS_FILE_NAME}: build_memory must look like 768M or 2G")


def load() -> Limits:
    """The limits in force: the defaults, overridden by what the limits file sets."""
    path = paths.CONFIG / LIMITS_FILE_NAME
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        return Limits()
    except (OSError, ValueError) as error:
        raise LimitsError(f"cannot read {path}: {error}") from error
    known = {field.name for field in fields(Limits)}
    if not isinstance(values, dict) or set(values) - known:
        raise LimitsError(f"{path}: expected an object with some of {', '.join(sorted(known))}")
    return Limits(**values)
