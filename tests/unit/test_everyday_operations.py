"""Issue 19's operations, their pure parts: git:set (deploy branch, build directory), the
global config, logs' journalctl words, the events log and the key name in the forced command,
and a release's multi-line values as podman secrets through a whole deploy."""

import base64
import io
import json
import sys

import pytest

import fakes
from podku import apps, deploy, events, names, receive, releases, sshkeys, swap
from podku.cli import main as cli
from podku.errors import UsageError
from podku.host import paths, podman
from podku.image import source

OLD, NEW, ZERO = "1" * 40, "2" * 40, "0" * 40


def podku(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


# --- deploy branch -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["production", "release/v1.2", "feat_x", "a+b", "main"])
def test_branch_names_git_takes(name):
    assert source.branch_name(name) == name


@pytest.mark.parametrize("name", ["a..b", "-x", "a b", "a\nb", "a\x1b", "x.lock", "x.lock/y", ".x", "a/.x", "a/",
                                  "/a", "a//b", "a.", "@", "a@{1}", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
                                  "$(id)", "a;id", "`id`", "ä", "%h", "", "x" * 201])
def test_branch_names_refused(name):
    with pytest.raises(UsageError, match="invalid branch name"):
        source.branch_name(name)


def test_with_a_deploy_branch_only_it_deploys_and_another_branch_is_refused_naming_it(capsys):
    settings = source.GitSettings(deploy_branch="production")
    assert receive.pushed_revision([f"{OLD} {NEW} refs/heads/production"], settings) == NEW
    with pytest.raises(UsageError, match="only branch production deploys this app"):
        receive.pushed_revision([f"{OLD} {NEW} refs/heads/main"], settings)
    assert receive.pushed_revision([f"{OLD} {NEW} refs/tags/v1"], settings) is None
    assert "push to production to deploy" in capsys.readouterr().err
    assert receive.pushed_revision([f"{OLD} {NEW} refs/heads/main"]) == NEW  # unset: main or master


# --- build directory -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["services/api", "web", "a_b/c-d.e", "x/y/z"])
def test_build_dirs_taken(path):
    assert source.build_dir(path) == path


@pytest.mark.parametrize("path", ["../x", "a/../../b", "/etc", "..", ".", "a//b", "a/", ".git", "a/.git", "a b",
                                  "a\nb", "$(id)", "a;b", "", "x" * 300, "-x", "~/x", "%h"])
def test_build_dirs_refused(path):
    with pytest.raises(UsageError, match="invalid build directory"):
        source.build_dir(path)


def test_a_build_dir_must_be_a_directory_of_the_tree_reached_through_no_symlink(tmp_path):
    tree = tmp_path / "tree"
    (tree / "services" / "api").mkdir(parents=True)
    (tree / "file").write_text("x")
    (tree / "out").symlink_to(tmp_path)
    (tree / "inner").symlink_to(tree / "services")
    assert source.source_dir(tree, "services/api") == tree / "services" / "api"
    assert source.source_dir(tree, "") == tree
    for bad in ("out", "inner/api", "file", "missing"):
        with pytest.raises(UsageError, match="not a directory of this revision"):
            source.source_dir(tree, bad)


def test_git_set_and_report(home, capsys):
    apps.save(apps.App(name="web"))
    assert podku(capsys, "git:set", "web", "deploy-branch", "production")[0] == 0
    assert podku(capsys, "git:set", "web", "build-dir", "services/api")[0] == 0
    assert source.load("web") == source.GitSettings("production", "services/api")
    out = podku(capsys, "git:report", "web")[1]
    assert "production" in out and "services/api" in out
    assert podku(capsys, "git:set", "web", "build-dir", "--unset")[0] == 0
    assert source.load("web") == source.GitSettings("production", "")
    code, _out, err = podku(capsys, "git:set", "web", "deploy-branch")
    assert code == 2 and "a value or --unset" in err


def test_a_deploy_takes_procfile_app_json_and_the_build_from_the_build_dir(home, monkeypatch):
    fakes.new_app()
    fakes.install(monkeypatch)
    source.save("web", source.GitSettings(build_dir="services/api"))
    read, built = [], []
    monkeypatch.setattr(deploy.build, "read_file_at", lambda repo, rev, name: read.append(name))
    original = deploy.build.build_release
    monkeypatch.setattr(deploy.build, "build_release",
                        lambda *args: built.append(args[-1]) or original(*args))
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "a" * 40)
    assert sorted(read) == ["services/api/Procfile", "services/api/app.json"]
    assert built == ["services/api"]


# --- global config -------------------------------------------------------------------------

