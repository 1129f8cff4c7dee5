"""Nothing a record or a user holds reaches a unit file or a terminal unescaped (issue 14):
templates refuse control characters and quote systemd specifiers; every printed line
escapes control characters; backup:import checks every staged record before placing."""

import io
import json
import tarfile
from pathlib import Path

import pytest
import test_backup
from test_backup import deployed_app, export_bytes, wipe
from test_cli import podku
from test_templates import VALUES, directives

import fakes
from podku import apps, backup, output
from podku.host import paths, settings, templates
from podku.image import procfile
from podku.proxy import caddy as proxy

SYSTEMD_TEMPLATES = ["release.service.j2", "release.socket.j2", "release-bridge.service.j2",
                     "release-inner.socket.j2", "process.service.j2"]


# --- templates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("template", SYSTEMD_TEMPLATES)
@pytest.mark.parametrize("bad", ["5000\nExecStartPre=/bin/sh", "a\rb", "\x1b[2J", "a\x00b", "\x85"])
def test_a_value_with_a_control_character_is_never_rendered(template, bad):
    values = {**VALUES, "port": 5000, "idle_timeout": 30, "type": "worker", "web": False, "command": "",
              "podku": "/opt/podku"}
    refused = 0
    for key in ("app", "image", "env_file", "port", "socket_path", "inner_socket_path", "podku", "unit"):
        try:
            text = templates.render(template, **{**values, key: bad})
        except templates.UnsafeValue:
            refused += 1
        else:
            assert bad not in text  # the template does not use this value
    assert refused >= 2


def test_the_hook_and_the_cron_units_refuse_line_breaks_too():
    with pytest.raises(templates.UnsafeValue):
        templates.render("pre-receive.j2", app="x\nrm -rf ~", podku="/p")
    with pytest.raises(templates.UnsafeValue):
        templates.render("cron.timer.j2", app="web", id=1, schedule="@daily", on_calendar="daily\nOnBootSec=1")


def test_percent_in_a_unit_value_is_never_a_specifier():
    values = {**VALUES, "port": 5000, "idle_timeout": 0, "env_file": Path("/home/%h/x.env"),
              "image": "localhost/podku/a:r1%n", "podku": "/opt/%u/podku"}
    service = templates.render("release.service.j2", **values)
    assert "--env-file /home/%%h/x.env" in service and "localhost/podku/a:r1%%n" in service
    assert "/opt/%%u/podku internal:wait-port" in service
    assert "%%%%" not in service
    # the template's own specifiers stay
    assert directives(service)["Environment"] == ["PODMAN_SYSTEMD_UNIT=%n"]


def test_quoted_procfile_arguments_pass_as_they_are():
    command = procfile.exec_args(["sh", "-c", "echo 100% $HOME"])
    service = templates.render("release.service.j2", **{**VALUES, "port": None, "command": command})
    assert 'localhost/podku/my-app:r7 "sh" "-c" "echo 100%% $$HOME"' in service


def test_exec_words_with_spaces_are_quoted_for_systemd():
    values = {**VALUES, "port": 5000, "idle_timeout": 0, "env_file": Path("/home/my user/7.env"),
              "extra_flags": ["--volume=/home/my user/s:/srv:U"], "podku": "/opt/p$x/podku"}
    service = templates.render("release.service.j2", **values)
    assert '--env-file "/home/my user/7.env"' in service and '"--volume=/home/my user/s:/srv:U"' in service
    assert 'ExecStartPost="/opt/p$$x/podku" internal:wait-port' in service
    plain = templates.render("release.service.j2", **{**VALUES, "port": None})
    assert '"' not in directives(plain)["ExecStart"][0]


def test_caddy_json_keeps_percent_and_stays_json(home):
    current = settings.Settings(domain="podku.localhost")
    text = proxy.render(current)
    assert json.loads(text) and "%%" not in text


# --- terminal output ---------------------------------------------------------------------------

def test_every_printed_line_escapes_control_characters(capsys):
    output.echo("name\x1b[2J")
    output.step("step \x1b]0;title\x07")
    output.detail("a\x1b[31m\nb\r")
    output.field("Label", "v\x9b1m")
    output.warn("w\x1b")
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out and "\x9b" not in out and "\r" not in out
    assert out.splitlines() == ["name\\x1b[2J", "-----> step \\x1b]0;title\\x07", "       a\\x1b[31m", "       b",
                                "       Label:" + " " * 22 + "v\\x9b1m"]
    assert err == " !     w\\x1b\n"


