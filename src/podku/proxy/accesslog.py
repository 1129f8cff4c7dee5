"""Caddy's access log (every app's requests, one JSON object a line, rolled by Caddy at
caddy.ACCESS_LOG_MB), read back for one app's names: `logs:access APP`, `logs APP -p proxy`."""

import json
import select
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from podku.proxy import routes

POLL_SECONDS = 0.2


def log_files() -> list[Path]:
    """The rolled files, oldest first, then the current one."""
    current = routes.access_log()
    rolled = sorted(current.parent.glob("access-*.log"), key=lambda path: path.stat().st_mtime)
    return [*rolled, current]


def format_entry(line: str, hosts: set[str]) -> str | None:
    """One request as a line, when it is a request to one of `hosts`."""
    try:
        entry = json.loads(line)
        request = entry["request"]
        host = str(request.get("host", "")).rsplit(":", 1)[0].lower()
        if host not in hosts:
            return None
        when = datetime.fromtimestamp(float(entry["ts"]), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return (f"{when[:23]}Z {request.get('remote_ip', '-')} {request.get('method', '-')} {host} "
                f"{request.get('uri', '-')} {entry.get('status', 0)} {entry.get('size', 0)}B "
                f"{float(entry.get('duration', 0)) * 1000:.1f}ms")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def last(hosts: set[str], count: int) -> list[str]:
    found: deque[str] = deque(maxlen=count)
    for path in log_files():
        try:
            with path.open(errors="replace") as log:
                for line in log:
                    shown = format_entry(line, hosts)
                    if shown is not None:
                        found.append(shown)
        except FileNotFoundError:
            continue
    return list(found)


def reader_gone() -> bool:
    """Whether whoever reads our stdout went away (an ssh session ended): a pipe or socket
    whose other end closed polls as an error or a hang-up."""
    watcher = select.poll()
    watcher.register(sys.stdout.fileno(), 0)  # only POLLERR and POLLHUP, always reported
    return bool(watcher.poll(0))


def follow(hosts: set[str], emit: Callable[[str], None], polls: Iterator[int] | None = None) -> None:
    """New entries as Caddy writes them, across a roll (the file replaced), until interrupted
    or the reader is gone."""
    path = routes.access_log()
    position, inode = _end_of(path)
    for _ in polls if polls is not None else iter(int, 1):
        time.sleep(POLL_SECONDS)
        if polls is None and reader_gone():
            return
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if stat.st_ino != inode or stat.st_size < position:
            position, inode = 0, stat.st_ino
        with path.open("rb") as log:
            log.seek(position)
            data = log.read()
        complete = data[:data.rfind(b"\n") + 1]
        position += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            shown = format_entry(line, hosts)
            if shown is not None:
                emit(shown)


def _end_of(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0, -1
    return stat.st_size, stat.st_ino