def test_global_values_go_to_every_release_under_the_apps_own(home, monkeypatch, capsys):
    fakes.new_app()
    host = fakes.install(monkeypatch)
    assert podku(capsys, "config:set", "--global", "REGION=eu", "SHARED=global")[0] == 0
    assert apps.global_config() == {"REGION": "eu", "SHARED": "global"}
    apps.save_config("web", {"SHARED": "own"})
    with apps.lock("web"):
        first = deploy.deploy_revision(apps.load("web"), "a" * 40)
    capsys.readouterr()
    assert first.config == {"REGION": "eu", "SHARED": "own"}
    assert podku(capsys, "config:get", "web", "REGION")[1] == "eu\n"
    assert podku(capsys, "config:get", "--global", "SHARED")[1] == "global\n"
    shown = podku(capsys, "config:show", "web")[1]
    assert "SHARED:" in shown and "global env vars it gets" in shown and "REGION:" in shown
    # a global change is stored only: the live release keeps what it had until the next one
    podku(capsys, "config:unset", "--global", "REGION")
    assert releases.load("web", apps.load("web").live_release).config["REGION"] == "eu"
    assert podku(capsys, "ps:restart", "web")[0] == 0
    assert releases.load("web", apps.load("web").live_release).config == {"SHARED": "own"}
    fakes.assert_consistent(host, "web")


@pytest.mark.parametrize("args", [["config:set", "--global"], ["config:set", "--global", "A"],
                                  ["config:get", "--global"], ["config:get", "--global", "A", "B"],
                                  ["config:show", "--global", "web"], ["config:show"],
                                  ["config:set", "--global", "A=a\nb"], ["config:unset", "--global", "1A"]])
def test_global_misuse_is_one_line_and_changes_nothing(home, capsys, args):
    apps.save(apps.App(name="web"))
    code, _out, err = podku(capsys, *args)
    assert code != 0 and err.count("\n") == 1
    assert not apps.global_config_path().exists()


# --- logs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["now", "today", "yesterday", "-1h", "+5min", "2 hours ago", "1h 30min",
                                  "2026-11-29", "2026-11-29 14:00", "2026-11-29 14:00:05.5 UTC", "14:00",
                                  "@1700000000"])
def test_journal_times_taken(text):
    assert names.journal_time(text) == text


@pytest.mark.parametrize("text", ["--output=json", "-x", "--", "a;id", "$(id)", "now\n", "now --follow", "",
                                  "x" * 65, "ä", "--user", "-1h;id", "../x"])
def test_journal_times_refused(text):
    with pytest.raises(UsageError, match="invalid time"):
        names.journal_time(text)


def test_logs_passes_times_as_one_word_each_and_follows_until_the_session_ends(home, monkeypatch, capsys):
    fakes.new_app()
    fakes.install(monkeypatch)
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "a" * 40)
    capsys.readouterr()
    ran = []
    monkeypatch.setattr(cli, "interactive", lambda argv: ran.append(argv) or 0)
    assert podku(capsys, "logs", "web", "-f", "--since", "-1h", "--until", "now")[0] == 0
    [argv] = ran
    assert argv[0] == "journalctl" and argv[-3:] == ["--since=-1h", "--until=now", "--follow"]
    assert podku(capsys, "logs", "web", "--since", "today")[0] == 0
    assert ran[1][-1] == "--since=today"


# --- events and key names ------------------------------------------------------------------

def test_events_are_appended_shown_newest_last_and_rotated(home, monkeypatch):
    events.record("alice", "config:set", "web", "ok")
    events.record("-", "push", "web", "deployed release 1")
    shown = [events.shown(event) for event in events.last(10)]
    assert len(shown) == 2 and "alice" in shown[0] and "deployed release 1" in shown[1]
    monkeypatch.setattr(events, "MAX_BYTES", 300)
    for number in range(20):
        events.record("bob", "ps:restart", "web", f"ok {number}")
    assert events.log_path().stat().st_size <= 300 + events.MAX_LINE
    assert events.log_path(".1").exists()
    latest = events.last(5)
    assert [event["outcome"] for event in latest] == [f"ok {n}" for n in range(15, 20)]


def test_a_crafted_events_line_is_skipped_and_a_bad_record_is_never_written(home):
    events.record("alice", "apps:create", "web", "ok")
    with open(events.log_path(), "a") as log:
        log.write('{"time": 1, "key": "x\\u001b[2J", "command": "a", "app": "", "outcome": ""}\n')
        log.write("not json\n")
    events.record("bad key!", "apps:create", "web", "ok")  # refused by the schema: not written
    assert [event["key"] for event in events.last(10)] == ["alice"]


