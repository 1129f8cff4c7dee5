"""Egress: whether an app's containers reach the outside network, and how.

With egress on (the default), every container of an app (web, process types, cron, deploy
tasks, `podku run`) gets a network namespace of its own with one slirp4netns, started
without the host's loopback (`--network=slirp4netns:allow_host_loopback=false`, as a
build's RUN steps get): outbound TCP, UDP and DNS (slirp's 10.0.2.3 forwards to the host's
resolver) like any machine on the internet, but not 10.0.2.2, slirp's way to the host's
127.0.0.1, and no address at which another container could be reached: another app's
containers (every one is 10.0.2.100 in a namespace of its own) are not on any network this
one is on. A $PORT app's bridge enters that namespace as before. With egress off a container
has no network at all (`--network=none`), as every container had before issue 16.

Why one slirp4netns per container rather than one shared namespace (a podman bridge network
per app, `isolate=true`, in rootless podman's one namespace): measured on a test host
(benchmarks/egress_options.py, README "Egress"), a slirp4netns adds about 0.5 MiB PSS per
running container and nothing to its start, while the shared namespace saved about 0.3 MiB
but added 0.2-0.3 s to every container start (an idle app's wake-up), needs the CNI plugins,
iptables and a writable /proc/sys/net in the user namespace, and gave containers 8.8.8.8 as
their resolver on a host whose resolver listens on its loopback (systemd-resolved).

An app's own setting (`network:set APP egress on|off`) overrides the host's default
(`network:set --global egress on|off`, on unless set). A release records the setting in
force when it was made, so a change is a new release; a rollback, like every new release,
takes today's setting (an app isolated stays isolated)."""

from podku.errors import UsageError
from podku.host import paths, records, state

FILE_NAME = "network.json"
DEFAULT_EGRESS = True
SWITCH = {"on": True, "off": False}
SETTINGS = ("egress",)
NONE = "none"
EGRESS = "slirp4netns:allow_host_loopback=false"
RECORD = records.record({"egress": records.Field(records.boolean, required=True)})


class NetworkError(UsageError):
    pass


def setting_name(text: str) -> str:
    if text not in SETTINGS:
        raise NetworkError(f"unknown setting {text[:40]!r}: network:set knows {', '.join(SETTINGS)}")
    return text


def parse_switch(text: str) -> bool:
    if text not in SWITCH:
        raise NetworkError(f"invalid value {text[:40]!r}: use on or off")
    return SWITCH[text]


def describe(egress: bool) -> str:
    return "on" if egress else "off"


# --- stored settings ---------------------------------------------------------------------

def _app_file(app: str):
    return paths.AppPaths(app).root / FILE_NAME


def _global_file():
    return paths.CONFIG / FILE_NAME


def app_setting(app: str) -> bool | None:
    return records.read(_app_file(app), RECORD, {}).get("egress")


def global_default() -> bool:
    return records.read(_global_file(), RECORD, {}).get("egress", DEFAULT_EGRESS)


def egress(app: str) -> bool:
    """Whether a new release of `app` gets outbound network."""
    own = app_setting(app)
    return own if own is not None else global_default()


def save_app(app: str, value: bool | None) -> None:
    if value is None:
        _app_file(app).unlink(missing_ok=True)
    else:
        _save(_app_file(app), value)


def save_global(value: bool) -> None:
    _save(_global_file(), value)


def _save(path, value: bool) -> None:
    state.write_json(path, records.validate({"egress": value}, RECORD, path))


# --- in the units ------------------------------------------------------------------------

def network_mode(has_egress: bool) -> str:
    """`podman run --network=` of every container of a release."""
    return EGRESS if has_egress else NONE
