"""ruff and mypy, as configured in pyproject.toml, pass on the whole tree. Their versions are
pinned in tests/lint-requirements.txt and installed by tests/host/install-test-deps.sh into
a venv of their own (PODKU_LINT_VENV, default /var/cache/podku-test/lint-venv-<hash>)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def lint_tool(name: str) -> str:
    venv = os.environ.get("PODKU_LINT_VENV") or subprocess.run(
        ["bash", str(REPO / "tests" / "lint-venv.sh"), "--path"], capture_output=True, text=True).stdout.strip()
    tool = Path(venv) / "bin" / name
    if not tool.is_file():
        pytest.fail(f"{name} is not installed at {tool}: run tests/lint-venv.sh (tests/run.sh does)")
    return str(tool)


def test_ruff_passes():
    result = subprocess.run([lint_tool("ruff"), "check", "--no-cache", "."], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_passes():
    # Debian's Python: mypy must see the same click and jinja2 as podku does on a host
    # its cache stays in this checkout (.mypy_cache): checkouts of other branches differ
    result = subprocess.run([lint_tool("mypy"), "--python-executable", "/usr/bin/python3"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_on_every_shell_script():
    """install.sh and the test scripts (the unit templates are Jinja, not shell, until rendered)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    shells = (b"#!/usr/bin/env bash", b"#!/bin/bash", b"#!/bin/sh")
    scripts = [name for name in tracked if not name.endswith(".j2") and (REPO / name).is_file()
               and (REPO / name).read_bytes()[:64].split(b"\n")[0] in shells]
    assert "install.sh" in scripts
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: tests/host/install-test-deps.sh installs it")
    result = subprocess.run([shellcheck, "--severity=warning", *scripts], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