def test_reports_print_stored_values_escaped(home, capsys, monkeypatch):
    fakes.new_app("web")
    (paths.APPS / "web" / "releases" / "1.json").write_text("{}")
    code, _, err = podku(capsys, "releases", "web")
    assert code == 1 and "field" in err and err.count("\n") == 1
    monkeypatch.setattr(apps, "all_names", lambda: ["web\x1b[2J"])
    code, out, _ = podku(capsys, "apps:list")
    assert code == 0 and "web\\x1b[2J" in out and "\x1b" not in out


host = test_backup.host  # the fake host of test_backup: fakes, storage read by Python, no git or Caddy


# --- backup:import --------------------------------------------------------------------------

def altered(data: bytes, change) -> io.BytesIO:
    """The archive with change(name, bytes) -> bytes | None (None: leave out) on each member."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            if member.name == "END":
                _add_extra(target, change)
            content = source.extractfile(member).read() if member.isreg() else None
            if member.isreg():
                content = change(member.name, content)
                if content is None:
                    continue
                member.size = len(content)
            target.addfile(member, io.BytesIO(content) if content is not None else None)
    out.seek(0)
    return out


def _add_extra(target: tarfile.TarFile, change) -> None:
    for name, content in getattr(change, "extra", ()):
        info = tarfile.TarInfo(name)
        info.size = len(content)
        target.addfile(info, io.BytesIO(content))


def json_change(member: str, **fields):
    def change(name: str, content: bytes) -> bytes:
        if name != member:
            return content
        return json.dumps({**json.loads(content), **fields}).encode()
    return change


@pytest.mark.parametrize("member, fields, message", [
    ("state/web/releases/1.json", {"port": "5000\nExecStartPre=/bin/sh -c 'touch /tmp/x'"}, "field port"),
    ("state/web/releases/1.json", {"app": "../../x"}, "field app"),
    ("state/web/releases/1.json", {"config": {"A\nB": "1"}}, "field config"),
    ("state/web/releases/1.json", {"app_json": {"cron": [{"command": "x", "schedule": "bad"}]}}, "app_json"),
    ("state/web/app.json", {"name": "../../../../.ssh"}, "field name"),
    ("state/web/app.json", {"live_release": "1; id"}, "field live_release"),
    ("state/web/domains.json", {"custom": ["../../../../.ssh/authorized_keys"]}, "field custom[0]"),
    ("state/web/storage.json", None, "field .0.: invalid container path"),
])
def test_a_crafted_record_refuses_the_whole_archive_before_anything_is_placed(host, member, fields, message):
    deployed_app()
    (paths.APPS / "web" / "domains.json").write_text('{"default": true, "custom": []}')
    data = export_bytes()
    wipe()
    if fields is None:  # a list record: replaced whole
        def change(name, content):
            return b'["x:/srv\\nExecStart=y"]' if name == member else content
    else:
        change = json_change(member, **fields)
    keys_before = paths.SSH_AUTHORIZED_KEYS.read_bytes() if paths.SSH_AUTHORIZED_KEYS.exists() else None
    with pytest.raises(backup.BackupError, match=f"refused: .*{member}.*{message.replace('[', '.').replace(']', '.')}"):
        backup.restore(altered(data, change))
    assert apps.all_names() == [] and not paths.AppPaths("web").repo.exists()
    assert (paths.SSH_AUTHORIZED_KEYS.read_bytes() if paths.SSH_AUTHORIZED_KEYS.exists() else None) == keys_before
    assert not list(paths.DATA.glob("import-*"))


def test_host_files_and_unknown_files_in_an_archive_are_checked_too(host):
    deployed_app()
    data = export_bytes()
    wipe()

    def limits(name, content):
        return content
    limits.extra = [("config/limits.json", b'{"build_timeout": 1000000000}')]
    with pytest.raises(backup.BackupError, match="limits.json.*field build_timeout"):
        backup.restore(altered(data, limits))

    def unknown(name, content):
        return content
    unknown.extra = [("state/web/.app.json.x1", b"{"), ("state/web/releases/.1.json.y", b"["),
                     ("state/web/evil.env", b"A=1\n")]
    with pytest.raises(backup.BackupError, match="evil.env .in the backup. is not a record"):
        backup.restore(altered(data, unknown))
    assert apps.all_names() == [] and not (paths.CONFIG / "limits.json").exists()
