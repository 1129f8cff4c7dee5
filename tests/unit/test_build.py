import subprocess
import sys
import time
from pathlib import Path

import pytest

from podku.host import podman as podman_module
from podku.image import build


def test_containerfile_is_preferred(tmp_path):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert build.build_file(tmp_path) == tmp_path / "Containerfile"


def test_a_dockerfile_is_used_without_a_containerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert build.build_file(tmp_path) == tmp_path / "Dockerfile"


def test_no_build_file_is_a_build_failure(tmp_path):
    (tmp_path / "containerfile").write_text("FROM scratch\n")  # the name is case-sensitive
    with pytest.raises(build.BuildFailed, match="no Containerfile or Dockerfile"):
        build.build_file(tmp_path)


@pytest.fixture
def repo(tmp_path):
    """A bare repository with one commit on main: (path, revision)."""
    work = tmp_path / "work"
    bare = tmp_path / "app.git"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def git(*args, cwd=work):
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    work.mkdir()
    git("init", "--quiet", "--initial-branch=main")
    (work / "Containerfile").write_text("FROM scratch\n")
    (work / "sub").mkdir()
    (work / "sub" / "file.txt").write_text("hello\n")
    git("add", ".")
    git("commit", "--quiet", "-m", "first")
    git("clone", "--quiet", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare, git("rev-parse", "HEAD")


def test_read_file_at_a_revision(repo):
    bare, rev = repo
    assert build.read_file_at(bare, rev, "sub/file.txt") == "hello\n"
    assert build.read_file_at(bare, rev, "app.json") is None


def test_remove_images_of_nothing_runs_nothing(monkeypatch):
    monkeypatch.setattr(podman_module, "run", lambda *a, **k: pytest.fail("ran a command"))
    build.remove_images([])


def test_a_symlinked_build_file_is_refused(tmp_path):
    (tmp_path / "Containerfile").symlink_to("/home/podku/.ssh/authorized_keys")
    with pytest.raises(build.BuildFailed, match="Containerfile is a symbolic link"):
        build.build_file(tmp_path)


def test_a_symlinked_ignore_file_is_refused(tmp_path):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").symlink_to("/etc/shadow")
    with pytest.raises(build.BuildFailed, match=".dockerignore is a symbolic link"):
        build.build_file(tmp_path)


MOUNTS = [
    "FROM localhost/podku/python:3.11\nRUN --mount=type=bind,source=/,target=/h ls /h\n",
    "FROM localhost/podku/python:3.11\nrun --MOUNT=type=cache,id=../../../../home/podku/.ssh,target=/t ls\n",
    "FROM localhost/podku/python:3.11 AS base\nRUN ln -s / /rootdir\nFROM localhost/podku/python:3.11\n"
    "RUN --mount=type=bind,from=base,source=/rootdir,destination=/exploit,rw ls /exploit\n",
    "FROM localhost/podku/python:3.11\nRUN \\\n  --mount=type=secret,id=x cat /run/secrets/x\n",
    "FROM localhost/podku/python:3.11\nRUN --mo\\\n# a comment inside\n\nunt=type=bind,target=/x true\n",
    "# escape=`\nFROM localhost/podku/python:3.11\nRUN `\n--mount=type=bind,target=/x true\n",
    "FROM localhost/podku/python:3.11\nRUN <<EOF\n--mount in a heredoc is refused too\nEOF\n",
]


@pytest.mark.parametrize("containerfile", MOUNTS)
def test_run_mount_is_refused_in_every_spelling(containerfile):
    reason = build.build_file_refusal(containerfile)
    assert reason and "RUN --mount is not supported" in reason and "CVE-2024-1753" in reason


def test_mount_in_a_comment_is_fine():
    assert build.build_file_refusal("# RUN --mount=type=cache is not used here\nFROM scratch\n") is None


OTHER_APPS_IMAGES = [
    "FROM localhost/podku/other:r1",
    "FROM other:r1",
    "FROM podku/other:r3",
    "FROM localhost/podku/other@sha256:" + "a" * 64,
    "FROM localhost/podku/python:r2",  # an app named python
    "FROM localhost/something:1",
    "FROM be1fb85e1e6c",
    "FROM sha256:" + "b" * 64,
    "ARG BASE=other:r1\nFROM $BASE",
    "FROM --platform=linux/amd64 other:r1 AS x",
    "FROM localhost/podku/python:3.11 AS base\nCOPY --from=other:r1 /app /app",
    "FROM localhost/podku/python:3.11\nCOPY --from=localhost/podku/other:r1 /app /app",
    "FROM localhost/podku/python:3.11\nRUN echo `\nFROM other:r1",  # no escape directive: a real FROM
    "FROM localhost/podku/python:3.11\nFROM other\\\n:r1",
]


@pytest.mark.parametrize("containerfile", OTHER_APPS_IMAGES)
def test_other_apps_and_local_images_are_refused(containerfile):
    reason = build.build_file_refusal(containerfile + "\n")
    assert reason and reason.startswith("image "), reason


ALLOWED = [
    "FROM localhost/podku/python:3.11\nCOPY . /app\n",
    "FROM python:3.12-slim\n",
    "FROM docker.io/library/python:3.12\n",
    "FROM quay.io/org/thing:r1\n",  # a registry's image, whatever its tag
    "FROM localhost/podku/python:3.11 AS build\nRUN true\nFROM localhost/podku/base-node:20\n"
    "COPY --from=build /app /app\nCOPY --from=0 /x /x\n",
    "FROM scratch\n",
    "FROM localhost/podku/python:3.11\nRUN python3 - <<EOF\nfrom os import path\nEOF\n",
]


@pytest.mark.parametrize("containerfile", ALLOWED)
def test_ordinary_containerfiles_are_allowed(containerfile):
    assert build.build_file_refusal(containerfile) is None


def test_check_build_file_names_the_file_in_one_line(tmp_path):
    (tmp_path / "Dockerfile").write_text(MOUNTS[0])
    with pytest.raises(build.BuildFailed, match=r"^Dockerfile: RUN --mount is not supported") as refused:
        build.check_build_file(tmp_path / "Dockerfile")
    assert "\n" not in str(refused.value)


def test_image_removal_never_waits_for_a_build(home, monkeypatch):
    removed = []
    monkeypatch.setattr(podman_module, "run", lambda argv, **kwargs: removed.append(argv))
    with build.state.locked(build.paths.IMAGES_LOCK, "images", shared=True):  # a build runs
        held = subprocess.run([sys.executable, "-c", REMOVE_IN_ANOTHER_PROCESS, str(build.paths.IMAGES_LOCK)],
                              capture_output=True, text=True, timeout=10)
    assert held.stdout.strip() == "False", held.stderr
    assert build.remove_images(["localhost/podku/a:r1"]) is True
    assert removed == [["podman", "image", "rm", "--ignore", "localhost/podku/a:r1"],
                       ["podman", "image", "prune", "--force"]]  # and the build cache it left


REMOVE_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
sys.path.insert(0, %r)
from podku.image import build
from podku.host import paths
from podku.host import podman as podman_module
paths.IMAGES_LOCK = Path(sys.argv[1])
podman_module.run = lambda *a, **k: None
print(build.remove_images(["localhost/podku/a:r1"]))
""" % str(Path(__file__).resolve().parents[2] / "src")


def test_the_watchdog_kills_the_scope_but_podman(monkeypatch):
    killed = []
    monkeypatch.setattr(build, "cgroup_of", lambda pid: Path("/sys/fs/cgroup/x/podku-build-a-r1.scope"))
    monkeypatch.setattr(build, "pids_in", lambda group: [10, 11, 12])
    monkeypatch.setattr(build.os, "kill", lambda pid, sig: killed.append(pid))
    build.kill_scope_except(10, "podku-build-a-r1")
    assert killed == [11, 12]


def test_the_watchdog_kills_nothing_outside_its_scope(monkeypatch):
    monkeypatch.setattr(build, "cgroup_of", lambda pid: Path("/sys/fs/cgroup/user.slice/session-1.scope"))
    monkeypatch.setattr(build, "pids_in", lambda group: pytest.fail("looked for processes to kill"))
    build.kill_scope_except(10, "podku-build-a-r1")


def test_the_watchdog_fires_only_after_its_time(monkeypatch):
    calls = []
    monkeypatch.setattr(build, "kill_scope_except", lambda leader, unit: calls.append((leader, unit)))
    quick = build.Watchdog(0.05, "u")
    quick.start(42)
    time.sleep(0.3)
    quick.stop()
    assert quick.fired and calls[0] == (42, "u")
    slow = build.Watchdog(60, "u")
    slow.start(43)
    slow.stop()
    assert not slow.fired


def test_the_watchdog_counts_oom_kills_in_its_scope_only(monkeypatch, tmp_path):
    scope = tmp_path / "podku-build-a-r1.scope"
    scope.mkdir()
    (scope / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n")
    monkeypatch.setattr(build, "cgroup_of", lambda pid: scope)
    assert build.oom_kills_in_scope(10, "podku-build-a-r1") == 1
    assert build.oom_kills_in_scope(10, "podku-build-b-r1") == 0  # not its scope
    (scope / "memory.events").unlink()  # cgroup v1: no such file
    assert build.oom_kills_in_scope(10, "podku-build-a-r1") == 0


def test_a_build_killed_for_memory_says_so_in_one_line(monkeypatch):
    def stream(argv, on_line, cwd=None, started=None):
        started(42)
        time.sleep(0.2)
        raise build.PodkuError("exit status 137")

    monkeypatch.setattr(build, "stream", stream)
    monkeypatch.setattr(build, "OOM_POLL_SECONDS", 0.01)
    monkeypatch.setattr(build, "oom_kills_in_scope", lambda leader, unit: 1)
    bounds = build.limits.BuildLimits(build_memory="160M")
    with pytest.raises(build.BuildFailed) as failed:
        build.run_build(["podman", "build"], Path("."), "podku-build-a-r1", bounds)
    assert str(failed.value) == ("image build stopped: it used more than its memory limit of 160M "
                                 "(build_memory in ~/.config/podku/limits.json)")
    monkeypatch.setattr(build, "oom_kills_in_scope", lambda leader, unit: 0)
    with pytest.raises(build.BuildFailed) as other:
        build.run_build(["podman", "build"], Path("."), "podku-build-a-r1", bounds)
    assert "memory" not in str(other.value)


def test_the_scope_carries_the_limits():
    bounds = build.limits.BuildLimits(build_timeout=10, build_memory="1G", build_tasks=7)
    argv = build.scope_argv("podku-build-a-r1", bounds)
    assert argv[:4] == ["systemd-run", "--user", "--scope", "--quiet"]
    assert "--property=RuntimeMaxSec=70" in argv and "--property=MemoryMax=1G" in argv
    assert "--property=TasksMax=7" in argv and argv[-1] == "--"
