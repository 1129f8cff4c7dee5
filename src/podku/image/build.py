"""Build: a pushed revision becomes a tagged image, built by rootless podman.

The pushed tree is untrusted: it is checked out by git (gitrepo), its Containerfile is
checked for what Debian 12's podman cannot confine (`RUN --mount`, other apps' images,
`ADD` of a URL), and `podman build` runs in a transient systemd scope with a time, memory
and task limit. On cgroup v2 the limits are on a transient slice of the build's own that
holds the scope and, through --cgroup-parent, the RUN steps' containers: podman's systemd
cgroup manager would otherwise give each of them a scope of its own, outside every limit.
Its RUN steps get a network of their own (slirp4netns without the host's loopback):
outbound only, like any machine on the internet, never the host's own services."""

import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from podku import naming, output
from podku.errors import PodkuError
from podku.host import paths, podman, state, systemd
from podku.host.commands import stream
from podku.image import builders, gitrepo, limits, source

BUILD_FILES = ("Containerfile", "Dockerfile")
IGNORE_FILES = (".containerignore", ".dockerignore")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MAX_BUILD_FILE_BYTES = 1024 * 1024
MAX_READ_BYTES = 1024 * 1024  # app.json and any other file read from a revision
# Local images a build may start from: podku's base images. Every other localhost/ image
# is an app's release (localhost/podku/APP:rN): its code is not another app's to read.
BASE_IMAGE_PREFIXES = ("localhost/podku/python:", "localhost/podku/node:", "localhost/podku/base-")
RELEASE_TAG = re.compile(r"r[0-9]+")
IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{1,64}")
# After the time limit podku kills the build's RUN processes, so podman fails the step and
# removes its containers itself; systemd stops the whole scope this much later regardless.
SCOPE_GRACE_SECONDS = 60
KILL_REPEAT_SECONDS = 2
OOM_POLL_SECONDS = 0.5  # a RUN step killed for memory: podman exits (and the scope goes) a moment later
# RUN steps join the network namespace of a small container podman gives slirp4netns
# without host loopback: podman 4.3's build takes no slirp4netns options itself (its own
# rootless network lets 10.0.2.2 reach the host's 127.0.0.1). 10.0.2.3 is slirp's DNS.
BUILD_NETWORK = "slirp4netns:allow_host_loopback=false"
BUILD_DNS = "10.0.2.3"
NETWORK_HOLDER_IMAGE = "localhost/podku/python:3.11"  # every host has it (install.sh)
NETWORK_LABEL = "podku.build-network"


class BuildFailed(PodkuError):
    pass


# --- what a build may use -----------------------------------------------------------------

def build_file(source: Path) -> Path:
    for name in IGNORE_FILES:
        if (source / name).is_symlink():
            raise BuildFailed(f"{name} is a symbolic link: podku builds only from regular files")
    for name in BUILD_FILES:
        path = source / name
        if path.is_symlink():
            raise BuildFailed(f"{name} is a symbolic link: podku builds only from a regular file")
        if path.is_file():
            return path
    raise BuildFailed("no Containerfile or Dockerfile at the repository root: podku builds those")


def check_build_file(path: Path) -> None:
    """Refuse what podman 4.3 cannot confine; raises BuildFailed with the reason."""
    if path.stat().st_size > MAX_BUILD_FILE_BYTES:
        raise BuildFailed(f"{path.name} is larger than {MAX_BUILD_FILE_BYTES} bytes")
    reason = build_file_refusal(path.read_text(errors="replace"))
    if reason:
        raise BuildFailed(f"{path.name}: {reason}")


