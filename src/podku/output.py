"""Push output in the Heroku/Dokku convention, flushed line by line so a pusher sees it live.

Everything podku prints goes through `_write`, which escapes control characters (ESC, CR,
...) in every line: a value someone stored (a description, a domain, a key name, a build's
output) must never drive the terminal of whoever reads it. Line breaks a message has on
purpose stay; `field` and `one_line` values are one line."""

import re
import sys

STEP = "-----> "
DETAIL = "       "
WARNING = " !     "


# C0 and C1 control characters and DEL, but not tab: a terminal must never get them raw.
# Lone surrogates are bytes that were not UTF-8 (Python's surrogateescape).
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with control characters shown as escapes (\\x1b), so an ESC sequence stored by
    someone cannot drive the terminal of whoever reads it."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()) & 0xff:02x}", text)


def one_line(text: str) -> str:
    """An error message on one line, whatever it carries."""
    return printable(" ".join(text.split("\n")).strip())


def echo(text: object = "") -> None:
    """Plain output lines (reports, lists), escaped like every other line."""
    _write(str(text))


def step(message: str) -> None:
    _write(STEP + message)


def detail(message: str) -> None:
    for line in message.splitlines() or [""]:
        _write(DETAIL + line)


def field(label: str, value: object) -> None:
    """One row of a report (`apps:report` and the like), aligned as Dokku aligns them."""
    _write(f"{DETAIL}{label + ':':<28}{printable(str(value))}")


def warn(message: str) -> None:
    _write(WARNING + message, stream=sys.stderr)


def _write(line: str, stream=None) -> None:
    stream = stream or sys.stdout
    safe = "\n".join(printable(part.removesuffix("\r")) for part in line.split("\n"))
    try:
        stream.write(safe + "\n")
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass  # the pusher went away: the deploy must still finish, not stop half-done
