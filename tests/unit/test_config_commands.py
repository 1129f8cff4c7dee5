"""config:keys, config:export and config:clear: what they print, what they refuse, and that
reading changes nothing."""

import json
import shlex
import subprocess
import sys

import pytest

import fakes
from podku import apps
from podku.cli import main as cli
from podku.host import systemd

VALUES = {"DATABASE_URL": "postgres://u:p@h/db?x=1&y=2", "QUOTE": "it's \"quoted\" $HOME `id`", "EMPTY": "",
          "UNICODE": "ünïcode ✓"}


@pytest.fixture
def web(home, monkeypatch):
    monkeypatch.setattr(systemd, "manager", fakes.NoSystemd())
    monkeypatch.setitem(sys.modules, "pystemd", None)
    apps.save(apps.App(name="web"))
    apps.save_config("web", VALUES)


def podku(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_keys_are_the_names_one_a_line(web, capsys):
    assert podku(capsys, "config:keys", "web") == (0, "DATABASE_URL\nEMPTY\nQUOTE\nUNICODE\n", "")


def test_the_shell_export_gives_a_shell_the_values_back_exactly(web, capsys):
    code, out, _ = podku(capsys, "config:export", "web")
    assert code == 0 and out.startswith("export DATABASE_URL=")
    script = out + "".join(f'printf "%s\\0" "${key}"\n' for key in sorted(VALUES))
    read_back = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={}).stdout
    assert read_back.split("\0")[:-1] == [VALUES[key] for key in sorted(VALUES)]


def test_json_and_envfile(web, capsys):
    assert json.loads(podku(capsys, "config:export", "web", "--format", "json")[1]) == VALUES
    lines = podku(capsys, "config:export", "web", "--format", "envfile")[1].splitlines()
    assert dict(line.split("=", 1) for line in lines) == VALUES


def test_merged_adds_the_global_values_the_app_gets_under_its_own(web, capsys):
    apps.save_global_config({"QUOTE": "global loses", "REGION": "eu; $(id)"})
    assert podku(capsys, "config:keys", "web")[1].splitlines() == sorted(VALUES)
    assert podku(capsys, "config:keys", "web", "--merged")[1].splitlines() == sorted([*VALUES, "REGION"])
    merged = json.loads(podku(capsys, "config:export", "web", "--merged", "--format", "json")[1])
    assert merged == {**VALUES, "REGION": "eu; $(id)"}
    assert json.loads(podku(capsys, "config:export", "web", "--format", "json")[1]) == VALUES


def test_clear_of_an_app_never_deployed_stores_an_empty_config(web, capsys):
    code, _out, err = podku(capsys, "config:clear", "web")
    assert code == 0 and apps.config("web") == {}
    assert "Cleared the config" in err + _out


@pytest.mark.parametrize("args", [
    ["config:export", "web", "--format", "yaml"], ["config:export", "web", "--format", "json;id"],
    ["config:export", "../web"], ["config:keys", "$(id)"], ["config:keys", "a\nb"], ["config:clear", "--", "-x"],
    ["config:clear", "x" * 5000], ["config:keys", "nope"], ["config:export", "web", "--format"],
    ["config:export", "web", "--merged=yes"], ["config:keys", "--merged", "../web"],
])
def test_bad_input_is_one_line_and_changes_nothing(web, capsys, args):
    code, _out, err = podku(capsys, *args)
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
    assert apps.config("web") == VALUES


def test_export_quotes_every_value_for_the_shell(web, capsys):
    for line in podku(capsys, "config:export", "web")[1].splitlines():
        key, _, quoted = line.removeprefix("export ").partition("=")
        assert shlex.split(quoted) == [VALUES[key]] or (VALUES[key] == "" and quoted == "''")