def build_file_refusal(text: str) -> str | None:
    """Why a Containerfile must not be built, or None. Deliberately rough and strict, so
    that nothing hides from it: comment lines aside, any `--mount` that line continuations
    could assemble is refused, and image names are checked in every reading of the lines
    (each alone, joined by either escape character; heredoc bodies count as instructions)."""
    # split on "\n" only, as podman does (str.splitlines knows more line ends)
    numbered = [(number, line) for number, line in enumerate(text.split("\n"), start=1)
                if line.strip() and not line.lstrip(" \t").startswith("#")]
    lines = [line for _number, line in numbered]
    squashed = re.sub(r"[\s\\`]", "", "".join(lines)).lower()
    if "--mount" in squashed:
        return ("RUN --mount is not supported: Debian 12's podman lets it read the host's files "
                "(CVE-2024-1753, CVE-2024-9675)")
    for escape in (None, "\\", "`"):
        reason = image_refusal_in(instructions(lines, escape)) or add_source_refusal(numbered, escape)
        if reason:
            return reason
    return None


def add_source_refusal(numbered: list[tuple[int, str]], escape: str | None) -> str | None:
    """Why an ADD must not be built, or None. podman fetches an ADD URL itself, from the
    host: 127.0.0.1 reaches the host's loopback services, and so does any public name that
    resolves or redirects there. So no URL at all (a RUN step downloads without the host's
    loopback), and no variable that could hold one."""
    for number, words in numbered_instructions(numbered, escape):
        if words[0].lower() == "onbuild":
            words = words[1:]
        if not words or words[0].lower() != "add":
            continue
        for word in (word for word in words[1:] if not word.startswith("--")):
            if "://" in word or word.lower().startswith("git@"):
                return (f"line {number}: ADD of a URL is not supported: podman would fetch it from the "
                        "host itself, its loopback services included; download it in a RUN step")
            if "$" in word:
                return f"line {number}: variables in ADD sources are not supported (one could hold a URL)"
    return None


def image_refusal_in(instruction_words: Iterator[list[str]]) -> str | None:
    stages: set[str] = set()
    for words in instruction_words:
        keyword = words[0].lower()
        references = []
        if keyword == "from":
            image, stage = from_image_and_stage(words[1:])
            references = [image] if image else []
            stages |= {stage.lower()} if stage else set()
        elif keyword in ("copy", "add"):
            sources = (word.split("=", 1)[1] for word in words[1:] if word.lower().startswith("--from="))
            # a number names an earlier stage by its index
            references = [source for source in sources if not (source.isascii() and source.isdigit())]
        for reference in references:
            reason = image_refusal(reference, stages)
            if reason:
                return reason
    return None


def instructions(lines: list[str], escape: str | None) -> Iterator[list[str]]:
    """Instructions as word lists; a line ending with `escape` continues on the next one."""
    return (words for _number, words in numbered_instructions(list(enumerate(lines, start=1)), escape))


def numbered_instructions(lines: list[tuple[int, str]], escape: str | None) -> Iterator[tuple[int, list[str]]]:
    """(number of its first line, words) of each instruction in (number, line) pairs."""
    pending, first = "", 0
    for number, line in lines:
        stripped = line.rstrip()
        first = first or number
        if escape and stripped.endswith(escape):
            pending += stripped[:-1]
            continue
        words = (pending + stripped).split()
        if words:
            yield first, words
        pending, first = "", 0
    if pending.split():
        yield first, pending.split()


def from_image_and_stage(words: list[str]) -> tuple[str | None, str | None]:
    rest = [word for word in words if not word.startswith("--")]
    image = rest[0] if rest else None
    stage = rest[2] if len(rest) >= 3 and rest[1].lower() == "as" else None
    return image, stage


def image_refusal(reference: str, stages: set[str]) -> str | None:
    """Why a build must not use this image, or None. podman resolves short names against
    local images by suffix (`other:r1` finds localhost/podku/other:r1) and takes image IDs."""
    ref = reference.lower()
    if ref in stages or ref == "scratch":
        return None
    if "$" in ref:
        return f"image {reference}: variables in image names are not supported"
    if IMAGE_ID.fullmatch(ref):
        return f"image {reference}: image IDs are not supported, name the image"
    name = ref.split("@", 1)[0]
    path, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    first = path.split("/", 1)[0]
    registry = first if "/" in path and ("." in first or ":" in first or first == "localhost") else None
    if registry not in (None, "localhost"):
        return None  # a registry's image: never one of this host's
    if RELEASE_TAG.fullmatch(tag) or path.startswith("podku/") or (
            registry == "localhost" and not name.startswith(BASE_IMAGE_PREFIXES)):
        return (f"image {reference} is not allowed: a build may use no other local image than "
                f"podku's base images ({', '.join(p + '*' for p in BASE_IMAGE_PREFIXES)})")
    return None


