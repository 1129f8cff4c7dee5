"""A static site's files as Caddy serves them: the regular files and directories of one
directory of a pushed revision, and nothing else.

The revision is checked out by git (gitrepo.checkout) into a scratch directory; the served
directory is walked without following any link and its regular files are moved into a new
tree that only this code wrote. A symlink (to ~/.ssh, to another app's records: Caddy would
follow it), a submodule or any other kind of entry refuses the release in one line; hidden
entries (.git, .static, .env ...) are left out; the count and size are bounded."""

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from podku.errors import UsageError
from podku.image import gitrepo, source

MAX_FILES = 20_000
MAX_BYTES = 512 * 1024 ** 2
PUBLIC = "public"


class TreeRefused(UsageError):
    pass


@dataclass
class Budget:
    files: int = 0
    size: int = 0

    def charge(self, shown: str, size: int) -> None:
        self.files += 1
        self.size += size
        if self.files > MAX_FILES:
            raise TreeRefused(f"the site has more than {MAX_FILES} files: at most {MAX_FILES} are served")
        if self.size > MAX_BYTES:
            raise TreeRefused(f"the site's files are larger than {MAX_BYTES // 1024 ** 2} MiB "
                              f"(reached at {shown}): at most that is served")


def served_dir(checkout: Path, subdirectory: str) -> str:
    """The directory of the revision the static builder serves: public/ in the build-dir if it
    is a directory there, else the build-dir itself (the .static case)."""
    base = source.source_dir(checkout, subdirectory)
    public = base / PUBLIC
    if public.is_symlink():
        raise TreeRefused(f"{source.in_build_dir(subdirectory, PUBLIC)} is a symlink: "
                          "a static site's files must be regular files and directories")
    return source.in_build_dir(subdirectory, PUBLIC) if public.is_dir() else subdirectory


def write(repo: Path, rev: str, directory: str, destination: Path) -> None:
    """The served files of build-dir `directory` at `rev` as a new directory `destination`
    (renamed into place whole: a tree that exists is complete)."""
    scratch = destination.with_name(f".{destination.name}.checkout")
    building = destination.with_name(f".{destination.name}.new")
    for leftover in (scratch, building):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        gitrepo.checkout(repo, rev, scratch)
        building.mkdir(mode=0o755)
        gather(scratch / served_dir(scratch, directory), building, Budget())
        building.rename(destination)
    finally:
        for leftover in (scratch, building):
            shutil.rmtree(leftover, ignore_errors=True)


def gather(source_dir: Path, destination: Path, budget: Budget, shown: str = "") -> None:
    """Move the regular files of `source_dir` (ours: a fresh checkout) into `destination`
    (ours, empty), directory by directory, looking at every entry without following it."""
    with os.scandir(source_dir) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = f"{shown}{entry.name}"
            if entry.name.startswith("."):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                budget.charge(name, 0)
                (destination / entry.name).mkdir(mode=0o755)
                gather(Path(entry.path), destination / entry.name, budget, f"{name}/")
            elif stat.S_ISREG(mode):
                budget.charge(name, entry.stat(follow_symlinks=False).st_size)
                os.chmod(entry.path, 0o644, follow_symlinks=False)
                os.rename(entry.path, destination / entry.name)
            else:
                raise TreeRefused(f"{name[:200]!r} is {_kind(mode)}: a static site's files must be "
                                  "regular files and directories")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
