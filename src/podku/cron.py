"""app.json `cron` entries as systemd user timers that run a one-off container of the live
release: `[{"command": "python3 task.py", "schedule": "*/5 * * * *"}, ...]`.

Entry I (1-based, in app.json order) is APP-cron@I.timer, which starts APP-cron@I.service, a
oneshot: systemd never starts it again while a run is still going, so a run never overlaps
itself. Both files are derived by `reconcile` from the live release's app.json, image and
env file, so the timers follow the live release on every swap and rollback and come back at
boot (enable links in timers.target.wants). A schedule is a 5-field cron expression (numbers,
`*`, `a-b`, `a,b`, `*/n`, `a-b/n`) or @hourly/@daily/@weekly/@monthly/@yearly, converted to
systemd's OnCalendar=; day-of-month and day-of-week may not both be restricted (cron ORs
them, systemd ANDs them)."""

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from podku import apps, naming, output
from podku.errors import UsageError
from podku.host import paths, systemd, templates
from podku.image import procfile
from podku.releases import Release

MAX_ENTRIES = 20
MAX_SCHEDULE_CHARS = 100
RUN_TIMEOUT = 6 * 3600  # seconds a run may take before systemd stops it
TIMERS_TARGET = "timers.target"
MACROS = {"@hourly": "hourly", "@daily": "daily", "@midnight": "daily", "@weekly": "weekly",
          "@monthly": "monthly", "@yearly": "yearly", "@annually": "yearly"}
# (name, lowest, highest) of the five fields
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ITEM = re.compile(r"(\*|[0-9]{1,2}(?:-[0-9]{1,2})?)(?:/([0-9]{1,2}))?")


class CronInvalid(UsageError):
    pass


@dataclass(frozen=True)
class Entry:
    id: int
    schedule: str
    on_calendar: str
    argv: list[str]
    command: str


# --- app.json ------------------------------------------------------------------------------

def entries(app_json: dict[str, Any]) -> list[Entry]:
    """The cron entries of an app.json, each checked; CronInvalid names the first bad one."""
    section = app_json.get("cron")
    if section is None:
        return []
    if not isinstance(section, list) or not all(isinstance(item, dict) for item in section):
        raise CronInvalid("app.json cron must be a list of objects")
    if len(section) > MAX_ENTRIES:
        raise CronInvalid(f"app.json cron has more than {MAX_ENTRIES} entries")
    return [entry(number, item) for number, item in enumerate(section, 1)]


def entry(number: int, item: dict[str, Any]) -> Entry:
    where = f"app.json cron entry {number}"
    unknown = sorted(set(item) - {"command", "schedule"})
    if unknown:
        raise CronInvalid(f"{where}: unknown key {str(unknown[0])[:40]!r}")
    try:
        argv = procfile.split_command(item.get("command"), f"{where}: command")
    except UsageError as error:
        raise CronInvalid(str(error)) from None
    schedule = item.get("schedule")
    calendar = on_calendar(schedule, where)
    return Entry(number, str(schedule), calendar, argv, str(item["command"]))


def on_calendar(schedule: object, where: str = "cron schedule") -> str:
    """A cron schedule as systemd's OnCalendar= value, or CronInvalid."""
    if not isinstance(schedule, str):
        raise CronInvalid(f"{where}: schedule must be a string, not {type(schedule).__name__}")
    if len(schedule) > MAX_SCHEDULE_CHARS or not schedule.isascii() or not schedule.isprintable():
        raise CronInvalid(f"{where}: invalid schedule {schedule[:40]!r}")
    if schedule.strip() in MACROS:
        return MACROS[schedule.strip()]
    fields = schedule.split()
    if len(fields) != 5:
        raise CronInvalid(f"{where}: invalid schedule {schedule!r}: expected 5 fields "
                          "(minute hour day-of-month month day-of-week) or @daily and the like")
    values = [_field(text, spec, where) for text, spec in zip(fields, FIELDS, strict=False)]
    minute, hour, day, month, weekday = values
    if day is not None and weekday is not None:
        raise CronInvalid(f"{where}: schedule {schedule!r} restricts both day of month and day of week: "
                          "podku supports one of them")
    days = ",".join(sorted({DAY_NAMES[n] for n in weekday}, key=DAY_NAMES.index)) + " " if weekday else ""
    return f"{days}*-{_list(month)}-{_list(day)} {_list(hour)}:{_list(minute)}:00"