# --- building -----------------------------------------------------------------------------

def build_image(source: Path, tag: str, unit: str) -> str:
    """podman build in a scope with limits, output streamed indented; raises BuildFailed.
    Returns the builder used."""
    build_limits = limits.load()
    prepared = prepare_build(source, tag)
    group = naming.build_slice(unit) if podman.engine.cgroups()[0] == "v2" else None
    with build_slice(group, build_limits), \
            build_network(unit, build_limits.build_timeout + SCOPE_GRACE_SECONDS) as network:
        argv = [*podman_build_argv(group), f"--network={network}", f"--dns={BUILD_DNS}", "--tag", tag,
                *prepared.build_args]
        if HOST_CA_BUNDLE.is_file():
            argv += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        argv.append(str(source))
        run_build(argv, source, unit, build_limits, group)
    if not image_built(tag):  # podman exits 0 when systemd stops it
        raise BuildFailed("image build failed: no image")
    return prepared.builder


def podman_build_argv(group: str | None) -> list[str]:
    """`podman build`, its RUN containers in the build's slice when it has one (cgroup v2)."""
    podman_build = ["podman", "build"]
    if group is None:
        return podman_build
    # podman passes it to runc as is: with the systemd manager (cgroupfs would take a path)
    # runc wants slice:prefix:name and runs each RUN step in scope prefix-name in the slice
    run_scope = group.removeprefix("podku-build-").removesuffix(".slice")
    return [podman_build[0], "--cgroup-manager=systemd", podman_build[1],
            f"--cgroup-parent={group}:podku-run:{run_scope}"]


@contextlib.contextmanager
def build_slice(group: str | None, build_limits: limits.BuildLimits) -> Iterator[None]:
    """The build's transient slice with its memory and task limits, stopped afterwards
    (which ends whatever of the build is left in it), or nothing where `group` is None."""
    if group is None:
        yield
        return
    memory, tasks = limits.memory_bytes(build_limits.build_memory), build_limits.build_tasks
    try:
        try:
            systemd.start_slice(group, memory, tasks)
        except PodkuError:  # one left by a podku killed mid-build: its name is this build's
            with contextlib.suppress(PodkuError):
                systemd.stop(group)
            systemd.start_slice(group, memory, tasks)
    except PodkuError as error:
        raise BuildFailed(f"cannot make the build's slice: {error}") from error
    try:
        yield
    finally:
        with contextlib.suppress(PodkuError):
            systemd.stop(group)


def run_build(podman_build: list[str], source: Path, unit: str, build_limits: limits.BuildLimits,
              group: str | None = None) -> None:
    """`podman build ...` in the build's scope (in its slice `group`, if any), its output
    streamed; raises BuildFailed."""
    watchdog = Watchdog(build_limits.build_timeout, unit)
    try:
        stream(scope_argv(unit, build_limits, group) + podman_build, output.detail, cwd=source,
               started=watchdog.start)
    except PodkuError as error:
        if watchdog.fired:
            raise BuildFailed(time_limit_message(build_limits)) from error
        if watchdog.oom_kills:
            raise BuildFailed(memory_limit_message(build_limits)) from error
        tail = getattr(error, "output", "").strip().splitlines()[-3:]
        raise BuildFailed("image build failed" + (": " + " | ".join(tail) if tail else "")) from error
    finally:
        watchdog.stop()
    if watchdog.fired:
        raise BuildFailed(time_limit_message(build_limits))


