"""Every subprocess podku starts goes through here: argument lists only, never a shell."""

import os
import shlex
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO

from podku.errors import PodkuError

# What a child sees of podku's own environment; everything else is passed explicitly.
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "XDG_RUNTIME_DIR",
                 "DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                 "XDG_STATE_HOME", "XDG_CACHE_HOME")


def child_env(extra: Mapping[str, str] | None = None, inherit: Sequence[str] = INHERITED_ENV) -> dict[str, str]:
    env = {key: os.environ[key] for key in inherit if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra or {})
    return env


MAX_LINE_BYTES = 8 * 1024  # one line of a streamed command's output


class CommandFailed(PodkuError):
    def __init__(self, argv: Sequence[str], returncode: int, output: str = ""):
        self.argv, self.returncode, self.output = list(argv), returncode, output
        tail = output.strip().splitlines()[-1:] if output.strip() else []
        reason = f": {tail[0]}" if tail else ""
        super().__init__(f"{shlex.join(self.argv)} failed with exit code {returncode}{reason}")


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
        cwd: str | os.PathLike | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion and capture its output (stderr folded into stdout)."""
    result = subprocess.run(list(argv), env=dict(env) if env is not None else child_env(),
                            input=input, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    if check and result.returncode != 0:
        raise CommandFailed(argv, result.returncode, result.stdout)
    return result


def stream(argv: Sequence[str], on_line: Callable[[str], None], *, env: Mapping[str, str] | None = None,
           cwd: str | os.PathLike | None = None, keep: int = 40,
           started: Callable[[int], None] | None = None) -> list[str]:
    """Run a command, passing each output line on as it comes (cut at MAX_LINE_BYTES);
    returns the last `keep` lines. `started` gets the child's PID once it runs."""
    last: list[str] = []
    with subprocess.Popen(list(argv), env=dict(env) if env is not None else child_env(), cwd=cwd,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as child:
        if started is not None:
            started(child.pid)
        for line in bounded_lines(child.stdout):
            on_line(line)
            last = (last + [line])[-keep:]
    if child.returncode != 0:
        raise CommandFailed(argv, child.returncode, "\n".join(last))
    return last


def bounded_lines(pipe: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Lines of a byte stream, each cut at `limit` bytes: the rest of a longer line is
    read and dropped, never held in memory."""
    while True:
        line = pipe.readline(limit)
        if not line:
            return
        if len(line) == limit and not line.endswith(b"\n"):
            while (rest := pipe.readline(limit)) and not rest.endswith(b"\n"):
                pass
            line += b" [line cut]"
        yield line.rstrip(b"\n").decode(errors="replace")
