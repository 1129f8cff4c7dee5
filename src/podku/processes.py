"""A release's process types as systemd units, and how many of each run (the scale).

Unit names, for app APP and release N:
  APP-rN.service            web instance 1: the socket's own service, started by the first
                            connection (socket activation), as before process types existed;
                            with web=2 or more reconcile starts it (systemd would not: the
                            socket is in use by the other instances)
  APP-rN-web@I.service      web instances 2..: `Sockets=APP-rN.socket`, so every instance
                            accepts on the one listening socket and the kernel spreads the
                            connections (fd-3 apps only; a $PORT app runs one web instance)
  APP-rN-TYPE@I.service     instance I of every other Procfile type (worker, clock, ...)
One template file per type and release (APP-rN-TYPE@.service), rendered from
units/process.service.j2 with the release's image, env file and the Procfile's argv.

The scale lives in the app record (`scale`, only what `ps:scale` set; every type defaults to
1), so it survives deploys, config changes, rollbacks and reboots. `reconcile` derives from
the record which instances of the live release run, and their enable links in
default.target.wants (so a boot starts them): it starts the missing ones first, then stops
what is not wanted, so a new release's workers start after its web swap and the old ones get
SIGTERM (podman's stop timeout) right after: the overlap lasts until they have exited. The
old release's extra web instances keep draining until the release is retired, like its
first. Callers hold the app's lock."""

import contextlib
import re

from podku import apps, naming, output
from podku.errors import UsageError
from podku.host import systemd, templates
from podku.image import procfile
from podku.releases import Release

MAX_SCALE = 10  # instances of one process type
DEFAULT_SCALE = 1
WEB, RELEASE = procfile.WEB, procfile.RELEASE
WANTS_TARGET = "default.target"
CRON = "cron"  # `logs APP -p cron`: the app's cron runs, unless the Procfile has a cron type


class ScaleInvalid(UsageError):
    pass


# --- names ------------------------------------------------------------------------------

def types(release: Release) -> list[str]:
    """The release's process types: web first, then the Procfile's others in file order."""
    return [WEB] + [name for name in release.processes if name not in (WEB, RELEASE)]


def template(release: Release, process_type: str) -> str:
    return naming.process_unit(release.app, release.id, process_type, "")


def instance(release: Release, process_type: str, number: int) -> str:
    if process_type == WEB and number == 1:
        return release.web_unit
    return naming.process_unit(release.app, release.id, process_type, number)


def unit_files(release: Release) -> list[str]:
    """The template files a release has (or would have)."""
    wanted = [name for name in types(release) if name != WEB or not release.bridged]
    return [template(release, name) for name in wanted]


def instance_pattern(app: str) -> re.Pattern[str]:
    return naming.process_unit_pattern(app)


def web_command(release: Release) -> str:
    """The Procfile's web command as ExecStart arguments ('' keeps the image's command)."""
    argv = release.processes.get(WEB)
    return procfile.exec_args(argv) if argv else ""


# --- units --------------------------------------------------------------------------------

def install_units(release: Release, values: dict) -> None:
    """Write the release's template units beside its socket and web units (inert)."""
    for name in types(release):
        if name == WEB and release.bridged:
            continue  # a $PORT or idle-stopping app has one web instance, behind its bridge
        command = web_command(release) if name == WEB else procfile.exec_args(release.processes[name])
        text = templates.render("process.service.j2", **{**values, "command": command},
                                type=name, web=name == WEB)
        systemd.write_unit(template(release, name), text)


def forget(release: Release) -> None:
    """Stop the release's process instances and remove their links and templates."""
    for unit in owned(release.app, systemd.running(naming.process_unit(release.app, release.id, "*", "*")), [release]):
        _stop(unit)
    for link in owned(release.app, systemd.enabled(WANTS_TARGET), [release]):
        systemd.disable(link, WANTS_TARGET)
    for name in unit_files(release):
        with contextlib.suppress(FileNotFoundError):
            systemd.unit_file(name).unlink()


def owned(app: str, units: list[str], every: list[Release]) -> dict[str, tuple[int, str]]:
    """The units among `units` that are instances of these releases: {unit: (release, type)}.
    Names are checked against the releases' own types: another app may be called APP-r1-x."""
    known = {(release.id, name) for release in every for name in types(release)}
    found = {}
    for unit in units:
        match = instance_pattern(app).fullmatch(unit)
        if match and (int(match.group(1)), match.group(2)) in known:
            found[unit] = (int(match.group(1)), match.group(2))
    return found


def _stop(unit: str) -> None:
    systemd.stop(unit)
    systemd.reset_failed(unit)


# --- scale --------------------------------------------------------------------------------

def scale_of(app: apps.App, release: Release) -> dict[str, int]:
    """How many instances of each of the release's types the record asks for."""
    return {name: int(app.scale.get(name, DEFAULT_SCALE)) for name in types(release)}


def parse_scale(release: Release, assignments: list[str]) -> dict[str, int]:
    """`TYPE=N ...` checked against the release: every word, before anything changes."""
    changes: dict[str, int] = {}
    if release.static and assignments:
        raise ScaleInvalid(f"{release.app} is a static site served by Caddy: no process to scale")
    for text in assignments:
        name, sep, number = text.partition("=")
        if not sep:
            raise ScaleInvalid(f"invalid scale {text[:40]!r}: expected TYPE=N")
        procfile.type_name(name)
        if name not in types(release):
            raise procfile.UnknownProcessType(
                f"unknown process type {name!r}: release {release.id} of {release.app} has "
                + ", ".join(types(release)))
        if not (number.isascii() and number.isdigit() and len(number) <= 3 and int(number) <= MAX_SCALE):
            raise ScaleInvalid(f"invalid scale for {name}: {number[:20]!r} (a number from 0 to {MAX_SCALE})")
        if name == WEB and release.bridged and int(number) > 1:
            raise ScaleInvalid(f"{release.app} binds $PORT or has an idle timeout: it runs one web instance; "
                               "an app that takes its socket as fd 3 can scale web up to " + str(MAX_SCALE))
        changes[name] = int(number)
    return changes


