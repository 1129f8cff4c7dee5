"""Moving a host: every app as one tar archive, and that archive read back safely.

The archive, in order: MANIFEST (the magic line `podku-backup v1`, then JSON naming the
apps), the host's settings, the authorised keys, each app's state (record, config, runtime
settings, release records), its bare repository (hooks left out: podku writes its own),
the storage directories as one nested tar (made by `podman unshare tar`, so files an
image's USER owns are read too), each backing service's record and dump (services/KIND/:
NAME.json and pg_dump's custom format or an RDB snapshot, taken from the running server
before the archive is begun, so a dump that fails fails the export), and END last: an
archive without it was cut short.

Reading never hands a member to tarfile's extraction (Python 3.11.2 has no filters): each
member's name is checked (relative, known top-level part, no `..`, printable), only
regular files and directories pass (sparse files, links, devices and fifos are refused, in
the nested storage archive too), every member's size counts, by its header and before a
byte of it is written, against limits that hold across both archives, and podku writes
every file itself into a fresh staging directory. Repositories must pass `git fsck
--strict` and borrow no objects. Only then, and only if every app in it is new to this
host, is it moved into place; the host's settings and keys only when asked for. Then the
services are made again (their records' roles and passwords: the URLs the apps hold work)
and their data restored, and each app is built from its repository at the revision that
was live and swapped in through the normal deploy.

Export leaves out of storage what import would refuse (links, fifos, sockets, devices,
names that are not printable), one line each, so that what it writes always imports."""

import contextlib
import dataclasses
import functools
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from podku import (
    __version__,
    apps,
    deploy,
    domains,
    names,
    naming,
    output,
    proxyconf,
    releases,
    services,
    sshkeys,
    stores,
)
from podku.errors import PodkuError, UsageError
from podku.host import paths, podman, records, state
from podku.host.commands import run
from podku.image import gitrepo
from podku.runtime import links, storage

MAGIC = "podku-backup"
VERSION = 1
MANIFEST, END, STORAGE_TAR = "MANIFEST", "END", "storage.tar"
# The host-wide settings (an app's own live in its state): taken only with --with-host-settings.
CONFIG_FILES = tuple(stores.HOST_STORES)
SKIPPED_STATE = ("lock",)
MAX_MEMBER_BYTES = 8 * 1024 ** 3
MAX_TOTAL_BYTES = 64 * 1024 ** 3
MAX_MEMBERS = 2_000_000
MAX_NAME = 1024
MAX_STORAGE_NAME = 4096
# tarfile reads a pax or GNU long-name header whole into memory, whatever size it claims
MAX_HEADER_BYTES = 1024 * 1024
EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
MEMBER_PART = re.compile(r"[A-Za-z0-9._@+=~-][A-Za-z0-9._@+=~ -]{0,254}")
TOP_LEVEL = ("state", "repos", "config", "ssh", "services")
# Of a repository only its objects and refs travel: its config and hooks would run on the
# new host, so `git init` and podku write them afresh there.
REPO_PARTS = ("HEAD", "packed-refs", "refs", "objects")


class BackupError(UsageError):
    """The file is not an archive podku can import; nothing was changed."""


