"""The tree's own Containerfile or Dockerfile: always wins, built as it is (after the
Containerfile policy in image/build.py)."""

from podku.image.builders.base import Builder

BUILD_FILES = ("Containerfile", "Dockerfile")

BUILDER = Builder(
    name="containerfile", order=0, markers=BUILD_FILES, looked_for="Containerfile or Dockerfile",
    matches=lambda exists: any(exists(name) for name in BUILD_FILES))
