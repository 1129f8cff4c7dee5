"""Make everything that says which release serves agree with the one record of it: the app
record's `live_release`. The order of the steps (socket, enable, symlink, links, processes,
outcomes, retire) and why it heals a cut-off swap: ARCHITECTURE.md, "The swap, step by
step". The socket listens before the symlink points at it, so no connection meets a dead
path. A swap runs these steps right after writing the record; `podku doctor`, every deploy,
every retirement and the boot unit run them on their own. Callers hold the app's lock."""

import sys
from collections.abc import Callable

from podku import apps, cron, naming, output, processes, releases, staticsite
from podku.errors import PodkuError
from podku.host import state, systemd
from podku.releases import Outcome, Release

STEPS = ("enable", "symlink", "links", "outcomes", "retire")
SOCKETS_TARGET = "sockets.target"

StepDone = Callable[[str], None]


class ReconcileError(PodkuError):
    pass


def _no_hook(step: str) -> None:
    pass


def reconcile(app: apps.App, after_step: StepDone = _no_hook) -> list[str]:
    """Bring the app in line with its record; returns what had to be fixed, in words."""
    every = releases.all_of(app.name)
    live = _live_release(app, every)
    fixed: list[str] = []
    if live is not None and not app.stopped and not live.static:
        fixed += _listening(live)
    fixed += _enable_link(app, live)
    after_step("enable")
    fixed += _stable_symlink(app, live, every)
    after_step("symlink")
    fixed += _alias_and_other_links(app, live)
    after_step("links")
    fixed += processes.run_at_scale(app, live, every)  # after the symlink: workers follow the web swap
    fixed += _stopped(app, live)
    fixed += cron.follow_live(app, live)
    fixed += _outcomes(app, every)
    after_step("outcomes")
    fixed += _schedule_retirement(app, every)
    after_step("retire")
    return fixed


def _live_release(app: apps.App, every: list[Release]) -> Release | None:
    if app.live_release is None:
        return None
    for release in every:
        if release.id == app.live_release:
            return release
    raise ReconcileError(f"{app.name}'s record names release {app.live_release} as live, "
                         "but that release has no record")


def has_units(release: Release) -> bool:
    """Whether anything of the release is left to retire: its units, or a static one's files."""
    return staticsite.has_tree(release) or any(systemd.unit_file(unit).exists() for unit in release.units)


def _listening(live: Release) -> list[str]:
    """The record's release passed its health check before the record named it: starting its
    socket is what sockets.target does for the live release at every boot."""
    current = systemd.active_state(live.socket_unit)
    if current == "active":
        return []
    if not systemd.unit_file(live.socket_unit).exists():
        raise ReconcileError(f"release {live.id} of {live.app} is live but its units are gone: "
                             f"`podku ps:restart {live.app}` makes a new release from its image")
    systemd.start(live.socket_unit)
    return [f"started the socket of live release {live.id} (it was {current or 'unknown'})"]


def _release_sockets(app: apps.App) -> set[str]:
    pattern = naming.release_socket_pattern(app.name)
    return {unit for unit in systemd.enabled(SOCKETS_TARGET) if pattern.fullmatch(unit)}


def _stopped(app: apps.App, live: Release | None) -> list[str]:
    """`ps:stop`: the live release's socket does not listen (processes.run_at_scale stopped the rest)."""
    if live is None or live.static or not app.stopped:
        return []
    if systemd.active_state(live.socket_unit) not in ("active", "activating"):
        return []
    systemd.stop(live.socket_unit)
    return [f"stopped {live.socket_unit} ({app.name} is stopped: `podku ps:start {app.name}`)"]


def _enable_link(app: apps.App, live: Release | None) -> list[str]:
    if live is None or live.static or app.stopped or live.socket_unit in _release_sockets(app):
        return []
    systemd.enable(live.socket_unit, SOCKETS_TARGET)
    return [f"enabled {live.socket_unit}"]


def _stable_symlink(app: apps.App, live: Release | None, every: list[Release]) -> list[str]:
    """The static route first when a static release serves; when none does, its link goes
    only after the stable socket names what serves instead."""
    serves_files = live is not None and live.static and not app.stopped
    fixed = _serve_files(live) if serves_files and live is not None else []
    fixed += _socket_symlink(app, live, every)
    return fixed if serves_files else fixed + staticsite.unpoint(app.name)


