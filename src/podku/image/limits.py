"""Host-wide limits on what one push may cost: build time, memory and tasks, push size, and
the size of an image sent or pulled whole (git:load-image, git:from-image).

Defaults fit a 1 GB host; an operator may override any of them in ~/.config/podku/limits.json:
{"build_timeout": 1800, "build_memory": "768M", "build_tasks": 512, "push_max_bytes": 536870912,
"image_max_bytes": 2147483648}."""

import re
from dataclasses import dataclass

from podku.errors import PodkuError
from podku.host import paths, records, state

LIMITS_FILE_NAME = "limits.json"

BUILD_TIMEOUT_SECONDS = 30 * 60
BUILD_MEMORY = "768M"
BUILD_TASKS = 512
PUSH_MAX_BYTES = 512 * 1024 * 1024
IMAGE_MAX_BYTES = 2 * 1024 ** 3
MEMORY_SIZE = re.compile(r"[1-9][0-9]*[KMGT]?")


class LimitsError(PodkuError):
    pass


@dataclass(frozen=True)
class BuildLimits:
    build_timeout: int = BUILD_TIMEOUT_SECONDS
    build_memory: str = BUILD_MEMORY
    build_tasks: int = BUILD_TASKS
    push_max_bytes: int = PUSH_MAX_BYTES
    image_max_bytes: int = IMAGE_MAX_BYTES

    def __post_init__(self) -> None:
        for name in ("build_timeout", "build_tasks", "push_max_bytes", "image_max_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise LimitsError(f"{LIMITS_FILE_NAME}: {name} must be a positive whole number")
        if not isinstance(self.build_memory, str) or not MEMORY_SIZE.fullmatch(self.build_memory):
            raise LimitsError(f"{LIMITS_FILE_NAME}: build_memory must look like 768M or 2G")


def memory_bytes(size: str) -> int:
    """A size like 768M in bytes, as systemd reads it (K, M, G and T are powers of 1024)."""
    scale = "KMGT".find(size[-1]) + 1
    return int(size[:-1]) * 1024 ** scale if scale else int(size)


# Upper bounds too: a limit is there to bound what one push may cost.
MAX_BUILD_TIMEOUT = 6 * 3600
MAX_BUILD_TASKS = 65536
MAX_PUSH_BYTES = 64 * 1024 ** 3
RECORD = records.record({
    "build_timeout": records.Field(records.integer(1, MAX_BUILD_TIMEOUT)),
    "build_memory": records.Field(records.text(16, MEMORY_SIZE.pattern, "a size like 768M or 2G")),
    "build_tasks": records.Field(records.integer(1, MAX_BUILD_TASKS)),
    "push_max_bytes": records.Field(records.integer(1, MAX_PUSH_BYTES)),
    "image_max_bytes": records.Field(records.integer(1, MAX_PUSH_BYTES)),
})


def load() -> BuildLimits:
    """The limits in force: the defaults, overridden by what the limits file sets."""
    path = paths.CONFIG / LIMITS_FILE_NAME
    try:
        return BuildLimits(**records.read(path, RECORD, {}))
    except state.StateCorrupt as error:
        raise LimitsError(str(error)) from error
    except OSError as error:
        raise LimitsError(f"cannot read {path}: {error}") from error
