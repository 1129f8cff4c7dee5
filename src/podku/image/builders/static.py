"""Static: public/index.html or a .static marker; podku's own small server (on the python
base) serves public/, or the root with .static. No code of the app's runs."""

from pathlib import Path

from podku.host import templates
from podku.image.builders import python
from podku.image.builders.base import Builder

CONTEXT = "podku"  # the --build-context name of podku's own files (the static server)


def render(source: Path) -> str:
    return templates.render("builders/static.Containerfile.j2", base=python.BASE.image, context=CONTEXT,
                            root="public" if (source / "public").is_dir() else ".")


def context_args(source: Path) -> list[str]:
    return ["--build-context", f"{CONTEXT}={templates.units_dir() / 'builders'}"]


BUILDER = Builder(
    name="static", order=30, markers=("public/index.html", ".static"),
    looked_for="public/index.html or a .static marker",
    matches=lambda exists: exists("public/index.html") or exists(".static"),
    base=python.BASE, render=render, context_args=context_args)
