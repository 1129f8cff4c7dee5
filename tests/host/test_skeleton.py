"""git push over ssh -> podman build -> systemd --user -> Caddy, on a real booted host."""

import shlex
import subprocess

DOMAIN = "podku.localhost"


def host_of(app: str) -> str:
    return f"{app}.{DOMAIN}"


def test_push_deploys_a_containerfile_app_that_answers_through_caddy(host, app_repo):
    result = app_repo.deploy("first")
    assert "-----> Building" in result.stderr
    assert "-----> Application deployed:" in result.stderr
    assert f"http://{host_of(app_repo.app)}/" in result.stderr
    assert host.http_get(host_of(app_repo.app)) == (200, "first r1")


def test_the_app_is_a_systemd_user_unit_of_the_deploy_user(host, app_repo):
    app_repo.deploy("status")
    status = host.as_deploy_user(f"systemctl --user status {app_repo.app} --no-pager", check=False)
    assert "active (running)" in status.stdout
    assert "conmon" in status.stdout and "python3 /app/testapp.py" in status.stdout
    assert f"TriggeredBy: ● {app_repo.app}-r1.socket" in status.stdout


def test_a_failed_build_rejects_the_push_and_the_previous_release_keeps_serving(host, app_repo):
    app_repo.deploy("good")
    app_repo.write(env={"MESSAGE": "broken"}, extra="RUN echo podku-build-breaks-here && false")
    result = app_repo.push(check=False)
    assert result.returncode != 0
    assert "pre-receive hook declined" in result.stderr
    assert "podku-build-breaks-here" in result.stderr
    assert "image build failed" in result.stderr
    assert "release 1 is still serving" in result.stderr
    assert host.http_get(host_of(app_repo.app)) == (200, "good r1")


def test_master_deploys_too_and_other_branches_do_not(host, app_repo):
    app_repo.write(env={"MESSAGE": "from-master"})
    app_repo.push(branch="master")
    assert host.http_get(host_of(app_repo.app)) == (200, "from-master r1")
    app_repo.write(env={"MESSAGE": "feature"})
    result = app_repo.push(branch="feature")
    assert "is not deployed" in result.stderr
    assert host.http_get(host_of(app_repo.app)) == (200, "from-master r1")


BAD_NAMES = ["Upper", "../etc", "-dash", ".hidden", "a" * 64, "semi;colon", "$(id)", "with space",
             "caddy", "x/y", "app-r3"]


def test_invalid_app_names_are_refused_and_change_nothing(host, tmp_path):
    state = "ls -A ~/.local/share/podku/repos ~/.local/state/podku/apps ~/.local/state/podku/sock"
    before = host.as_deploy_user(state).stdout
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q", "-b", "main"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    for bad_name in BAD_NAMES:
        pushed = host.git(repo, "push", f"podku@127.0.0.1:{bad_name}", "main", check=False)
        assert pushed.returncode != 0, bad_name
        # git itself refuses some names before connecting; podku must refuse the rest
        assert "invalid app name" in pushed.stderr or "strange pathname" in pushed.stderr, pushed.stderr
        for words in (["git-receive-pack", shlex.quote(bad_name)], ["apps:create", "--", shlex.quote(bad_name)]):
            refused = host.ssh(*words, check=False)
            assert refused.returncode != 0, (bad_name, words)
            assert "invalid app name" in refused.stderr, refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert host.as_deploy_user(state).stdout == before


def test_commands_go_through_the_same_ssh_entry(host, app_repo):
    app_repo.deploy("listed")
    assert app_repo.app in host.ssh("apps:list").stdout.split()
    assert host.ssh("urls", app_repo.app).stdout.strip() == f"http://{host_of(app_repo.app)}/"


def test_the_ssh_entry_runs_no_shell_and_forwards_nothing(host, app_repo):
    app_repo.deploy("safe")
    result = host.ssh("apps:list; touch /tmp/pwned", check=False)
    assert result.returncode != 0
    assert host.run(["test", "-e", "/tmp/pwned"], check=False).returncode != 0
    shell = host.ssh("bash", check=False)
    assert shell.returncode != 0 and "is not a podku command" in shell.stderr
    keys = host.run(["cat", "/home/podku/.ssh/authorized_keys"]).stdout
    assert 'ssh-command --key admin",restrict,pty ' in keys


def test_host_commands_run_as_the_deploy_user(host, app_repo):
    app_repo.deploy("host-side")
    assert app_repo.app in host.podku("apps:list").stdout.split()
    refused = host.podku("apps:create", "../../x", check=False)
    assert refused.returncode == 2 and "invalid app name" in refused.stderr


def test_install_sh_a_second_time_succeeds_and_changes_nothing(host, app_repo):
    app_repo.deploy("before-reinstall")
    watched = ("/home/podku/.config/containers/containers.conf /home/podku/.config/podku/caddy.json "
               "/home/podku/.config/systemd/user/podku-caddy.service /home/podku/.ssh/authorized_keys "
               "/usr/local/bin/podku /home/podku/.local/share/podku/installed-source")
    before = host.sh(f"sha256sum {watched}").stdout
    again = host.install()
    assert "Creating user" not in again.stdout and "Installing podku" not in again.stdout
    assert host.sh(f"sha256sum {watched}").stdout == before
    assert host.http_get(host_of(app_repo.app)) == (200, "before-reinstall r1")


def test_unknown_hosts_get_a_404_from_caddy(host):
    status, body = host.http_get("nothing-here.podku.localhost")
    assert status == 404 and "No app" in body
