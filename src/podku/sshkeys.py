"""Who may push: authorized_keys lines that force podku's ssh entry (no shell, no forwarding)."""

import base64
import binascii
import hashlib
import re
from typing import IO

from podku.errors import UsageError
from podku.host import paths, records, state
from podku.host.commands import run

MAX_KEY_BYTES = 16 * 1024  # an RSA-16384 public key line is about 2.8 KiB
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MARKER = "podku-key:"


def key_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name or ""):
        raise UsageError(f"invalid key name {name!r}: use letters, digits, . _ @ -")
    return name


def read_public_key(stream: IO[str]) -> str:
    """One public key from stdin, read no further than a key can be long."""
    if stream.isatty():
        raise UsageError("pipe the public key on stdin: podku ssh-keys:add NAME < key.pub")
    text = stream.read(MAX_KEY_BYTES + 1)
    if len(text) > MAX_KEY_BYTES:
        raise UsageError(f"a public key is at most {MAX_KEY_BYTES // 1024} KiB")
    return text


def parse_public_key(text: str) -> tuple[str, str]:
    """(type, base64 blob) of one OpenSSH public key, checked by ssh-keygen."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise UsageError("expected exactly one public key line")
    fields = lines[0].split()
    if len(fields) < 2 or not re.match(r"^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+$", fields[0]):
        raise UsageError("not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment')")
    check = run(["ssh-keygen", "-l", "-f", "/dev/stdin"], input=f"{fields[0]} {fields[1]}\n", check=False)
    if check.returncode != 0:
        raise UsageError("not a valid public key: ssh-keygen cannot read it")
    return fields[0], fields[1]


def fingerprint(blob: str) -> str:
    """The key's SHA256 fingerprint as `ssh-keygen -l` shows it."""
    try:
        digest = hashlib.sha256(base64.b64decode(blob, validate=True)).digest()
    except (binascii.Error, ValueError):
        raise UsageError("not a valid public key: its key data is not base64") from None
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def entry_command(name: str) -> str:
    """The forced command of key `name`: its name goes along (events.py records who did what)."""
    return f"{paths.PODKU_EXECUTABLE} ssh-command --key {key_name(name)}"


def authorized_line(name: str, key_type: str, blob: str) -> str:
    return f'command="{entry_command(name)}",restrict,pty {key_type} {blob} {MARKER}{name}'


def _lines() -> list[str]:
    try:
        return paths.SSH_AUTHORIZED_KEYS.read_text().splitlines()
    except FileNotFoundError:
        return []


def _name_of(line: str) -> str | None:
    last = line.split()[-1] if line.split() else ""
    return last.removeprefix(MARKER) if last.startswith(MARKER) else None


def add(name: str, public_key: str, if_new: bool = False) -> bool:
    """Authorise a key; False when `if_new` and this very key already is."""
    key_name(name)
    key_type, blob = parse_public_key(public_key)
    lines = _lines()
    if any(blob in line.split() for line in lines):
        if if_new:
            return False
        raise UsageError("this key is already authorised")
    if any(_name_of(line) == name for line in lines):
        raise UsageError(f"a key named {name} already exists")
    _save(lines + [authorized_line(name, key_type, blob)])
    return True


def remove(name: str) -> None:
    key_name(name)
    lines = _lines()
    kept = [line for line in lines if _name_of(line) != name]
    if len(kept) == len(lines):
        raise UsageError(f"no key named {name}")
    _save(kept)


def name_older_lines() -> int:
    """Rewrite podku's key lines written by an older podku (before keys carried their name
    into the forced command, or could have a terminal) as this one writes them (install.sh
    runs it through setup); the number rewritten."""
    lines = _lines()
    names_found = set(checked_names("\n".join(lines), paths.SSH_AUTHORIZED_KEYS))
    rewritten = []
    for line in lines:
        name = _name_of(line)
        words = line.split()
        if name in names_found and line != authorized_line(name, words[-3], words[-2]):
            line = authorized_line(name, words[-3], words[-2])
        rewritten.append(line)
    changed = sum(old != new for old, new in zip(lines, rewritten, strict=True))
    if changed:
        _save(rewritten)
    return changed


KEY_TYPE = re.compile(r"(ssh-|ecdsa-|sk-)[a-z0-9@.-]+")
KEY_BLOB = re.compile(r"[A-Za-z0-9+/]+={0,3}")


def checked_names(text: str, where: object) -> list[str]:
    """The names of podku's lines in an authorized_keys text, each line checked: a name
    that is not a key name, or a line podku would not have written, is a RecordInvalid
    (other lines are the operator's own, and left alone)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        name = _name_of(line)
        if name is None:
            continue
        words = line.split()
        if (not KEY_NAME.fullmatch(name) or len(words) < 4 or not KEY_TYPE.fullmatch(words[-3])
                or not KEY_BLOB.fullmatch(words[-2]) or records.CONTROL.search(line)):
            raise records.RecordInvalid(f"the key file {where} is invalid: line {number} ({MARKER}"
                                        f"{records.shown(name, 40)}) is not a key podku wrote")
        found.append(name)
    return found


def names() -> list[str]:
    return checked_names("\n".join(_lines()), paths.SSH_AUTHORIZED_KEYS)


def _save(lines: list[str]) -> None:
    paths.SSH_AUTHORIZED_KEYS.parent.mkdir(mode=0o700, exist_ok=True)
    state.write_atomic(paths.SSH_AUTHORIZED_KEYS, "".join(line + "\n" for line in lines), mode=0o600)
