"""The podku command, for the commands and error paths that need no systemd or podman."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

import fakes
from podku import apps, health, sshkeys
from podku.cli import main as cli
from podku.host import paths, settings, systemd


@pytest.fixture(autouse=True)
def no_systemd(monkeypatch):
    monkeypatch.setattr(systemd, "manager", fakes.NoSystemd())
    monkeypatch.setitem(sys.modules, "pystemd", None)


def podku(capsys, *args: str) -> tuple[int, str, str]:
    """Run `podku ARGS...` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def everything_under(root):
    """Every path but the events log (events.py: a refused command is recorded, by design)
    and the directories it needs."""
    events_dir = paths.STATE
    return sorted(path for path in root.rglob("*")
                  if not path.name.startswith("events.") and not events_dir.is_relative_to(path))


@pytest.mark.parametrize("args, message", [
    (["apps:create", "Bad_Name"], "invalid app name 'Bad_Name'"),
    (["apps:create", "caddy"], "the name is reserved"),
    (["apps:create", "web-r3"], "invalid app name 'web-r3'"),
    (["apps:destroy", "../x", "--force"], "invalid app name '../x'"),
    (["config:set", "../x", "A=1"], "invalid app name '../x'"),
    (["config:set", "web", "NOEQUALS"], "expected KEY=VALUE"),
    (["config:set", "web", "1A=x"], "invalid config key '1A'"),
    (["config:set", "web", "A=two\nlines"], "invalid value for A"),
    (["config:unset", "web", "A-B"], "invalid config key 'A-B'"),
    (["config:get", "web", "no-such"], "invalid config key 'no-such'"),
    (["releases", "a;b"], "invalid app name 'a;b'"),
    (["rollback", "$(x)"], "invalid app name '$(x)'"),
    (["ps:restart", "a/b"], "invalid app name 'a/b'"),
    (["checks:set", "a b", "attempts", "1"], "invalid app name 'a b'"),
    (["logs", "UPPER"], "invalid app name 'UPPER'"),
    (["urls", "--", "-x"], "invalid app name '-x'"),
    (["git-hook", "../../etc"], "invalid app name '../../etc'"),
    (["domains:set-global", "Bad..Domain"], "invalid domain 'Bad..Domain'"),
    (["setup", "--domain", "a_b.com"], "invalid domain 'a_b.com'"),
    (["ssh-keys:add", "bad name"], "invalid key name 'bad name'"),
])
def test_bad_input_is_one_line_on_stderr_and_changes_nothing(home, capsys, args, message):
    before = everything_under(home)
    code, out, err = podku(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err
    assert err.startswith(" !     ")
    assert everything_under(home) == before


def test_unknown_command_exits_2_with_clicks_message(home, capsys):
    code, _out, err = podku(capsys, "no:such-command")
    assert code == 2
    assert "No such command 'no:such-command'" in err


def test_missing_app_is_a_usage_error(home, capsys):
    for args in (["urls", "ghost"], ["config:show", "ghost"], ["releases", "ghost"],
                 ["checks:report", "ghost"]):
        code, out, err = podku(capsys, *args)
        assert (code, out) == (2, "")
        assert err == " !     app ghost does not exist\n"
    assert not (paths.APPS / "ghost" / "app.json").exists()


def test_help_lists_the_dokku_style_commands_but_not_the_internal_ones(home, capsys):
    code, out, _err = podku(capsys, "--help")
    assert code == 0
    for name in ("apps:create", "apps:list", "config:set", "rollback", "ssh-keys:add", "checks:set"):
        assert name in out
    for name in ("ssh-command", "git-hook", "ps:retire", "setup"):
        assert name not in out.split()


def test_apps_list(home, capsys):
    apps.save(apps.App(name="web"))
    apps.save(apps.App(name="api"))
    code, out, _err = podku(capsys, "apps:list")
    assert code == 0
    assert out == "=====> My Apps\napi\nweb\n"


def test_urls_follows_the_global_domain_and_port(home, capsys):
    apps.save(apps.App(name="web"))
    settings.save(settings.Settings(domain="example.com", http_port=8080, tls="off"))
    assert podku(capsys, "urls", "web") == (0, "http://web.example.com:8080/\n", "")
    settings.save(settings.Settings(domain="example.com", http_port=8080, tls="auto"))
    assert podku(capsys, "urls", "web") == (0, "https://web.example.com/\n", "")


def test_config_show_and_get(home, capsys):
    apps.save(apps.App(name="web"))
    apps.save_config("web", {"B": "2", "A": "one two"})
    code, out, _err = podku(capsys, "config:show", "web")
    assert code == 0
    assert out.splitlines() == ["=====> web env vars", f"{'A:':<20}one two", f"{'B:':<20}2"]
    assert podku(capsys, "config:get", "web", "A") == (0, "one two\n", "")


def test_config_get_of_an_unset_key_fails(home, capsys):
    apps.save(apps.App(name="web"))
    code, _out, err = podku(capsys, "config:get", "web", "NOPE")
    assert code == 1
    assert err == " !     NOPE is not set for web\n"


def test_checks_set_stores_the_setting(home, capsys):
    apps.save(apps.App(name="web"))
    assert podku(capsys, "checks:set", "web", "wait-to-retire", "30")[0] == 0
    assert podku(capsys, "checks:set", "web", "attempts", "2")[0] == 0
    checks = apps.load("web").health_checks
    assert (checks.wait_to_retire, checks.attempts) == (30, 2)


def test_checks_set_refuses_unknown_settings_and_bad_values(home, capsys):
    apps.save(apps.App(name="web"))
    code, _out, err = podku(capsys, "checks:set", "web", "path", "/x")
    assert code == 2 and "unknown check setting 'path'" in err
    code, _out, err = podku(capsys, "checks:set", "web", "attempts", "many")
    assert code == 2 and "invalid value for attempts" in err
    assert apps.load("web").health_checks == health.Checks()


def test_checks_disable_and_enable(home, capsys):
    apps.save(apps.App(name="web"))
    podku(capsys, "checks:disable", "web")
    assert apps.load("web").health_checks.enabled is False
    podku(capsys, "checks:enable", "web")
    assert apps.load("web").health_checks.enabled is True


def test_checks_report(home, capsys):
    apps.save(apps.App(name="web", checks=health.Checks(attempts=3).to_dict()))
    code, out, _err = podku(capsys, "checks:report", "web")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "=====> web checks information"
    assert any(line.split() == ["Checks", "attempts:", "3"] for line in lines)
    assert any(line.split() == ["Checks", "wait", "to", "retire:", "5"] for line in lines)


def make_key(tmp_path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True, capture_output=True)
    return (tmp_path / "k.pub").read_text()


def test_ssh_keys_add_list_remove(home, tmp_path, capsys):
    key = make_key(tmp_path)
    result = CliRunner().invoke(cli.cli, ["ssh-keys:add", "laptop"], input=key)
    assert result.exit_code == 0, result.output
    assert "Added key laptop" in result.output
    result = CliRunner().invoke(cli.cli, ["ssh-keys:add", "--if-new", "laptop"], input=key)
    assert result.exit_code == 0
    assert "Added key" not in result.output
    assert podku(capsys, "ssh-keys:list") == (0, "laptop\n", "")
    code, out, _err = podku(capsys, "ssh-keys:remove", "laptop")
    assert code == 0 and "Removed key laptop" in out
    assert sshkeys.names() == []


def test_ssh_keys_add_reads_stdin_only_and_no_more_than_a_key(home, tmp_path):
    result = CliRunner().invoke(cli.cli, ["ssh-keys:add", "laptop", "/etc/passwd"], input=make_key(tmp_path))
    assert result.exit_code == 2
    result = CliRunner().invoke(cli.cli, ["ssh-keys:add", "laptop"], input="ssh-ed25519 " + "A" * 100_000)
    assert result.exit_code != 0
    assert "at most 16 KiB" in str(result.exception) + result.output
    assert not paths.SSH_AUTHORIZED_KEYS.exists()


def test_ssh_keys_add_refuses_garbage(home, capsys):
    result = CliRunner().invoke(cli.cli, ["ssh-keys:add", "laptop"], input="garbage\n")
    assert result.exit_code != 0
    assert not paths.SSH_AUTHORIZED_KEYS.exists()


def test_ssh_keys_remove_of_an_unknown_key_fails(home, capsys):
    code, _out, err = podku(capsys, "ssh-keys:remove", "laptop")
    assert code == 2
    assert err == " !     no key named laptop\n"


# --- ssh-command: the forced command of every key ---------------------------------------------

def test_ssh_command_runs_the_requested_command(home, capsys, monkeypatch):
    apps.save(apps.App(name="web"))
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "apps:list")
    code, out, _err = podku(capsys, "ssh-command")
    assert code == 0
    assert out == "=====> My Apps\nweb\n"


