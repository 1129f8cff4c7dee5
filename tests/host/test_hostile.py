"""A key holder tries what an attacker with a push key would, over real ssh, against an
installed host: nothing but podku's public commands runs, nothing outside the app changes,
no foreign log line and no traceback comes back, the live release keeps serving."""

import json
import subprocess
import time

import pytest

# The whole matrix of words and commands is tests/unit/test_hostile_words.py; here one case
# of each class goes end to end through real ssh.
HOSTILE_WORDS = ["a;id", "$(id)", "../etc", "a\nb", "\x1b[2J"]
WATCHED = ["~/.ssh/authorized_keys", "~/.local/share/podku/venv/bin/podku"]


def fingerprint(host, app: str) -> str:
    files = WATCHED + [f"~/.local/share/podku/repos/{app}.git/hooks/pre-receive"]
    # every file of the home but those that deploys and retirements of other tests' apps change
    listing = ("find ~ -xdev -path ~/.local/share/containers -prune -o -path ~/.cache -prune -o -print"
               " | grep -Ev -e '-r[0-9]+' -e '/releases/' | sort")
    return host.as_deploy_user(f"sha256sum {' '.join(files)}; {listing}").stdout


def ssh_raw(host, command, **kwargs) -> subprocess.CompletedProcess:
    """ssh with one command string as given (str or bytes), not re-joined from words."""
    argv = ["ssh", "-i", str(host.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "--", "podku@127.0.0.1", command]  # without --, ssh parses a leading - itself
    return subprocess.run(["ip", "netns", "exec", host.netns, *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120, **kwargs)


def assert_one_line_refusal(result, code: int | None = None) -> None:
    err = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else result.stderr
    assert result.returncode != 0 if code is None else result.returncode == code, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.fixture
def deployed(host, app_repo):
    app_repo.deploy("target")
    return app_repo


def test_only_public_commands_run_over_ssh(host, deployed):
    """The allowlist's matrix is in tests/unit/test_cli.py."""
    app = deployed.app
    before = fingerprint(host, app)
    for command in ("-- git-hook {app}", "/bin/sh", "ps:retire {app} 1", "scp -t /tmp"):
        result = ssh_raw(host, command.format(app=app))
        assert_one_line_refusal(result, code=2)
        assert b"is not a podku command" in result.stderr
    assert fingerprint(host, app) == before
    assert host.http_get(f"{app}.podku.localhost") == (200, "target r1")


def test_the_git_hook_cannot_be_made_to_truncate_a_file(host, deployed):
    app = deployed.app
    before = fingerprint(host, app)
    victim = "~/.ssh/authorized_keys"
    for command in (f"-- git-hook {app}", f"git-hook {app}"):
        result = ssh_raw(host, command, input=f"{'0' * 40} -o{victim} refs/heads/main\n".encode())
        assert_one_line_refusal(result, code=2)
    assert fingerprint(host, app) == before


def test_a_malformed_app_json_rejects_the_push_and_the_live_release_serves(host, deployed):
    """Every malformed app.json is in tests/unit/test_appjson.py."""
    app_json, reason = "[" * 5000 + "]" * 5000, "nested deeper than"
    (deployed.path / "app.json").write_text(app_json)
    deployed.write(env={"MESSAGE": "never"})
    result = deployed.push(check=False)
    assert result.returncode != 0
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert host.http_get(f"{deployed.app}.podku.localhost") == (200, "target r1")


def test_config_values_that_break_terminals_or_deploys_are_refused(host, deployed):
    """Not UTF-8, too long and the rest: tests/unit/test_cli.py."""
    app = deployed.app
    assignment, reason = b"A=\x1b]0;owned\x07\x1b[2J", b"control characters"
    for flags in (b"", b"--no-restart "):
        result = ssh_raw(host, b"config:set " + flags + app.encode() + b" '" + assignment + b"'")
        assert_one_line_refusal(result, code=2)
        assert reason in result.stderr
    assert "A:" not in host.ssh("config:show", app).stdout
    deployed.deploy("still-deploys")
    assert host.http_get(f"{app}.podku.localhost") == (200, "still-deploys r2")


def test_logs_show_only_the_apps_own_units(host, deployed, app_name):
    canary = f"PODKU-CANARY-{time.monotonic_ns()}"
    host.run(["logger", "--tag", "secret", canary])
    host.as_deploy_user(f"systemd-cat --identifier=other echo {canary}")
    undeployed = app_name + "x"
    host.ssh("apps:create", undeployed)
    empty = host.ssh("logs", undeployed, check=False)
    assert empty.returncode != 0 and "has no logs yet" in empty.stderr
    for result in (empty, host.ssh("logs", deployed.app, "-n", "100000")):
        assert canary not in result.stdout + result.stderr
    assert "systemd-journal" not in host.run(["id", "-nG", "podku"]).stdout.split()


def test_ssh_keys_come_from_stdin_and_are_bounded(host):
    before = host.as_deploy_user("sha256sum ~/.ssh/authorized_keys").stdout
    with_file = host.ssh("ssh-keys:add", "evil", "/etc/passwd", check=False)
    assert_one_line_refusal(with_file, code=2)
    with open("/dev/zero", "rb") as zeros:
        endless = ssh_raw(host, "ssh-keys:add evil", stdin=zeros)
    assert_one_line_refusal(endless, code=2)
    assert b"at most 16 KiB" in endless.stderr
    assert host.as_deploy_user("sha256sum ~/.ssh/authorized_keys").stdout == before


def test_a_refused_http_port_is_not_saved(host, app_name):
    settings_before = host.as_deploy_user("cat ~/.config/podku/podku.json").stdout
    result = host.ssh("domains:set-global", "podku.localhost", "--http-port", "22", check=False)
    assert_one_line_refusal(result)
    assert host.as_deploy_user("cat ~/.config/podku/podku.json").stdout == settings_before
    host.ssh("apps:create", app_name)  # every later route change still works
    host.ssh("apps:destroy", app_name, "--force")


def test_one_off_containers_have_no_network_and_end_with_the_session(host, deployed):
    app = deployed.app
    probe = ("import socket, sys; s = socket.socket(); s.settimeout(3); "
             "code = s.connect_ex(('127.0.0.1', 80)); "
             "print('reached' if code == 0 else 'refused'); sys.exit(0 if code == 0 else 3)")
    ran = host.ssh("run", app, "python3", "-c", json.dumps(probe), check=False)
    assert (ran.stdout.strip(), ran.returncode) == ("refused", 3)
    running = lambda: host.as_deploy_user(  # noqa: E731
        f"podman ps --quiet --filter label=podku.oneoff={app}").stdout.split()
    session = subprocess.Popen(["ip", "netns", "exec", host.netns, "ssh", "-i", str(host.key),
                                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                "podku@127.0.0.1", "run", app, "sleep", "600"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running(), "the one-off container did not start"
    session.kill()
    session.wait()
    deadline = time.monotonic() + 30
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running() == [], "the one-off container outlived its ssh session"


def test_hostile_words_in_every_command_are_refused_in_one_line(host, deployed):
    app = deployed.app
    before = fingerprint(host, app)
    for word in HOSTILE_WORDS:
        quoted = "'" + word.replace("'", "'\\''") + "'"
        for template in ("apps:create {w}", "config:set {app} {w}", "rollback {app} {w}", "run {w} true",
                         "apps:destroy {w} --force"):
            result = ssh_raw(host, template.format(app=app, w=quoted))
            assert result.returncode != 0, (template, word)
            assert "Traceback" not in result.stderr.decode(errors="replace"), (template, word)
            assert result.stderr.count(b"\n") == 1, (template, word, result.stderr)
    assert fingerprint(host, app) == before
    assert host.http_get(f"{app}.podku.localhost") == (200, "target r1")
