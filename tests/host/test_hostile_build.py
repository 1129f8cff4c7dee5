"""A push key tries to break out through the build, over real ssh on an installed host:
trees that write through symlinks, RUN --mount escapes, other apps' images, endless builds,
oversized pushes. Each must be refused or harmless, with a one-line reason."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import testhost

HOME = "/home/podku"
WATCHED = (f"{HOME}/.ssh/authorized_keys", f"{HOME}/.local/share/podku/venv/bin/podku")
LIMITS = f"{HOME}/.config/podku/limits.json"
# Where a deploy (failed or not) may create files in the deploy user's home.
EXPECTED_WRITES = (".local/state/podku/", ".local/share/containers/", ".cache/",
                   ".local/share/podku/repos/", ".config/systemd/user/", ".config/containers/")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@podku.invalid",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@podku.invalid"}


def one_line_reason(stderr: str) -> list[str]:
    """podku's refusal lines (` !     ...`) in a push's output."""
    return [line for line in stderr.splitlines() if line.startswith("remote:  !     ")]


def hashes(host, app: str) -> str:
    hook = f"{HOME}/.local/share/podku/repos/{app}.git/hooks/pre-receive"
    return host.run(["sha256sum", *WATCHED, hook]).stdout


def files_newer_than(host, marker: str) -> list[str]:
    found = host.run(["find", HOME, "-xdev", "-newer", marker, "-not", "-type", "d"]).stdout.split()
    return [path for path in found if not path.removeprefix(HOME + "/").startswith(EXPECTED_WRITES)]


def set_limits(host, **values) -> None:
    text = json.dumps(values)
    host.as_deploy_user(f"mkdir -p ~/.config/podku && echo '{text}' > {LIMITS}")


@pytest.fixture
def limits_restored(host):
    yield
    host.run(["rm", "-f", LIMITS])


# --- (a) trees that write through a symlink --------------------------------------------------

def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, check=True,
                          env={**os.environ, **GIT_IDENTITY}).stdout.decode().strip()


def hostile_commit(repo: Path) -> str:
    """A commit of the test app plus, twice each, `x` (a symlink to ~/.ssh, and a directory
    with `authorized_keys`) and `y` (a relative symlink to the venv's bin, and a directory
    with `podku`). git writes it (mktree does not check); fsck calls it duplicateEntries."""
    def blob(data: bytes) -> str:
        return git(repo, "hash-object", "-w", "--stdin", input=data)

    def tree(entries: list[str]) -> str:
        return git(repo, "mktree", input="".join(entry + "\n" for entry in entries).encode())

    app = blob((testhost.APPS_DIR / "testapp.py").read_bytes())
    containerfile = blob(b"FROM localhost/podku/python:3.11\nCOPY testapp.py /app/testapp.py\n"
                         b'CMD ["python3", "/app/testapp.py"]\n')
    payload = blob(b"ssh-ed25519 AAAAattacker attacker\n")
    top = tree([f"100644 blob {containerfile}\tContainerfile", f"100644 blob {app}\ttestapp.py",
                f"120000 blob {blob(f'{HOME}/.ssh'.encode())}\tx",
                f"040000 tree {tree([f'100644 blob {payload}{chr(9)}authorized_keys'])}\tx",
                f"120000 blob {blob(b'../../../../.local/share/podku/venv/bin')}\ty",
                f"040000 tree {tree([f'100755 blob {payload}{chr(9)}podku'])}\ty"])
    return git(repo, "commit-tree", "-m", "hostile", top)


@pytest.fixture
def local_repo(tmp_path) -> Path:
    repo = tmp_path / "hostile"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


def test_a_tree_holding_a_symlink_and_a_directory_of_one_name_is_refused_by_git(host, app_repo, local_repo):
    app_repo.deploy("before")  # the app exists, with its hook
    git(local_repo, "update-ref", "refs/heads/main", hostile_commit(local_repo))
    host.as_deploy_user(f"git --git-dir ~/.local/share/podku/repos/{app_repo.app}.git "
                        "config receive.fsckObjects false")  # as an older podku left it: a push heals it
    before = hashes(host, app_repo.app)
    host.run(["touch", "/var/tmp/hostile-marker"])
    pushed = host.git(local_repo, "push", "--force", host.remote(app_repo.app), "main", check=False)
    assert pushed.returncode != 0
    assert "duplicateEntries" in pushed.stderr, pushed.stderr
    assert hashes(host, app_repo.app) == before
    assert files_newer_than(host, "/var/tmp/hostile-marker") == []
    assert host.http_get(f"{app_repo.app}.podku.localhost") == (200, "before r1")


def test_a_checkout_of_such_a_tree_writes_nothing_outside_the_build_even_past_fsck(host, app_repo, local_repo):
    """Defence in depth: the objects are put into the repository behind git's back and the
    hook deploys them; git's checkout must not write through the links either."""
    app_repo.deploy("before")
    commit = hostile_commit(local_repo)
    bundle_dir = host.root / "var" / "tmp" / app_repo.app
    bundle_dir.mkdir()
    git(local_repo, "update-ref", "refs/heads/hostile", commit)
    git(local_repo, "bundle", "create", str(bundle_dir / "hostile.bundle"), "refs/heads/hostile")
    os.chmod(bundle_dir, 0o755)
    repo = f"~/.local/share/podku/repos/{app_repo.app}.git"
    host.as_deploy_user(f"git --git-dir {repo} -c transfer.fsckObjects=false fetch -q "
                        f"/var/tmp/{app_repo.app}/hostile.bundle refs/heads/hostile:refs/heads/hostile")
    before = hashes(host, app_repo.app)
    host.run(["touch", "/var/tmp/hostile-marker"])
    deployed = host.run(["podku", "git-hook", app_repo.app], input=f"{'0' * 40} {commit} refs/heads/main\n",
                        check=False)
    said = deployed.stdout + deployed.stderr
    assert "STEP 1/" in said, said  # it was checked out and built, not refused before
    assert hashes(host, app_repo.app) == before, said
    assert files_newer_than(host, "/var/tmp/hostile-marker") == []
    assert "attacker" not in host.run(["cat", WATCHED[0]]).stdout
    host.ssh("apps:destroy", app_repo.app, "--force")  # its repository holds objects git refuses


