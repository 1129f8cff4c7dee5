"""The deploy user's systemd, spoken to over its D-Bus (pystemd), and its unit files."""

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pystemd.dbuslib import DBus
from pystemd.systemd1 import Manager, Unit

from podku import paths, state
from podku.errors import PodkuError

JOB_TIMEOUT = 120.0


@contextlib.contextmanager
def _bus() -> Iterator[DBus]:
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    with DBus(user_mode=True) as bus:
        yield bus


def _manager(bus: DBus) -> Manager:
    return Manager(bus=bus, _autoload=True)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def reload() -> None:
    with _bus() as bus:
        _manager(bus).Manager.Reload()


def active_state(unit: str) -> str:
    with _bus() as bus:
        return _text(Unit(unit.encode(), bus=bus, _autoload=True).Unit.ActiveState)


def load_state(unit: str) -> str:
    with _bus() as bus:
        return _text(Unit(unit.encode(), bus=bus, _autoload=True).Unit.LoadState)


def main_pid(service: str) -> int:
    with _bus() as bus:
        return int(Unit(service.encode(), bus=bus, _autoload=True).Service.MainPID)


def start(unit: str) -> None:
    _job("StartUnit", unit, want="active")


def restart(unit: str) -> None:
    _job("RestartUnit", unit, want="active")


def stop(unit: str) -> None:
    _job("StopUnit", unit, want="inactive")


def reset_failed(unit: str) -> None:
    with _bus() as bus, contextlib.suppress(Exception):
        _manager(bus).Manager.ResetFailedUnit(unit.encode())


def _job(method: str, unit: str, want: str) -> None:
    """Queue a job, wait until systemd has finished it, then check where the unit landed."""
    with _bus() as bus:
        manager = _manager(bus)
        job = getattr(manager.Manager, method)(unit.encode(), b"replace")
        deadline = time.monotonic() + JOB_TIMEOUT
        while _job_pending(manager, job):
            if time.monotonic() > deadline:
                raise PodkuError(f"{method} {unit} did not finish in {JOB_TIMEOUT:.0f}s")
            time.sleep(0.05)
        current = _text(Unit(unit.encode(), bus=bus, _autoload=True).Unit.ActiveState)
    if current != want and not (want == "inactive" and current == "failed"):
        raise PodkuError(f"{unit} is {current or 'unknown'} after {method}, expected {want}")


def _job_pending(manager: Manager, job_path) -> bool:
    return any(entry[4] == job_path for entry in manager.Manager.ListJobs())


def unit_file(name: str) -> Path:
    return paths.SYSTEMD_UNITS / name


def write_unit(name: str, text: str) -> None:
    state.write_atomic(unit_file(name), text)


def remove_unit(name: str) -> None:
    for target in ("sockets.target", "default.target"):
        disable(name, target)
    with contextlib.suppress(FileNotFoundError):
        unit_file(name).unlink()


def link(link_name: Path, target: str) -> None:
    """An alias or `enable` symlink, made atomically (systemd reads it on reload)."""
    state.symlink_atomic(target, link_name)


def enable(unit: str, target: str) -> None:
    link(paths.SYSTEMD_UNITS / f"{target}.wants" / unit, f"../{unit}")


def disable(unit: str, target: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (paths.SYSTEMD_UNITS / f"{target}.wants" / unit).unlink()


def journal_tail(unit: str, lines: int = 20) -> str:
    from podku.run import run
    result = run(["journalctl", "--user-unit", unit, "--lines", str(lines),
                  "--no-pager", "--output", "cat"], check=False)
    return result.stdout.strip()