def wanted_units(app: apps.App, release: Release) -> list[str]:
    """The instances reconcile keeps running, web instance 1 aside (socket-activated). A
    static site has none: Caddy serves its files."""
    if app.stopped or release.static:
        return []
    units = []
    for name, count in scale_of(app, release).items():
        if name == WEB and release.bridged:
            count = min(count, 1)
        first = 2 if name == WEB else 1
        units += [instance(release, name, number) for number in range(first, count + 1)]
    return units


# --- reconcile ------------------------------------------------------------------------------

def run_at_scale(app: apps.App, live: Release | None, every: list[Release]) -> list[str]:
    """Make the running instances and their enable links match the record (see above)."""
    wanted = wanted_units(app, live) if live is not None else []
    running = owned(app.name, systemd.running(naming.process_unit(app.name, "*", "*", "*")), every)
    fixed = _links(app, wanted, every)
    if fixed:
        systemd.reload()
    fixed += _start(sorted(set(wanted) - set(running)))
    for unit, (release_id, process_type) in sorted(running.items()):
        is_live = live is not None and release_id == live.id
        if unit not in wanted and (is_live or process_type != WEB):  # old web: retired later
            _stop(unit)
            fixed.append(f"stopped {unit}")
    if live is None or live.static:
        return fixed
    if app.stopped or scale_of(app, live)[WEB] == 0:
        fixed += _stop_first_web(live)
    elif any(unit.startswith(f"{live.unit}-{WEB}@") for unit in wanted):
        fixed += _start_first_web(live)
    return fixed


def _links(app: apps.App, wanted: list[str], every: list[Release]) -> list[str]:
    current = set(owned(app.name, systemd.enabled(WANTS_TARGET), every))
    fixed = []
    for unit in sorted(current - set(wanted)):
        systemd.disable(unit, WANTS_TARGET)
        fixed.append(f"disabled {unit}")
    for unit in sorted(set(wanted) - current):
        systemd.link(systemd.unit_file(f"{WANTS_TARGET}.wants") / unit, f"../{unit.split('@')[0]}@.service")
        fixed.append(f"enabled {unit}")
    return fixed


def _start(units: list[str]) -> list[str]:
    fixed = []
    for unit in units:
        try:
            systemd.start(unit)
        except systemd.SystemdError as error:
            output.warn(f"could not start {unit}: {error}")
            continue
        fixed.append(f"started {unit}")
    return fixed


def _start_first_web(live: Release) -> list[str]:
    """With web@2.. accepting on the socket, systemd sees the socket in use and never
    activates instance 1 by itself (seen after a reboot): start it with them."""
    if systemd.active_state(live.web_unit) in ("active", "activating"):
        return []
    return _start([live.web_unit])


def _stop_first_web(live: Release) -> list[str]:
    if systemd.active_state(live.web_unit) not in ("active", "activating"):
        return []
    _stop(live.web_unit)
    return [f"stopped {live.web_unit}"]


# --- reports and logs ------------------------------------------------------------------------

def report(app: apps.App, release: Release) -> list[tuple[str, str]]:
    """(unit, state) of every instance the scale names, web instance 1 first."""
    rows: list[tuple[str, str]] = []
    if release.static:
        return rows
    for name, count in scale_of(app, release).items():
        for number in range(1, count + 1):
            unit = instance(release, name, number)
            rows.append((unit, systemd.active_state(unit) or "unknown"))
    return rows


def log_units(app: str, every: list[Release], process_type: str | None = None) -> list[str]:
    """journalctl --user-unit arguments (globs only after `@`, so never another app's) for one
    process type's logs, or every unit of the app's."""
    if process_type is None:
        instances = [naming.process_unit(app, r.id, name, "*") for r in every for name in types(r)]
        return [unit for r in every for unit in r.units] + instances \
            + ([naming.cron_unit(app, "*", "service")] if every else [])
    procfile.type_name(process_type)
    if process_type == CRON and not any(CRON in r.processes for r in every):
        return [naming.cron_unit(app, "*", "service")]
    if process_type == WEB:
        return [unit for r in every for unit in (*r.units, naming.process_unit(app, r.id, WEB, "*"))]
    units = [naming.process_unit(app, r.id, process_type, "*") for r in every if process_type in r.processes]
    if not units or process_type == RELEASE:
        raise procfile.UnknownProcessType(f"unknown process type {process_type!r}: no release of {app} has it")
    return units


def run_state(live: Release) -> str:
    """Whether the live release runs, sleeps (idle: no container, its socket listening) or is stopped."""
    if live.static:
        return "static site (Caddy serves release's files, no container)"
    app_state = systemd.active_state(live.app_unit)
    if app_state in ("active", "activating", "reloading"):
        return "running"
    if systemd.active_state(live.socket_unit) == "active":
        return "idle (no container; the next request starts it)" if live.idle_timeout else "stopped (socket listening)"
    return f"stopped ({app_state or 'unknown'})"
