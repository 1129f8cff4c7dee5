"""Every subprocess podku starts goes through here: argument lists only, never a shell.
Under PODKU_DEBUG=1 each command is echoed to stderr as `+ argv` before it runs."""

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, NoReturn

from podku.errors import PodkuError

# What a child sees of podku's own environment; everything else is passed explicitly.
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "XDG_RUNTIME_DIR",
                 "DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                 "XDG_STATE_HOME", "XDG_CACHE_HOME")


def debugging() -> bool:
    return os.environ.get("PODKU_DEBUG") == "1"


def child_env(extra: Mapping[str, str] | None = None, inherit: Sequence[str] = INHERITED_ENV) -> dict[str, str]:
    env = {key: os.environ[key] for key in inherit if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra or {})
    return env


MAX_LINE_BYTES = 8 * 1024  # one line of a streamed command's output


def last_line(output: str, default: str = "") -> str:
    """The last line a command printed: what an error message quotes of it."""
    lines = output.strip().splitlines()
    return lines[-1] if lines else default


class CommandFailed(PodkuError):
    def __init__(self, argv: Sequence[str], returncode: int, output: str = ""):
        self.argv, self.returncode, self.output = list(argv), returncode, output
        tail = last_line(output)
        reason = f": {tail}" if tail else ""
        super().__init__(f"{shlex.join(self.argv)} failed with exit code {returncode}{reason}")


class CommandMissing(PodkuError):
    def __init__(self, argv: Sequence[str], error: OSError):
        super().__init__(f"cannot run {argv[0]}: {error.strerror or error} (is it installed?)")


def _echo(argv: Sequence[str]) -> None:
    if debugging():
        print(f"+ {shlex.join(argv)}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
        cwd: str | os.PathLike | None = None, check: bool = True,
        stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess:
    """Run a command to completion and capture its output (stderr folded into stdout); its
    stdin is `input`, or the open file `stdin`."""
    _echo(argv)
    try:
        result = subprocess.run(list(argv), env=dict(env) if env is not None else child_env(),
                                input=input, stdin=stdin, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as error:
        raise CommandMissing(argv, error) from error
    if check and result.returncode != 0:
        raise CommandFailed(argv, result.returncode, result.stdout)
    return result


def run_to_file(argv: Sequence[str], out: IO[bytes], ok: tuple[int, ...] = (0,)) -> None:
    """Run a command with its stdout going to `out` (binary); an exit code not in `ok` raises
    with its stderr."""
    _echo(argv)
    out.flush()
    try:
        result = subprocess.run(list(argv), env=child_env(), stdout=out, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, errors="replace")
    except OSError as error:
        raise CommandMissing(argv, error) from error
    if result.returncode not in ok:
        raise CommandFailed(argv, result.returncode, result.stderr)


@contextlib.contextmanager
def reading(argv: Sequence[str], ok: tuple[int, ...] = (0,),
            on_stderr: Callable[[str], None] | None = None) -> Iterator[IO[bytes]]:
    """Run a command and read its stdout as a binary stream inside the `with`. On leaving, the
    rest of its output is read and dropped and it is waited for: an exit code not in `ok`
    raises with its stderr, otherwise each stderr line goes to `on_stderr`. Leaving by an
    error kills the command."""
    _echo(argv)
    # stderr to a file, not a pipe: a full pipe nobody reads would stall the command
    with tempfile.TemporaryFile() as errors:
        try:
            child = subprocess.Popen(list(argv), env=child_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=errors)
        except OSError as error:
            raise CommandMissing(argv, error) from error
        with child:
            assert child.stdout is not None
            try:
                yield child.stdout
            except BaseException:
                child.kill()
                raise
            while child.stdout.read(1024 * 1024):
                pass
        errors.seek(0)
        lines = errors.read().decode(errors="replace").splitlines()
    if child.returncode not in ok:
        raise CommandFailed(argv, child.returncode, "\n".join(lines))
    for line in lines:
        if on_stderr is not None:
            on_stderr(line)


def stream(argv: Sequence[str], on_line: Callable[[str], None], *, env: Mapping[str, str] | None = None,
           cwd: str | os.PathLike | None = None, keep: int = 40,
           started: Callable[[int], None] | None = None) -> list[str]:
    """Run a command, passing each output line on as it comes (cut at MAX_LINE_BYTES);
    returns the last `keep` lines. `started` gets the child's PID once it runs."""
    _echo(argv)
    last: list[str] = []
    try:
        child = subprocess.Popen(list(argv), env=dict(env) if env is not None else child_env(), cwd=cwd,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:
        raise CommandMissing(argv, error) from error
    with child:
        assert child.stdout is not None
        if started is not None:
            started(child.pid)
        for line in bounded_lines(child.stdout):
            on_line(line)
            last = (last + [line])[-keep:]
    if child.returncode != 0:
        raise CommandFailed(argv, child.returncode, "\n".join(last))
    return last


def interactive(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                on_hangup: Callable[[], None] | None = None) -> int:
    """Run a command on podku's own stdin/stdout/stderr; returns its exit code. If the
    session that started podku goes away meanwhile (SIGHUP, SIGTERM, or podku's parent, the
    ssh server, gone), `on_hangup` runs and the command is ended."""
    import signal
    import threading
    _echo(argv)
    parent = os.getppid()
    try:
        child = subprocess.Popen(list(argv), env=dict(env) if env is not None else child_env())
    except OSError as error:
        raise CommandMissing(argv, error) from error
    ended = threading.Event()

    def hang_up(*_ignored: object) -> None:
        if not ended.is_set():
            ended.set()
            if on_hangup is not None:
                on_hangup()
            child.terminate()

    def watch_parent() -> None:
        while child.poll() is None and not ended.wait(0.5):
            if os.getppid() != parent:  # sshd without a pty just exits when its client is gone
                hang_up()

    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, hang_up)
    threading.Thread(target=watch_parent, daemon=True).start()
    return child.wait()


def replace_process(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> NoReturn:
    """Become the command (exec). Unlike the others it keeps podku's whole environment
    unless told otherwise: systemd's LISTEN_FDS and git's variables must reach it."""
    _echo(argv)
    try:
        os.execvpe(argv[0], list(argv), dict(env) if env is not None else dict(os.environ))
    except OSError as error:
        raise CommandMissing(argv, error) from error


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
