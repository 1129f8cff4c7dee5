import subprocess

import pytest

from podku import build


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


def test_checkout_exports_the_tree_without_git_metadata(repo, tmp_path):
    bare, rev = repo
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "stale").write_text("from an earlier build")
    build.checkout(bare, rev, destination)
    assert sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*")) == [
        "Containerfile", "sub", "sub/file.txt"]


def test_remove_images_of_nothing_runs_nothing(monkeypatch):
    monkeypatch.setattr(build, "run", lambda *a, **k: pytest.fail("ran a command"))
    build.remove_images([])
