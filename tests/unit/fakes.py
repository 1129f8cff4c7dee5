"""In-memory stand-ins for the deploy user's systemd manager, podman and the health check, so
that swap, deploy, lifecycle and reconcile run in unit tests: no root, no D-Bus, no podman.

`install(monkeypatch)` puts them in place (after the `home` fixture has redirected podku.host.paths)
and returns a FakeHost. Unit files and links stay real files under the test's tmp tree: the
fake manager reads them as systemd would (a unit it has no file for is not found)."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from podku import apps, health, releases, staticsite, swap
from podku.cli import main as cli_main
from podku.errors import PodkuError
from podku.host import paths, systemd
from podku.host import podman as podman_module
from podku.host.commands import CommandFailed
from podku.image import build, builders, statictree
from podku.releases import Outcome, Release


class NoSystemd:
    """Stands in for the user manager: a test that reaches systemd fails loudly instead of
    touching this machine."""

    def __getattr__(self, name: str):
        raise AssertionError(f"reached systemd ({name})")


class SimulatedCrash(BaseException):
    """podku was killed: raised by every fake call from the chosen one on."""


def has_file(unit: str) -> bool:
    """A unit file, or for an instance (a@1.service) its template's (a@.service)."""
    name, at, rest = unit.partition("@")
    template = f"{name}@{rest[rest.index('.'):]}" if at and "." in rest else unit
    return systemd.unit_file(unit).exists() or systemd.unit_file(template).exists()