@contextlib.contextmanager
def build_network(unit: str, seconds: int) -> Iterator[str]:
    """podman build's --network value for one build: the network namespace of a container
    that only sleeps, whose slirp4netns (one process, gone with the container) gives
    outbound connections but not the host's loopback. The container ends by itself after
    `seconds`, should podku be killed before it removes it."""
    name = f"{unit}-network"
    try:
        podman.engine.start(["--rm", "--replace", "--name", name, f"--network={BUILD_NETWORK}",
                             "--timeout", str(seconds), "--read-only", "--cap-drop=all",
                             "--security-opt=no-new-privileges", "--pids-limit=8", "--label", f"{NETWORK_LABEL}={unit}",
                             NETWORK_HOLDER_IMAGE, "sleep", str(seconds)])
        sandbox = podman.engine.sandbox(name)
        if not sandbox.startswith("/"):
            raise PodkuError(f"container {name} has no network namespace")
    except PodkuError as error:
        podman.engine.remove_containers([name])
        raise BuildFailed("cannot give the build a network (slirp4netns, /dev/net/tun usable by the deploy "
                          f"user and {NETWORK_HOLDER_IMAGE} are needed): "
                          + output.one_line(getattr(error, "output", "") or str(error))[-300:]) from error
    try:
        yield f"ns:{sandbox}"
    finally:
        podman.engine.remove_containers([name])


def prepare_build(source: Path, tag: str) -> builders.Prepared:
    """The builder and its build arguments: the user's own Containerfile, checked first, or
    the one a builder rendered outside the tree from podku's own template."""
    prepared = builders.prepare(source, _release_of(tag)[0])
    if prepared.builder == builders.CONTAINERFILE:
        check_build_file(build_file(source))
    return prepared


def _release_of(tag: str) -> tuple[str, int]:
    """(app, release) of the tag deploy gave the build."""
    release = naming.parse_image(tag)
    if release is None:
        raise BuildFailed(f"not a release image tag: {tag}")
    return release


def scope_argv(unit: str, build_limits: limits.BuildLimits, group: str | None = None) -> list[str]:
    return ["systemd-run", "--user", "--scope", "--quiet", "--collect", f"--unit={unit}",
            *([f"--slice={group}"] if group else []),
            f"--property=RuntimeMaxSec={build_limits.build_timeout + SCOPE_GRACE_SECONDS}",
            f"--property=MemoryMax={build_limits.build_memory}",
            f"--property=TasksMax={build_limits.build_tasks}", "--"]


def time_limit_message(build_limits: limits.BuildLimits) -> str:
    return (f"image build stopped: it ran longer than its limit of {build_limits.build_timeout} s "
            f"(build_timeout in ~/.config/podku/{limits.LIMITS_FILE_NAME})")


def memory_limit_message(build_limits: limits.BuildLimits) -> str:
    return (f"image build stopped: it used more than its memory limit of {build_limits.build_memory} "
            f"(build_memory in ~/.config/podku/{limits.LIMITS_FILE_NAME})")


