"""The deploy user's systemd: its unit files and links, and its manager behind one seam.

Every request to the user manager goes through the module-level `manager`, an object with
the `Manager` protocol's methods. The real one, `UserManager`, talks D-Bus through pystemd
(imported on first use, so that importing podku never needs it) and runs systemd-run and
journalctl through podku.host.commands; unit tests put an in-memory fake in its place
(tests/unit/fakes.py). Unit files and links are plain files and are handled here directly.
Whatever pystemd or D-Bus raises leaves this module as a one-line SystemdError."""

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from podku.errors import PodkuError
from podku.host import paths, state
from podku.host.commands import run

JOB_TIMEOUT = 120.0
JOB_POLL = 0.05
RUNNING_STATES = [b"active", b"activating", b"reloading"]


class SystemdError(PodkuError):
    """The user manager refused a request, failed it, or could not be reached."""


class Manager(Protocol):
    def reload(self) -> None: ...
    def start(self, unit: str) -> None: ...
    def stop(self, unit: str) -> None: ...
    def restart(self, unit: str) -> None: ...
    def reset_failed(self, unit: str) -> None: ...
    def active_state(self, unit: str) -> str: ...
    def load_state(self, unit: str) -> str: ...
    def journal_tail(self, unit: str, lines: int) -> str: ...
    def running(self, pattern: str) -> list[str]:
        """The loaded units matching a glob that are active, activating or reloading."""
    def run_oneshot(self, unit: str) -> None:
        """Start a oneshot service and wait until it has run; SystemdError if it failed."""
    def start_slice(self, name: str, memory_max: int, tasks_max: int) -> None:
        """Start transient slice `name` with MemoryMax and TasksMax (bytes, tasks); it goes
        once stopped."""
    def run_later(self, name: str, after_seconds: int, argv: Sequence[str]) -> None:
        """Run `argv` once, `after_seconds` from now, as transient unit `name`; a timer of
        that name that is already waiting counts as scheduled."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class UserManager:
    """The real user manager: D-Bus for units and jobs, commands for timers and the journal."""

    @contextlib.contextmanager
    def _bus(self, what: str) -> Iterator[Any]:
        try:
            from pystemd.dbusexc import DBusBaseError
            from pystemd.dbuslib import DBus
        except ImportError as error:
            raise SystemdError(f"cannot {what}: pystemd is not installed ({error})") from error
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
        try:
            with DBus(user_mode=True) as bus:
                yield bus
        except (DBusBaseError, OSError) as error:
            raise SystemdError(f"cannot {what}: {_one_line(error)}") from error

    @staticmethod
    def _manager(bus: Any) -> Any:
        from pystemd.systemd1 import Manager as ManagerObject
        return ManagerObject(bus=bus, _autoload=True)

    @staticmethod
    def _unit(bus: Any, unit: str) -> Any:
        from pystemd.systemd1 import Unit
        return Unit(unit.encode(), bus=bus, _autoload=True)

    def reload(self) -> None:
        with self._bus("reload the user manager") as bus:
            self._manager(bus).Manager.Reload()

    def active_state(self, unit: str) -> str:
        with self._bus(f"read the state of {unit}") as bus:
            return _text(self._unit(bus, unit).Unit.ActiveState)

    def load_state(self, unit: str) -> str:
        with self._bus(f"read the state of {unit}") as bus:
            return _text(self._unit(bus, unit).Unit.LoadState)

    def start(self, unit: str) -> None:
        self._job("StartUnit", unit, want="active")

    def restart(self, unit: str) -> None:
        self._job("RestartUnit", unit, want="active")

    def stop(self, unit: str) -> None:
        self._job("StopUnit", unit, want="inactive")

    def reset_failed(self, unit: str) -> None:
        # systemd refuses it for a unit that is not failed: nothing to do then
        with contextlib.suppress(SystemdError), self._bus(f"reset {unit}") as bus:
            self._manager(bus).Manager.ResetFailedUnit(unit.encode())

    def _job(self, method: str, unit: str, want: str) -> None:
        """Queue a job, wait until systemd has finished it, then check where the unit landed."""
        with self._bus(f"{method} {unit}") as bus:
            manager = self._manager(bus)
            job = getattr(manager.Manager, method)(unit.encode(), b"replace")
            deadline = time.monotonic() + JOB_TIMEOUT
            while any(entry[4] == job for entry in manager.Manager.ListJobs()):
                if time.monotonic() > deadline:
                    raise SystemdError(f"{method} {unit} did not finish in {JOB_TIMEOUT:.0f}s")
                time.sleep(JOB_POLL)
            current = _text(self._unit(bus, unit).Unit.ActiveState)
        if current != want and not (want == "inactive" and current == "failed"):
            raise SystemdError(f"{unit} is {current or 'unknown'} after {method}, expected {want}")

    def running(self, pattern: str) -> list[str]:
        with self._bus(f"list the units {pattern}") as bus:
            units = self._manager(bus).Manager.ListUnitsByPatterns(RUNNING_STATES, [pattern.encode()])
        return sorted(_text(entry[0]) for entry in units)

    def run_oneshot(self, unit: str) -> None:
        self._job("StartUnit", unit, want="inactive")  # a oneshot is inactive (or failed) once run
        with self._bus(f"read the result of {unit}") as bus:
            result = _text(self._unit(bus, unit).Service.Result)
        if result != "success":
            raise SystemdError(f"{unit} failed ({result})")

    def journal_tail(self, unit: str, lines: int) -> str:
        result = run(["journalctl", "--user-unit", unit, "--lines", str(lines),
                      "--no-pager", "--output", "cat"], check=False)
        return result.stdout.strip()

    def start_slice(self, name: str, memory_max: int, tasks_max: int) -> None:
        # busctl, whose signature argument types the properties (systemd-run makes no slices)
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
        result = run(["busctl", "--user", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                      "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))",
                      name, "fail", "2", "MemoryMax", "t", str(memory_max), "TasksMax", "t", str(tasks_max),
                      "0"], check=False)
        if result.returncode != 0:
            raise SystemdError(f"cannot start {name}: {' '.join((result.stderr or result.stdout).split())}")
        deadline = time.monotonic() + JOB_TIMEOUT
        while self.active_state(name) != "active":
            if time.monotonic() > deadline:
                raise SystemdError(f"{name} did not start in {JOB_TIMEOUT:.0f}s")
            time.sleep(JOB_POLL)

    def run_later(self, name: str, after_seconds: int, argv: Sequence[str]) -> None:
        result = run(["systemd-run", "--user", "--collect", "--quiet", f"--unit={name}",
                      f"--on-active={max(after_seconds, 1)}s", "--timer-property=AccuracySec=100ms",
                      # unloaded once it has fired and its service is done, so the name is free
                      "--timer-property=RemainAfterElapse=no", *argv], check=False)
        if result.returncode != 0 and "already" not in result.stdout:
            raise SystemdError(f"cannot schedule {name}: {' '.join(result.stdout.split())}")


# The seam: unit tests replace this object, never the functions below.
manager: Manager = UserManager()


def reload() -> None:
    manager.reload()


def start(unit: str) -> None:
    manager.start(unit)


def restart(unit: str) -> None:
    manager.restart(unit)


def stop(unit: str) -> None:
    manager.stop(unit)


def reset_failed(unit: str) -> None:
    manager.reset_failed(unit)


def active_state(unit: str) -> str:
    return manager.active_state(unit)


def load_state(unit: str) -> str:
    return manager.load_state(unit)


def journal_tail(unit: str, lines: int = 20) -> str:
    return manager.journal_tail(unit, lines)


def start_slice(name: str, memory_max: int, tasks_max: int) -> None:
    manager.start_slice(name, memory_max, tasks_max)


def run_later(name: str, after_seconds: int, argv: Sequence[str]) -> None:
    manager.run_later(name, after_seconds, argv)


def running(pattern: str) -> list[str]:
    return manager.running(pattern)


def run_oneshot(unit: str) -> None:
    manager.run_oneshot(unit)


# --- unit files and links (plain files; systemd reads them on reload) ------------------------

def unit_file(name: str) -> Path:
    return paths.SYSTEMD_UNITS / name


def write_unit(name: str, text: str) -> bool:
    """True when the file changed (the manager then needs a reload)."""
    return state.write_if_changed(unit_file(name), text)


def remove_unit(name: str) -> None:
    for target in ("sockets.target", "default.target"):
        disable(name, target)
    with contextlib.suppress(FileNotFoundError):
        unit_file(name).unlink()


def link(link_name: Path, target: str) -> None:
    """An alias or `enable` symlink, made atomically."""
    state.symlink_atomic(target, link_name)


def link_target(link_name: Path) -> str | None:
    """Where a symlink points, or None when there is none."""
    try:
        return os.readlink(link_name)
    except OSError:  # none there, or not a symlink
        return None


def _wants(target: str) -> Path:
    return paths.SYSTEMD_UNITS / f"{target}.wants"


def enable(unit: str, target: str) -> None:
    link(_wants(target) / unit, f"../{unit}")


def disable(unit: str, target: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (_wants(target) / unit).unlink()


def enabled(target: str) -> list[str]:
    """The units `target` wants through enable links, sorted."""
    directory = _wants(target)
    return sorted(entry.name for entry in directory.iterdir()) if directory.is_dir() else []