class FakeManager:
    """The user manager: unit states in sets, every request recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.active: set[str] = set()
        self.timers: dict[str, list[str]] = {}
        self.journal: dict[str, str] = {}
        self.fail_start: set[str] = set()
        self.oneshots: list[str] = []  # oneshot services run to completion, in order
        self.crash_at: int | None = None  # the number of requests served before the crash

    def _request(self, op: str, unit: str = "") -> None:
        if self.crash_at is not None and len(self.calls) >= self.crash_at:
            raise SimulatedCrash(f"killed before {op} {unit}")
        self.calls.append((op, unit))

    def ops(self, *kinds: str) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] in kinds]

    def reload(self) -> None:
        self._request("reload")

    def start(self, unit: str) -> None:
        self._request("start", unit)
        if not has_file(unit):
            raise systemd.SystemdError(f"cannot StartUnit {unit}: Unit {unit} not found.")
        if unit in self.fail_start:
            raise systemd.SystemdError(f"{unit} is failed after StartUnit, expected active")
        self.active.add(unit)

    def restart(self, unit: str) -> None:
        self._request("restart", unit)
        self.active.add(unit)

    def stop(self, unit: str) -> None:
        self._request("stop", unit)
        self.active.discard(unit)
        if unit.endswith(".socket"):  # its services Require= it
            stem = unit.removesuffix(".socket")
            self.active -= {f"{stem}.service", f"{stem}-app.service"}
            self.active -= set(fnmatch.filter(self.active, f"{stem}-web@*.service"))

    def reset_failed(self, unit: str) -> None:
        self._request("reset_failed", unit)

    def active_state(self, unit: str) -> str:
        self._request("active_state", unit)
        if unit.endswith(".timer") and unit.removesuffix(".timer") in self.timers:
            return "active"
        return "active" if unit in self.active else "inactive"

    def load_state(self, unit: str) -> str:
        self._request("load_state", unit)
        return "loaded" if systemd.unit_file(unit).exists() or unit in self.active else "not-found"

    def journal_tail(self, unit: str, lines: int) -> str:
        self._request("journal_tail", unit)
        return self.journal.get(unit, "")

    def running(self, pattern: str) -> list[str]:
        self._request("running", pattern)
        return sorted(fnmatch.filter(self.active, pattern))

    def run_oneshot(self, unit: str) -> None:
        self._request("run_oneshot", unit)
        if not systemd.unit_file(unit).exists():
            raise systemd.SystemdError(f"cannot StartUnit {unit}: Unit {unit} not found.")
        if unit in self.fail_start:
            raise systemd.SystemdError(f"{unit} failed (exit-code)")
        self.oneshots.append(unit)

    def start_slice(self, name: str, memory_max: int, tasks_max: int) -> None:
        self._request("start_slice", f"{name} MemoryMax={memory_max} TasksMax={tasks_max}")
        self.active.add(name)

    def run_later(self, name: str, after_seconds: int, argv: Sequence[str]) -> None:
        self._request("run_later", name)
        self.timers.setdefault(name, list(argv))


@dataclass
class FakePodman:
    """podman as podku.host.podman.engine: the images it has (built, looked up, removed) and
    the containers a test gave labels. A release's build is faked whole (build_release)."""

    images: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    containers: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (label, value) -> names
    removed_containers: list[str] = field(default_factory=list)
    tasks: list[list[str]] = field(default_factory=list)
    fed: list[tuple[list[str], str]] = field(default_factory=list)  # run_with_input: (argv, stdin)
    input_result: tuple[int, str] = (0, "")  # what run_with_input answers: (exit code, output)
    executed: list[tuple[str, list[str]]] = field(default_factory=list)  # exec_in: (container, argv)
    exec_result: int = 0
    builder: str = builders.CONTAINERFILE  # what the next build_release says it used
    exec_output: str = ""
    pulled: list[tuple[str, list[str]]] = field(default_factory=list)  # pull: (source, prefix)
    pull_id: str = "sha256:" + "ab" * 32
    pull_size: int = 1000
    tags: dict[str, str] = field(default_factory=dict)  # tag -> image ID
    untagged: list[str] = field(default_factory=list)
    live: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # running: (app, release) -> names
    inspected: dict[str, dict] = field(default_factory=dict)  # inspect: name -> podman's JSON
    secrets: dict[str, str] = field(default_factory=dict)  # podman secrets: name -> value
    commands: dict[str, list[str]] = field(default_factory=dict)  # image_command: image -> argv
    layers: list[tuple[str, str]] = field(default_factory=list)  # build_layer: (Containerfile, image)
    pushed: list[str] = field(default_factory=list)
    push_error: str = ""  # push raises PodkuError(push_error) when set
    dumped: list[tuple[str, list[str], dict]] = field(default_factory=list)  # exec_to
    dump_bytes: bytes = b"PGDMP fake dump"
    dump_fails: bool = False
    restored: list[tuple[str, list[str], dict, bytes]] = field(default_factory=list)  # exec_from: what it read
    restore_results: list[tuple[int, str]] = field(default_factory=list)  # exec_from's answers, in turn

    def build_release(self, repo: object, rev: str, tag: str, workdir: object, subdirectory: str = "") -> build.Built:
        self.images.add(tag)
        return build.Built(self.builder, None)

    def image_exists(self, image: str) -> bool:
        return image in self.images

    def remove_image(self, image: str) -> None:
        if image in self.images:
            self.images.discard(image)
            self.removed.append(image)

    def prune_images(self) -> None:
        pass

    def tag_image(self, image: str, tag: str) -> None:
        self.images.add(tag)
        self.tags[tag] = image

    def untag_image(self, tag: str) -> None:
        self.images.discard(tag)
        self.untagged.append(tag)

    def exposed_ports(self, image: str) -> list[str]:
        return []

    def container_pid(self, container: str) -> int | None:
        return None

    def sandbox(self, container: str) -> str:
        return ""

    def start(self, argv: Sequence[str]) -> None:
        raise AssertionError("a unit test started a container")

    def run_task(self, argv: Sequence[str], on_line: Callable[[str], None]) -> None:
        self.tasks.append(list(argv))

    def run_interactive(self, argv: Sequence[str], on_hangup: Callable[[], None]) -> int:
        self.tasks.append(list(argv))
        return 0

    def unshare_reading(self, argv: Sequence[str], ok: tuple[int, ...],
                        on_stderr: Callable[[str], None]) -> AbstractContextManager[IO[bytes]]:
        raise AssertionError("a unit test read through podman unshare")

    def labelled(self, label: str, value: str) -> list[str]:
        return list(self.containers.get((label, value), []))

    def remove_containers(self, names: Sequence[str]) -> None:
        self.removed_containers += names

    def image_command(self, image: str) -> list[str]:
        return list(self.commands.get(image, []))

    def build_layer(self, context: str, image: str) -> None:
        self.layers.append((Path(context).joinpath("Containerfile").read_text(), image))
        self.images.add(image)

    def push(self, image: str) -> None:
        if self.push_error:
            raise PodkuError(self.push_error)
        self.pushed.append(image)

    def cgroups(self) -> tuple[str, str]:
        return "v1", ""

    def put_secret(self, name: str, value: str) -> None:
        self.secrets[name] = value

    def remove_secret(self, name: str) -> None:
        self.secrets.pop(name, None)

    def import_image(self, image: str, stream: IO[bytes]) -> subprocess.CompletedProcess:
        self.images.add(image)
        return subprocess.CompletedProcess(["podman", "import"], 0, "")

    def run_with_input(self, argv: Sequence[str], text: str) -> subprocess.CompletedProcess:
        self.fed.append((list(argv), text))
        return subprocess.CompletedProcess(["podman", "run"], self.input_result[0], self.input_result[1])

    def exec_in(self, container: str, argv: Sequence[str]) -> subprocess.CompletedProcess:
        self.executed.append((container, list(argv)))
        return subprocess.CompletedProcess(["podman", "exec"], self.exec_result, self.exec_output)

    def unshare_remove(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)  # podman unshare rm -rf: a missing path is no error

    def exec_to(self, container: str, argv: Sequence[str], env: Mapping[str, str], out: IO[bytes]) -> None:
        self.dumped.append((container, list(argv), dict(env)))
        if self.dump_fails:
            raise CommandFailed(["podman", "exec"], 1, "pg_dump: error: connection failed")
        out.write(self.dump_bytes)

    def exec_from(self, container: str, argv: Sequence[str], env: Mapping[str, str],
                  source: IO[bytes]) -> subprocess.CompletedProcess:
        self.restored.append((container, list(argv), dict(env), source.read()))
        code, text = self.restore_results.pop(0) if self.restore_results else (0, "")
        return subprocess.CompletedProcess(["podman", "exec"], code, text)

    def exec_interactive(self, container: str, argv: Sequence[str], env: Mapping[str, str], tty: bool) -> int:
        self.executed.append((container, [*(["--tty"] if tty else []), *argv]))
        return self.exec_result

    def pull(self, source: str, prefix: Sequence[str] = ()) -> str:
        self.pulled.append((source, list(prefix)))
        return self.pull_id

    def image_size(self, image: str) -> int:
        return self.pull_size

    def running(self, app: str, release: int) -> list[str]:
        return list(self.live.get((app, release), []))

    def inspect(self, containers: Sequence[str]) -> list[dict]:
        return [self.inspected[name] for name in containers if name in self.inspected]