@pytest.mark.parametrize("command", [
    "ps:retire web 1", "git-hook web", "ssh-command", "setup --domain example.com",
    "-- git-hook web", "--help", "-h", "--version", "/bin/sh", "sh -c id", "internal:bridge podku-web-r1 80",
    "internal:wait-port podku-web-r1 80", "-- setup --domain x.com", "'' apps:list", "$(id)",
])
def test_ssh_command_runs_only_public_commands(home, capsys, monkeypatch, command):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", command)
    before = everything_under(home)
    code, out, err = podku(capsys, "ssh-command")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "is not a podku command" in err
    assert everything_under(home) == before


def test_every_visible_command_and_only_those_are_public():
    public = cli.public_commands()
    assert {"apps:create", "config:set", "logs", "help", "ssh-keys:add"} <= public
    assert not public & {"ssh-command", "git-hook", "ps:retire", "setup", "internal:bridge",
                         "internal:wait-port"}


def test_ssh_command_refuses_unbalanced_quotes(home, capsys, monkeypatch):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "config:set web 'A=1")
    code, _out, err = podku(capsys, "ssh-command")
    assert code == 2
    assert "cannot parse the command" in err


def test_ssh_command_validates_the_words_it_passes_on(home, capsys, monkeypatch):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "apps:create '../../x'")
    before = everything_under(home)
    code, _out, err = podku(capsys, "ssh-command")
    assert code == 2
    assert "invalid app name '../../x'" in err
    assert everything_under(home) == before


