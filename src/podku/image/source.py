"""Where a push's source comes from (git:set): the branch that deploys (main or master when
unset) and the subdirectory its build, Procfile and app.json are taken from (a monorepo).
Stored per app in git.json; every value is checked where it is set and where it is read."""

import re
from dataclasses import dataclass
from pathlib import Path

from podku import names
from podku.errors import UsageError
from podku.host import paths, records, state

FILE_NAME = "git.json"
DEFAULT_BRANCHES = ("main", "master")
MAX_BRANCH = 200
MAX_BUILD_DIR = 255
# git check-ref-format's rules for one branch name, as a refusal per rule
BRANCH_CHARACTERS = re.compile(r"[A-Za-z0-9._/+-]+")
BRANCH_REFUSALS = (
    (re.compile(r"[\x00-\x20\x7f~^:?*\[\\]"), "a space, control character or one of ~ ^ : ? * [ \\"),
    (re.compile(r"\.\."), "'..'"),
    (re.compile(r"@\{"), "'@{'"),
    (re.compile(r"(^|/)\."), "a part starting with '.'"),
    (re.compile(r"\.lock(/|$)"), "a part ending in '.lock'"),
    (re.compile(r"//|^/|/$"), "an empty part"),
    (re.compile(r"\.$"), "a trailing '.'"),
    (re.compile(r"^-"), "a leading '-'"),
    (re.compile(r"^@$"), "the name '@'"),
)
BUILD_DIR_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class GitSettings:
    deploy_branch: str = ""  # empty: main or master deploys
    build_dir: str = ""  # empty: the repository's top

    @property
    def branches(self) -> tuple[str, ...]:
        return (self.deploy_branch,) if self.deploy_branch else DEFAULT_BRANCHES


def branch_name(name: str) -> str:
    """A branch name as `git check-ref-format --branch` takes it, of letters, digits and
    . _ / + - only (git takes more; podku prints it and has no use for the rest)."""
    if not name or len(name) > MAX_BRANCH or not BRANCH_CHARACTERS.fullmatch(name):
        raise UsageError(f"invalid branch name {records.shown(name)}: use 1-{MAX_BRANCH} letters, digits "
                         "and . _ / + -")
    for pattern, what in BRANCH_REFUSALS:
        if pattern.search(name):
            raise UsageError(f"invalid branch name {records.shown(name)}: it may not hold {what}")
    return name


def build_dir(path: str) -> str:
    """A relative path inside the repository: parts of letters, digits, '_', '.' and '-', no
    '..', not absolute. Symlinks are refused where the tree is checked out (`source_dir`)."""
    parts = path.split("/") if path else []
    if not parts or len(path) > MAX_BUILD_DIR or not all(BUILD_DIR_PART.fullmatch(part) for part in parts):
        raise UsageError(f"invalid build directory {records.shown(path)}: use a relative path of "
                         "letters, digits, '_', '.' and '-' parts, without '..' or a leading '/'")
    return path


RECORD = records.record({
    "deploy_branch": records.Field(records.validated(branch_name)),
    "build_dir": records.Field(records.validated(build_dir)),
})


def settings_path(app: str) -> Path:
    return paths.AppPaths(names.app_name(app)).root / FILE_NAME


def load(app: str) -> GitSettings:
    return GitSettings(**records.read(settings_path(app), RECORD, {}))


def save(app: str, settings: GitSettings) -> None:
    data = {key: value for key, value in vars(settings).items() if value}
    state.write_json(settings_path(app), records.validate(data, RECORD, settings_path(app)))


def source_dir(checkout: Path, subdirectory: str) -> Path:
    """The build-dir inside a checked-out tree: a directory, reached through no symlink."""
    if not subdirectory:
        return checkout
    current = checkout
    for part in build_dir(subdirectory).split("/"):
        current = current / part
        if current.is_symlink() or not current.is_dir():
            raise UsageError(f"build directory {subdirectory} is not a directory of this revision "
                             "(a symlink is not followed)")
    return current


def in_build_dir(subdirectory: str, name: str) -> str:
    """A file's path in the tree, relative to the build-dir (Procfile, app.json)."""
    return f"{subdirectory}/{name}" if subdirectory else name