class _BoundedInfo(tarfile.TarInfo):
    """A member header that refuses an extended header too large to hold in memory."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> "_BoundedInfo":
        header = super().frombuf(buf, encoding, errors)
        if header.type in EXTENDED_HEADERS and header.size > MAX_HEADER_BYTES:
            raise BackupError(f"refused: a header of {header.size} bytes (at most {MAX_HEADER_BYTES})")
        return header


def _forget_headers(archive: tarfile.TarFile) -> None:
    """tarfile keeps every header it read; a stream has no use for them, and millions would
    not fit in memory."""
    archive.members.clear()  # type: ignore[attr-defined]


@dataclass
class Budget:
    """What one backup may make podku write: bytes per member, bytes and members in all,
    counted across the backup and the storage archive inside it."""

    total: int = 0
    count: int = 0

    def charge(self, name: str, size: int) -> None:
        self.count += 1
        self.total += size
        if self.count > MAX_MEMBERS:
            raise BackupError(f"refused: the backup has more than {MAX_MEMBERS} members")
        if size > MAX_MEMBER_BYTES or self.total > MAX_TOTAL_BYTES:
            raise BackupError(f"refused: {shown(name)} makes the backup larger than the limit "
                              f"({MAX_MEMBER_BYTES} bytes a file, {MAX_TOTAL_BYTES} in all)")


def shown(name: str) -> str:
    return repr(output.printable(name[:80]))


def kind_problem(member: tarfile.TarInfo) -> str | None:
    """What a member is when it is not a plain regular file or directory."""
    if member.issparse():
        return "a sparse file"
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.isfifo():
        return "a fifo"
    if member.ischr() or member.isblk():
        return "a device"
    return "not a regular file or directory"


# --- export ------------------------------------------------------------------------------

def export(out: IO[bytes]) -> None:
    make_private(out)
    names_ = apps.all_names()
    budget = Budget()  # what import would refuse is not written: export fails instead
    with tempfile.TemporaryDirectory(dir=_scratch()) as scratch:
        nested = Path(scratch) / STORAGE_TAR
        has_storage = storage_archive(nested, budget)
        dumped = service_dumps(Path(scratch) / "services")
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            manifest = {"apps": names_, "created": time.time(), "podku": __version__}
            _add_bytes(archive, MANIFEST, f"{MAGIC} v{VERSION}\n{json.dumps(manifest)}\n".encode())
            for name in CONFIG_FILES:
                _add_tree(archive, paths.CONFIG / name, f"config/{name}", budget)
            _add_tree(archive, paths.SSH_AUTHORIZED_KEYS, "ssh/authorized_keys", budget)
            for name in names_:
                with apps.lock(name):
                    _add_tree(archive, paths.AppPaths(name).root, f"state/{name}", budget)
                    _add_tree(archive, paths.AppPaths(name).repo, f"repos/{name}.git", budget)
            if has_storage:
                with open(nested, "rb") as handle:
                    archive.addfile(_info(STORAGE_TAR, nested.stat().st_size), handle)
            _add_tree(archive, Path(scratch) / "services", "services", budget)
            _add_bytes(archive, END, f"{MAGIC} end {len(names_)} apps\n".encode())
    output.warn(f"exported {len(names_)} app(s) and {len(dumped)} service(s): the archive holds their config, "
                "keys and data, keep it private")


def service_dumps(root: Path) -> list[str]:
    """Each service's record and a dump of its running server, into `root`; one that cannot
    be dumped (not running, the dump failing) fails the export: never a backup with a gap."""
    done = []
    for kind, (module, suffix) in stores.SERVICE_KINDS.items():
        for name in module.all_names():
            directory = root / kind
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                with services.lock(kind, name):
                    service = module.load(name)
                    services.require_running(kind, name)
                    services.write_record(directory / f"{name}.json", dataclasses.asdict(service))
                    services.dump_to(kind, name, functools.partial(module.dump, service),
                                     directory / f"{name}{suffix}")
            except PodkuError as error:
                raise BackupError(f"backup:export failed, no archive written: {error}") from None
            done.append(f"{kind} {name}")
    return done


def make_private(out: IO[bytes]) -> None:
    """A backup holds every secret: see state.make_private."""
    try:
        state.make_private(out, "the backup's file")
    except UsageError as error:
        raise BackupError(str(error)) from None


def _scratch() -> Path:
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    return paths.CACHE


def storage_archive(dest: Path, budget: Budget) -> bool:
    """The storage directories as a tar that import takes whole: members it would refuse
    are left out, one line each. False when there is no storage."""
    if not storage.root().is_dir():
        return False
    with storage_stream() as raw, tarfile.open(fileobj=raw, mode="r|", tarinfo=_BoundedInfo) as source, \
            tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as target:
        while (member := source.next()) is not None:
            _forget_headers(source)
            if member.name in (".", "./"):
                continue
            problem = storage_member_problem(member)
            if problem is not None:
                output.warn(f"left out of the backup: storage {shown(member.name.removeprefix('./'))}, {problem}")
                continue
            budget.charge(member.name, member.size)
            target.addfile(member, source.extractfile(member) if member.isreg() else None)
    return True


@contextlib.contextmanager
def storage_stream() -> Iterator[IO[bytes]]:
    """The storage root as tar, read in the user namespace the containers write in. A second
    link to a file comes as a copy of it (--hard-dereference), not as a link."""
    # GNU tar exits 1 when a file changed while it read it: a running app's storage may
    argv = ["tar", "--create", "--numeric-owner", "--hard-dereference", "--file", "-",
            "--warning=no-file-changed", "--directory", str(storage.root()), "."]
    with podman.engine.unshare_reading(argv, ok=(0, 1), on_stderr=_tar_warning) as stream:
        yield stream


def _tar_warning(line: str) -> None:
    """GNU tar leaves sockets out itself, with a warning: said as podku says the others."""
    name = line.removeprefix("tar: ").removesuffix(": socket ignored")
    if line.endswith(": socket ignored"):
        output.warn(f"left out of the backup: storage {shown(name.removeprefix('./'))}, a socket")
    else:
        output.warn(output.one_line(line))


def _info(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = (0 if directory else size), int(time.time())
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o700 if directory else 0o600
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    archive.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_tree(archive: tarfile.TarFile, source: Path, name: str, budget: Budget) -> None:
    """Regular files and directories under `source`; links, sockets, locks and hooks left out."""
    if source.is_symlink() or not source.exists():
        return
    if source.is_file():
        with open(source, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            budget.charge(name, size)
            archive.addfile(_info(name, size), handle)
        return
    budget.charge(name, 0)
    archive.addfile(_info(name, 0, directory=True))
    for entry in sorted(source.iterdir()):
        if entry.name in SKIPPED_STATE or entry.suffix == ".env" or not repo_part(f"{name}/{entry.name}"):
            continue
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            continue
        _add_tree(archive, entry, f"{name}/{entry.name}", budget)


# --- reading, safely --------------------------------------------------------------------

def member_name(name: str, tops: tuple[str, ...] = TOP_LEVEL) -> str:
    """A member name podku writes: relative, known top level, no '..', printable parts."""
    name = name.removeprefix("./").rstrip("/")
    parts = name.split("/")
    if (len(name) > MAX_NAME or not name or name.startswith("/") or not all(MEMBER_PART.fullmatch(p) for p in parts)
            or any(p in (".", "..") for p in parts) or (tops and parts[0] not in tops)):
        raise BackupError(f"not a podku backup: unexpected member {name[:80]!r}")
    return name


def storage_member_name(name: str) -> str:
    """A path below the storage root: relative, no '.' or '..' parts, printable (an app's
    files may have spaces and any letters), its first part a storage name."""
    name = name.removeprefix("./")
    problem = _storage_name_problem(name)
    if problem is not None:
        raise BackupError(f"refused: storage member {shown(name)} is {problem}")
    return name


def _storage_name_problem(name: str) -> str | None:
    parts = name.split("/")
    if not _is_storage_name(parts[0]):
        return "not in a storage directory"
    if not name.isprintable():
        return "a name that is not printable"
    if any(part in ("", ".", "..") for part in parts):
        return "a name with an empty, '.' or '..' part"
    if len(name.encode(errors="surrogateescape")) > MAX_STORAGE_NAME or any(len(part) > 255 for part in parts):
        return "a name too long"
    return None


def _is_storage_name(name: str) -> bool:
    try:
        storage.storage_name(name)
    except UsageError:
        return False
    return True


def storage_member_problem(member: tarfile.TarInfo) -> str | None:
    """Why import would refuse a member of the storage archive (None: it takes it)."""
    name = member.name.removeprefix("./")
    if "/" not in name and not member.isdir():
        return "not in a storage directory"
    return kind_problem(member) or _storage_name_problem(name)


def repo_part(name: str) -> bool:
    """Whether a member below repos/ is one that travels (anything else: True)."""
    parts = name.split("/")
    return parts[0] != "repos" or len(parts) < 3 or parts[2] in REPO_PARTS


def refuse_borrowed_objects(name: str) -> None:
    """objects/info/alternates would make git read (and podku build) another directory's objects."""
    parts = name.split("/")
    if parts[0] == "repos" and parts[2:] in (["objects", "info", other] for other in gitrepo.ALTERNATES):
        raise BackupError(f"refused: {shown(name)} would borrow objects from outside the repository")


