"""Every public command, given a hostile word where a name, key, number or value goes, through
the ssh entry (SSH_ORIGINAL_COMMAND, as sshd passes it): one line on stderr, a non-zero exit,
no traceback and nothing changed. The host keeps one end-to-end case (tests/host/test_hostile.py)."""

import shlex
import sys

import pytest

import fakes
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
             "apps:rename {w} shop", "apps:rename web {w}", "apps:clone {w} shop", "apps:clone web {w}",
             "git:load-image {w}", "git:from-image {w} registry.example/a:1", "git:from-image web {w}",
             "enter {w}", "enter web {w}", "enter web web {w}", "enter web web 1 -- {w}", "ps:inspect {w}",
             "config:set --encoded web {w}", "config:set --encoded web K={w}", "config:get --encoded web {w}",
             "git:set web deploy-branch {w}", "git:set web build-dir {w}", "git:set web {w} x",
             "git:set {w} build-dir x", "git:report {w}", "logs web --since {w}", "logs web --until {w}",
             "events -n {w}", "config:set --global {w}", "config:get --global {w}", "config:unset --global {w}",
             "config:show --global {w}",
             "apps:export {w}", "apps:export web --format {w}", "apps:export web --registry {w}",
             "apps:export web --storage-size {w}", "apps:export web --tls-issuer {w}",
             "apps:export web --ingress-class {w}",
             "maintenance:enable {w}", "maintenance:disable {w}", "http-auth:enable {w} alice",
             "http-auth:enable web {w}", "http-auth:disable {w}", "http-auth:report {w}",
             "redirect:set web {w} a.test", "redirect:set web a.test {w}", "redirect:set web a.test b.test {w}",
             "redirect:unset web {w}", "redirect:report {w}", "proxy:set web {w} 1",
             "proxy:set web client-max-body-size {w}", "proxy:set web hsts {w}", "proxy:set web read-timeout {w}",
             "proxy:set web https-only {w}",
             "proxy:set {w} hsts 1", "proxy:unset web {w}", "proxy:report {w}", "logs:access {w}",
             "logs:access web -n {w}",
             "postgres:export {w}", "postgres:import {w}", "postgres:connect {w}",
             "redis:export {w}", "redis:import {w}", "redis:connect {w}",
             "postgres:set {w} shared-buffers 64MB", "postgres:set web {w} 10", "postgres:set web max-connections {w}",
             "redis:set {w} maxmemory 64mb", "redis:set web maxmemory {w}",
             "static:set {w} fallback /index.html", "static:set web {w} /index.html", "static:set web fallback {w}",
             "static:unset {w} fallback", "static:unset web {w}", "static:report {w}"]


def snapshot(home) -> dict:
    """Every file's content but the lock files (taking a lock is not a change) and the events
    log (a refused command is recorded there, by design)."""
    return {path: path.read_bytes() if path.is_file() else None for path in home.rglob("*")
            if path.name != "lock" and not path.name.startswith("events.")}


@pytest.fixture
def web(home, monkeypatch):
    monkeypatch.setattr(systemd, "manager", fakes.NoSystemd())
    monkeypatch.setitem(sys.modules, "pystemd", None)
    apps.save(apps.App(name="web"))


@pytest.mark.parametrize("template", TEMPLATES)
def test_hostile_words_are_refused_in_one_line_and_change_nothing(web, home, capsys, monkeypatch, template):
    for word in HOSTILE_WORDS:
        if template in ("doctor {w}", "config:show --global {w}") and word == "--":
            continue  # `doctor --` is a plain `doctor` (every app): click ends options there
        monkeypatch.setenv("SSH_ORIGINAL_COMMAND", template.format(w=shlex.quote(word)))
        before = snapshot(home)
        with pytest.raises(SystemExit) as exit_:
            cli.main(["ssh-command"])
        err = capsys.readouterr().err
        assert exit_.value.code != 0, (template, word)
        assert err.count("\n") == 1 and "Traceback" not in err, (template, word, err)
        assert snapshot(home) == before, (template, word)
