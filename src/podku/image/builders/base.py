"""What a builder is: how it recognises a tree, the base image it builds on, and how it
renders a Containerfile for the tree. One file of this package per builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from podku.errors import PodkuError
from podku.image.baseimages import Base

Exists = Callable[[str], bool]  # whether a repository-relative regular file is in the tree


class BuilderError(PodkuError):
    pass


class NoBuilder(BuilderError):
    pass


class ProcfileError(BuilderError):
    pass


@dataclass(frozen=True)
class Builder:
    name: str
    order: int  # detection tries builders by this number, lowest first
    markers: tuple[str, ...]  # every file `matches` may ask about
    looked_for: str  # for the message when no builder matches
    matches: Callable[[Exists], bool]
    base: Base | None = None  # None: the tree's own Containerfile names its base
    render: Callable[[Path], str] | None = None  # None: the tree's own Containerfile
    index_keys: tuple[str, ...] = ()  # builder:set-global keys passed as --build-arg
    context_args: Callable[[Path], list[str]] = field(default=lambda source: [])


def shown(value: str, limit: int = 40) -> str:
    """A user's value in an error message: one line, bounded."""
    return repr(value[:limit] + ("..." if len(value) > limit else ""))
