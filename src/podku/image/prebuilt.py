"""Images built elsewhere: a `podman save`/`docker save` archive sent on stdin
(git:load-image) or an image pulled from a registry (git:from-image), each tagged as the
app's release image, localhost/podku/APP:rN, and nothing else.

An archive names its images (manifest.json's RepoTags); `podman load` would give the store
those names, moving any other image of the same name off it: a base image, another app's
release, an image other apps' builds start FROM. So the archive is copied from stdin into
one of podku's own, bounded in size, with its names left out: podman stores it under its ID
only, and podku names it. An archive that names another app's or podku's own images is
refused outright: that is no mistake."""

import contextlib
import io
import json
import re
import shutil
import signal
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from podku import names, output
from podku.errors import PodkuError
from podku.host import paths, podman, state
from podku.host.commands import last_line
from podku.image import build, limits

MANIFEST = "manifest.json"
# What else an archive may hold that names images: docker's legacy tag file and the OCI
# index (docker 25 writes both beside manifest.json); podman's docker-archive reader needs neither.
NAMING_FILES = ("repositories", "index.json", "oci-layout")
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MEMBERS = 100_000
IMAGE_ID = "sha256:[0-9a-f]{64}"
ARCHIVE_NAME = "image.tar"
CHUNK = 1024 * 1024
EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                    tarfile.GNUTYPE_LONGLINK)
MAX_EXTENDED_HEADER = 64 * 1024
# A release's source (releases.py): how it records each kind.
LOADED, PULLED = "load-image ", "image "


class ImageRefused(PodkuError):
    exit_code = 2


@dataclass(frozen=True)
class Loaded:
    image_id: str  # sha256:HEX
    source: str  # what the release record says of where it came from


# --- the archive ---------------------------------------------------------------------------

class Bounded:
    """A binary stream that refuses to give more than `limit` bytes."""

    def __init__(self, stream: IO[bytes], limit: int):
        self.stream, self.limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size if size >= 0 else CHUNK)  # a short read, never all at once
        self.count += len(data)
        if self.count > self.limit:
            raise ImageRefused(too_large(self.limit))
        return data


class HeaderBounded(tarfile.TarInfo):
    """A member whose extended header (pax, GNU long name) tarfile would read whole into
    memory is refused first, if it is larger than any image archive's."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in EXTENDED_HEADERS and self.size > MAX_EXTENDED_HEADER:
            raise tarfile.HeaderError(f"an extended header of {self.size} bytes")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def too_large(limit: int) -> str:
    return (f"the image archive is larger than {limit} bytes "
            f"(image_max_bytes in ~/.config/podku/{limits.LIMITS_FILE_NAME})")


def receive_archive(stream: IO[bytes], target: Path, app: str, limit: int) -> None:
    """Copy a docker-archive from `stream` to `target`, checked member by member, its image
    names left out; raises ImageRefused (and leaves no file) if it is not one, is larger than
    `limit` bytes (sent or unpacked), or names an image that is not the app's own."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=cast(IO[bytes], Bounded(stream, limit)), mode="r|*",
                          tarinfo=HeaderBounded) as source, \
                tarfile.open(target, mode="w") as copy:
            manifests = copy_members(source, copy, app, limit)
    except (tarfile.TarError, EOFError, OSError, UnicodeError) as error:
        target.unlink(missing_ok=True)
        raise ImageRefused("not an image archive: send what `podman save` or `docker save` writes "
                           f"({output.one_line(str(error))[:120] or 'unreadable'})") from error
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if manifests != 1:
        target.unlink(missing_ok=True)
        raise ImageRefused("not an image archive: no manifest.json (send what `podman save` or `docker save` "
                           "writes, in its default format)" if not manifests else
                           "the archive holds more than one manifest.json")


def copy_members(source: tarfile.TarFile, copy: tarfile.TarFile, app: str, limit: int) -> int:
    """Copy every member but the naming files; returns how many manifests were copied."""
    manifests, unpacked = 0, 0
    for number, member in enumerate(source, start=1):
        if number > MAX_MEMBERS:
            raise ImageRefused(f"the archive has more than {MAX_MEMBERS} files: not an image archive")
        check_member(member)
        name = PurePosixPath(member.name).as_posix().removeprefix("./")
        if name in NAMING_FILES:
            continue
        unpacked += member.size
        if unpacked > limit:
            raise ImageRefused(too_large(limit))
        if name == MANIFEST:
            manifests += 1
            data = unnamed_manifest(read_member(source, member, MAX_MANIFEST_BYTES), app)
            written = tarfile.TarInfo(MANIFEST)  # a header of podku's own: no pax size of the sender's
            written.size, written.mode, written.mtime = len(data), 0o644, member.mtime
            copy.addfile(written, io.BytesIO(data))
        else:
            copy.addfile(member, source.extractfile(member) if member.isfile() else None)
    return manifests


def check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise ImageRefused("not an image archive: it holds a path outside itself "
                           f"({output.printable(member.name)[:80]})")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = path.parent if member.issym() else PurePosixPath()  # a hard link names a member
        if target.is_absolute() or _escapes(base, target):
            raise ImageRefused("not an image archive: it holds a link outside itself")
    elif not (member.isfile() or member.isdir()):
        raise ImageRefused("not an image archive: it holds a device, pipe or other special file")