@dataclass
class FakeHealth:
    """A release answers its check through its socket, if that listens and it is not told to fail."""

    manager: FakeManager
    failing: set[int] = field(default_factory=set)
    passed: list[int] = field(default_factory=list)

    def check(self, socket_path: str, host: str, checks: health.Checks, log: object = None) -> None:
        release_id = int(os.path.basename(socket_path).removeprefix("web-r").removesuffix(".sock"))
        app = os.path.basename(os.path.dirname(socket_path))
        if f"{app}-r{release_id}.socket" not in self.manager.active:
            raise health.HealthCheckFailed(f"nothing listens on {socket_path}")
        if release_id in self.failing:
            raise health.HealthCheckFailed(f"health check {checks.path} failed: HTTP 500")
        self.passed.append(release_id)


@dataclass
class FakeHost:
    manager: FakeManager
    podman: FakePodman
    health: FakeHealth
    drained: list[float] = field(default_factory=list)  # how long each retirement waited

    def fire_retirements(self) -> None:
        """Every waiting retire timer fires, as `podku ps:retire APP N` would."""
        while self.manager.timers:
            name, argv = next(iter(self.manager.timers.items()))
            del self.manager.timers[name]
            app, release_id = argv[-2], int(argv[-1])
            with apps.lock(app):
                swap.retire(apps.load(app), release_id)

    def restart_after_crash(self) -> None:
        """A new podku process: the manager answers again and keeps its units' states."""
        self.manager.crash_at = None