def test_ssh_git_fetch_of_a_bad_repository_name_is_refused(home, capsys, monkeypatch):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "git-upload-pack '/etc/passwd'")
    code, _out, err = podku(capsys, "ssh-command")
    assert code == 2
    assert "invalid app name" in err


# --- one error boundary ------------------------------------------------------------------------

def test_an_unforeseen_exception_is_one_line_without_a_traceback(home, capsys, monkeypatch):
    monkeypatch.delenv("PODKU_DEBUG", raising=False)
    monkeypatch.setattr(apps, "all_names", lambda: {}["boom"])
    code, out, err = podku(capsys, "apps:list")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(" !     internal error: KeyError: 'boom'")
    assert "Traceback" not in err


def test_podku_debug_shows_the_traceback(home, capsys, monkeypatch):
    monkeypatch.setenv("PODKU_DEBUG", "1")
    monkeypatch.setattr(apps, "all_names", lambda: {}["boom"])
    code, _out, err = podku(capsys, "apps:list")
    assert code == 1
    assert "Traceback" in err and err.endswith("(run with PODKU_DEBUG=1 for the traceback)\n")


def test_a_corrupt_state_file_is_one_line(home, capsys):
    apps.save(apps.App(name="web"))
    paths.AppPaths("web").record.write_text("{not json")
    code, _out, err = podku(capsys, "urls", "web")
    assert code == 1
    assert err.count("\n") == 1 and "is corrupt" in err and "app.json" in err


@pytest.mark.parametrize("value, message", [
    ("\x1b[2Jred", "control characters (found \\x1b)"),
    ("a\udcffb", "not valid UTF-8"),
    ("x" * 40_000, "longer than 32 KiB"),
])
def test_config_values_that_would_break_a_terminal_or_a_deploy_are_refused(home, capsys, value, message):
    apps.save(apps.App(name="web"))
    code, _out, err = podku(capsys, "config:set", "web", "--no-restart", f"A={value}")
    assert code == 2 and message in err and err.count("\n") == 1
    assert apps.config("web") == {}


def test_stored_control_characters_are_refused_naming_file_and_field(home, capsys):
    apps.save(apps.App(name="web"))
    paths.AppPaths("web").config.write_text('{"A": "\\u001b[31mred"}')
    code, out, err = podku(capsys, "config:get", "web", "A")
    assert (code, out) == (1, "")
    assert "config.json is invalid: field A:" in err and "\\x1b" in err and "\x1b" not in err


def test_logs_of_an_app_never_deployed_print_no_journal(home, capsys):
    apps.save(apps.App(name="web"))
    code, out, err = podku(capsys, "logs", "web")
    assert (code, out) == (1, "")
    assert "has no logs yet" in err


@pytest.mark.parametrize("name", ["checks:report", "checks:enable", "checks:disable", "config:get",
                                  "ssh-keys:list", "ssh-keys:remove"])
def test_every_public_command_has_help_text(name):
    assert cli.cli.commands[name].help