class Watchdog:
    """At the time limit, kill every process in the build's scope but podman itself, until
    podman exits: the RUN step fails and podman cleans up as after any failed step. Until
    then it notes the kernel's OOM kills in the scope (its MemoryMax), to say why a build failed."""

    def __init__(self, seconds: float, unit: str):
        self.seconds, self.unit = seconds, unit
        self.fired = False
        self.oom_kills = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, leader: int) -> None:
        self._thread = threading.Thread(target=self._watch, args=(leader,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, leader: int) -> None:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            if self._stopped.wait(min(OOM_POLL_SECONDS, max(0.0, deadline - time.monotonic()))):
                return
            self.oom_kills = max(self.oom_kills, oom_kills_in_scope(leader, self.unit))
        self.fired = True
        while not self._stopped.is_set():
            kill_scope_except(leader, self.unit)
            self._stopped.wait(KILL_REPEAT_SECONDS)


def build_group(leader: int, unit: str) -> Path | None:
    """The cgroup that holds the whole build: its slice where it has one (the RUN containers
    are there too), else its scope; None once podman is not (or no longer) in its scope."""
    group = cgroup_of(leader)
    if group is None or group.name != f"{unit}.scope":
        return None
    return group.parent if group.parent.name == naming.build_slice(unit) else group


def oom_kills_in_scope(leader: int, unit: str) -> int:
    """The kernel's OOM kills in the build's slice or scope so far (cgroup v2's memory.events), or 0."""
    group = build_group(leader, unit)
    if group is None:
        return 0
    try:
        events = dict(line.split(None, 1) for line in (group / "memory.events").read_text().splitlines())
        return int(events.get("oom_kill", "0"))
    except (OSError, ValueError):
        return 0


def kill_scope_except(leader: int, unit: str) -> None:
    group = build_group(leader, unit)
    if group is None:
        return  # not (or no longer) in its scope: systemd's RuntimeMaxSec still ends it
    for pid in pids_in(group):
        if pid != leader:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def cgroup_of(pid: int) -> Path | None:
    """The directory of `pid`'s systemd cgroup: cgroup v2, or the hybrid/legacy layouts."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    entries = dict(line.split(":", 2)[1:] for line in lines if line.count(":") >= 2)
    candidates = []
    if "" in entries:
        candidates += [Path("/sys/fs/cgroup" + entries[""]), Path("/sys/fs/cgroup/unified" + entries[""])]
    if "name=systemd" in entries:
        candidates.append(Path("/sys/fs/cgroup/systemd" + entries["name=systemd"]))
    return next((path for path in candidates if (path / "cgroup.procs").is_file()), None)


def pids_in(group: Path) -> list[int]:
    """Every process in `group` and the groups below it (runc may make child groups)."""
    pids = []
    for directory, _dirs, _files in os.walk(group):
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in (Path(directory) / "cgroup.procs").read_text().split()]
    return pids


def image_built(tag: str) -> bool:
    """Whether `tag` exists; the caller holds the images lock."""
    return podman.engine.image_exists(tag)


def exposed_port(image: str) -> int | None:
    """The image's single EXPOSEd TCP port, if it has one: the app then binds $PORT."""
    tcp = sorted(int(key.split("/")[0]) for key in podman.engine.exposed_ports(image) if key.endswith("/tcp"))
    return tcp[0] if tcp else None


# --- images and the lock that guards them ----------------------------------------------------

def image_exists(tag: str) -> bool:
    with state.locked(paths.IMAGES_LOCK, "images", shared=True):
        return image_built(tag)


def remove_images(tags: list[str], wait: bool = False) -> bool:
    """Remove what can be removed: one image in use must not keep the others. Unless
    `wait`, never waits for builds (an endless one would hold up its caller's app): then
    nothing is removed, False is returned, and the next prune tries again."""
    if not tags:
        return True
    with exclusive_images_lock(wait) as held:
        if not held:
            return False
        for tag in tags:
            podman.engine.remove_image(tag)
        # The build cache those images leave dangling (their own layers); the dependency
        # layers kept images share are their parents and stay. No build runs: we hold the lock.
        podman.engine.prune_images()
    return True


@contextlib.contextmanager
def exclusive_images_lock(wait: bool) -> Iterator[bool]:
    if wait:
        with state.locked(paths.IMAGES_LOCK, "images"):
            yield True
        return
    paths.IMAGES_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.IMAGES_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the whole build ------------------------------------------------------------------------

def read_file_at(repo: Path, rev: str, name: str) -> str | None:
    """A file's content at `rev` (at most MAX_READ_BYTES), or None where it has none."""
    return gitrepo.read_file(repo, rev, name, MAX_READ_BYTES)


@dataclass(frozen=True)
class Built:
    builder: str
    port: int | None  # the image's EXPOSEd port, if any: the app then binds $PORT


def build_release(repo: Path, rev: str, tag: str, workdir: Path, subdirectory: str = "") -> Built:
    """Build `rev` as `tag`, from `subdirectory` of its tree (git:set APP build-dir) if given."""
    try:
        with state.locked(paths.IMAGES_LOCK, "images", shared=True):
            gitrepo.checkout(repo, rev, workdir)
            context = source.source_dir(workdir, subdirectory)
            builder = build_image(context, tag, unit=naming.build_unit(*_release_of(tag)))
            return Built(builder, exposed_port(tag))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