def test_the_ssh_entry_records_the_key_command_and_app_never_the_values(home, monkeypatch, capsys):
    apps.save(apps.App(name="web"))
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "config:set web --no-restart SECRET=hunter2")
    assert podku(capsys, "ssh-command", "--key", "alice")[0] == 0
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "config:get web MISSING")
    assert podku(capsys, "ssh-command", "--key", "alice")[0] != 0
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "rm -rf /")
    assert podku(capsys, "ssh-command")[0] != 0
    logged = [(e["key"], e["command"], e["app"], e["outcome"]) for e in events.last(10)]
    assert logged == [("alice", "config:set", "web", "ok"), ("alice", "config:get", "web", "failed (exit 1)"),
                      ("-", "?", "", "refused: not a podku command")]
    assert "hunter2" not in events.log_path().read_text()
    out = podku(capsys, "events", "-n", "2")[1]
    assert out.count("\n") == 2 and "config:get" in out


def test_a_key_name_that_is_not_one_is_refused_by_the_entry(home, capsys):
    code, _out, err = podku(capsys, "ssh-command", "--key", "a;id")
    assert code == 2 and "invalid key name" in err


def test_older_key_lines_get_their_name_in_the_forced_command(home):
    blob = "AAAAC3NzaC1lZDI1NTE5AAAAILTaJo/lXf3wV89bnIkqjpUs4tTgJd+DO9o8lhfMAte/"
    paths.SSH_AUTHORIZED_KEYS.parent.mkdir(parents=True)
    own = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorOwnKey operator@laptop"
    paths.SSH_AUTHORIZED_KEYS.write_text(
        f'command="{paths.PODKU_EXECUTABLE} ssh-command",restrict ssh-ed25519 {blob} podku-key:alice\n{own}\n')
    assert sshkeys.name_older_lines() == 1
    lines = paths.SSH_AUTHORIZED_KEYS.read_text().splitlines()
    assert lines == [sshkeys.authorized_line("alice", "ssh-ed25519", blob), own]
    assert "ssh-command --key alice\",restrict,pty " in lines[0]
    assert sshkeys.name_older_lines() == 0
    # a line with the name but without a terminal (written between the two changes) too
    paths.SSH_AUTHORIZED_KEYS.write_text(lines[0].replace(",restrict,pty ", ",restrict ") + f"\n{own}\n")
    assert sshkeys.name_older_lines() == 1
    assert paths.SSH_AUTHORIZED_KEYS.read_text().splitlines() == lines


# --- multi-line values through a deploy ----------------------------------------------------

def test_a_pem_reaches_a_release_as_a_podman_secret_and_goes_with_it(home, monkeypatch, capsys):
    fakes.new_app()
    host = fakes.install(monkeypatch)
    pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "a" * 40)
    assert podku(capsys, "config:set", "--encoded", "web", "KEY=" + base64.b64encode(pem.encode()).decode())[0] == 0
    live = releases.load("web", apps.load("web").live_release)
    assert fakes_podman(monkeypatch).secrets == {f"podku-web-r{live.id}-env-KEY": pem}
    env_file = paths.AppPaths("web").env_file(live.id).read_text()
    assert "BEGIN" not in env_file
    units = "".join(path.read_text() for path in paths.SYSTEMD_UNITS.glob(f"web-r{live.id}*"))
    assert f"--secret=podku-web-r{live.id}-env-KEY,type=env,target=KEY" in units and "BEGIN" not in units
    fakes.assert_consistent(host, "web")
    swap.stop_release(live)  # what retiring it does: its secret goes with its env file
    assert fakes_podman(monkeypatch).secrets == {}


def fakes_podman(monkeypatch):
    return podman.engine


def test_config_json_export_carries_newlines_escaped(home, capsys):
    apps.save(apps.App(name="web"))
    apps.save_config("web", {"KEY": "a\nb"})
    assert json.loads(podku(capsys, "config:export", "web", "--format", "json")[1]) == {"KEY": "a\nb"}
    assert sys.modules["podku.events"] is events


def test_the_git_hook_records_the_push_under_the_key_of_the_session(home, monkeypatch, capsys):
    apps.save(apps.App(name="web"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{OLD} {NEW} refs/heads/main\n"))
    monkeypatch.setenv(events.KEY_ENV, "alice")
    monkeypatch.setattr(receive, "run_hook", lambda app, lines: releases.Release(
        app="web", id=3, rev="a", image="localhost/podku/web:r3", description="d"))
    code, _out, err = podku(capsys, "git-hook", "web")
    assert code == 0, err

    def refused(app, lines):
        raise UsageError("push refused: only branch production deploys this app")
    monkeypatch.setattr(receive, "run_hook", refused)
    monkeypatch.setenv(events.KEY_ENV, "not a key;id")  # never trusted as it comes
    assert podku(capsys, "git-hook", "web")[0] == 2
    logged = [(e["key"], e["command"], e["app"], e["outcome"]) for e in events.last(5)]
    assert logged == [("alice", "push", "web", "deployed release 3"),
                      ("-", "push", "web", "failed: push refused: only branch production deploys this app")]
