"""receive: the ssh entry (a forced command) and the git pre-receive hook."""

import contextlib
import os
import shlex
import sys

from podku import apps, deploy, lifecycle, names, output
from podku.errors import UsageError
from podku.host.commands import replace_process
from podku.image import gitrepo, source
from podku.releases import Release

GIT_SERVICES = ("git-receive-pack", "git-upload-pack")
ZERO_REV = "0" * 40

def ssh_words() -> list[str]:
    """What the ssh client asked for, split like a shell would but never run by one."""
    original = os.environ.get("SSH_ORIGINAL_COMMAND", "").strip()
    try:
        words = shlex.split(original)
    except ValueError as error:
        raise UsageError(f"cannot parse the command {original!r}: {error}") from error
    return words or ["help"]

def serve_git(words: list[str]) -> None:
    """Hand the connection to git: a push to a new app name creates the app."""
    if len(words) != 2:
        raise UsageError(f"{words[0]} takes one repository")
    name = names.app_name(words[1].strip("/").removeprefix("~/").removesuffix(".git"))
    if words[0] == "git-receive-pack" and not apps.exists(name):
        print(f"-----> Creating app {name}", file=sys.stderr, flush=True)  # stdout is git's
        with contextlib.suppress(lifecycle.AppExists):  # another push created it meanwhile
            lifecycle.create(name, quiet=True)
    app = apps.load(name)
    gitrepo.prepare(app.paths.repo, app.name)  # heals repositories of older installs too
    replace_process([words[0], str(app.paths.repo)])

DEFAULT_SOURCE = source.GitSettings()

def pushed_revision(lines: list[str], settings: source.GitSettings = DEFAULT_SOURCE) -> str | None:
    """The revision to deploy from the hook's input (`old new ref` lines), or None. With a
    deploy branch set (git:set APP deploy-branch), a push of any other branch is refused."""
    chosen = None
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        _old, new, ref = parts
        gitrepo.revision(new)
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        if branch is not None and settings.deploy_branch and branch != settings.deploy_branch:
            raise UsageError(f"push refused: only branch {settings.deploy_branch} deploys this app "
                             f"(git:set APP deploy-branch), not {output.printable(branch)}")
        if branch not in settings.branches:
            output.warn(f"{output.printable(ref)} is not deployed: push to {' or '.join(settings.branches)} to deploy")
        elif new != ZERO_REV:
            chosen = new
    return chosen

def run_hook(name: str, stdin_lines: list[str]) -> Release | None:
    """Deploy what was pushed; the release made, or None when nothing deploys."""
    rev = pushed_revision(stdin_lines, source.load(name))
    if rev is None:
        return None
    with apps.lock(name):
        return deploy.deploy_revision(apps.load(name), rev)
