"""Static sites served by Caddy's file server straight from the live release's files: no
container, no socket, nothing started or woken up.

Each static release has its own tree, ~/.local/share/podku/static/APP/rN, written from the
revision by image/statictree.py (regular files and directories only). Caddy reaches it
through hostconf/NAME -> sites/APP -> sites/.APP-N/static -> static/APP/live -> rN
(caddy.json.j2, podku-static), which serves from sites/.APP-N/files -> static/APP/files
-> rN. A swap renames `files`, then `live`, so a deploy changes what Caddy serves in one
rename, as the socket symlink does for a container. An app whose live release is not
static (or that ps:stop stopped) has no `live` link and Caddy goes on to the app routes;
`files` stays until its tree is retired, for a request matched just before. A static app's
stable socket link names `no-socket`, an empty file, once no container release is left
draining (until then it names that release's socket, for a request that matched the app
route just before the switch): the name stays routed (hosts/NAME resolves, so certificates
are asked for) and a request that gets past the static route (ps:stop) is refused at the
dial, a 502 as for a stopped container app."""

import contextlib
import os
import shutil
from pathlib import Path

from podku import naming, proxyconf
from podku.errors import PodkuError
from podku.host import paths, state
from podku.image import gitrepo, statictree
from podku.releases import Release

NO_SOCKET = "no-socket"
INDEX = "index.html"


class StaticSiteError(PodkuError):
    pass


def directory(app: str) -> Path:
    return paths.AppPaths(app).static


def tree(app: str, release_id: int) -> Path:
    return directory(app) / naming.static_tree(release_id)


def live_link(app: str) -> Path:
    return paths.AppPaths(app).static_live


def files_link(app: str) -> Path:
    return paths.AppPaths(app).static_files


def no_socket(app: str) -> Path:
    """What a static app's stable socket link names: an empty file (made if missing)."""
    marker = directory(app) / NO_SOCKET
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        state.write_atomic(marker, "")
    return marker


# --- a release's files ------------------------------------------------------------------------

def install(release: Release) -> None:
    """The release's tree, written from its revision unless it is there (complete: it is
    renamed into place whole). A rollback to a retired release writes it again."""
    assert release.static_root is not None
    target = tree(release.app, release.id)
    if target.is_dir():
        return
    directory(release.app).mkdir(parents=True, exist_ok=True)
    try:
        statictree.write(paths.AppPaths(release.app).repo, release.rev, release.static_root, target)
    except gitrepo.RepoError as error:
        raise StaticSiteError(f"cannot write the files of release {release.id}: {error}") from None


def copy_tree(source: Release, target: Release) -> None:
    """`target`'s tree as a copy of `source`'s (apps:rename: the files OLD serves, while its
    repository is still OLD's). Only regular files and directories are there to copy."""
    destination = tree(target.app, target.id)
    if destination.is_dir() or not has_tree(source):  # without one: written from the repository
        return
    directory(target.app).mkdir(parents=True, exist_ok=True)
    building = destination.with_name(f".{destination.name}.new")
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(tree(source.app, source.id), building, symlinks=True)
    building.rename(destination)


def has_tree(release: Release) -> bool:
    return release.static and tree(release.app, release.id).is_dir()


def remove(release: Release) -> None:
    """A retired release's tree, and the files link if it still names it."""
    if _target(files_link(release.app)) == naming.static_tree(release.id):
        files_link(release.app).unlink()
    shutil.rmtree(tree(release.app, release.id), ignore_errors=True)


def check(release: Release) -> None:
    """The static release's health check, before the commit point: files to serve, and the
    page `/` or the fallback answers with."""
    root = tree(release.app, release.id)
    if not any(root.iterdir()):
        raise StaticSiteError(f"release {release.id} has no files to serve")
    fallback = proxyconf.load(release.app).static_fallback
    wanted = fallback.lstrip("/") if fallback else INDEX
    if not (root / wanted).is_file():
        how = "the fallback set by static:set" if fallback else "the page / answers with (or set a fallback)"
        raise StaticSiteError(f"release {release.id} has no {wanted}: {how}")


# --- what Caddy follows (reconcile's symlink step) -----------------------------------------------

def point(release: Release) -> list[str]:
    """`files`, then `live` at the release's tree (written again if it is gone): from the
    rename of `live` on, the static route answers."""
    fixed = []
    if not has_tree(release):
        install(release)
        fixed.append(f"wrote the files of live release {release.id} again")
    proxyconf.ensure_rendered(release.app)
    wanted = naming.static_tree(release.id)
    for link in (files_link(release.app), live_link(release.app)):
        current = _target(link)
        if current != wanted:
            state.symlink_atomic(wanted, link)
            fixed.append(f"{link.name} names the files of release {release.id} (it named {current or 'none'})")
    return fixed


def unpoint(app: str) -> list[str]:
    """No static route for the app (after its stable socket names what serves instead);
    `files` stays until its tree is retired."""
    current = _target(live_link(app))
    if current is None:
        return []
    live_link(app).unlink()
    return [f"Caddy no longer serves static files for {app} (it served {current})"]


def _target(link: Path) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(link)
    return None


def handoff_time(app: str) -> float | None:
    """When Caddy last changed which tree it serves (the links' renames)."""
    times = []
    for link in (live_link(app), files_link(app)):
        with contextlib.suppress(FileNotFoundError):
            times.append(os.lstat(link).st_mtime)
    return max(times, default=None)


def remove_app(app: str) -> None:
    """apps:destroy and a rename's old name: every tree of the app."""
    shutil.rmtree(directory(app), ignore_errors=True)


def usage(release: Release) -> tuple[int, int]:
    """(files, bytes) of the release's tree."""
    files = size = 0
    for root, _dirs, names in os.walk(tree(release.app, release.id)):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(root, name)).st_size
    return files, size
