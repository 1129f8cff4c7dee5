"""The apps' git repositories: created, configured and read only by git itself.

A pushed tree is untrusted. It is materialised by `git checkout` into a work tree (git
refuses paths through symlinks and `.git` names), never by a hand-rolled unpacker, and
pushes are checked by `receive.fsckObjects` (which refuses, among others, trees holding
one name twice). Every git call that takes a revision gets a validated full object name
after `--end-of-options`, so a revision can never be read as an option."""

import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from podku.errors import PodkuError
from podku.host import paths, state, templates
from podku.host.commands import INHERITED_ENV, child_env, last_line, run
from podku.image import limits

# Inside a pre-receive hook the pushed objects sit in a quarantine directory that only
# these variables point at: git must see them to read the new revision.
GIT_QUARANTINE_ENV = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                      "GIT_QUARANTINE_PATH")
FULL_REVISION = re.compile(r"[0-9a-f]{40}")
MAX_TREE_BYTES = 2 * 1024 ** 3      # a checkout larger than this is refused before writing
MAX_TREE_ENTRIES = 200_000
HOOK = Path("hooks") / "pre-receive"
# Git running for podku never runs a hook of its own (checkout would run post-checkout).
SAFE_GIT_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.symlinks=true",
                   "-c", "advice.detachedHead=false")

# objects/info files that make git read objects from elsewhere (another directory, a URL)
ALTERNATES = ("alternates", "http-alternates")

# what an error quotes when the command printed nothing
GIT_SILENT = "git said nothing"


class RepoError(PodkuError):
    pass


def revision(rev: str) -> str:
    """`rev` itself if it is a full lowercase hex object name; anything else is refused."""
    if not isinstance(rev, str) or not FULL_REVISION.fullmatch(rev):
        raise RepoError(f"invalid revision {str(rev)[:60]!r}: expected a full 40-hex object name")
    return rev


# --- creating and configuring -------------------------------------------------------------

def prepare(repo: Path, app: str) -> None:
    """Make `repo` a bare repository that deploys `app` on push: run on every push and at
    create, so repositories made by an older podku get today's settings too."""
    init(repo)
    configure(repo)
    install_hook(repo, app)


def init(repo: Path) -> None:
    if not (repo / "HEAD").exists():
        run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(repo)])


def wanted_config() -> dict[str, str]:
    return {"receive.fsckobjects": "true",
            "receive.maxinputsize": str(limits.load().push_max_bytes)}


def configure(repo: Path) -> None:
    """Set what differs only: `git config` takes a lock, and two pushes may come at once."""
    current = current_config(repo)
    for key, value in wanted_config().items():
        if current.get(key) != value:
            run(_git(repo, "config", "--local", key, value))


def current_config(repo: Path) -> dict[str, str]:
    result = run(_git(repo, "config", "--local", "--get-regexp", r"^receive\."), check=False)
    pairs = (line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return {key.lower(): value for key, value in pairs}


def set_head(repo: Path, branch: str) -> None:
    """Point the repository's HEAD at the branch that deploys (what builder:report reads);
    `branch` is checked by the caller (source.branch_name)."""
    if (repo / "HEAD").exists():
        run(_git(repo, "symbolic-ref", "HEAD", f"refs/heads/{branch}"))


def install_hook(repo: Path, app: str) -> None:
    hook = templates.render("pre-receive.j2", app=app, podku=paths.PODKU_EXECUTABLE)
    state.write_if_changed(repo / HOOK, hook, mode=0o755)


def copy_branches(source: Path, repo: Path) -> None:
    """apps:clone: `repo` gets `source`'s branches and their objects (a local fetch: no
    hooks run, nothing of `source`'s config comes along)."""
    run(_git(repo, "fetch", "--quiet", "--no-tags", str(source), "+refs/heads/*:refs/heads/*"))


def fsck(repo: Path) -> None:
    """Refuse a repository that did not come by push (a backup) unless it passes the check a
    push gets (receive.fsckObjects is strict) and borrows no objects from elsewhere."""
    borrowed = [name for name in ALTERNATES if (repo / "objects" / "info" / name).exists()]
    if borrowed:
        raise RepoError(f"repository {repo.name} refused: it has objects/info/{borrowed[0]}")
    result = run(_git(repo, "fsck", "--strict", "--no-progress", "--no-dangling"), check=False)
    if result.returncode != 0:
        problems = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("notice:"))
        raise RepoError(f"repository {repo.name} refused: git fsck says {last_line(problems, GIT_SILENT)}")


