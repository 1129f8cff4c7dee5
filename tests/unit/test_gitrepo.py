"""gitrepo with real git in temporary directories: no podman, no systemd."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from podku.host import paths
from podku.image import gitrepo, limits

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@x"}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    env = {**GIT_IDENTITY, "HOME": str(cwd or "/nonexistent"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          input=input).stdout.decode().strip()


@pytest.fixture
def bare(tmp_path) -> Path:
    """A bare app repository made by podku, as after apps:create."""
    repo = tmp_path / "app.git"
    gitrepo.init(repo)
    return repo


def commit_files(repo: Path, tmp_path: Path, files: dict[str, str]) -> str:
    """Push a commit holding `files` into `repo` the way a user does; returns its revision."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "x", cwd=work)
    git("push", "--quiet", str(repo), "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def hostile_commit(repo: Path, outside: Path) -> str:
    """A commit whose tree holds `x` twice: a symlink to `outside` and a directory with a file.
    Written with plumbing straight into the repository (git push would refuse it with fsck)."""
    def hash_object(data: bytes) -> str:
        return git("--git-dir", str(repo), "hash-object", "-w", "--stdin", input=data)
    secret = hash_object(b"written through the link\n")
    link = hash_object(str(outside).encode())
    subtree = git("--git-dir", str(repo), "mktree", input=f"100644 blob {secret}\tauthorized_keys\n".encode())
    tree = git("--git-dir", str(repo), "mktree",
               input=f"120000 blob {link}\tx\n040000 tree {subtree}\tx\n".encode())
    return git("--git-dir", str(repo), "commit-tree", "-m", "hostile", tree)


# --- revisions ----------------------------------------------------------------------------

@pytest.mark.parametrize("rev", ["HEAD", "main", "-o/tmp/x", "--output=/tmp/x", "a" * 39, "a" * 41,
                                 "A" * 40, "g" * 40, "a" * 40 + "\n", "", "a" * 40 + ":app.json"])
def test_anything_but_a_full_hex_object_name_is_refused(rev):
    with pytest.raises(gitrepo.RepoError, match="expected a full 40-hex object name") as refused:
        gitrepo.revision(rev)
    assert "\n" not in str(refused.value)


def test_a_full_hex_object_name_is_accepted():
    assert gitrepo.revision("0123456789abcdef0123456789abcdef01234567") == "0123456789abcdef0123456789abcdef01234567"


def test_checkout_and_read_refuse_an_option_as_revision(bare, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    for call in (lambda: gitrepo.checkout(bare, f"--output={victim}", tmp_path / "out"),
                 lambda: gitrepo.read_file(bare, f"-o{victim}", "app.json", 100)):
        with pytest.raises(gitrepo.RepoError):
            call()
    assert victim.read_text() == "keep me"


# --- creating and configuring -------------------------------------------------------------

def test_prepare_makes_a_bare_repository_with_fsck_and_a_push_size_limit(home):
    repo = paths.REPOS / "my-app.git"
    gitrepo.prepare(repo, "my-app")
    assert git("--git-dir", str(repo), "config", "receive.fsckObjects") == "true"
    assert git("--git-dir", str(repo), "config", "receive.maxInputSize") == str(limits.PUSH_MAX_BYTES)
    assert git("--git-dir", str(repo), "rev-parse", "--is-bare-repository") == "true"


def test_prepare_heals_an_existing_repository_and_follows_the_limits_file(home):
    repo = paths.REPOS / "old.git"
    git("init", "--quiet", "--bare", str(repo))  # as an older podku left it
    git("--git-dir", str(repo), "config", "receive.fsckObjects", "false")
    (paths.CONFIG).mkdir(parents=True, exist_ok=True)
    (paths.CONFIG / "limits.json").write_text('{"push_max_bytes": 1000}')
    gitrepo.prepare(repo, "old")
    assert git("--git-dir", str(repo), "config", "receive.fsckObjects") == "true"
    assert git("--git-dir", str(repo), "config", "receive.maxInputSize") == "1000"


def test_install_hook_writes_an_executable_pre_receive_hook(home):
    repo = paths.REPOS / "my-app.git"
    gitrepo.prepare(repo, "my-app")
    hook = repo / "hooks" / "pre-receive"
    text = hook.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert f"exec {Path(sys.executable).parent / 'podku'} git-hook my-app\n" in text
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755


def test_a_push_of_a_tree_with_a_duplicate_name_is_refused_by_git(home, tmp_path):
    repo = paths.REPOS / "app.git"
    gitrepo.prepare(repo, "app")
    (repo / "hooks" / "pre-receive").unlink()  # git's own check, without podku's hook
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    commit = hostile_commit(work / ".git", tmp_path / "outside")
    pushed = subprocess.run(["git", "-C", str(work), "push", str(repo), f"{commit}:refs/heads/main"],
                            capture_output=True, text=True, env={**os.environ, **GIT_IDENTITY})
    assert pushed.returncode != 0
    assert "duplicateEntries" in pushed.stderr


# --- reading a revision -------------------------------------------------------------------

def test_checkout_writes_the_tree_without_git_metadata(bare, tmp_path):
    rev = commit_files(bare, tmp_path, {"Containerfile": "FROM scratch\n", "sub/file.txt": "hello\n"})
    destination = tmp_path / "build" / "app-r1"
    destination.mkdir(parents=True)
    (destination / "stale").write_text("from an earlier build")
    gitrepo.checkout(bare, rev, destination)
    assert sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*")) == [
        "Containerfile", "sub", "sub/file.txt"]
    assert os.listdir(destination.parent) == ["app-r1"]  # the private index is gone too


@pytest.mark.parametrize("target", ["absolute", "../../outside"])
def test_a_duplicate_name_tree_never_writes_through_its_symlink(bare, tmp_path, target):
    outside = tmp_path / "outside"
    outside.mkdir()
    rev = hostile_commit(bare, outside if target == "absolute" else Path(target))
    destination = tmp_path / "build" / "app-r1"
    try:
        gitrepo.checkout(bare, rev, destination)
    except gitrepo.RepoError:
        pass  # refusing is as good as writing nothing outside
    assert list(outside.iterdir()) == []
    written = [p for p in tmp_path.rglob("authorized_keys")]
    assert all(p.is_relative_to(destination) for p in written), written


def test_a_symlink_in_the_tree_stays_a_symlink(bare, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to("/etc")
    rev = commit_files(bare, tmp_path, {"Containerfile": "FROM scratch\n"})
    destination = tmp_path / "out"
    gitrepo.checkout(bare, rev, destination)
    assert (destination / "link").is_symlink() and os.readlink(destination / "link") == "/etc"


def test_read_file_returns_the_text_or_none(bare, tmp_path):
    rev = commit_files(bare, tmp_path, {"app.json": '{"a": 1}', "sub/file.txt": "hello\n"})
    assert gitrepo.read_file(bare, rev, "app.json", 100) == '{"a": 1}'
    assert gitrepo.read_file(bare, rev, "sub/file.txt", 100) == "hello\n"
    assert gitrepo.read_file(bare, rev, "missing.json", 100) is None
    assert gitrepo.read_file(bare, rev, "sub", 100) is None  # a directory is no file


def test_read_file_refuses_a_file_above_its_limit(bare, tmp_path):
    rev = commit_files(bare, tmp_path, {"app.json": "x" * 101})
    with pytest.raises(gitrepo.RepoError, match="app.json is 101 bytes: at most 100 are read"):
        gitrepo.read_file(bare, rev, "app.json", 100)


def test_checkout_refuses_a_tree_above_the_size_limit(bare, tmp_path, monkeypatch):
    rev = commit_files(bare, tmp_path, {"big": "x" * 2000})
    monkeypatch.setattr(gitrepo, "MAX_TREE_BYTES", 1000)
    with pytest.raises(gitrepo.RepoError, match="too large to build"):
        gitrepo.checkout(bare, rev, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unknown_revision_is_a_one_line_error(bare, tmp_path):
    with pytest.raises(gitrepo.RepoError, match="cannot read revision") as failed:
        gitrepo.checkout(bare, "1" * 40, tmp_path / "out")
    assert "\n" not in str(failed.value)


def test_present_at_head_lists_which_names_the_branch_head_has(bare, tmp_path):
    assert gitrepo.present_at_head(bare, ["requirements.txt"]) is None  # nothing pushed yet
    commit_files(bare, tmp_path, {"requirements.txt": "", "public/index.html": "", "app.py": ""})
    assert gitrepo.present_at_head(bare, ["requirements.txt", "public/index.html", "package.json"]) == {
        "requirements.txt", "public/index.html"}
