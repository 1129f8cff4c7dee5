"""Moving a host: every app as one tar archive, and that archive read back safely.

The archive, in order: MANIFEST (the magic line `podku-backup v1`, then JSON naming the
apps), the host's settings, the authorised keys, each app's state (record, config, runtime
settings, release records), its bare repository (hooks left out: podku writes its own),
the storage directories as one nested tar (made by `podman unshare tar`, so files an
image's USER owns are read too), and END last: an archive without it was cut short.

Reading never hands a member to tarfile's extraction (Python 3.11.2 has no filters): each
member's name is checked (relative, known top-level part, no `..`, printable), only
regular files and directories pass, sizes are capped, and podku writes every file itself
into a fresh staging directory, which is moved into place only once the whole archive has
been read and every app in it is new to this host. Then each app is built from its
repository at the revision that was live and swapped in through the normal deploy."""

import contextlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from podku import (
    __version__,
    apps,
    deploy,
    domains,
    gitrepo,
    names,
    output,
    paths,
    proxy,
    recordfiles,
    releases,
    sshkeys,
    state,
    storage,
)
from podku.errors import PodkuError, UsageError
from podku.run import run, run_to_file

MAGIC = "podku-backup"
VERSION = 1
MANIFEST, END, STORAGE_TAR = "MANIFEST", "END", "storage.tar"
CONFIG_FILES = ("limits.json", "resources.json", "idle.json")
SKIPPED_STATE = ("lock",)
MAX_MEMBER_BYTES = 8 * 1024 ** 3
MAX_TOTAL_BYTES = 64 * 1024 ** 3
MAX_MEMBERS = 2_000_000
MAX_NAME = 1024
MEMBER_PART = re.compile(r"[A-Za-z0-9._@+=~-][A-Za-z0-9._@+=~ -]{0,254}")
TOP_LEVEL = ("state", "repos", "config", "ssh")
# Of a repository only its objects and refs travel: its config and hooks would run on the
# new host, so `git init` and podku write them afresh there.
REPO_PARTS = ("HEAD", "packed-refs", "refs", "objects")


class BackupError(UsageError):
    """The file is not an archive podku can import; nothing was changed."""


# --- export ------------------------------------------------------------------------------

def export(out: IO[bytes]) -> None:
    with contextlib.suppress(OSError):  # a file the deploy user owns: as private as the host's own
        if os.path.isfile(f"/proc/self/fd/{out.fileno()}"):
            os.fchmod(out.fileno(), 0o600)
    names_ = apps.all_names()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        manifest = {"apps": names_, "created": time.time(), "podku": __version__}
        _add_bytes(archive, MANIFEST, f"{MAGIC} v{VERSION}\n{json.dumps(manifest)}\n".encode())
        for name in CONFIG_FILES:
            _add_tree(archive, paths.CONFIG / name, f"config/{name}")
        _add_tree(archive, paths.SSH_AUTHORIZED_KEYS, "ssh/authorized_keys")
        for name in names_:
            with apps.lock(name):
                _add_tree(archive, paths.AppPaths(name).root, f"state/{name}")
                _add_tree(archive, paths.AppPaths(name).repo, f"repos/{name}.git")
        with tempfile.TemporaryDirectory(dir=_scratch()) as scratch:
            nested = Path(scratch) / STORAGE_TAR
            if storage_tar(nested):
                with open(nested, "rb") as handle:
                    archive.addfile(_info(STORAGE_TAR, nested.stat().st_size), handle)
        _add_bytes(archive, END, f"{MAGIC} end {len(names_)} apps\n".encode())
    output.warn(f"exported {len(names_)} app(s): the archive holds their config and keys, keep it private")


def _scratch() -> Path:
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    return paths.CACHE


def storage_tar(dest: Path) -> bool:
    """The storage root as a tar file, read in the user namespace the containers write in."""
    if not storage.root().is_dir():
        return False
    with open(dest, "wb") as handle:
        # GNU tar exits 1 when a file changed while it read it: a running app's storage may
        run_to_file(["podman", "unshare", "tar", "--create", "--numeric-owner", "--file", "-",
                     "--warning=no-file-changed", "--directory", str(storage.root()), "."], handle, ok=(0, 1))
    return True