def test_an_fsck_invalid_commit_is_refused_by_git(host, app_repo, local_repo):
    app_repo.deploy("before")
    tree = git(local_repo, "mktree", input=b"")
    broken = f"tree {tree}\nauthor no-email-here 0 +0000\ncommitter x <x@x> 0 +0000\n\nbroken\n"
    commit = git(local_repo, "hash-object", "-t", "commit", "-w", "--literally", "--stdin", input=broken.encode())
    git(local_repo, "update-ref", "refs/heads/main", commit)
    pushed = host.git(local_repo, "push", "--force", host.remote(app_repo.app), "main", check=False)
    assert pushed.returncode != 0
    assert "fsck error" in pushed.stderr or "missingEmail" in pushed.stderr, pushed.stderr


# --- (b) what podman 4.3 cannot confine ------------------------------------------------------

CVE_2024_9675 = ("RUN --mount=type=cache,id=../../../../../../../../../..{home}/.ssh,target=/var/tmp "
                 "cat /var/tmp/authorized_keys")
CVE_2024_1753 = ("RUN --mount=type=bind,from=base,source=/rootdir,destination=/exploit,rw"
                 " cat /exploit{home}/.ssh/authorized_keys")


@pytest.mark.parametrize("escape", [CVE_2024_9675, CVE_2024_1753])
def test_run_mount_is_refused_with_one_line(host, app_repo, escape):
    app_repo.deploy("before")
    stage = "FROM localhost/podku/python:3.11 AS base\nRUN ln -s / /rootdir\n" if "from=base" in escape else ""
    (app_repo.path / "Containerfile").write_text(stage + "FROM localhost/podku/python:3.11\n"
                                                 + escape.format(home=HOME) + "\n")
    app_repo._git("commit", "-qam", "escape")
    pushed = app_repo.push(check=False)
    assert pushed.returncode != 0
    assert one_line_reason(pushed.stderr)[0].startswith(
        "remote:  !     Containerfile: RUN --mount is not supported"), pushed.stderr
    assert "ssh-ed25519" not in pushed.stderr and "command=" not in pushed.stderr
    assert host.http_get(f"{app_repo.app}.podku.localhost") == (200, "before r1")