def _escapes(directory: PurePosixPath, target: PurePosixPath) -> bool:
    depth = 0
    for part in (*directory.parts, *target.parts):
        depth += -1 if part == ".." else 0 if part in (".", "") else 1
        if depth < 0:
            return True
    return False


def read_member(source: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if not member.isfile() or member.size > limit:
        raise ImageRefused(f"not an image archive: its {MANIFEST} is not a file of at most {limit} bytes")
    handle = source.extractfile(member)
    assert handle is not None
    return handle.read()


def unnamed_manifest(data: bytes, app: str) -> bytes:
    """manifest.json checked (one image) and its names (RepoTags) refused or left out."""
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise ImageRefused(f"not an image archive: its {MANIFEST} is not JSON") from error
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ImageRefused("the archive must hold exactly one image (podman save IMAGE, docker save IMAGE)")
    entry = manifest[0]
    if not isinstance(entry.get("Config"), str) or not isinstance(entry.get("Layers"), list):
        raise ImageRefused(f"not an image archive: its {MANIFEST} has no Config and Layers")
    tags = entry.get("RepoTags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ImageRefused(f"not an image archive: RepoTags in its {MANIFEST} is not a list of names")
    for tag in tags:
        reason = tag_refusal(tag, app)
        if reason:
            raise ImageRefused(reason)
    return json.dumps([{**entry, "RepoTags": []}]).encode()


def tag_refusal(tag: str, app: str) -> str | None:
    """Why an archive naming this image must not be loaded, or None. podman names images of
    the host's own store localhost/...; podku's are localhost/podku/...: another app's
    releases, the base images builds start from, the services' images."""
    shown = output.printable(tag)[:100]
    if len(tag) > names.MAX_IMAGE_REFERENCE or not tag.isprintable() or not tag.strip():
        return f"the archive names an image {shown!r} that is not an image name"
    name = tag.lower().split("@", 1)[0]
    path = name.removeprefix("localhost/").removeprefix("docker.io/").removeprefix("library/")
    repository = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
    if repository == f"podku/{app}":
        return None
    if repository.startswith("podku/") or repository == "podku":
        return (f"the archive names the image {shown}: podku's own names (localhost/podku/...) are of "
                "other apps' releases and the host's base images; save the image under a name of your own")
    return None


# --- into the store ------------------------------------------------------------------------

def load_archive(stream: IO[bytes], tag: str, app: str, workdir: Path) -> Loaded:
    """An archive from `stream`, received and checked, stored as `tag`; raises ImageRefused."""
    bounds = limits.load()
    archive = workdir / ARCHIVE_NAME
    try:
        output.step("Receiving the image archive")
        with time_limit(bounds.build_timeout):
            receive_archive(stream, archive, app, bounds.image_max_bytes)
        with state.locked(paths.IMAGES_LOCK, "images", shared=True):  # a prune would take an unnamed image
            image_id = _pulled(f"docker-archive:{archive}", "podman could not load the archive")
            podman.engine.tag_image(image_id, tag)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Loaded(image_id, f"{LOADED}{image_id}")


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """The archive must have arrived within `seconds`: a client that sends slowly, or stops
    sending, must not hold the app's lock for ever (a read waiting on it is interrupted)."""
    def expired(_signum: int, _frame: object) -> None:
        raise ImageRefused(f"the image archive did not arrive within {seconds} s "
                           f"(build_timeout in ~/.config/podku/{limits.LIMITS_FILE_NAME})")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def pull_reference(reference: str, tag: str, unit: str) -> Loaded:
    """A registry image pulled (credentials: podman's own auth file) and stored as `tag` only;
    bounded like a build in time and memory, and in size by image_max_bytes."""
    names.image_reference(reference)
    bounds = limits.load()
    output.step(f"Pulling {reference}")
    with state.locked(paths.IMAGES_LOCK, "images", shared=True):
        image_id = _pulled(reference, f"podman could not pull {reference}", build.scope_argv(unit, bounds))
        podman.engine.tag_image(image_id, tag)
        podman.engine.untag_image(reference)  # the registry's name would outlive the release
        size = podman.engine.image_size(tag)
    if size > bounds.image_max_bytes:
        podman.engine.remove_image(tag)
        raise ImageRefused(f"{reference} is {size} bytes, larger than image_max_bytes ({bounds.image_max_bytes}) "
                           f"in ~/.config/podku/{limits.LIMITS_FILE_NAME}")
    return Loaded(image_id, f"{PULLED}{reference}")


def _pulled(source: str, failure: str, prefix: list[str] | None = None) -> str:
    try:
        image_id = podman.engine.pull(source, prefix or [])
    except PodkuError as error:
        raise ImageRefused(f"{failure}: {last_line(getattr(error, 'output', '') or str(error))[-300:]}") from error
    image_id = image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
    if not re.fullmatch(IMAGE_ID, image_id):
        raise ImageRefused(f"{failure}: podman answered no image ID")
    return image_id

