"""Host tests: a booted Debian host with real systemd, podman and Caddy, podku installed by
install.sh, apps pushed with real git over real ssh. One shared host per run; tests that
need a pristine host get their own."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servicetools

import testhost

_names = itertools.count(1)
# Test hosts of concurrent runs (two checkouts on one machine) must not share names.
RUN = os.getpid() % 100000


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/host/" in str(item.fspath):
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def images():
    if os.geteuid() != 0:
        pytest.fail("host tests need root (they boot systemd-nspawn test hosts)")
    for tool in ("systemd-nspawn", "mmdebstrap", "ip", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"host tests need {tool}: run .ci/run or install what it installs")
    return testhost.build_images()


@pytest.fixture(scope="session")
def host(images):
    """The shared test host, podku installed, shared by tests that each use their own apps."""
    machine = testhost.TestHost(f"shared{RUN}", *images)
    try:
        machine.boot()
        machine.install()
        yield machine
    finally:
        machine.destroy()


@pytest.fixture(scope="module")
def builder_host(host):
    """The shared host with the package server serving builds (builder apps' packages)."""
    with servicetools.prepared(host) as machine:
        yield machine


@pytest.fixture
def fresh_host(images):
    """A booted host of its own, podku not installed yet."""
    machine = testhost.TestHost(f"fresh{next(_names)}x{RUN}", *images)
    try:
        machine.boot()
        yield machine
    finally:
        machine.destroy()


@pytest.fixture
def app_name(request):
    """A name no other test uses on the shared host."""
    base = "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:40]
    return f"{base}{next(_names)}"


@pytest.fixture
def app_repo(tmp_path, host, app_name):
    return testhost.AppRepo(tmp_path / app_name, host, app_name)


@pytest.fixture
def load_run(host, tmp_path):
    def start(app: str, **kwargs) -> testhost.LoadRun:
        return testhost.LoadRun(host, app, tmp_path, **kwargs)
    return start