def members(stream: IO[bytes], budget: Budget) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Each member of a podku archive after MANIFEST and before END, checked; truncation and
    foreign files raise BackupError."""
    started = False
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedInfo) as archive:
            first = archive.next()
            if first is None or first.name != MANIFEST or not first.isreg() or first.size > 1024 * 1024:
                raise BackupError("not a podku backup (no manifest)")
            started = True
            yield first, archive.extractfile(first)
            yield from _checked(archive, budget)
    except (tarfile.TarError, EOFError, OSError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        if not started:
            raise BackupError(f"not a podku backup ({reason})") from None
        raise BackupError(f"truncated: {reason}") from None


def _checked(archive: tarfile.TarFile, budget: Budget) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    while (member := archive.next()) is not None:  # not `for ... in archive`: that starts over
        _forget_headers(archive)
        if member.name == END and member.isreg() and not member.issparse():
            return
        problem = kind_problem(member)
        if problem is not None:
            raise BackupError(f"refused: {shown(member.name)} is {problem} (a backup holds regular files "
                              "and directories only)")
        if member.name != STORAGE_TAR:  # its members are counted one by one as they are read
            member.name = member_name(member.name)
            budget.charge(member.name, member.size)
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
    try:
        _write_member(root, member, handle, mode)
    except OSError as error:  # a name given twice (or as file and directory), a full disk
        raise BackupError(f"refused: cannot import {shown(member.name)}: {error.strerror or error}") from None


def _write_member(root: Path, member: tarfile.TarInfo, handle: IO[bytes] | None, mode: int) -> None:
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
    budget = Budget()
    for member, handle in members(stream, budget):
        if member.name == MANIFEST:
            manifest = read_manifest(handle)
            refuse_existing(manifest["apps"])
            continue
        if member.name == STORAGE_TAR:
            _unpack_storage(handle, staging / "storage", budget)
            continue
        refuse_borrowed_objects(member.name)
        if not repo_part(member.name):
            continue
        write_member(staging, member, handle)
    return manifest


def _unpack_storage(handle: IO[bytes] | None, root: Path, budget: Budget) -> None:
    """The nested storage archive, member by member as the outer one: each checked and
    counted by its header before podku writes it."""
    if root.exists():
        raise BackupError("refused: the backup has two storage archives")
    root.mkdir(mode=0o700)
    try:
        with tarfile.open(fileobj=handle, mode="r|", tarinfo=_BoundedInfo) as nested:
            while (member := nested.next()) is not None:
                _forget_headers(nested)
                if member.name in (".", "./"):
                    continue
                problem = storage_member_problem(member)
                if problem is not None:
                    raise BackupError(f"refused: storage member {shown(member.name)} is {problem}")
                member.name = storage_member_name(member.name)
                budget.charge(member.name, member.size)
                handle_ = nested.extractfile(member) if member.isreg() else None
                write_member(root, member, handle_, mode=0o600 | (member.mode & 0o100))  # scripts stay runnable
    except (tarfile.TarError, EOFError) as error:
        raise BackupError(f"truncated or damaged storage in the backup: {error}") from None


def refuse_existing(app_names: list[str]) -> None:
    clashes = [name for name in app_names if apps.exists(name)]
    if clashes:
        raise BackupError(f"refused: these apps already exist on this host: {', '.join(clashes)}")


# --- import ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Taken:
    """What of the old host an import takes besides the apps: both only when asked for."""

    host_settings: bool = False
    keys: bool = False


APPS_ONLY = Taken()


def restore(stream: IO[bytes], taken: Taken = APPS_ONLY) -> None:
    paths.DATA.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="import-", dir=paths.DATA))
    try:
        manifest = unpack(stream, staging)
        app_names = manifest["apps"]
        _check_placement(staging, app_names)
        _check_staged_records(staging, app_names)
        found = _check_services(staging)
        _check_repositories(staging, app_names)
        _restore_services(staging, found)
        _place(staging, app_names, taken)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with state.locked(domains.lock_path(), "domains"):
        domains.relink_all()  # the apps' names become links Caddy routes by, on this host's domain
        proxyconf.rerender_all()
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


def _check_repositories(staging: Path, app_names: list[str]) -> None:
    for name in app_names:
        repo = staging / "repos" / f"{name}.git"
        if repo.is_dir():
            try:
                gitrepo.fsck(repo)
            except gitrepo.RepoError as error:
                raise BackupError(str(error)) from None


def _check_staged_records(staging: Path, app_names: list[str]) -> None:
    """Every staged record through the schema its load uses, before anything is placed: a
    crafted field (a line for a unit, a name that becomes a path) refuses the archive."""
    try:
        stores.check_staged(staging, app_names)
    except state.StateCorrupt as error:
        raise BackupError(f"refused: {error}") from None


def _check_services(staging: Path) -> list[tuple[str, str]]:
    found = stores.staged_services(staging)
    clashes = [f"{kind} {name}" for kind, name in found if services.exists(kind, name)]
    if clashes:
        raise BackupError(f"refused: these services already exist on this host: {', '.join(clashes)}")
    return found


def _restore_services(staging: Path, found: list[tuple[str, str]]) -> None:
    """Each service of the backup made again, its record's role and password kept, and its
    dump restored; if one fails, those this import made are removed and nothing is placed."""
    made: list[tuple[str, str]] = []
    try:
        for kind, name in found:
            module, suffix = stores.SERVICE_KINDS[kind]
            where = staging / "services" / kind
            record = module.from_record(records.read_json(where / f"{name}.json"), name, f"services/{kind}/{name}.json")
            dump = where / f"{name}{suffix}"
            os.chmod(dump, 0o644)  # the server's own user in its container reads it; its directory is private
            if services.exists(kind, name):
                raise BackupError(f"refused: {kind} {name} already exists on this host")
            made.append((kind, name))
            module.restore_backup(record, dump)
            output.step(f"Restored {kind} {name} with its data")
    except BaseException:
        for kind, name in made:
            services.remove(kind, name, [naming.service_container(kind, name),
                                         naming.service_init_container(kind, name)])
        raise


def _storage_names(staging: Path) -> list[str]:
    root = staging / "storage"
    return [storage.storage_name(p.name) for p in sorted(root.iterdir())] if root.is_dir() else []


def _place(staging: Path, app_names: list[str], taken: Taken) -> None:
    _host_settings(staging / "config", taken.host_settings)
    _keys(staging / "ssh" / "authorized_keys", taken.keys)
    for entry in _storage_names(staging):
        storage.root().mkdir(parents=True, exist_ok=True)
        os.rename(staging / "storage" / entry, storage.directory(entry))
    for name in app_names:
        app_paths = paths.AppPaths(name)
        app_paths.root.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / "state" / name, app_paths.root)
        _drop_unknown_links(name)
        _reset_releases(name)
        if (staging / "repos" / f"{name}.git").is_dir():
            app_paths.repo.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / "repos" / f"{name}.git", app_paths.repo)
            run(["git", "init", "--quiet", "--bare", str(app_paths.repo)])  # config, hooks dir
        gitrepo.prepare(app_paths.repo, name)


def _host_settings(source: Path, take: bool) -> None:
    """The old host's limits and defaults replace this host's only when asked for, each said."""
    found = [name for name in CONFIG_FILES if (source / name).is_file()]
    if found and not take:
        output.step(f"Skipped the backup's host settings ({', '.join(found)}): --with-host-settings takes them")
        return
    for name in found:
        paths.CONFIG.mkdir(parents=True, exist_ok=True)
        replaced = (paths.CONFIG / name).exists()
        os.rename(source / name, paths.CONFIG / name)
        how = "replaced this host's with" if replaced else "took"
        output.step(f"Host setting {name}: {how} the backup's: {_summary(paths.CONFIG / name)}")


def _summary(path: Path) -> str:
    """A settings file on one line, for the operator to see what it grants."""
    text = path.read_text(errors="replace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), sort_keys=True)
    return output.one_line(text[:300])


def _keys(source: Path, take: bool) -> None:
    """Keys are re-added through sshkeys (a forced command each), never copied as lines, and
    only when asked for; every key added is named with its fingerprint."""
    keys = _archived_keys(source)
    if keys and not take:
        output.step(f"Skipped the backup's {len(keys)} key(s) ({', '.join(name for name, _ in keys)}): "
                    "--with-keys authorises them")
        return
    for name, key in keys:
        try:
            added = sshkeys.add(name, key, if_new=True)
        except UsageError as error:
            output.warn(f"key {name} not restored: {error}")
            continue
        print_key = f"{name} ({sshkeys.fingerprint(key.split()[1])})"
        output.step(f"Added key {print_key}" if added else f"Key {print_key} is authorised already")


def _archived_keys(source: Path) -> list[tuple[str, str]]:
    """(name, 'type blob') of each podku key line in the archive's authorized_keys."""
    keys = []
    lines = source.read_text(errors="replace").splitlines() if source.is_file() else []
    for line in lines:
        words = line.split()
        name = sshkeys._name_of(line)
        if name is not None and len(words) >= 3 and sshkeys.KEY_NAME.fullmatch(name):
            keys.append((name, f"{words[-3]} {words[-2]}"))
    return keys


def _drop_unknown_links(name: str) -> None:
    """A link to a service neither the backup nor this host has (a backup written before
    services travelled, or edited) is dropped with its config key, said, so that the app
    starts here (its containers would otherwise mount a socket directory that does not exist)."""
    kept = []
    config = apps.config(name)
    for link in links.load(name):
        if paths.ServicePaths(link["kind"], link["name"]).record.is_file():
            kept.append(link)
            continue
        config.pop(link["variable"], None)
        output.warn(f"{name}: left out its link to {link['kind']} {link['name']} and {link['variable']}: "
                    f"no such service on this host ({link['kind']}:create {link['name']}, then "
                    f"{link['kind']}:link {link['name']} {name})")
    if kept != links.load(name):
        links.save(name, kept)
        apps.save_config(name, config)


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
            deploy.deploy_again(apps.load(name), releases.load(name, live))
    except PodkuError as error:
        output.warn(f"{name}: {error}")
        return False
    marker.unlink(missing_ok=True)
    return True
