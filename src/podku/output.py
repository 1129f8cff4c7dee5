"""Push output in the Heroku/Dokku convention, flushed line by line so a pusher sees it live."""

import sys

STEP = "-----> "
DETAIL = "       "
WARNING = " !     "


def step(message: str) -> None:
    _write(STEP + message)


def detail(message: str) -> None:
    for line in message.splitlines() or [""]:
        _write(DETAIL + line)


def warn(message: str) -> None:
    _write(WARNING + message, stream=sys.stderr)


def _write(line: str, stream=None) -> None:
    stream = stream or sys.stdout
    try:
        stream.write(line + "\n")
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass  # the pusher went away: the deploy must still finish, not stop half-done
