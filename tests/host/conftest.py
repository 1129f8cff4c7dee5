"""Host tests: a booted Debian host with real systemd, podman and Caddy, podku installed by
install.sh, apps pushed with real git over real ssh. One shared host per run; tests that
need a pristine host get their own."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import testhost  # noqa: E402

APPS_DIR = Path(__file__).resolve().parent / "apps"
_names = itertools.count(1)


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
    machine = testhost.TestHost("podku-shared", *images)
    try:
        machine.boot()
        machine.install()
        yield machine
    finally:
        machine.destroy()


@pytest.fixture
def fresh_host(images):
    """A booted host of its own, podku not installed yet."""
    machine = testhost.TestHost(f"podku-fresh{next(_names)}", *images)
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


class AppRepo:
    """A local git repository of the test app, changed and committed by tests."""

    def __init__(self, path: Path, machine: testhost.TestHost, app: str):
        self.path, self.host, self.app = path, machine, app
        path.mkdir(parents=True, exist_ok=True)
        shutil.copy(APPS_DIR / "testapp.py", path / "testapp.py")
        self._git("init", "-q", "-b", "main")

    def write(self, env: dict[str, str] | None = None, expose: int | None = None,
              extra: str = "", message: str = "") -> None:
        lines = ["FROM localhost/podku/python:3.11", "COPY testapp.py /app/testapp.py"]
        lines += [f"ENV {key}={value}" for key, value in (env or {}).items()]
        lines += [f"EXPOSE {expose}"] if expose else []
        lines += [extra] if extra else []
        lines += ['CMD ["python3", "/app/testapp.py"]']
        (self.path / "Containerfile").write_text("\n".join(lines) + "\n")
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message or f"deploy {env}")

    def push(self, check: bool = True, branch: str = "main") -> subprocess.CompletedProcess:
        return self.host.git(self.path, "push", self.host.remote(self.app), f"HEAD:{branch}", check=check)

    def deploy(self, message: str, **kwargs) -> subprocess.CompletedProcess:
        self.write(env={"MESSAGE": message, **kwargs.pop("env", {})}, **kwargs)
        return self.push()

    def _git(self, *args: str) -> None:
        subprocess.run(["git", "-C", str(self.path), "-c", "user.name=test", "-c", "user.email=test@podku.invalid",
                        *args], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def app_repo(tmp_path, host, app_name):
    return AppRepo(tmp_path / app_name, host, app_name)