def _info(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = (0 if directory else size), int(time.time())
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o700 if directory else 0o600
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    archive.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_tree(archive: tarfile.TarFile, source: Path, name: str) -> None:
    """Regular files and directories under `source`; links, sockets, locks and hooks left out."""
    if source.is_symlink() or not source.exists():
        return
    if source.is_file():
        with open(source, "rb") as handle:
            archive.addfile(_info(name, os.fstat(handle.fileno()).st_size), handle)
        return
    archive.addfile(_info(name, 0, directory=True))
    for entry in sorted(source.iterdir()):
        if entry.name in SKIPPED_STATE or entry.suffix == ".env" or not repo_part(f"{name}/{entry.name}"):
            continue
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            continue
        _add_tree(archive, entry, f"{name}/{entry.name}")


# --- reading, safely --------------------------------------------------------------------

def member_name(name: str, tops: tuple[str, ...] = TOP_LEVEL) -> str:
    """A member name podku writes: relative, known top level, no '..', printable parts."""
    name = name.removeprefix("./").rstrip("/")
    parts = name.split("/")
    if (len(name) > MAX_NAME or not name or name.startswith("/") or not all(MEMBER_PART.fullmatch(p) for p in parts)
            or any(p in (".", "..") for p in parts) or (tops and parts[0] not in tops)):
        raise BackupError(f"not a podku backup: unexpected member {name[:80]!r}")
    return name


def repo_part(name: str) -> bool:
    """Whether a member below repos/ is one that travels (anything else: True)."""
    parts = name.split("/")
    return parts[0] != "repos" or len(parts) < 3 or parts[2] in REPO_PARTS


def members(stream: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Each member of a podku archive after MANIFEST and before END, checked; truncation and
    foreign files raise BackupError."""
    started = False
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            first = archive.next()
            if first is None or first.name != MANIFEST or not first.isreg() or first.size > 1024 * 1024:
                raise BackupError("not a podku backup (no manifest)")
            started = True
            yield first, archive.extractfile(first)
            yield from _checked(archive)
    except (tarfile.TarError, EOFError, OSError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        if not started:
            raise BackupError(f"not a podku backup ({reason})") from None
        raise BackupError(f"truncated: {reason}") from None


def _checked(archive: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    total, count = 0, 0
    while (member := archive.next()) is not None:  # not `for ... in archive`: that starts over
        count += 1
        if member.name == END and member.isreg():
            return
        if count > MAX_MEMBERS:
            raise BackupError(f"not a podku backup: more than {MAX_MEMBERS} members")
        if not (member.isreg() or member.isdir()):
            raise BackupError(f"not a podku backup: {member.name[:80]!r} is not a regular file or directory")
        if member.name != STORAGE_TAR:
            member.name = member_name(member.name)
        total += member.size
        if member.size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            raise BackupError(f"refused: {member.name[:80]!r} makes the backup larger than the limit")
        yield member, archive.extractfile(member) if member.isreg() else None
    raise BackupError("truncated: the backup ends before its END marker")


def read_manifest(handle: IO[bytes] | None) -> dict:
    text = _read(handle, 1024 * 1024, MANIFEST).decode(errors="replace") if handle else ""
    magic, _, rest = text.partition("\n")
    if not magic.startswith(f"{MAGIC} v"):
        raise BackupError("not a podku backup (its manifest has no podku-backup line)")
    if magic != f"{MAGIC} v{VERSION}":
        found = magic.removeprefix(MAGIC).strip()[:20]
        raise BackupError(f"unsupported backup version {found!r}: this podku reads v{VERSION}")
    try:
        manifest = json.loads(rest)
        for name in manifest["apps"]:
            names.app_name(name)
    except (ValueError, KeyError, TypeError, UsageError) as error:
        raise BackupError(f"not a podku backup (its manifest is damaged: {error})") from None
    return manifest


def write_member(root: Path, member: tarfile.TarInfo, handle: IO[bytes] | None, mode: int = 0o600) -> None:
    """Write one checked member below `root`, a directory podku made and nobody else writes."""
    target = root.joinpath(*member.name.split("/"))
    if member.isdir():
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        remaining = member.size
        while remaining > 0 and handle is not None:
            chunk = _read(handle, min(remaining, 1024 * 1024), member.name)
            if not chunk:
                raise BackupError(f"truncated: {member.name} ends early")
            out.write(chunk)
            remaining -= len(chunk)


def _read(handle: IO[bytes], size: int, name: str) -> bytes:
    """A member's next bytes: the stream may end or break here too, not only between members."""
    try:
        return handle.read(size)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BackupError(f"truncated: {name} ends early ({' '.join(str(error).split())})") from None


def unpack(stream: IO[bytes], staging: Path) -> dict:
    """Read the whole archive into `staging`; returns the manifest."""
    manifest: dict = {}
    for member, handle in members(stream):
        if member.name == MANIFEST:
            manifest = read_manifest(handle)
            refuse_existing(manifest["apps"])
            continue
        if member.name == STORAGE_TAR:
            _unpack_storage(handle, staging / "storage")
            continue
        if not repo_part(member.name):
            continue
        write_member(staging, member, handle)
    return manifest


def _unpack_storage(handle: IO[bytes] | None, root: Path) -> None:
    root.mkdir(mode=0o700)
    try:
        with tarfile.open(fileobj=handle, mode="r|") as nested:
            for member in nested:
                if member.name in (".", "./"):
                    continue
                if not (member.isreg() or member.isdir()):
                    raise BackupError(f"refused: storage member {member.name[:80]!r} is not a file or directory")
                member.name = member_name(member.name, tops=())
                handle_ = nested.extractfile(member) if member.isreg() else None
                write_member(root, member, handle_, mode=0o600 | (member.mode & 0o100))  # scripts stay runnable
    except (tarfile.TarError, EOFError) as error:
        raise BackupError(f"truncated or damaged storage in the backup: {error}") from None


def refuse_existing(app_names: list[str]) -> None:
    clashes = [name for name in app_names if apps.exists(name)]
    if clashes:
        raise BackupError(f"refused: these apps already exist on this host: {', '.join(clashes)}")


# --- import ------------------------------------------------------------------------------

def restore(stream: IO[bytes]) -> None:
    paths.DATA.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="import-", dir=paths.DATA))
    try:
        manifest = unpack(stream, staging)
        app_names = manifest["apps"]
        _check_placement(staging, app_names)
        _check_staged_records(staging, app_names)
        _place(staging, app_names)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with state.locked(domains.lock_path(), "domains"):
        domains.reconcile()  # the apps' names become links Caddy routes by, on this host's domain
    proxy.apply()
    output.step(f"Restored {len(app_names)} app(s): {', '.join(app_names) or 'none'}")
    failed = [name for name in app_names if not _redeploy(name)]
    if failed:
        raise PodkuError(f"restored, but could not deploy: {', '.join(failed)} (push to them again)")


