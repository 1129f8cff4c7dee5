"""Records read back from disk or from a backup are not trusted (issue 14, holes 1 and 2):
a crafted archive made from podku's own export is refused whole by backup:import, and a
hand-edited release record is refused by rollback, each with one line naming the file and
the field; authorized_keys, the venv's podku and every unit file stay as they were, and
nothing of the crafted app is started or placed."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from collections.abc import Callable

import pytest
from test_small_host import host_bytes

import testhost

PWNED = "/tmp/pwned-by-a-record"
HOSTILE_PORT = f"5000\nExecStartPre=/bin/sh -c 'touch {PWNED}'"
VENV_PODKU = "~/.local/share/podku/venv/bin/podku"


def fingerprint(host: testhost.TestHost) -> str:
    """authorized_keys, the venv's podku (with its kind: a symlink would show) and every unit
    file and link of the deploy user's systemd."""
    script = (f"stat -c '%F %s %n' ~/.ssh/authorized_keys {VENV_PODKU}; "
              f"sha256sum ~/.ssh/authorized_keys {VENV_PODKU}; "
              "cd ~/.config/systemd/user && find . -type f -print0 | sort -z | xargs -0 sha256sum; "
              "find . -type l -printf '%p -> %l\\n' | sort")
    return host.as_deploy_user(script).stdout


def nothing_of(host: testhost.TestHost, app: str) -> None:
    units = host.as_deploy_user(f"systemctl --user list-units --all --plain --no-legend '{app}*'").stdout
    assert units.strip() == "", units
    running = host.as_deploy_user(f"podman ps -a --filter label=podku.app={app} --format '{{{{.Names}}}}'")
    assert running.stdout.strip() == ""
    assert host.as_deploy_user(f"test -e ~/.local/state/podku/apps/{app}", check=False).returncode != 0
    assert host.as_deploy_user(f"test -e ~/.local/share/podku/repos/{app}.git", check=False).returncode != 0
    assert host.run(["test", "-e", PWNED], check=False).returncode != 0


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    err = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else result.stderr
    assert result.returncode != 0, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return err


# --- a crafted archive, made from podku's own export -----------------------------------------

Alter = Callable[[str, dict | list], None]


