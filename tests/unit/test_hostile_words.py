"""Every public command, given a hostile word where a name, key, number or value goes, through
the ssh entry (SSH_ORIGINAL_COMMAND, as sshd passes it): one line on stderr, a non-zero exit,
no traceback and nothing changed. The host keeps one end-to-end case (tests/host/test_hostile.py)."""

import shlex
import sys

import pytest

from podku import apps
from podku.cli import main as cli
from podku.host import systemd

HOSTILE_WORDS = ["a;id", "$(id)", "`id`", "../etc", "--", "-x", "a\nb", "\x1b[2J", "x" * 5000, "*", "''",
                 "a\x01b", "%h", "ä"]
TEMPLATES = ["apps:create {w}", "config:set web {w}", "config:get web {w}", "config:unset web {w}",
             "rollback web {w}", "releases:set web keep-images {w}", "checks:set web {w} 1",
             "checks:set web attempts {w}", "logs {w}", "ssh-keys:remove {w}", "domains:set-global {w}",
             "urls {w}", "run {w} true", "cron:list {w}", "cron:run web {w}", "cron:run {w} 1",
             "doctor {w}", "apps:destroy {w} --force", "domains:add web {w}", "domains:add {w} a.test",
             "ps:scale web {w}", "ps:scale {w} web=1", "resource:limit web --memory {w}",
             "storage:mount web {w}", "storage:ensure-directory {w}", "ps:set web idle-timeout {w}",
             "builder:set web {w}", "certs:report {w}", "releases {w}", "ps:report {w}", "config:keys {w}",
             "config:export {w}", "config:export web --format {w}", "config:clear {w}",
             "network:set web egress {w}", "network:set {w} egress on", "network:report {w}",
             "postgres:create {w}", "postgres:link {w} web", "postgres:info {w}", "postgres:destroy {w} --force",
             "redis:create {w}", "redis:link {w} web", "redis:unlink {w} web",
             "postgres:export {w}", "postgres:import {w}", "postgres:connect {w}",
             "redis:export {w}", "redis:import {w}", "redis:connect {w}",
             "postgres:set {w} shared-buffers 64MB", "postgres:set web {w} 10", "postgres:set web max-connections {w}",
             "redis:set {w} maxmemory 64mb", "redis:set web maxmemory {w}"]


class NoSystemd:
    def __getattr__(self, name: str):
        raise AssertionError(f"a refused command reached systemd ({name})")


def snapshot(home) -> dict:
    """Every file's content but the lock files (taking a lock is not a change)."""
    return {path: path.read_bytes() if path.is_file() else None for path in home.rglob("*") if path.name != "lock"}


@pytest.fixture
def web(home, monkeypatch):
    monkeypatch.setattr(systemd, "manager", NoSystemd())
    monkeypatch.setitem(sys.modules, "pystemd", None)
    apps.save(apps.App(name="web"))


@pytest.mark.parametrize("template", TEMPLATES)
def test_hostile_words_are_refused_in_one_line_and_change_nothing(web, home, capsys, monkeypatch, template):
    for word in HOSTILE_WORDS:
        if template == "doctor {w}" and word == "--":
            continue  # `doctor --` is a plain `doctor` (every app): click ends options there
        monkeypatch.setenv("SSH_ORIGINAL_COMMAND", template.format(w=shlex.quote(word)))
        before = snapshot(home)
        with pytest.raises(SystemExit) as exit_:
            cli.main(["ssh-command"])
        err = capsys.readouterr().err
        assert exit_.value.code != 0, (template, word)
        assert err.count("\n") == 1 and "Traceback" not in err, (template, word, err)
        assert snapshot(home) == before, (template, word)