# --- reading a revision -------------------------------------------------------------------

def checkout(repo: Path, rev: str, destination: Path) -> None:
    """Write the tree of `rev` into `destination` (emptied first), without .git."""
    rev = revision(rev)
    refuse_oversized_tree(repo, rev)
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    # A private index: the bare repository has none, and concurrent builds must not share one.
    with tempfile.TemporaryDirectory(prefix=".index-", dir=destination.parent) as scratch:
        env = git_env({"GIT_INDEX_FILE": str(Path(scratch) / "index")})
        work_tree = ("--work-tree", str(destination))
        # not `checkout REV -- .`: git 2.39's checkout miscounts revisions after --end-of-options
        for argv in (_git(repo, *work_tree, "read-tree", "--end-of-options", rev),
                     _git(repo, *work_tree, "checkout-index", "--all", "--force")):
            result = run(argv, env=env, check=False)
            if result.returncode != 0:
                raise RepoError(f"cannot check out revision {rev[:12]}: {last_line(result.stdout, GIT_SILENT)}")


def refuse_oversized_tree(repo: Path, rev: str) -> None:
    result = run(_git(repo, "ls-tree", "-r", "-l", "--full-tree", "--end-of-options", rev),
                 env=git_env(), check=False)
    if result.returncode != 0:
        raise RepoError(f"cannot read revision {rev[:12]}: {last_line(result.stdout, GIT_SILENT)}")
    entries = result.stdout.splitlines()
    sizes = (line.split("\t", 1)[0].split()[3] for line in entries if "\t" in line)
    total = sum(int(size) for size in sizes if size.isdigit())
    if total > MAX_TREE_BYTES or len(entries) > MAX_TREE_ENTRIES:
        raise RepoError(f"revision {rev[:12]} is too large to build: {len(entries)} files, {total} bytes "
                        f"(at most {MAX_TREE_ENTRIES} files, {MAX_TREE_BYTES} bytes)")


def present_at_head(repo: Path, names: Sequence[str]) -> set[str] | None:
    """Which of `names` the branch's head has (None before the first push)."""
    listed = run(_git(repo, "ls-tree", "-r", "--name-only", "--end-of-options", "HEAD", "--", *names),
                 env=git_env(), check=False)
    return set(listed.stdout.splitlines()) if listed.returncode == 0 else None


def read_file(repo: Path, rev: str, name: str, max_bytes: int) -> str | None:
    """A file's text at `rev` (at most `max_bytes`), or None where `rev` has no such file."""
    rev = revision(rev)
    if "\n" in name:
        raise RepoError(f"invalid file name {name!r}")
    found = run(_git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"),
                input=f"{rev}:{name}\n", env=git_env(), check=False)
    parts = found.stdout.split()
    if found.returncode != 0 or len(parts) != 3 or parts[1] != "blob":
        return None
    object_name, _type, size = parts
    if int(size) > max_bytes:
        raise RepoError(f"{name} is {size} bytes: at most {max_bytes} are read")
    blob = run(_git(repo, "cat-file", "blob", "--end-of-options", revision(object_name)),
               env=git_env(), check=False)
    if blob.returncode != 0:
        raise RepoError(f"cannot read {name} at {rev[:12]}: {last_line(blob.stdout, GIT_SILENT)}")
    return blob.stdout


# --- helpers ------------------------------------------------------------------------------

def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return child_env(extra, inherit=INHERITED_ENV + GIT_QUARANTINE_ENV)


def _git(repo: Path, *args: str) -> list[str]:
    return ["git", *SAFE_GIT_CONFIG, "--git-dir", str(repo), *args]

