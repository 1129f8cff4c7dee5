"""install.sh against a hostile deploy user: root never writes, reads or removes through the
user's links, the home is private, only podku's Caddy may bind low ports, the deploy user
reads only its own journal and never holds root's terminal."""

import testhost

HOME = "/home/podku"
SHARE = f"{HOME}/.local/share/podku"
BAIT = "/var/lib/podku-bait"
# Directories a swapped link points to: a root-loaded one, podku's own, and a bait.
TARGETS = f"/etc/modprobe.d /etc/sysctl.d /usr/local/lib/podku /usr/local/bin {BAIT}"
MARKER = "/root/podku-test-marker"
# Everything created, changed or removed outside the home (a removal changes its directory).
CHANGED_OUTSIDE_HOME = (
    "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp"
    f" -o -path {HOME} -o -path /var/log/journal -o -path {MARKER} \\) -prune"
    f" -o \\( -newer {MARKER} -o -cnewer {MARKER} \\) -print")
# A deploy user's stand-in for podku that records which terminal it was handed.
TTY_SPY = """#!/bin/sh
line="fds $(readlink /proc/$$/fd/0) $(readlink /proc/$$/fd/1) $(readlink /proc/$$/fd/2) ctty $(ps -o tty= -p $$)"
echo "$line" >> "$HOME/tty.log"
exec "$0.real" "$@"
"""


def snapshot(host: testhost.TestHost) -> str:
    return host.sh(f"find {TARGETS} -printf '%p %u:%g %m %l\\n' | sort; "
                   f"find {TARGETS} -type f -exec sha256sum {{}} + | sort").stdout


def unprivileged_port_start(host: testhost.TestHost) -> str:
    return host.in_netns(["sysctl", "-n", "net.ipv4.ip_unprivileged_port_start"], check=True).stdout.strip()


def plant_an_older_install(host: testhost.TestHost) -> None:
    """What earlier install.sh versions left: the journal group, the sysctl file, the
    capability on /usr/bin/caddy, a 0755 home."""
    host.sh("useradd --create-home --shell /bin/bash podku && usermod -a -G systemd-journal podku"
            f" && chmod 0755 {HOME} && setcap cap_net_bind_service=+ep /usr/bin/caddy"
            " && echo 'net.ipv4.ip_unprivileged_port_start = 80' > /etc/sysctl.d/50-podku.conf")


def test_a_reinstall_after_the_deploy_user_swaps_its_dirs_for_links_changes_nothing_outside_its_home(
        fresh_host, tmp_path):
    host = fresh_host
    ports_before = unprivileged_port_start(host)
    plant_an_older_install(host)
    host.install()
    assert host.run(["id", "-nG", "podku"]).stdout.split() == ["podku"]
    assert host.run(["test", "-e", "/etc/sysctl.d/50-podku.conf"], check=False).returncode != 0
    assert host.run(["getcap", "/usr/bin/caddy"]).stdout.strip() == ""
    assert host.run(["stat", "-c", "%a", HOME]).stdout.strip() == "700"

    host.sh(f"mkdir -p {BAIT}/source && echo root-file > {BAIT}/source/file"
            f" && echo root-secret > {BAIT}/stamp && chmod 0600 {BAIT}/stamp")
    before = snapshot(host)
    host.sh(f"touch {MARKER} && sleep 1.1")

    def refused_with(line: str) -> None:
        refused = host.run(["/opt/podku-src/install.sh", "--base-image-tar", "/var/tmp/podku-base.tar"],
                           check=False)
        assert refused.returncode != 0
        assert refused.stderr.rstrip().splitlines()[-1] == f" !     {line}", refused.stderr
        assert host.sh(CHANGED_OUTSIDE_HOME).stdout == ""
        assert snapshot(host) == before

    host.as_deploy_user("cd ~/.config && mv containers containers.real && ln -s /etc/modprobe.d containers")
    refused_with(f"cannot write {HOME}/.config/containers/containers.conf as podku"
                 " (a directory on its way is not the user's own?)")
    # A linked parent: root's `rm -rf ~/.local/share/podku/source` would remove the bait's.
    host.as_deploy_user("cd ~/.config && rm containers && mv containers.real containers"
                        f" && mv {SHARE} {SHARE}.real && ln -s {BAIT} {SHARE}")
    refused_with(f"cannot replace {SHARE}/source as podku (a directory on its way is not the user's own?)")

    # The user's own dirs back, its links in them are replaced, not followed.
    host.as_deploy_user(f"rm {SHARE} && mv {SHARE}.real {SHARE} && cd {SHARE}"
                        f" && mv source source.real && ln -s {BAIT}/source source"
                        # a stamp that is not the installed one forces a reinstall of the source
                        f" && rm installed-source && ln -s {BAIT}/stamp installed-source")
    again = host.install()
    assert "Installing podku" in again.stdout
    assert host.sh(CHANGED_OUTSIDE_HOME).stdout == ""
    assert snapshot(host) == before
    assert host.as_deploy_user(f"stat -c %F {SHARE}/source {SHARE}/installed-source").stdout.split("\n")[:2] == [
        "directory", "regular file"]
    assert unprivileged_port_start(host) == ports_before

    repo = testhost.AppRepo(tmp_path / "afterlinks", host, "afterlinks")
    repo.deploy("after-links")
    assert host.http_get("afterlinks.podku.localhost") == (200, "after-links r1")
    assert_user_code_never_gets_roots_terminal(host)