def install(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    manager = FakeManager()
    podman = FakePodman()
    checker = FakeHealth(manager)
    monkeypatch.setattr(systemd, "manager", manager)
    monkeypatch.setattr(build, "build_release", podman.build_release)
    monkeypatch.setattr(podman_module, "engine", podman)
    monkeypatch.setattr(build, "read_file_at", lambda repo, rev, name: None)
    monkeypatch.setattr(health, "check", checker.check)
    monkeypatch.setattr(statictree, "write", write_static_tree)
    host = FakeHost(manager, podman, checker)
    monkeypatch.setattr(swap, "sleep", host.drained.append)
    return host


# --- what must hold after any heal --------------------------------------------------------


def app_sockets_enabled(app: str) -> set[str]:
    return {unit for unit in systemd.enabled("sockets.target") if unit.startswith(f"{app}-r")}


def write_static_tree(repo: Path, rev: str, directory: str, destination: Path) -> None:
    """A static release's files without git: an index.html naming the revision."""
    destination.mkdir()
    (destination / "index.html").write_text(f"static {rev[:7]}")


def units_exist(release: Release) -> bool:
    return staticsite.has_tree(release) or any(systemd.unit_file(unit).exists() for unit in release.units)


def assert_consistent(host: FakeHost, name: str) -> Release:
    """Exactly one live release, the record's; links, enable link and outcomes agree with it;
    its socket listens; it passed its check; every other release with units awaits retirement."""
    app = apps.load(name)
    every = releases.all_of(name)
    live = [r for r in every if r.outcome == Outcome.LIVE]
    assert [r.id for r in live] == [app.live_release], [(r.id, r.outcome) for r in every]
    [release] = live
    if release.static:
        assert_serves_files(name, release)
    else:
        assert systemd.link_target(app.paths.stable_socket) == str(app.paths.release_socket(release.id))
        assert systemd.link_target(systemd.unit_file(f"{name}.service")) == release.app_unit
        assert app_sockets_enabled(name) == {release.socket_unit}
        assert release.socket_unit in host.manager.active
        assert release.id in host.health.passed
        assert not staticsite.live_link(name).is_symlink()
    for other in every:
        if other.id != release.id and units_exist(other):
            assert f"podku-retire-{name}-r{other.id}" in host.manager.timers, other
    return release


def assert_serves_files(name: str, release: Release) -> None:
    """Caddy's static route reaches the release's tree; no socket, alias or enable link."""
    app = apps.load(name)
    draining = {str(app.paths.release_socket(r.id)) for r in releases.all_of(name)
                if r.id != release.id and not r.static and units_exist(r)}
    assert systemd.link_target(app.paths.stable_socket) in {str(staticsite.no_socket(name)), *draining}
    assert staticsite.no_socket(name).is_file()
    assert systemd.link_target(systemd.unit_file(f"{name}.service")) is None
    assert app_sockets_enabled(name) == set()
    assert staticsite.has_tree(release)
    wanted = None if app.stopped else f"r{release.id}"
    assert systemd.link_target(staticsite.live_link(name)) == wanted
    if not app.stopped:
        assert systemd.link_target(staticsite.files_link(name)) == wanted


def assert_only_live_has_units(host: FakeHost, name: str) -> None:
    app = apps.load(name)
    live = releases.load(name, app.live_release) if app.live_release else None
    if live is not None and live.static:  # every container release retired: no socket named
        assert systemd.link_target(app.paths.stable_socket) == str(staticsite.no_socket(name))
    for release in releases.all_of(name):
        if release.id == app.live_release:
            continue
        assert not units_exist(release), release.id
        assert release.outcome in (Outcome.FAILED, Outcome.RETIRED), (release.id, release.outcome)
        assert not set(release.units) & host.manager.active, release.id


def new_app(name: str = "web") -> apps.App:
    app = apps.App(name=name)
    app.paths.releases.mkdir(parents=True, exist_ok=True)
    apps.save(app)
    return app


def stable_target(name: str) -> str | None:
    return systemd.link_target(paths.AppPaths(name).stable_socket)


# --- the command, run in-process ------------------------------------------------------------


def cli_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`podku ARGS...` in-process, as main() runs it: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(list(args))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err