def _check_placement(staging: Path, app_names: list[str]) -> None:
    refuse_existing(app_names)
    present = {p.name for p in (staging / "state").iterdir()} if (staging / "state").is_dir() else set()
    if present != set(app_names):
        raise BackupError("not a podku backup: its apps do not match its manifest")
    for name in app_names:
        if paths.AppPaths(name).repo.exists():
            raise BackupError(f"refused: a repository for {name} already exists on this host")
    for entry in _storage_names(staging):
        if storage.directory(entry).exists():
            raise BackupError(f"refused: storage {entry} already exists on this host")


def _check_staged_records(staging: Path, app_names: list[str]) -> None:
    """Every staged record through the schema its load uses, before anything is placed: a
    crafted field (a line for a unit, a name that becomes a path) refuses the archive."""
    try:
        recordfiles.check_staged(staging, app_names)
    except state.StateCorrupt as error:
        raise BackupError(f"refused: {error}") from None


def _storage_names(staging: Path) -> list[str]:
    root = staging / "storage"
    return [storage.storage_name(p.name) for p in sorted(root.iterdir())] if root.is_dir() else []


def _place(staging: Path, app_names: list[str]) -> None:
    for name in CONFIG_FILES:
        if (staging / "config" / name).is_file() and not (paths.CONFIG / name).exists():
            paths.CONFIG.mkdir(parents=True, exist_ok=True)
            os.rename(staging / "config" / name, paths.CONFIG / name)
    _restore_keys(staging / "ssh" / "authorized_keys")
    for entry in _storage_names(staging):
        storage.root().mkdir(parents=True, exist_ok=True)
        os.rename(staging / "storage" / entry, storage.directory(entry))
    for name in app_names:
        app_paths = paths.AppPaths(name)
        app_paths.root.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / "state" / name, app_paths.root)
        _reset_releases(name)
        if (staging / "repos" / f"{name}.git").is_dir():
            app_paths.repo.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / "repos" / f"{name}.git", app_paths.repo)
            run(["git", "init", "--quiet", "--bare", str(app_paths.repo)])  # config, hooks dir
        gitrepo.prepare(app_paths.repo, name)


def _restore_keys(source: Path) -> None:
    """Keys are re-added through sshkeys (a forced command each), never copied as lines."""
    if not source.is_file():
        return
    for line in source.read_text(errors="replace").splitlines():
        words = line.split()
        name = sshkeys._name_of(line)
        if name is None or len(words) < 3:
            continue
        try:
            sshkeys.add(name, f"{words[-3]} {words[-2]}", if_new=True)
        except UsageError as error:
            output.warn(f"key {name} not restored: {error}")


def _reset_releases(name: str) -> None:
    """No release runs here yet: the one that was live is rebuilt and deployed anew."""
    app = apps.load(name)
    live = app.live_release
    apps.save(app.updated(live_release=None, checks=app.checks))
    for release in releases.all_of(name):
        done = releases.Outcome.RETIRED if releases.was_live(release) else releases.Outcome.FAILED
        releases.save(release.with_outcome(done))
    marker = paths.AppPaths(name).root / "restored-live.json"
    state.write_json(marker, {"live_release": live})


def _redeploy(name: str) -> bool:
    marker = paths.AppPaths(name).root / "restored-live.json"
    live = state.read_json(marker, {}).get("live_release")
    if live is None:
        output.step(f"{name} was not deployed: nothing to start")
        return True
    try:
        with apps.lock(name):
            rev = releases.load(name, live).rev
            deploy.deploy_revision(apps.load(name), rev)
    except PodkuError as error:
        output.warn(f"{name}: {error}")
        return False
    marker.unlink(missing_ok=True)
    return True
