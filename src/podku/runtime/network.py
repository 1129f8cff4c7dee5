"""Egress: whether an app's containers reach the outside network, and the network they get.

With egress on (the default), every container of an app (web, process types, cron, deploy
tasks, `podku run`) joins the app's own podman network, `podku-APP`: a bridge created with
`isolate=true` inside rootless podman's one network namespace, whose single slirp4netns
(without the host's loopback) carries every app's outbound connections. Each container
keeps a network namespace of its own (a $PORT app's bridge still enters it); the bridge
reaches other containers of the same app only, never another app's (the CNI firewall's
same-bridge ingress policy); slirp4netns refuses 10.0.2.2, its path to the host's
127.0.0.1. With egress off a container has no network at all (`--network=none`), as every
container had before issue 16.

An app's own setting (`network:set APP egress on|off`) overrides the host's default
(`network:set --global egress on|off`, on unless set). A release records the setting in
force when it was made, so a change is a new release; a rollback, like every new release,
takes today's setting (an app isolated stays isolated)."""

from podku import naming, output
from podku.errors import PodkuError, UsageError
from podku.host import paths, podman, records, state

FILE_NAME = "network.json"
DEFAULT_EGRESS = True
SWITCH = {"on": True, "off": False}
SETTINGS = ("egress",)
NONE = "none"
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


# --- on the host -------------------------------------------------------------------------

def network_name(app: str, has_egress: bool) -> str:
    """`podman run --network=` of every container of a release of `app`."""
    return naming.network(app) if has_egress else NONE


def prepare(app: str, has_egress: bool) -> None:
    """The app's network exists (isolated) before a container of a release with egress starts."""
    if not has_egress:
        return
    try:
        podman.engine.ensure_network(naming.network(app), app)
    except PodkuError as error:
        detail = output.one_line(getattr(error, "output", "") or str(error))[-300:]
        raise PodkuError(f"cannot give {app} its outbound network (podman's CNI plugins and iptables are "
                         f"needed; network:set {app} egress off runs it without): {detail}") from error


def remove(app: str) -> None:
    """The app's network, gone with the app (its containers are stopped first)."""
    podman.engine.remove_network(naming.network(app))
