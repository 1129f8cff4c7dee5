"""Python: requirements.txt (pip), or pyproject.toml with uv.lock or poetry.lock; the
Procfile's web line runs. The dependency layer is keyed by those files alone."""

from __future__ import annotations

import json
from pathlib import Path

from podku.host import templates
from podku.image.baseimages import Base
from podku.image.builders import settings, web
from podku.image.builders.base import Builder, BuilderError, Exists, ProcfileError

LOCKS = ("uv.lock", "poetry.lock")
BASE = Base("python", "localhost/podku/python:3.11", ("python3", "python3-venv", "python3-pip", "ca-certificates"))


def matches(exists: Exists) -> bool:
    return exists("requirements.txt") or (exists("pyproject.toml") and any(exists(lock) for lock in LOCKS))


def render(source: Path) -> str:
    command = web.procfile_web(source)
    if command is None:
        raise ProcfileError("a Python app needs a Procfile with a web: line (e.g. web: gunicorn app:app)")
    process = web.web_process(command)
    dependency_files, installer = dependencies(source)
    return templates.render("builders/python.Containerfile.j2", base=BASE.image, web=process,
                            dependency_files=dependency_files, installer=installer,
                            pip_index=bool(settings.global_settings().get("pip-index-url")),
                            cmd=json.dumps(process.argv))


def dependencies(source: Path) -> tuple[list[str], str]:
    """The files of the dependency layer and what installs them (pip, uv or poetry)."""
    if (source / "requirements.txt").is_file():
        return ["requirements.txt"], "pip"
    for lock in LOCKS:
        if (source / lock).is_file() and (source / "pyproject.toml").is_file():
            return ["pyproject.toml", lock], lock.removesuffix(".lock")
    raise BuilderError("the python builder needs requirements.txt, or pyproject.toml with uv.lock or poetry.lock")


BUILDER = Builder(
    name="python", order=10, markers=("requirements.txt", "pyproject.toml", *LOCKS),
    looked_for="requirements.txt, pyproject.toml with uv.lock or poetry.lock",
    matches=matches, base=BASE, render=render, index_keys=("pip-index-url",))