def _serve_files(live: Release) -> list[str]:
    try:
        return staticsite.point(live)
    except PodkuError as error:
        raise ReconcileError(f"release {live.id} of {live.app} is live but its files cannot be served: {error}; "
                             f"`podku ps:rebuild {live.app}` builds it again") from None


def _draining_socket(app: apps.App, current: str | None, every: list[Release]) -> bool:
    """Whether the stable socket names a container release still draining: a request that
    matched the app route just before a switch to a static site dials it."""
    return any(current == str(app.paths.release_socket(release.id)) for release in every
               if release.id != app.live_release and not release.static and has_units(release))


def _socket_symlink(app: apps.App, live: Release | None, every: list[Release]) -> list[str]:
    link = app.paths.stable_socket
    current = systemd.link_target(link)
    if live is None:
        if current is None:
            return []
        link.unlink()
        return [f"removed the stable socket link (it pointed at {current}; nothing is live)"]
    wanted = str(staticsite.no_socket(app.name) if live.static else app.paths.release_socket(live.id))
    if current == wanted or (live.static and _draining_socket(app, current, every)):
        return []
    state.symlink_atomic(wanted, link)
    return [f"pointed the stable socket at release {live.id} (it pointed at {current or 'nothing'})"]


def _alias_and_other_links(app: apps.App, live: Release | None) -> list[str]:
    fixed = []
    alias = systemd.unit_file(f"{app.name}.service")
    current = systemd.link_target(alias)
    wanted = live.app_unit if live is not None and not live.static else None
    if current != wanted:
        if wanted is None:
            alias.unlink()
        else:
            systemd.link(alias, wanted)
        fixed.append(f"{app.name}.service now aliases {wanted or 'nothing'} (it was {current or 'nothing'})")
    for unit in sorted(_release_sockets(app) - ({live.socket_unit} if live is not None and not app.stopped else set())):
        systemd.disable(unit, SOCKETS_TARGET)
        fixed.append(f"disabled {unit}")
    if fixed:
        systemd.reload()
    return fixed


def wanted_outcome(release: Release, live_id: int | None, with_units: bool) -> Outcome:
    """The outcome a release must have, given the record and whether its units exist."""
    if release.id == live_id:
        return Outcome.LIVE
    if release.outcome in (Outcome.LIVE, Outcome.DRAINING):
        return Outcome.DRAINING if with_units else Outcome.RETIRED
    if release.outcome == Outcome.PENDING:
        return Outcome.FAILED  # callers hold the lock: no deploy of it is under way
    return release.outcome


def _outcomes(app: apps.App, every: list[Release]) -> list[str]:
    fixed = []
    for release in every:
        wanted = wanted_outcome(release, app.live_release, has_units(release))
        if wanted != release.outcome:
            releases.save(release.with_outcome(wanted))
            fixed.append(f"release {release.id} was {release.outcome}, is {wanted}")
    return fixed


def retire_timer(app: str, release_id: int) -> str:
    return naming.retire_unit(app, release_id)


def _schedule_retirement(app: apps.App, every: list[Release]) -> list[str]:
    """Retire every release but the live one once in-flight requests had time to finish,
    without holding anything up: a transient timer runs `podku ps:retire` later."""
    scheduled = []
    for release in every:
        if release.id == app.live_release or not has_units(release):
            continue
        timer = retire_timer(app.name, release.id)
        if systemd.active_state(f"{timer}.timer") == "active":
            continue  # already waiting to fire: the state right after every swap
        argv = [sys.executable, "-m", "podku", "ps:retire", app.name, str(release.id)]
        try:
            systemd.run_later(timer, app.health_checks.wait_to_retire, argv)
        except systemd.SystemdError as error:
            output.warn(f"could not schedule the retirement of release {release.id}: {error}")
            continue
        scheduled.append(release.id)
    return [f"release {release_id} still has units: its retirement is scheduled" for release_id in scheduled]


def doctor(names: list[str], quiet: bool = False) -> None:
    """`podku doctor`: reconcile each app under its lock and say what was fixed."""
    failed = []
    for name in names:
        try:
            with apps.lock(name):
                fixed = reconcile(apps.load(name))
        except PodkuError as error:
            output.warn(f"{name}: {error}")
            failed.append(name)
            continue
        if fixed or not quiet:
            output.step(f"{name}: " + ("fixed" if fixed else "nothing to fix"))
        for line in fixed:
            output.detail(line)
    if failed:
        raise ReconcileError("could not reconcile " + ", ".join(failed))
