"""Apps that bind $PORT instead of taking fd 3: the release socket is bridged into the
container's own network namespace (no port is published on the host, none is shared).

`wait_listening` makes the container's unit active only once the app listens, and
`exec_proxy` becomes systemd-socket-proxyd inside the container's network namespace,
keeping its PID so systemd's LISTEN_PID still matches."""

import os
import time
from pathlib import Path

from podku.errors import PodkuError
from podku.host import paths, podman
from podku.host.commands import replace_process

SOCKET_PROXYD = next((path for path in ("/usr/lib/systemd/systemd-socket-proxyd",
                                        "/lib/systemd/systemd-socket-proxyd") if os.path.exists(path)),
                     "/usr/lib/systemd/systemd-socket-proxyd")
TCP_LISTEN = "0A"


def pidfile(container: str) -> Path:
    """Where `podman run --pidfile` leaves the app's PID: reading it costs no podman call,
    which is most of an idle $PORT app's wake-up."""
    return paths.RUNTIME / f"{container}.pid"


def container_pid(container: str) -> int:
    try:
        pid = pidfile(container).read_text().strip()
    except FileNotFoundError:  # units rendered before podku wrote pidfiles
        pid = str(podman.engine.container_pid(container) or "")
    if not pid.isdigit() or pid == "0" or not os.path.exists(f"/proc/{pid}"):
        raise PodkuError(f"container {container} is not running")
    return int(pid)


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process `pid`."""
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as handle:
                lines = handle.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(container: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if port in listening_ports(container_pid(container)):
                return
        except PodkuError:
            pass  # not started yet, or restarting
        time.sleep(0.1)
    raise PodkuError(f"the app in {container} did not listen on port {port} within {timeout:.0f}s")


def exec_proxy(container: str, port: int, exit_idle_seconds: int = 0) -> None:
    pid = container_pid(container)
    idle = [f"--exit-idle-time={exit_idle_seconds}s"] if exit_idle_seconds else []
    argv = ["nsenter", "--target", str(pid), "--user", "--net", "--preserve-credentials",
            SOCKET_PROXYD, *idle, f"127.0.0.1:{port}"]
    replace_process(argv)  # keeps LISTEN_FDS and the PID systemd gave it
