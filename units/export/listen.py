"""podku's launcher for an app that takes its listening socket as fd 3 (socket activation),
added to the app's exported image: it binds the port, puts the socket on fd 3, sets
LISTEN_FDS=1 and LISTEN_PID to its own PID and execs the app, which keeps that PID, so the
app's unchanged code (gunicorn, uvicorn --fd 3, sd_listen_fds) takes the socket as on podku.

    python3 /podku/listen.py PORT -- COMMAND [ARGS...]

Standard library only."""

import os
import socket
import sys

FD = 3
BACKLOG = 1024


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--" or not argv[1].isdigit():
        sys.exit("usage: listen.py PORT -- COMMAND [ARGS...]")
    port, command = int(argv[1]), argv[3:]
    listener = socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if listener.family == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
    try:
        listener.bind(("::" if listener.family == socket.AF_INET6 else "0.0.0.0", port))
    except OSError:  # a pod without IPv6
        listener.close()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
    listener.listen(BACKLOG)
    if listener.fileno() != FD:
        os.dup2(listener.fileno(), FD)  # dup2 leaves the copy inheritable
        listener.close()
    os.set_inheritable(FD, True)
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="web")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv)
