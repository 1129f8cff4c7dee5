"""Durable plain-file state: atomic writes and a per-app lock."""

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from podku import output
from podku.errors import PodkuError, UsageError


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write `text` atomically unless the file already holds exactly it (content and mode);
    True when it wrote. Rewriting an unchanged file would make its readers reload for nothing."""
    try:
        if path.read_text() == text and path.stat().st_mode & 0o7777 == mode:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_atomic(path, text, mode)
    return True


def symlink_atomic(target: str | Path, link: Path) -> None:
    """Point `link` at `target` with one rename: no moment without a link."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)
    fsync_dir(link.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class StateCorrupt(PodkuError):
    pass


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested too deeply
        raise StateCorrupt(f"the state file {path} is corrupt ({error}): "
                           "restore it from a backup or remove it") from error


@contextlib.contextmanager
def locked(lock_path: Path, what: str, shared: bool = False) -> Iterator[None]:
    """Hold a lock on `lock_path` for the duration (exclusive unless `shared`); say so
    when waiting for it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            # stderr: during a push stdout may be the git protocol stream
            print(f"{output.STEP}Waiting for another operation on {what} to finish", file=sys.stderr, flush=True)
            fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_private(out: IO[bytes], what: str) -> None:
    """Secrets (a backup, a service's dump) go to a regular file only once it is 0600, and
    one podku cannot make so (another user's, as root's `> FILE` through the wrapper was) is
    refused before a byte is written. A pipe or a terminal is the reader's to protect."""
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return
    with contextlib.suppress(OSError):  # not the owner: whether it is private is checked next
        os.fchmod(fd, 0o600)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        raise UsageError(f"refused: {what} is mode {mode:04o} and podku cannot make it 0600: "
                         "run `umask 077` before redirecting, or `chmod 600` the file first")
