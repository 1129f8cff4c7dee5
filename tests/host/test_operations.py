"""Issue 19's everyday operations on an installed host: multi-line config (config:set
--encoded), the deploy branch and build directory (git:set), following logs, and the events
log of who did what."""

import base64
import shlex
import shutil
import subprocess
import time

import testhost

PEM = ("-----BEGIN PRIVATE KEY-----\n"
       "MC4CAQAwBQYDK2VwBCIEIFdcTestKeyOnlyForPodkuHostTests000000000000\n"
       "\tindented $(id) `id` 'quoted' \"double\" %h\n"
       "-----END PRIVATE KEY-----\n")


def test_a_pem_key_set_encoded_reaches_the_app_byte_for_byte(host, app_repo):
    app = app_repo.app
    app_repo.deploy("pem")
    encoded = base64.b64encode(PEM.encode()).decode()
    host.ssh("config:set", "--encoded", app, f"GREETING={encoded}")
    assert host.http_get(f"{app}.podku.localhost", "/config") == (200, PEM)
    assert base64.b64decode(host.ssh("config:get", "--encoded", app, "GREETING").stdout).decode() == PEM
    shown = host.ssh("config:get", app, "GREETING").stdout
    assert shown.count("\n") == 1 and "\\x0a" in shown
    # never in a unit file or an env file: only podman's secret store holds it
    leaked = host.as_deploy_user("grep -rl 'BEGIN PRIVATE' ~/.config/systemd/user "
                                 "~/.local/state/podku/apps/*/releases/*.env", check=False)
    assert leaked.stdout == "", leaked.stdout
    # a hostile value: one line, nothing changed
    refused = host.ssh("config:set", "--encoded", app, shlex.quote("GREETING=$(id)"), check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "not base64" in refused.stderr
    escape = base64.b64encode(b"a\x1b[2Jb").decode()
    refused = host.ssh("config:set", "--encoded", app, f"GREETING={escape}", check=False)
    assert refused.returncode == 2 and "\\x1b" in refused.stderr
    assert host.http_get(f"{app}.podku.localhost", "/config") == (200, PEM)
    # a rollback's and a later release's containers get it too; retired releases' secrets go
    host.ssh("config:set", app, "OTHER=1")
    assert host.http_get(f"{app}.podku.localhost", "/config") == (200, PEM)


def test_only_the_deploy_branch_deploys(host, app_repo):
    app = app_repo.app
    app_repo.deploy("first")
    host.ssh("git:set", app, "deploy-branch", "production")
    assert "production" in host.ssh("git:report", app).stdout
    head = host.as_deploy_user(f"git --git-dir ~/.local/share/podku/repos/{app}.git symbolic-ref HEAD").stdout
    assert head == "refs/heads/production\n"
    app_repo.write(env={"MESSAGE": "from-main"})
    refused = app_repo.push(check=False)
    assert refused.returncode != 0 and "only branch production deploys" in refused.stderr
    assert host.http_get(f"{app}.podku.localhost") == (200, "first r1")
    app_repo.push(branch="production")
    assert host.http_get(f"{app}.podku.localhost") == (200, "from-main r2")
    for bad in ("a..b", "-x", "a\\nb", "x.lock", "$(id)"):
        refused = host.ssh("git:set", app, "deploy-branch", shlex.quote(bad), check=False)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (bad, refused.stderr)
    assert "production" in host.ssh("git:report", app).stdout


def test_a_monorepo_deploys_each_app_from_its_build_dir(host, tmp_path, app_name):
    repo = testhost.AppRepo(tmp_path / "mono", host, f"{app_name}a")
    second = f"{app_name}b"
    for sub, message in (("services/one", "one"), ("two", "two")):
        directory = repo.path / sub
        directory.mkdir(parents=True)
        shutil.copy(repo.path / "testapp.py", directory / "testapp.py")
        (directory / "Containerfile").write_text(
            f"FROM localhost/podku/python:3.11\nCOPY testapp.py /app/testapp.py\nENV MESSAGE={message}\n"
            'CMD ["python3", "/app/testapp.py"]\n')
    (repo.path / "testapp.py").unlink()
    (repo.path / "escape").symlink_to("/etc")
    repo._git("add", "-A")
    repo._git("commit", "-q", "-m", "monorepo")
    for app, sub in ((repo.app, "services/one"), (second, "two")):
        host.ssh("apps:create", app)
        host.ssh("git:set", app, "build-dir", sub)
    repo.push()
    host.git(repo.path, "push", host.remote(second), "HEAD:main")
    assert host.http_get(f"{repo.app}.podku.localhost") == (200, "one r1")
    assert host.http_get(f"{second}.podku.localhost") == (200, "two r1")
    # a symlink leaving the tree is not followed; '..' and absolute paths are refused at once
    host.ssh("git:set", second, "build-dir", "escape")
    repo._git("commit", "-q", "--allow-empty", "-m", "again")
    refused = host.git(repo.path, "push", host.remote(second), "HEAD:main", check=False)
    assert refused.returncode != 0 and "is not a directory of this revision" in refused.stderr
    assert host.http_get(f"{second}.podku.localhost") == (200, "two r1")
    for bad in ("../x", "/etc", "a/../../b", "."):
        refused = host.ssh("git:set", second, "build-dir", shlex.quote(bad), check=False)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (bad, refused.stderr)


def test_logs_follow_prints_new_lines_and_ends_with_the_session(host, app_repo):
    app = app_repo.app
    app_repo.deploy("logs")
    argv = ["ip", "netns", "exec", host.netns, "ssh", "-i", str(host.key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"{testhost.DEPLOY_USER}@127.0.0.1", "logs", app, "-f", "-n", "1"]
    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        follower.stdout.readline()  # journalctl has started: the last old line
        marker = f"after-follow-{time.time_ns()}"
        host.http_get(f"{app}.podku.localhost", f"/log/{marker}")
        deadline = time.monotonic() + 30
        seen = ""
        while marker not in seen and time.monotonic() < deadline:
            seen = follower.stdout.readline()
        assert marker in seen
    finally:
        follower.kill()  # the client goes away without a word
        follower.wait()
    deadline = time.monotonic() + 15
    while followers(host) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert followers(host) == []
    refused = host.ssh("logs", app, "--since", shlex.quote("--output=json"), check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    since = host.ssh("logs", app, "--since", "'-10min'", "--until", "now").stdout
    assert "after-follow-" in since


def followers(host) -> list[str]:
    listed = host.run(["pgrep", "-u", testhost.DEPLOY_USER, "-a", "journalctl"], check=False)
    return [line for line in listed.stdout.splitlines() if "--follow" in line]


def test_events_show_the_key_name_of_a_push_and_of_commands(host, app_repo):
    app = app_repo.app
    app_repo.deploy("events")
    host.ssh("config:get", app, "NOPE", check=False)
    lines = host.ssh("events", "-n", "20").stdout.splitlines()
    push = [line for line in lines if " push " in line and f" {app} " in line]
    assert push and "admin" in push[-1] and "deployed release 1" in push[-1], lines
    failed = [line for line in lines if " config:get " in line and f" {app} " in line]
    assert failed and "admin" in failed[-1] and "failed (exit" in failed[-1], lines
    assert "NOPE" not in "\n".join(lines)  # only a command's name and app are kept
    keys = host.as_deploy_user("cat ~/.ssh/authorized_keys").stdout
    assert "ssh-command --key admin\"" in keys


def test_a_global_value_reaches_an_app_at_its_next_release_and_its_own_value_wins(host, app_repo):
    app = app_repo.app
    app_repo.deploy("global")
    try:
        host.ssh("config:set", "--global", "GREETING=from-global")
        assert host.ssh("config:get", "--global", "GREETING").stdout == "from-global\n"
        assert host.http_get(f"{app}.podku.localhost", "/config") == (200, "-")  # stored only
        host.ssh("ps:restart", app)
        assert host.http_get(f"{app}.podku.localhost", "/config") == (200, "from-global")
        host.ssh("config:set", app, "GREETING=own")
        assert host.http_get(f"{app}.podku.localhost", "/config") == (200, "own")
        refused = host.ssh("config:set", "--global", shlex.quote("GREETING=a\x1bb"), check=False)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    finally:
        host.ssh("config:unset", "--global", "GREETING")
    assert "GREETING" not in host.ssh("config:show", "--global").stdout
