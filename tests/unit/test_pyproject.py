import importlib
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]


def data_files() -> dict[str, list[str]]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["tool"]["setuptools"]["data-files"]


def test_every_unit_template_is_installed():
    installed = set(data_files()["share/podku/units"])
    in_repo = {f"units/{path.name}" for path in (REPO / "units").iterdir() if path.is_file()}
    assert installed == in_repo


def test_every_installed_file_exists():
    for files in data_files().values():
        for name in files:
            assert (REPO / name).is_file(), name


def test_templates_are_installed_where_podku_looks_for_them():
    from podku.host import templates

    assert "share/podku/units" in data_files()
    installed = Path(sys.prefix) / "share" / "podku" / "units"
    assert templates.UNITS_DIR == REPO / "units"  # conftest: this checkout's
    assert installed == importlib.reload(templates).UNITS_DIR  # the one rule, installed
    templates.UNITS_DIR = REPO / "units"


def test_test_module_names_are_unique_across_the_test_folders():
    """pytest imports test files by their base name: a clash stops the whole run at collection."""
    names = [path.name for path in (REPO / "tests").glob("*/test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []


def test_every_package_is_installed():
    """A subpackage missing from pyproject's list installs without error and fails on the host."""
    with open(REPO / "pyproject.toml", "rb") as handle:
        listed = set(tomllib.load(handle)["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(REPO / "src").parts)
             for path in (REPO / "src" / "podku").rglob("__init__.py")}
    assert listed == found