def assert_user_code_never_gets_roots_terminal(host: testhost.TestHost) -> None:
    host.run(["su", "-", "podku", "-c", f"cd {SHARE}/venv/bin && mv podku podku.real && cat > podku"
              " && chmod 0755 podku"], input=TTY_SPY)
    # root at a terminal: install.sh again, and the podku wrapper (interactive, and piped)
    session = host.run(["script", "-qec", "tty > /root/tty; /opt/podku-src/install.sh >/dev/null"
                        " && podku apps:list && echo x | podku apps:list && podku apps:list </dev/null",
                        "/dev/null"])
    assert session.stdout.count("My Apps") == 3, session.stdout
    root_tty = host.run(["cat", "/root/tty"]).stdout.strip()
    assert root_tty.startswith("/dev/pts/")
    seen = host.run(["cat", f"{HOME}/tty.log"]).stdout.splitlines()
    assert len(seen) >= 4, seen
    for line in seen:
        assert root_tty not in line.split(), line
        assert line.split()[-1] != root_tty.removeprefix("/dev/"), line


def test_the_deploy_user_is_confined_on_the_host(host, app_repo):
    app_repo.deploy("confined")
    assert host.http_get(f"{app_repo.app}.podku.localhost") == (200, "confined r1")
    assert host.run(["stat", "-c", "%a %U", HOME]).stdout.split() == ["700", "podku"]
    assert "systemd-journal" not in host.run(["id", "-nG", "podku"]).stdout.split()
    assert host.run(["stat", "-c", "%U:%G %a", "/usr/local/lib/podku/caddy"]).stdout.strip() == "root:podku 750"
    assert host.sh("readlink /proc/$(pgrep -x -u podku caddy)/exe").stdout.strip() == "/usr/local/lib/podku/caddy"
    assert host.run(["getcap", "/usr/bin/caddy"]).stdout.strip() == ""
    assert unprivileged_port_start(host) == "1024"

    host.sh("id other >/dev/null 2>&1 || useradd --create-home other")
    for port in (80, 443):
        bind = f"import socket; socket.socket().bind((\"127.0.0.1\", {port}))"
        refused = host.run(["su", "other", "-c", f"python3 -c '{bind}'"], check=False)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr, port
    assert host.run(["su", "other", "-c", "/usr/local/lib/podku/caddy version"], check=False).returncode == 126
    assert host.run(["su", "other", "-c", f"ls {HOME}/.local"], check=False).returncode != 0

    # The app's log without the group; nothing of the system's.
    host.run(["logger", "podku-test-root-canary"])
    logs = host.ssh("logs", app_repo.app).stdout
    assert "testapp: serving confined" in logs
    assert "podku-test-root-canary" not in host.as_deploy_user("journalctl --no-pager -q").stdout
    assert app_repo.app in host.podku("apps:list").stdout.split()