def test_another_apps_image_is_refused(host, app_repo, tmp_path):
    """Every spelling podman resolves is in tests/unit/test_build.py; here three, pushed."""
    app_repo.deploy("victim")
    thief = testhost.AppRepo(tmp_path / "thief", host, f"{app_repo.app}t")
    for reference in ("{app}:r1", "localhost/podku/{app}:r1", "podku/{app}:r1"):
        (thief.path / "Containerfile").write_text(f"FROM {reference.format(app=app_repo.app)}\n"
                                                  'CMD ["python3", "/app/testapp.py"]\n')
        thief._git("add", "-A")
        thief._git("commit", "-qm", f"steal {reference}")
        pushed = thief.push(check=False)
        assert pushed.returncode != 0
        assert "is not allowed: a build may use no other local image" in one_line_reason(pushed.stderr)[0]


# --- (c) an endless build, while another app deploys ----------------------------------------

BUILD_TIMEOUT = 60


def release_outcome(host, app: str, release: int) -> str:
    record = host.run(["cat", f"{HOME}/.local/state/podku/apps/{app}/releases/{release}.json"], check=False)
    return json.loads(record.stdout).get("outcome", "") if record.returncode == 0 else ""


def retired_and_pruned(host, app: str, release: int) -> bool:
    """The release's retirement (which prunes images last) has finished, not hung."""
    unit = f"podku-retire-{app}-r{release}.service"
    running = host.as_deploy_user(f"systemctl --user is-active {unit}", check=False).stdout.strip()
    return release_outcome(host, app, release) == "retired" and running not in ("active", "activating")


def build_processes(host) -> str:
    return host.run(["pgrep", "-a", "-u", "podku", "-f", "sleep infinity|podman build"], check=False).stdout


def test_an_endless_build_is_killed_at_its_limit_while_another_app_deploys(host, app_repo, tmp_path,
                                                                            limits_restored):
    set_limits(host, build_timeout=BUILD_TIMEOUT)
    other = app_repo
    other.deploy("other-1")
    endless = testhost.AppRepo(tmp_path / "endless", host, f"{other.app}e")
    endless.write(extra="RUN echo endless-build-started && sleep infinity")
    result: dict[str, subprocess.CompletedProcess] = {}
    pusher = threading.Thread(target=lambda: result.update(push=endless.push(check=False)))
    started = time.monotonic()
    pusher.start()
    try:
        deadline = started + 60
        while "sleep infinity" not in build_processes(host):
            assert time.monotonic() < deadline, "the endless build never started"
            time.sleep(0.5)

        other.deploy("other-2")
        other.deploy("other-3")
        assert host.http_get(f"{other.app}.podku.localhost") == (200, "other-3 r3")
        while not retired_and_pruned(host, other.app, 1):
            assert pusher.is_alive(), "the endless build ended before the other app's retirement"
            assert time.monotonic() < started + BUILD_TIMEOUT, "the retirement hung behind the build"
            time.sleep(0.5)
        assert pusher.is_alive()
    finally:
        pusher.join(timeout=BUILD_TIMEOUT + 120)
    took = time.monotonic() - started
    pushed = result["push"]
    assert pushed.returncode != 0
    assert "endless-build-started" in pushed.stderr
    reasons = one_line_reason(pushed.stderr)
    assert reasons and f"ran longer than its limit of {BUILD_TIMEOUT} s" in reasons[0], pushed.stderr
    assert BUILD_TIMEOUT <= took < BUILD_TIMEOUT + 40, took
    assert build_processes(host) == ""
    leftovers = host.as_deploy_user("podman ps --all --external --format '{{.Names}}'").stdout
    assert "working-container" not in leftovers, leftovers
    assert host.as_deploy_user("systemctl --user list-units --all --no-legend 'podku-build-*'").stdout.strip() == ""


# --- (d) pushes above the maximum size -------------------------------------------------------

def test_a_push_above_the_maximum_size_is_refused(host, app_repo, limits_restored):
    app_repo.deploy("small")
    set_limits(host, push_max_bytes=100_000)
    (app_repo.path / "noise.bin").write_bytes(os.urandom(400_000))  # random: no compression helps
    app_repo.write(env={"MESSAGE": "big"})
    pushed = app_repo.push(check=False)
    assert pushed.returncode != 0
    assert "pack exceeds maximum allowed size" in pushed.stderr, pushed.stderr
    host.run(["rm", "-f", LIMITS])
    app_repo.push()  # the default limit is back with the next push
    assert host.http_get(f"{app_repo.app}.podku.localhost") == (200, "big r2")
