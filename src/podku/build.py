"""Build: a pushed revision becomes a tagged image, built by rootless podman."""

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from podku import builders, output, paths, state
from podku.errors import PodkuError
from podku.run import INHERITED_ENV, child_env, run, stream

BUILD_FILES = ("Containerfile", "Dockerfile")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Inside a pre-receive hook the pushed objects sit in a quarantine directory that only
# these variables point at: git must see them to read the new revision.
GIT_QUARANTINE_ENV = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                      "GIT_QUARANTINE_PATH")


class BuildFailed(PodkuError):
    pass


def checkout(repo: Path, rev: str, destination: Path) -> None:
    """Export `rev` of a bare repository into an empty directory (no .git)."""
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    env = child_env(inherit=INHERITED_ENV + GIT_QUARANTINE_ENV)
    argv = ["git", "--git-dir", str(repo), "archive", "--format=tar", rev]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as git:
        unpack_error = None
        try:
            with tarfile.open(fileobj=git.stdout, mode="r|") as archive:
                # Debian 12's first Python 3.11 predates extraction filters
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                archive.extractall(destination, **extra)
        except tarfile.TarError as error:
            unpack_error = error
            git.stdout.close()
        git_error = git.stderr.read().decode(errors="replace").strip()
    if git.returncode != 0:
        raise BuildFailed(f"cannot read revision {rev}: {git_error}")
    if unpack_error is not None:
        raise BuildFailed(f"cannot unpack revision {rev}: {unpack_error}")


def read_file_at(repo: Path, rev: str, name: str) -> str | None:
    """A file's content at `rev`, or None where the revision has no such file."""
    env = child_env(inherit=INHERITED_ENV + GIT_QUARANTINE_ENV)
    result = run(["git", "--git-dir", str(repo), "show", f"{rev}:{name}"], env=env, check=False)
    return result.stdout if result.returncode == 0 else None


def build_file(source: Path) -> Path:
    for name in BUILD_FILES:
        if (source / name).is_file():
            return source / name
    raise BuildFailed("no Containerfile or Dockerfile at the repository root: podku builds those")


def build_image(source: Path, tag: str) -> None:
    """podman build, its output streamed indented; raises with the last lines on failure."""
    argv = ["podman", "build", "--network=host", "--tag", tag, *builders.prepare(source, builders.app_from_tag(tag))]
    if HOST_CA_BUNDLE.is_file():
        argv += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    argv.append(str(source))
    try:
        stream(argv, output.detail, cwd=source)
    except PodkuError as error:
        tail = getattr(error, "output", "").strip().splitlines()[-3:]
        raise BuildFailed("image build failed" + (": " + " | ".join(tail) if tail else "")) from error


def exposed_port(image: str) -> int | None:
    """The image's single EXPOSEd TCP port, if it has one: the app then binds $PORT."""
    result = run(["podman", "image", "inspect", "--format", "{{json .Config.ExposedPorts}}", image])
    ports = json.loads(result.stdout.strip() or "null") or {}
    tcp = sorted(int(key.split("/")[0]) for key in ports if key.endswith("/tcp"))
    return tcp[0] if tcp else None


def image_exists(tag: str) -> bool:
    with state.locked(paths.IMAGES_LOCK, "images", shared=True):
        return run(["podman", "image", "exists", tag], check=False).returncode == 0


def remove_images(tags: list[str]) -> None:
    """Remove what can be removed: one image in use must not keep the others."""
    if not tags:
        return
    with state.locked(paths.IMAGES_LOCK, "images"):
        for tag in tags:
            run(["podman", "image", "rm", "--ignore", tag], check=False)


def build_release(repo: Path, rev: str, tag: str, workdir: Path) -> int | None:
    """Build `rev` as `tag`; returns the image's EXPOSEd port, if any."""
    try:
        with state.locked(paths.IMAGES_LOCK, "images", shared=True):
            checkout(repo, rev, workdir)
            build_image(workdir, tag)
            return exposed_port(tag)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