def _field(text: str, spec: tuple[str, int, int], where: str) -> list[int] | None:
    """The values a field allows, sorted; None for `*` (every value)."""
    name, low, high = spec
    if text == "*":
        return None
    allowed: set[int] = set()
    for item in text.split(","):
        found = ITEM.fullmatch(item)
        if found is None:
            raise CronInvalid(f"{where}: invalid {name} {text[:30]!r}")
        span, step = found.group(1), int(found.group(2) or 1)
        first, _, last = span.partition("-")
        start, end = (low, high) if span == "*" else (int(first), int(last or first))
        if found.group(2) and not last and span != "*":
            end = high  # `a/n`: from a, every n
        if not (low <= start <= end <= high) or step < 1:
            raise CronInvalid(f"{where}: {name} {item!r} is outside {low}-{high}")
        allowed |= set(range(start, end + 1, step))
    return sorted(allowed)


def _list(values: list[int] | None) -> str:
    return "*" if values is None else ",".join(f"{value:02d}" for value in values)


# --- units ----------------------------------------------------------------------------------

def service(app: str, entry_id: int) -> str:
    return naming.cron_unit(app, entry_id, "service")


def timer(app: str, entry_id: int) -> str:
    return naming.cron_unit(app, entry_id, "timer")


def _files(app: str) -> list[str]:
    """The cron unit files the app has now."""
    pattern = naming.cron_unit_pattern(app)
    directory = paths.SYSTEMD_UNITS
    return sorted(p.name for p in directory.glob(naming.cron_unit(app, "*", "*")) if pattern.fullmatch(p.name)) \
        if directory.is_dir() else []


def render(release: Release, item: Entry, env_file: str) -> dict[str, str]:
    values = dict(app=release.app, release=release.id, id=item.id, schedule=item.schedule,
                  on_calendar=item.on_calendar, image=release.image, env_file=env_file,
                  container=naming.cron_container(release.app, item.id), timeout=RUN_TIMEOUT,
                  command=procfile.exec_args(item.argv),
                  extra_flags=release.podman_flags(), network=release.network)
    return {service(release.app, item.id): templates.render("cron.service.j2", **values),
            timer(release.app, item.id): templates.render("cron.timer.j2", **values)}


def follow_live(app: apps.App, live: Release | None) -> list[str]:
    """The app's timers are exactly the live release's cron entries, each active."""
    wanted: dict[str, str] = {}
    if live is not None:
        env_file = str(app.paths.env_file(live.id))  # written with the release's units
        try:
            for item in entries(live.app_json):
                wanted.update(render(live, item, env_file))
        except CronInvalid as error:  # checked at deploy: only an old record can get here
            output.warn(f"{app.name}: {error}")
    fixed, changed = [], []
    for name in _files(app.name):
        if name not in wanted:
            _remove(name)
            fixed.append(f"removed {name}")
    for name, text in wanted.items():
        if systemd.write_unit(name, text):
            changed.append(name)
    timers = sorted(name for name in wanted if name.endswith(".timer"))
    for name in timers:
        if systemd.link_target(_wants(name)) is None:
            systemd.enable(name, TIMERS_TARGET)
    if fixed or changed:
        systemd.reload()
    for name in timers:
        if name in changed or systemd.active_state(name) != "active":
            _start_timer(name, restart=name in changed)
            fixed.append(f"started {name}")
    return fixed


def _wants(unit: str):
    return paths.SYSTEMD_UNITS / f"{TIMERS_TARGET}.wants" / unit


def _start_timer(name: str, restart: bool) -> None:
    try:
        (systemd.restart if restart else systemd.start)(name)
    except systemd.SystemdError as error:
        output.warn(f"could not start {name}: {error}")


def _remove(name: str) -> None:
    if name.endswith(".timer") and systemd.load_state(name) not in ("not-found", ""):
        with contextlib.suppress(systemd.SystemdError):
            systemd.stop(name)
    systemd.disable(name, TIMERS_TARGET)
    with contextlib.suppress(FileNotFoundError):
        systemd.unit_file(name).unlink()


def remove_all(app: str) -> None:
    """Every timer of the app, stopped and gone (apps:destroy)."""
    for name in _files(app):
        _remove(name)
    systemd.reload()


# --- commands -------------------------------------------------------------------------------

def find(app: apps.App, live: Release, text: str) -> Entry:
    for item in entries(live.app_json):
        if text.isascii() and text.isdigit() and len(text) <= 3 and int(text) == item.id:
            return item
    raise CronInvalid(f"{app.name} has no cron entry {text[:40]!r}: `cron:list {app.name}` lists them")


def run_now(app: apps.App, item: Entry) -> None:
    """Run an entry now, through its service: if a run is going on, this waits for it."""
    systemd.run_oneshot(service(app.name, item.id))