def renamed(archive: bytes, old: str, new: str, alter: Alter) -> bytes:
    """`archive` with only app `old`, renamed `new` (records rewritten to match, so that
    only `alter`'s change is wrong), without storage; `alter(member, record)` then edits
    each JSON record of the app in place."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as source, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        for member in source.getmembers():
            name = member.name
            if name == "storage.tar" or not _kept(name, old):
                continue
            data = source.extractfile(member).read() if member.isreg() else b""
            name = name.replace(f"state/{old}", f"state/{new}", 1).replace(f"repos/{old}.git", f"repos/{new}.git", 1)
            if name == "MANIFEST":
                magic, _, manifest = data.decode().partition("\n")
                data = f"{magic}\n{json.dumps({**json.loads(manifest), 'apps': [new]})}\n".encode()
            elif name.startswith(f"state/{new}/") and name.endswith(".json"):
                data = json.dumps(_rewritten(name, json.loads(data), old, new, alter)).encode()
            member.name, member.size = name, len(data)
            target.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return out.getvalue()


def _kept(name: str, app: str) -> bool:
    """Whether a member stays: host files, and of the apps only `app`."""
    if not name.startswith(("state/", "repos/")):
        return True
    return name in (f"state/{app}", f"repos/{app}.git") or name.startswith((f"state/{app}/", f"repos/{app}.git/"))


def _rewritten(name: str, record, old: str, new: str, alter: Alter):
    if name.endswith("/app.json"):
        record["name"] = new
    if "/releases/" in name:
        record["app"] = new
        record["image"] = record["image"].replace(f"/{old}:", f"/{new}:")
    alter(name, record)
    return record


def hostile_port(member: str, record) -> None:
    if "/releases/" in member:
        record["port"] = HOSTILE_PORT


def hostile_domain(member: str, record) -> None:
    if member.endswith("/domains.json"):
        record["custom"] = ["../../../../.ssh/authorized_keys"]


def crafted_name(name: str) -> Alter:
    def alter(member: str, record) -> None:
        if member.endswith("/app.json"):
            record["name"] = name
    return alter


@pytest.fixture
def exported(host, app_repo) -> tuple[str, bytes]:
    """A deployed app (one release: nothing retires while the test watches) and the host's
    export."""
    app_repo.deploy("original")
    result = host_bytes(host, ["podku", "backup:export"])
    assert result.returncode == 0, result.stderr
    return app_repo.app, result.stdout


def import_refused(host: testhost.TestHost, archive: bytes, new: str) -> str:
    before = fingerprint(host)
    err = one_line_refusal(host_bytes(host, ["podku", "backup:import"], stdin=archive))
    assert fingerprint(host) == before
    assert host.as_deploy_user("test -f ~/.ssh/authorized_keys && ! test -L ~/.ssh/authorized_keys",
                               check=False).returncode == 0
    nothing_of(host, new)
    return err


def test_an_archive_whose_release_puts_a_line_into_a_unit_is_refused(host, exported):
    app, archive = exported
    new = f"{app}x"
    err = import_refused(host, renamed(archive, app, new, hostile_port), new)
    assert f"state/{new}/releases/1.json" in err and "field port" in err
    rollback = one_line_refusal(host.ssh("rollback", new, "1", check=False))
    assert f"app {new} does not exist" in rollback
    nothing_of(host, new)
    assert host.http_get(f"{app}.podku.localhost") == (200, "original r1")


def test_an_archive_whose_domain_is_a_path_is_refused(host, exported):
    app, archive = exported
    new = f"{app}d"
    err = import_refused(host, renamed(archive, app, new, hostile_domain), new)
    assert f"state/{new}/domains.json" in err and "field custom[0]" in err


@pytest.mark.parametrize("name", ["../../../../.ssh", "x\nExecStartPre=/bin/true", "%h", "-rf", "APP"],
                         ids=["dotdot", "newline", "specifier", "dash", "another-app"])
def test_an_archive_whose_app_record_names_another_place_is_refused(host, exported, name):
    app, archive = exported
    new = f"{app}n"
    err = import_refused(host, renamed(archive, app, new, crafted_name(name.replace("APP", app))), new)
    assert f"state/{new}/app.json" in err and "field name" in err
    assert host.http_get(f"{app}.podku.localhost") == (200, "original r1")


def test_a_hand_edited_release_record_is_refused_by_rollback(host, app_repo):
    app = app_repo.app
    app_repo.deploy("first")
    app_repo.deploy("second")
    record = f"~/.local/state/podku/apps/{app}/releases/1.json"
    wait_until(lambda: host.as_deploy_user(f"test -e ~/.config/systemd/user/{app}-r1.socket",
                                           check=False).returncode != 0, 60, "release 1 to retire")
    original = host.as_deploy_user(f"cat {record}").stdout
    edited = json.dumps({**json.loads(original), "port": HOSTILE_PORT})
    before = fingerprint(host)
    host.as_deploy_user(f"cat > {record} <<'EOF'\n{edited}\nEOF")
    try:
        err = one_line_refusal(host.ssh("rollback", app, "1", check=False))
        assert f"apps/{app}/releases/1.json is invalid: field port" in err
        assert "whole number" in err
        releases = one_line_refusal(host.ssh("releases", app, check=False))
        assert "field port" in releases
        assert fingerprint(host) == before
        assert host.run(["test", "-e", PWNED], check=False).returncode != 0
        assert host.http_get(f"{app}.podku.localhost") == (200, "second r2")
    finally:
        host.as_deploy_user(f"cat > {record} <<'EOF'\n{original}EOF")
    assert "v1" in host.ssh("releases", app).stdout


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
